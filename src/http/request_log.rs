//! Request ids and the one log line per request.
//!
//! Every request gets an id: the caller's `X-Request-Id` when it is a sane token, else a new
//! random one. Handlers run inside a `http` span carrying it and put it on their response; for
//! requests refused before a handler ran (routing, auth, body checks) the outer layer does. The
//! line is logged at debug for success, info for 4xx, warn for 5xx, with method, path (never
//! the query, which may carry message text), status and duration; never a body or a key.

use std::future::Future;

use tracing::Instrument;
use warp::filters::path::FullPath;
use warp::http::header::X_CONTENT_TYPE_OPTIONS;
use warp::http::{HeaderValue, Method};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::errors::HttpError;
use super::filters::optional_header;
use crate::metrics::{Metrics, route_label};

pub const X_REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_header(value: Option<HeaderValue>) -> RequestId {
        let given = value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= MAX_REQUEST_ID
                    && v.bytes().all(|b| b.is_ascii_graphic())
            });
        match given {
            Some(id) => RequestId(id.to_owned()),
            None => RequestId(format!("{:016x}", fastrand::u64(..))),
        }
    }
}

/// The request's id (see the module doc).
pub fn request_id() -> impl Filter<Extract = (RequestId,), Error = std::convert::Infallible> + Clone
{
    optional_header(X_REQUEST_ID).map(RequestId::from_header)
}

/// What the log line needs, taken when the request arrives.
pub struct RequestMeta {
    id: RequestId,
    method: Method,
    path: FullPath,
    start: tokio::time::Instant,
}

pub fn request_meta()
-> impl Filter<Extract = (RequestMeta,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(request_id())
        .map(|method, path, id| RequestMeta {
            id,
            method,
            path,
            start: tokio::time::Instant::now(),
        })
}

/// Runs a handler inside the request's span, turns its error into the JSON answer and sets
/// `X-Request-Id`. Never rejects: once a handler runs, the answer is its own.
pub async fn respond(
    id: RequestId,
    work: impl Future<Output = Result<Response, HttpError>>,
) -> Result<Response, Rejection> {
    let span = tracing::info_span!("http", request_id = %id.0);
    let mut resp = match work.instrument(span).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(resp)
}

/// Sets `X-Request-Id` if no handler did, counts the request and logs its line. Every answer
/// also gets `X-Content-Type-Options: nosniff`: a browser must not run a JSON body (which may
/// echo message text) as anything else.
pub fn finish(metrics: &Metrics, meta: RequestMeta, reply: impl Reply) -> Response {
    let mut resp = reply.into_response();
    resp.headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let id = match resp
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => id.to_owned(),
        None => {
            if let Ok(value) = HeaderValue::from_str(&meta.id.0) {
                resp.headers_mut().insert(X_REQUEST_ID, value);
            }
            meta.id.0
        }
    };
    let status = resp.status().as_u16();
    let elapsed = meta.start.elapsed().as_secs_f64();
    let route = route_label(&meta.method, meta.path.as_str());
    let f = &metrics.families;
    f.http_requests
        .with_label_values(&[route, resp.status().as_str()])
        .inc();
    f.http_duration.with_label_values(&[route]).observe(elapsed);
    let duration_ms = (elapsed * 1000.0 * 100.0).round() / 100.0;
    let (method, path) = (meta.method.as_str(), meta.path.as_str());
    match status {
        500.. => {
            tracing::warn!(request_id = %id, method, path, status, duration_ms, "http request")
        }
        400..=499 => {
            tracing::info!(request_id = %id, method, path, status, duration_ms, "http request")
        }
        _ => tracing::debug!(request_id = %id, method, path, status, duration_ms, "http request"),
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_headers_are_kept_only_when_sane() {
        let given = RequestId::from_header(Some(HeaderValue::from_static("abc-123")));
        assert_eq!(given.0, "abc-123");
        let generated = RequestId::from_header(Some(HeaderValue::from_static("has space")));
        assert_eq!(generated.0.len(), 16);
        let long = "x".repeat(MAX_REQUEST_ID + 1);
        assert_ne!(
            RequestId::from_header(Some(HeaderValue::from_str(&long).unwrap())).0,
            long
        );
        assert_eq!(RequestId::from_header(None).0.len(), 16);
    }
}
