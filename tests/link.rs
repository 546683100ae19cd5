//! The link against the built-in simulator over real TCP on 127.0.0.1. Timers are shortened
//! (tens to hundreds of milliseconds) instead of paused, because real sockets and a paused clock
//! do not mix: tokio would jump the clock while a socket read is pending.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::gateway;
use crate::common::link::{config, spawn, spawn_up, submit};
use cmpp_gateway::protocol::Version;
use cmpp_gateway::secret::Secret;
use cmpp_gateway::session::{
    AuthCheck, ConnectOutcome, DisconnectReason, LinkEvent, LinkState, SubmitError,
};
use cmpp_gateway::simulator::{self, Account, Behaviour, SimulatorConfig};
use tokio::time::Instant;

/// Polls `check` until it holds, for at most `limit`.
async fn eventually(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_up(e: &LinkEvent) -> bool {
    *e == LinkEvent::StateChanged {
        state: LinkState::Up,
    }
}

#[tokio::test]
async fn logs_in_and_submits() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let link = spawn_up(config(&sim)).await;
    let accepted = link.link().submit(submit(1)).await.expect("accepted");
    assert_ne!(accepted.msg_id.0, 0);
    assert_eq!(accepted.sends, 1);
    assert_eq!(sim.counters().submits_accepted, 1);
    assert_eq!(
        link.events.count(|e| *e
            == LinkEvent::ConnectAttempt {
                outcome: ConnectOutcome::Ok
            }),
        1
    );
    link.close().await;
    // Graceful close ends with TERMINATE.
    eventually("TERMINATE at the simulator", Duration::from_secs(5), || {
        sim.counters().terminates_received == 1
    })
    .await;
}

#[tokio::test]
async fn each_login_failure_is_typed_and_auth_failures_back_off_long() {
    let sim = gateway::simulator(Behaviour::default()).await;
    for (sp_id, secret, expected) in [("900009", "888888", 2u32), ("900001", "wrong", 3)] {
        let mut c = config(&sim);
        c.sp_id = sp_id.into();
        c.secret = Secret::new(secret);
        let link = spawn(c);
        eventually("two refused attempts", Duration::from_secs(5), || {
            link.events.count(|e| {
                *e == LinkEvent::ConnectAttempt {
                    outcome: ConnectOutcome::Refused(expected),
                }
            }) >= 2
        })
        .await;
        let status = link.link().status();
        assert!(
            status.reason.contains(&format!("Status {expected}")),
            "{status:?}"
        );
        let times = link
            .events
            .times(|e| matches!(e, LinkEvent::ConnectAttempt { .. }));
        // reconnect_min is 20 ms, but a refused login waits at least reconnect_max (300 ms).
        assert!(
            times[1] - times[0] >= Duration::from_millis(300),
            "{:?}",
            times[1] - times[0]
        );
        link.close().await;
    }
    let counters = sim.counters();
    assert!(
        counters.login_failed_bad_addr >= 2 && counters.login_failed_auth >= 2,
        "{counters:?}"
    );
}

#[tokio::test]
async fn a_2_0_answer_to_a_3_0_login_is_named_and_backed_off_like_a_refusal() {
    let sim = gateway::simulator(Behaviour {
        answer_v20: true,
        ..Behaviour::default()
    })
    .await;
    let link = spawn(config(&sim));
    eventually("two mismatched logins", Duration::from_secs(5), || {
        link.events.count(|e| {
            *e == LinkEvent::ConnectAttempt {
                outcome: ConnectOutcome::VersionMismatch,
            }
        }) >= 2
    })
    .await;
    let status = link.link().status();
    assert!(
        status.reason.contains(
            "the ISMG answered in CMPP 2.0 (Status 0) to a CMPP 3.0 login: set cmpp_version to 2.0"
        ),
        "{status:?}"
    );
    // Like a refused login: at least reconnect_max (300 ms) between attempts.
    let times = link
        .events
        .times(|e| matches!(e, LinkEvent::ConnectAttempt { .. }));
    assert!(
        times[1] - times[0] >= Duration::from_millis(300),
        "{times:?}"
    );
    link.close().await;
}

