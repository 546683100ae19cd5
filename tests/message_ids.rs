//! Message ids: a caller's id never lands on another message's state. The per-recipient ids of
//! one request cannot be asked for by another, an id that already has a state is a replay (HTTP)
//! or a duplicate that is not sent (direct XADD), and direct-XADD ids are checked like HTTP ids.

use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get, post_json};
use crate::common::redis::connect;
use crate::common::streams::{self, field, wait_dead_letters, wait_nothing_pending};
use crate::common::wait::until;
use cmpp_gateway::simulator::{Behaviour, SimulatorHandle};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

async fn wait_status(conn: &mut MultiplexedConnection, id: &str, status: &str) {
    until(&format!("{id} {status}"), LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let state = streams::state(&mut conn, id).await;
            let effective = match state.get("status").map(String::as_str) {
                Some("queued" | "submitting") if state.contains_key("submitted_at") => "submitted",
                Some(s) => s,
                None => "none",
            };
            if effective == status {
                Ok(())
            } else {
                Err(format!("{state:?}"))
            }
        }
    })
    .await
}

fn submits_of(sim: &SimulatorHandle, text: &str) -> usize {
    sim.recorded_submits()
        .iter()
        .filter(|s| s.msg_content == text.as_bytes())
        .count()
}

async fn xadd(conn: &mut MultiplexedConnection, id: &str, to: &str, text: &str) -> String {
    redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["id", id, "to", to, "text", text][..])
        .query_async(conn)
        .await
        .expect("XADD")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_id_cannot_take_over_another_requests_per_recipient_id() {
    let gateway::Stack {
        redis,
        sim: _sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;
    let mut conn = connect(&redis).await;

    let r = post_json(
        gw.http,
        "/v1/messages",
        &json!({"id": "collide", "to": ["13800138000", "13900139000"], "text": "first"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let first_id = r.json()["messages"][0]["id"].as_str().unwrap().to_owned();
    wait_status(&mut conn, &first_id, "submitted").await;

    let again = post_json(
        gw.http,
        "/v1/messages",
        &json!({"id": first_id, "to": "13700137000", "text": "second"}),
    )
    .await;
    assert_ne!(
        again.status, 202,
        "a new request took the id {first_id}: {}",
        again.body
    );
    let state = streams::state(&mut conn, &first_id).await;
    assert_eq!(state["to"], "13800138000", "{state:?}");
    assert_eq!(state["text"], "first");
    assert_eq!(
        entries_added(&mut conn).await,
        2,
        "nothing of the refused request enqueued"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_id_that_a_direct_xadd_already_used_is_a_replay() {
    let gateway::Stack {
        redis,
        sim: _sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;
    let mut conn = connect(&redis).await;
    xadd(&mut conn, "shared-1", "13800138000", "by xadd").await;
    wait_status(&mut conn, "shared-1", "submitted").await;

    let r = post_json(
        gw.http,
        "/v1/messages",
        &json!({"id": "shared-1", "to": "13900139000", "text": "by http"}),
    )
    .await;
    assert_eq!(
        r.header("idempotent-replayed"),
        Some("true"),
        "a replay, nothing enqueued: {} {}",
        r.status,
        r.body
    );
    assert_eq!(entries_added(&mut conn).await, 1, "no second entry");
    let state = streams::state(&mut conn, "shared-1").await;
    assert_eq!(state["to"], "13800138000");
    gw.stop().await;
}

/// One repeat after the first was delivered, two more in one pipeline (one batch): each id is
/// sent once, the repeats are dead-lettered as duplicates, and the delivered state is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_id_in_direct_xadds_is_sent_once_and_never_resets_the_state() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(Behaviour::default(), json!({})).await;
    let mut conn = connect(&redis).await;
    let first = xadd(&mut conn, "dup-1", "13800138000", "first").await;
    wait_status(&mut conn, "dup-1", "delivered").await;
    let before = streams::state(&mut conn, "dup-1").await;

    let repeat = xadd(&mut conn, "dup-1", "13900139000", "repeat").await;
    let mut pipe = redis::pipe();
    for text in ["pair a", "pair b"] {
        pipe.cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg(&["id", "dup-2", "to", "13800138000", "text", text][..]);
    }
    let _: Vec<String> = pipe.query_async(&mut conn).await.unwrap();

    let dead = wait_dead_letters(&mut conn, 2).await;
    assert!(
        dead.iter()
            .all(|d| field(d, "reason").is_some_and(|r| r.contains("duplicate id"))),
        "{dead:?}"
    );
    assert!(dead.iter().any(|d| field(d, "stream_id") == Some(&repeat)));
    wait_nothing_pending(&mut conn).await;
    assert_eq!(submits_of(&sim, "first"), 1);
    assert_eq!(submits_of(&sim, "repeat"), 0);
    assert_eq!(submits_of(&sim, "pair a") + submits_of(&sim, "pair b"), 1);
    let after = streams::state(&mut conn, "dup-1").await;
    assert_eq!(after, before, "the delivered state is untouched");
    assert_eq!(after["stream_id"], first);
    let scrape = get(gw.http, "/metrics").await.body;
    assert!(
        scrape.contains("cmpp_worker_messages_total{outcome=\"duplicate\"} 2\n"),
        "{}",
        scrape
            .lines()
            .filter(|l| l.starts_with("cmpp_worker_messages_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_xadd_ids_are_checked_like_http_ids() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;
    let mut conn = connect(&redis).await;
    let long = "x".repeat(65);
    for id in ["a b", long.as_str(), "slash/id"] {
        xadd(&mut conn, id, "13800138000", "bad id").await;
    }
    let dead = wait_dead_letters(&mut conn, 3).await;
    for d in &dead {
        assert!(
            field(d, "reason").is_some_and(|r| r.contains("1 to 64 characters")),
            "{d:?}"
        );
    }
    wait_nothing_pending(&mut conn).await;
    assert_eq!(submits_of(&sim, "bad id"), 0);
    for id in ["a b", long.as_str(), "slash/id"] {
        let state: Value = json!(streams::state(&mut conn, id).await);
        assert_eq!(state, json!({}), "no state under the invalid id {id:?}");
    }
    gw.stop().await;
}

/// Entries ever added to the outbound stream (`XINFO STREAM`'s `entries-added`): unlike XLEN,
/// not lowered by the trimmer once they are sent.
async fn entries_added(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("cmpp:mt")
        .query_async(conn)
        .await
        .expect("XINFO STREAM");
    match info.get("entries-added") {
        Some(redis::Value::Int(n)) => *n as u64,
        other => panic!("entries-added: {other:?}"),
    }
}

/// Two channel streams give out the same entry ids: an entry without `id` on another channel's
/// stream goes by `{channel}:{entry id}`, so two such entries are two messages, each sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_without_an_id_on_two_channel_streams_are_two_messages() {
    let stack = gateway::stack(
        Behaviour::default(),
        json!({"registered_delivery": false, "channels": [{"name": "a"}, {"name": "b"}]}),
    )
    .await;
    let mut conn = connect(&stack.redis).await;
    for (stream, text) in [("cmpp:mt", "on a"), ("cmpp:mt:{b}", "on b")] {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("1000-1")
            .arg(&["to", "13800138000", "text", text][..])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    wait_status(&mut conn, "1000-1", "submitted").await;
    wait_status(&mut conn, "b:1000-1", "submitted").await;
    assert_eq!(streams::state(&mut conn, "1000-1").await["text"], "on a");
    assert_eq!(streams::state(&mut conn, "b:1000-1").await["text"], "on b");
    assert_eq!(
        (
            submits_of(&stack.sim, "on a"),
            submits_of(&stack.sim, "on b")
        ),
        (1, 1)
    );
    // As the console asks for it: the `:` percent-encoded.
    let r = get(stack.gw.http, "/v1/messages/b%3A1000-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "b:1000-1");
    stack.gw.stop().await;
}

/// A long message whose middle segment the ISMG refused: the accepted ones are recorded under
/// their own positions (the Msg_Id of segment 3 is not written as segment 2), and no Msg_Id is
/// taken for another message's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_accepted_message_records_each_segment_at_its_position() {
    use cmpp_gateway::store::{Consumer, SegmentRecord};
    let redis = crate::common::redis::RedisServer::start();
    let store = gateway::store(&redis).await;
    let config = gateway::config_for_port(7890, &redis.url(), json!({}));
    let consumer = Consumer::new(
        &store,
        &config.redis,
        config.worker.clone(),
        "cmpp:mt".into(),
    )
    .await
    .unwrap();
    let entry = cmpp_gateway::store::OutboundEntry {
        stream_id: "5-0".into(),
        fields: vec![("text".into(), "x".into())],
        not_utf8: None,
        deliveries: 1,
    };
    let record = |msg_id| SegmentRecord {
        msg_id,
        submitted_at: 1,
    };
    for (n, msg_id) in [(1, 101), (3, 303)] {
        consumer
            .record_segment("long-2", "13800138000", n, 3, record(msg_id))
            .await
            .unwrap();
    }
    consumer
        .record_submitted(
            "long-2",
            "13800138000",
            &entry,
            &[Some(record(101)), None, Some(record(303))],
        )
        .await
        .unwrap();
    let mut conn = connect(&redis).await;
    let state = streams::state(&mut conn, "long-2").await;
    assert_eq!(state["segments"], "3");
    assert_eq!(state["s1_msg_id"], "101");
    assert_eq!(state.get("s2_msg_id"), None, "{state:?}");
    assert_eq!(state["s3_msg_id"], "303");
    assert!(
        !state.keys().any(|k| k.ends_with("_msg_id_taken_by")),
        "no Msg_Id taken from itself: {state:?}"
    );
}
