//! Status reports whose Msg_Id is not mapped when they arrive: held in Redis and answered at
//! once, never holding the ISMG's DELIVER window; written correlated when the Msg_Id appears,
//! unmatched after `report_match_wait`, once however often the ISMG delivers them, and finished
//! by any instance's sweeper when the one that held them is gone.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::common::gateway;
use crate::common::http_client::get;
use crate::common::keys;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams::field;
use crate::receive_reports::{
    report_deliver, report_for, reports, reports_on_request, send, state, wait_report_about,
    wait_reports,
};
use cmpp_gateway::simulator::Behaviour;
use cmpp_gateway::store::{HeldReport, MessageStatus, ReportOutcome, Submitted, WhenUnmapped};

/// What the worker writes once message `id` (one segment) has Msg_Id `msg_id`: the map and a
/// submitted state.
async fn map_message(redis: &RedisServer, msg_id: u64, id: &str) {
    let record = Submitted {
        id: id.into(),
        segment: 1,
        segments: 1,
        to: "13800138000".into(),
    };
    let () = redis::pipe()
        .cmd("SET")
        .arg(format!("cmpp:msgid:{msg_id}"))
        .arg(rmp_serde::to_vec(&record).unwrap())
        .ignore()
        .cmd("HSET")
        .arg(keys().state(id))
        .arg(&[("id", id), ("to", "13800138000"), ("status", "submitting")][..])
        .arg(
            &[
                ("segments", "1"),
                ("submitted_at", "1"),
                ("s1_msg_id", &msg_id.to_string()),
            ][..],
        )
        .ignore()
        .query_async(&mut connect(redis).await)
        .await
        .unwrap();
}

async fn held_count(redis: &RedisServer) -> u64 {
    redis::cmd("ZCARD")
        .arg(keys().held_reports())
        .query_async(&mut connect(redis).await)
        .await
        .unwrap()
}

