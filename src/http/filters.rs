//! The routes as warp filters: path and method first (so a request to another route is a 404
//! or 405, never an auth or body error), then the API key, then the body checks, then the
//! handler inside [`respond`]. One `.recover()` answers every rejection.

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::api_key;
use super::body::{capped, content_type};
use super::request_log::{RequestId, finish, request_id, request_meta, respond};
use super::state::HttpState;
use super::{browse, compat, console, errors, handlers, stats};

/// Every route, answered as JSON, with a request id and one log line per request.
pub fn routes(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let api = healthz()
        .or(readyz(state.clone()))
        .unify()
        .or(send_messages(state.clone()))
        .unify()
        .or(message_state(state.clone()))
        .unify()
        .or(link(state.clone()))
        .unify()
        .or(metrics(state.clone()))
        .unify()
        .or(browse::routes(state.clone()))
        .unify()
        .or(stats::routes(state.clone()))
        .unify()
        .or(console::routes())
        .unify()
        .or(compat::routes(state.clone()))
        .unify()
        .recover(errors::recover)
        .unify();
    let metrics = state.metrics().clone();
    request_meta()
        .and(api)
        .map(move |meta, reply| finish(&metrics, meta, reply))
}

/// `GET /metrics`: behind the API keys like the rest of the API (Prometheus sends one with
/// `authorization`); `metrics_port` serves it without a key on an address of its own.
fn metrics(state: Arc<HttpState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(authed(state))
        .and_then(|state: Arc<HttpState>, id| {
            respond(id, async move { Ok(handlers::metrics(state.metrics())) })
        })
}

fn healthz() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and(request_id())
        .and_then(|id| respond(id, handlers::healthz()))
}

fn readyz(state: Arc<HttpState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .and(request_id())
        .and_then(|state, id| respond(id, handlers::readyz(state)))
}

fn send_messages(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let http = &state.config().http;
    let body = capped(http.max_body_bytes, http.body_timeout);
    warp::path!("v1" / "messages")
        .and(warp::post())
        .and(api_key(state.clone()))
        .and(content_type("application/json"))
        .and(body)
        .and(with_state(state))
        .and(request_id())
        .and_then(|body, state, id| respond(id, handlers::send_messages(state, body)))
}

fn message_state(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "messages" / String)
        .and(warp::get())
        .and(authed(state))
        .and_then(|message_id, state, id| respond(id, handlers::message_state(state, message_id)))
}

fn link(state: Arc<HttpState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "link")
        .and(warp::get())
        .and(authed(state))
        .and_then(|state, id| respond(id, handlers::link(state)))
}

pub(super) fn with_state(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Arc<HttpState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// What most API routes take after their path and method: the API key checked, then the state
/// and the request id for the handler.
pub(super) fn authed(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Arc<HttpState>, RequestId), Error = Rejection> + Clone {
    api_key(state.clone())
        .and(with_state(state))
        .and(request_id())
}

/// A header's raw value when present; never rejects (unlike `warp::header::optional`, which
/// refuses values that are not visible ASCII).
pub(super) fn optional_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value(name)
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}
