//! MO (uplink) messages into the MO stream: single-part ones written at once, long ones
//! reassembled in Redis so their parts may reach different gateway instances, in any order and
//! more than once, and written exactly once — complete, or as partial after the reassembly
//! timeout.
//!
//! # Redis layout (prefix `cmpp`; all in the MO stream's slot, tag `{cmpp:mo}`)
//! * `cmpp:mo` — the stream (approximate MAXLEN `inbound_maxlen`); fields in [`MoEntry`].
//! * `cmpp:seen:{cmpp:mo}:<deliver_msg_id>` — "this DELIVER is stored" (TTL `state_ttl`); a
//!   redelivered DELIVER finds it and is acknowledged without a second write.
//! * `cmpp:mo:set:{cmpp:mo}:<from>:<to>:<ref>:<total>` — hash of one long message being
//!   reassembled: `from`, `to`, `total`, `service_id`, `link_id` (of the first part to arrive),
//!   `first_seen` / `last_seen` (ms), `n` (parts held), and per part `p:{k}` (payload after the
//!   UDH, bytes exact), `m:{k}` (its DELIVER Msg_Id), `f:{k}` (its Msg_Fmt). TTL
//!   2 × `mo_reassembly_timeout` + `state_ttl`, a safety net only: the sweeper acts long before.
//! * `cmpp:mo:pending:{cmpp:mo}` — sorted set of the set keys, score = `first_seen`, for the
//!   sweeper.
//! * `cmpp:index:mo:{cmpp:mo}:<from>` — the sender's entry ids, for the console (see `index`).
//!
//! # Atomic steps
//! [`MO_SINGLE`] checks the seen marker and writes the entry; [`MO_PART`] stores one part and
//! answers with the whole set once every part is there; [`MO_WRITE`] writes the entry and deletes
//! the set only if the set still holds exactly the parts the caller decoded, so two instances
//! completing the same message, or a completing part racing the sweeper, write one entry.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::{Script, Value};

use super::index::INDEX_ADD_FN;
use super::scripts::with_helpers;
use super::{Batch, Store, StoreError};
use crate::message::normalize_msisdn;
use crate::protocol::Deliver;
use crate::text::{Concat, Decoded, decode_text, parse_udh};

/// KEYS[1] MO stream, KEYS[2] seen marker of the DELIVER, KEYS[3] the sender's MO index.
/// ARGV[1] seen (and index) TTL ms, ARGV[2] approximate MAXLEN, then the entry's field/value
/// pairs. Returns 1 when written, 0 when the DELIVER was stored before.
static MO_SINGLE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[INDEX_ADD_FN], include_str!("lua/mo_single.lua")));

/// KEYS[1] set hash, KEYS[2] pending zset, KEYS[3] seen marker of the DELIVER.
/// ARGV: 1 part number, 2 total, 3 payload, 4 DELIVER Msg_Id, 5 Msg_Fmt, 6 service_id,
/// 7 link_id, 8 now ms, 9 set TTL ms, 10 seen TTL ms, 11 from, 12 to.
/// Returns {0} when nothing was stored (the DELIVER was seen, or its part number is held under
/// another Msg_Id), {1, parts held} when stored and still incomplete, and {2, HGETALL of the set}
/// whenever the set holds every part — also for a duplicate, so that a set completed by an
/// instance that crashed before writing it is written when the ISMG redelivers.
static MO_PART: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/mo_part.lua")));

/// KEYS[1] MO stream, KEYS[2] set hash, KEYS[3] pending zset, KEYS[4] the sender's MO index.
/// ARGV[1] approximate MAXLEN, ARGV[2] the part count the caller decoded, ARGV[3] index TTL
/// ms, then the entry's field/value pairs. Returns 1 when written (set and pending member
/// deleted), 0 when the set is gone (someone else wrote it; a dangling pending member is
/// removed), -1 when the set has changed since it was read (a part arrived: read it again).
static MO_WRITE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(&[INDEX_ADD_FN], include_str!("lua/mo_write.lua")));

/// What happened to one MO DELIVER. Every variant means "stored": acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoOutcome {
    /// An entry was written: a single-part message, or the part that completed a long one.
    Written,
    /// A part of a long message is stored; the message waits for the rest.
    PartStored { held: u32, total: u32 },
    /// Stored before (an ISMG redelivery of the same Msg_Id, or a part number already held):
    /// nothing new written.
    Duplicate,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoSweep {
    /// Overdue sets written as partial entries.
    pub partial: usize,
    /// Overdue sets that turned out complete (an instance crashed between storing the last
    /// part and writing the entry) and were written as complete entries.
    pub complete: usize,
    /// Sets already written or changed by someone else in the meantime.
    pub skipped: usize,
}

