//! The ISMG drops the connection every few thousand PDUs during a 20 000-message run: no message
//! is lost, none is stuck, and every report of a Msg_Id the gateway received correlates to its
//! message. A drop can swallow SUBMIT_RESPs the ISMG already sent; those segments go out again,
//! and the reports of the lost copies carry Msg_Ids no one ever saw: they are written unmatched,
//! and there can be no more of them than resent submits.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::gateway;
use crate::common::redis::connect;
use crate::common::streams::{self, field};
use cmpp_gateway::simulator::Behaviour;
use serde_json::json;

const MESSAGES: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_messages_through_a_link_that_keeps_dropping() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(
        Behaviour {
            close_after_pdus: 3_000,
            deliver_retry: Duration::from_secs(1),
            ..Behaviour::default()
        },
        json!({"reconnect_min": "20ms", "reconnect_max": "200ms", "outbound_backlog_limit": 0}),
    )
    .await;

    let mut conn = connect(&redis).await;
    streams::fill(&mut conn, "chaos", MESSAGES).await;
    streams::wait_all_delivered(&mut conn, "chaos", MESSAGES, Duration::from_secs(240)).await;

    let c = sim.counters();
    assert!(
        c.disconnects_injected >= 5,
        "the link was dropped only {} times",
        c.disconnects_injected
    );
    // Every report correlated: one final report per message and nothing unmatched.
    let reports = streams::entries(&mut conn, "cmpp:reports").await;
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
    let finals: HashSet<&str> = reports
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
    assert_eq!(
        streams::pending(&mut conn).await,
        0,
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
