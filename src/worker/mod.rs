//! The worker: drains the outbound stream over the link. It reads only while the link is up and
//! has room, sends every segment of each message, records Msg_Ids and the state, and only then
//! acknowledges the entry, so a crash leaves it pending for another instance to reclaim.

mod acker;
mod consumer_cleanup;
mod in_flight;
mod long;
mod periodic;
mod persist;
mod route;
mod send;
mod trimmer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MessageConfig;
use crate::message::{OutboundMessage, build_submits, check_message_id};
use crate::metrics::Metrics;
use crate::protocol::Submit;
use crate::session::{Fence, Link};
use crate::store::{
    Beginning, Begun, Consumer, MessageStatus, OutboundEntry, SegmentRecord, StoreError,
};

use acker::Acker;
use in_flight::InFlight;

use persist::{REDIS_RETRY, persist};

/// An entry ready to send: its message, its SUBMITs, and for a long message the segments
/// already on record (a holder that stopped halfway left them), by position; empty otherwise.
struct Ready {
    entry: OutboundEntry,
    message: OutboundMessage,
    submits: Vec<Submit>,
    answered: Vec<Option<SegmentRecord>>,
}

/// What one worker sends for: a channel, on the connection slot it holds a lease on.
pub struct Assignment {
    pub channel: String,
    /// The default channel's stream is `{prefix}:mt`, where an entry without an `id` goes by
    /// its stream id; on another channel's stream that id is qualified by the channel
    /// (`{channel}:{stream id}`): two streams give out the same ids.
    pub default: bool,
    /// K: the channel's slots, whose lease holders are the consumers that are alive.
    pub slots: u32,
    pub message: MessageConfig,
    /// The lease: nothing is read once it is closed.
    pub fence: Fence,
    /// Every channel's outbound stream by name, for entries that name another channel.
    pub routes: Arc<HashMap<String, String>>,
    /// An entry whose holder has no lease any more is claimed once idle this long (T × N: by
    /// then that holder's link has given it up, whatever it was doing).
    pub orphan_idle: Duration,
    /// Consumers without a lease and with nothing pending are deleted once idle this long.
    pub consumer_idle: Duration,
}

pub struct Worker {
    link: Link,
    consumer: Arc<Consumer>,
    assignment: Arc<Assignment>,
    shutdown: CancellationToken,
    /// Messages being sent at once; bounds memory and keeps the link's window full.
    slots: Arc<Semaphore>,
    /// Entries being sent by this process: never dispatched twice, kept owned in Redis.
    in_flight: InFlight,
    metrics: Arc<Metrics>,
}

