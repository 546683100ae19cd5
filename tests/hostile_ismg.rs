//! The gateway against an ISMG that misbehaves the way real ones do: a DELIVER nobody can decode
//! (resent after every login until answered), bytes after the last field, 2.0-layout responses on
//! a 3.0 link, a SUBMIT sent to the SP, an ACTIVE_TEST_RESP without its Reserved byte, and a
//! message the ISMG chokes on (it drops the connection whenever that message arrives). None of
//! them may cost the link, and no message may be sent more than `max_sends` times.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::gateway;
use crate::common::redis::connect as redis_connect;
use crate::common::streams::{self, field};
use crate::common::wait::until;
use cmpp_gateway::simulator::{
    Behaviour, Counters, Damage, DamagedDeliverRequest, IsmgSubmitRequest, SimulatorHandle,
};
use serde_json::json;

/// SUBMITs the simulator received, by text: a message's copies.
fn copies(sim: &SimulatorHandle) -> HashMap<String, usize> {
    let mut by_text = HashMap::new();
    for s in sim.recorded_submits() {
        *by_text
            .entry(String::from_utf8_lossy(&s.msg_content).into_owned())
            .or_default() += 1;
    }
    by_text
}

/// Waits until the simulator's counters satisfy `holds`.
async fn counters_until(sim: &SimulatorHandle, what: &str, holds: impl Fn(&Counters) -> bool) {
    until(what, Duration::from_secs(20), || async {
        let c = sim.counters();
        if holds(&c) {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await
}

/// Sends `count` messages `{prefix}-{i}` and waits until all are delivered; each was submitted
/// exactly once and the link never dropped (one login).
async fn all_delivered_once_on_one_login(stack: &gateway::Stack, prefix: &str, count: usize) {
    let mut conn = redis_connect(&stack.redis).await;
    streams::fill(&mut conn, prefix, count).await;
    streams::wait_all_delivered(&mut conn, prefix, count, Duration::from_secs(30)).await;
    let copies = copies(&stack.sim);
    for i in 0..count {
        assert_eq!(copies.get(&format!("{prefix} {i}")), Some(&1), "{copies:?}");
    }
    assert_eq!(stack.sim.counters().logins_ok, 1, "the link dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliver_nobody_can_decode_is_answered_and_kept_without_dropping_the_link() {
    let stack = gateway::stack(Behaviour::default(), json!({})).await;
    for report in [false, true] {
        stack
            .sim
            .send_damaged_deliver(DamagedDeliverRequest {
                damage: Damage::MsgLengthOverrun,
                report,
                sp_id: None,
            })
            .unwrap();
    }
    all_delivered_once_on_one_login(&stack, "undecodable", 10).await;

    let mut conn = redis_connect(&stack.redis).await;
    for stream in ["cmpp:mo", "cmpp:reports"] {
        let kept = streams::entries(&mut conn, stream).await;
        let malformed: Vec<_> = kept
            .iter()
            .filter(|e| field(e, "malformed") == Some("1"))
            .collect();
        assert_eq!(malformed.len(), 1, "{stream}: {kept:?}");
        assert!(
            field(malformed[0], "body_hex").is_some_and(|h| h.len() > 100),
            "{stream}: the raw body is kept: {malformed:?}"
        );
    }
    // Answered, with a Result that tells the ISMG it cannot be read.
    counters_until(&stack.sim, "both answered Result 1", |c| {
        c.deliver_resp_nonzero >= 2
    })
    .await;
    stack.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_the_last_field_of_every_pdu_are_skipped() {
    let stack = gateway::stack(
        Behaviour {
            trailing_bytes: 8,
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;
    stack
        .sim
        .send_damaged_deliver(DamagedDeliverRequest {
            damage: Damage::TrailingBytes,
            report: false,
            sp_id: None,
        })
        .unwrap();
    all_delivered_once_on_one_login(&stack, "padded", 10).await;
    let mut conn = redis_connect(&stack.redis).await;
    let mo = streams::entries(&mut conn, "cmpp:mo").await;
    assert_eq!(mo.len(), 1, "{mo:?}");
    assert_eq!(field(&mo[0], "text"), Some("damaged"));
    stack.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_0_layout_submit_resp_on_a_3_0_link_is_read_and_its_reports_correlate() {
    let stack = gateway::stack(
        Behaviour {
            v20_responses: true,
            ..Behaviour::default()
        },
        json!({}),
    )
    .await;
    all_delivered_once_on_one_login(&stack, "layout20", 10).await;
    stack.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_from_the_ismg_is_answered_and_the_link_stays_up() {
    let stack = gateway::stack(Behaviour::default(), json!({})).await;
    let sim = stack.sim.clone();
    counters_until(&sim, "the link is up", |c| c.logins_ok == 1).await;
    // The simulator counts a login before it registers the connection for faults; a SUBMIT
    // that found no connection was not sent, so sending again is safe.
    for valid in [false, true] {
        until(
            "the SUBMIT reaches the connection",
            Duration::from_secs(10),
            || async {
                match sim.send_ismg_submit(IsmgSubmitRequest { valid }) {
                    1 => Ok(()),
                    n => Err(format!("{n} connections")),
                }
            },
        )
        .await;
    }
    counters_until(&sim, "both SUBMITs answered", |c| {
        c.ismg_submit_resps_received == 2
    })
    .await;
    all_delivered_once_on_one_login(&stack, "after-submit", 5).await;
    stack.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_test_resp_without_reserved_answers_the_heartbeat() {
    let stack = gateway::stack(
        Behaviour {
            active_test_resp_without_reserved: true,
            ..Behaviour::default()
        },
        json!({"heartbeat_idle": "50ms"}),
    )
    .await;
    counters_until(&stack.sim, "ten heartbeats answered", |c| {
        c.heartbeats_answered >= 10
    })
    .await;
    all_delivered_once_on_one_login(&stack, "heartbeat", 5).await;
    stack.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_ismg_chokes_on_is_sent_at_most_max_sends_times_then_dead_lettered() {
    const POISON: &str = "13900000000";
    let stack = gateway::stack(
        Behaviour {
            close_on_dest: POISON.into(),
            ..Behaviour::default()
        },
        json!({"max_sends": 3}),
    )
    .await;
    let mut conn = redis_connect(&stack.redis).await;
    let () = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["id", "poison", "to", POISON, "text", "poison"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    streams::fill(&mut conn, "innocent", 20).await;
    streams::wait_all_delivered(&mut conn, "innocent", 20, Duration::from_secs(60)).await;

    let dead = streams::wait_dead_letters(&mut conn, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(field(&dead[0], "id"), Some("poison"));
    let reason = field(&dead[0], "reason").unwrap_or_default();
    assert!(reason.contains("dropped"), "{reason}");

    // The simulator closes before it records the poison: its copies are the closes.
    assert!(stack.sim.counters().poison_closes <= 3);
    let copies = copies(&stack.sim);
    for i in 0..20 {
        assert!(copies[&format!("innocent {i}")] <= 3, "{copies:?}");
    }
    // Acknowledged: nothing will send it again.
    streams::wait_nothing_pending(&mut conn).await;
    stack.gw.stop().await;
}
