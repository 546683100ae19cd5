//! Status reports into the reports stream, correlated to our message through the Msg_Id map,
//! with the message's state brought up to date in the same atomic step; a report whose Msg_Id
//! is not mapped yet is held (see `held_reports`).

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::counters::COUNTER_TTL;
use super::index::INDEX_ADD_FN;
use super::scripts::{STATUS_FN, with_helpers};
use super::{MessageStatus, Store, StoreError};
use crate::message::normalize_msisdn;
use crate::protocol::{Deliver, StatusReport};

/// What happened to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Written to the reports stream, correlated; with the message's final status when this
    /// report decided it (`delivered` or `failed`).
    Written { decided: Option<MessageStatus> },
    /// Nothing written: this DELIVER was stored before (an ISMG redelivery), or a held report
    /// was already written by someone else.
    Duplicate,
    /// Written flagged `unmatched=1`: its Msg_Id maps to no message.
    WrittenUnmatched,
    /// Its Msg_Id is not mapped (yet): the report is held in Redis until it is, or until
    /// `report_match_wait` is over (see `held_reports`).
    Held,
}

/// What to do with a report whose Msg_Id maps to no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnmapped {
    /// Write it now, flagged `unmatched=1`.
    WriteUnmatched,
    /// Hold it (stored, so its DELIVER may be answered) and correlate it later.
    Hold,
}

/// Correlates one report to segment `rec[2]` of the message `rec` (the Msg_Id map's record:
/// id, segment, segments, to) whose state hash is `state`: appends `id`, `to`, `segment`,
/// `segments` (and `status` on the report that completes the message) to `fields` and brings
/// the state up to date. Returns `in_state` (false when the state is gone: the report is still
/// written, nothing is recreated), the decided status (`''`, `':delivered'`, `':failed'`), and
/// true as a third value when the state already lists this DELIVER (a redelivery: write
/// nothing). The state's TTL is not renewed: it runs from the message's start and outlasts a
/// report's 48 hours. Calls `effective_status`: goes after [`STATUS_FN`].
pub(crate) const CORRELATE_FN: &str = include_str!("lua/correlate.lua");

/// KEYS[1] reports stream, KEYS[2] seen-marker of the DELIVER, KEYS[3] Msg_Id map key or "",
/// KEYS[4] the DELIVER's held-report hash, KEYS[5] the held-report index.
/// ARGV[1] TTL ms, ARGV[2] approximate MAXLEN, ARGV[3] what to do unmapped: `write` (unmatched)
/// or `hold`, ARGV[4] state key prefix, ARGV[5] Stat, ARGV[6] now (ms), ARGV[7] per-number index
/// prefix, ARGV[8] the number to index an unmatched report under (or ""), ARGV[9] this minute's
/// counters key, ARGV[10] their TTL ms, ARGV[11] the DELIVER's Msg_Id, then the entry's own
/// field/value pairs. The Msg_Id map value is MessagePack of `Submitted` as an array: id,
/// segment, segments, to.
///
/// It runs once per message at full rate, and each `redis.call` costs Redis more than the
/// command itself, so it makes few: GET the map, one HMGET and one HSET of the state, the XADD,
/// the number's index (ZADD, PEXPIRE), and the minute's `delivered`/`failed` counter when the
/// report decides the message. A redelivered DELIVER is recognised in the state, which lists
/// the DELIVER Msg_Ids each segment's reports came in (`s{n}_delivers`); only a report with no
/// state to hold that (unmatched, held, malformed, state expired) claims a seen-marker key of
/// its own, and one whose Msg_Id is not mapped looks for it first. A held report claims it when
/// held, so a redelivery while it waits is known at once; the held-report script writes it
/// later (see `held_reports`), and a redelivery that finds the Msg_Id mapped first is written
/// then and recognised by that script in the state.
pub(crate) static REPORT: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        &[STATUS_FN, INDEX_ADD_FN, CORRELATE_FN],
        include_str!("lua/report.lua"),
    )
});