/// One MO message as written to the stream (`cmpp:mo`). All fields are flat strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoEntry {
    /// Src_terminal_Id: the user's MSISDN.
    pub from: String,
    /// Dest_Id: the SP number (with extension) the user sent to.
    pub to: String,
    pub service_id: String,
    /// UTF-8; empty when the content is binary (then `hex` holds it).
    pub text: String,
    /// The content as lowercase hex when it is not text (Msg_Fmt 3/4, undecodable Msg_Fmt 0).
    pub hex: Option<String>,
    /// `ascii` / `ucs2` / `gbk` / `binary`, or the raw Msg_Fmt number for other text formats.
    pub coding: String,
    /// The Msg_Fmt as received (of the first part held).
    pub msg_fmt: u8,
    /// Parts held (1 for a single-part message).
    pub parts: u32,
    /// Parts the message has (the UDH's total; 1 for a single-part message).
    pub total: u32,
    /// The reassembly timed out before every part arrived.
    pub partial: bool,
    /// Part numbers that never arrived (partial entries only).
    pub missing: Vec<u32>,
    /// The DELIVER Msg_Ids, decimal, in part order.
    pub msg_ids: Vec<String>,
    pub link_id: String,
    /// When the gateway received it (ms): the DELIVER, or the last part that arrived.
    pub received_at: u64,
    /// Set when TP_udhi announced a UDH that could not be read; the content is then kept whole
    /// as `hex`.
    pub udh_error: Option<String>,
}

impl MoEntry {
    /// The stream entry's field/value pairs.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("service_id", self.service_id.clone()),
            ("text", self.text.clone()),
        ];
        if let Some(hex) = &self.hex {
            fields.push(("hex", hex.clone()));
        }
        fields.extend([
            ("coding", self.coding.clone()),
            ("msg_fmt", self.msg_fmt.to_string()),
            ("parts", self.parts.to_string()),
            ("total", self.total.to_string()),
            ("partial", if self.partial { "1" } else { "0" }.to_owned()),
        ]);
        if self.partial {
            let missing: Vec<String> = self.missing.iter().map(u32::to_string).collect();
            fields.push(("missing", missing.join(",")));
        }
        fields.extend([
            ("msg_ids", self.msg_ids.join(",")),
            ("link_id", self.link_id.clone()),
            ("received_at", self.received_at.to_string()),
        ]);
        if let Some(e) = &self.udh_error {
            fields.push(("udh_error", e.clone()));
        }
        fields
    }
}

/// Decodes content (already reassembled, UDH removed) into the entry's `text` / `hex` / `coding`.
fn decode_content(msg_fmt: u8, bytes: &[u8]) -> (String, Option<String>, String) {
    match decode_text(msg_fmt, bytes) {
        Decoded::Text(text) => {
            let coding = match msg_fmt {
                0 => "ascii".to_owned(),
                8 => "ucs2".to_owned(),
                15 => "gbk".to_owned(),
                other => other.to_string(),
            };
            (text, None, coding)
        }
        Decoded::Binary(bytes) => (String::new(), Some(hex::encode(bytes)), "binary".to_owned()),
    }
}

/// A single-part MO (or one whose UDH cannot be read) as its entry.
fn single_entry(
    deliver: &Deliver,
    payload: &[u8],
    udh_error: Option<String>,
    received_at: u64,
) -> MoEntry {
    let (text, hex, coding) = match &udh_error {
        None => decode_content(deliver.msg_fmt, payload),
        Some(_) => (
            String::new(),
            Some(hex::encode(payload)),
            "binary".to_owned(),
        ),
    };
    MoEntry {
        from: deliver.src_terminal_id.clone(),
        to: deliver.dest_id.clone(),
        service_id: deliver.service_id.clone(),
        text,
        hex,
        coding,
        msg_fmt: deliver.msg_fmt,
        parts: 1,
        total: 1,
        partial: false,
        missing: Vec::new(),
        msg_ids: vec![deliver.msg_id.to_string()],
        link_id: deliver.link_id.clone(),
        received_at,
        udh_error,
    }
}

/// One reassembly set as read from its hash.
#[derive(Debug, Default)]
struct SetData {
    from: String,
    to: String,
    service_id: String,
    link_id: String,
    total: u32,
    /// The raw `n` field, passed back to [`MO_WRITE`] to detect a change.
    held: String,
    last_seen: u64,
    /// Part number → (payload, DELIVER Msg_Id, Msg_Fmt).
    parts: BTreeMap<u32, (Vec<u8>, String, u8)>,
}

