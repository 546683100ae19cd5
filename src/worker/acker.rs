//! Acknowledgements, batched: one XACK for many entries, sent by its own task so message tasks
//! never wait on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::in_flight::InFlight;
use crate::store::Consumer;

const MAX_BATCH: usize = 512;
const RETRY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<String>,
}

impl Acker {
    /// The task ends when every `Acker` clone is dropped, after acknowledging what it holds.
    pub(crate) fn spawn(
        consumer: Arc<Consumer>,
        in_flight: InFlight,
        tasks: &TaskTracker,
    ) -> Acker {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tasks.spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                // An entry not acknowledged stays pending and is reclaimed later, so retrying a
                // few times is enough; keep going rather than lose the rest of the batch.
                for attempt in 0..20 {
                    match consumer.ack(&batch).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, entries = batch.len(), "XACK failed; retrying");
                            tokio::time::sleep(RETRY).await;
                        }
                    }
                }
                in_flight.remove_all(&batch);
                batch.clear();
            }
        });
        Acker { tx }
    }

    pub(crate) fn ack(&self, stream_id: String) {
        // The task outlives every sender; a send can only fail once it is gone.
        let _ = self.tx.send(stream_id);
    }
}
