//! The send path end to end: HTTP or a direct XADD → the outbound stream → the worker → the link
//! → the simulator, with a real redis-server and real TCP everywhere. Reports are off here (see
//! receive_reports.rs), so a sent message rests in `submitted`.

use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get, post_json, request};
use crate::common::keys;
use crate::common::redis::{RedisServer, connect as redis_connect};
use cmpp_gateway::simulator::Behaviour;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Polls the message's state until it has `status`; returns the state.
async fn wait_for_status(http: std::net::SocketAddr, id: &str, status: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(http, &format!("/v1/messages/{id}")).await;
        if r.status == 200 && r.json()["status"] == status {
            return r.json();
        }
        assert!(
            Instant::now() < until,
            "message {id} never reached {status}; last: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(http: std::net::SocketAddr, body: Value) -> Value {
    let r = post_json(http, "/v1/messages", &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_send_is_submitted_with_its_msg_id() {
    let gateway::Stack {
        redis: _redis,
        sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let answer = send(gw.http, json!({"to": "+8613800138000", "text": "hello"})).await;
    let message = &answer["messages"][0];
    assert_eq!(message["to"], "13800138000");
    assert_eq!(message["segments"], 1);
    let id = message["id"].as_str().unwrap();
    let state = wait_for_status(gw.http, id, "submitted").await;

    let recorded = sim.recorded_submits();
    assert_eq!(recorded.len(), 1, "one SUBMIT at the simulator");
    assert_eq!(
        recorded[0].dest_terminal_ids,
        vec!["13800138000".to_owned()]
    );
    assert_eq!(recorded[0].msg_content, b"hello".to_vec());
    let msg_id = recorded[0]
        .assigned_msg_id
        .expect("the simulator assigned a Msg_Id");
    assert_eq!(state["segments"][0]["msg_id"], msg_id.to_string());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_character_chinese_text_goes_out_as_5_segments() {
    let gateway::Stack {
        redis: _redis,
        sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let text: String = "中国移动短信网关测试".chars().cycle().take(300).collect();
    let answer = send(gw.http, json!({"to": "13800138000", "text": text})).await;
    assert_eq!(answer["messages"][0]["segments"], 5);
    let id = answer["messages"][0]["id"].as_str().unwrap();
    let state = wait_for_status(gw.http, id, "submitted").await;
    let segments = state["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 5);
    assert!(segments.iter().all(|s| s["msg_id"].is_string()), "{state}");

    let recorded = sim.recorded_submits();
    assert_eq!(recorded.len(), 5);
    let mut numbers: Vec<u8> = recorded.iter().map(|r| r.pk_number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert!(
        recorded
            .iter()
            .all(|r| r.pk_total == 5 && r.tp_udhi == 1 && r.msg_fmt == 8)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_xadd_with_flat_fields_is_sent_too() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let mut conn = redis_connect(&redis).await;
    let entry: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(
            &[
                "to",
                "13800138000",
                "text",
                "from redis-cli",
                "src_ext",
                "01",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    // Without an `id` field the entry id is the message id.
    wait_for_status(gw.http, &entry, "submitted").await;
    let recorded = sim.recorded_submits();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].msg_content, b"from redis-cli".to_vec());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_id_is_enqueued_and_sent_once() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let body = json!({"to": "13800138000", "text": "once", "id": "order-42"});
    let first = send(gw.http, body.clone()).await;
    let second = post_json(gw.http, "/v1/messages", &body).await;
    assert!(
        second.status == 200 || second.status == 202,
        "{}",
        second.body
    );
    assert_eq!(second.json(), first);
    wait_for_status(gw.http, "order-42", "submitted").await;
    let mut conn = redis_connect(&redis).await;
    let len: u64 = redis::cmd("XLEN")
        .arg("cmpp:mt")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "the repeat added no entry");
    assert_eq!(sim.recorded_submits().len(), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_gateways_submit_route_works() {
    let gateway::Stack {
        redis: _redis,
        sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let r = get(
        gw.http,
        "/submit?dest=13800138000&cont=%E4%BD%A0%E5%A5%BD&src=7",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["result"], 0, "{v}");
    assert_eq!(v["error"], "");
    let id = v["id"].as_str().unwrap();
    wait_for_status(gw.http, id, "submitted").await;
    let recorded = sim.recorded_submits();
    assert_eq!(
        recorded[0].msg_content,
        vec![0x4f, 0x60, 0x59, 0x7d],
        "你好 in UCS2"
    );

    let r = request(
        gw.http,
        "POST",
        "/send",
        Some("application/x-www-form-urlencoded"),
        "dest=123&cont=x",
    )
    .await;
    assert_eq!(r.json()["result"], -1, "{}", r.body);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stream_entry_is_dead_lettered_and_acknowledged() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(Behaviour::default(), json!({"registered_delivery": false})).await;

    let mut conn = redis_connect(&redis).await;
    let _: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["to", "13800138000", "id", "bad-1"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let dead: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(keys().dead_letters())
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some((_, fields)) = dead.first() {
            let reason = fields
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            assert!(
                reason.contains("text"),
                "reason names the missing field: {reason}"
            );
            break;
        }
        assert!(Instant::now() < until, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = wait_for_status(gw.http, "bad-1", "dead").await;
    assert!(state["error"].as_str().unwrap().contains("text"));
    // Acknowledged: nothing pending in the group.
    let pending: (u64, Value, Value, Value) = redis::cmd("XPENDING")
        .arg("cmpp:mt")
        .arg("gateway")
        .query_async(&mut conn)
        .await
        .map(|v: redis::Value| (pending_count(&v), Value::Null, Value::Null, Value::Null))
        .unwrap();
    assert_eq!(pending.0, 0);
    assert!(sim.recorded_submits().is_empty());
    gw.stop().await;
}

fn pending_count(v: &redis::Value) -> u64 {
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_10_seconds_gives_503_then_recovers_without_restart() {
    let gateway::Stack {
        mut redis,
        sim: _sim,
        gw,
    } = gateway::stack(
        Behaviour::default(),
        json!({"redis_timeout": "500ms", "registered_delivery": false}),
    )
    .await;
    send(gw.http, json!({"to": "13800138000", "text": "before"})).await;

    redis.stop();
    let started = Instant::now();
    let r = post_json(
        gw.http,
        "/v1/messages",
        &json!({"to": "13800138000", "text": "during"}),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 must come promptly, took {:?}",
        started.elapsed()
    );
    assert_eq!(get(gw.http, "/readyz").await.status, 503);
    tokio::time::sleep(Duration::from_secs(10)).await;

    redis.restart();
    let until = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let r = post_json(
            gw.http,
            "/v1/messages",
            &json!({"to": "13800138000", "text": "after"}),
        )
        .await;
        if r.status == 202 {
            break r.json();
        }
        assert!(
            Instant::now() < until,
            "HTTP never recovered: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The worker resumed on its own: the message after the outage is submitted.
    wait_for_status(
        gw.http,
        answer["messages"][0]["id"].as_str().unwrap(),
        "submitted",
    )
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_pending_by_a_stopped_worker_are_reclaimed_by_another() {
    let redis = RedisServer::start();
    // The first gateway's submits are never answered while it runs.
    let sim = gateway::simulator(Behaviour {
        response_delay: Duration::from_secs(3600),
        ..Behaviour::default()
    })
    .await;
    let first = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "consumer_name": "first", "close_timeout": "0s", "response_timeout": "60s"}),
    ))
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let a = send(
            first.http,
            json!({"to": "13800138000", "text": format!("pending {i}")}),
        )
        .await;
        ids.push(a["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    let until = Instant::now() + Duration::from_secs(20);
    while sim.counters().submits_received < 3 {
        assert!(Instant::now() < until, "the first gateway never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await;

    sim.set_behaviour(Behaviour::default()).unwrap();
    let second = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "consumer_name": "second", "reclaim_idle": "1s"}),
    ))
    .await;
    for id in &ids {
        wait_for_status(second.http, id, "submitted").await;
    }
    // Each was sent once by the first gateway (never answered) and once more by the second:
    // duplicates are bounded by what was in flight.
    assert_eq!(sim.counters().submits_received, 6);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_only_instance_queues_and_a_full_one_sends() {
    let redis = RedisServer::start();
    let sim = gateway::simulator(Behaviour::default()).await;
    let ingress = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "ingress_only": true, "metrics_sample_interval": "100ms"}),
    ))
    .await;

    let answer = send(
        ingress.http,
        json!({"to": "13800138000", "text": "queued here"}),
    )
    .await;
    let id = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    // Ready without a link: it has none to wait for.
    assert_eq!(get(ingress.http, "/readyz").await.status, 200);
    assert_eq!(
        get(ingress.http, "/v1/link").await.json()["state"],
        "absent"
    );
    let queued = get(ingress.http, &format!("/v1/messages/{id}"))
        .await
        .json();
    assert_eq!(queued["status"], "queued", "{queued}");
    // No consumer group yet: the waiting entry counts as lag, as the 503 backlog check counts it
    // (once the sampler, every 100 ms, has looked).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = get(ingress.http, "/metrics").await.body;
        if scrape.contains("cmpp_consumer_group_lag{stream=\"mt\"} 1\n") {
            break;
        }
        assert!(
            Instant::now() < until,
            "{}",
            scrape
                .lines()
                .filter(|l| l.starts_with("cmpp_consumer_group"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sim.counters().connections_accepted,
        0,
        "the ingress-only instance connected to the ISMG"
    );

    // An instance with the link drains what the ingress queued.
    let full = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false}),
    ))
    .await;
    wait_for_status(ingress.http, &id, "submitted").await;
    full.stop().await;
    ingress.stop().await;
    // Both stopped, so no SUBMIT can still come: one, over the full instance's one connection.
    // The ingress-only instance never connected, so it sent nothing, early or late.
    let c = sim.counters();
    assert_eq!(
        (sim.recorded_submits().len(), c.connections_accepted),
        (1, 1),
        "{c:?}"
    );
}

/// Redis turns read-only (a replica during a failover answers READONLY) while a message is on
/// the wire: the SUBMIT is accepted, and its Msg_Id must be recorded once Redis takes writes
/// again — not given up on, which would leave the entry to be reclaimed and sent a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_cannot_take_writes_for_a_while_never_makes_a_message_go_out_twice() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(
        Behaviour {
            response_delay: Duration::from_millis(500),
            ..Behaviour::default()
        },
        json!({"registered_delivery": false, "reclaim_idle": "1s"}),
    )
    .await;
    let mut conn = redis_connect(&redis).await;
    let answer = send(gw.http, json!({"to": "13800138000", "text": "once"})).await;
    let id = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(10);
    while sim.counters().submits_received == 0 {
        assert!(
            Instant::now() < until,
            "the SUBMIT never reached the simulator"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A replica of a master that does not exist: every write is refused with READONLY until it
    // is a primary again; its data stays.
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Longer than three refusals half a second apart, and than reclaim_idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for_status(gw.http, &id, "submitted").await;
    // Acknowledged, so nothing can send it again; it was sent once.
    let until = Instant::now() + Duration::from_secs(10);
    while crate::common::streams::pending(&mut conn).await != 0 {
        assert!(Instant::now() < until, "still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sim.counters().submits_received, 1);
    gw.stop().await;
}

/// A long message whose holder stopped after two of its three segments were accepted (and put
/// on record) is sent again by whoever claims it with only the third segment, under the
/// reference it kept: the phone gets each part once, and the message ends with all three
/// Msg_Ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_left_halfway_is_completed_without_its_answered_segments() {
    use crate::common::streams::{create_group, read_as, state};
    let redis = RedisServer::start();
    let mut conn = redis_connect(&redis).await;
    create_group(&mut conn, "0").await;
    let text = format!("half {}", "y".repeat(380));
    let stream_id: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["id", "long-1", "to", "13800138000", "text", &text][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    // Its holder (no lease any more) took it and got segments 1 and 2 accepted.
    assert_eq!(
        read_as(&mut conn, "gone/0/1", 1).await,
        vec![stream_id.clone()]
    );
    let () = redis::cmd("HSET")
        .arg(keys().state("long-1"))
        .arg(
            &[
                ("id", "long-1"),
                ("to", "13800138000"),
                ("stream_id", stream_id.as_str()),
                ("status", "submitting"),
                ("ref", "4242"),
                ("s1_msg_id", "111"),
                ("s1_submitted_at", "1"),
                ("s2_msg_id", "222"),
                ("s2_submitted_at", "2"),
            ][..],
        )
        .query_async(&mut conn)
        .await
        .unwrap();

    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "wide_udh_reference": true,
               "response_timeout": "500ms", "max_sends": 2, "reclaim_idle": "1s"}),
    ))
    .await;
    wait_for_status(gw.http, "long-1", "submitted").await;
    let submits = sim.recorded_submits();
    assert_eq!(submits.len(), 1, "only the unanswered segment goes out");
    let third = &submits[0];
    assert_eq!((third.pk_number, third.pk_total), (3, 3));
    let udh = &third.msg_content;
    assert_eq!(&udh[..3], &[0x06, 0x08, 0x04]);
    assert_eq!(
        u16::from_be_bytes([udh[3], udh[4]]),
        4242,
        "the reference it kept"
    );
    let s = state(&mut conn, "long-1").await;
    assert_eq!(s["segments"], "3");
    assert_eq!(s["s1_msg_id"], "111");
    assert_eq!(s["s2_msg_id"], "222");
    assert_eq!(s["s3_msg_id"], third.msg_id.unwrap().to_string());
    gw.stop().await;
}
