//! Deletes the consumers stopped processes left in the group: at start-up, then every half of
//! `consumer_delete_idle` (at least a second, at most ten minutes apart). Every instance may run
//! it; the deletion is one atomic script that spares any consumer with entries pending.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Consumer;

pub(crate) async fn run(consumer: Arc<Consumer>, shutdown: CancellationToken) {
    let every = (consumer.config().consumer_delete_idle / 2)
        .clamp(Duration::from_secs(1), Duration::from_secs(600));
    super::periodic::every(every, shutdown, || async {
        match consumer.delete_stale_consumers().await {
            Ok(deleted) if deleted.is_empty() => {}
            Ok(deleted) => tracing::info!(?deleted, "deleted consumers idle with nothing pending"),
            // The next tick tries again; the worker's own reads report Redis trouble.
            Err(e) => tracing::debug!(error = %e, "cannot delete idle consumers"),
        }
    })
    .await
}
