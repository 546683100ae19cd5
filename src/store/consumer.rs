//! The worker's side of the outbound stream: the consumer group, reading and reclaiming
//! entries, the bookkeeping that follows each message, and acknowledgements.

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use super::outbound_entry::{OutboundEntry, parse_autoclaim_reply, parse_read_reply};
use super::scripts::TRANSITION;
use super::state::MessageStatus;
use super::{Store, StoreError, connect, now_ms};
use crate::config::{RedisConfig, WorkerConfig};

/// A message the worker is about to send: its entry, id, recipient and segment count.
pub struct Beginning<'a> {
    pub entry: &'a OutboundEntry,
    pub id: &'a str,
    pub to: &'a str,
    pub segments: usize,
}

/// What the Msg_Id map stores for each segment, as MessagePack: enough to correlate a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Submitted {
    pub id: String,
    pub segment: u8,
    pub segments: u8,
    pub to: String,
}

/// One segment's SUBMIT_RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord {
    pub msg_id: u64,
    pub submitted_at: u64,
}

pub struct Consumer {
    pub(super) store: Store,
    /// A connection of its own: a blocking XREADGROUP holds a multiplexed connection.
    blocking: ConnectionManager,
    config: WorkerConfig,
    /// Where the next XAUTOCLAIM scan starts.
    claim_cursor: Mutex<String>,
}

