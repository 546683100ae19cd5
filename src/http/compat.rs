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
//! Form values take precedence over query values, like Go's `Request.FormValue`. Text that is
//! not valid UTF-8 is read as GBK, which older clients in China often send.

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
            let result = if matches!(e, HttpError::Unavailable | HttpError::BacklogFull) {
                -2
            } else {
                -1
            };
            CompatAnswer {
                result,
                error: compat_reason(&e),
                id: String::new(),
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
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let dest = param("dest").ok_or_else(|| Invalid::malformed("to", "missing"))?;
    let cont = param("cont").ok_or_else(|| Invalid::malformed("text", "missing"))?;
    let mut template = OutboundMessage::text("", "", cont);
    template.src_ext = param("src").unwrap_or_default();
    let request = SendRequest {
        to: vec![dest],
        id: None,
        template,
    };
    let batch = accept::prepare(request, &state.config().message, now_ms())?;
    accept::enqueue(state, &batch).await?;
    Ok(batch.messages[0].id.clone())
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
