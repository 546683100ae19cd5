//! The worker's side of the outbound stream: the consumer group, reading and reclaiming
//! entries, the bookkeeping that follows each message, and acknowledgements.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntCounter;
use redis::Script;
use redis::streams::StreamPendingCountReply;

use super::outbound_entry::{OutboundEntry, parse_read_reply};
use super::{Batch, RedisConn, Store, StoreError, connect, now_ms};
use crate::config::{RedisConfig, WorkerConfig};

/// Renews the entries still pending at this consumer, and only those: an entry another
/// consumer reclaimed meanwhile stays with it. XCLAIM JUSTID leaves the delivery count as it is.
/// KEYS[1] outbound stream. ARGV[1] group, ARGV[2] this consumer, ARGV[3..] entry ids.
/// Returns the ids not renewed: pending elsewhere, acknowledged, or deleted from the stream.
static TOUCH_OWNED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/touch_owned.lua")));

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

/// The Msg_Id map's value for segment `segment` of `segments` of message `id`.
pub(super) fn packed_record(
    id: &str,
    to: &str,
    segment: usize,
    segments: usize,
) -> Result<Vec<u8>, StoreError> {
    let record = Submitted {
        id: id.to_owned(),
        segment: segment as u8,
        segments: segments as u8,
        to: to.to_owned(),
    };
    rmp_serde::to_vec(&record).map_err(|e| StoreError::Unexpected(e.to_string()))
}

pub struct Consumer {
    pub(super) store: Store,
    /// The channel's outbound stream this consumer reads.
    stream: String,
    /// A connection of its own: a blocking XREADGROUP holds a multiplexed connection.
    blocking: RedisConn,
    config: WorkerConfig,
    /// Counts Msg_Ids the ISMG gave that another message already holds.
    msg_id_duplicates: Option<IntCounter>,
    /// Such a repeat is logged at warn once (a peer that repeats one does it for every submit).
    msg_id_duplicate_logged: AtomicBool,
}

impl Consumer {
    pub async fn new(
        store: &Store,
        redis: &RedisConfig,
        config: WorkerConfig,
        stream: String,
    ) -> Result<Consumer, StoreError> {
        // The response timeout must outlast BLOCK, or every idle read would fail as a timeout.
        let blocking = connect(redis, config.block + redis.timeout).await?;
        Ok(Consumer {
            store: store.clone(),
            stream,
            blocking,
            config,
            msg_id_duplicates: None,
            msg_id_duplicate_logged: AtomicBool::new(false),
        })
    }

