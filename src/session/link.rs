//! The handle the rest of the gateway uses: submit a segment, watch the state, read the counters.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::LinkConfig;
use super::connection::{Events, Shared};
use super::error::SubmitError;
use super::events::{LinkObserver, LinkState};
use super::inbound::Inbound;
use super::pacer::Pacer;
use super::stats::LinkStats;
use super::task::{self, LinkStatus};
use super::window::{Pending, SequenceIds, SubmitAccepted};
use crate::protocol::{Pdu, Submit};

/// A running link. Cheap to clone; every clone submits through the same connection.
#[derive(Clone)]
pub struct Link {
    commands: mpsc::Sender<Pending>,
    /// W permits: a submit holds one from the moment it is queued until it is answered.
    window: Arc<Semaphore>,
    window_size: usize,
    status: watch::Receiver<LinkStatus>,
    stats: Arc<LinkStats>,
    shutdown: CancellationToken,
}

/// What [`Link::spawn`] returns besides the handle.
pub struct LinkParts {
    pub link: Link,
    /// Received DELIVERs; answer each through its ack.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Ends when the link has closed (after [`Link::close`] or the shutdown token).
    pub task: JoinHandle<()>,
}

impl Link {
    /// Starts the link's task. Cancelling `shutdown` (or calling [`Link::close`]) closes it
    /// gracefully: no new submits, in-flight ones answered or handed back, TERMINATE.
    pub fn spawn(
        config: LinkConfig,
        observer: Option<Arc<dyn LinkObserver>>,
        shutdown: CancellationToken,
    ) -> LinkParts {
        let window_size = config.window.max(1);
        let (commands_tx, commands_rx) = mpsc::channel(window_size);
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound_rx) = mpsc::channel(config.deliver_queue.max(1));
        let (status_tx, status_rx) =
            watch::channel(LinkStatus::new(LinkState::Connecting, "starting"));
        let stats = Arc::new(LinkStats::default());
        let window = Arc::new(Semaphore::new(window_size));
        let shared = Shared {
            pacer: Pacer::new(config.rate, Instant::now()),
            config: Arc::new(config),
            commands: commands_rx,
            acks_rx,
            acks_tx,
            inbound: inbound_tx,
            events: Events {
                stats: stats.clone(),
                observer,
            },
            shutdown: shutdown.clone(),
            sequence: SequenceIds::default(),
            connection_id: 0,
            lost: Vec::new(),
        };
        let closing_window = window.clone();
        let task = tokio::spawn(async move {
            task::run(shared, status_tx).await;
            // Wake every submit still waiting for a slot: the link will not take it.
            closing_window.close();
        });
        LinkParts {
            link: Link {
                commands: commands_tx,
                window,
                window_size,
                status: status_rx,
                stats,
                shutdown,
            },
            inbound: inbound_rx,
            task,
        }
    }

    /// Submits one segment and waits for its outcome. Waits for a window slot first, and while
    /// the link is down the submit waits queued for the next connection.
    pub async fn submit(&self, submit: Submit) -> Result<SubmitAccepted, SubmitError> {
        if self.shutdown.is_cancelled() {
            return Err(SubmitError::Closed);
        }
        let permit = self
            .window
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SubmitError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending::new(Pdu::Submit(submit), reply, permit);
        self.commands
            .send(pending)
            .await
            .map_err(|_| SubmitError::Closed)?;
        answer.await.unwrap_or(Err(SubmitError::Closed))
    }

    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    /// Waits until the link is up (or closed, which returns `false`).
    pub async fn wait_up(&self) -> bool {
        let mut rx = self.status.clone();
        let Ok(status) = rx
            .wait_for(|s| matches!(s.state, LinkState::Up | LinkState::Closed))
            .await
        else {
            return false;
        };
        status.state == LinkState::Up
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// Window slots free right now.
    pub fn window_available(&self) -> usize {
        self.window.available_permits()
    }

    /// Starts a graceful close; await [`LinkParts::task`] to know when it is done.
    pub fn close(&self) {
        self.shutdown.cancel();
    }
}
