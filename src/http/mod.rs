//! The HTTP ingress: web apps POST messages, the gateway validates them, XADDs one entry per
//! recipient to the outbound stream and answers. It never touches the CMPP link; it only reads
//! the link's state for `/v1/link` and `/readyz`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/messages` | 202 `{"messages":[{"id","to","segments"}]}`; 400/413/415/422 with the field; 503 + `Retry-After` |
//! | `GET /v1/messages/{id}` | 200 the message's state; 404 `{"error":"no such message"}` |
//! | `GET /v1/link` | 200 state, window, counters and ~10 s rates of the CMPP link (`"absent"` without one) |
//! | `GET /metrics` | 200 the Prometheus text format (`docs/metrics.md`); also on `metrics_port` without a key |
//! | `GET /healthz` | 200 `{"status":"ok"}` while the process runs (no API key needed) |
//! | `GET /readyz` | 200 when Redis answers (and the link is up if `readyz_requires_link`); else 503 (no API key needed) |
//! | `GET/POST /submit`, `/send` | the original gateway's API, always 200 with `result` 0 / -1 / -2 ([`compat`]) |
//! | `GET /v1/messages?to=&id=&status=&cursor=&limit=` | 200 `{"items":[message rows],"next_cursor"}`, newest first ([`browse`]) |
//! | `GET /v1/mo?from=&cursor=&limit=` | 200 `{"items":[{"entry_id","fields"}],"next_cursor"}`: MO entries, newest first |
//! | `GET /v1/reports?to=&cursor=&limit=` | the same for status reports |
//! | `GET /v1/dead?cursor=&limit=` | the same for dead letters |
//! | `GET /v1/stats` | 200 the console's cards: link, backlog, dead letters, last hour's delivery ratio ([`stats`]) |
//! | `GET /v1/config` | 200 what the send form needs to count segments like the server |
//! | `GET /`, `/console/app.js`, `/console/style.css` | the web console (no API key needed: no data in them) ([`console`]) |
//!
//! List parameters: `limit` 1–200 (default 50); `cursor` is the previous page's `next_cursor`
//! (`null` on the last page); numbers are searched whole, `+86`/`86` prefixes removed; an
//! unknown parameter is a 400, a bad value a 400/422 naming it ([`params`]).
//!
//! Every error is JSON `{"error": "...", "field": "..."}` (`field` when it is about one; a 503
//! to a send also has `id`, the id to retry with). With `api_keys` set, every route but the
//! health checks needs `Authorization: Bearer <key>` or `X-API-Key: <key>`. Every request gets
//! an `X-Request-Id` (the caller's, or a new one) and one log line; every answer
//! `X-Content-Type-Options: nosniff`. HTTP serves before Redis has answered: the health checks
//! at once, the rest 503 until then ([`HttpState::starting`]).
//!
//! # Layout (vector's warp layout)
//! - [`filters`]: the routes as warp filters, one `.recover()`.
//! - [`handlers`]: what each route does; [`compat`]: `/submit` and `/send`, filters and handler.
//! - [`accept`]: request → validated messages → backlog check → one atomic enqueue.
//! - [`models`]: the JSON read and written ([`json`]: parsed refusing a key given twice);
//!   [`errors`]: [`HttpError`] with `status()`, `recover`.
//! - [`auth`], [`body`] (content type, size cap, time limit), [`request_log`] (ids, log line),
//!   [`rates`] (link rates), [`state`] ([`HttpState`]).
//! - [`server`]: connections on hyper with a cap, timeouts ([`connection_clock`]) and a
//!   shutdown deadline.
//! - The console: [`console`] (the page), [`browse`] (lists), [`stats`] (cards, send-form
//!   settings), [`params`] (list query strings).

mod accept;
mod auth;
mod body;
mod browse;
mod compat;
mod connection_clock;
mod console;
mod errors;
mod filters;
mod handlers;
mod json;
mod models;
mod params;
mod path;
mod rates;
mod request_log;
mod server;
mod state;
mod stats;

use std::convert::Infallible;
use std::sync::Arc;

use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::{Filter, Reply};

pub use errors::HttpError;
pub use handlers::IDEMPOTENT_REPLAYED;
pub use models::{Accepted, AcceptedMessage, CompatAnswer};
pub use rates::Rates;
pub use request_log::X_REQUEST_ID;
pub use server::ConnectionLimits;
pub use state::{BACKLOG_CACHE, HttpState, STORE_DEADLINE};

/// Every route, ready for `warp::serve` or `warp::test`.
pub fn routes(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    filters::routes(state)
}

/// Serves only `GET /metrics`, without API keys, on the separate `metrics_port` address.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<crate::metrics::Metrics>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    let registry = metrics.clone();
    let route = warp::path!("metrics")
        .and(warp::get())
        .map(move || handlers::metrics(&registry));
    let service = TowerToHyperService::new(warp::service(route));
    server::serve_connections(listener, service, limits, &metrics, "metrics", shutdown).await;
}

/// Serves on `listener` until `shutdown` is cancelled, then lets requests in progress finish
/// within `http_shutdown_timeout`. Until the state is connected to Redis, the health checks
/// answer and the rest is 503. Also samples the link's counters every second for
/// `/v1/link`'s rates.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http listening");
    }
    let sampler = tokio::spawn(rates::run_sampler(state.clone(), shutdown.clone()));
    let limits = ConnectionLimits::for_http(&state.config().http);
    let metrics = state.metrics().clone();
    let service = TowerToHyperService::new(warp::service(routes(state)));
    server::serve_connections(listener, service, limits, &metrics, "http", shutdown).await;
    sampler.abort();
    tracing::info!("http stopped");
}
