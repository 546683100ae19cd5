//! The worker: drains the outbound stream over the link. It reads only while the link is up and
//! has room, sends every segment of each message, records Msg_Ids and the state, and only then
//! acknowledges the entry, so a crash leaves it pending for another instance to reclaim.

mod acker;
mod in_flight;
mod send;
mod trimmer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MessageConfig;
use crate::message::{OutboundMessage, build_submits};
use crate::metrics::Metrics;
use crate::session::Link;
use crate::store::{Beginning, Consumer, MessageStatus, OutboundEntry, StoreError};

use acker::Acker;
use in_flight::InFlight;

/// How long to wait before trying Redis again after an error.
const REDIS_RETRY: Duration = Duration::from_millis(500);

pub struct Worker {
    link: Link,
    consumer: Arc<Consumer>,
    message: Arc<MessageConfig>,
    shutdown: CancellationToken,
    /// Messages being sent at once; bounds memory and keeps the link's window full.
    slots: Arc<Semaphore>,
    /// Concatenation reference for the next long message.
    reference: AtomicU16,
    /// Entries being sent by this process: never dispatched twice, kept owned in Redis.
    in_flight: InFlight,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        link: Link,
        consumer: Consumer,
        message: MessageConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Worker {
        let slots = (link.window_size() * 4).max(consumer.config().batch);
        Worker {
            link,
            consumer: Arc::new(consumer),
            message: Arc::new(message),
            shutdown,
            slots: Arc::new(Semaphore::new(slots)),
            reference: AtomicU16::new(fastrand::u16(..)),
            in_flight: InFlight::default(),
            metrics,
        }
    }

    /// Runs until shutdown, then waits for messages already being sent.
    pub async fn run(self) {
        let tasks = TaskTracker::new();
        let acker = Acker::spawn(self.consumer.clone(), self.in_flight.clone(), &tasks);
        self.in_flight
            .spawn_keeper(self.consumer.clone(), self.shutdown.clone(), &tasks);
        tasks.spawn(trimmer::run(self.consumer.clone(), self.shutdown.clone()));
        self.wait_for_group().await;
        let reclaim_every = (self.consumer.config().reclaim_idle / 2).max(Duration::from_secs(1));
        let mut next_reclaim = Instant::now();
        while !self.shutdown.is_cancelled() {
            // Reading pauses while the link is down: nothing would be sent anyway.
            if !self.wait_link_up().await {
                break;
            }
            let Some(room) = self.wait_for_room().await else {
                break;
            };
            let count = room.min(self.consumer.config().batch);
            let reclaiming = Instant::now() >= next_reclaim;
            let read = if reclaiming {
                self.consumer.reclaim(count).await.map(|(entries, more)| {
                    // Keep scanning while the pending list has more; then wait a period.
                    next_reclaim = if more {
                        Instant::now()
                    } else {
                        Instant::now() + reclaim_every
                    };
                    entries
                })
            } else {
                tokio::select! {
                    read = self.consumer.read(count) => read,
                    () = self.shutdown.cancelled() => break,
                }
            };
            match read {
                // Entries read with ">" were never given to any consumer: nothing can have sent
                // them yet. Only reclaimed ones need their state looked at first.
                Ok(entries) => self.dispatch(entries, !reclaiming, &acker, &tasks).await,
                Err(e) if e.is_missing_group() => {
                    tracing::warn!(
                        "the consumer group is gone (Redis restarted empty?); creating it again"
                    );
                    self.wait_for_group().await;
                }
                Err(e) => self.redis_trouble("reading the outbound stream", &e).await,
            }
        }
        // The acker ends once the message tasks, holding its other clones, are done.
        drop(acker);
        tasks.close();
        tasks.wait().await;
    }

    async fn wait_for_group(&self) {
        while !self.shutdown.is_cancelled() {
            match self.consumer.ensure_group().await {
                Ok(()) => return,
                Err(e) => self.redis_trouble("creating the consumer group", &e).await,
            }
        }
    }

