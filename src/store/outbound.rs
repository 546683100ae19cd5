//! The ingress side: enqueue messages (with idempotency) and measure the backlog.

use redis::Value;

use super::scripts::ENQUEUE;
use super::{Store, StoreError, now_ms};
use crate::message::OutboundMessage;

/// The result of [`Store::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Added now; carries the answer that was stored for the idempotency id.
    Added(String),
    /// The idempotency id was accepted before; nothing was added. Carries the first answer.
    Duplicate(String),
}

impl Store {
    /// Adds one stream entry per message, marks each `queued` and indexes it for the console,
    /// in one atomic round trip.
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
            .key(self.keys.message_index())
            .arg(self.ttl_ms())
            .arg(answer)
            .arg(messages.len())
            .arg(self.keys.message_index_by_to(""));
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
        let mut conn = self.conn();
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.outbound())
            .query_async(&mut conn)
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
        match info.and_then(|g| g.groups.into_iter().find(|g| g.name == group)) {
            Some(g) => Ok((g.lag.unwrap_or(0) + g.pending) as u64),
            None => {
                let len: u64 = redis::cmd("XLEN")
                    .arg(self.keys.outbound())
                    .query_async(&mut conn)
                    .await?;
                Ok(len)
            }
        }
    }
}
