//! What each route does once its filters have passed. Handlers return `HttpError` for every
//! refusal; [`respond`](super::request_log::respond) turns it into the JSON answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::accept;
use super::errors::{HttpError, json_response, raw_json_response};
use super::models::{LinkView, SendRequest, WindowView};
use super::rates::{Rates, held_with_rates};
use super::state::HttpState;
use crate::metrics::Metrics;
use crate::session::{Link, LinkState};
use crate::store::now_ms;

/// Set on a 202 that repeats the stored answer of an earlier request with the same `id`.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Result<Response, HttpError> {
    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /readyz`: Redis answers, and when `readyz_requires_link` a link of this process is up —
/// or, holding none, every connection slot of every channel is held by other instances (a spare
/// instance still serves HTTP).
pub async fn readyz(state: Arc<HttpState>) -> Result<Response, HttpError> {
    let store = state
        .store()
        .map_err(|_| HttpError::NotReady("redis unavailable: not reached since start-up".into()))?;
    state
        .store_call("ping", store.ping())
        .await
        .map_err(|_| HttpError::NotReady("redis unavailable".into()))?;
    if state.config().http.readyz_requires_link {
        let Some(link) = state.link() else {
            return spare_instance_ready(&state, store).await;
        };
        let status = link.status();
        if status.state != LinkState::Up {
            return Err(HttpError::NotReady(format!(
                "CMPP link is {}: {}",
                status.state.as_str(),
                status.reason
            )));
        }
    }
    Ok(json_response(StatusCode::OK, &json!({"status": "ready"})))
}

/// Ready without a link of its own only while the other instances hold every slot.
async fn spare_instance_ready(
    state: &HttpState,
    store: &crate::store::Store,
) -> Result<Response, HttpError> {
    for channel in &state.config().channels {
        let holders = state
            .store_call(
                "lease holders",
                store.lease_holders(&channel.name, channel.max_connections),
            )
            .await
            .map_err(|_| HttpError::NotReady("redis unavailable".into()))?;
        let free = holders.iter().filter(|h| h.is_none()).count();
        if free > 0 {
            return Err(HttpError::NotReady(format!(
                "no CMPP link in this process, and {free} of channel {}'s {} connection slots are not held by any instance",
                channel.name, channel.max_connections
            )));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ready", "links": "every connection slot is held by other instances"}),
    ))
}

/// `GET /metrics`: the Prometheus text format.
pub fn metrics(metrics: &Metrics) -> Response {
    let mut resp = Response::new(metrics.render().into());
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// `POST /v1/messages`.
pub async fn send_messages(state: Arc<HttpState>, body: Bytes) -> Result<Response, HttpError> {
    let request = SendRequest::from_json(&body)?;
    let channel = accept::channel_of(state.config(), &request)?;
    let batch = accept::prepare(request, &channel.message, now_ms())?;
    let outcome = accept::enqueue(&state, channel, &batch).await?;
    let mut resp = raw_json_response(StatusCode::ACCEPTED, outcome.body);
    if outcome.replayed {
        resp.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// `GET /v1/messages/{id}`.
pub async fn message_state(state: Arc<HttpState>, id: String) -> Result<Response, HttpError> {
    let id = super::path::decode_segment(&id)?;
    match state.store_call("state", state.store()?.state(&id)).await? {
        Some(message) => Ok(json_response(StatusCode::OK, &message)),
        None => Err(HttpError::NotFound("no such message")),
    }
}

/// `GET /v1/link`: 503 until start-up has reached Redis (the link starts after it).
pub async fn link(state: Arc<HttpState>) -> Result<Response, HttpError> {
    state.store()?;
    Ok(json_response(StatusCode::OK, &link_view(&state)))
}

/// The link as `/v1/link` and `/v1/stats` show it.
pub fn link_view(state: &HttpState) -> LinkView {
    let Some(link) = state.link() else {
        return LinkView {
            state: "absent",
            since: None,
            reason: None,
            window: None,
            stats: None,
            rates: None,
        };
    };
    let status = link.status();
    let stats = link.stats().snapshot();
    let rates = Rates::total(
        held_with_rates(state)
            .into_iter()
            .filter_map(|(_, _, rates)| rates),
    );
    LinkView {
        state: status.state.as_str(),
        since: unix_ms(status.since),
        reason: Some(status.reason),
        window: Some(window_view(&link)),
        stats: Some(stats),
        rates,
    }
}

/// A link's window now.
pub fn window_view(link: &Link) -> WindowView {
    let size = link.window_size();
    WindowView {
        size,
        in_flight: size.saturating_sub(link.window_available()),
    }
}

/// Unix milliseconds, as the API gives every time.
pub fn unix_ms(at: SystemTime) -> Option<u64> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}
