//! The stream entries this process is sending. A message can wait long (T × N, flow-control
//! pauses, a link outage), longer than the reclaim idle time; this set keeps the entry from being
//! dispatched twice here, and a keeper task resets its idle time in Redis so other instances do
//! not reclaim it either.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::Consumer;

#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<String>>>);

impl InFlight {
    /// `false` when the entry is already being sent.
    pub(crate) fn insert(&self, stream_id: &str) -> bool {
        self.lock().insert(stream_id.to_owned())
    }

    pub(crate) fn contains(&self, stream_id: &str) -> bool {
        self.lock().contains(stream_id)
    }

    pub(crate) fn remove(&self, stream_id: &str) {
        self.lock().remove(stream_id);
    }

    pub(crate) fn remove_all(&self, stream_ids: &[String]) {
        let mut set = self.lock();
        for id in stream_ids {
            set.remove(id);
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked: every operation is one call.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every third of the reclaim idle time, claims the entries in flight again (resetting
    /// their idle time).
    pub(crate) fn spawn_keeper(
        &self,
        consumer: Arc<Consumer>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) {
        let set = self.clone();
        let every = consumer.config().reclaim_idle / 3;
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = shutdown.cancelled() => return,
                }
                let ids = set.snapshot();
                match consumer.touch(&ids).await {
                    Ok(lost) if !lost.is_empty() => {
                        tracing::warn!(lost = lost.len(), entries = ids.len(), "entries in flight are held by another consumer now (this one's lease ended, or it renewed too late): their new holder sends them");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, entries = ids.len(), "cannot renew ownership of entries in flight");
                    }
                }
            }
        });
    }
}
