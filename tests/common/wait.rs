//! Polling with a deadline: the tests wait for a condition, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Calls `check` every 50 ms until it gives `Ok`, and returns that; after `limit` panics naming
/// `what` and the last `Err` (what `check` saw instead).
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(found) => return found,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
