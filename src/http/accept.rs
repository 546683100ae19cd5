//! The one path into the outbound stream, shared by `POST /v1/messages` and the compatibility
//! routes: a request becomes one validated message per recipient, then the backlog is checked
//! and all of them are enqueued (see `Store::enqueue`). The answer is built before the enqueue
//! because it is stored with the idempotency key.

use std::collections::HashSet;

use super::errors::HttpError;
use super::models::{Accepted, AcceptedMessage, SendRequest};
use super::state::HttpState;
use crate::config::{ChannelConfig, GatewayConfig, MessageConfig};
use crate::message::{
    Invalid, InvalidKind, OutboundMessage, check_caller_id, new_message_id, recipient_id,
};
use crate::store::Enqueued;

/// Messages ready to enqueue, one per recipient, and the answer that acknowledges them.
#[derive(Debug)]
pub struct Batch {
    pub messages: Vec<OutboundMessage>,
    pub answer: Accepted,
    /// The idempotency key: the caller's id, else the first message's generated id, so that a
    /// 503 can name an id whose retry is idempotent too.
    pub idempotency: String,
    /// Whether the key needs an answer stored of its own. A one-recipient request without `id`
    /// does not: a retry with the id it was given finds that message's state, which the enqueue
    /// script treats as a replay, and an answer per request would cost Redis a write each.
    pub store_answer: bool,
    /// The caller chose the id: it may have been used before (a retry, or another request),
    /// which only a look before the enqueue can tell. A made-up id cannot have been.
    pub caller_id: bool,
}

/// What the client gets: the JSON answer, and whether it is the stored answer of an earlier
/// request with the same id (nothing was enqueued this time).
#[derive(Debug)]
pub struct Outcome {
    pub body: String,
    pub replayed: bool,
}

/// One message per recipient. Ids: the caller's `id` for one recipient, `{id}~{n}` (n from 1)
/// for several, generated otherwise. A number given twice (after normalization) is refused:
/// silently dropping one would answer with fewer ids than the caller sent numbers.
pub fn prepare(req: SendRequest, cfg: &MessageConfig, now_ms: u64) -> Result<Batch, HttpError> {
    if req.to.len() > cfg.max_recipients {
        return Err(Invalid::new(
            InvalidKind::TooLarge,
            "to",
            format!(
                "{} recipients; at most {} per request",
                req.to.len(),
                cfg.max_recipients
            ),
        )
        .into());
    }
    if let Some(id) = &req.id {
        check_caller_id(id)?;
    }
    let several = req.to.len() > 1;
    // Several recipients share one request id, made up when the caller gave none: their ids
    // and the request's idempotency key then live in one Redis Cluster slot.
    let request_id = req.id.clone().unwrap_or_else(new_message_id);
    let mut seen = HashSet::with_capacity(req.to.len());
    let mut messages = Vec::with_capacity(req.to.len());
    let mut accepted = Vec::with_capacity(req.to.len());
    for (n, to) in req.to.into_iter().enumerate() {
        let id = if several {
            recipient_id(&request_id, n + 1)
        } else {
            request_id.clone()
        };
        let mut msg = OutboundMessage {
            id,
            to,
            queued_at_ms: Some(now_ms),
            ..req.template.clone()
        };
        let segments = msg.validate(cfg)?;
        if !seen.insert(msg.to.clone()) {
            return Err(Invalid::unprocessable(
                "to",
                format!("{} is given more than once", msg.to),
            )
            .into());
        }
        accepted.push(AcceptedMessage {
            id: msg.id.clone(),
            to: msg.to.clone(),
            segments,
        });
        messages.push(msg);
    }
    let store_answer = req.id.is_some() || messages.len() > 1;
    Ok(Batch {
        messages,
        answer: Accepted { messages: accepted },
        idempotency: request_id,
        store_answer,
        caller_id: req.id.is_some(),
    })
}

