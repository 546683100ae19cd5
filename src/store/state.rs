//! The state of one message as `GET /v1/messages/{id}` shows it, read from its hash.

use std::collections::HashMap;

use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Queued,
    Submitting,
    Submitted,
    Delivered,
    Failed,
    Dead,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Submitting => "submitting",
            MessageStatus::Submitted => "submitted",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        [
            MessageStatus::Queued,
            MessageStatus::Submitting,
            MessageStatus::Submitted,
            MessageStatus::Delivered,
            MessageStatus::Failed,
            MessageStatus::Dead,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// Every segment has its Msg_Id or the message has ended: sending it again would duplicate.
    pub fn is_past_submission(self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Submitting)
    }

    /// The status a hash stands for. `submitted` is never written: Msg_Ids recorded (with
    /// `submitted_at`) over a lower status make it so. The scripts apply the same rule in Lua,
    /// `effective_status` in `src/store/lua/status.lua`: change both together.
    pub fn effective(written: MessageStatus, has_submitted_at: bool) -> MessageStatus {
        if has_submitted_at && !written.is_past_submission() {
            MessageStatus::Submitted
        } else {
            written
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SegmentState {
    pub segment: u32,
    /// Decimal string: Msg_Ids exceed 2^53.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<u64>,
    /// The message that got this Msg_Id first from a peer that repeats them: reports under it
    /// correlate there, not here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id_taken_by: Option<String>,
}

/// What both the single view and the console's list show of a message: who, its status (as
/// [`MessageStatus::effective`] reads it) and its times, in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageSummary {
    pub id: String,
    pub to: String,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
}

/// The state hash fields [`MessageSummary::read`] looks at.
pub(crate) const SUMMARY_FIELDS: [&str; 9] = [
    "id",
    "to",
    "status",
    "error",
    "stream_id",
    "queued_at",
    "submitted_at",
    "final_at",
    "updated_at",
];

impl MessageSummary {
    /// `get` gives one field of the state hash (an empty value counts as absent); `None` when
    /// there is no status (the state has expired).
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> Option<MessageSummary> {
        let text = |k: &str| get(k).filter(|v| !v.is_empty());
        let num = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok());
        let written = MessageStatus::parse(&text("status")?)?;
        Some(MessageSummary {
            id: text("id").unwrap_or_default(),
            to: text("to").unwrap_or_default(),
            status: MessageStatus::effective(written, text("submitted_at").is_some()),
            error: text("error"),
            stream_id: text("stream_id"),
            queued_at: num("queued_at"),
            submitted_at: num("submitted_at"),
            final_at: num("final_at"),
            updated_at: num("updated_at"),
        })
    }
}

/// `GET /v1/messages/{id}`: the summary and every segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageState {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub segments: Vec<SegmentState>,
}

impl MessageState {
    /// Builds the view from the hash's fields; `None` when there is no status.
    pub fn from_hash(hash: &HashMap<String, String>) -> Option<MessageState> {
        let summary = MessageSummary::read(|k| hash.get(k).cloned())?;
        let text = |k: &str| hash.get(k).filter(|v| !v.is_empty()).cloned();
        let num = |k: &str| hash.get(k).and_then(|v| v.parse::<u64>().ok());
        let count = num("segments").unwrap_or(0).min(255) as u32;
        let segments = (1..=count)
            .map(|n| SegmentState {
                segment: n,
                msg_id: text(&format!("s{n}_msg_id")),
                result: num(&format!("s{n}_result")).map(|v| v as u32),
                stat: text(&format!("s{n}_stat")),
                submitted_at: num(&format!("s{n}_submitted_at")),
                reported_at: num(&format!("s{n}_reported_at")),
                msg_id_taken_by: text(&format!("s{n}_msg_id_taken_by")),
            })
            .collect();
        Some(MessageState { summary, segments })
    }
}

impl Store {
    pub async fn state(&self, message_id: &str) -> Result<Option<MessageState>, StoreError> {
        let hash: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.state(message_id))
            .query_async(&mut self.conn())
            .await?;
        Ok(MessageState::from_hash(&hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_view_from_hash() {
        let hash: HashMap<String, String> = [
            ("id", "m1"),
            ("to", "13800138000"),
            ("status", "submitting"),
            ("submitted_at", "6"),
            ("segments", "2"),
            ("s1_msg_id", "12878564852733378560"),
            ("s1_result", "0"),
            ("s2_msg_id", "12878564852733378561"),
            ("queued_at", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = MessageState::from_hash(&hash).unwrap();
        assert_eq!(s.summary.status, MessageStatus::Submitted);
        assert_eq!(s.segments.len(), 2);
        assert_eq!(
            s.segments[0].msg_id.as_deref(),
            Some("12878564852733378560")
        );
        assert_eq!(s.segments[1].result, None);
        assert_eq!(s.summary.queued_at, Some(5));
        assert!(MessageState::from_hash(&HashMap::new()).is_none());
    }
}
