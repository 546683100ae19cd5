//! Outbound entries built to break the worker: thousands of fields, bytes that are not UTF-8, a
//! dead-letter stream that cannot be written. Each ends as a dead letter (or stays pending, never
//! acknowledged without a trace) while the messages around it are sent.

use std::time::Duration;

use crate::common::gateway;
use crate::common::keys;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams::{
    self, create_group, field, pending_ids, read_as, state, wait_dead_letters, wait_nothing_pending,
};
use crate::common::wait::until;
use cmpp_gateway::simulator::{Behaviour, SimulatorHandle};
use redis::aio::MultiplexedConnection;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

async fn xadd(conn: &mut MultiplexedConnection, fields: &[(&[u8], &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg("cmpp:mt").arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(conn).await.expect("XADD")
}

async fn valid(conn: &mut MultiplexedConnection, id: &str) -> String {
    xadd(
        conn,
        &[
            (b"id", id.as_bytes()),
            (b"to", b"13800138000"),
            (b"text", id.as_bytes()),
        ],
    )
    .await
}

async fn wait_submits(sim: &SimulatorHandle, count: usize) {
    until("SUBMITs at the simulator", LIMIT, || async {
        let n = sim.recorded_submits().len();
        if n >= count {
            Ok(())
        } else {
            Err(format!("{n} of {count}"))
        }
    })
    .await
}

/// A redis-server where every dead letter fails (the dead-letter stream's key holds a string),
/// a connection to it and a simulator.
async fn with_broken_dead_letters() -> (RedisServer, MultiplexedConnection, SimulatorHandle) {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    let () = redis::cmd("SET")
        .arg(keys().dead_letters())
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    let sim = gateway::simulator(Behaviour::default()).await;
    (redis, conn, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_5000_fields_without_to_is_dead_lettered_with_a_capped_copy() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;
    let mut conn = connect(&redis).await;

    let names: Vec<String> = (0..5_000).map(|i| format!("f{i}")).collect();
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b"id", b"huge-1")];
    fields.extend(names.iter().map(|n| (n.as_bytes(), &b"value"[..])));
    let huge = xadd(&mut conn, &fields).await;
    valid(&mut conn, "after-huge").await;

    let dead = wait_dead_letters(&mut conn, 1).await;
    let letter = &dead[0];
    assert_eq!(field(letter, "stream_id"), Some(huge.as_str()));
    assert!(
        field(letter, "reason").is_some_and(|r| r.contains("to")),
        "the reason names the missing field: {letter:?}"
    );
    assert!(
        field(letter, "truncated").is_some(),
        "marked truncated: {:?}",
        &letter.1[..10]
    );
    assert!(
        letter.1.len() < 200,
        "a bounded copy, not 5 000 fields: {}",
        letter.1.len()
    );
    let state = streams::state(&mut conn, "huge-1").await;
    assert_eq!(state.get("status").map(String::as_str), Some("dead"));
    assert!(state.get("error").is_some_and(|e| e.contains("to")));

    wait_submits(&sim, 1).await;
    assert_eq!(
        sim.recorded_submits()[0].msg_content,
        b"after-huge".to_vec()
    );
    wait_nothing_pending(&mut conn).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_dead_letter_cannot_be_written_stays_pending_through_shutdown() {
    let (redis, mut conn, sim) = with_broken_dead_letters().await;
    let first = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "consumer_name": "first"}),
    ))
    .await;
    let malformed = xadd(&mut conn, &[(b"to", b"13800138000")]).await;
    until("the malformed entry read", LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let ids = pending_ids(&mut conn).await;
            if ids.is_empty() {
                Err("nothing pending".into())
            } else {
                Ok(())
            }
        }
    })
    .await;
    first.stop().await;
    assert_eq!(
        pending_ids(&mut conn).await,
        vec![malformed.clone()],
        "neither a state nor a dead letter: the entry must not be acknowledged"
    );

    // Once the stream can be written, the next start ends it with its dead letter.
    let () = redis::cmd("DEL")
        .arg(keys().dead_letters())
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "consumer_name": "second", "reclaim_idle": "1s"}),
    ))
    .await;
    let dead = wait_dead_letters(&mut conn, 1).await;
    assert_eq!(field(&dead[0], "stream_id"), Some(malformed.as_str()));
    wait_nothing_pending(&mut conn).await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_written_holds_up_no_other_message() {
    let (redis, mut conn, sim) = with_broken_dead_letters().await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false}),
    ))
    .await;
    let malformed = xadd(&mut conn, &[(b"to", b"13800138000")]).await;
    valid(&mut conn, "after-broken").await;
    wait_submits(&sim, 1).await;
    until("only the malformed entry pending", LIMIT, || {
        let mut conn = conn.clone();
        let malformed = malformed.clone();
        async move {
            let ids = pending_ids(&mut conn).await;
            if ids == [malformed] {
                Ok(())
            } else {
                Err(format!("pending {ids:?}"))
            }
        }
    })
    .await;
    gw.stop().await;
}

