//! The receive path: every DELIVER the link hands up is stored in its inbound stream — status
//! reports correlated to our message, MO decoded and reassembled — and only then answered with
//! DELIVER_RESP Result 0. If it cannot be stored (Redis down), it is refused, so the ISMG
//! delivers it again; redeliveries are recognised by the DELIVER's Msg_Id and stored once.

mod mo;
mod report;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::StoreConfig;
use crate::protocol::submit_result;
use crate::session::Inbound;
use crate::store::Store;

pub use mo::run_mo_sweeper;

/// DELIVERs handled at once; the link's own queue holds the rest.
const CONCURRENCY: usize = 64;

pub struct Receiver {
    store: Store,
    config: Arc<StoreConfig>,
    shutdown: CancellationToken,
}

impl Receiver {
    pub fn new(store: Store, config: StoreConfig, shutdown: CancellationToken) -> Receiver {
        Receiver {
            store,
            config: Arc::new(config),
            shutdown,
        }
    }

    /// Runs until the link's DELIVER queue closes (the link has shut down).
    pub async fn run(self, mut inbound: mpsc::Receiver<Inbound>) {
        let tasks = TaskTracker::new();
        tasks.spawn(run_mo_sweeper(
            self.store.clone(),
            self.config.clone(),
            self.shutdown.clone(),
        ));
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        while let Some(Inbound { deliver, ack }) = inbound.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (store, config) = (self.store.clone(), self.config.clone());
            tasks.spawn(async move {
                let stored = if deliver.is_report() {
                    report::handle(&store, &config, &deliver).await
                } else {
                    mo::handle(&store, &config, &deliver).await
                };
                match stored {
                    Ok(()) => ack.confirm(),
                    Err(e) => {
                        tracing::warn!(error = %e, msg_id = %deliver.msg_id, "cannot store a DELIVER; refusing it so the ISMG delivers it again");
                        ack.refuse(submit_result::FLOW_CONTROL);
                    }
                }
                drop(permit);
            });
        }
        tasks.close();
        // The sweeper stops with the shutdown token; give in-flight writes a moment.
        let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    }
}
