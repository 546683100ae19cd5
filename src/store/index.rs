//! The console's search indexes: sorted sets scored by time (Unix ms), so a search reads one
//! page of one key instead of scanning a stream or every state hash.
//!
//! * `cmpp:index:msg` — every message id, scored by its outbound entry's time; written where
//!   the state is created (the enqueue script, and the worker's `begin` pipeline for entries
//!   XADDed directly), trimmed by score to `state_ttl` once per worker batch.
//! * `cmpp:index:msg:{to}`, `cmpp:index:reports:{to}`, `cmpp:index:mo:{from}` — per number:
//!   message ids, report entry ids, MO entry ids. Each write renews the key's TTL
//!   (`state_ttl`), so a number nobody writes to expires whole; a busy number is trimmed by
//!   score on one write in [`TRIM_EVERY`] (chosen by the entry's millisecond, no extra state).
//!
//! The score of every member is the millisecond part of its stream entry id, so the same
//! message indexed twice (enqueue, then worker) gets the same score and ZADD changes nothing.
//! Pages are read by rank after a cursor member, so members with equal scores (a batch
//! enqueued within one millisecond) are neither skipped nor repeated.

use std::sync::LazyLock;

use redis::Script;

use super::{Batch, Store, StoreError};

/// One write in this many (by the entry's millisecond) also trims a per-number index.
const TRIM_EVERY: u64 = 16;

/// `index_add(key, ms, member, ttl_ms)`: the per-number index write shared by the scripts
/// (trimming on one write in [`TRIM_EVERY`], like [`Store::index_message`]).
pub(crate) const INDEX_ADD_FN: &str = include_str!("lua/index_add.lua");

/// KEYS[1] index. ARGV[1] cursor member or "", ARGV[2] cursor score, ARGV[3] count.
/// Members after the cursor, newest first, with scores. When the cursor's member is gone
/// (trimmed meanwhile), the page continues below its score.
static PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/page.lua")));

/// Where a page of an index ends: the last member shown and its score. Written as
/// `{score}:{member}` (the member may itself contain colons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCursor {
    pub score: u64,
    pub member: String,
}

impl IndexCursor {
    pub fn parse(text: &str) -> Option<IndexCursor> {
        let (score, member) = text.split_once(':')?;
        let score = score.parse().ok()?;
        (!member.is_empty()).then(|| IndexCursor {
            score,
            member: member.to_owned(),
        })
    }
}

impl std::fmt::Display for IndexCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.score, self.member)
    }
}