#[tokio::test]
async fn a_version_the_account_does_not_have_is_status_4_and_2_0_works() {
    let sim = simulator::start(SimulatorConfig {
        accounts: vec![Account::new("900002", "222222", Version::V20)],
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let mut c = config(&sim);
    c.sp_id = "900002".into();
    c.secret = Secret::new("222222");
    let link = spawn(c.clone());
    eventually("status 4", Duration::from_secs(5), || {
        link.events.count(|e| {
            *e == LinkEvent::ConnectAttempt {
                outcome: ConnectOutcome::Refused(4),
            }
        }) >= 1
    })
    .await;
    link.close().await;
    // The same account spoken to in 2.0 logs in and submits with 2.0 layouts.
    c.version = Version::V20;
    let link = spawn_up(c).await;
    let accepted = link
        .link()
        .submit(submit(7))
        .await
        .expect("2.0 submit accepted");
    assert_ne!(accepted.msg_id.0, 0);
    link.close().await;
}

#[tokio::test]
async fn the_window_is_never_exceeded() {
    let sim = gateway::simulator(Behaviour {
        response_delay: Duration::from_millis(5),
        window: 16,
        ..Behaviour::default()
    })
    .await;
    let link = spawn_up(config(&sim)).await;
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let l = link.link().clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    l.submit(submit(t * 100 + i)).await.expect("accepted");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let c = sim.counters();
    assert_eq!(c.submits_accepted, 64 * 30, "{c:?}");
    assert_eq!(
        c.window_violations, 0,
        "the simulator saw more than 16 unanswered: {c:?}"
    );
    assert!(
        (8..=16).contains(&c.max_unanswered),
        "max unanswered {} (window 16)",
        c.max_unanswered
    );
    let peak = link
        .events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::InFlight { count } => Some(count),
            _ => None,
        })
        .max();
    assert_eq!(peak, Some(16));
    link.close().await;
}

#[tokio::test]
async fn the_rate_limit_holds_within_five_percent() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let mut c = config(&sim);
    c.rate = 400;
    let link = spawn_up(c).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let l = link.link().clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    l.submit(submit(t * 100 + i)).await.expect("accepted");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = 800.0 / started.elapsed().as_secs_f64();
    assert!(
        (380.0..=420.0).contains(&rate),
        "800 submits at a limit of 400/s ran at {rate:.1}/s"
    );
    link.close().await;
}

