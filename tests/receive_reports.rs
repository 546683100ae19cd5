//! Status reports end to end: HTTP send → SUBMIT → the simulator's report → the reports stream,
//! correlated to our message id, and the message's final state.

use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get, post_json};
use crate::common::keys;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams::{self, Entry, field};
use cmpp_gateway::protocol::{Deliver, MsgId, ReportLayout, StatusReport};
use cmpp_gateway::simulator::{Behaviour, ReportRequest};
use cmpp_gateway::store::{ReportOutcome, Submitted, WhenUnmapped};
use serde_json::{Value, json};
use tokio::time::Instant;

pub(crate) async fn reports(redis: &RedisServer) -> Vec<Entry> {
    streams::entries(&mut connect(redis).await, "cmpp:reports").await
}

/// Waits until the reports stream holds `n` entries for message `id`.
pub(crate) async fn wait_reports(redis: &RedisServer, id: &str, n: usize) -> Vec<Entry> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mine: Vec<Entry> = reports(redis)
            .await
            .into_iter()
            .filter(|e| field(e, "id") == Some(id))
            .collect();
        if mine.len() >= n {
            assert_eq!(mine.len(), n, "more report entries than segments for {id}");
            return mine;
        }
        assert!(
            Instant::now() < until,
            "{} of {n} reports for {id} after 20 s",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the reports stream holds an entry about Msg_Id `msg_id`; returns it.
pub(crate) async fn wait_report_about(redis: &RedisServer, msg_id: u64) -> Entry {
    let msg_id = msg_id.to_string();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = reports(redis)
            .await
            .into_iter()
            .find(|e| field(e, "msg_id") == Some(msg_id.as_str()))
        {
            return e;
        }
        assert!(
            Instant::now() < until,
            "no report about {msg_id} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The DELIVER `deliver_msg_id` carrying a report with `stat` for `msg_id`.
pub(crate) fn report_deliver(
    deliver_msg_id: u64,
    msg_id: u64,
    stat: &str,
) -> (Deliver, StatusReport) {
    let report = StatusReport {
        msg_id: MsgId(msg_id),
        stat: stat.into(),
        dest_terminal_id: "13800138000".into(),
        ..StatusReport::default()
    };
    let deliver = Deliver {
        msg_id: MsgId(deliver_msg_id),
        ..Deliver::default()
    }
    .with_report(&report, ReportLayout::Spec71)
    .unwrap();
    (deliver, report)
}

pub(crate) async fn state(http: std::net::SocketAddr, id: &str) -> Value {
    get(http, &format!("/v1/messages/{id}")).await.json()
}

/// A report with `stat` for `msg_id`, as the simulator's control route sends it.
pub(crate) fn report_for(msg_id: u64, stat: &str) -> ReportRequest {
    ReportRequest {
        sp_id: None,
        msg_id,
        destination: "13800138000".into(),
        stat: Some(stat.into()),
        src_id: "1064899104221".into(),
        service_id: "JSASXW".into(),
    }
}

/// A simulator that sends no report of its own: the test sends them.
pub(crate) fn reports_on_request() -> Behaviour {
    Behaviour {
        report_delay: Duration::from_secs(3600),
        ..Behaviour::default()
    }
}

/// Waits until message `id` is submitted; its first segment's Msg_Id.
pub(crate) async fn first_msg_id(http: std::net::SocketAddr, id: &str) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = state(http, id).await;
        if let Some(m) = s["segments"][0]["msg_id"].as_str() {
            return m.parse().unwrap();
        }
        assert!(Instant::now() < until, "{id} never submitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn send(http: std::net::SocketAddr, text: &str) -> String {
    let r = post_json(
        http,
        "/v1/messages",
        &json!({"to": "13800138000", "text": text}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["messages"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_reaches_the_stream_with_our_id_and_the_state_becomes_delivered() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(Behaviour::default(), json!({})).await;

    let id = send(gw.http, "hello").await;
    let entries = wait_reports(&redis, &id, 1).await;
    let e = &entries[0];
    assert_eq!(field(e, "stat"), Some("DELIVRD"));
    assert_eq!(field(e, "to"), Some("13800138000"));
    assert_eq!(
        (field(e, "segment"), field(e, "segments")),
        (Some("1"), Some("1"))
    );
    assert_eq!(field(e, "status"), Some("delivered"));
    for name in ["msg_id", "submit_time", "done_time", "received_at"] {
        assert!(
            field(e, name).is_some_and(|v| !v.is_empty()),
            "{name} missing in {e:?}"
        );
    }
    let s = state(gw.http, &id).await;
    assert_eq!(s["status"], "delivered", "{s}");
    assert_eq!(s["segments"][0]["msg_id"].as_str(), field(e, "msg_id"));
    assert_eq!(s["segments"][0]["stat"], "DELIVRD");
    // Acknowledged only after the write: the simulator saw the DELIVER_RESP.
    let until = Instant::now() + Duration::from_secs(5);
    while sim.counters().reports_acked < 1 {
        assert!(Instant::now() < until, "report never acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_segments_give_five_reports_and_one_final_status() {
    let gateway::Stack {
        redis,
        sim: _sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({})).await;

    let text: String = "长短信状态报告测试".chars().cycle().take(300).collect();
    let id = send(gw.http, &text).await;
    let entries = wait_reports(&redis, &id, 5).await;
    let mut segments: Vec<&str> = entries.iter().filter_map(|e| field(e, "segment")).collect();
    segments.sort_unstable();
    assert_eq!(segments, ["1", "2", "3", "4", "5"]);
    let finals: Vec<_> = entries.iter().filter_map(|e| field(e, "status")).collect();
    assert_eq!(
        finals,
        ["delivered"],
        "exactly one entry carries the final status"
    );
    // Not necessarily on the last entry: the message is decided in its slot and the entry
    // written in the report stream's, so another segment's entry may be written in between.
    assert_eq!(state(gw.http, &id).await["status"], "delivered");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_stat_values_give_failed_with_the_stat() {
    let gateway::Stack {
        redis,
        sim: _sim,
        gw,
    } = gateway::stack(
        Behaviour {
            stat_mix: vec![("DELIVRD".into(), 1), ("UNDELIV".into(), 1)],
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;

    let mut saw_failed = false;
    for round in 0..8 {
        let text: String = "状态".chars().cycle().take(200).collect();
        let id = send(gw.http, &format!("{round}{text}")).await;
        let entries = wait_reports(&redis, &id, 3).await;
        let stats: Vec<&str> = entries.iter().filter_map(|e| field(e, "stat")).collect();
        let s = state(gw.http, &id).await;
        if stats.iter().all(|st| *st == "DELIVRD") {
            assert_eq!(s["status"], "delivered", "all DELIVRD: {s}");
        } else {
            assert_eq!(s["status"], "failed", "stats {stats:?}: {s}");
            assert_eq!(s["error"], "Stat UNDELIV");
            saw_failed = true;
        }
    }
    assert!(
        saw_failed,
        "8 messages of 3 segments at 50 % UNDELIV never failed"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_msg_id_is_written_unmatched_and_acceptd_decides_nothing() {
    let gateway::Stack { redis, sim, gw } =
        gateway::stack(reports_on_request(), json!({"report_match_wait": "300ms"})).await;

    sim.send_report(report_for(42, "DELIVRD")).unwrap();
    let unmatched = wait_report_about(&redis, 42).await;
    assert_eq!(field(&unmatched, "unmatched"), Some("1"));
    assert_eq!(field(&unmatched, "id"), None);

    let id = send(gw.http, "intermediate").await;
    let msg_id = first_msg_id(gw.http, &id).await;
    sim.send_report(report_for(msg_id, "ACCEPTD")).unwrap();
    let entries = wait_reports(&redis, &id, 1).await;
    assert_eq!(field(&entries[0], "stat"), Some("ACCEPTD"));
    assert_eq!(field(&entries[0], "status"), None, "ACCEPTD is not final");
    assert_eq!(state(gw.http, &id).await["status"], "submitted");
    sim.send_report(report_for(msg_id, "DELIVRD")).unwrap();
    let entries = wait_reports(&redis, &id, 2).await;
    assert_eq!(field(&entries[1], "status"), Some("delivered"));
    assert_eq!(state(gw.http, &id).await["status"], "delivered");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_report_is_written_once() {
    let redis = RedisServer::start();
    let store = gateway::store(&redis).await;
    let (deliver, report) = report_deliver(1001, 7, "DELIVRD");
    assert_eq!(
        store
            .record_report(&deliver, &report, 1, WhenUnmapped::WriteUnmatched)
            .await
            .unwrap(),
        ReportOutcome::WrittenUnmatched
    );
    // Known as stored even where the report would be held now: it is not held a second time.
    assert_eq!(
        store
            .record_report(&deliver, &report, 2, WhenUnmapped::Hold)
            .await
            .unwrap(),
        ReportOutcome::Duplicate
    );
    assert_eq!(
        reports(&redis).await.len(),
        1,
        "two deliveries of one DELIVER, one entry"
    );
}

/// A matched report's redelivery is recognised by its DELIVER's marker (and the message's state
/// lists it, so it changes the state once): ACCEPTD and DELIVRD for one segment in two DELIVERs,
/// each delivered twice and the first once more after the second, give two entries and one
/// final status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_reports_of_a_known_message_are_written_once() {
    let gateway::Stack { redis, gw, .. } = gateway::stack(reports_on_request(), json!({})).await;
    let id = send(gw.http, "redelivered").await;
    let msg_id = first_msg_id(gw.http, &id).await;
    let store = gateway::store(&redis).await;
    let (accepted, accepted_report) = report_deliver(5001, msg_id, "ACCEPTD");
    let (delivered, delivered_report) = report_deliver(5002, msg_id, "DELIVRD");
    let mut outcomes = Vec::new();
    for (d, r) in [
        (&accepted, &accepted_report),
        (&accepted, &accepted_report),
        (&delivered, &delivered_report),
        (&delivered, &delivered_report),
        (&accepted, &accepted_report),
    ] {
        outcomes.push(
            store
                .record_report(d, r, 1, WhenUnmapped::Hold)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes,
        [
            ReportOutcome::Written { decided: None },
            ReportOutcome::Duplicate,
            ReportOutcome::Written {
                decided: Some(cmpp_gateway::store::MessageStatus::Delivered)
            },
            ReportOutcome::Duplicate,
            ReportOutcome::Duplicate,
        ],
        "five deliveries of two DELIVERs"
    );
    let mine = wait_reports(&redis, &id, 2).await;
    let stats: Vec<_> = mine.iter().map(|e| field(e, "stat").unwrap()).collect();
    assert_eq!(stats, ["ACCEPTD", "DELIVRD"], "one entry per DELIVER");
    assert_eq!(state(gw.http, &id).await["status"], "delivered");
    let mut conn = connect(&redis).await;
    // One marker per DELIVER, in the report stream's slot, expiring like the state: what
    // recognises a redelivery however far the first one got.
    let mut markers: Vec<String> = redis::cmd("KEYS")
        .arg("cmpp:seen:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    markers.sort();
    let mut expected = vec![keys().seen_report(5001), keys().seen_report(5002)];
    expected.sort();
    assert_eq!(markers, expected);
    for marker in &markers {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(marker)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{marker} expires");
    }
    gw.stop().await;
}

/// A peer that gives every SUBMIT the same Msg_Id: the first message keeps the correlation (its
/// reports, and every later report under that Msg_Id, are its own), the later message keeps its
/// Msg_Id and names the message that holds it, and the repeat is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_msg_id_keeps_the_first_messages_correlation() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(
        Behaviour {
            repeat_msg_id: true,
            ..reports_on_request()
        },
        json!({}),
    )
    .await;
    let first = send(gw.http, "first").await;
    let msg_id = first_msg_id(gw.http, &first).await;
    let second = send(gw.http, "second").await;
    assert_eq!(first_msg_id(gw.http, &second).await, msg_id, "one Msg_Id");

    let mut conn = connect(&redis).await;
    let packed: Vec<u8> = redis::cmd("GET")
        .arg(format!("cmpp:msgid:{msg_id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let holder: Submitted = rmp_serde::from_slice(&packed).unwrap();
    assert_eq!(holder.id, first, "the first message's correlation is kept");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = state(gw.http, &second).await;
        if s["segments"][0]["msg_id_taken_by"] == first.as_str() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the later message never names the holder: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scrape = get(gw.http, "/metrics").await.body;
    assert!(
        scrape
            .lines()
            .any(|l| l == "cmpp_msg_id_duplicates_total 1"),
        "counted once: {}",
        scrape
            .lines()
            .filter(|l| l.contains("duplicates"))
            .collect::<Vec<_>>()
            .join("; ")
    );

    for _ in 0..2 {
        sim.send_report(report_for(msg_id, "DELIVRD")).unwrap();
    }
    wait_reports(&redis, &first, 2).await;
    assert_eq!(state(gw.http, &first).await["status"], "delivered");
    assert_eq!(state(gw.http, &second).await["status"], "submitted");
    gw.stop().await;
}
