//! The ingress side: enqueue messages (with idempotency) and measure the backlog.

use std::sync::LazyLock;

use redis::streams::{StreamInfoGroup, StreamInfoGroupsReply, StreamPendingReply};
use redis::{Script, Value};

use super::index::parse_stream_id;
use super::{Batch, Store, StoreError, now_ms};
use crate::message::OutboundMessage;

/// Entries one XTRIM call may delete: whole blocks of them, a millisecond or so of Redis time.
const TRIM_CALL_LIMIT: u64 = 100_000;
/// Calls per trim at most (ten million entries), so one trim has an end whatever the stream.
const MAX_TRIM_CALLS: usize = 100;

/// A consumer group's share of the outbound stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBacklog {
    /// Read by a consumer, not yet acknowledged.
    pub pending: u64,
    /// Not yet read by the group.
    pub lag: u64,
}

/// The result of [`Store::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Added now; carries the answer that was stored for the idempotency id.
    Added(String),
    /// The idempotency id was accepted before, or a message id already has a state; nothing
    /// was added. Carries the first answer (or, for an id used elsewhere, this request's).
    Duplicate(String),
}

/// Records a request's messages after their entries are in the stream: their states and the
/// request's idempotency answer (see `lua/accept.lua`). All in the request's slot.
pub(super) static ACCEPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/accept.lua")));

/// The content fields a state keeps (the outbound entry is trimmed once it is sent).
const STATE_FIELDS: [&str; 5] = ["id", "to", "text", "hex", "coding"];

impl Store {
    /// Adds one stream entry per message, records each `queued` with its content and indexes
    /// it for the console; answers only once all of it is in Redis.
    ///
    /// With `idempotency`, a repeated id within the state TTL adds nothing and returns the
    /// stored `answer` of the first request. With `check_first` (the caller chose the ids), a
    /// look before the enqueue also finds a message id that already has a state (another
    /// request's, or a direct XADD's): a replay, answered with `answer`, nothing added.
    ///
    /// Three steps, because a Cluster keeps the stream and the request's keys in different
    /// slots: the look, the XADDs, then the states with the answer. The entries go first: an
    /// entry without a state is what a direct XADD is, and the worker takes it on as one, so a
    /// crash or an error after the XADDs loses nothing; a retry of the request then finds the
    /// states, or sends entries the worker dead-letters as duplicates of the first ones.
    pub async fn enqueue(
        &self,
        stream: &str,
        messages: &[OutboundMessage],
        idempotency: Option<&str>,
        check_first: bool,
        answer: &str,
    ) -> Result<Enqueued, StoreError> {
        // Every request has a key in its messages' slot; only one with `idempotency` uses it.
        let request = idempotency.or_else(|| messages.first().map(|m| m.id.as_str()));
        let idem_key = self
            .keys
            .idempotency(&self.keys.request_of(request.unwrap_or_default()));
        let answered = idempotency.is_some();
        if check_first
            && let Some(found) = self
                .seen_before(answered.then_some(idem_key.as_str()), messages)
                .await?
        {
            return Ok(Enqueued::Duplicate(
                found.unwrap_or_else(|| answer.to_owned()),
            ));
        }
        // Once an entry is XADDed its state must follow, even when the caller stops waiting
        // (an HTTP deadline answers 503 "retry with the same id", and the retry must find the
        // state): the two steps run in a task of their own.
        let store = self.clone();
        let (stream, messages, answer) = (stream.to_owned(), messages.to_vec(), answer.to_owned());
        tokio::spawn(async move {
            store
                .add_and_accept(&stream, &messages, &idem_key, answered, &answer)
                .await
        })
        .await
        .map_err(|e| StoreError::Unexpected(format!("the enqueue task failed: {e}")))?
    }

    /// The XADDs, then the states with the answer (ACCEPT) and the console's indexes.
    async fn add_and_accept(
        &self,
        stream: &str,
        messages: &[OutboundMessage],
        idem_key: &str,
        answered: bool,
        answer: &str,
    ) -> Result<Enqueued, StoreError> {
        let now = now_ms();
        let fields: Vec<Vec<(&'static str, String)>> =
            messages.iter().map(OutboundMessage::to_fields).collect();
        let mut adds = Batch::new();
        for f in &fields {
            adds.cmd("XADD").arg(stream).arg("*").arg(&f[..]);
        }
        let entries: Vec<String> = self.query_pipeline(&adds).await?;

        let mut record = Batch::new();
        let mut accept = ACCEPT.prepare_invoke();
        accept
            .key(idem_key)
            .arg(self.ttl_ms())
            .arg(answer)
            .arg(if answered { "1" } else { "0" })
            .arg(messages.len());
        for ((m, f), entry) in messages.iter().zip(&fields).zip(&entries) {
            let kept: Vec<&(&str, String)> =
                f.iter().filter(|(k, _)| STATE_FIELDS.contains(k)).collect();
            accept
                .key(self.keys.state(&m.id))
                .arg(entry)
                .arg(m.queued_at_ms.unwrap_or(now))
                .arg(kept.len());
            for (k, v) in kept {
                accept.arg(*k).arg(v);
            }
            self.index_message(&mut record, &m.id, &m.to, entry, now);
        }
        record.invoke_script(&accept);
        // The script's reply comes after the index writes' (ignored): the only one left.
        let (accepted, stored): (i64, String) = self
            .query_pipeline::<Vec<(i64, String)>>(&record)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Unexpected("no reply from the accept script".into()))?;
        // 202 means the entry (and, for the console, its state) survives a failover.
        let state = messages.first().map(|m| self.keys.state(&m.id));
        let written: Vec<&str> = std::iter::once(stream).chain(state.as_deref()).collect();
        self.confirm_replicated(&written).await?;
        Ok(if accepted == 1 {
            Enqueued::Added(stored)
        } else {
            Enqueued::Duplicate(stored)
        })
    }

