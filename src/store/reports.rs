//! Status reports into the reports stream, correlated to our message through the Msg_Id map; a
//! report whose Msg_Id is not mapped yet is held (see `held_reports`).
//!
//! Three steps, because a Cluster keeps the Msg_Id map, the message and the report stream in
//! different slots: the map is read (a plain GET), the message's state is brought up to date
//! in its slot (`lua/correlate.lua`), and the entry is written in the report stream's slot
//! (`lua/report_write.lua`), which claims the DELIVER's marker with the write. Each step can
//! run again without harm, so a DELIVER redelivered after any of them stopped is written
//! exactly once, and counted once.

use std::sync::LazyLock;

use redis::Script;

use super::counters::COUNTER_TTL;
use super::index::INDEX_ADD_FN;
use super::scripts::{STATUS_FN, with_helpers};
use super::{Batch, MessageStatus, Store, StoreError, Submitted};
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

/// The message's side of a report, in its slot. KEYS[1] state key. ARGV[1] segment, ARGV[2]
/// segments, ARGV[3] Stat, ARGV[4] now (ms), ARGV[5] the DELIVER's Msg_Id. Returns {in_state,
/// final, decided} (see `lua/correlate.lua`).
pub(super) static CORRELATE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[STATUS_FN], include_str!("lua/correlate.lua")));

/// A report's entry, once per DELIVER (a correlated redelivery of a held one writes it in the
/// held one's place). KEYS[1] reports stream, KEYS[2] the DELIVER's marker, KEYS[3] the
/// number's report index, KEYS[4] this minute's counters, KEYS[5] the DELIVER's held
/// hash, KEYS[6] the held index. ARGV[1] TTL ms, ARGV[2] approximate MAXLEN, ARGV[3] the
/// counter to add 1 to or "", ARGV[4] the counters' TTL ms, ARGV[5] the DELIVER's Msg_Id,
/// ARGV[6] `1` when correlated, ARGV[7] `1` to index it, then the entry's field/value pairs.
/// Returns 1 when written, 0 for a repeat.
pub(super) static REPORT_WRITE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[INDEX_ADD_FN], include_str!("lua/report_write.lua")));

/// Holds a report whose Msg_Id is not mapped. KEYS[1] the DELIVER's marker, KEYS[2] held hash,
/// KEYS[3] held index. ARGV[1] TTL ms, ARGV[2] now (ms), ARGV[3] the DELIVER's Msg_Id, then the
/// entry's field/value pairs. Returns 1 when held, 0 for a repeat.
static REPORT_HOLD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/report_hold.lua")));

/// What the message's state made of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Correlation {
    /// Fields the report's entry gets: the message, the segment, its status once final.
    pub fields: Vec<(&'static str, String)>,
    /// The number the report is indexed under: the message's recipient.
    pub number: String,
    /// The status this DELIVER decided the message with (also when it is a redelivery of the
    /// one that did: its entry may not have been written then).
    pub decided: Option<MessageStatus>,
    /// A message was found for it (else it is written `unmatched=1`).
    pub matched: bool,
}

impl Store {
    /// Correlates and stores one status report. `Ok` means it is safely in Redis (written, held
    /// or known as a repeat) and its DELIVER may be acknowledged.
    pub async fn record_report(
        &self,
        deliver: &Deliver,
        report: &StatusReport,
        received_at: u64,
        unmapped: WhenUnmapped,
    ) -> Result<ReportOutcome, StoreError> {
        let entry = vec![
            ("msg_id", report.msg_id.to_string()),
            ("stat", report.stat.clone()),
            ("submit_time", report.submit_time.clone()),
            ("done_time", report.done_time.clone()),
            ("dest", report.dest_terminal_id.clone()),
            ("received_at", received_at.to_string()),
            ("deliver_msg_id", deliver.msg_id.to_string()),
        ];
        let deliver_id = deliver.msg_id.0;
        match self.mapped(report.msg_id.0).await? {
            Some(holder) => {
                let c = self
                    .correlate(&holder, &report.stat, received_at, deliver_id)
                    .await?;
                let written = self
                    .write_report(deliver_id, entry, &c, received_at)
                    .await?;
                Ok(if written {
                    ReportOutcome::Written { decided: c.decided }
                } else {
                    ReportOutcome::Duplicate
                })
            }
            None if unmapped == WhenUnmapped::Hold => {
                let held: i64 = REPORT_HOLD
                    .key(self.keys.seen_report(deliver_id))
                    .key(self.keys.held_report(deliver_id))
                    .key(self.keys.held_reports())
                    .arg(self.ttl_ms())
                    .arg(received_at)
                    .arg(deliver_id)
                    .arg(&entry[..])
                    .invoke_async(&mut self.conn())
                    .await?;
                Ok(if held == 1 {
                    ReportOutcome::Held
                } else {
                    ReportOutcome::Duplicate
                })
            }
            None => {
                let c = Correlation::unmatched(&report.dest_terminal_id);
                self.write_unmatched(deliver_id, entry, &c, received_at)
                    .await
            }
        }
    }