/// A stream entry id `ms-seq` as numbers, so ids compare in stream order.
pub(super) fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Store {
    /// Adds the index writes of one outbound message to `pipe` (replies ignored): the recent
    /// index and the recipient's (unless `to` is empty), both scored by the entry's time. An id
    /// already indexed keeps its score (NX): a later entry with the same id (a duplicate,
    /// never sent) does not move the message.
    pub(crate) fn index_message(
        &self,
        pipe: &mut Batch,
        id: &str,
        to: &str,
        stream_id: &str,
        now: u64,
    ) {
        let ms = parse_stream_id(stream_id).map_or(now, |(ms, _)| ms);
        let ttl = self.ttl_ms();
        pipe.cmd("ZADD")
            .arg(self.keys.message_index())
            .arg("NX")
            .arg(ms)
            .arg(id)
            .ignore();
        if to.is_empty() {
            return;
        }
        let by_to = self.keys.message_index_by_to(to);
        pipe.cmd("ZADD")
            .arg(&by_to)
            .arg("NX")
            .arg(ms)
            .arg(id)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&by_to).arg(ttl).ignore();
        if ms % TRIM_EVERY == 0 {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&by_to)
                .arg("-inf")
                .arg(format!("({}", ms.saturating_sub(ttl)))
                .ignore();
        }
    }

    /// Drops index entries older than `state_ttl` from the recent-messages index (their
    /// state has expired).
    pub(crate) fn trim_message_index(&self, pipe: &mut Batch, now: u64) {
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.message_index())
            .arg("-inf")
            .arg(format!("({}", now.saturating_sub(self.ttl_ms())))
            .ignore();
    }

    /// Up to `count` members of `index` after `cursor`, newest first, with their scores.
    /// Members older than `state_ttl` are left out: what they point to has expired.
    pub(crate) async fn index_page(
        &self,
        index: &str,
        cursor: Option<&IndexCursor>,
        count: usize,
    ) -> Result<Vec<IndexCursor>, StoreError> {
        let (member, score) = match cursor {
            Some(c) => (c.member.as_str(), c.score),
            None => ("", 0),
        };
        let flat: Vec<(String, f64)> = PAGE
            .key(index)
            .arg(member)
            .arg(score)
            .arg(count)
            .invoke_async(&mut self.conn())
            .await?;
        let oldest = super::now_ms().saturating_sub(self.ttl_ms());
        Ok(flat
            .into_iter()
            .map(|(member, score)| IndexCursor {
                score: score as u64,
                member,
            })
            .filter(|c| c.score >= oldest)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::redis_server::RedisServer;
    use crate::config::GatewayConfig;
    use crate::store::RedisConn;

    #[test]
    fn cursors_round_trip_with_colons_in_the_member() {
        let c = IndexCursor {
            score: 1_700_000_000_123,
            member: "order:42-1".into(),
        };
        assert_eq!(IndexCursor::parse(&c.to_string()), Some(c));
        assert_eq!(IndexCursor::parse("x:1"), None);
        assert_eq!(IndexCursor::parse("12:"), None);
        assert_eq!(IndexCursor::parse("12"), None);
    }

    async fn store_on(redis: &RedisServer) -> Store {
        let json = serde_json::json!({
            "user": "900001", "password": "888888", "sms_accessno": "1064899104221",
            "cmpp_host": "127.0.0.1", "cmpp_port": 7890, "redis_url": redis.url(),
        });
        let config = GatewayConfig::from_str_with_env("t.json", &json.to_string(), &|_| None)
            .expect("valid test config");
        Store::connect(&config.redis, config.store.clone())
            .await
            .expect("store connects")
    }

    async fn members(conn: &mut RedisConn, key: &str) -> Vec<(String, u64)> {
        let flat: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await
            .unwrap();
        flat.into_iter().map(|(m, s)| (m, s as u64)).collect()
    }

    /// The scripts' `index_add` (called as they call it, with the entry id) and the pipeline's
    /// `index_message`, run on a real redis-server for 2 × TRIM_EVERY consecutive milliseconds:
    /// each key starts with a member just past the TTL and one exactly at it; both paths add the
    /// member, renew the TTL, and drop the expired one on the same writes only (one in
    /// TRIM_EVERY, chosen by the millisecond).
    #[tokio::test]
    async fn the_scripts_index_and_trim_like_the_pipeline() {
        let redis = RedisServer::start();
        let store = store_on(&redis).await;
        let mut conn = store.conn();
        let script = Script::new(&format!(
            "{INDEX_ADD_FN}\nindex_add(KEYS[1], entry_ms(ARGV[1]), ARGV[2], ARGV[3])"
        ));
        let ttl = store.ttl_ms();
        let first = 1_700_000_000_000 - 1_700_000_000_000 % TRIM_EVERY + 5;
        let mut trims = 0;
        for ms in first..first + 2 * TRIM_EVERY {
            let entry = format!("{ms}-0");
            let (to_pipeline, to_script) = (format!("1380{ms}"), format!("1390{ms}"));
            let by_pipeline = store.keys.message_index_by_to(&to_pipeline);
            let by_script = store.keys.message_index_by_to(&to_script);
            for key in [&by_pipeline, &by_script] {
                let () = redis::cmd("ZADD")
                    .arg(key)
                    .arg(ms - ttl - 1)
                    .arg("expired")
                    .arg(ms - ttl)
                    .arg("kept")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            let mut pipe = Batch::new();
            store.index_message(&mut pipe, "new", &to_pipeline, &entry, ms);
            let () = store.query_pipeline(&pipe).await.unwrap();
            let () = script
                .key(&by_script)
                .arg(&entry)
                .arg("new")
                .arg(ttl)
                .invoke_async(&mut conn)
                .await
                .unwrap();

            let pipeline_members = members(&mut conn, &by_pipeline).await;
            let script_members = members(&mut conn, &by_script).await;
            assert_eq!(script_members, pipeline_members, "at {ms}");
            let trimmed = !pipeline_members.iter().any(|(m, _)| m == "expired");
            trims += usize::from(trimmed);
            let mut expected = vec![("kept".to_string(), ms - ttl), ("new".to_string(), ms)];
            if !trimmed {
                expected.insert(0, ("expired".to_string(), ms - ttl - 1));
            }
            assert_eq!(pipeline_members, expected, "at {ms}");
            for key in [&by_pipeline, &by_script] {
                let pttl: i64 = redis::cmd("PTTL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert!(pttl > 0 && pttl as u64 <= ttl, "{key} expires: {pttl}");
            }
        }
        assert_eq!(trims, 2, "one write in {TRIM_EVERY} trims");
    }

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert_eq!(
            parse_stream_id("1700000000000-12"),
            Some((1_700_000_000_000, 12))
        );
        assert!(parse_stream_id("9-0") < parse_stream_id("10-0"));
        assert_eq!(parse_stream_id("garbage"), None);
    }
}
