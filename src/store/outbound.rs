//! The ingress side: enqueue messages (with idempotency) and measure the backlog.

use redis::Value;
use redis::streams::{StreamInfoGroup, StreamInfoGroupsReply, StreamPendingReply};

use super::index::parse_stream_id;
use super::scripts::ENQUEUE;
use super::{Store, StoreError, now_ms};
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

impl Store {
    /// Adds one stream entry per message, marks each `queued` and indexes it for the console,
    /// in one atomic round trip.
    /// With `idempotency`, a repeated id within the state TTL adds nothing and returns the
    /// stored `answer` of the first request. A message id that already has a state (another
    /// request's, or a direct XADD's) adds nothing either: a replay, answered with `answer`.
    pub async fn enqueue(
        &self,
        stream: &str,
        messages: &[OutboundMessage],
        idempotency: Option<&str>,
        answer: &str,
    ) -> Result<Enqueued, StoreError> {
        let idem_key = idempotency
            .map(|id| self.keys.idempotency(id))
            .unwrap_or_default();
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation
            .key(stream)
            .key(idem_key)
            .key(self.keys.message_index())
            .arg(self.ttl_ms())
            .arg(answer)
            .arg(messages.len());
        let now = now_ms();
        for m in messages {
            let fields = m.to_fields();
            invocation
                .key(self.keys.state(&m.id))
                .key(self.keys.message_index_by_to(&m.to))
                .arg(m.queued_at_ms.unwrap_or(now))
                .arg(fields.len());
            for (k, v) in fields {
                invocation.arg(k).arg(v);
            }
        }
        let reply: (i64, String) = invocation.invoke_async(&mut self.conn()).await?;
        Ok(match reply {
            (1, answer) => Enqueued::Added(answer),
            (_, first) => Enqueued::Duplicate(first),
        })
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
