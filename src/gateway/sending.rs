//! One held connection slot's sending and receiving side: the link on it, the worker that
//! drains the channel's stream over it, and the receiver that stores what the ISMG delivers on
//! it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::retry_redis;
use crate::config::{ChannelConfig, GatewayConfig};
use crate::inbound::Receiver;
use crate::metrics::Metrics;
use crate::metrics::link::LinkMetrics;
use crate::session::{Fence, Link, LinkParts};
use crate::store::{Consumer, Lease, Store};
use crate::worker::{Assignment, Worker};

pub(super) struct Sending {
    pub(super) link: Link,
    /// Stops the worker (reading first); a child of the gateway's shutdown.
    worker_shutdown: CancellationToken,
    /// The link outlives the worker: it closes only after the worker's messages are answered.
    link_shutdown: CancellationToken,
    link_task: JoinHandle<()>,
    worker_task: JoinHandle<()>,
    inbound_task: JoinHandle<()>,
}

/// What every slot of the process shares.
pub(super) struct Shared {
    pub(super) config: Arc<GatewayConfig>,
    pub(super) store: Store,
    pub(super) metrics: Arc<Metrics>,
    /// Every channel's outbound stream by name.
    pub(super) routes: Arc<HashMap<String, String>>,
}

impl Sending {
    /// Starts the link on `lease`'s slot (writing only while `fence` is open) and the worker
    /// under the lease's consumer name. `None` when shutdown came before Redis answered.
    pub(super) async fn start(
        shared: &Shared,
        channel: &ChannelConfig,
        lease: &Lease,
        fence: Fence,
        shutdown: &CancellationToken,
    ) -> Option<Sending> {
        let config = &shared.config;
        let mut worker_config = config.worker.clone();
        worker_config.consumer = lease.holder.clone();
        let consumer = retry_redis(shutdown, || {
            Consumer::new(
                &shared.store,
                &config.redis,
                worker_config.clone(),
                channel.stream.clone(),
            )
        })
        .await?
        .counting_msg_id_duplicates(shared.metrics.families.msg_id_duplicates.clone());
        // The receive path gets a connection of its own: each DELIVER the ISMG sends waits for
        // its write, and the ISMG allows only a window of them unanswered, so report writes must
        // not queue behind the worker's batches on a shared connection.
        let inbound_store = retry_redis(shutdown, || {
            Store::connect(&config.redis, config.store.clone())
        })
        .await?;

        let mut link_config = channel.link.clone();
        link_config.fence = Some(fence.clone());
        let slot = lease.slot.to_string();
        let labels = [
            channel.link.sp_id.as_str(),
            channel.name.as_str(),
            slot.as_str(),
        ];
        let link_shutdown = CancellationToken::new();
        let LinkParts {
            link,
            inbound,
            task: link_task,
        } = Link::spawn(
            link_config,
            Some(Arc::new(LinkMetrics::new(
                shared.metrics.clone(),
                labels[0],
                labels[1],
                lease.slot,
                channel.link.window,
            ))),
            link_shutdown.clone(),
        );
        let worker_shutdown = shutdown.child_token();
        let receiver = Receiver::new(
            inbound_store,
            config.store.clone(),
            shared.metrics.clone(),
            labels,
            worker_shutdown.clone(),
        );
        let inbound_task = tokio::spawn(receiver.run(inbound));
        let orphan_idle = (channel.link.response_timeout * channel.link.max_sends)
            .max(config.worker.reclaim_idle);
        let assignment = Assignment {
            channel: channel.name.clone(),
            default: channel.name == config.default_channel().name,
            slots: channel.max_connections,
            message: channel.message.clone(),
            fence,
            routes: shared.routes.clone(),
            orphan_idle,
            consumer_idle: config.worker.consumer_delete_idle,
        };
        let worker = Worker::new(
            link.clone(),
            consumer,
            assignment,
            shared.metrics.clone(),
            worker_shutdown.clone(),
        );
        let worker_task = tokio::spawn(worker.run());
        Some(Sending {
            link,
            worker_shutdown,
            link_shutdown,
            link_task,
            worker_task,
            inbound_task,
        })
    }

    /// The worker stops reading; messages in flight get until `drain` to be answered; after
    /// that the link closes (TERMINATE), hands them back, and their entries stay pending for
    /// whoever holds the slot next to claim.
    pub(super) async fn stop(mut self, drain: Duration) {
        self.worker_shutdown.cancel();
        if tokio::time::timeout(drain, &mut self.worker_task)
            .await
            .is_err()
        {
            tracing::info!(
                "messages still in flight when the drain time ended; they stay pending in the stream"
            );
            self.link_shutdown.cancel();
            let _ = self.worker_task.await;
        }
        self.link_shutdown.cancel();
        let _ = self.link_task.await;
        let _ = self.inbound_task.await;
    }
}
