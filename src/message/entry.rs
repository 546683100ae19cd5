//! The flat, readable form of an outbound message in the stream, so that
//! `redis-cli XADD cmpp:mt '*' to 13800138000 text hello` is a valid send request.

use super::invalid::Invalid;
use crate::text::Coding;

/// What to send: text (coding chosen unless given) or raw bytes with their Msg_Fmt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text {
        text: String,
        coding: Option<Coding>,
    },
    Bytes {
        bytes: Vec<u8>,
        coding: Coding,
    },
}

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Our id for it: the caller's, or generated; for entries XADDed without one, the entry id.
    pub id: String,
    pub to: String,
    pub content: Content,
    /// Digits appended to the access number (Src_Id).
    pub src_ext: String,
    pub service_id: Option<String>,
    /// Status report wanted; the configured default when absent.
    pub report: Option<bool>,
    /// Scheduled delivery (At_Time), SMPP time format.
    pub at: Option<String>,
    /// Validity (ValId_Time), SMPP time format.
    pub valid: Option<String>,
    /// LinkID of the MO this answers (on-demand services).
    pub link_id: Option<String>,
    pub fee_type: Option<String>,
    pub fee_code: Option<String>,
    pub fee_user_type: Option<u8>,
    /// When it was accepted, Unix milliseconds (the `ts` field).
    pub queued_at_ms: Option<u64>,
    /// The channel (SP account) it goes out on; the default channel when absent.
    pub channel: Option<String>,
}

impl OutboundMessage {
    /// A text message with nothing optional set.
    pub fn text(
        id: impl Into<String>,
        to: impl Into<String>,
        text: impl Into<String>,
    ) -> OutboundMessage {
        OutboundMessage {
            id: id.into(),
            to: to.into(),
            content: Content::Text {
                text: text.into(),
                coding: None,
            },
            src_ext: String::new(),
            service_id: None,
            report: None,
            at: None,
            valid: None,
            link_id: None,
            fee_type: None,
            fee_code: None,
            fee_user_type: None,
            queued_at_ms: None,
            channel: None,
        }
    }