impl SetData {
    fn parse(fields: &[Value]) -> Result<SetData, StoreError> {
        let mut set = SetData::default();
        let mut msg_ids = BTreeMap::new();
        let mut fmts = BTreeMap::new();
        let mut payloads = BTreeMap::new();
        for pair in fields.chunks(2) {
            let [name, value] = pair else {
                return Err(unexpected("odd HGETALL reply"));
            };
            let name = String::from_utf8_lossy(bytes_of(name)?).into_owned();
            let value = bytes_of(value)?;
            let text = || String::from_utf8_lossy(value).into_owned();
            match name.as_str() {
                "from" => set.from = text(),
                "to" => set.to = text(),
                "service_id" => set.service_id = text(),
                "link_id" => set.link_id = text(),
                // Unreadable: fall back to the parts held, so one odd set cannot stall the sweeper.
                "total" => set.total = text().parse().unwrap_or(0),
                "n" => set.held = text(),
                "last_seen" => set.last_seen = text().parse().unwrap_or(0),
                _ => {
                    let Some((kind, k)) = name.split_once(':') else {
                        continue;
                    };
                    let Ok(k) = k.parse::<u32>() else { continue };
                    match kind {
                        "p" => {
                            payloads.insert(k, value.to_vec());
                        }
                        "m" => {
                            msg_ids.insert(k, text());
                        }
                        "f" => {
                            fmts.insert(k, text().parse::<u8>().unwrap_or(0));
                        }
                        _ => {}
                    }
                }
            }
        }
        for (k, payload) in payloads {
            let msg_id = msg_ids.remove(&k).unwrap_or_default();
            let fmt = fmts.get(&k).copied().unwrap_or(0);
            set.parts.insert(k, (payload, msg_id, fmt));
        }
        Ok(set)
    }

    /// The entry: payloads concatenated in part order and decoded as a whole (a character may
    /// straddle two parts), with the Msg_Fmt of the first part held.
    fn entry(&self, received_at: u64) -> MoEntry {
        let held = self.parts.len() as u32;
        let total = self.total.max(held);
        let msg_fmt = self.parts.values().next().map(|p| p.2).unwrap_or(0);
        let bytes: Vec<u8> = self
            .parts
            .values()
            .flat_map(|p| p.0.iter().copied())
            .collect();
        let (text, hex, coding) = decode_content(msg_fmt, &bytes);
        let partial = held < total;
        MoEntry {
            from: self.from.clone(),
            to: self.to.clone(),
            service_id: self.service_id.clone(),
            text,
            hex,
            coding,
            msg_fmt,
            parts: held,
            total,
            partial,
            missing: if partial {
                (1..=total)
                    .filter(|k| !self.parts.contains_key(k))
                    .collect()
            } else {
                Vec::new()
            },
            msg_ids: self.parts.values().map(|p| p.1.clone()).collect(),
            link_id: self.link_id.clone(),
            received_at,
            udh_error: None,
        }
    }
}

fn unexpected(what: &str) -> StoreError {
    StoreError::Unexpected(format!("MO script: {what}"))
}

fn bytes_of(v: &Value) -> Result<&[u8], StoreError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        _ => Err(unexpected("expected a string")),
    }
}

fn int_of(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(unexpected("expected an integer")),
    }
}

/// Overdue sets read per round trip, and round trips per sweep call (the rest waits for the
/// next sweep).
const SWEEP_BATCH: usize = 100;
const SWEEP_BATCHES: usize = 10;

impl Store {
    /// Stores one MO DELIVER (Registered_Delivery 0). `Ok` means it is safely in Redis — as an
    /// entry, or as a part waiting for the rest — and may be acknowledged.
    pub async fn record_mo(
        &self,
        deliver: &Deliver,
        received_at: u64,
    ) -> Result<MoOutcome, StoreError> {
        match parse_udh(deliver.tp_udhi, &deliver.msg_content) {
            Ok((Some(concat), payload)) if concat.total > 1 => {
                self.record_mo_part(deliver, &concat, payload, received_at)
                    .await
            }
            Ok((_, payload)) => {
                let entry = single_entry(deliver, payload, None, received_at);
                self.write_single_mo(deliver, &entry).await
            }
            Err(e) => {
                tracing::debug!(msg_id = %deliver.msg_id, error = %e, "MO with an unreadable UDH; kept whole as hex");
                let entry = single_entry(
                    deliver,
                    &deliver.msg_content,
                    Some(e.to_string()),
                    received_at,
                );
                self.write_single_mo(deliver, &entry).await
            }
        }
    }