/// Reports for Msg_Ids nobody here knows (a lost SUBMIT_RESP, another system on the account, a
/// report after the state's TTL) must not hold the ISMG's few DELIVER slots while they wait for a
/// Msg_Id that may never come. Twelve of them are queued ahead of three messages' reports, the
/// simulator keeps only 4 DELIVERs unanswered, and `report_match_wait` is 60 s: the messages'
/// reports — each sent 2 s before its SUBMIT_RESP, so before its Msg_Id is recorded — are stored
/// correlated within the 20 s deadline, far inside one match wait. The twelve wait in Redis; a
/// second instance whose match wait is over writes them unmatched with its sweeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_reports_do_not_hold_the_deliver_window() {
    let redis = RedisServer::start();
    let sim = gateway::simulator(Behaviour {
        deliver_window: 4,
        response_delay: Duration::from_secs(2),
        ..Behaviour::default()
    })
    .await;
    // The SUBMIT_RESP is late, but not late enough to be resent.
    let config = |wait: &str| {
        let extra = json!({"report_match_wait": wait, "response_timeout": "20s"});
        gateway::config(&sim, &redis.url(), extra)
    };
    let gw = gateway::start(config("60s")).await;
    for msg_id in 1..=12 {
        sim.send_report(report_for(msg_id, "DELIVRD")).unwrap();
    }
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(send(gw.http, text).await);
    }
    for id in &ids {
        let entries = wait_reports(&redis, id, 1).await;
        assert_eq!(field(&entries[0], "status"), Some("delivered"));
        assert_eq!(state(gw.http, id).await["status"], "delivered");
    }
    let scrape = get(gw.http, "/metrics").await.body;
    let waits = scrape
        .lines()
        .find_map(|l| l.strip_prefix("cmpp_reports_match_waits_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        waits.is_some_and(|w| w >= 3),
        "the reports came before their Msg_Ids: {waits:?}"
    );
    let until = Instant::now() + Duration::from_secs(20);
    while sim.counters().reports_acked < 15 {
        assert!(Instant::now() < until, "{:?}", sim.counters());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;

    let gw = gateway::start(config("1s")).await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut unmatched: Vec<u64> = reports(&redis)
            .await
            .iter()
            .filter(|e| field(e, "unmatched") == Some("1"))
            .map(|e| field(e, "msg_id").unwrap().parse().unwrap())
            .collect();
        unmatched.sort_unstable();
        if unmatched.len() >= 12 {
            assert_eq!(unmatched, (1..=12).collect::<Vec<u64>>(), "each once");
            break;
        }
        assert!(
            Instant::now() < until,
            "{} of 12 unmatched reports written",
            unmatched.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held_count(&redis).await, 0);
    gw.stop().await;
}

/// The ISMG delivers a DELIVER again when its answer was lost. A held report is written once:
/// redelivered while held (recognised by its seen-marker), and redelivered after its Msg_Id is
/// mapped but before the held copy is written (the redelivery is written, the held copy finds
/// the DELIVER in the message's state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_report_is_written_once_however_often_it_is_delivered() {
    let redis = RedisServer::start();
    let store = gateway::store(&redis).await;
    let delivered = ReportOutcome::Written {
        decided: Some(MessageStatus::Delivered),
    };

    let (deliver, report) = report_deliver(1001, 71, "DELIVRD");
    let held = HeldReport::new(&deliver, &report);
    let record = || store.record_report(&deliver, &report, 1, WhenUnmapped::Hold);
    assert_eq!(record().await.unwrap(), ReportOutcome::Held);
    assert_eq!(
        record().await.unwrap(),
        ReportOutcome::Duplicate,
        "while held"
    );
    assert_eq!(
        store.resolve_held_report(&held, false).await.unwrap(),
        ReportOutcome::Held,
        "not mapped yet"
    );
    map_message(&redis, 71, "m71").await;
    assert_eq!(
        store.resolve_held_report(&held, false).await.unwrap(),
        delivered
    );
    assert_eq!(record().await.unwrap(), ReportOutcome::Duplicate, "after");
    assert_eq!(
        store.resolve_held_report(&held, true).await.unwrap(),
        ReportOutcome::Duplicate,
        "written already"
    );

    let (deliver, report) = report_deliver(1002, 72, "DELIVRD");
    let held = HeldReport::new(&deliver, &report);
    let record = || store.record_report(&deliver, &report, 1, WhenUnmapped::Hold);
    assert_eq!(record().await.unwrap(), ReportOutcome::Held);
    map_message(&redis, 72, "m72").await;
    assert_eq!(record().await.unwrap(), delivered, "the redelivery");
    assert_eq!(
        store.resolve_held_report(&held, true).await.unwrap(),
        ReportOutcome::Duplicate,
        "the held copy"
    );

    let all = reports(&redis).await;
    for id in ["m71", "m72"] {
        let mine = all.iter().filter(|e| field(e, "id") == Some(id)).count();
        assert_eq!(mine, 1, "{id}: {all:?}");
    }
    assert_eq!(all.len(), 2);
    assert_eq!(held_count(&redis).await, 0);
    let marker: bool = redis::cmd("EXISTS")
        .arg(keys().seen_report(1001))
        .query_async(&mut connect(&redis).await)
        .await
        .unwrap();
    assert!(
        marker,
        "the marker stays: a redelivery after the write is recognised"
    );
}

/// Reports held by an instance that stopped before writing them (killed right after answering
/// their DELIVERs) are finished by another instance's sweeper after `report_match_wait`: the one
/// whose Msg_Id was mapped meanwhile correlated, the other unmatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_left_held_are_written_by_any_instances_sweeper() {
    let redis = RedisServer::start();
    let store = gateway::store(&redis).await;
    for (deliver_msg_id, msg_id) in [(2001, 81), (2002, 82)] {
        let (deliver, report) = report_deliver(deliver_msg_id, msg_id, "DELIVRD");
        let outcome = store
            .record_report(&deliver, &report, 1, WhenUnmapped::Hold)
            .await
            .unwrap();
        assert_eq!(outcome, ReportOutcome::Held);
    }
    map_message(&redis, 81, "m81").await;

    let sim = gateway::simulator(reports_on_request()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"report_match_wait": "300ms"}),
    ))
    .await;
    let correlated = wait_reports(&redis, "m81", 1).await;
    assert_eq!(field(&correlated[0], "status"), Some("delivered"));
    assert_eq!(state(gw.http, "m81").await["status"], "delivered");
    let unmatched = wait_report_about(&redis, 82).await;
    assert_eq!(field(&unmatched, "unmatched"), Some("1"));
    assert_eq!(field(&unmatched, "id"), None);
    assert_eq!(held_count(&redis).await, 0);
    assert_eq!(reports(&redis).await.len(), 2);
    gw.stop().await;
}