#[tokio::test]
async fn unanswered_submits_are_resent_after_t_then_time_out() {
    let sim = gateway::simulator(Behaviour {
        drop_response_ratio: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut c = config(&sim);
    c.response_timeout = Duration::from_millis(200);
    let link = spawn_up(c).await;
    let started = Instant::now();
    let err = link.link().submit(submit(1)).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let SubmitError::Timeout {
        sequence_id,
        sends: 3,
        ..
    } = err
    else {
        panic!("expected a timeout after 3 sends, got {err:?}");
    };
    assert!(!err.is_retryable());
    let recorded = sim.recorded_submits();
    assert_eq!(recorded.len(), 3, "the identical PDU is sent 3 times");
    assert!(recorded.iter().all(|r| r.sequence_id == sequence_id));
    assert_eq!(link.link().stats().snapshot().retransmits, 2);
    link.close().await;
}

#[tokio::test]
async fn missed_heartbeats_drop_the_link_and_it_reconnects() {
    let sim = gateway::simulator(Behaviour {
        ignore_heartbeats: true,
        ..Behaviour::default()
    })
    .await;
    let mut c = config(&sim);
    c.heartbeat_idle = Duration::from_millis(100);
    c.response_timeout = Duration::from_millis(100);
    let link = spawn_up(c).await;
    eventually(
        "a reconnect after lost heartbeats",
        Duration::from_secs(5),
        || link.events.count(is_up) >= 2,
    )
    .await;
    assert!(
        link.events.count(|e| *e
            == LinkEvent::Disconnected {
                reason: DisconnectReason::HeartbeatLost
            })
            >= 1
    );
    assert!(link.events.count(|e| *e == LinkEvent::HeartbeatMissed) >= 3);
    assert!(sim.counters().heartbeats_ignored >= 3);
    link.close().await;
}

#[tokio::test]
async fn answered_heartbeats_keep_an_idle_link_up() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let mut c = config(&sim);
    c.heartbeat_idle = Duration::from_millis(50);
    let link = spawn_up(c).await;
    eventually("three answered heartbeats", Duration::from_secs(5), || {
        link.events.count(|e| *e == LinkEvent::HeartbeatAnswered) >= 3
    })
    .await;
    assert_eq!(
        link.events
            .count(|e| matches!(e, LinkEvent::Disconnected { .. })),
        0
    );
    assert!(sim.counters().heartbeats_answered >= 3);
    link.close().await;
}

#[tokio::test]
async fn a_peer_terminate_is_answered_and_the_link_reconnects() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let link = spawn_up(config(&sim)).await;
    assert_eq!(sim.terminate_all(), 1);
    eventually(
        "reconnected after TERMINATE",
        Duration::from_secs(5),
        || link.events.count(is_up) >= 2,
    )
    .await;
    assert_eq!(
        link.events.count(|e| *e
            == LinkEvent::Disconnected {
                reason: DisconnectReason::PeerTerminated
            }),
        1
    );
    link.link()
        .submit(submit(2))
        .await
        .expect("works after reconnect");
    link.close().await;
}

#[tokio::test]
async fn a_disconnect_with_a_full_window_sends_every_request_again_on_the_next_connection() {
    let sim = gateway::simulator(Behaviour {
        response_delay: Duration::from_secs(30),
        ..Behaviour::default()
    })
    .await;
    let link = spawn_up(config(&sim)).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let l = link.link().clone();
            tokio::spawn(async move { l.submit(submit(i)).await })
        })
        .collect();
    eventually(
        "16 submits at the simulator",
        Duration::from_secs(5),
        || sim.counters().submits_received == 16,
    )
    .await;
    assert_eq!(link.link().window_available(), 0);
    sim.set_behaviour(Behaviour::default()).unwrap();
    sim.disconnect_all();
    // The link keeps them across the drop and sends each again once: nothing is lost, nothing
    // goes back to the caller.
    for t in tasks {
        let accepted = t.await.unwrap().expect("accepted on the next connection");
        assert_eq!(accepted.sends, 2);
    }
    assert_eq!(sim.counters().submits_received, 32);
    assert_eq!(sim.counters().logins_ok, 2);
    link.close().await;
}

