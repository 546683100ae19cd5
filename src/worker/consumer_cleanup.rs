//! Deletes the consumers that hold no lease and have nothing pending: each lease gives its
//! holder a new consumer name, so without this the group would grow by one per lease taken, for
//! ever. At start-up, then every half of `consumer_delete_idle` (at least a second, at most ten
//! minutes apart). Every instance may run it; the deletion is one atomic script that spares any
//! consumer with entries pending (deleting it would strand them) and every current holder.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Assignment;
use crate::store::{Consumer, StoreError};

pub(crate) async fn run(
    consumer: Arc<Consumer>,
    assignment: Arc<Assignment>,
    shutdown: CancellationToken,
) {
    let every =
        (assignment.consumer_idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(600));
    super::periodic::every(every, shutdown, || async {
        match delete_unleased(&consumer, &assignment).await {
            Ok(deleted) if deleted.is_empty() => {}
            Ok(deleted) => {
                tracing::info!(
                    ?deleted,
                    "deleted consumers without a lease and with nothing pending"
                )
            }
            // The next tick tries again; the worker's own reads report Redis trouble.
            Err(e) => tracing::debug!(error = %e, "cannot delete idle consumers"),
        }
    })
    .await
}

async fn delete_unleased(
    consumer: &Consumer,
    assignment: &Assignment,
) -> Result<Vec<String>, StoreError> {
    let live: Vec<String> = consumer
        .store()
        .lease_holders(&assignment.channel, assignment.slots)
        .await?
        .into_iter()
        .flatten()
        .collect();
    consumer
        .delete_unleased_consumers(&live, assignment.consumer_idle)
        .await
}
