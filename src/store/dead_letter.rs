//! Dead letters: a message that failed for good gets an entry in the dead-letter stream with the
//! reason and (a bounded copy of) its fields, and its state becomes `failed` or `dead`, in one
//! script. An entry can be anything an application XADDed, so the copy is capped; and if the
//! full letter cannot be written at all, a minimal one (reason, ids, no fields) ends the entry.

use std::sync::LazyLock;

use redis::Script;

use super::outbound_entry::OutboundEntry;
use super::scripts::{STATUS_FN, with_helpers};
use super::state::MessageStatus;
use super::{Batch, Consumer, StoreError, now_ms};
use crate::message::normalize_msisdn;

/// How much of an entry its dead letter copies.
#[derive(Debug, Clone, Copy)]
struct CopyLimits {
    fields: usize,
    /// Of names and values; a value that does not fit is cut.
    bytes: usize,
}

const COPY_LIMITS: CopyLimits = CopyLimits {
    fields: 64,
    bytes: 64 * 1024,
};
/// The dead letter's own fields; an entry's fields of the same names are not copied.
const LETTER_FIELDS: [&str; 6] = [
    "reason",
    "status",
    "stream_id",
    "failed_at",
    "truncated",
    "message_id",
];

/// The message's final state, first of the two steps (`lua/dead_state.lua`).
/// KEYS[1] state key. ARGV[1] status, ARGV[2] TTL ms, ARGV[3] this entry's stream id, then the
/// state's field/value pairs. Returns 1 when the letter is wanted, 0 when the state was decided
/// otherwise.
pub(super) static DEAD_STATE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[STATUS_FN], include_str!("lua/dead_state.lua")));

/// The letter and the entry's acknowledgement, while it is pending (`lua/letter.lua`).
/// KEYS[1] dead-letter stream, KEYS[2] outbound stream. ARGV[1] group, ARGV[2] the entry's
/// stream id, ARGV[3] approximate MAXLEN, then the letter's field/value pairs. Returns 1 when
/// written, 0 when the entry was no longer pending.
pub(super) static LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/letter.lua")));

/// What a dead letter carries of the entry's own fields.
enum Copy<'a> {
    /// The fields, capped.
    Fields(CopyLimits),
    /// None: the letter with the fields could not be written, for this reason.
    Nothing(&'a str),
}

/// The entry's fields a dead letter keeps, in order, within `limits`, a value that does not fit
/// cut at a character boundary. With a note of what was left out when anything was.
fn capped_fields(entry: &OutboundEntry, limits: CopyLimits) -> (Vec<(&str, &str)>, Option<String>) {
    let own: Vec<(&str, &str)> = entry
        .field_pairs()
        .filter(|(k, _)| !LETTER_FIELDS.contains(k))
        .collect();
    let total_bytes: usize = own.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut budget = limits.bytes;
    let mut kept = Vec::new();
    for &(k, v) in own.iter().take(limits.fields) {
        if k.len() > budget {
            break;
        }
        budget -= k.len();
        let cut = char_boundary_at_most(v, budget);
        budget -= cut;
        kept.push((k, &v[..cut]));
    }
    let kept_bytes = limits.bytes - budget;
    let note = (kept.len() < own.len() || kept_bytes < total_bytes).then(|| {
        format!(
            "{} of {} fields, {kept_bytes} of {total_bytes} bytes copied",
            kept.len(),
            own.len()
        )
    });
    (kept, note)
}

