//! Status reports into the reports stream, correlated to our message through the Msg_Id map,
//! with the message's state brought up to date in the same atomic step; a report whose Msg_Id
//! is not mapped yet is held (see `held_reports`).

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::counters::COUNTER_TTL;
use super::index::INDEX_ADD_FN;
use super::scripts::STATUS_RANK;
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
/// report's 48 hours.
pub(crate) const CORRELATE_FN: &str = r#"
local function correlate(state, rec, fields, stat, now, deliver, counters, counters_ttl)
  local id, seg, segs, to = rec[1], rec[2], rec[3], rec[4]
  for _, v in ipairs({'id', id, 'to', to, 'segment', tostring(seg), 'segments', tostring(segs)}) do
    fields[#fields + 1] = v
  end
  local names = {'status', 'submitted_at', 's' .. seg .. '_delivers'}
  for i = 1, segs do names[#names + 1] = 's' .. i .. '_stat' end
  local have = redis.call('HMGET', state, unpack(names))
  if not have[1] then return false, '' end
  local delivers = have[3]
  if delivers and string.find(' ' .. delivers .. ' ', ' ' .. deliver .. ' ', 1, true) then
    return true, '', true
  end
  local decided = ''
  local change = {'s' .. seg .. '_delivers', delivers and (delivers .. ' ' .. deliver) or deliver, 'updated_at', now}
  -- ACCEPTD is intermediate: it is reported but decides nothing.
  if stat ~= 'ACCEPTD' then
    for _, v in ipairs({'s' .. seg .. '_stat', stat, 's' .. seg .. '_reported_at', now}) do
      change[#change + 1] = v
    end
    local complete, failed_stat = true, false
    for i = 1, segs do
      local s = have[3 + i]
      if i == seg then s = stat end
      if not s then complete = false break end
      if s ~= 'DELIVRD' and not failed_stat then failed_stat = s end
    end
    if complete then
      local final = failed_stat and 'failed' or 'delivered'
      local current = have[1]
      if have[2] and (rank[current] or 0) < rank.submitted then current = 'submitted' end
      if (rank[final] or 0) > (rank[current] or 0) then
        for _, v in ipairs({'status', final, 'final_at', now}) do change[#change + 1] = v end
        if redis.call('HINCRBY', counters, final, 1) == 1 then
          redis.call('PEXPIRE', counters, counters_ttl)
        end
        if failed_stat then
          change[#change + 1] = 'error'
          change[#change + 1] = 'Stat ' .. failed_stat
        end
        decided = ':' .. final
      end
      fields[#fields + 1] = 'status'
      fields[#fields + 1] = final
    end
  end
  redis.call('HSET', state, unpack(change))
  return true, decided
end
"#;

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
    Script::new(&format!(
        r#"{STATUS_RANK}{INDEX_ADD_FN}{CORRELATE_FN}
local mapped = false
if KEYS[3] ~= '' then mapped = redis.call('GET', KEYS[3]) end
local fields = {{unpack(ARGV, 12)}}
if not mapped then
  if ARGV[3] == 'hold' then
    if not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then return 'duplicate' end
    redis.call('HSET', KEYS[4], unpack(fields))
    redis.call('PEXPIRE', KEYS[4], ARGV[1])
    redis.call('ZADD', KEYS[5], ARGV[6], ARGV[11])
    return 'held'
  end
  -- Stored before as unmatched (a redelivery): known at once.
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
end
local number = ARGV[8]
local decided, in_state = '', false
if mapped then
  local rec = cmsgpack.unpack(mapped)
  local redelivered
  in_state, decided, redelivered = correlate(ARGV[4] .. rec[1], rec, fields, ARGV[5], ARGV[6],
    ARGV[11], ARGV[9], ARGV[10])
  if redelivered then return 'duplicate' end
  number = rec[4]
else
  fields[#fields + 1] = 'unmatched'
  fields[#fields + 1] = '1'
end
if not in_state and not redis.call('SET', KEYS[2], '1', 'PX', ARGV[1], 'NX') then
  return 'duplicate'
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
if number ~= '' then index_add(ARGV[7] .. number, entry_ms(entry), entry, ARGV[1]) end
if mapped then return 'written' .. decided end
return 'written_unmatched'
"#
    ))
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
