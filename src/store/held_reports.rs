//! Status reports held until their Msg_Id is mapped.
//!
//! A report can arrive before the SUBMIT_RESP bookkeeping of its own message (usually by a
//! millisecond or two), or for a Msg_Id that is never mapped (a lost SUBMIT_RESP, another system
//! on the same account, a report after the state's TTL, a Redis restart). Waiting for the map
//! with the DELIVER unanswered would hold one of the few DELIVER slots the ISMG allows, and
//! every report behind it. So the report script holds such a report in Redis instead (its
//! DELIVER is then answered), and [`RESOLVE`] writes it later: correlated as soon as its Msg_Id
//! is mapped, with `unmatched=1` only once `report_match_wait` is over. The receive path retries
//! in-process right after answering the DELIVER; a sweeper that any instance with a link runs finishes
//! what a crash or a shutdown left held.
//!
//! # Redis layout (prefix `cmpp`)
//! * `cmpp:report:held:{DELIVER Msg_Id}` — hash of the report entry's fields; TTL `state_ttl`,
//!   a safety net only: the sweeper acts long before.
//! * `cmpp:report:pending` — sorted set of held DELIVER Msg_Ids, score = arrival (Unix ms).
//! * `cmpp:seen:{DELIVER Msg_Id}` — claimed when the report is held, so a redelivery of its
//!   DELIVER is recognised while it waits; dropped once the message's state lists the DELIVER.

use std::sync::LazyLock;

use redis::Script;

use super::counters::COUNTER_TTL;
use super::index::INDEX_ADD_FN;
use super::reports::{CORRELATE_FN, parse_outcome};
use super::scripts::{STATUS_FN, with_helpers};
use super::{ReportOutcome, Store, StoreError, Submitted, now_ms};
use crate::message::normalize_msisdn;
use crate::protocol::{Deliver, StatusReport};

/// KEYS[1] held-report hash, KEYS[2] held-report index, KEYS[3] Msg_Id map key, KEYS[4] reports
/// stream, KEYS[5] seen-marker of the DELIVER, KEYS[6] the mapped message's state key or "",
/// KEYS[7] the report index of the number (the message's `to`, else the report's `dest`; ""
/// when there is none),
/// KEYS[8] this minute's counters. ARGV[1] the message id the keys were derived for ("" when
/// the caller saw no mapping), ARGV[2] `1` to write it unmatched when still not mapped,
/// ARGV[3] TTL ms, ARGV[4] approximate MAXLEN, ARGV[5] now (ms), ARGV[6] the counters' TTL ms,
/// ARGV[7] the DELIVER's Msg_Id.
/// Returns `gone` (written by someone else, or expired), `stale` (the mapping is not the one
/// the keys were derived for: derive them again), `held` (not mapped, not giving up),
/// `duplicate` (a redelivery of its DELIVER was written correlated meanwhile), or `written…` as
/// the report script does.
static RESOLVE: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        &[STATUS_FN, INDEX_ADD_FN, CORRELATE_FN],
        include_str!("lua/resolve.lua"),
    )
});

/// How often [`Store::resolve_held_report`] derives its keys again when the mapping changes
/// under it (it is written once, so more than one retry is never expected).
const RESOLVE_TRIES: usize = 3;

/// Held reports read per round trip, and round trips per sweep.
const SWEEP_BATCH: usize = 200;
const SWEEP_BATCHES: usize = 10;

/// A held report, as much of it as correlating it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReport {
    pub deliver_msg_id: u64,
    /// The Msg_Id the report is about.
    pub msg_id: u64,
    /// The report's destination, to index an unmatched report under.
    pub dest: String,
    pub stat: String,
}

impl HeldReport {
    pub fn new(deliver: &Deliver, report: &StatusReport) -> HeldReport {
        HeldReport {
            deliver_msg_id: deliver.msg_id.0,
            msg_id: report.msg_id.0,
            dest: report.dest_terminal_id.clone(),
            stat: report.stat.clone(),
        }
    }
}

/// What one sweep did with each overdue held report.
pub type HeldSweep = Vec<(HeldReport, ReportOutcome)>;