    async fn wait_link_up(&self) -> bool {
        tokio::select! {
            up = self.link.wait_up() => up,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Free message slots, waiting for one when all are taken.
    async fn wait_for_room(&self) -> Option<usize> {
        if self.slots.available_permits() == 0 {
            tokio::select! {
                permit = self.slots.acquire() => drop(permit.ok()?),
                () = self.shutdown.cancelled() => return None,
            }
        }
        Some(self.slots.available_permits().max(1))
    }

    async fn redis_trouble(&self, doing: &str, e: &StoreError) {
        tracing::warn!(error = %e, "redis trouble while {doing}; retrying");
        tokio::select! {
            () = tokio::time::sleep(REDIS_RETRY) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Parses a batch, dead-letters what cannot be sent, skips what was already sent, and starts
    /// one task per remaining message.
    async fn dispatch(
        &self,
        entries: Vec<OutboundEntry>,
        fresh: bool,
        acker: &Acker,
        tasks: &TaskTracker,
    ) {
        let mut ready = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.prepare(&entry) {
                Ok((message, submits)) => ready.push((entry, message, submits)),
                Err((id, reason)) => {
                    tracing::debug!(stream_id = %entry.stream_id, %reason, "malformed outbound entry");
                    self.settle_dead(&entry, id.as_deref(), MessageStatus::Dead, &reason)
                        .await;
                    self.metrics.worker_finished(MessageStatus::Dead);
                    acker.ack(entry.stream_id);
                }
            }
        }
        let begin: Vec<_> = ready
            .iter()
            .map(|(entry, m, s)| Beginning {
                entry,
                id: &m.id,
                to: &m.to,
                segments: s.len(),
            })
            .collect();
        let before = loop {
            match self.consumer.begin(&begin, fresh).await {
                Ok(before) => break before,
                Err(e) if !self.shutdown.is_cancelled() => {
                    self.redis_trouble("marking messages submitting", &e).await
                }
                // Left pending: another start reclaims them.
                Err(_) => return,
            }
        };
        for ((entry, message, submits), status) in ready.into_iter().zip(before) {
            // A reclaim can hand back an entry this process is still sending.
            if !self.in_flight.insert(&entry.stream_id) {
                continue;
            }
            if status.is_some_and(MessageStatus::is_past_submission) {
                // Reclaimed after its Msg_Ids were stored: sending again would duplicate it.
                self.metrics.worker_skipped();
                acker.ack(entry.stream_id);
                continue;
            }
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let job = send::Job {
                link: self.link.clone(),
                consumer: self.consumer.clone(),
                shutdown: self.shutdown.clone(),
                acker: acker.clone(),
                in_flight: self.in_flight.clone(),
                metrics: self.metrics.clone(),
            };
            tasks.spawn(async move {
                job.send(entry, message, submits).await;
                drop(permit);
            });
        }
    }

    fn prepare(
        &self,
        entry: &OutboundEntry,
    ) -> Result<(OutboundMessage, Vec<crate::protocol::Submit>), (Option<String>, String)> {
        let mut message = OutboundMessage::from_fields(&entry.stream_id, entry.field_pairs())
            .map_err(|e| {
                let id = entry
                    .fields
                    .iter()
                    .find(|(k, _)| k == "id")
                    .map(|(_, v)| v.clone());
                (id, format!("malformed entry: {e}"))
            })?;
        message
            .validate(&self.message)
            .map_err(|e| (Some(message.id.clone()), format!("invalid message: {e}")))?;
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        let submits = build_submits(&message, &self.message, reference).map_err(|e| {
            (
                Some(message.id.clone()),
                format!("cannot build SUBMIT: {e}"),
            )
        })?;
        Ok((message, submits))
    }

    async fn settle_dead(
        &self,
        entry: &OutboundEntry,
        id: Option<&str>,
        status: MessageStatus,
        reason: &str,
    ) {
        while let Err(e) = self.consumer.record_dead(entry, id, status, reason).await {
            if self.shutdown.is_cancelled() {
                return;
            }
            self.redis_trouble("writing a dead letter", &e).await;
        }
    }
}
