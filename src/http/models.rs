//! The JSON the HTTP API reads and writes.
//!
//! The request body is read field by field from a `serde_json::Map` rather than derived, so
//! every error names the field it is about (`{"error": "...", "field": "to"}`), numbers are
//! accepted where people write them (`"to": 13800138000`), and unknown fields are refused (a
//! typo like `"src-ext"` must not silently send from the wrong number), as are keys given twice
//! ([`json`](super::json)).

use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::HttpError;
use super::json::{self, StrictJsonError};
use crate::message::{Content, Invalid, InvalidKind, OutboundMessage};
use crate::session::LinkStatsSnapshot;
use crate::text::Coding;

/// Every field `POST /v1/messages` understands.
const FIELDS: &[&str] = &[
    "to",
    "text",
    "hex",
    "coding",
    "src_ext",
    "id",
    "report",
    "at",
    "valid",
    "service_id",
    "link_id",
    "fee_type",
    "fee_code",
    "fee_user_type",
    "channel",
];

/// A `POST /v1/messages` body, shape-checked; values are checked by `OutboundMessage::validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// As given (not yet normalized).
    pub to: Vec<String>,
    /// The caller's id: message id (or prefix) and idempotency key.
    pub id: Option<String>,
    /// Everything but `id` and `to`.
    pub template: OutboundMessage,
}

impl SendRequest {
    pub fn from_json(body: &[u8]) -> Result<SendRequest, HttpError> {
        let value = json::parse(body).map_err(|e| match e {
            StrictJsonError::Syntax(e) => HttpError::MalformedJson(e.to_string()),
            StrictJsonError::DuplicateKey { key, line } => {
                let reason = format!("the key {key:?} is given more than once (line {line})");
                match FIELDS.iter().find(|f| **f == key) {
                    Some(field) => Invalid::malformed(field, reason).into(),
                    None => HttpError::BadRequest(reason),
                }
            }
        })?;
        let Value::Object(map) = value else {
            return Err(HttpError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(HttpError::BadRequest(format!(
                "unknown field {unknown:?}; known fields: {}",
                FIELDS.join(", ")
            )));
        }
        let f = Fields(&map);
        let to = f.recipients()?;
        let coding = f
            .string("coding")?
            .map(|name| {
                Coding::parse(&name).ok_or_else(|| {
                    Invalid::new(
                        InvalidKind::Unsupported,
                        "coding",
                        format!("unknown coding {name:?}; use ascii, ucs2, gbk or binary"),
                    )
                })
            })
            .transpose()?;
        let content = match (f.string("text")?, f.string("hex")?) {
            (Some(_), Some(_)) => {
                return Err(Invalid::malformed("text", "give text or hex, not both").into());
            }
            (Some(text), None) => Content::Text { text, coding },
            (None, Some(hex_text)) => {
                let bytes = hex::decode(hex_text.trim())
                    .map_err(|e| Invalid::malformed("hex", format!("not hex: {e}")))?;
                let coding =
                    coding.ok_or_else(|| Invalid::malformed("coding", "required with hex"))?;
                Content::Bytes { bytes, coding }
            }
            (None, None) => {
                return Err(
                    Invalid::malformed("text", "missing (give text, or hex and coding)").into(),
                );
            }
        };
        let mut template = OutboundMessage::text("", "", "");
        template.content = content;
        template.src_ext = f.string("src_ext")?.unwrap_or_default();
        template.service_id = f.string("service_id")?;
        template.report = f.boolean("report")?;
        template.at = f.string("at")?;
        template.valid = f.string("valid")?;
        template.link_id = f.string("link_id")?;
        template.channel = f.string("channel")?.filter(|c| !c.is_empty());
        template.fee_type = f.string("fee_type")?;
        template.fee_code = f.string("fee_code")?;
        template.fee_user_type = f
            .integer("fee_user_type")?
            .map(|v| u8::try_from(v).map_err(|_| Invalid::unprocessable("fee_user_type", "0 to 3")))
            .transpose()?;
        Ok(SendRequest {
            to,
            id: f.string("id")?,
            template,
        })
    }
}

/// Typed access to the body's fields; `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &'static str) -> Result<Option<String>, Invalid> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Invalid::malformed(
                key,
                format!("must be a string, got {}", kind(other)),
            )),
        }
    }

    fn boolean(&self, key: &'static str) -> Result<Option<bool>, Invalid> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
            Some(other) => Err(Invalid::malformed(
                key,
                format!("must be true or false, got {}", kind(other)),
            )),
        }
    }

    fn integer(&self, key: &'static str) -> Result<Option<u64>, Invalid> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
            Some(other) => Err(Invalid::malformed(
                key,
                format!("must be a whole number, got {}", kind(other)),
            )),
        }
    }

    /// `"to"`: one number or a list of numbers, each a string or a JSON integer.
    fn recipients(&self) -> Result<Vec<String>, Invalid> {
        let one = |v: &Value| match v {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            other => Err(Invalid::malformed(
                "to",
                format!("a recipient must be a phone number, got {}", kind(other)),
            )),
        };
        match self.get("to") {
            None => Err(Invalid::malformed("to", "missing")),
            Some(Value::Array(list)) if list.is_empty() => {
                Err(Invalid::malformed("to", "the list of recipients is empty"))
            }
            Some(Value::Array(list)) => list.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.trim().is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `202` answer of `POST /v1/messages`; stored as the idempotent answer.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub messages: Vec<AcceptedMessage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcceptedMessage {
    pub id: String,
    /// Normalized (`+8613800138000` → `13800138000`).
    pub to: String,
    pub segments: usize,
}

/// Every error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// On a 503 to a send: the id to retry with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
}

/// The original gateway's answer: `result` 0 accepted, -1 refused, -2 try again later.
#[derive(Debug, Serialize)]
pub struct CompatAnswer {
    pub result: i32,
    pub error: String,
    pub id: String,
}

/// `GET /v1/link`. Without a link only `state: "absent"` is present. The state, window and
/// counters are those of the link that speaks for this process (the first one up); `rates` are
/// every connection of this process together.
#[derive(Debug, Serialize)]
pub struct LinkView {
    pub state: &'static str,
    /// Unix milliseconds of the last state change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<LinkStatsSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<super::rates::Rates>,
}

#[derive(Debug, Serialize)]
pub struct WindowView {
    pub size: usize,
    /// Window slots taken: submits queued for the wire or waiting for their SUBMIT_RESP.
    pub in_flight: usize,
}

/// One configured channel in `GET /v1/stats`: what the carrier allows it and the connections
/// this process holds of it.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub name: String,
    /// K: connections allowed across every instance (`max_connections`).
    pub allowed: u32,
    /// Connections this instance tries to hold.
    pub connections_per_instance: u32,
    /// Connection slots this instance holds a lease on now.
    pub held_here: usize,
    /// One per held slot, by slot.
    pub links: Vec<ConnectionView>,
}