/// The largest character boundary of `s` at or below `at`.
fn char_boundary_at_most(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

impl Consumer {
    /// A message that failed for good: its state (`failed` when the ISMG refused it, `dead`
    /// otherwise) and an entry in the dead-letter stream with the reason and the original fields
    /// (capped). When that cannot be written, a minimal letter without the fields is tried at
    /// once: whatever the entry holds, it can end as a dead letter.
    /// A message with an id is also indexed for the console: an entry refused before `begin`
    /// (malformed, invalid) is seen nowhere else.
    pub async fn record_dead(
        &self,
        entry: &OutboundEntry,
        id: Option<&str>,
        status: MessageStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.record_dead_copying(entry, id, status, reason, COPY_LIMITS)
            .await
    }

    async fn record_dead_copying(
        &self,
        entry: &OutboundEntry,
        id: Option<&str>,
        status: MessageStatus,
        reason: &str,
        limits: CopyLimits,
    ) -> Result<(), StoreError> {
        let copy = Copy::Fields(limits);
        match self.write_dead(entry, id, status, reason, copy).await {
            // Redis away or busy: the same letter, fields and all, is tried again later (a
            // timed-out write may even have landed: the letter without fields would be a second).
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::warn!(stream_id = %entry.stream_id, error = %e, "cannot write the dead letter with the entry's fields; writing it without them");
                let why = e.to_string();
                self.write_dead(entry, id, status, reason, Copy::Nothing(&why))
                    .await
            }
            ok => ok,
        }
    }

    /// Two steps, as a Cluster keeps the state and the channel's streams in different slots:
    /// the state first (with the console's index), then the letter with the acknowledgement.
    /// A process that stops between them leaves the entry pending with a final state; whoever
    /// takes the entry again finishes the letter ([`Consumer::resume_dead_letter`]).
    async fn write_dead(
        &self,
        entry: &OutboundEntry,
        id: Option<&str>,
        status: MessageStatus,
        reason: &str,
        copy: Copy<'_>,
    ) -> Result<(), StoreError> {
        let store = &self.store;
        let now_ms = now_ms();
        let now = now_ms.to_string();
        let wanted = match id {
            Some(id) => {
                let to = entry.field("to").map(normalize_msisdn).unwrap_or_default();
                let state: [&str; 12] = [
                    "error",
                    reason,
                    "final_at",
                    &now,
                    "updated_at",
                    &now,
                    "stream_id",
                    &entry.stream_id,
                    "id",
                    id,
                    "to",
                    &to,
                ];
                let mut pipe = Batch::new();
                store.index_message(&mut pipe, id, &to, &entry.stream_id, now_ms);
                pipe.invoke_script(
                    DEAD_STATE
                        .key(store.keys.state(id))
                        .arg(status.as_str())
                        .arg(store.ttl_ms())
                        .arg(&entry.stream_id)
                        .arg(&state[..]),
                );
                let wanted: Vec<i64> = store.query_pipeline(&pipe).await?;
                wanted.first() == Some(&1)
            }
            None => true,
        };
        if !wanted {
            return Ok(());
        }
        let (fields, truncated) = match copy {
            Copy::Fields(limits) => capped_fields(entry, limits),
            Copy::Nothing(why) => (
                Vec::new(),
                Some(format!("no field copied: writing them failed ({why})")),
            ),
        };
        let mut letter = vec![
            ("reason", reason),
            ("status", status.as_str()),
            ("stream_id", &entry.stream_id),
            ("failed_at", &now),
        ];
        if let Some(note) = &truncated {
            letter.push(("truncated", note));
        }
        // The id its state goes by, which an entry without `id` on another channel's stream does
        // not carry (`{channel}:{entry id}`).
        if let Some(id) = id {
            letter.push(("message_id", id));
        }
        let mut pipe = Batch::new();
        pipe.invoke_script(
            LETTER
                .key(store.keys.dead_letters_of(self.stream()))
                .key(self.stream())
                .arg(&self.config().group)
                .arg(&entry.stream_id)
                .arg(store.config().inbound_maxlen)
                .arg(&letter[..])
                .arg(&fields[..]),
        );
        let _: redis::Value = store.query_pipeline(&pipe).await?;
        Ok(())
    }

    /// An entry taken again whose state a dead letter's first step already ended (`dead`, or
    /// `failed` by the ISMG's refusal, never submitted): the holder before stopped before the
    /// letter. Writes it, with the reason the state kept; `false` when the state is not one of
    /// those (nothing done).
    pub async fn resume_dead_letter(
        &self,
        entry: &OutboundEntry,
        id: &str,
    ) -> Result<bool, StoreError> {
        let (status, submitted_at, error): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.store.keys.state(id))
                .arg(&["status", "submitted_at", "error"][..])
                .query_async(&mut self.store.conn())
                .await?;
        let status = match status.as_deref().and_then(MessageStatus::parse) {
            Some(s @ (MessageStatus::Dead | MessageStatus::Failed)) if submitted_at.is_none() => s,
            _ => return Ok(false),
        };
        let reason = error.unwrap_or_else(|| "dead-lettered before the holder stopped".into());
        self.record_dead(entry, Some(id), status, &reason).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::bench::redis_server::RedisServer;
    use crate::store::testing;

    fn entry(stream_id: &str, fields: &[(&str, &str)]) -> OutboundEntry {
        let fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OutboundEntry::new(stream_id, fields)
    }

    async fn hash(
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
    ) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap()
    }

    async fn letters(
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Vec<(String, Vec<(String, String)>)> {
        redis::cmd("XRANGE")
            .arg("{cmpp:mt}:dead")
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .unwrap()
    }

    /// A message already delivered (a late worker failure, say) keeps its state as it was: the
    /// transition ranks `dead` no higher than `delivered`, and `error`/`final_at` go with it.
    #[tokio::test]
    async fn a_dead_letter_never_writes_error_or_final_at_over_a_delivered_message() {
        let redis = RedisServer::start();
        let (_store, consumer) = testing::consumer(&redis).await;
        let mut conn = testing::conn(&redis).await;
        let before: Vec<(&str, &str)> = vec![
            ("id", "m1"),
            ("to", "13800138000"),
            ("status", "delivered"),
            ("final_at", "5"),
        ];
        let () = redis::cmd("HSET")
            .arg("cmpp:msg:{m1}")
            .arg(&before[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        let pending =
            testing::pending(&redis, &consumer, &[("id", "m1"), ("to", "13800138000")]).await;
        consumer
            .record_dead(&pending, Some("m1"), MessageStatus::Dead, "no SUBMIT_RESP")
            .await
            .unwrap();
        let expected: HashMap<String, String> = before
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(hash(&mut conn, "cmpp:msg:{m1}").await, expected);
    }

    /// An entry of 5 000 fields: the copy is capped and says so (the script's `unpack` of all of
    /// them failed, and the worker retried that forever).
    #[tokio::test]
    async fn the_copy_of_a_huge_entry_is_capped_and_marked() {
        let redis = RedisServer::start();
        let (_store, consumer) = testing::consumer(&redis).await;
        let mut conn = testing::conn(&redis).await;
        let names: Vec<String> = (0..5_000).map(|i| format!("f{i}")).collect();
        let long = "长".repeat(30_000);
        let mut fields: Vec<(&str, &str)> = vec![("id", "h1"), ("big", &long)];
        fields.extend(names.iter().map(|n| (n.as_str(), "v")));
        let pending = testing::pending(&redis, &consumer, &fields).await;
        consumer
            .record_dead(&pending, Some("h1"), MessageStatus::Dead, "to: missing")
            .await
            .unwrap();
        let letters = letters(&mut conn).await;
        let letter: HashMap<_, _> = letters[0].1.iter().cloned().collect();
        assert_eq!(letter["reason"], "to: missing");
        // `id` and the long value fill the byte budget (the value cut inside it).
        assert!(
            letter["truncated"].starts_with("2 of 5002 fields, 65536 of "),
            "{}",
            letter["truncated"]
        );
        assert!(letter["big"].len() < long.len() && long.starts_with(&letter["big"]));
        let copied: usize = letters[0].1.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(copied < COPY_LIMITS.bytes + 1_000, "{copied} bytes");
        assert_eq!(hash(&mut conn, "cmpp:msg:{h1}").await["status"], "dead");
    }

    /// A letter that cannot be written with the fields (here: all 5 000 of them, more than a
    /// script can unpack, as before the cap) is written at once without them.
    #[tokio::test]
    async fn a_letter_that_fails_with_its_fields_is_written_without_them() {
        let redis = RedisServer::start();
        let (_store, consumer) = testing::consumer(&redis).await;
        let mut conn = testing::conn(&redis).await;
        let names: Vec<String> = (0..5_000).map(|i| format!("f{i}")).collect();
        let mut fields: Vec<(&str, &str)> = vec![("id", "h2")];
        fields.extend(names.iter().map(|n| (n.as_str(), "v")));
        let uncapped = CopyLimits {
            fields: usize::MAX,
            bytes: usize::MAX,
        };
        let pending = testing::pending(&redis, &consumer, &fields).await;
        consumer
            .record_dead_copying(
                &pending,
                Some("h2"),
                MessageStatus::Dead,
                "to: missing",
                uncapped,
            )
            .await
            .unwrap();
        let letters = letters(&mut conn).await;
        assert_eq!(letters.len(), 1, "one letter, the minimal one");
        let letter: HashMap<_, _> = letters[0].1.iter().cloned().collect();
        assert_eq!(
            (letter["reason"].as_str(), letter["stream_id"].as_str()),
            ("to: missing", pending.stream_id.as_str())
        );
        assert!(
            letter["truncated"].contains("unpack"),
            "{}",
            letter["truncated"]
        );
        assert!(!letter.contains_key("f0"));
        assert_eq!(hash(&mut conn, "cmpp:msg:{h2}").await["status"], "dead");
    }

    #[test]
    fn at_most_64_fields_are_copied() {
        let names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let e = entry("1-0", &fields);
        let (kept, note) = capped_fields(&e, COPY_LIMITS);
        assert_eq!(kept.len(), 64);
        assert_eq!(kept[63], ("f63", "v"));
        assert_eq!(note.unwrap(), "64 of 100 fields, 246 of 390 bytes copied");
    }

    #[test]
    fn small_entries_are_copied_whole() {
        let e = entry("1-0", &[("to", "1"), ("reason", "mine"), ("text", "hi")]);
        let (kept, note) = capped_fields(&e, COPY_LIMITS);
        assert_eq!(kept, [("to", "1"), ("text", "hi")]);
        assert_eq!(note, None);
    }
}
