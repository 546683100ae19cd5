//! The report path's scripts (`lua/correlate.lua`, `report_write.lua`, `report_hold.lua`,
//! `report_resolve.lua`) run on their own against a real redis-server, through
//! `Store::record_report` and `Store::resolve_held_report`, with the states and markers a crash
//! between their steps leaves set up by hand: each step can run again, and a DELIVER is written
//! once and counted once however far an earlier try got.

use std::collections::HashMap;

use cmpp_gateway::store::{
    HeldReport, MessageStatus, ReportOutcome, Store, Submitted, WhenUnmapped, now_ms,
};
use redis::aio::MultiplexedConnection;

use crate::common::keys;
use crate::common::redis::{RedisServer, connect};
use crate::receive_reports::report_deliver;

const TO: &str = "13800138000";

struct Rig {
    store: Store,
    conn: MultiplexedConnection,
    _redis: RedisServer,
}

async fn rig() -> Rig {
    let redis = RedisServer::start();
    let store = crate::common::gateway::store(&redis).await;
    let conn = connect(&redis).await;
    Rig {
        store,
        conn,
        _redis: redis,
    }
}

impl Rig {
    /// Message `id` of `segments` segments, each with its Msg_Id mapped (`first_msg_id` + n - 1)
    /// and a submitted state with these fields besides.
    async fn message(&mut self, id: &str, first_msg_id: u64, segments: u8, extra: &[(&str, &str)]) {
        let key = keys().state(id);
        let mut pipe = redis::pipe();
        for n in 1..=segments {
            let record = Submitted {
                id: id.into(),
                segment: n,
                segments,
                to: TO.into(),
            };
            pipe.cmd("SET")
                .arg(keys().msg_id(first_msg_id + u64::from(n) - 1))
                .arg(rmp_serde::to_vec(&record).unwrap())
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(&key)
            .arg(
                &[
                    ("id", id),
                    ("to", TO),
                    ("status", "submitting"),
                    ("submitted_at", "1"),
                ][..],
            )
            .ignore();
        if !extra.is_empty() {
            pipe.cmd("HSET").arg(&key).arg(extra).ignore();
        }
        let () = pipe.query_async(&mut self.conn).await.unwrap();
    }

    async fn state(&mut self, id: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(keys().state(id))
            .query_async(&mut self.conn)
            .await
            .unwrap()
    }

    async fn reports(&mut self) -> Vec<HashMap<String, String>> {
        let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(keys().reports())
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        rows.into_iter().map(|(_, fields)| fields).collect()
    }

    /// This minute's `delivered` and `failed` counters.
    async fn counted(&mut self) -> (u64, u64) {
        let (d, f): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(keys().minute_counters(now_ms() / 60_000))
            .arg("delivered")
            .arg("failed")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        (d.unwrap_or(0), f.unwrap_or(0))
    }

    async fn record(&self, deliver_id: u64, msg_id: u64, stat: &str) -> ReportOutcome {
        let (deliver, report) = report_deliver(deliver_id, msg_id, stat);
        self.store
            .record_report(&deliver, &report, now_ms(), WhenUnmapped::Hold)
            .await
            .unwrap()
    }
}

/// The report that completes a message decides it and carries `status`; the one before does
/// not. ACCEPTD is reported but counts for nothing.
#[tokio::test]
async fn the_report_that_completes_a_message_decides_it_once() {
    let mut rig = rig().await;
    rig.message("c1", 100, 2, &[]).await;
    assert_eq!(
        rig.record(1, 100, "ACCEPTD").await,
        ReportOutcome::Written { decided: None }
    );
    assert_eq!(
        rig.record(2, 100, "DELIVRD").await,
        ReportOutcome::Written { decided: None }
    );
    assert_eq!(
        rig.record(3, 101, "UNDELIV").await,
        ReportOutcome::Written {
            decided: Some(MessageStatus::Failed)
        }
    );
    let state = rig.state("c1").await;
    assert_eq!(
        (state["status"].as_str(), state["error"].as_str()),
        ("failed", "Stat UNDELIV")
    );
    assert_eq!(state["decided_by"], "3");
    assert_eq!(state["s1_delivers"], "1 2");
    let reports = rig.reports().await;
    let statuses: Vec<Option<&str>> = reports
        .iter()
        .map(|r| r.get("status").map(String::as_str))
        .collect();
    assert_eq!(statuses, [None, None, Some("failed")]);
    assert_eq!(rig.counted().await, (0, 1));
}

/// A crash after the message's state was brought up to date but before the entry was written
/// (state: the DELIVER listed, the message decided by it; no marker, no entry): the ISMG
/// redelivers, the entry is written with the status and the decision is counted, once.
#[tokio::test]
async fn a_redelivery_after_a_crash_between_the_steps_is_written_and_counted_once() {
    let mut rig = rig().await;
    rig.message(
        "k1",
        200,
        1,
        &[
            ("status", "delivered"),
            ("s1_stat", "DELIVRD"),
            ("s1_delivers", "9"),
            ("decided_by", "9"),
        ],
    )
    .await;
    assert_eq!(
        rig.record(9, 200, "DELIVRD").await,
        ReportOutcome::Written {
            decided: Some(MessageStatus::Delivered)
        }
    );
    assert_eq!(
        rig.record(9, 200, "DELIVRD").await,
        ReportOutcome::Duplicate
    );
    let reports = rig.reports().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["status"], "delivered");
    assert_eq!(rig.counted().await, (1, 0));
    assert_eq!(rig.state("k1").await["s1_delivers"], "9", "listed once");
}