impl Worker {
    pub fn new(
        link: Link,
        consumer: Consumer,
        assignment: Assignment,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Worker {
        let slots = (link.window_size() * 4).max(consumer.config().batch);
        Worker {
            link,
            consumer: Arc::new(consumer),
            assignment: Arc::new(assignment),
            shutdown,
            slots: Arc::new(Semaphore::new(slots)),
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
        tasks.spawn(consumer_cleanup::run(
            self.consumer.clone(),
            self.assignment.clone(),
            self.shutdown.clone(),
        ));
        let reclaim_every = (self.consumer.config().reclaim_idle / 2).max(Duration::from_secs(1));
        let mut next_reclaim = Instant::now();
        while !self.shutdown.is_cancelled() {
            // Reading pauses while the link is down: nothing would be sent anyway.
            if !self.wait_link_up().await {
                break;
            }
            // A lease that ran out (a stalled process waking up) means the slot may be someone
            // else's: take nothing more.
            if !self.assignment.fence.is_open() {
                tracing::warn!(channel = %self.assignment.channel, "the slot's lease has ended; reading stops");
                break;
            }
            let Some(room) = self.wait_for_room().await else {
                break;
            };
            let count = room.min(self.consumer.config().batch);
            let reclaiming = Instant::now() >= next_reclaim;
            let read = if reclaiming {
                self.claim_orphans(count).await.inspect(|entries| {
                    // Keep claiming while there were as many as asked for; then wait a period.
                    next_reclaim = if entries.len() >= count {
                        Instant::now()
                    } else {
                        Instant::now() + reclaim_every
                    };
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

    /// Entries left by consumers whose lease is gone (a crashed or stalled instance, a slot
    /// given up), idle past the orphan time. A live holder's entries are never taken, however
    /// long they wait (a slow ISMG, a link down). This worker's own entries idle that long are
    /// taken again too: it renews those it is sending, so those are ones it left pending (a
    /// write Redis refused, an acknowledgement given up) and would otherwise wait for a restart.
    async fn claim_orphans(&self, count: usize) -> Result<Vec<OutboundEntry>, StoreError> {
        let a = &self.assignment;
        let live = self
            .consumer
            .store()
            .lease_holders(&a.channel, a.slots)
            .await?;
        let me = &self.consumer.config().consumer;
        let live: Vec<String> = live.into_iter().flatten().filter(|n| n != me).collect();
        self.consumer
            .claim_orphans(&live, a.orphan_idle, true, count)
            .await
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

    /// Parses a batch, dead-letters what cannot be sent (and entries whose id belongs to another
    /// entry), skips what was already sent, and starts one task per remaining message.
    async fn dispatch(
        &self,
        entries: Vec<OutboundEntry>,
        fresh: bool,
        acker: &Acker,
        tasks: &TaskTracker,
    ) {
        let mut ready = Vec::with_capacity(entries.len());
        for entry in entries {
            // Taken again while this process still sends it (its renewals failed for a while):
            // nothing to start, and `begin` would count it as one more holder.
            if !fresh && self.in_flight.contains(&entry.stream_id) {
                continue;
            }
            let id = match message_id(&entry, &self.assignment) {
                Ok(id) => id,
                Err(reason) => {
                    self.end_dead(&entry, None, &reason, acker).await;
                    continue;
                }
            };
            match route::route(&entry, &self.assignment) {
                route::Route::Here => {}
                route::Route::Elsewhere(stream) => {
                    self.forward(entry, &stream, &id.id, acker).await;
                    continue;
                }
                route::Route::Unknown(reason) => {
                    self.end_dead(&entry, id.given.then_some(id.id.as_str()), &reason, acker)
                        .await;
                    continue;
                }
            }
            let prepared = self.prepare(&entry, &id);
            match prepared {
                Ok((message, submits)) => ready.push(Ready {
                    entry,
                    message,
                    submits,
                    answered: Vec::new(),
                }),
                Err((state_id, reason)) => {
                    self.end_dead(&entry, state_id.as_deref(), &reason, acker)
                        .await
                }
            }
        }
        let begin: Vec<_> = ready
            .iter()
            .map(|r| Beginning {
                entry: &r.entry,
                id: &r.message.id,
                to: &r.message.to,
                segments: r.submits.len(),
            })
            .collect();
        let Ok(begun) = persist(&self.shutdown, "taking messages on", || {
            self.consumer.begin(&begin, fresh)
        })
        .await
        else {
            // Left pending: a reclaim tries again, and `max_claims` ends an entry that keeps
            // failing this way.
            return;
        };
        let mut before = Vec::with_capacity(ready.len());
        for (r, begun) in ready.into_iter().zip(begun) {
            match begun {
                Begun::Owned(status) => before.push((r, status)),
                Begun::Duplicate(owner) => {
                    let Ready { entry, message, .. } = r;
                    let reason = format!(
                        "duplicate id: {} belongs to entry {owner}; not sent",
                        message.id
                    );
                    // No id: the state is the other entry's.
                    if self
                        .settle_dead(&entry, None, MessageStatus::Dead, &reason)
                        .await
                    {
                        self.metrics.worker_duplicate();
                        acker.ack(entry.stream_id);
                    }
                }
            }
        }
        let Ok(before) = self.prepare_long(before, fresh).await else {
            return;
        };
        for (ready, status) in before {
            let Ready {
                entry,
                message,
                submits,
                answered,
            } = ready;
            // A reclaim can hand back an entry this process is still sending.
            if !self.in_flight.insert(&entry.stream_id) {
                continue;
            }
            if matches!(status, Some(MessageStatus::Dead | MessageStatus::Failed)) {
                // Ended by a dead letter whose holder stopped before writing the letter (or by
                // reports): the letter is written now if it is missing, then acknowledged.
                self.in_flight.remove(&entry.stream_id);
                let resumed = persist(&self.shutdown, "finishing a dead letter", || {
                    self.consumer.resume_dead_letter(&entry, &message.id)
                })
                .await;
                match resumed {
                    Ok(true) => self.metrics.worker_finished(MessageStatus::Dead),
                    Ok(false) => self.metrics.worker_skipped(),
                    Err(_) => continue,
                }
                acker.ack(entry.stream_id);
                continue;
            }
            if status.is_some_and(MessageStatus::is_past_submission) {
                // Reclaimed after its Msg_Ids were stored: sending again would duplicate it.
                self.metrics.worker_skipped();
                acker.ack(entry.stream_id);
                continue;
            }
            let max_claims = self.consumer.config().max_claims;
            if entry.deliveries > max_claims {
                // Every worker that took it stopped before an outcome: a crash loop is bounded
                // here, across restarts, rather than sending it once more per restart.
                let reason = format!(
                    "claimed {} times (max_claims {max_claims}) without an outcome: each worker holding it stopped; not sent again",
                    entry.deliveries
                );
                self.in_flight.remove(&entry.stream_id);
                self.end_dead(&entry, Some(&message.id), &reason, acker)
                    .await;
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
                job.send(entry, message, submits, answered).await;
                drop(permit);
            });
        }
    }

    /// The message and its SUBMITs, or why it cannot be sent and the id whose state records
    /// that (none for an entry that does not parse and gives no id of its own).
    fn prepare(
        &self,
        entry: &OutboundEntry,
        id: &MessageId,
    ) -> Result<(OutboundMessage, Vec<Submit>), (Option<String>, String)> {
        let mut message = OutboundMessage::from_fields(&entry.stream_id, entry.field_pairs())
            .map_err(|e| {
                (
                    id.given.then(|| id.id.clone()),
                    format!("malformed entry: {e}"),
                )
            })?;
        message.id.clone_from(&id.id);
        message
            .validate(&self.assignment.message)
            .map_err(|e| (Some(message.id.clone()), format!("invalid message: {e}")))?;
        // Reference 0 for now: a long message gets its own once it is taken on.
        let submits = build_submits(&message, &self.assignment.message, 0).map_err(|e| {
            (
                Some(message.id.clone()),
                format!("cannot build SUBMIT: {e}"),
            )
        })?;
        Ok((message, submits))
    }

    /// Moves an entry to the stream of the channel it names, then acknowledges it here.
    async fn forward(&self, entry: OutboundEntry, stream: &str, id: &str, acker: &Acker) {
        let forwarded = persist(&self.shutdown, "forwarding to another channel", || {
            self.consumer.forward(&entry, stream, id)
        })
        .await;
        if forwarded.is_ok() {
            self.metrics.worker_forwarded();
            acker.ack(entry.stream_id);
        }
    }

    /// Dead-letters an entry that cannot be sent and acknowledges it, once the letter is written.
    async fn end_dead(&self, entry: &OutboundEntry, id: Option<&str>, reason: &str, acker: &Acker) {
        tracing::debug!(stream_id = %entry.stream_id, %reason, "outbound entry not sent");
        if self
            .settle_dead(entry, id, MessageStatus::Dead, reason)
            .await
        {
            self.metrics.worker_finished(MessageStatus::Dead);
            acker.ack(entry.stream_id.clone());
        }
    }

    /// Writes the dead letter; `false` when it is not written, and the entry must then stay
    /// pending (an entry with neither a state nor a dead letter is never acknowledged).
    async fn settle_dead(
        &self,
        entry: &OutboundEntry,
        id: Option<&str>,
        status: MessageStatus,
        reason: &str,
    ) -> bool {
        persist(&self.shutdown, "writing a dead letter", || {
            self.consumer.record_dead(entry, id, status, reason)
        })
        .await
        .is_ok()
    }
}

/// The id an entry's message goes by: its `id` field (`given`), else its stream id.
struct MessageId {
    id: String,
    given: bool,
}

/// The entry's message id, or why the entry is refused before anything else is looked at: a
/// field that is not UTF-8, or an `id` that HTTP would not accept either.
fn message_id(entry: &OutboundEntry, assignment: &Assignment) -> Result<MessageId, String> {
    if let Some(what) = &entry.not_utf8 {
        return Err(format!("malformed entry: {what}"));
    }
    // The last non-empty `id`, as `OutboundMessage::from_fields` reads it.
    let given = entry
        .field_pairs()
        .filter(|(k, v)| *k == "id" && !v.is_empty())
        .map(|(_, v)| v)
        .last();
    match given {
        Some(id) => match check_message_id(id) {
            Ok(()) => Ok(MessageId {
                id: id.to_owned(),
                given: true,
            }),
            Err(e) => Err(format!("invalid message: {e}")),
        },
        None if assignment.default => Ok(MessageId {
            id: entry.stream_id.clone(),
            given: false,
        }),
        None => Ok(MessageId {
            id: format!("{}:{}", assignment.channel, entry.stream_id),
            given: false,
        }),
    }
}
