//! Drop-in compatibility with the original gateway: `/submit` and `/send`, by GET query string
//! or POST `application/x-www-form-urlencoded`, parameters `dest` (recipient), `cont` (text) and
//! `src` (extension, optional).
//!
//! Every answer is HTTP 200, as the original's was, with `{"result":0,"error":"","id":"<id>"}`
//! when accepted, `result: -1` when the request is refused (fix it before retrying) and
//! `result: -2` when Redis is unavailable or the backlog is over its limit (retry later).
//! Requests refused before they reach this handler keep their HTTP status and JSON error:
//! 401 (API keys, when configured), 413 (body over the cap), 404/405 (routing).
//!
//! Parameters come from the query and the form alike; one given more than once (twice in one,
//! or in both) is refused with `result: -1`, where the original took the first: a second `dest`
//! must not silently go unsent. Text that is not valid UTF-8 is read as GBK, which older
//! clients in China often send.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::accept;
use super::auth::api_key;
use super::body::{capped, media_type_is};
use super::errors::{HttpError, json_response};
use super::filters::{optional_header, with_state};
use super::models::{CompatAnswer, SendRequest};
use super::request_log::{request_id, respond};
use super::state::HttpState;
use crate::message::{Invalid, OutboundMessage};
use crate::store::now_ms;

const FORM: &str = "application/x-www-form-urlencoded";

/// `GET|POST /submit` and `/send`.
pub fn routes(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let path = warp::path!("submit").or(warp::path!("send")).unify();
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let get = warp::get()
        .and(api_key(state.clone()))
        .and(query)
        .map(|query: String| (query, None::<HeaderValue>, Bytes::new()));
    let post = warp::post()
        .and(api_key(state.clone()))
        .and(query)
        .and(optional_header("content-type"))
        .and(capped(
            state.config().http.max_body_bytes,
            state.config().http.body_timeout,
        ))
        .map(|query, content_type, body| (query, content_type, body));
    path.and(get.or(post).unify())
        .and(with_state(state))
        .and(request_id())
        .and_then(
            |(query, content_type, body): (String, Option<HeaderValue>, Bytes), state, id| {
                respond(id, submit(state, query, content_type, body))
            },
        )
}

async fn submit(
    state: Arc<HttpState>,
    query: String,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let answer = match accept_one(&state, &query, content_type, &body).await {
        Ok(id) => CompatAnswer {
            result: 0,
            error: String::new(),
            id,
        },
        Err(e) => {
            let result = if e.status() == StatusCode::SERVICE_UNAVAILABLE {
                -2
            } else {
                -1
            };
            // These routes take no id, so a retry cannot be idempotent: the caller gets the id
            // the message may have been accepted under, to look it up before sending again.
            let id = match &e {
                HttpError::NotConfirmed {
                    id,
                    maybe_enqueued: true,
                    ..
                } => id.clone(),
                _ => String::new(),
            };
            CompatAnswer {
                result,
                error: compat_reason(&e),
                id,
            }
        }
    };
    Ok(json_response(StatusCode::OK, &answer))
}

async fn accept_one(
    state: &HttpState,
    query: &str,
    content_type: Option<HeaderValue>,
    body: &Bytes,
) -> Result<String, HttpError> {
    let mut params = Vec::new();
    if !body.is_empty() {
        if !content_type.is_some_and(|v| media_type_is(v.as_bytes(), FORM)) {
            return Err(HttpError::BadRequest(format!("a POST body must be {FORM}")));
        }
        params = parse_form(body)?;
    }
    params.extend(parse_form(query.as_bytes())?);
    let dest = once(&params, "dest", "to")?.ok_or_else(|| Invalid::malformed("to", "missing"))?;
    let cont =
        once(&params, "cont", "text")?.ok_or_else(|| Invalid::malformed("text", "missing"))?;
    let mut template = OutboundMessage::text("", "", cont);
    template.src_ext = once(&params, "src", "src_ext")?.unwrap_or_default();
    let request = SendRequest {
        to: vec![dest],
        id: None,
        template,
    };
    // The original gateway's API knows one account: the default channel.
    let channel = state.config().default_channel();
    let batch = accept::prepare(request, &channel.message, now_ms())?;
    accept::enqueue(state, channel, &batch).await?;
    Ok(batch.messages[0].id.clone())
}

/// The value of parameter `name` (reported as `field`), if given; given twice is an error.
fn once(
    params: &[(String, String)],
    name: &str,
    field: &'static str,
) -> Result<Option<String>, Invalid> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(Invalid::malformed(field, "given more than once")),
        (value, _) => Ok(value.cloned()),
    }
}

/// The reason with the original's parameter names (`dest`, not `to`).
fn compat_reason(e: &HttpError) -> String {
    match e {
        HttpError::Invalid(i) => {
            let name = match i.field {
                "to" => "dest",
                "text" => "cont",
                "src_ext" => "src",
                other => other,
            };
            format!("{name}: {}", i.reason)
        }
        HttpError::NotConfirmed {
            cause,
            id,
            maybe_enqueued: true,
        } => format!(
            "{cause}; the message may have been accepted: look up GET /v1/messages/{id} before \
             sending it again"
        ),
        other => other.to_string(),
    }
}

/// `a=1&b=%E4%BD%A0+x` → pairs; `+` is a space.
fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, HttpError> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode_component(key)?, decode_component(value)?))
        })
        .collect()
}

fn decode_component(raw: &[u8]) -> Result<String, HttpError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        HttpError::BadRequest("invalid percent-encoding in the parameters".into())
                    })?;
                bytes.push(hex);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let (text, _, had_errors) = encoding_rs::GBK.decode(e.as_bytes());
            if had_errors {
                Err(HttpError::BadRequest(
                    "the parameters are neither UTF-8 nor GBK".into(),
                ))
            } else {
                Ok(text.into_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = parse_form(b"dest=138&cont=%E4%BD%A0%E5%A5%BD+x&src=&flag").unwrap();
        let expect = [
            ("dest", "138"),
            ("cont", "你好 x"),
            ("src", ""),
            ("flag", ""),
        ];
        assert_eq!(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            expect
        );
        // 你好 in GBK.
        assert_eq!(parse_form(b"cont=%C4%E3%BA%C3").unwrap()[0].1, "你好");
        assert!(parse_form(b"cont=%zz").is_err());
        // A lone lead byte is neither UTF-8 nor GBK.
        assert!(parse_form(b"cont=%E4").is_err());
    }
}
