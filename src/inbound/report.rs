//! One status report: decoded, correlated (waiting out the SUBMIT_RESP race), stored.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::protocol::Deliver;
use crate::store::{ReportOutcome, Store, StoreError, now_ms};

/// Waits between tries of a report whose Msg_Id is not mapped yet: short at first, because the
/// usual cause is the SUBMIT_RESP bookkeeping still on its way to Redis (a millisecond or two),
/// and the ISMG keeps only a few DELIVERs unanswered, so a waiting report holds up the others;
/// then longer, for a Msg_Id that is late for another reason.
const FIRST_MATCH_RETRY: Duration = Duration::from_millis(1);
const MAX_MATCH_RETRY: Duration = Duration::from_millis(100);

/// Stores the report carried by `deliver`; `Ok` means it is in the reports stream (or was
/// before: a redelivery).
pub(crate) async fn handle(
    store: &Store,
    config: &StoreConfig,
    metrics: &Metrics,
    deliver: &Deliver,
) -> Result<(), StoreError> {
    let received_at = now_ms();
    let report = match deliver.report() {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            tracing::debug!(msg_id = %deliver.msg_id, error = %e, "malformed status report kept raw");
            store
                .record_malformed_report(deliver, &e.to_string(), received_at)
                .await?;
            metrics.families.reports_malformed.inc();
            return Ok(());
        }
        None => return Err(StoreError::Unexpected("handle() called for an MO".into())),
    };
    // A report can overtake the bookkeeping of its own SUBMIT_RESP: give the Msg_Id map
    // `report_match_wait` to appear before writing the report as unmatched.
    let give_up_at = Instant::now() + config.report_match_wait;
    let mut pause = FIRST_MATCH_RETRY;
    loop {
        let last_chance = Instant::now() >= give_up_at;
        match store
            .record_report(deliver, &report, received_at, last_chance)
            .await?
        {
            ReportOutcome::WrittenUnmatched => {
                tracing::debug!(msg_id = %report.msg_id, stat = %report.stat, "status report matches no message; written with unmatched=1");
                metrics.report_written(&report.stat, true);
                return Ok(());
            }
            ReportOutcome::Written { decided } => {
                metrics.report_written(&report.stat, false);
                if let Some(status) = decided {
                    let finals = &metrics.families.messages_final;
                    finals.with_label_values(&[status.as_str()]).inc();
                }
                return Ok(());
            }
            ReportOutcome::Duplicate => return Ok(()),
            ReportOutcome::NotMatched => {
                if pause == FIRST_MATCH_RETRY {
                    metrics.families.reports_match_waits.inc();
                }
                let left = give_up_at.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(MAX_MATCH_RETRY);
            }
        }
    }
}
