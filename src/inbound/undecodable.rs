//! A DELIVER whose body does not decode: kept raw, then answered with the Result chosen by the
//! link (1, cannot be decoded), so nothing the carrier sent is lost and the link goes on.

use crate::metrics::Metrics;
use crate::session::UndecodableDeliver;
use crate::store::{Store, StoreError, now_ms};

pub(crate) async fn handle(
    store: &Store,
    metrics: &Metrics,
    deliver: &UndecodableDeliver,
) -> Result<(), StoreError> {
    if store.record_undecodable_deliver(deliver, now_ms()).await? {
        if deliver.report == Some(true) {
            metrics.families.reports_malformed.inc();
        }
        tracing::warn!(msg_id = %deliver.msg_id, reason = %deliver.reason, bytes = deliver.body.len(), "a DELIVER that cannot be decoded was kept raw (malformed=1)");
    }
    Ok(())
}