impl Consumer {
    pub async fn new(
        store: &Store,
        redis: &RedisConfig,
        config: WorkerConfig,
    ) -> Result<Consumer, StoreError> {
        // The response timeout must outlast BLOCK, or every idle read would fail as a timeout.
        let blocking = connect(redis, config.block + redis.timeout).await?;
        Ok(Consumer {
            store: store.clone(),
            blocking,
            config,
            claim_cursor: Mutex::new("0-0".to_owned()),
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Creates the group if missing, reading from the stream's start so entries added before
    /// the first gateway ran are sent too.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.store.keys.outbound())
            .arg(&self.config.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.store.conn())
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for this consumer, waiting up to the configured BLOCK.
    pub async fn read(&self, count: usize) -> Result<Vec<OutboundEntry>, StoreError> {
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(self.config.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.store.keys.outbound())
            .arg(">")
            .query_async(&mut self.blocking.clone())
            .await?;
        parse_read_reply(&reply)
    }

    /// Entries another consumer took and left unacknowledged for longer than `reclaim_idle`.
    /// The flag is true while the scan has not reached the end of the pending list: call again
    /// soon, or a large crash leftover would take many reclaim periods.
    pub async fn reclaim(&self, count: usize) -> Result<(Vec<OutboundEntry>, bool), StoreError> {
        let mut cursor = self.claim_cursor.lock().await;
        let reply: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(self.store.keys.outbound())
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(self.config.reclaim_idle.as_millis() as u64)
            .arg(cursor.as_str())
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.store.conn())
            .await?;
        let (next, entries) = parse_autoclaim_reply(&reply)?;
        *cursor = next;
        let more = cursor.as_str() != "0-0";
        Ok((entries, more))
    }

    /// Claims each message id for its entry, so that an id is only ever sent (and its state only
    /// ever written) for one entry: the first to claim it owns it, recorded as the state's
    /// `stream_id` (which the enqueue script already wrote for entries from HTTP). `claims` are
    /// (message id, stream id) pairs; the answer gives, for each, the entry that owns the id
    /// when that is another one (a duplicate, not to be sent), in one round trip. Plain
    /// commands: every entry with an `id` field pays this.
    pub async fn claim_ids(
        &self,
        claims: &[(&str, &str)],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ttl = self.store.ttl_ms();
        let mut pipe = redis::pipe();
        for (id, stream_id) in claims {
            let key = self.store.keys.state(id);
            pipe.cmd("HSETNX")
                .arg(&key)
                .arg("stream_id")
                .arg(stream_id)
                .ignore();
            // A state created by the claim expires like any other (`begin` fills it next).
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).arg("NX").ignore();
            pipe.cmd("HGET").arg(&key).arg("stream_id");
        }
        let owners: Vec<Option<String>> = self.store.query_pipeline(&pipe).await?;
        Ok(claims
            .iter()
            .zip(owners)
            .map(|((_, stream_id), owner)| owner.filter(|o| o != stream_id))
            .collect())
    }

    /// Marks each message `submitting` (and indexes it for the console) and returns its status
    /// before, in one round trip.
    /// A reclaimed entry may already be past submission (acknowledged then instead of sent
    /// again), so its status is read and moved by the ranked transition script. A `fresh` entry
    /// (read with ">", never given to a consumer before) cannot be: a plain HSET does, at a
    /// fraction of the script's cost on Redis.
    pub async fn begin(
        &self,
        messages: &[Beginning<'_>],
        fresh: bool,
    ) -> Result<Vec<Option<MessageStatus>>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = now_ms();
        let now = now_ms.to_string();
        let ttl = self.store.ttl_ms();
        let mut pipe = redis::pipe();
        // Entries XADDed directly never passed the enqueue script: index them here (for the
        // others the same ZADDs change nothing), in the same round trip.
        self.store.trim_message_index(&mut pipe, now_ms);
        for m in messages {
            let (id, to, stream_id, segments) =
                (m.id, m.to, m.entry.stream_id.as_str(), m.segments);
            self.store
                .index_message(&mut pipe, id, to, stream_id, now_ms);
            let key = self.store.keys.state(id);
            // The content too, for entries XADDed directly (the enqueue script stored it for
            // the others): the console shows it after the entry is trimmed.
            let mut fields = vec![
                ("id", id),
                ("to", to),
                ("stream_id", stream_id),
                ("updated_at", now.as_str()),
            ];
            fields.extend(m.entry.content_fields());
            if fresh {
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("status")
                    .arg("submitting")
                    .arg("segments")
                    .arg(segments)
                    .arg(&fields[..])
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            } else {
                pipe.invoke_script(
                    TRANSITION
                        .key(key)
                        .arg("submitting")
                        .arg(ttl)
                        .arg("segments")
                        .arg(segments)
                        .arg(&fields[..]),
                );
            }
        }
        if fresh {
            let () = self.store.query_pipeline(&pipe).await?;
            return Ok(vec![None; messages.len()]);
        }
        let before: Vec<Option<String>> = self.store.query_pipeline(&pipe).await?;
        Ok(before
            .iter()
            .map(|s| s.as_deref().and_then(MessageStatus::parse))
            .collect())
    }

    /// Every segment has its Msg_Id: each Msg_Id maps back to the message, and the state holds
    /// the segments and `submitted_at`, which is what makes it `submitted` (a status that
    /// ranks higher, written by a report that raced ahead, is left as it is). Plain commands,
    /// no script: this runs once per message at full rate.
    pub async fn record_submitted(
        &self,
        id: &str,
        to: &str,
        segments: &[SegmentRecord],
    ) -> Result<(), StoreError> {
        let ttl = self.store.ttl_ms();
        let now = now_ms();
        let total = segments.len();
        let state = self.store.keys.state(id);
        let mut pipe = redis::pipe();
        let mut fields: Vec<(String, String)> = Vec::with_capacity(3 + 3 * total);
        fields.push(("segments".into(), total.to_string()));
        for (i, s) in segments.iter().enumerate() {
            let n = i + 1;
            fields.push((format!("s{n}_msg_id"), s.msg_id.to_string()));
            fields.push((format!("s{n}_result"), "0".into()));
            fields.push((format!("s{n}_submitted_at"), s.submitted_at.to_string()));
            let record = Submitted {
                id: id.to_owned(),
                segment: n as u8,
                segments: total as u8,
                to: to.to_owned(),
            };
            let packed =
                rmp_serde::to_vec(&record).map_err(|e| StoreError::Unexpected(e.to_string()))?;
            pipe.cmd("SET")
                .arg(self.store.keys.msg_id(s.msg_id))
                .arg(packed)
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        fields.push(("submitted_at".into(), now.to_string()));
        fields.push(("updated_at".into(), now.to_string()));
        // The state's TTL was set by `begin` a moment ago (HSET keeps it).
        pipe.cmd("HSET").arg(&state).arg(&fields[..]).ignore();
        let () = self.store.query_pipeline(&pipe).await?;
        Ok(())
    }

    /// Resets the idle time of entries this consumer is still working on, so no other instance
    /// reclaims a message that is only waiting for its SUBMIT_RESP or for the link to return.
    pub async fn touch(&self, stream_ids: &[String]) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(self.store.keys.outbound())
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(0)
            .arg(stream_ids)
            .arg("JUSTID")
            .query_async(&mut self.store.conn())
            .await?;
        Ok(())
    }

    /// See [`Store::trim_outbound`].
    pub async fn trim_acknowledged(&self) -> Result<u64, StoreError> {
        self.store.trim_outbound().await
    }

    pub async fn ack(&self, stream_ids: &[String]) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let _: u64 = redis::cmd("XACK")
            .arg(self.store.keys.outbound())
            .arg(&self.config.group)
            .arg(stream_ids)
            .query_async(&mut self.store.conn())
            .await?;
        Ok(())
    }
}
