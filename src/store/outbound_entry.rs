//! One entry of the outbound stream as the worker reads it. Replies are parsed from Redis's raw
//! values, bytes first: an application may XADD anything, and one field that is not UTF-8 must
//! cost only its own entry (a dead letter), never the parse of the whole batch it came in.

use redis::Value;

use super::StoreError;

/// One entry of the outbound stream. Names and values are text; bytes that are not UTF-8 are
/// shown lossily (U+FFFD) and the entry says so in `not_utf8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEntry {
    pub stream_id: String,
    pub fields: Vec<(String, String)>,
    /// Which field is not UTF-8 (the first one), for the dead-letter reason; `None` when all are.
    pub not_utf8: Option<String>,
    /// How many times the group handed it to a consumer, this time included (1 for a fresh
    /// read; a reclaimed entry was held before by a worker that did not finish it).
    pub deliveries: u64,
}

/// How much of a name that is not UTF-8 the reason shows, in bytes (as hex).
const SHOWN_BYTES: usize = 32;

impl OutboundEntry {
    /// An entry whose fields are all text.
    pub fn new(stream_id: &str, fields: Vec<(String, String)>) -> OutboundEntry {
        OutboundEntry {
            stream_id: stream_id.to_owned(),
            fields,
            not_utf8: None,
            deliveries: 1,
        }
    }

    fn from_bytes(stream_id: String, raw: &[(&[u8], &[u8])]) -> OutboundEntry {
        let mut not_utf8 = None;
        let fields = raw
            .iter()
            .map(|&(name, value)| {
                let text_name = String::from_utf8_lossy(name).into_owned();
                if not_utf8.is_none() {
                    if std::str::from_utf8(name).is_err() {
                        let shown = &name[..name.len().min(SHOWN_BYTES)];
                        not_utf8 = Some(format!(
                            "the field name 0x{} is not UTF-8",
                            hex::encode(shown)
                        ));
                    } else if std::str::from_utf8(value).is_err() {
                        not_utf8 = Some(format!("the value of {text_name:?} is not UTF-8"));
                    }
                }
                (text_name, String::from_utf8_lossy(value).into_owned())
            })
            .collect();
        OutboundEntry {
            stream_id,
            fields,
            not_utf8,
            deliveries: 1,
        }
    }

    pub fn field_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.field_pairs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// What is sent, as the entry gives it: `text`, or `hex` and `coding` — each name once,
    /// its last value, as the message is read (an entry may repeat a field thousands of times).
    pub fn content_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        ["text", "hex", "coding"].into_iter().filter_map(|name| {
            self.field_pairs()
                .filter(|(k, _)| *k == name)
                .last()
                .map(|(_, v)| (name, v))
        })
    }
}

fn unexpected(what: &str) -> StoreError {
    StoreError::Unexpected(format!("{what} reply"))
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// An entry's fields as bytes, in stream order.
pub(super) type RawFields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// One entry of a stream reply, `[id, [name, value, …]]` (RESP3 may give the fields as a map),
/// as its id and its fields as bytes. A deleted entry (its fields nil, as XAUTOCLAIM on an
/// older Redis gives) has no fields.
pub(super) fn raw_entry<'a>(
    entry: &'a Value,
    what: &str,
) -> Result<(String, RawFields<'a>), StoreError> {
    let Value::Array(parts) = entry else {
        return Err(unexpected(what));
    };
    let [id, fields] = parts.as_slice() else {
        return Err(unexpected(what));
    };
    let id = bytes(id)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| unexpected(what))?;
    let pairs = match fields {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((bytes(k)?, bytes(v)?)),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
            .collect(),
        Value::Nil => Vec::new(),
        _ => return Err(unexpected(what)),
    };
    Ok((id, pairs))
}

fn entries(list: &Value, what: &str) -> Result<Vec<OutboundEntry>, StoreError> {
    let Value::Array(list) = list else {
        return Err(unexpected(what));
    };
    list.iter()
        // A nil in place of an entry: deleted meanwhile, nothing to send.
        .filter(|e| !matches!(e, Value::Nil))
        .map(|e| {
            let (id, raw) = raw_entry(e, what)?;
            Ok(OutboundEntry::from_bytes(id, &raw))
        })
        .collect()
}

/// XREADGROUP on one stream: nil (BLOCK ran out), `[[stream, [entry, …]]]`, or in RESP3 a map
/// from the stream's name to its entries.
pub(super) fn parse_read_reply(reply: &Value) -> Result<Vec<OutboundEntry>, StoreError> {
    const WHAT: &str = "XREADGROUP";
    let mut out = Vec::new();
    match reply {
        Value::Nil => {}
        Value::Array(streams) => {
            for stream in streams {
                match stream {
                    Value::Array(pair) if pair.len() == 2 => out.extend(entries(&pair[1], WHAT)?),
                    _ => return Err(unexpected(WHAT)),
                }
            }
        }
        Value::Map(streams) => {
            for (_, list) in streams {
                out.extend(entries(list, WHAT)?);
            }
        }
        _ => return Err(unexpected(WHAT)),
    }
    Ok(out)
}

/// XCLAIM: `[entry, …]`; Redis before 7 gives nil for an entry deleted from the stream.
pub(super) fn parse_claim_reply(reply: &Value) -> Result<Vec<OutboundEntry>, StoreError> {
    entries(reply, "XCLAIM")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    fn entry(id: &str, flat: &[&[u8]]) -> Value {
        Value::Array(vec![
            bulk(id.as_bytes()),
            Value::Array(flat.iter().map(|b| bulk(b)).collect()),
        ])
    }

    #[test]
    fn bytes_that_are_not_utf8_mark_only_their_entry() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"cmpp:mt"),
            Value::Array(vec![
                entry("1-0", &[b"to", b"1", b"text", b"ok"]),
                entry("2-0", &[b"\xff\xfe", b"1"]),
                Value::Nil,
                entry("3-0", &[b"text", b"\xc3\x28"]),
            ]),
        ])]);
        let read = parse_read_reply(&reply).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].not_utf8, None);
        assert_eq!(read[0].field("text"), Some("ok"));
        assert_eq!(
            read[1].not_utf8.as_deref(),
            Some("the field name 0xfffe is not UTF-8")
        );
        assert_eq!(read[1].fields[0].0, "\u{fffd}\u{fffd}");
        assert_eq!(
            read[2].not_utf8.as_deref(),
            Some("the value of \"text\" is not UTF-8")
        );
        assert!(parse_read_reply(&Value::Nil).unwrap().is_empty());
        assert!(parse_read_reply(&Value::Int(1)).is_err());
    }

    #[test]
    fn a_claim_reply_drops_the_entries_deleted_from_the_stream() {
        let reply = Value::Array(vec![
            entry("6-0", &[b"to", b"1"]),
            Value::Nil,
            entry("7-0", &[b"text", b"x"]),
        ]);
        let claimed = parse_claim_reply(&reply).unwrap();
        let ids: Vec<&str> = claimed.iter().map(|e| e.stream_id.as_str()).collect();
        assert_eq!(ids, ["6-0", "7-0"]);
        assert!(parse_claim_reply(&Value::Array(vec![])).unwrap().is_empty());
        assert!(parse_claim_reply(&Value::Nil).is_err());
    }
}
