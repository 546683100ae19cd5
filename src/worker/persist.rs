//! The worker's Redis writes: waited for while Redis cannot be reached (every step of the worker
//! waits then), but given up after a few refusals, which retrying now will not mend (a key of
//! the wrong type, a script error). Giving up leaves the entry pending, unacknowledged: it is
//! reclaimed after `reclaim_idle` and tried again then, a bounded rate of retries that survives
//! restarts, and never a message acknowledged without its state or its dead letter.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// How long to wait before trying Redis again after an error.
pub(crate) const REDIS_RETRY: Duration = Duration::from_millis(500);
/// Refusals (not: Redis unreachable) before a write is given up.
const REFUSALS: u32 = 3;

/// Runs `write` until it succeeds (`true`), shutdown comes, or Redis refused it [`REFUSALS`]
/// times (`false` for both).
pub(crate) async fn persist<F, Fut>(shutdown: &CancellationToken, doing: &str, write: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut refused = 0;
    loop {
        let e = match write().await {
            Ok(()) => return true,
            Err(e) => e,
        };
        if !e.is_unavailable() {
            refused += 1;
            if refused >= REFUSALS {
                tracing::error!(error = %e, "redis refused {doing} {refused} times; the entry stays pending and is tried again when reclaimed");
                return false;
            }
        }
        tracing::warn!(error = %e, "redis trouble while {doing}; retrying");
        tokio::select! {
            () = tokio::time::sleep(REDIS_RETRY) => {}
            () = shutdown.cancelled() => return false,
        }
    }
}
