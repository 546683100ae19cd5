//! MO (uplink) messages: each DELIVER is decoded to UTF-8 and written to the MO stream, long
//! ones reassembled in Redis first (see `store::mo` for the keys and scripts). A part is
//! acknowledged as soon as it is stored, not when its message is complete; the sweeper writes
//! sets whose missing parts never came as `partial=1` after `mo_reassembly_timeout`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::protocol::Deliver;
use crate::store::{MoOutcome, Store, StoreError, now_ms};

/// The sweeper runs at least this often, so a set is written at most this long after its
/// timeout.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(5);
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Stores one MO DELIVER. `Ok` means it is in Redis (as an entry, or as a part of a long message
/// waiting for the rest, or it was stored before) and may be acknowledged.
pub(crate) async fn handle(
    store: &Store,
    metrics: &Metrics,
    deliver: &Deliver,
) -> Result<(), StoreError> {
    match store.record_mo(deliver, now_ms()).await? {
        MoOutcome::Written => {
            metrics
                .families
                .mo_messages
                .with_label_values(&["true"])
                .inc();
            tracing::debug!(msg_id = %deliver.msg_id, from = %deliver.src_terminal_id, "MO written")
        }
        MoOutcome::PartStored { held, total } => {
            tracing::debug!(msg_id = %deliver.msg_id, from = %deliver.src_terminal_id, held, total, "MO part stored")
        }
        MoOutcome::Duplicate => {
            tracing::debug!(msg_id = %deliver.msg_id, "MO DELIVER stored before; acknowledging it again")
        }
    }
    Ok(())
}

/// How often the sweeper looks for overdue sets: a quarter of the timeout, between 100 ms and
/// 5 s.
pub fn sweep_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL)
}

/// Writes reassembly sets older than `mo_reassembly_timeout` (as partial entries, or complete
/// ones left by a crash) until `shutdown`. Every instance may run one: the write is atomic and
/// conditional, so a set becomes one entry. Redis errors are logged and retried next tick.
pub async fn run_mo_sweeper(
    store: Store,
    config: Arc<StoreConfig>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let timeout = config.mo_reassembly_timeout;
    let mut tick = tokio::time::interval(sweep_interval(timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let cutoff = now_ms().saturating_sub(timeout.as_millis() as u64);
        let sweep = tokio::select! {
            result = store.sweep_mo(cutoff) => result,
            () = shutdown.cancelled() => return,
        };
        match sweep {
            Ok(s) => {
                if failing {
                    tracing::info!("MO sweeper reaches redis again");
                    failing = false;
                }
                let written = &metrics.families.mo_messages;
                written
                    .with_label_values(&["false"])
                    .inc_by(s.partial as u64);
                written
                    .with_label_values(&["true"])
                    .inc_by(s.complete as u64);
                if s.partial + s.complete > 0 {
                    tracing::info!(
                        partial = s.partial,
                        complete = s.complete,
                        "MO sweeper wrote overdue long messages"
                    );
                }
            }
            Err(e) => {
                // Log the first failure of a run at warn, the repeats at debug.
                if failing {
                    tracing::debug!(error = %e, "MO sweep failed again");
                } else {
                    tracing::warn!(error = %e, "MO sweep failed; retrying on the next tick");
                    failing = true;
                }
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
