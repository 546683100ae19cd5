//! One status report: decoded, correlated (waiting out the SUBMIT_RESP race), stored.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::protocol::Deliver;
use crate::store::{ReportOutcome, Store, StoreError, now_ms};

/// How often an unmatched report is tried again while its Msg_Id may still be mapped.
const MATCH_RETRY: Duration = Duration::from_millis(100);

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
                let left = give_up_at.saturating_duration_since(Instant::now());
                tokio::time::sleep(MATCH_RETRY.min(left)).await;
            }
        }
    }
}
