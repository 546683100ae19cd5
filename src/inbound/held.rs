//! Held reports (see `store::held_reports`) are written once their Msg_Id is mapped. Right
//! after the DELIVER is answered, a watcher in this process looks for the Msg_Id (one GET) —
//! after 1 ms, then twice as long each time up to every second, since the usual cause is the
//! SUBMIT_RESP bookkeeping a millisecond or two behind, and a flood of Msg_Ids nobody knows must
//! cost few lookups each (about twenty over the default 10 s) — until `report_match_wait` is
//! over, and then writes the report unmatched. The sweeper, which every instance with a link runs, does the same for reports
//! whose watcher is gone: a crash, a shutdown, or more held reports than watchers.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::count;
use super::sweeper::{self, sweep_interval};
use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::store::{HeldReport, ReportOutcome, Store, now_ms};

const FIRST_LOOK: Duration = Duration::from_millis(1);
const MAX_LOOK_INTERVAL: Duration = Duration::from_secs(1);

/// Held reports this process watches at once; the rest are left to the sweeper, so a flood of
/// unknown Msg_Ids costs bounded memory and Redis polling.
pub(crate) const MAX_WATCHED: usize = 10_000;

/// Writes `held` as soon as its Msg_Id is mapped, or unmatched after `report_match_wait`. On
/// shutdown it looks once more and leaves the rest to a sweeper.
pub(crate) async fn watch(
    store: Store,
    config: Arc<StoreConfig>,
    metrics: Arc<Metrics>,
    held: HeldReport,
    shutdown: CancellationToken,
) {
    let give_up_at = Instant::now() + config.report_match_wait;
    let mut pause = FIRST_LOOK;
    loop {
        let left = give_up_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let stopping = tokio::select! {
            () = tokio::time::sleep(pause.min(left)) => false,
            () = shutdown.cancelled() => true,
        };
        pause = (pause * 2).min(MAX_LOOK_INTERVAL);
        match store.resolve_held_report(&held, false).await {
            Ok(ReportOutcome::Held) => {}
            Ok(outcome) => return count(&metrics, &held.stat, outcome),
            Err(e) => {
                tracing::debug!(msg_id = held.msg_id, error = %e, "held report not written yet")
            }
        }
        if stopping {
            return;
        }
    }
    match store.resolve_held_report(&held, true).await {
        Ok(outcome) => {
            if outcome == ReportOutcome::WrittenUnmatched {
                tracing::debug!(msg_id = held.msg_id, stat = %held.stat, "status report matches no message; written with unmatched=1");
            }
            count(&metrics, &held.stat, outcome)
        }
        Err(e) => {
            tracing::debug!(msg_id = held.msg_id, error = %e, "held report not written; the sweeper will")
        }
    }
}

/// Writes reports held longer than `report_match_wait` (plus a sweep interval, so a live
/// watcher usually finishes its own): correlated if their Msg_Id is mapped by now, else
/// unmatched. Every instance may run one.
pub async fn run_report_sweeper(
    store: Store,
    config: Arc<StoreConfig>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let wait = config.report_match_wait;
    let interval = sweep_interval(wait);
    let (store, metrics) = (&store, &metrics);
    sweeper::run("held reports", interval, shutdown, || async move {
        let cutoff = now_ms().saturating_sub((wait + interval).as_millis() as u64);
        let swept = store.sweep_held_reports(cutoff).await?;
        for (held, outcome) in &swept {
            count(metrics, &held.stat, *outcome);
        }
        if !swept.is_empty() {
            tracing::info!(
                reports = swept.len(),
                "sweeper wrote reports held past report_match_wait"
            );
        }
        Ok(())
    })
    .await
}