/// A report whose Msg_Id is mapped but whose message's state expired is still written with
/// the message's id, decides nothing and recreates no state.
#[tokio::test]
async fn a_report_for_a_message_whose_state_is_gone_is_written_without_recreating_it() {
    let mut rig = rig().await;
    rig.message("g1", 300, 1, &[]).await;
    let () = redis::cmd("DEL")
        .arg(keys().state("g1"))
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    assert_eq!(
        rig.record(30, 300, "DELIVRD").await,
        ReportOutcome::Written { decided: None }
    );
    assert!(rig.state("g1").await.is_empty());
    let reports = rig.reports().await;
    assert_eq!(
        (reports[0]["id"].as_str(), reports[0].get("status")),
        ("g1", None)
    );
}

/// A held report (Msg_Id not mapped yet): a correlated redelivery once it is mapped writes it
/// in the held one's place and releases it, so the resolve that follows finds nothing; an
/// unmapped redelivery while held is a duplicate.
#[tokio::test]
async fn a_held_report_is_written_once_by_whichever_comes_first() {
    let mut rig = rig().await;
    assert_eq!(rig.record(40, 400, "DELIVRD").await, ReportOutcome::Held);
    assert_eq!(
        rig.record(40, 400, "DELIVRD").await,
        ReportOutcome::Duplicate
    );
    rig.message("h1", 400, 1, &[]).await;
    assert_eq!(
        rig.record(40, 400, "DELIVRD").await,
        ReportOutcome::Written {
            decided: Some(MessageStatus::Delivered)
        }
    );
    let (deliver, report) = report_deliver(40, 400, "DELIVRD");
    let held = HeldReport::new(&deliver, &report);
    assert_eq!(
        rig.store.resolve_held_report(&held, true).await.unwrap(),
        ReportOutcome::Duplicate
    );
    assert_eq!(rig.reports().await.len(), 1);
    let held_left: u64 = redis::cmd("ZCARD")
        .arg(keys().held_reports())
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    assert_eq!(held_left, 0);
    assert_eq!(rig.counted().await, (1, 0));
}

/// Resolving a held report that never got its Msg_Id: written `unmatched=1`, indexed under
/// the number it names, once; two resolves racing write it once.
#[tokio::test]
async fn a_held_report_given_up_is_written_unmatched_once() {
    let mut rig = rig().await;
    assert_eq!(rig.record(50, 500, "DELIVRD").await, ReportOutcome::Held);
    let (deliver, report) = report_deliver(50, 500, "DELIVRD");
    let held = HeldReport::new(&deliver, &report);
    assert_eq!(
        rig.store.resolve_held_report(&held, false).await.unwrap(),
        ReportOutcome::Held
    );
    let (a, b) = tokio::join!(
        rig.store.resolve_held_report(&held, true),
        rig.store.resolve_held_report(&held, true)
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [ReportOutcome::Duplicate, ReportOutcome::WrittenUnmatched]
    );
    let reports = rig.reports().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["unmatched"], "1");
    let indexed: u64 = redis::cmd("ZCARD")
        .arg(keys().reports_index(TO))
        .query_async(&mut rig.conn)
        .await
        .unwrap();
    assert_eq!(indexed, 1);
}
