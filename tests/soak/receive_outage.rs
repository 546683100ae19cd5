//! Redis unreachable for 10 s while reports and MO arrive: every one ends up in its stream
//! exactly once. Redis is frozen (SIGSTOP), not emptied: commands sent before the freeze run when
//! it thaws, after the gateway has given up on them and refused the DELIVER — the hardest case
//! for "exactly once", which the seen-marker (MO) and the state's list of DELIVER Msg_Ids (reports) have to handle.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::post_json;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams::{self, Entry, field};
use cmpp_gateway::simulator::{Behaviour, MoRequest};
use serde_json::json;
use tokio::time::Instant;

async fn entries(redis: &RedisServer, stream: &str) -> Vec<Entry> {
    streams::entries(&mut connect(redis).await, stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_mo_arriving_during_a_10_second_outage_are_stored_exactly_once() {
    const MESSAGES: usize = 40;
    const MO: usize = 20;
    let gateway::Stack { redis, sim, gw } = gateway::stack(
        Behaviour {
            report_delay: Duration::from_millis(300),
            deliver_retry: Duration::from_secs(1),
            ..Behaviour::default()
        },
        json!({"redis_timeout": "500ms"}),
    )
    .await;

    let mut ids = HashSet::new();
    for i in 0..MESSAGES {
        let r = post_json(
            gw.http,
            "/v1/messages",
            &json!({"to": "13800138000", "text": format!("outage {i}")}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.insert(r.json()["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    // Freeze Redis while the reports of those messages (after 300 ms) and the MO come in.
    redis.pause();
    for i in 0..MO {
        sim.send_mo(MoRequest {
            from: format!("139{i:08}"),
            to: "1064899104221".into(),
            text: format!("上行 {i}"),
            ..MoRequest::default()
        })
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    redis.resume();

    // Every report and MO arrives, then nothing more can: the simulator has each DELIVER it
    // queued acknowledged (it never sends those again; the gateway answers only after storing),
    // and the gateway is stopped (its receiver waits, up to 10 s, for DELIVERs it is storing).
    // Counted only then, so a copy stored late counts too.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let finals = entries(&redis, "cmpp:reports")
            .await
            .iter()
            .filter(|e| field(e, "status").is_some())
            .count();
        let mo = entries(&redis, "cmpp:mo").await.len();
        let c = sim.counters();
        if finals >= MESSAGES
            && mo >= MO
            && c.reports_acked == c.reports_queued
            && c.mo_acked == c.mo_queued
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "after the outage: {finals} of {MESSAGES} final reports, {mo} of {MO} MO; {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.stop().await;

    // Exactly once: one report per message, one entry per MO, nothing unmatched.
    let reports = entries(&redis, "cmpp:reports").await;
    let mo = entries(&redis, "cmpp:mo").await;
    let reported: Vec<&str> = reports.iter().filter_map(|e| field(e, "id")).collect();
    let distinct: HashSet<&str> = reported.iter().copied().collect();
    assert_eq!(
        reports.len(),
        MESSAGES,
        "{} report entries for {MESSAGES} messages",
        reports.len()
    );
    assert_eq!(distinct.len(), MESSAGES, "every message reported once");
    assert!(
        distinct.iter().all(|id| ids.contains(*id)),
        "reports correlate to our ids"
    );
    assert!(
        reports.iter().all(|e| field(e, "unmatched").is_none()),
        "no report unmatched"
    );
    assert_eq!(mo.len(), MO, "{} MO entries for {MO} MO", mo.len());
    let senders: HashSet<&str> = mo.iter().filter_map(|e| field(e, "from")).collect();
    assert_eq!(senders.len(), MO, "every MO once");
    let c = sim.counters();
    assert!(
        c.delivers_resent > 0,
        "the outage made the simulator redeliver: {c:?}"
    );
}