/// Checks the backlog, then enqueues the whole batch. Answers only after Redis has it; a 503
/// carries the id to retry with ([`HttpError::NotConfirmed`]).
/// The channel a request names: the default when it names none, a 422 for a name no channel
/// has.
pub fn channel_of<'c>(
    config: &'c GatewayConfig,
    request: &SendRequest,
) -> Result<&'c ChannelConfig, HttpError> {
    let name = request.template.channel.as_deref();
    config.channel(name).ok_or_else(|| {
        let known: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        Invalid::unprocessable(
            "channel",
            format!(
                "unknown channel {:?}; this gateway has {}",
                name.unwrap_or_default(),
                known.join(", ")
            ),
        )
        .into()
    })
}

/// Enqueues on `channel`'s stream.
pub async fn enqueue(
    state: &HttpState,
    channel: &ChannelConfig,
    batch: &Batch,
) -> Result<Outcome, HttpError> {
    let not_confirmed = |maybe_enqueued| {
        move |cause: HttpError| match cause {
            HttpError::Unavailable | HttpError::BacklogFull => HttpError::NotConfirmed {
                cause: Box::new(cause),
                id: batch.idempotency.clone(),
                maybe_enqueued,
            },
            other => other,
        }
    };
    state
        .check_backlog(&channel.stream)
        .await
        .map_err(not_confirmed(false))?;
    let answer = serde_json::to_string(&batch.answer).map_err(|_| HttpError::Internal)?;
    let store = state.store().map_err(not_confirmed(false))?;
    let enqueued = state
        .store_call(
            "enqueue",
            store.enqueue(
                &channel.stream,
                &batch.messages,
                batch.store_answer.then_some(batch.idempotency.as_str()),
                batch.caller_id,
                &answer,
            ),
        )
        .await
        .map_err(not_confirmed(true))?;
    Ok(match enqueued {
        Enqueued::Added(body) => {
            state.note_enqueued(&channel.stream, batch.messages.len());
            let accepted = &state.metrics().families.http_accepted;
            accepted.inc_by(batch.messages.len() as u64);
            tracing::debug!(messages = batch.messages.len(), "enqueued");
            Outcome {
                body,
                replayed: false,
            }
        }
        Enqueued::Duplicate(body) => {
            tracing::debug!("repeated id; answering with the first answer");
            Outcome {
                body,
                replayed: true,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    fn cfg() -> MessageConfig {
        let json = r#"{"user":"900001","password":"x","sms_accessno":"10690","cmpp_host":"127.0.0.1","cmpp_port":7890,"max_recipients":3}"#;
        GatewayConfig::from_str_with_env("t.json", json, &|_| None)
            .unwrap()
            .default_channel()
            .message
            .clone()
    }

    fn req(to: &[&str], id: Option<&str>) -> SendRequest {
        SendRequest {
            to: to.iter().map(|s| s.to_string()).collect(),
            id: id.map(str::to_owned),
            template: OutboundMessage::text("", "", "hello"),
        }
    }

    #[test]
    fn ids_follow_the_callers() {
        let b = prepare(req(&["13800138000"], Some("order-7")), &cfg(), 5).unwrap();
        assert_eq!(b.messages[0].id, "order-7");
        assert_eq!(b.messages[0].queued_at_ms, Some(5));
        let b = prepare(
            req(&["13800138000", "+8613900139000"], Some("o")),
            &cfg(),
            5,
        )
        .unwrap();
        let ids: Vec<_> = b
            .answer
            .messages
            .iter()
            .map(|m| (m.id.as_str(), m.to.as_str()))
            .collect();
        assert_eq!(ids, [("o~1", "13800138000"), ("o~2", "13900139000")]);
        let b = prepare(req(&["13800138000", "13900139000"], None), &cfg(), 5).unwrap();
        assert_eq!(b.messages[0].id, format!("{}~1", b.idempotency));
        assert_eq!(b.messages[1].id, format!("{}~2", b.idempotency));
        assert!(!b.caller_id, "a made-up id to retry with");
    }

    #[test]
    fn refusals() {
        let status = |r| prepare(r, &cfg(), 0).unwrap_err().status().as_u16();
        assert_eq!(status(req(&["13800138000", "8613800138000"], None)), 422);
        assert_eq!(status(req(&["1", "2", "3", "4"], None)), 413);
        assert_eq!(status(req(&["13800138000"], Some("a b"))), 422);
        assert_eq!(status(req(&["13800138000"], Some("o~1"))), 422);
        assert_eq!(status(req(&["123"], None)), 422);
    }
}