#[tokio::test]
async fn a_request_the_ismg_drops_the_connection_on_is_sent_alone_then_quarantined() {
    const POISON: &str = "13900000000";
    let sim = gateway::simulator(Behaviour {
        close_on_dest: POISON.into(),
        response_delay: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let mut c = config(&sim);
    c.max_sends = 10;
    c.quarantine_after_drops = 3;
    let link = spawn_up(c).await;
    let mut poison = submit(0);
    poison.dest_terminal_ids = vec![POISON.into()];
    let others: Vec<_> = (1..=15)
        .map(|i| {
            let l = link.link().clone();
            tokio::spawn(async move { l.submit(submit(i)).await })
        })
        .collect();
    let err = link.link().submit(poison).await.unwrap_err();
    assert!(
        matches!(err, SubmitError::Quarantined { drops: 3, .. }),
        "{err:?}"
    );
    // The others went down with it at most once (in the first burst): each was sent at most
    // twice.
    for t in others {
        let accepted = t.await.unwrap().expect("the others are accepted");
        assert!(accepted.sends <= 2, "{accepted:?}");
    }
    // Once in the first burst, then three times alone.
    assert_eq!(sim.counters().poison_closes, 4);
    assert_eq!(
        link.events
            .count(|e| matches!(e, LinkEvent::Quarantined { drops: 3 })),
        1
    );
    link.close().await;
}

#[tokio::test]
async fn a_request_is_sent_at_most_max_sends_times_across_reconnects() {
    // Every connection drops right after its second PDU (CONNECT, then the SUBMIT): the submit
    // is sent once per connection and never answered.
    let sim = gateway::simulator(Behaviour {
        close_after_pdus: 2,
        ..Behaviour::default()
    })
    .await;
    let mut c = config(&sim);
    c.max_sends = 3;
    c.quarantine_after_drops = 100;
    let link = spawn_up(c).await;
    let err = link.link().submit(submit(1)).await.unwrap_err();
    assert_eq!(err, SubmitError::Unconfirmed { sends: 3 });
    assert_eq!(
        sim.counters().submits_received,
        0,
        "each copy closed the connection first"
    );
    assert_eq!(sim.counters().pdus_received - sim.counters().logins_ok, 3);
    link.close().await;
}

#[tokio::test]
async fn a_link_that_drops_soon_after_each_login_backs_off_exponentially() {
    // Every connection ends at its second PDU: an idle link's first ACTIVE_TEST.
    let sim = gateway::simulator(Behaviour {
        close_after_pdus: 2,
        ..Behaviour::default()
    })
    .await;
    let mut c = config(&sim);
    c.heartbeat_idle = Duration::from_millis(5);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(640);
    c.reconnect_reset_after = Duration::from_secs(60);
    let link = spawn(c);
    eventually("eight logins", Duration::from_secs(20), || {
        link.events.count(is_up) >= 8
    })
    .await;
    let delays: Vec<Duration> = link
        .events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::ReconnectScheduled { delay } => Some(delay),
            _ => None,
        })
        .collect();
    // Equal jitter: the n-th wait is between half and all of min·2ⁿ (capped at max).
    for (n, d) in delays.iter().take(7).enumerate() {
        let base = Duration::from_millis(20 * (1 << n)).min(Duration::from_millis(640));
        assert!(
            *d >= base / 2 && *d <= base,
            "wait {n}: {d:?} (all: {delays:?})"
        );
    }
    // And the logins really were that far apart.
    let ups = link.events.times(is_up);
    assert!(ups[7] - ups[6] >= Duration::from_millis(640) / 2, "{ups:?}");
    link.close().await;
}

#[tokio::test]
async fn a_malformed_pdu_resets_the_link_without_a_panic() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let link = spawn_up(config(&sim)).await;
    assert_eq!(sim.inject_malformed(), 1);
    eventually(
        "reconnected after a malformed PDU",
        Duration::from_secs(5),
        || link.events.count(is_up) >= 2,
    )
    .await;
    assert_eq!(link.events.count(|e| *e == LinkEvent::MalformedPdu), 1);
    assert_eq!(
        link.events.count(|e| *e
            == LinkEvent::Disconnected {
                reason: DisconnectReason::Malformed
            }),
        1
    );
    link.link()
        .submit(submit(3))
        .await
        .expect("works after reconnect");
    link.close().await;
}

#[tokio::test]
async fn sequence_ids_stay_unique_across_reconnects() {
    let sim = gateway::simulator(Behaviour::default()).await;
    let link = spawn_up(config(&sim)).await;
    for round in 0..3u32 {
        assert!(link.link().wait_up().await);
        for i in 0..50 {
            link.link()
                .submit(submit(round * 100 + i))
                .await
                .expect("accepted");
        }
        match round {
            0 => assert_eq!(sim.disconnect_all(), 1),
            1 => assert_eq!(sim.terminate_all(), 1),
            _ => {}
        }
        // One login, plus one per fault injected so far.
        let ups = 1 + (round as usize + 1).min(2);
        eventually("reconnected", Duration::from_secs(5), || {
            link.events.count(is_up) >= ups
        })
        .await;
    }
    let ids: Vec<u32> = sim
        .recorded_submits()
        .iter()
        .map(|r| r.sequence_id)
        .collect();
    assert_eq!(ids.len(), 150);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        150,
        "a Sequence_Id was reused: {ids:?}"
    );
    link.close().await;
}

