//! The Lua scripts of `src/store/lua/`, each run on its own against a real redis-server with the
//! edge cases it must get right, through the one `Store`/`Consumer` method that invokes it (the
//! script statics stay private): TRANSITION through `Consumer::begin` of a reclaimed entry,
//! ACCEPT through `Store::enqueue`, DEAD_STATE and LETTER through `Consumer::record_dead`.
//! States are set up with plain commands. The lease scripts have theirs in `leases.rs`, the
//! report scripts theirs in `report_scripts.rs`.

use std::collections::HashMap;

use cmpp_gateway::config::GatewayConfig;
use cmpp_gateway::message::OutboundMessage;
use cmpp_gateway::store::{
    Beginning, Begun, Consumer, Enqueued, MessageStatus, OutboundEntry, Store,
};
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::common::redis::{RedisServer, connect};

const TO: &str = "13800138000";
/// The millisecond of the entries the tests begin or dead-letter: the n-th is `{ENTRY_MS}-{n}`.
const ENTRY_MS: u64 = 1_700_000_000_000;

struct Rig {
    store: Store,
    consumer: Consumer,
    conn: MultiplexedConnection,
    /// Entries XADDed so far: the next one is `{ENTRY_MS}-{entries}`.
    entries: u64,
    // Last: the server stops after the connections are dropped.
    _redis: RedisServer,
}

async fn rig() -> Rig {
    let redis = RedisServer::start();
    let config = GatewayConfig::from_str_with_env(
        "scripts.json",
        &json!({
            "user": "900001", "password": "x", "sms_accessno": "10690",
            "cmpp_host": "127.0.0.1", "cmpp_port": 7890,
            "redis_url": redis.url(), "consumer_name": "scripts",
        })
        .to_string(),
        &|_| None,
    )
    .expect("valid test config");
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects");
    let consumer = Consumer::new(
        &store,
        &config.redis,
        config.worker.clone(),
        config.default_channel().stream.clone(),
    )
    .await
    .expect("consumer connects");
    consumer.ensure_group().await.expect("group created");
    let conn = connect(&redis).await;
    Rig {
        store,
        consumer,
        conn,
        entries: 0,
        _redis: redis,
    }
}

impl Rig {
    async fn hset(&mut self, key: &str, fields: &[(&str, &str)]) {
        let () = redis::cmd("HSET")
            .arg(key)
            .arg(fields)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }

