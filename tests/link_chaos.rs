//! The ISMG drops the connection every few thousand PDUs during a 20 000-message run: no message
//! is lost, none is stuck, and every report of a Msg_Id the gateway received correlates to its
//! message. A drop can swallow SUBMIT_RESPs the ISMG already sent; those segments go out again,
//! and the reports of the lost copies carry Msg_Ids no one ever saw: they are written unmatched,
//! and there can be no more of them than resent submits.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cmpp_gateway::simulator::Behaviour;
use common::gateway;
use common::redis::{RedisServer, connect};
use serde_json::json;
use tokio::time::Instant;

const MESSAGES: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_messages_through_a_link_that_keeps_dropping() {
    let redis = RedisServer::start();
    let sim = gateway::simulator(Behaviour {
        close_after_pdus: 3_000,
        deliver_retry: Duration::from_secs(1),
        ..Behaviour::default()
    })
    .await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"reconnect_min": "20ms", "reconnect_max": "200ms", "outbound_backlog_limit": 0}),
    ))
    .await;

    let mut conn = connect(&redis).await;
    for chunk in 0..MESSAGES / 1_000 {
        let mut pipe = redis::pipe();
        for i in chunk * 1_000..(chunk + 1) * 1_000 {
            pipe.cmd("XADD")
                .arg("cmpp:mt")
                .arg("*")
                .arg(
                    &[
                        "id",
                        &format!("chaos-{i}"),
                        "to",
                        "13800138000",
                        "text",
                        "chaos",
                    ][..],
                )
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }

    let until = Instant::now() + Duration::from_secs(240);
    loop {
        let mut pipe = redis::pipe();
        for i in 0..MESSAGES {
            pipe.cmd("HGET")
                .arg(format!("cmpp:msg:chaos-{i}"))
                .arg("status");
        }
        let statuses: Vec<Option<String>> = pipe.query_async(&mut conn).await.unwrap();
        let delivered = statuses
            .iter()
            .filter(|s| s.as_deref() == Some("delivered"))
            .count();
        if delivered == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < until,
            "after 240 s only {delivered} of {MESSAGES} delivered ({} disconnects so far)",
            sim.counters().disconnects_injected
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let c = sim.counters();
    assert!(
        c.disconnects_injected >= 5,
        "the link was dropped only {} times",
        c.disconnects_injected
    );
    // Every report correlated: one final report per message and nothing unmatched.
    let reports: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("cmpp:reports")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |e: &(String, Vec<(String, String)>), name: &str| {
        e.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let unmatched = reports
        .iter()
        .filter(|e| field(e, "unmatched").is_some())
        .count();
    let resent = c.submits_received as usize - MESSAGES;
    assert!(
        unmatched <= resent,
        "{unmatched} of {} reports did not correlate, but only {resent} submits were sent twice",
        reports.len()
    );
    assert_eq!(
        reports.len(),
        MESSAGES + unmatched,
        "one report per message plus the lost copies' reports"
    );
    let finals: HashSet<String> = reports
        .iter()
        .filter(|e| field(e, "status").is_some())
        .filter_map(|e| field(e, "id"))
        .collect();
    assert_eq!(
        finals.len(),
        MESSAGES,
        "final reports for {} of {MESSAGES} messages",
        finals.len()
    );
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("cmpp:mt")
        .arg("gateway")
        .query_async(&mut conn)
        .await
        .unwrap();
    let redis::Value::Array(summary) = pending else {
        panic!("XPENDING summary")
    };
    assert_eq!(
        summary.first(),
        Some(&redis::Value::Int(0)),
        "nothing stuck pending"
    );
    eprintln!(
        "{MESSAGES} messages, {} disconnects, {} submits received, {} reports",
        c.disconnects_injected,
        c.submits_received,
        reports.len()
    );
    gw.stop().await;
}