#[tokio::test]
async fn a_report_is_acknowledged_only_after_the_caller_confirms() {
    let sim = gateway::simulator(Behaviour {
        deliver_retry: Duration::from_millis(200),
        ..Behaviour::default()
    })
    .await;
    let mut running = spawn_up(config(&sim)).await;
    let mut s = submit(5);
    s.registered_delivery = 1;
    let accepted = running.link().submit(s).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), running.parts.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    let report = first
        .deliver
        .decoded()
        .and_then(|d| d.report())
        .expect("a report")
        .expect("decodes");
    assert_eq!(report.msg_id, accepted.msg_id);
    assert_eq!(report.stat, "DELIVRD");
    // Refused: the simulator delivers the same DELIVER again.
    first.ack.refuse(8);
    let again = tokio::time::timeout(Duration::from_secs(5), running.parts.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.deliver.msg_id(), first.deliver.msg_id());
    assert_eq!(sim.counters().reports_acked, 0);
    again.ack.confirm();
    eventually("the report acknowledged", Duration::from_secs(5), || {
        sim.counters().reports_acked == 1
    })
    .await;
    running.close().await;
}

#[tokio::test]
async fn a_graceful_close_waits_for_in_flight_responses() {
    let sim = gateway::simulator(Behaviour {
        response_delay: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let link = spawn_up(config(&sim)).await;
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let l = link.link().clone();
            tokio::spawn(async move { l.submit(submit(i)).await })
        })
        .collect();
    eventually("5 submits at the simulator", Duration::from_secs(5), || {
        sim.counters().submits_received == 5
    })
    .await;
    let handle = link.link().clone();
    link.close().await;
    for t in tasks {
        t.await.unwrap().expect("answered before TERMINATE");
    }
    assert_eq!(handle.submit(submit(9)).await, Err(SubmitError::Closed));
    assert_eq!(handle.status().state, LinkState::Closed);
    assert_eq!(sim.counters().terminates_received, 1);
}

#[tokio::test]
async fn the_three_authenticator_modes() {
    let sim = gateway::simulator(Behaviour {
        bad_authenticator: true,
        ..Behaviour::default()
    })
    .await;
    let mismatch = |e: &LinkEvent| *e == LinkEvent::AuthenticatorMismatch;

    let mut strict = config(&sim);
    strict.auth_check = AuthCheck::Strict;
    let link = spawn(strict);
    eventually("a strict refusal", Duration::from_secs(5), || {
        link.events.count(|e| {
            *e == LinkEvent::ConnectAttempt {
                outcome: ConnectOutcome::AuthenticatorMismatch,
            }
        }) >= 1
    })
    .await;
    assert_eq!(link.events.count(is_up), 0, "strict mode must not go up");
    link.close().await;

    let mut warn = config(&sim);
    warn.auth_check = AuthCheck::Warn;
    let link = spawn_up(warn).await;
    assert_eq!(
        link.events.count(mismatch),
        1,
        "warn mode counts the mismatch"
    );
    assert_eq!(link.link().stats().snapshot().authenticator_mismatches, 1);
    link.close().await;

    let mut off = config(&sim);
    off.auth_check = AuthCheck::Off;
    let link = spawn_up(off).await;
    assert_eq!(link.events.count(mismatch), 0, "off mode does not look");
    link.close().await;

    // And a correct authenticator passes the strict check.
    sim.set_behaviour(Behaviour::default()).unwrap();
    let mut strict = config(&sim);
    strict.auth_check = AuthCheck::Strict;
    let link = spawn_up(strict).await;
    assert_eq!(link.events.count(mismatch), 0);
    link.close().await;
}