impl Store {
    /// Writes a held report if its Msg_Id is mapped now (correlated), or with `give_up` in any
    /// case (`unmatched=1` when it is not). [`ReportOutcome::Held`] means it stays held;
    /// [`ReportOutcome::Duplicate`] that someone else wrote it.
    pub async fn resolve_held_report(
        &self,
        held: &HeldReport,
        give_up: bool,
    ) -> Result<ReportOutcome, StoreError> {
        let map_key = self.keys.msg_id(held.msg_id);
        for _ in 0..RESOLVE_TRIES {
            let mapped: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&map_key)
                .query_async(&mut self.conn())
                .await?;
            let holder = match mapped {
                Some(bytes) => Some(
                    rmp_serde::from_slice::<Submitted>(&bytes)
                        .map_err(|e| StoreError::Unexpected(format!("{map_key}: {e}")))?,
                ),
                // Nothing to correlate with yet: stays held, no script run.
                None if !give_up => return Ok(ReportOutcome::Held),
                None => None,
            };
            let (id, state, number) = match &holder {
                Some(h) => (h.id.as_str(), self.keys.state(&h.id), h.to.clone()),
                None => ("", String::new(), normalize_msisdn(&held.dest)),
            };
            let now = now_ms();
            let outcome: String = RESOLVE
                .key(self.keys.held_report(held.deliver_msg_id))
                .key(self.keys.held_reports())
                .key(&map_key)
                .key(self.keys.reports())
                .key(self.keys.seen_deliver(held.deliver_msg_id))
                .key(state)
                .key(if number.is_empty() {
                    String::new()
                } else {
                    self.keys.reports_index(&number)
                })
                .key(self.keys.minute_counters(now / 60_000))
                .arg(id)
                .arg(if give_up { "1" } else { "0" })
                .arg(self.ttl_ms())
                .arg(self.config.inbound_maxlen)
                .arg(now)
                .arg(COUNTER_TTL.as_millis() as u64)
                .arg(held.deliver_msg_id)
                .invoke_async(&mut self.conn())
                .await?;
            match outcome.as_str() {
                "stale" => continue,
                "gone" => return Ok(ReportOutcome::Duplicate),
                other => return parse_outcome(other),
            }
        }
        Ok(ReportOutcome::Held)
    }

    /// Resolves, giving up, every report held since `cutoff_ms` or earlier: correlated if its
    /// Msg_Id is mapped by now, else unmatched. Every instance may run it: [`RESOLVE`] is
    /// atomic and conditional, so a held report becomes one entry. A report that cannot be
    /// resolved for a reason other than Redis being unreachable is logged and left held for the
    /// next sweep (its hash expires after `state_ttl` at the latest).
    pub async fn sweep_held_reports(&self, cutoff_ms: u64) -> Result<HeldSweep, StoreError> {
        let mut done = Vec::new();
        // Reports left held (not resolvable now) stay in the index: read past them.
        let mut left = 0;
        for _ in 0..SWEEP_BATCHES {
            let due: Vec<u64> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.held_reports())
                .arg("-inf")
                .arg(cutoff_ms)
                .arg("LIMIT")
                .arg(left)
                .arg(SWEEP_BATCH)
                .query_async(&mut self.conn())
                .await?;
            for held in self.read_held(&due).await? {
                match self.resolve_held_report(&held, true).await {
                    Ok(ReportOutcome::Held) => left += 1,
                    Ok(outcome) => done.push((held, outcome)),
                    Err(e) if e.is_unavailable() => return Err(e),
                    Err(e) => {
                        tracing::warn!(deliver_msg_id = held.deliver_msg_id, error = %e, "held report cannot be written; left for the next sweep");
                        left += 1;
                    }
                }
            }
            if due.len() < SWEEP_BATCH {
                break;
            }
        }
        Ok(done)
    }

    /// The held reports of these DELIVER Msg_Ids, in one round trip; one whose hash is gone
    /// reads as Msg_Id 0, which [`Store::resolve_held_report`] clears from the index.
    async fn read_held(&self, delivers: &[u64]) -> Result<Vec<HeldReport>, StoreError> {
        if delivers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for d in delivers {
            pipe.cmd("HMGET")
                .arg(self.keys.held_report(*d))
                .arg(&["msg_id", "dest", "stat"][..]);
        }
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
            pipe.query_async(&mut self.conn()).await?;
        Ok(delivers
            .iter()
            .zip(rows)
            .map(|(d, (msg_id, dest, stat))| HeldReport {
                deliver_msg_id: *d,
                msg_id: msg_id.and_then(|m| m.parse().ok()).unwrap_or(0),
                dest: dest.unwrap_or_default(),
                stat: stat.unwrap_or_default(),
            })
            .collect())
    }
}
