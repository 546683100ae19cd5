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
//! # Redis layout (prefix `cmpp`; all in the report stream's slot, `{cmpp:reports}`)
//! * `cmpp:report:held:{cmpp:reports}:<DELIVER Msg_Id>` — hash of the report entry's fields;
//!   TTL `state_ttl`, a safety net only: the sweeper acts long before.
//! * `cmpp:report:pending:{cmpp:reports}` — sorted set of held DELIVER Msg_Ids, score = arrival
//!   (Unix ms).
//! * `cmpp:seen:{cmpp:reports}:<DELIVER Msg_Id>` — claimed when the report is held, so a
//!   redelivery of its DELIVER is recognised while it waits and after it is written.
//!
//! Resolving is the report path's steps again: the Msg_Id map, the message's state
//! (`correlate`), then [`REPORT_RESOLVE`], which writes the entry only while the held hash
//! exists and deletes it with the write, so one of two instances resolving it writes it.

use std::sync::LazyLock;

use redis::Script;

use super::counters::COUNTER_TTL;
use super::index::INDEX_ADD_FN;
use super::reports::Correlation;
use super::scripts::with_helpers;
use super::{Batch, ReportOutcome, Store, StoreError, now_ms};
use crate::protocol::{Deliver, StatusReport};

/// KEYS[1] held-report hash, KEYS[2] held-report index, KEYS[3] reports stream, KEYS[4] the
/// number's report index, KEYS[5] this minute's counters. ARGV[1] TTL ms, ARGV[2] approximate
/// MAXLEN, ARGV[3] the DELIVER's Msg_Id, ARGV[4] the counter to add 1 to or "", ARGV[5] the
/// counters' TTL ms, ARGV[6] `1` to index it, then field/value pairs to add to the held ones.
/// Returns 1 when written, 0 when the held report is gone.
pub(super) static REPORT_RESOLVE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[INDEX_ADD_FN], include_str!("lua/report_resolve.lua")));

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
    /// Writes a held report: correlated when its Msg_Id is mapped now; flagged `unmatched=1`
    /// when it is not and `give_up` (its wait is over); else it stays held (`Held`). `Duplicate`
    /// when someone else wrote it first.
    pub async fn resolve_held_report(
        &self,
        held: &HeldReport,
        give_up: bool,
    ) -> Result<ReportOutcome, StoreError> {
        let now = now_ms();
        let correlation = match self.mapped(held.msg_id).await? {
            Some(holder) => {
                self.correlate(&holder, &held.stat, now, held.deliver_msg_id)
                    .await?
            }
            None if !give_up => return Ok(ReportOutcome::Held),
            None => Correlation::unmatched(&held.dest),
        };
        let mut pipe = Batch::new();
        pipe.invoke_script(
            REPORT_RESOLVE
                .key(self.keys.held_report(held.deliver_msg_id))
                .key(self.keys.held_reports())
                .key(self.keys.reports())
                .key(correlation.index(self))
                .key(self.keys.minute_counters(now / 60_000))
                .arg(self.ttl_ms())
                .arg(self.config.inbound_maxlen)
                .arg(held.deliver_msg_id)
                .arg(correlation.counter())
                .arg(COUNTER_TTL.as_millis() as u64)
                .arg(correlation.indexed())
                .arg(&correlation.fields[..]),
        );
        let written: Vec<i64> = self.query_pipeline(&pipe).await?;
        Ok(match written.first() {
            Some(1) if !correlation.matched => ReportOutcome::WrittenUnmatched,
            Some(1) => ReportOutcome::Written {
                decided: correlation.decided,
            },
            _ => ReportOutcome::Duplicate,
        })
    }

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
        let mut pipe = Batch::new();
        for d in delivers {
            pipe.cmd("HMGET")
                .arg(self.keys.held_report(*d))
                .arg(&["msg_id", "dest", "stat"][..]);
        }
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
            self.query_pipeline(&pipe).await?;
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