impl Store {
    /// Writes one status report, or holds it when its Msg_Id is not mapped and `unmapped`
    /// says so.
    pub async fn record_report(
        &self,
        deliver: &Deliver,
        report: &StatusReport,
        received_at: u64,
        unmapped: WhenUnmapped,
    ) -> Result<ReportOutcome, StoreError> {
        let invocation = self.report_invocation(deliver, report, received_at, unmapped);
        let outcome: String = invocation.invoke_async(&mut self.conn()).await?;
        parse_outcome(&outcome)
    }

    fn report_invocation(
        &self,
        deliver: &Deliver,
        report: &StatusReport,
        received_at: u64,
        unmapped: WhenUnmapped,
    ) -> ScriptInvocation<'static> {
        let entry = [
            ("msg_id", report.msg_id.to_string()),
            ("stat", report.stat.clone()),
            ("submit_time", report.submit_time.clone()),
            ("done_time", report.done_time.clone()),
            ("dest", report.dest_terminal_id.clone()),
            ("received_at", received_at.to_string()),
            ("deliver_msg_id", deliver.msg_id.to_string()),
        ];
        self.report_script(
            deliver,
            &self.keys.msg_id(report.msg_id.0),
            &report.stat,
            received_at,
            unmapped,
            &entry,
        )
    }

    /// A report whose body is neither 71 nor 60 bytes: kept raw and flagged, never dropped.
    pub async fn record_malformed_report(
        &self,
        deliver: &Deliver,
        reason: &str,
        received_at: u64,
    ) -> Result<ReportOutcome, StoreError> {
        let entry = [
            ("malformed", "1".to_owned()),
            ("reason", reason.to_owned()),
            ("content_hex", hex::encode(&deliver.msg_content)),
            ("dest", deliver.src_terminal_id.clone()),
            ("received_at", received_at.to_string()),
            ("deliver_msg_id", deliver.msg_id.to_string()),
        ];
        let invocation = self.report_script(
            deliver,
            "",
            "",
            received_at,
            WhenUnmapped::WriteUnmatched,
            &entry,
        );
        let outcome: String = invocation.invoke_async(&mut self.conn()).await?;
        parse_outcome(&outcome)
    }

    /// `entry` must hold `dest`: an unmatched report is indexed under that number.
    fn report_script(
        &self,
        deliver: &Deliver,
        msg_id_key: &str,
        stat: &str,
        now: u64,
        unmapped: WhenUnmapped,
        entry: &[(&str, String)],
    ) -> ScriptInvocation<'static> {
        let dest = entry
            .iter()
            .find(|(k, _)| *k == "dest")
            .map(|(_, v)| normalize_msisdn(v))
            .unwrap_or_default();
        let mut invocation = REPORT.key(self.keys.reports());
        invocation
            .key(self.keys.seen_deliver(deliver.msg_id.0))
            .key(msg_id_key)
            .key(self.keys.held_report(deliver.msg_id.0))
            .key(self.keys.held_reports())
            .arg(self.ttl_ms())
            .arg(self.config.inbound_maxlen)
            .arg(match unmapped {
                WhenUnmapped::WriteUnmatched => "write",
                WhenUnmapped::Hold => "hold",
            })
            .arg(self.keys.state_prefix())
            .arg(stat)
            .arg(now)
            .arg(self.keys.reports_index_prefix())
            .arg(dest)
            .arg(self.keys.minute_counters(now / 60_000))
            .arg(COUNTER_TTL.as_millis() as u64)
            .arg(deliver.msg_id.0);
        for (k, v) in entry {
            invocation.arg(*k).arg(v);
        }
        invocation
    }
}

pub(crate) fn parse_outcome(outcome: &str) -> Result<ReportOutcome, StoreError> {
    match outcome {
        "written" => Ok(ReportOutcome::Written { decided: None }),
        "written:delivered" => Ok(ReportOutcome::Written {
            decided: Some(MessageStatus::Delivered),
        }),
        "written:failed" => Ok(ReportOutcome::Written {
            decided: Some(MessageStatus::Failed),
        }),
        "written_unmatched" => Ok(ReportOutcome::WrittenUnmatched),
        "duplicate" => Ok(ReportOutcome::Duplicate),
        "held" => Ok(ReportOutcome::Held),
        other => Err(StoreError::Unexpected(format!(
            "report script answered {other:?}"
        ))),
    }
}
