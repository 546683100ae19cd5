//! The loop shared by the receive path's sweepers (long MO waiting for parts, held reports):
//! one sweep per tick until shutdown, Redis errors logged once per outage and retried on the
//! next tick.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::StoreError;

/// A sweep runs at least this often, so what it writes is written at most this long after its
/// time.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(5);
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// How often to look for what is overdue after `timeout`: a quarter of it, between 100 ms and
/// 5 s.
pub fn sweep_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL)
}

/// Runs `sweep` every `interval` until `shutdown`; `what` names it in the log.
pub(crate) async fn run<F, Fut>(
    what: &str,
    interval: Duration,
    shutdown: CancellationToken,
    mut sweep: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let result = tokio::select! {
            result = sweep() => result,
            () = shutdown.cancelled() => return,
        };
        match result {
            Ok(()) if failing => {
                tracing::info!(sweeper = what, "sweeper reaches redis again");
                failing = false;
            }
            Ok(()) => {}
            // The first failure of a run at warn, the repeats at debug.
            Err(e) if failing => tracing::debug!(sweeper = what, error = %e, "sweep failed again"),
            Err(e) => {
                tracing::warn!(sweeper = what, error = %e, "sweep failed; retrying on the next tick");
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_interval_is_a_quarter_of_the_timeout_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(300)),
            Duration::from_secs(5)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