    /// A report DELIVER whose content cannot be read: written unmatched, with the reason and
    /// the bytes, once per DELIVER.
    pub async fn record_malformed_report(
        &self,
        deliver: &Deliver,
        reason: &str,
        received_at: u64,
    ) -> Result<ReportOutcome, StoreError> {
        let entry = vec![
            ("malformed", "1".to_owned()),
            ("reason", reason.to_owned()),
            ("content_hex", hex::encode(&deliver.msg_content)),
            ("dest", deliver.src_terminal_id.clone()),
            ("received_at", received_at.to_string()),
            ("deliver_msg_id", deliver.msg_id.to_string()),
        ];
        let c = Correlation::unmatched(&deliver.src_terminal_id);
        self.write_unmatched(deliver.msg_id.0, entry, &c, received_at)
            .await
    }

    async fn write_unmatched(
        &self,
        deliver_id: u64,
        entry: Vec<(&'static str, String)>,
        c: &Correlation,
        now: u64,
    ) -> Result<ReportOutcome, StoreError> {
        Ok(if self.write_report(deliver_id, entry, c, now).await? {
            ReportOutcome::WrittenUnmatched
        } else {
            ReportOutcome::Duplicate
        })
    }

    /// The message a Msg_Id was given to, if it is mapped.
    pub(super) async fn mapped(&self, msg_id: u64) -> Result<Option<Submitted>, StoreError> {
        let key = self.keys.msg_id(msg_id);
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn())
            .await?;
        bytes
            .map(|b| {
                rmp_serde::from_slice::<Submitted>(&b)
                    .map_err(|e| StoreError::Unexpected(format!("{key}: {e}")))
            })
            .transpose()
    }

    /// Brings the state of the message `holder` names up to date with one report.
    pub(super) async fn correlate(
        &self,
        holder: &Submitted,
        stat: &str,
        now: u64,
        deliver_id: u64,
    ) -> Result<Correlation, StoreError> {
        let mut pipe = Batch::new();
        pipe.invoke_script(
            CORRELATE
                .key(self.keys.state(&holder.id))
                .arg(holder.segment)
                .arg(holder.segments)
                .arg(stat)
                .arg(now)
                .arg(deliver_id),
        );
        let replies: Vec<(i64, String, String)> = self.query_pipeline(&pipe).await?;
        let (_in_state, status, decided) = replies
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Unexpected("no reply from the correlate script".into()))?;
        let mut fields = vec![
            ("id", holder.id.clone()),
            ("to", holder.to.clone()),
            ("segment", holder.segment.to_string()),
            ("segments", holder.segments.to_string()),
        ];
        if !status.is_empty() {
            fields.push(("status", status));
        }
        Ok(Correlation {
            fields,
            number: holder.to.clone(),
            decided: MessageStatus::parse(&decided),
            matched: true,
        })
    }

    /// Writes a report's entry with what its correlation added, claiming its DELIVER's marker;
    /// `false` when the marker was claimed before (a redelivery, or a held report).
    async fn write_report(
        &self,
        deliver_id: u64,
        mut entry: Vec<(&'static str, String)>,
        c: &Correlation,
        now: u64,
    ) -> Result<bool, StoreError> {
        entry.extend(c.fields.iter().cloned());
        let mut pipe = Batch::new();
        pipe.invoke_script(
            REPORT_WRITE
                .key(self.keys.reports())
                .key(self.keys.seen_report(deliver_id))
                .key(c.index(self))
                .key(self.keys.minute_counters(now / 60_000))
                .key(self.keys.held_report(deliver_id))
                .key(self.keys.held_reports())
                .arg(self.ttl_ms())
                .arg(self.config.inbound_maxlen)
                .arg(c.counter())
                .arg(COUNTER_TTL.as_millis() as u64)
                .arg(deliver_id)
                .arg(if c.matched { "1" } else { "0" })
                .arg(c.indexed())
                .arg(&entry[..]),
        );
        let written: Vec<i64> = self.query_pipeline(&pipe).await?;
        Ok(written.first() == Some(&1))
    }
}

impl Correlation {
    /// A report no message is known for: flagged, indexed under the number it names.
    pub(super) fn unmatched(dest: &str) -> Correlation {
        Correlation {
            fields: vec![("unmatched", "1".to_owned())],
            number: normalize_msisdn(dest),
            decided: None,
            matched: false,
        }
    }

    /// The number's report index (with no number, a key of the same slot that is not
    /// written: a script's keys are all given, whether it uses them or not).
    pub(super) fn index(&self, store: &Store) -> String {
        store.keys.reports_index(&self.number)
    }

    /// `1` when the report is indexed under its number (it has one).
    pub(super) fn indexed(&self) -> &'static str {
        if self.number.is_empty() { "0" } else { "1" }
    }

    /// The minute's counter this report adds to, or "".
    pub(super) fn counter(&self) -> &'static str {
        self.decided.map_or("", MessageStatus::as_str)
    }
}
