//! The ingress side: enqueue messages (with idempotency) and measure the backlog.

use redis::Value;

use super::scripts::ENQUEUE;
use super::{Store, StoreError, now_ms};
use crate::message::OutboundMessage;

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
    /// The idempotency id was accepted before; nothing was added. Carries the first answer.
    Duplicate(String),
}

impl Store {
    /// Adds one stream entry per message and marks each `queued`, in one atomic round trip.
    /// With `idempotency`, a repeated id within the state TTL adds nothing and returns the
    /// stored `answer` of the first request.
    pub async fn enqueue(
        &self,
        messages: &[OutboundMessage],
        idempotency: Option<&str>,
        answer: &str,
    ) -> Result<Enqueued, StoreError> {
        let idem_key = idempotency
            .map(|id| self.keys.idempotency(id))
            .unwrap_or_default();
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation
            .key(self.keys.outbound())
            .key(idem_key)
            .arg(self.ttl_ms())
            .arg(answer)
            .arg(messages.len());
        let now = now_ms();
        for m in messages {
            let fields = m.to_fields();
            invocation
                .arg(self.keys.state(&m.id))
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
    pub async fn backlog(&self, group: &str) -> Result<u64, StoreError> {
        match self.group_backlog(group).await? {
            Some(g) => Ok(g.lag + g.pending),
            None => {
                let len: u64 = redis::cmd("XLEN")
                    .arg(self.keys.outbound())
                    .query_async(&mut self.conn())
                    .await?;
                Ok(len)
            }
        }
    }

    /// The consumer group's pending and lag on the outbound stream; `None` before the group
    /// (or the stream) exists.
    pub async fn group_backlog(&self, group: &str) -> Result<Option<GroupBacklog>, StoreError> {
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.outbound())
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
        let info: Option<redis::streams::StreamInfoGroupsReply> = match groups {
            Value::Nil => None,
            other => Some(
                redis::from_redis_value(other)
                    .map_err(|e| StoreError::Unexpected(e.to_string()))?,
            ),
        };
        Ok(info
            .and_then(|g| g.groups.into_iter().find(|g| g.name == group))
            .map(|g| GroupBacklog {
                pending: g.pending as u64,
                lag: g.lag.unwrap_or(0) as u64,
            }))
    }
}