    async fn hash(&mut self, key: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    async fn len(&mut self, command: &str, key: &str) -> u64 {
        redis::cmd(command)
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    async fn pttl(&mut self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// The stream id the next entry gets (see [`Rig::record_dead`]).
    fn upcoming_entry(&self) -> String {
        format!("{ENTRY_MS}-{}", self.entries)
    }

    /// A state for message `id` owned by the upcoming entry, with these fields besides.
    async fn state(&mut self, id: &str, fields: &[(&str, &str)]) {
        let key = self.store.keys().state(id);
        let entry = self.upcoming_entry();
        self.hset(&key, &[("id", id), ("to", TO), ("stream_id", &entry)])
            .await;
        if !fields.is_empty() {
            self.hset(&key, fields).await;
        }
    }

    /// Runs TRANSITION to `submitting` on message `id`, as a reclaimed entry's `begin` does.
    async fn transition(&self, id: &str) -> Begun {
        let entry = OutboundEntry::new(
            &self.upcoming_entry(),
            vec![("id".into(), id.into()), ("to".into(), TO.into())],
        );
        let begun = self
            .consumer
            .begin(
                &[Beginning {
                    entry: &entry,
                    id,
                    to: TO,
                    segments: 1,
                }],
                false,
            )
            .await
            .expect("begin runs");
        begun.into_iter().next().expect("one answer per message")
    }

    async fn dead_letters(&mut self) -> Vec<(String, Vec<(String, String)>)> {
        let key = self.store.keys().dead_letters();
        redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    /// Dead-letters message `id` as `dead`: its entry (with `fields`, its own, `id` included)
    /// is XADDed as the upcoming entry and read by the consumer first, so it is pending as the
    /// worker's entries are.
    async fn record_dead(&mut self, id: &str, fields: &[(&str, String)]) {
        let entry_id = self.upcoming_entry();
        self.entries += 1;
        let stream = self.consumer.stream().to_owned();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg(&entry_id)
            .arg(fields)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let entry = self
            .consumer
            .read(1)
            .await
            .unwrap()
            .pop()
            .expect("entry read");
        assert_eq!(entry.stream_id, entry_id);
        self.consumer
            .record_dead(&entry, Some(id), MessageStatus::Dead, "no SUBMIT_RESP")
            .await
            .expect("dead letter written");
    }

    /// Entries pending in the group.
    async fn pending(&mut self) -> u64 {
        let (count, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(self.consumer.stream())
            .arg(&self.consumer.config().group)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        count
    }
}

// --- TRANSITION and the effective-status rule (lua/status.lua) ---

/// A status is only replaced by one that ranks higher: `submitting` moves `queued` on, and
/// leaves `submitting` and every final status as they were. The fields are written either way,
/// the TTL renewed, and the answer is the status before.
#[tokio::test]
async fn a_transition_never_moves_a_status_backwards() {
    let mut rig = rig().await;
    for (written, after) in [
        ("queued", "submitting"),
        ("submitting", "submitting"),
        ("delivered", "delivered"),
        ("failed", "failed"),
        ("dead", "dead"),
    ] {
        let id = format!("m-{written}");
        rig.state(&id, &[("status", written)]).await;
        let before = MessageStatus::parse(written);
        assert_eq!(rig.transition(&id).await, Begun::Owned(before), "{written}");
        let key = rig.store.keys().state(&id);
        let state = rig.hash(&key).await;
        assert_eq!(state["status"], after, "{written}");
        assert_eq!(state["segments"], "1", "{written}: the fields are written");
        assert!(rig.pttl(&key).await > 0, "{written}: the TTL is set");
    }
}

/// `queued` or `submitting` with `submitted_at` (Msg_Ids recorded by plain commands) counts as
/// `submitted`: the answer says so, and `submitting` (lower) is not written over it. A final
/// status with `submitted_at` stays what it is.
#[tokio::test]
async fn a_lower_status_with_submitted_at_counts_as_submitted() {
    let mut rig = rig().await;
    for (written, effective) in [
        ("queued", MessageStatus::Submitted),
        ("submitting", MessageStatus::Submitted),
        ("delivered", MessageStatus::Delivered),
        ("failed", MessageStatus::Failed),
    ] {
        let id = format!("s-{written}");
        rig.state(&id, &[("status", written), ("submitted_at", "5")])
            .await;
        assert_eq!(
            rig.transition(&id).await,
            Begun::Owned(Some(effective)),
            "{written}"
        );
        let key = rig.store.keys().state(&id);
        assert_eq!(rig.hash(&key).await["status"], written, "{written}");
    }
}

/// A status the rank table does not know (written by something else) ranks below every known
/// one: `submitting` replaces it, unless `submitted_at` makes it `submitted`. A state with no
/// status at all (only the id claimed) gets one.
#[tokio::test]
async fn an_unknown_or_missing_status_ranks_lowest() {
    let mut rig = rig().await;

    rig.state("u1", &[("status", "paused")]).await;
    assert_eq!(rig.transition("u1").await, Begun::Owned(None));
    let key = rig.store.keys().state("u1");
    assert_eq!(rig.hash(&key).await["status"], "submitting");

    rig.state("u2", &[("status", "paused"), ("submitted_at", "5")])
        .await;
    assert_eq!(
        rig.transition("u2").await,
        Begun::Owned(Some(MessageStatus::Submitted))
    );
    let key = rig.store.keys().state("u2");
    assert_eq!(rig.hash(&key).await["status"], "paused");

    rig.state("u3", &[]).await;
    assert_eq!(rig.transition("u3").await, Begun::Owned(None));
    let key = rig.store.keys().state("u3");
    assert_eq!(rig.hash(&key).await["status"], "submitting");

    // No state at all: created by the claim, started by the transition.
    assert_eq!(rig.transition("u4").await, Begun::Owned(None));
    let key = rig.store.keys().state("u4");
    let state = rig.hash(&key).await;
    assert_eq!(
        (state["status"].as_str(), state["stream_id"].as_str()),
        ("submitting", rig.upcoming_entry().as_str())
    );
}

/// DEAD_LETTER writes over a state that is not decided yet (`queued` with `submitted_at`:
/// submitted), making it `dead`, and leaves a decided one (`failed` by an earlier run) without
/// a second letter.
#[tokio::test]
async fn a_dead_letter_is_written_once_and_only_over_an_undecided_state() {
    let mut rig = rig().await;
    let fields = |id: &str| vec![("id", id.to_string()), ("to", TO.to_string())];
    rig.state("d1", &[("status", "queued"), ("submitted_at", "5")])
        .await;
    rig.record_dead("d1", &fields("d1")).await;
    let key = rig.store.keys().state("d1");
    assert_eq!(rig.hash(&key).await["status"], "dead");
    assert_eq!(rig.dead_letters().await.len(), 1);

    rig.state("d2", &[("status", "failed"), ("submitted_at", "5")])
        .await;
    rig.record_dead("d2", &fields("d2")).await;
    let key = rig.store.keys().state("d2");
    assert_eq!(rig.hash(&key).await["status"], "failed");
    assert_eq!(rig.dead_letters().await.len(), 1, "no letter for d2");
}

/// The letter goes with the entry's acknowledgement and only while the entry is pending: a
/// second run for the same entry (a retry after a timeout that had in fact landed) writes no
/// second letter.
#[tokio::test]
async fn a_dead_letter_acknowledges_its_entry_and_is_written_once() {
    let mut rig = rig().await;
    rig.state("r1", &[("status", "submitting")]).await;
    let fields = [("id", "r1".to_string()), ("to", TO.to_string())];
    rig.record_dead("r1", &fields).await;
    assert_eq!(rig.pending().await, 0, "acknowledged with the letter");
    let entry = OutboundEntry::new(
        &format!("{ENTRY_MS}-0"),
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    );
    rig.consumer
        .record_dead(&entry, Some("r1"), MessageStatus::Dead, "again")
        .await
        .unwrap();
    assert_eq!(rig.dead_letters().await.len(), 1, "one letter");
    let key = rig.store.keys().state("r1");
    assert_eq!(rig.hash(&key).await["error"], "no SUBMIT_RESP");
}

/// A holder that stopped between the two steps left the entry pending with a `dead` state and
/// no letter: whoever takes the entry again writes the letter, with the reason the state kept,
/// and acknowledges it. A state decided by reports gets no letter.
#[tokio::test]
async fn a_dead_letter_cut_off_after_its_state_is_finished_by_the_next_holder() {
    let mut rig = rig().await;
    let entry_id = rig.upcoming_entry();
    rig.state("c1", &[("status", "dead"), ("error", "quarantined")])
        .await;
    rig.state("c2", &[("status", "failed"), ("submitted_at", "5")])
        .await;
    let stream = rig.consumer.stream().to_owned();
    for (id, n) in [("c1", 0), ("c2", 1)] {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg(format!("{ENTRY_MS}-{n}"))
            .arg("id")
            .arg(id)
            .query_async(&mut rig.conn)
            .await
            .unwrap();
    }
    let entries = rig.consumer.read(2).await.unwrap();
    assert_eq!(entries[0].stream_id, entry_id);
    assert!(
        rig.consumer
            .resume_dead_letter(&entries[0], "c1")
            .await
            .unwrap()
    );
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let reason = letters[0].1.iter().find(|(k, _)| k == "reason").unwrap();
    assert_eq!(reason.1, "quarantined");
    assert!(
        !rig.consumer
            .resume_dead_letter(&entries[1], "c2")
            .await
            .unwrap()
    );
    assert_eq!(
        rig.dead_letters().await.len(),
        1,
        "none for the reported one"
    );
    assert_eq!(
        rig.pending().await,
        1,
        "c2 is left to the caller to acknowledge"
    );
}

// --- ENQUEUE ---

fn message(id: &str, to: &str) -> OutboundMessage {
    OutboundMessage::text(id, to, "hi")
}

/// A repeated idempotency key adds nothing and answers with the first request's answer, even
/// for a batch of other messages.
#[tokio::test]
async fn an_idempotency_key_seen_before_returns_the_first_answer() {
    let mut rig = rig().await;
    let stream = "cmpp:mt";
    let first = rig
        .store
        .enqueue(stream, &[message("e1", TO)], Some("order-1"), true, "first")
        .await
        .unwrap();
    assert_eq!(first, Enqueued::Added("first".into()));
    let again = rig
        .store
        .enqueue(
            stream,
            &[message("e2", TO)],
            Some("order-1"),
            true,
            "second",
        )
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate("first".into()));
    assert_eq!(rig.len("XLEN", stream).await, 1);
    let key = rig.store.keys().state("e2");
    assert!(rig.hash(&key).await.is_empty(), "e2 has no state");

    let key = rig.store.keys().state("e1");
    let state = rig.hash(&key).await;
    assert_eq!(
        (state["status"].as_str(), state["text"].as_str()),
        ("queued", "hi")
    );
    assert!(rig.pttl(&key).await > 0);
    let key = rig.store.keys().idempotency("order-1");
    assert!(rig.pttl(&key).await > 0, "the idempotency key expires");
}

/// One message of the batch already has a state: the whole batch is refused before anything
/// is written (no entry, no state, no index, no idempotency answer), and that state is left as
/// it was. The same batch goes through once that state is gone.
#[tokio::test]
async fn an_existing_state_refuses_the_batch_without_adding_anything() {
    let mut rig = rig().await;
    let stream = "cmpp:mt";
    rig.state("b2", &[("status", "delivered")]).await;
    let b2 = rig.store.keys().state("b2");
    let before = rig.hash(&b2).await;
    let batch = [
        message("b1", "13900139000"),
        message("b2", TO),
        message("b3", "13700137000"),
    ];
    let refused = rig
        .store
        .enqueue(stream, &batch, Some("order-2"), true, "answer")
        .await
        .unwrap();
    assert_eq!(refused, Enqueued::Duplicate("answer".into()));
    assert_eq!(rig.len("XLEN", stream).await, 0);
    assert_eq!(rig.hash(&b2).await, before);
    for id in ["b1", "b3"] {
        let key = rig.store.keys().state(id);
        assert!(rig.hash(&key).await.is_empty(), "{id} has no state");
    }
    let index = rig.store.keys().message_index();
    assert_eq!(rig.len("ZCARD", &index).await, 0);
    let by_to = rig.store.keys().message_index_by_to("13900139000");
    assert_eq!(rig.len("ZCARD", &by_to).await, 0);
    let idempotency = rig.store.keys().idempotency("order-2");
    assert_eq!(rig.len("EXISTS", &idempotency).await, 0);

    let () = redis::cmd("DEL")
        .arg(&b2)
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    let added = rig
        .store
        .enqueue(stream, &batch, Some("order-2"), true, "answer")
        .await
        .unwrap();
    assert_eq!(added, Enqueued::Added("answer".into()));
    assert_eq!(rig.len("XLEN", stream).await, 3);
    assert_eq!(rig.len("ZCARD", &index).await, 3);
    assert_eq!(rig.len("ZCARD", &by_to).await, 1);
}

/// ACCEPT, the step after the XADDs, when another request with the same id won a race
/// between the look and the XADDs: its idempotency answer is returned and nothing of this
/// request is recorded; a state another entry owns is left as it is (the worker dead-letters
/// this entry as its duplicate) while the other messages are recorded.
#[tokio::test]
async fn an_enqueue_that_lost_a_race_records_nothing_over_the_winner() {
    let mut rig = rig().await;
    let stream = "cmpp:mt";
    let idem = rig.store.keys().idempotency("race-1");
    let () = redis::cmd("SET")
        .arg(&idem)
        .arg("winner")
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    let lost = rig
        .store
        .enqueue(
            stream,
            &[message("race-1", TO)],
            Some("race-1"),
            false,
            "loser",
        )
        .await
        .unwrap();
    assert_eq!(lost, Enqueued::Duplicate("winner".into()));
    let key = rig.store.keys().state("race-1");
    assert!(rig.hash(&key).await.is_empty(), "no state for the loser");

    rig.hset(
        &rig.store.keys().state("race-2~1"),
        &[
            ("status", "submitting"),
            ("stream_id", "1-1"),
            ("text", "theirs"),
        ],
    )
    .await;
    let batch = [message("race-2~1", TO), message("race-2~2", "13900139000")];
    let added = rig
        .store
        .enqueue(stream, &batch, Some("race-2"), false, "mine")
        .await
        .unwrap();
    assert_eq!(added, Enqueued::Added("mine".into()));
    let theirs = rig.hash(&rig.store.keys().state("race-2~1")).await;
    assert_eq!(
        (theirs["stream_id"].as_str(), theirs["text"].as_str()),
        ("1-1", "theirs")
    );
    let mine = rig.hash(&rig.store.keys().state("race-2~2")).await;
    assert_eq!(mine["status"], "queued");
}

/// The worker may read an entry before ACCEPT records it (an entry without a state is taken on
/// like a direct XADD): ACCEPT then adds the content and keeps the worker's status. (Here the
/// state has no `stream_id` yet: the entry's id is not known before the enqueue.)
#[tokio::test]
async fn an_entry_the_worker_took_first_keeps_its_status() {
    let mut rig = rig().await;
    let key = rig.store.keys().state("early-1");
    rig.hset(&key, &[("status", "submitting")]).await;
    let added = rig
        .store
        .enqueue("cmpp:mt", &[message("early-1", TO)], None, false, "a")
        .await
        .unwrap();
    assert_eq!(added, Enqueued::Added("a".into()));
    let state = rig.hash(&key).await;
    assert_eq!(state["status"], "submitting", "the worker's status stays");
    assert_eq!(state["text"], "hi", "the content is added");
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("cmpp:mt")
        .arg("-")
        .arg("+")
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    assert_eq!(state["stream_id"], entries[0].0, "the state is the entry's");
}

// --- DEAD_LETTER's copy of the entry ---

/// The letter's copy of the entry, without the letter's own fields.
fn copied(letter: &[(String, String)]) -> Vec<(String, String)> {
    const OWN: [&str; 6] = [
        "reason",
        "status",
        "stream_id",
        "failed_at",
        "truncated",
        "message_id",
    ];
    letter
        .iter()
        .filter(|(k, _)| !OWN.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn truncated(letter: &[(String, String)]) -> Option<&str> {
    letter
        .iter()
        .find(|(k, _)| k == "truncated")
        .map(|(_, v)| v.as_str())
}

/// 64 fields are copied whole; a 65th is left out, and the letter says so.
#[tokio::test]
async fn a_dead_letter_copies_at_most_64_fields() {
    let mut rig = rig().await;
    for (id, count) in [("f64", 64), ("f65", 65)] {
        let mut fields = vec![("id", id.to_string())];
        let names: Vec<String> = (1..count).map(|i| format!("x{i:02}")).collect();
        fields.extend(names.iter().map(|n| (n.as_str(), "v".to_string())));
        rig.record_dead(id, &fields).await;
    }
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 2);
    let whole = &letters[0].1;
    assert_eq!(copied(whole).len(), 64);
    assert_eq!(truncated(whole), None);
    let capped = &letters[1].1;
    let kept = copied(capped);
    assert_eq!(kept.len(), 64);
    assert_eq!(kept.last().unwrap().0, "x63", "the first 64, in order");
    assert_eq!(
        truncated(capped),
        Some("64 of 65 fields, 257 of 261 bytes copied")
    );
}

/// The letter's own fields win over the entry's fields of the same names: an entry carrying a
/// `message_id` or `reason` of its own does not give the letter two of them.
#[tokio::test]
async fn a_dead_letter_keeps_its_own_fields_once() {
    let mut rig = rig().await;
    let fields = [
        ("id", "own-1".to_string()),
        ("message_id", "forged".to_string()),
        ("reason", "forged".to_string()),
    ];
    rig.record_dead("own-1", &fields).await;
    let letters = rig.dead_letters().await;
    let letter = &letters[0].1;
    let values = |name: &str| -> Vec<&str> {
        letter
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("message_id"), ["own-1"]);
    assert_eq!(values("reason"), ["no SUBMIT_RESP"]);
}

/// Names and values up to 64 KiB in all are copied whole; one byte more and the value that
/// does not fit is cut to the budget, and the letter says so.
#[tokio::test]
async fn a_dead_letter_copies_at_most_64_kib() {
    let mut rig = rig().await;
    // `id` + its value, `big` + its value: 64 KiB exactly with a value of 65536 - 4 - 3 bytes.
    let fits = 64 * 1024 - ("id".len() + "k1".len()) - "big".len();
    for (id, size) in [("k1", fits), ("k2", fits + 1)] {
        rig.record_dead(id, &[("id", id.to_string()), ("big", "x".repeat(size))])
            .await;
    }
    let letters = rig.dead_letters().await;
    let whole = copied(&letters[0].1);
    assert_eq!(whole[1].1.len(), fits);
    assert_eq!(truncated(&letters[0].1), None);
    let cut = copied(&letters[1].1);
    assert_eq!(cut[1].1.len(), fits, "cut to what fits");
    assert_eq!(
        truncated(&letters[1].1),
        Some("2 of 2 fields, 65536 of 65537 bytes copied")
    );
}

// --- Loading ---

/// A Redis that forgot its scripts (restarted, or SCRIPT FLUSH) gets every pipelined script
/// loaded again: a pipeline cannot fall back from EVALSHA to EVAL by itself.
#[tokio::test]
async fn pipelined_scripts_are_loaded_again_after_a_flush() {
    let mut rig = rig().await;
    rig.state("l1", &[("status", "queued")]).await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    assert_eq!(
        rig.transition("l1").await,
        Begun::Owned(Some(MessageStatus::Queued))
    );
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    rig.record_dead("l1", &[("id", "l1".to_string())]).await;
    let key = rig.store.keys().state("l1");
    assert_eq!(rig.hash(&key).await["status"], "dead");
}