    /// The stream entry's fields, only those that are set.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("id", self.id.clone()), ("to", self.to.clone())];
        match &self.content {
            Content::Text { text, coding } => {
                f.push(("text", text.clone()));
                if let Some(c) = coding {
                    f.push(("coding", c.name().to_owned()));
                }
            }
            Content::Bytes { bytes, coding } => {
                f.push(("hex", hex::encode(bytes)));
                f.push(("coding", coding.name().to_owned()));
            }
        }
        let optional = [
            (
                "src_ext",
                (!self.src_ext.is_empty()).then(|| self.src_ext.clone()),
            ),
            ("service_id", self.service_id.clone()),
            (
                "report",
                self.report.map(|r| if r { "1" } else { "0" }.to_owned()),
            ),
            ("at", self.at.clone()),
            ("valid", self.valid.clone()),
            ("link_id", self.link_id.clone()),
            ("fee_type", self.fee_type.clone()),
            ("fee_code", self.fee_code.clone()),
            ("fee_user_type", self.fee_user_type.map(|v| v.to_string())),
            ("ts", self.queued_at_ms.map(|v| v.to_string())),
            ("channel", self.channel.clone()),
        ];
        f.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        f
    }

    /// Reads a stream entry. `entry_id` becomes the message id when the entry has no `id`.
    /// Unknown fields are ignored, so applications may carry their own.
    pub fn from_fields<'a>(
        entry_id: &str,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<OutboundMessage, Invalid> {
        let mut msg = OutboundMessage::text(entry_id, "", "");
        let (mut text, mut hex_bytes, mut coding) = (None, None, None);
        for (key, value) in fields {
            let owned = || Some(value.to_owned());
            match key {
                "id" if !value.is_empty() => msg.id = value.to_owned(),
                "to" => msg.to = value.to_owned(),
                "text" => text = owned(),
                "hex" => {
                    hex_bytes = Some(
                        hex::decode(value.trim())
                            .map_err(|e| Invalid::malformed("hex", e.to_string()))?,
                    )
                }
                "coding" => {
                    coding = Some(Coding::parse(value).ok_or_else(|| {
                        Invalid::new(
                            super::InvalidKind::Unsupported,
                            "coding",
                            format!("unknown coding {value:?}; use ascii, ucs2, gbk or binary"),
                        )
                    })?)
                }
                "src_ext" => msg.src_ext = value.to_owned(),
                "service_id" => msg.service_id = owned(),
                "report" => msg.report = Some(parse_bool("report", value)?),
                "at" => msg.at = owned(),
                "valid" => msg.valid = owned(),
                "link_id" => msg.link_id = owned(),
                "fee_type" => msg.fee_type = owned(),
                "fee_code" => msg.fee_code = owned(),
                "fee_user_type" => {
                    msg.fee_user_type = Some(
                        value
                            .parse()
                            .map_err(|_| Invalid::malformed("fee_user_type", "must be 0 to 3"))?,
                    )
                }
                "ts" => msg.queued_at_ms = value.parse().ok(),
                "channel" => msg.channel = Some(value.to_owned()).filter(|c| !c.is_empty()),
                _ => {}
            }
        }
        if msg.to.is_empty() {
            return Err(Invalid::malformed("to", "missing"));
        }
        msg.content = match (text, hex_bytes, coding) {
            (Some(_), Some(_), _) => {
                return Err(Invalid::malformed("text", "give text or hex, not both"));
            }
            (Some(text), None, coding) => Content::Text { text, coding },
            (None, Some(bytes), Some(coding)) => Content::Bytes { bytes, coding },
            (None, Some(_), None) => return Err(Invalid::malformed("coding", "required with hex")),
            (None, None, _) => {
                return Err(Invalid::malformed(
                    "text",
                    "missing (give text, or hex and coding)",
                ));
            }
        };
        Ok(msg)
    }
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, Invalid> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(Invalid::malformed(
            field,
            format!("{value:?} is not 0/1/true/false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_fields_round_trip() {
        let mut m = OutboundMessage::text("m1", "13800138000", "你好");
        m.src_ext = "01".into();
        m.report = Some(false);
        m.queued_at_ms = Some(42);
        let fields = m.to_fields();
        let back =
            OutboundMessage::from_fields("1-0", fields.iter().map(|(k, v)| (*k, v.as_str())))
                .unwrap();
        assert_eq!(back, m);
        let b = OutboundMessage {
            content: Content::Bytes {
                bytes: vec![1, 2, 255],
                coding: Coding::Binary,
            },
            ..m
        };
        let fields = b.to_fields();
        assert!(fields.contains(&("hex", "0102ff".into())));
        assert_eq!(
            OutboundMessage::from_fields("1-0", fields.iter().map(|(k, v)| (*k, v.as_str())))
                .unwrap(),
            b
        );
    }

    #[test]
    fn a_bare_redis_cli_entry_is_enough() {
        let m = OutboundMessage::from_fields(
            "1700000000000-0",
            [("to", "13800138000"), ("text", "hello")],
        )
        .unwrap();
        assert_eq!(m.id, "1700000000000-0");
        assert_eq!(
            m.content,
            Content::Text {
                text: "hello".into(),
                coding: None
            }
        );
    }

    #[test]
    fn malformed_entries_name_the_field() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("text", "x")], "to"),
            (&[("to", "1")], "text"),
            (&[("to", "1"), ("hex", "zz"), ("coding", "binary")], "hex"),
            (&[("to", "1"), ("hex", "00")], "coding"),
            (&[("to", "1"), ("text", "x"), ("coding", "utf7")], "coding"),
        ];
        for (fields, field) in cases {
            let err = OutboundMessage::from_fields("1-0", fields.iter().copied()).unwrap_err();
            assert_eq!(err.field, field, "{fields:?}");
        }
    }
}