    async fn write_single_mo(
        &self,
        deliver: &Deliver,
        entry: &MoEntry,
    ) -> Result<MoOutcome, StoreError> {
        let mut invocation = MO_SINGLE.key(self.keys.mo());
        invocation
            .key(self.keys.seen_mo(deliver.msg_id.0))
            .key(self.keys.mo_index(&normalize_msisdn(&entry.from)))
            .arg(self.ttl_ms())
            .arg(self.config.inbound_maxlen);
        for (k, v) in entry.to_fields() {
            invocation.arg(k).arg(v);
        }
        let written: i64 = invocation.invoke_async(&mut self.conn()).await?;
        Ok(if written == 1 {
            MoOutcome::Written
        } else {
            MoOutcome::Duplicate
        })
    }

    async fn record_mo_part(
        &self,
        deliver: &Deliver,
        concat: &Concat,
        payload: &[u8],
        received_at: u64,
    ) -> Result<MoOutcome, StoreError> {
        let set_key = self.keys.mo_set(
            &deliver.src_terminal_id,
            &deliver.dest_id,
            concat.reference,
            concat.total,
        );
        let timeout_ms = self.config.mo_reassembly_timeout.as_millis() as u64;
        let reply: Value = MO_PART
            .key(&set_key)
            .key(self.keys.mo_pending())
            .key(self.keys.seen_mo(deliver.msg_id.0))
            .arg(concat.number)
            .arg(concat.total)
            .arg(payload)
            .arg(deliver.msg_id.to_string())
            .arg(deliver.msg_fmt)
            .arg(&deliver.service_id)
            .arg(&deliver.link_id)
            .arg(received_at)
            .arg(2 * timeout_ms + self.ttl_ms())
            .arg(self.ttl_ms())
            .arg(&deliver.src_terminal_id)
            .arg(&deliver.dest_id)
            .invoke_async(&mut self.conn())
            .await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("part reply is not an array"));
        };
        match items.as_slice() {
            [status] if int_of(status)? == 0 => Ok(MoOutcome::Duplicate),
            [status, held] if int_of(status)? == 1 => Ok(MoOutcome::PartStored {
                held: int_of(held)? as u32,
                total: concat.total.into(),
            }),
            [status, Value::Array(fields)] if int_of(status)? == 2 => {
                let set = SetData::parse(fields)?;
                // A duplicate that found the set complete was not the last part to arrive:
                // use the set's own time then.
                let at = if set.last_seen > 0 {
                    set.last_seen
                } else {
                    received_at
                };
                match self.write_set(&set_key, &set, at).await? {
                    1 => Ok(MoOutcome::Written),
                    // Written by another instance, or (cannot happen for a complete set) changed.
                    _ => Ok(MoOutcome::Duplicate),
                }
            }
            _ => Err(unexpected("unknown part reply")),
        }
    }

    /// Writes the entry of `set` and deletes the set, unless it is gone (0) or changed (-1).
    async fn write_set(&self, set_key: &str, set: &SetData, at: u64) -> Result<i64, StoreError> {
        let entry = set.entry(at);
        let mut invocation = MO_WRITE.key(self.keys.mo());
        invocation
            .key(set_key)
            .key(self.keys.mo_pending())
            .key(self.keys.mo_index(&normalize_msisdn(&entry.from)))
            .arg(self.config.inbound_maxlen)
            .arg(&set.held)
            .arg(self.ttl_ms());
        for (k, v) in entry.to_fields() {
            invocation.arg(k).arg(v);
        }
        let written: i64 = invocation.invoke_async(&mut self.conn()).await?;
        if written == 1 && entry.partial {
            tracing::debug!(from = %entry.from, to = %entry.to, parts = entry.parts, total = entry.total, "long MO timed out incomplete; written with partial=1");
        }
        Ok(written)
    }

    /// Writes every reassembly set first seen at or before `cutoff_ms` (Unix ms): as a partial
    /// entry when parts are missing, as a complete one when all are there (a crash between the
    /// last part and its entry). Safe to run on every instance at once.
    pub async fn sweep_mo(&self, cutoff_ms: u64) -> Result<MoSweep, StoreError> {
        let mut sweep = MoSweep::default();
        for _ in 0..SWEEP_BATCHES {
            // The due sets' names, then their fields: names read from a key cannot be a
            // script's KEYS, so two plain steps (all in the MO stream's slot).
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.mo_pending())
                .arg("-inf")
                .arg(cutoff_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(SWEEP_BATCH)
                .query_async(&mut self.conn())
                .await?;
            let mut pipe = Batch::new();
            for key in &due {
                pipe.cmd("HGETALL").arg(key);
            }
            let hashes: Vec<Value> = self.query_pipeline(&pipe).await?;
            let mut gone = Batch::new();
            let mut items = Vec::with_capacity(2 * due.len());
            for (key, fields) in due.iter().zip(hashes) {
                match fields {
                    // Written, or expired by the safety TTL: drop the dangling member.
                    Value::Array(f) if f.is_empty() => {
                        gone.cmd("ZREM")
                            .arg(self.keys.mo_pending())
                            .arg(key)
                            .ignore();
                    }
                    Value::Map(m) if m.is_empty() => {
                        gone.cmd("ZREM")
                            .arg(self.keys.mo_pending())
                            .arg(key)
                            .ignore();
                    }
                    other => {
                        items.push(Value::BulkString(key.clone().into_bytes()));
                        items.push(flat_hash(other));
                    }
                }
            }
            let () = self.query_pipeline(&gone).await?;
            for pair in items.chunks(2) {
                let [key, Value::Array(fields)] = pair else {
                    return Err(unexpected("due reply is not key/hash pairs"));
                };
                let key = String::from_utf8_lossy(bytes_of(key)?).into_owned();
                let set = SetData::parse(fields)?;
                let at = if set.last_seen > 0 {
                    set.last_seen
                } else {
                    super::now_ms()
                };
                let complete = set.parts.len() as u32 >= set.total;
                match self.write_set(&key, &set, at).await? {
                    1 if complete => sweep.complete += 1,
                    1 => sweep.partial += 1,
                    // Gone (written by someone else) or changed (a part just arrived): the
                    // completing part or the next sweep takes it.
                    _ => sweep.skipped += 1,
                }
            }
            if due.len() < SWEEP_BATCH {
                break;
            }
        }
        Ok(sweep)
    }
}