/// One held connection slot and the link on it.
#[derive(Debug, Serialize)]
pub struct ConnectionView {
    pub slot: u32,
    pub state: &'static str,
    /// Unix milliseconds of the last state change.
    pub since: Option<u64>,
    pub reason: String,
    pub window: WindowView,
    /// Since this link started on the slot.
    #[serde(flatten)]
    pub counters: super::rates::Counters,
    /// Over the last ~10 s; absent until the sampler has seen the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<super::rates::Rates>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> HttpError {
        SendRequest::from_json(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn one_or_many_recipients() {
        let r =
            SendRequest::from_json(br#"{"to": 13800138000, "text": "hi", "report": 0}"#).unwrap();
        assert_eq!(r.to, vec!["13800138000"]);
        assert_eq!(r.template.report, Some(false));
        let r = SendRequest::from_json(
            br#"{"to": ["13800138000", "+8613900139000"], "hex": "00410042", "coding": "UCS2"}"#,
        )
        .unwrap();
        assert_eq!(r.to.len(), 2);
        assert_eq!(
            r.template.content,
            Content::Bytes {
                bytes: vec![0, 0x41, 0, 0x42],
                coding: Coding::Ucs2
            }
        );
    }

    #[test]
    fn errors_name_the_field_and_pick_the_status() {
        let cases = [
            (r#"{"text": "x"}"#, 400, Some("to")),
            (r#"{"to": [], "text": "x"}"#, 400, Some("to")),
            (
                r#"{"to": "1", "text": "x", "hex": "00"}"#,
                400,
                Some("text"),
            ),
            (r#"{"to": "1", "hex": "00"}"#, 400, Some("coding")),
            (
                r#"{"to": "1", "text": "x", "coding": "utf7"}"#,
                415,
                Some("coding"),
            ),
            (r#"{"to": "1", "text": 5}"#, 400, Some("text")),
            (r#"{"to": "1", "text": "x", "txet": 1}"#, 400, None),
            (r#"[1]"#, 400, None),
            (r#"{"to": "1", "#, 400, None),
        ];
        for (body, status, field) in cases {
            let e = err(body);
            assert_eq!(
                (e.status().as_u16(), e.field()),
                (status, field),
                "{body}: {e}"
            );
        }
    }
}