    /// Counts repeated Msg_Ids (see [`Consumer::record_submitted`]) in `counter`.
    pub fn counting_msg_id_duplicates(mut self, counter: IntCounter) -> Consumer {
        self.msg_id_duplicates = Some(counter);
        self
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The store this consumer writes through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The outbound stream this consumer reads.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Creates the group if missing, reading from the stream's start so entries added before
    /// the first gateway ran are sent too.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
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
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.blocking.clone())
            .await?;
        parse_read_reply(&reply)
    }

    /// Sets each claimed entry's delivery count from the group's pending list (XAUTOCLAIM does
    /// not return it): one XPENDING per entry, exact whatever else is pending, in one pipeline.
    pub(super) async fn count_deliveries(
        &self,
        entries: &mut [OutboundEntry],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = Batch::new();
        for entry in entries.iter() {
            pipe.cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.config.group)
                .arg(&entry.stream_id)
                .arg(&entry.stream_id)
                .arg(1);
        }
        let replies: Vec<StreamPendingCountReply> = self.store.query_pipeline(&pipe).await?;
        for (entry, reply) in entries.iter_mut().zip(replies) {
            if let Some(p) = reply.ids.first() {
                entry.deliveries = p.times_delivered as u64;
            }
        }
        Ok(())
    }

    /// Every segment has its Msg_Id: each Msg_Id maps back to the message, and the state holds
    /// the segments and `submitted_at`, which is what makes it `submitted` (a status that
    /// ranks higher, written by a report that raced ahead, is left as it is). Plain commands,
    /// no script: this runs once per message at full rate.
    ///
    /// A Msg_Id is mapped only if it is not mapped yet (`SET NX GET`, same round trip): a peer
    /// that repeats Msg_Ids must not move the reports of the message that got one first. Reports
    /// cannot tell such messages apart, so every report under that Msg_Id stays with the first;
    /// the later message keeps the Msg_Id in its state, names the holder in
    /// `s{n}_msg_id_taken_by`, and stays `submitted`. Each repeat is counted.
    ///
    /// The entry's content (`text`, or `hex` and `coding`) is written here too: `begin` could
    /// not write it to a state it had not yet found to be this entry's own.
    ///
    /// `segments` has one place per segment of the message, `None` for one the ISMG did not
    /// accept: each accepted one is recorded under its own position, so its Msg_Id maps to the
    /// segment it is (as `record_segment` mapped it already for a long message).
    pub async fn record_submitted(
        &self,
        id: &str,
        to: &str,
        entry: &OutboundEntry,
        segments: &[Option<SegmentRecord>],
    ) -> Result<(), StoreError> {
        let ttl = self.store.ttl_ms();
        let now = now_ms();
        let total = segments.len();
        let accepted: Vec<(usize, &SegmentRecord)> = segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i + 1, s)))
            .collect();
        let state = self.store.keys.state(id);
        let mut pipe = Batch::new();
        let mut fields: Vec<(String, String)> = Vec::with_capacity(3 + 3 * total);
        let mut records = Vec::with_capacity(total);
        fields.push(("segments".into(), total.to_string()));
        for &(n, s) in &accepted {
            fields.push((format!("s{n}_msg_id"), s.msg_id.to_string()));
            fields.push((format!("s{n}_result"), "0".into()));
            fields.push((format!("s{n}_submitted_at"), s.submitted_at.to_string()));
            let packed = packed_record(id, to, n, total)?;
            pipe.cmd("SET")
                .arg(self.store.keys.msg_id(s.msg_id))
                .arg(&packed)
                .arg("PX")
                .arg(ttl)
                .arg("NX")
                .arg("GET");
            records.push(packed);
        }
        fields.push(("submitted_at".into(), now.to_string()));
        fields.push(("updated_at".into(), now.to_string()));
        fields.extend(
            entry
                .content_fields()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        // The state's TTL was set by `begin` a moment ago (HSET keeps it).
        pipe.cmd("HSET").arg(&state).arg(&fields[..]).ignore();
        let before: Vec<Option<Vec<u8>>> = self.store.query_pipeline(&pipe).await?;
        // The same record is this message recorded again (a retry after an error): no repeat.
        let taken: Vec<(usize, u64, String)> = before
            .iter()
            .zip(&records)
            .zip(&accepted)
            .filter_map(|((before, mine), &(n, s))| {
                let before = before.as_ref().filter(|b| *b != mine)?;
                let holder = rmp_serde::from_slice::<Submitted>(before)
                    .map(|h| h.id)
                    .unwrap_or_default();
                Some((n, s.msg_id, holder))
            })
            .collect();
        if !taken.is_empty() {
            self.note_taken_msg_ids(id, &state, &taken).await?;
        }
        Ok(())
    }

    /// Segments `(n, Msg_Id, holder)` whose Msg_Id another message holds: named in the state,
    /// counted, and logged at warn the first time only.
    async fn note_taken_msg_ids(
        &self,
        id: &str,
        state: &str,
        taken: &[(usize, u64, String)],
    ) -> Result<(), StoreError> {
        let fields: Vec<(String, &str)> = taken
            .iter()
            .map(|(n, _, holder)| (format!("s{n}_msg_id_taken_by"), holder.as_str()))
            .collect();
        let _: redis::Value = redis::cmd("HSET")
            .arg(state)
            .arg(&fields[..])
            .query_async(&mut self.store.conn())
            .await?;
        if let Some(counter) = &self.msg_id_duplicates {
            counter.inc_by(taken.len() as u64);
        }
        for (_, msg_id, holder) in taken {
            if self.msg_id_duplicate_logged.swap(true, Ordering::Relaxed) {
                tracing::debug!(%msg_id, %id, %holder, "Msg_Id repeated by the ISMG");
            } else {
                tracing::warn!(%msg_id, %id, %holder, "the ISMG gave a Msg_Id that another message holds: its reports stay with that message (logged once; every repeat counts in cmpp_msg_id_duplicates_total)");
            }
        }
        Ok(())
    }

    /// Resets the idle time of the entries this consumer still owns, so no other instance
    /// reclaims a message that is only waiting for its SUBMIT_RESP or for the link to return.
    /// Returns the ids another consumer holds now (this one was too slow to renew, or its lease
    /// is gone): the new owner sends them. An entry someone else holds is never taken back, or
    /// both would send it; one acknowledged meanwhile is neither renewed nor returned.
    pub async fn touch(&self, stream_ids: &[String]) -> Result<Vec<String>, StoreError> {
        if stream_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(TOUCH_OWNED
            .key(self.stream())
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(stream_ids)
            .invoke_async(&mut self.store.conn())
            .await?)
    }

    /// See [`Store::trim_outbound`].
    pub async fn trim_acknowledged(&self) -> Result<u64, StoreError> {
        self.store.trim_outbound(&self.stream).await
    }

    /// Acknowledges entries whose outcome is recorded. With `redis_wait_replicas`, only once
    /// replicas hold that record: an entry acknowledged on a primary that then fails over
    /// would be gone from the group while its state and Msg_Ids were never replicated.
    pub async fn ack(&self, stream_ids: &[String]) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        self.store.confirm_replicated(&[]).await?;
        let _: u64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.config.group)
            .arg(stream_ids)
            .query_async(&mut self.store.conn())
            .await?;
        Ok(())
    }
}
