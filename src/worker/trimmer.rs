//! Keeps the outbound stream to the work not yet done: entries every consumer group has
//! acknowledged are deleted now and then (they are sent; their state lives in the state hash).
//! Every instance may run it; trimming below the lowest unacknowledged entry is idempotent.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Consumer;

/// Often enough that the stream holds about a second of sent messages at any rate (each trim
/// deletes every acknowledged entry, however many).
const EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(consumer: Arc<Consumer>, shutdown: CancellationToken) {
    super::periodic::every(EVERY, shutdown, || async {
        match consumer.trim_acknowledged().await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "trimmed acknowledged outbound entries"),
            // The next tick tries again; the worker's own reads report Redis trouble.
            Err(e) => tracing::debug!(error = %e, "cannot trim the outbound stream"),
        }
    })
    .await
}
