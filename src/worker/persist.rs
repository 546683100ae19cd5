//! The worker's Redis writes: waited for while Redis cannot be reached or cannot take writes for
//! now (every step of the worker waits then), but given up after a few refusals, which retrying
//! now will not mend (a key of the wrong type, a script error). The caller decides what giving
//! up means; never a message acknowledged without its state or its dead letter.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// How long to wait before trying Redis again after an error.
pub(crate) const REDIS_RETRY: Duration = Duration::from_millis(500);
/// Refusals (not: Redis unreachable) before a write is given up.
const REFUSALS: u32 = 3;

/// Why [`persist`] stopped trying.
#[derive(Debug)]
pub(crate) enum GaveUp {
    /// Shutdown came while Redis could not take the write.
    Shutdown,
    /// Redis refused it [`REFUSALS`] times with an error that waiting does not mend.
    Refused(StoreError),
}

/// Runs `write` until it succeeds, shutdown comes, or Redis refused it [`REFUSALS`] times; while
/// Redis is unreachable or cannot take writes for now (`StoreError::is_transient`) it waits.
pub(crate) async fn persist<T, F, Fut>(
    shutdown: &CancellationToken,
    doing: &str,
    write: F,
) -> Result<T, GaveUp>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut refused = 0;
    loop {
        let e = match write().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if !e.is_transient() {
            refused += 1;
            if refused >= REFUSALS {
                tracing::error!(error = %e, "redis refused {doing} {refused} times");
                return Err(GaveUp::Refused(e));
            }
        }
        tracing::warn!(error = %e, "redis trouble while {doing}; retrying");
        tokio::select! {
            () = tokio::time::sleep(REDIS_RETRY) => {}
            () = shutdown.cancelled() => return Err(GaveUp::Shutdown),
        }
    }
}