    /// Before a request whose ids the caller chose is enqueued: the stored answer when its
    /// idempotency key was seen (`Some(Some)`), `Some(None)` when one of its message ids
    /// already has a state, `None` when neither.
    async fn seen_before(
        &self,
        idem_key: Option<&str>,
        messages: &[OutboundMessage],
    ) -> Result<Option<Option<String>>, StoreError> {
        let mut look = Batch::new();
        if let Some(key) = idem_key {
            look.cmd("GET").arg(key);
        }
        for m in messages {
            look.cmd("EXISTS").arg(self.keys.state(&m.id));
        }
        let replies: Vec<redis::Value> = self.query_pipeline(&look).await?;
        let mut replies = replies.into_iter();
        if idem_key.is_some() {
            let prior: Option<String> =
                redis::from_redis_value(replies.next().unwrap_or(Value::Nil))
                    .map_err(|e| StoreError::Unexpected(e.to_string()))?;
            if prior.is_some() {
                return Ok(Some(prior));
            }
        }
        let taken = replies.any(|v| matches!(v, Value::Int(1)));
        Ok(taken.then_some(None))
    }

    /// Entries not yet taken by a consumer plus those taken and not acknowledged: the work
    /// waiting for the link. Before the group exists, the stream length.
    pub async fn backlog(&self, stream: &str, group: &str) -> Result<u64, StoreError> {
        match self.group_backlog(stream, group).await? {
            Some(g) => Ok(g.lag + g.pending),
            None => {
                let len: u64 = redis::cmd("XLEN")
                    .arg(stream)
                    .query_async(&mut self.conn())
                    .await?;
                Ok(len)
            }
        }
    }

    /// The consumer group's pending and lag on the outbound stream; `None` before the group
    /// (or the stream) exists.
    pub async fn group_backlog(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<Option<GroupBacklog>, StoreError> {
        Ok(self
            .outbound_groups(stream)
            .await?
            .into_iter()
            .find(|g| g.name == group)
            .map(|g| GroupBacklog {
                pending: g.pending as u64,
                lag: g.lag.unwrap_or(0) as u64,
            }))
    }

    /// Deletes the outbound entries that every consumer group (ours, and any an application
    /// added) has read and acknowledged: the stream would otherwise keep every message ever
    /// sent. Entries pending or not yet read are never touched; without a group, nothing is.
    /// Approximate (`MINID ~`), so Redis frees whole blocks cheaply. Redis removes at most
    /// `LIMIT` entries per call (by default only 100 blocks, which at a thousand messages a
    /// second fell behind for good), so this trims in calls of [`TRIM_CALL_LIMIT`] until
    /// nothing is left below the floor: each call stays short, and all are done in one go.
    /// Returns the entries deleted.
    pub async fn trim_outbound(&self, stream: &str) -> Result<u64, StoreError> {
        let mut floor: Option<(u64, u64)> = None;
        for group in self.outbound_groups(stream).await? {
            let Some((ms, seq)) = parse_stream_id(&group.last_delivered_id) else {
                return Ok(0);
            };
            let mut group_floor = (ms, seq.saturating_add(1));
            if group.pending > 0 {
                let pending: StreamPendingReply = redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(&group.name)
                    .query_async(&mut self.conn())
                    .await?;
                if let StreamPendingReply::Data(data) = pending {
                    match parse_stream_id(&data.start_id) {
                        Some(first) => group_floor = group_floor.min(first),
                        None => return Ok(0),
                    }
                }
            }
            floor = Some(floor.map_or(group_floor, |f| f.min(group_floor)));
        }
        let Some((ms, seq)) = floor else {
            return Ok(0);
        };
        let floor = format!("{ms}-{seq}");
        let mut deleted = 0;
        for _ in 0..MAX_TRIM_CALLS {
            let n: u64 = redis::cmd("XTRIM")
                .arg(stream)
                .arg("MINID")
                .arg("~")
                .arg(&floor)
                .arg("LIMIT")
                .arg(TRIM_CALL_LIMIT)
                .query_async(&mut self.conn())
                .await?;
            deleted += n;
            if n == 0 {
                break;
            }
        }
        Ok(deleted)
    }

    async fn outbound_groups(&self, stream: &str) -> Result<Vec<StreamInfoGroup>, StoreError> {
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut self.conn())
            .await
            // "no such key": nothing was ever enqueued. Connection problems stay errors.
            .or_else(|e| {
                if super::is_connection_problem(&e) {
                    Err(e)
                } else {
                    Ok(Value::Nil)
                }
            })?;
        match groups {
            Value::Nil => Ok(Vec::new()),
            other => redis::from_redis_value::<StreamInfoGroupsReply>(other)
                .map(|reply| reply.groups)
                .map_err(|e| StoreError::Unexpected(e.to_string())),
        }
    }
}
