//! The receive path: every DELIVER the link hands up is stored in its inbound stream — status
//! reports correlated to our message, MO decoded and reassembled — and only then answered with
//! DELIVER_RESP Result 0. If it cannot be stored (Redis down), it is refused, so the ISMG
//! delivers it again; redeliveries are recognised by the DELIVER's Msg_Id and stored once. A
//! report whose Msg_Id is not mapped yet is held in Redis and answered at once: the ISMG allows
//! only a few DELIVERs unanswered, so nothing here waits for a timer before answering.

mod held;
mod mo;
mod report;
mod sweeper;
mod undecodable;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::StoreConfig;
use crate::metrics::Metrics;
use crate::protocol::submit_result;
use crate::session::{Delivered, Inbound};
use crate::store::Store;

pub use held::run_report_sweeper;
pub use mo::run_mo_sweeper;

/// DELIVERs handled at once; the link's own queue holds the rest.
const CONCURRENCY: usize = 64;

pub struct Receiver {
    store: Store,
    config: Arc<StoreConfig>,
    metrics: Arc<Metrics>,
    /// DELIVERs refused because they could not be stored (the series of this link).
    store_failed: IntCounter,
    shutdown: CancellationToken,
}

impl Receiver {
    /// `labels` (link, channel, slot) name the connection in the metrics.
    pub fn new(
        store: Store,
        config: StoreConfig,
        metrics: Arc<Metrics>,
        labels: [&str; 3],
        shutdown: CancellationToken,
    ) -> Receiver {
        let [link, channel, slot] = labels;
        let store_failed = metrics.families.delivers_refused.with_label_values(&[
            link,
            channel,
            slot,
            "store_failed",
        ]);
        Receiver {
            store,
            config: Arc::new(config),
            metrics,
            store_failed,
            shutdown,
        }
    }

    /// Runs until the link's DELIVER queue closes (the link has shut down).
    pub async fn run(self, mut inbound: mpsc::Receiver<Inbound>) {
        let tasks = TaskTracker::new();
        tasks.spawn(run_mo_sweeper(
            self.store.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        tasks.spawn(run_report_sweeper(
            self.store.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let watchers = Arc::new(Semaphore::new(held::MAX_WATCHED));
        // Whether the last store attempt failed: the outage is logged when it starts and ends.
        let failing = Arc::new(AtomicBool::new(false));
        while let Some(Inbound { deliver, ack }) = inbound.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (store, config) = (self.store.clone(), self.config.clone());
            let (metrics, store_failed) = (self.metrics.clone(), self.store_failed.clone());
            let (failing, watchers) = (failing.clone(), watchers.clone());
            let shutdown = self.shutdown.clone();
            tasks.spawn(async move {
                let stored = match &deliver {
                    Delivered::Decoded(d) if d.is_report() => {
                        report::handle(&store, &metrics, d).await
                    }
                    Delivered::Decoded(d) => mo::handle(&store, &metrics, d).await.map(|()| None),
                    Delivered::Undecodable(u) => {
                        undecodable::handle(&store, &metrics, u).await.map(|()| None)
                    }
                };
                let held = match stored {
                    Ok(held) => {
                        if failing.swap(false, Ordering::Relaxed) {
                            tracing::info!("storing DELIVERs again");
                        }
                        ack.confirm();
                        held
                    }
                    Err(e) => {
                        // One line per outage at warn; each refused DELIVER only at debug.
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "cannot store DELIVERs; refusing them so the ISMG delivers them again");
                        }
                        tracing::debug!(error = %e, msg_id = %deliver.msg_id(), "DELIVER refused");
                        store_failed.inc();
                        ack.refuse(submit_result::FLOW_CONTROL);
                        None
                    }
                };
                // Answered: the slot is free, whatever a held report still waits for.
                drop(permit);
                let Some(held) = held else { return };
                match watchers.try_acquire_owned() {
                    Ok(_watching) => held::watch(store, config, metrics, held, shutdown).await,
                    Err(_) => tracing::debug!(
                        msg_id = held.msg_id,
                        "more held reports than watchers; the sweeper writes this one"
                    ),
                }
            });
        }
        tasks.close();
        // The sweepers and watchers stop with the shutdown token; give in-flight writes a moment.
        let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    }
}