/// A hash as HGETALL's flat field/value array, whichever protocol answered it.
fn flat_hash(value: Value) -> Value {
    match value {
        Value::Map(pairs) => Value::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MsgId;

    #[test]
    fn codings_and_binary() {
        assert_eq!(
            decode_content(8, &[0x4F, 0x60, 0x59, 0x7D]),
            ("你好".into(), None, "ucs2".into())
        );
        assert_eq!(
            decode_content(15, &[0xC4, 0xE3]),
            ("你".into(), None, "gbk".into())
        );
        assert_eq!(
            decode_content(0, b"hi"),
            ("hi".into(), None, "ascii".into())
        );
        assert_eq!(
            decode_content(4, &[0xFF, 0x00]),
            (String::new(), Some("ff00".into()), "binary".into())
        );
        assert_eq!(
            decode_content(9, &[0x00, 0x41]),
            ("A".into(), None, "9".into())
        );
    }

    #[test]
    fn partial_set_concatenates_in_order_and_names_the_gaps() {
        let mut set = SetData {
            from: "13800138000".into(),
            to: "1064899".into(),
            total: 4,
            held: "3".into(),
            ..SetData::default()
        };
        set.parts.insert(4, (vec![0x00, 0x44], "14".into(), 8));
        set.parts.insert(1, (vec![0x00, 0x41], "11".into(), 8));
        set.parts.insert(2, (vec![0x00, 0x42], "12".into(), 8));
        let e = set.entry(5);
        assert_eq!((e.text.as_str(), e.parts, e.total), ("ABD", 3, 4));
        assert!(e.partial);
        assert_eq!(e.missing, vec![3]);
        let fields = e.to_fields();
        let get = |k: &str| fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str());
        assert_eq!(get("msg_ids"), Some("11,12,14"));
        assert_eq!(get("partial"), Some("1"));
        assert_eq!(get("missing"), Some("3"));
    }

    #[test]
    fn single_entry_fields() {
        let d = Deliver {
            msg_id: MsgId(77),
            dest_id: "106".into(),
            src_terminal_id: "138".into(),
            msg_fmt: 4,
            ..Deliver::default()
        };
        let e = single_entry(&d, &[1, 2], None, 9);
        let fields = e.to_fields();
        let get = |k: &str| fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str());
        assert_eq!(get("text"), Some(""));
        assert_eq!(get("hex"), Some("0102"));
        assert_eq!(get("coding"), Some("binary"));
        assert_eq!(get("msg_ids"), Some("77"));
        assert_eq!(get("partial"), Some("0"));
        assert_eq!(get("missing"), None);
    }
}
