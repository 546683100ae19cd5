//! What the console's cards and send form read:
//!
//! * `GET /v1/stats`: the link as `/v1/link` shows it (state, since, window, ~10 s rates of
//!   this instance's links), every configured channel with the connection slots this instance
//!   holds of it (state, window, counters and rates of each), the outbound backlog, the
//!   dead-letter count and the last hour's delivery outcomes (per-minute counters in Redis,
//!   every instance's reports).
//! * `GET /v1/config`: the settings the send form needs to count characters and segments the
//!   way the server will (no secrets).

use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::errors::{HttpError, json_response};
use super::filters::authed;
use super::handlers::{link_view, unix_ms, window_view};
use super::models::{ChannelView, ConnectionView, LinkView};
use super::rates::{Counters, Rates, held_with_rates};
use super::request_log::respond;
use super::state::HttpState;
use crate::message::SRC_ID_LEN;
use crate::session::HeldLink;
use crate::store::{HourOutcomes, now_ms};

#[derive(Debug, Serialize)]
struct Stats {
    /// When this was measured (Unix ms).
    at: u64,
    /// As before channels: the link that speaks for this process.
    link: LinkView,
    /// Every configured channel, in configuration order, with the connections held here.
    channels: Vec<ChannelView>,
    /// Outbound entries not yet read plus read and not acknowledged.
    backlog: u64,
    dead_letters: u64,
    last_hour: HourOutcomes,
}

/// What decides a text's coding and segments (see `text::split_text`), and the form's limits.
#[derive(Debug, Serialize)]
struct SendConfig {
    prefer_gbk: bool,
    ascii_segment_chars: usize,
    wide_udh_reference: bool,
    max_segments: usize,
    max_recipients: usize,
    /// Digits `src_ext` may have after the access number.
    src_ext_max_digits: usize,
}

pub fn routes(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let stats = warp::path!("v1" / "stats")
        .and(warp::get())
        .and(authed(state.clone()))
        .and_then(|state, id| respond(id, stats(state)));
    let config = warp::path!("v1" / "config")
        .and(warp::get())
        .and(authed(state))
        .and_then(|state, id| respond(id, send_config(state)));
    stats.or(config).unify()
}

async fn stats(state: Arc<HttpState>) -> Result<Response, HttpError> {
    let store = state.store()?;
    let dead_letters: Vec<String> = state
        .config()
        .channels
        .iter()
        .map(|c| store.keys().dead_letters_of(&c.stream))
        .collect();
    // One multiplexed connection: the three calls travel together. The backlog is read afresh,
    // not from the 503 check's cache, which may run up to a second ahead (it adds this
    // process's own enqueues): the card should show 0 once everything is sent.
    let (backlog, dead_letters, last_hour) = tokio::try_join!(
        state.store_call("backlog", backlog(store, state.config())),
        state.store_call("dead letters", store.streams_len(&dead_letters)),
        state.store_call("hour counters", store.last_hour_outcomes()),
    )?;
    let stats = Stats {
        at: now_ms(),
        link: link_view(&state),
        channels: channel_views(&state),
        backlog,
        dead_letters,
        last_hour,
    };
    Ok(json_response(StatusCode::OK, &stats))
}

/// Every configured channel, even one this process holds no slot of (an ingress-only instance
/// holds none): "held here h / allowed K" is what tells an operator where the rest are.
fn channel_views(state: &HttpState) -> Vec<ChannelView> {
    let held = held_with_rates(state);
    state
        .config()
        .channels
        .iter()
        .map(|channel| {
            let links: Vec<ConnectionView> = held
                .iter()
                .filter(|(h, _, _)| h.channel == channel.name)
                .map(|(h, counters, rates)| connection_view(h, *counters, rates.clone()))
                .collect();
            ChannelView {
                name: channel.name.clone(),
                allowed: channel.max_connections,
                connections_per_instance: channel.connections_per_instance,
                held_here: links.len(),
                links,
            }
        })
        .collect()
}

fn connection_view(held: &HeldLink, counters: Counters, rates: Option<Rates>) -> ConnectionView {
    let status = held.link.status();
    ConnectionView {
        slot: held.slot,
        state: status.state.as_str(),
        since: unix_ms(status.since),
        reason: status.reason,
        window: window_view(&held.link),
        counters,
        rates,
    }
}

/// Every channel's backlog, added up.
async fn backlog(
    store: &crate::store::Store,
    config: &crate::config::GatewayConfig,
) -> Result<u64, crate::store::StoreError> {
    let group = &config.worker.group;
    let mut total = 0;
    for channel in &config.channels {
        total += store.backlog(&channel.stream, group).await?;
    }
    Ok(total)
}

async fn send_config(state: Arc<HttpState>) -> Result<Response, HttpError> {
    // Segment limits are the same on every channel; the access number (and so the room left for
    // src_ext) is the default channel's.
    let message = &state.config().default_channel().message;
    let config = SendConfig {
        prefer_gbk: message.prefer_gbk,
        ascii_segment_chars: message.split.ascii_segment_chars,
        wide_udh_reference: message.split.wide_reference,
        max_segments: message.max_segments,
        max_recipients: message.max_recipients,
        src_ext_max_digits: SRC_ID_LEN.saturating_sub(message.access_no.len()),
    };
    Ok(json_response(StatusCode::OK, &config))
}