/// 60 valid messages around two entries that are not UTF-8 (a field name, a value), all read in
/// one batch: the two are dead-lettered, the 60 sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_are_not_utf8_are_dead_lettered_and_their_batch_sent() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    streams::fill(&mut conn, "before", 30).await;
    let bad_name = xadd(
        &mut conn,
        &[
            (b"to", b"13800138000"),
            (b"text", b"x"),
            (b"\xff\xfeoops", b"1"),
        ],
    )
    .await;
    let bad_value = xadd(
        &mut conn,
        &[(b"to", b"13800138000"), (b"text", b"\xc3\x28")],
    )
    .await;
    streams::fill(&mut conn, "after", 30).await;
    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "worker_batch": 64}),
    ))
    .await;

    wait_submits(&sim, 60).await;
    let dead = wait_dead_letters(&mut conn, 2).await;
    let mut dead_ids: Vec<&str> = dead.iter().filter_map(|d| field(d, "stream_id")).collect();
    dead_ids.sort_unstable();
    assert_eq!(dead_ids, [bad_name.as_str(), bad_value.as_str()]);
    for letter in &dead {
        assert!(
            field(letter, "reason").is_some_and(|r| r.contains("UTF-8")),
            "{letter:?}"
        );
    }
    assert!(
        dead.iter()
            .any(|d| d.1.iter().any(|(k, _)| k.contains("oops"))),
        "the bad name is shown lossily: {dead:?}"
    );
    wait_nothing_pending(&mut conn).await;
    assert_eq!(sim.recorded_submits().len(), 60);
    gw.stop().await;
}

/// The same through XAUTOCLAIM: entries a crashed consumer left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_entry_that_is_not_utf8_is_dead_lettered_and_the_rest_sent() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    valid(&mut conn, "left-1").await;
    let bad = xadd(
        &mut conn,
        &[(b"to", b"13800138000"), (b"text", b"x"), (b"\x80", b"1")],
    )
    .await;
    valid(&mut conn, "left-2").await;
    create_group(&mut conn, "0").await;
    // The reply is not parsed here: the entry that is not UTF-8 is among them.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gateway")
        .arg("crashed")
        .arg("STREAMS")
        .arg("cmpp:mt")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending_ids(&mut conn).await.len(), 3);

    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "reclaim_idle": "1s"}),
    ))
    .await;
    wait_submits(&sim, 2).await;
    let dead = wait_dead_letters(&mut conn, 1).await;
    assert_eq!(field(&dead[0], "stream_id"), Some(bad.as_str()));
    wait_nothing_pending(&mut conn).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_every_worker_stopped_on_is_dead_lettered_after_max_claims() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    valid(&mut conn, "fine").await;
    let id = xadd(
        &mut conn,
        &[
            (b"id", b"crashes"),
            (b"to", b"13800138000"),
            (b"text", b"boom"),
        ],
    )
    .await;
    create_group(&mut conn, "0").await;
    // Workers took it and stopped before finishing it, again and again: read once, then claimed
    // by four more (each XCLAIM counts a delivery, as a reclaim after a crash does).
    read_as(&mut conn, "worker-0", 2).await;
    for n in 1..5 {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg("cmpp:mt")
            .arg("gateway")
            .arg(format!("worker-{n}"))
            .arg(0)
            .arg(&id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "reclaim_idle": "1s", "max_claims": 4}),
    ))
    .await;
    let dead = wait_dead_letters(&mut conn, 1).await;
    assert_eq!(field(&dead[0], "stream_id"), Some(id.as_str()));
    let reason = field(&dead[0], "reason").unwrap_or_default();
    assert!(reason.contains("claimed 6 times"), "{reason}");
    wait_nothing_pending(&mut conn).await;
    // The other one was sent; this one never was.
    let sent: Vec<_> = sim
        .recorded_submits()
        .into_iter()
        .map(|s| String::from_utf8_lossy(&s.msg_content).into_owned())
        .collect();
    assert!(!sent.iter().any(|t| t == "boom"), "{sent:?}");
    assert_eq!(
        state(&mut conn, "crashes")
            .await
            .get("status")
            .map(String::as_str),
        Some("dead")
    );
    gw.stop().await;
}
