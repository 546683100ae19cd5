//! MO (uplink) messages: each DELIVER is decoded to UTF-8 and written to the MO stream, long
//! ones reassembled in Redis first (see `store::mo` for the keys and scripts). A part is
//! acknowledged as soon as it is stored, not when its message is complete; the sweeper writes
//! sets whose missing parts never came as `partial=1` after `mo_reassembly_timeout`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::sweeper::{self, sweep_interval};
use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::protocol::Deliver;
use crate::store::{MoOutcome, Store, StoreError, now_ms};

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

/// Writes reassembly sets older than `mo_reassembly_timeout` (as partial entries, or complete
/// ones left by a crash) until `shutdown`. Every instance may run one: the write is atomic and
/// conditional, so a set becomes one entry.
pub async fn run_mo_sweeper(
    store: Store,
    config: Arc<StoreConfig>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let timeout = config.mo_reassembly_timeout;
    let (store, metrics) = (&store, &metrics);
    sweeper::run("MO", sweep_interval(timeout), shutdown, || async move {
        let cutoff = now_ms().saturating_sub(timeout.as_millis() as u64);
        let s = store.sweep_mo(cutoff).await?;
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
        Ok(())
    })
    .await
}
