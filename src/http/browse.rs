//! The console's lists, newest first, each answered as `{"items": [...], "next_cursor": ...}`
//! (pass `next_cursor` back as `cursor` for the next page; `null` on the last one):
//!
//! * `GET /v1/messages?to=&id=&status=&cursor=&limit=`: messages (state and text), from the
//!   recent or the recipient's index; `id` is an exact lookup; `status` filters what the index
//!   gives, reading at most `SCAN_BUDGET` entries per request.
//! * `GET /v1/mo?from=`, `GET /v1/reports?to=`: the inbound streams, by XREVRANGE, or through
//!   the number's index when one is given.
//! * `GET /v1/dead?channel=`: a channel's dead-letter stream (the default channel's without
//!   `channel`).

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::errors::{HttpError, json_response};
use super::filters::authed;
use super::params::Params;
use super::request_log::respond;
use super::state::HttpState;
use crate::message::Invalid;
use crate::store::MessageQuery;

/// The inbound and dead-letter streams the console lists.
#[derive(Debug, Clone, Copy)]
enum Listed {
    Mo,
    Reports,
    Dead,
}

impl Listed {
    /// The path segment, and the query parameter that searches by number (if any).
    fn route(self) -> (&'static str, Option<&'static str>) {
        match self {
            Listed::Mo => ("mo", Some("from")),
            Listed::Reports => ("reports", Some("to")),
            Listed::Dead => ("dead", Some("channel")),
        }
    }
}

/// The list routes, behind the API key.
pub fn routes(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let messages = warp::path!("v1" / "messages")
        .and(warp::get())
        .and(authed(state.clone()))
        .and(warp::query::<Vec<(String, String)>>())
        .and_then(|state, id, query| respond(id, list_messages(state, query)));
    messages
        .or(stream_route(state.clone(), Listed::Mo))
        .unify()
        .or(stream_route(state.clone(), Listed::Reports))
        .unify()
        .or(stream_route(state, Listed::Dead))
        .unify()
}

fn stream_route(
    state: Arc<HttpState>,
    listed: Listed,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path("v1")
        .and(warp::path(listed.route().0))
        .and(warp::path::end())
        .and(warp::get())
        .and(authed(state))
        .and(warp::query::<Vec<(String, String)>>())
        .and_then(move |state, id, query| respond(id, list_stream(state, listed, query)))
}

async fn list_messages(
    state: Arc<HttpState>,
    query: Vec<(String, String)>,
) -> Result<Response, HttpError> {
    let params = Params::parse(query, &["to", "id", "status", "cursor", "limit"])?;
    let search = MessageQuery {
        id: params.get("id").map(str::to_owned),
        to: params.number("to")?,
        status: params.status()?,
    };
    let cursor = params.index_cursor()?;
    let limit = params.limit()?;
    let page = state
        .store_call(
            "message list",
            state.store()?.message_page(&search, cursor.as_ref(), limit),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &page))
}

async fn list_stream(
    state: Arc<HttpState>,
    listed: Listed,
    query: Vec<(String, String)>,
) -> Result<Response, HttpError> {
    let (_, number_param) = listed.route();
    let mut known = vec!["cursor", "limit"];
    known.extend(number_param);
    let params = Params::parse(query, &known)?;
    let limit = params.limit()?;
    let store = state.store()?;
    let keys = store.keys();
    let stream = match listed {
        Listed::Mo => keys.mo(),
        Listed::Reports => keys.reports(),
        Listed::Dead => {
            let name = params.get("channel");
            let channel = state.config().channel(name).ok_or_else(|| {
                Invalid::unprocessable(
                    "channel",
                    format!("unknown channel {:?}", name.unwrap_or_default()),
                )
            })?;
            keys.dead_letters_of(&channel.stream)
        }
    };
    let number = match listed {
        Listed::Dead => None,
        _ => number_param
            .map(|p| params.number(p))
            .transpose()?
            .flatten(),
    };
    let index = match (listed, number) {
        (Listed::Mo, Some(from)) => Some(keys.mo_index(&from)),
        (Listed::Reports, Some(to)) => Some(keys.reports_index(&to)),
        _ => None,
    };
    let page = match index {
        Some(index) => {
            let cursor = params.index_cursor()?;
            let page = store.indexed_stream_page(&stream, &index, cursor.as_ref(), limit);
            state.store_call("indexed stream list", page).await?
        }
        None => {
            let cursor = params.stream_cursor()?;
            let page = store.stream_page(&stream, cursor, limit);
            state.store_call("stream list", page).await?
        }
    };
    Ok(json_response(StatusCode::OK, &page))
}
