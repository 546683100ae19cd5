//! One status report: decoded and stored — correlated when its Msg_Id is mapped, held in Redis
//! when it is not yet (see `held`) — so that its DELIVER is answered at once.

use crate::metrics::Metrics;
use crate::protocol::Deliver;
use crate::store::{HeldReport, ReportOutcome, Store, StoreError, WhenUnmapped, now_ms};

/// Stores the report carried by `deliver`. `Ok` means it is in Redis (in the reports stream, or
/// held) and its DELIVER may be answered; a held report comes back for `held::watch`.
pub(crate) async fn handle(
    store: &Store,
    metrics: &Metrics,
    deliver: &Deliver,
) -> Result<Option<HeldReport>, StoreError> {
    let received_at = now_ms();
    let report = match deliver.report() {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            tracing::debug!(msg_id = %deliver.msg_id, error = %e, "malformed status report kept raw");
            store
                .record_malformed_report(deliver, &e.to_string(), received_at)
                .await?;
            metrics.families.reports_malformed.inc();
            return Ok(None);
        }
        None => return Err(StoreError::Unexpected("handle() called for an MO".into())),
    };
    let outcome = store
        .record_report(deliver, &report, received_at, WhenUnmapped::Hold)
        .await?;
    if outcome == ReportOutcome::Held {
        // Usually the SUBMIT_RESP bookkeeping of its message is a millisecond or two behind.
        metrics.families.reports_match_waits.inc();
        tracing::debug!(msg_id = %report.msg_id, stat = %report.stat, "status report held until its Msg_Id is recorded");
        return Ok(Some(HeldReport::new(deliver, &report)));
    }
    count(metrics, &report.stat, outcome);
    Ok(None)
}

/// Counts a report written (correlated or not), and the message it decided.
pub(crate) fn count(metrics: &Metrics, stat: &str, outcome: ReportOutcome) {
    match outcome {
        ReportOutcome::WrittenUnmatched => metrics.report_written(stat, true),
        ReportOutcome::Written { decided } => {
            metrics.report_written(stat, false);
            if let Some(status) = decided {
                let finals = &metrics.families.messages_final;
                finals.with_label_values(&[status.as_str()]).inc();
            }
        }
        ReportOutcome::Duplicate | ReportOutcome::Held => {}
    }
}
