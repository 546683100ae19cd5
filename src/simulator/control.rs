//! The HTTP control interface (warp 0.4): read counters, change behaviour, inject MO, reports and
//! faults while the simulator runs. Every answer is JSON; every error is `{"error": "..."}`.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /stats` | | [`super::Stats`]: counters, `accounts`, `connections` |
//! | `GET /behaviour` | | the behaviour in force |
//! | `PUT /behaviour` | Behaviour: replaces it, missing fields take their defaults | the behaviour in force |
//! | `PATCH /behaviour` | some Behaviour fields: changes only those | the behaviour in force |
//! | `POST /mo` | MoRequest | `{"parts": n}` |
//! | `POST /report` | ReportRequest | `{"queued": 1}` |
//! | `POST /faults/malformed`, `/faults/disconnect`, `/faults/terminate` | | `{"connections": n}` |
//! | `POST /faults/deliver` | DamagedDeliverRequest | `{"queued": 1}` |
//! | `POST /faults/submit` | optional IsmgSubmitRequest | `{"connections": n}` |
//! | `GET /submits` | | recorded submits (404 unless `record_submits`) |

use std::convert::Infallible;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::config::Behaviour;
use super::handle::SimulatorHandle;
use super::hostile::{DamagedDeliverRequest, IsmgSubmitRequest};
use super::mo::MoRequest;
use super::report::ReportRequest;

/// Request bodies are small JSON documents; anything bigger is a mistake or an attack.
const MAX_BODY: u64 = 64 * 1024;

pub(crate) async fn serve(
    handle: SimulatorHandle,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    warp::serve(routes(handle))
        .incoming(listener)
        .graceful(shutdown.cancelled_owned())
        .run()
        .await;
}

fn reply<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    reply(status, &json!({ "error": message.to_string() }))
}

fn ok<T: Serialize>(value: &T) -> Response {
    reply(StatusCode::OK, value)
}

/// A JSON body, or the parse error for a 400 (warp's own JSON filter answers in plain text).
fn json_body<T: DeserializeOwned + Send>()
-> impl Filter<Extract = (Result<T, String>,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .map(|body: Bytes| serde_json::from_slice::<T>(&body).map_err(|e| e.to_string()))
}

pub(crate) fn routes(
    handle: SimulatorHandle,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let h = warp::any().map(move || handle.clone());

    let stats = warp::path!("stats")
        .and(warp::get())
        .and(h.clone())
        .map(|h: SimulatorHandle| ok(&h.stats()));
    let get_behaviour = warp::path!("behaviour")
        .and(warp::get())
        .and(h.clone())
        .map(|h: SimulatorHandle| ok(&h.behaviour()));
    let put_behaviour = warp::path!("behaviour")
        .and(warp::put())
        .and(h.clone())
        .and(json_body::<Behaviour>())
        .map(|h: SimulatorHandle, body: Result<Behaviour, String>| {
            match body.and_then(|b| h.set_behaviour(b)) {
                Ok(()) => ok(&h.behaviour()),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        });
    let patch_behaviour = warp::path!("behaviour")
        .and(warp::patch())
        .and(h.clone())
        .and(json_body::<Value>())
        .map(|h: SimulatorHandle, body: Result<Value, String>| {
            match body
                .and_then(|patch| merge(h.behaviour(), patch))
                .and_then(|b| h.set_behaviour(b))
            {
                Ok(()) => ok(&h.behaviour()),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        });
    let mo = warp::path!("mo")
        .and(warp::post())
        .and(h.clone())
        .and(json_body::<MoRequest>())
        .map(|h: SimulatorHandle, body: Result<MoRequest, String>| {
            match body.and_then(|req| h.send_mo(req)) {
                Ok(parts) => ok(&json!({ "parts": parts })),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        });
    let report = warp::path!("report")
        .and(warp::post())
        .and(h.clone())
        .and(json_body::<ReportRequest>())
        .map(|h: SimulatorHandle, body: Result<ReportRequest, String>| {
            match body.and_then(|req| h.send_report(req)) {
                Ok(()) => ok(&json!({ "queued": 1 })),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        });
    let damaged_deliver = warp::path!("faults" / "deliver")
        .and(warp::post())
        .and(h.clone())
        .and(json_body::<DamagedDeliverRequest>())
        .map(
            |h: SimulatorHandle, body: Result<DamagedDeliverRequest, String>| match body
                .and_then(|req| h.send_damaged_deliver(req))
            {
                Ok(()) => ok(&json!({ "queued": 1 })),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            },
        );
    let ismg_submit = warp::path!("faults" / "submit")
        .and(warp::post())
        .and(h.clone())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .map(|h: SimulatorHandle, body: Bytes| {
            let req = if body.is_empty() {
                Ok(IsmgSubmitRequest::default())
            } else {
                serde_json::from_slice::<IsmgSubmitRequest>(&body).map_err(|e| e.to_string())
            };
            match req {
                Ok(req) => ok(&json!({ "connections": h.send_ismg_submit(req) })),
                Err(e) => error(StatusCode::BAD_REQUEST, e),
            }
        });
    let faults = warp::path!("faults" / String)
        .and(warp::post())
        .and(h.clone())
        .map(|fault: String, h: SimulatorHandle| {
            let connections = match fault.as_str() {
                "malformed" => h.inject_malformed(),
                "disconnect" => h.disconnect_all(),
                "terminate" => h.terminate_all(),
                other => {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("unknown fault {other:?}; use malformed, disconnect or terminate"),
                    );
                }
            };
            ok(&json!({ "connections": connections }))
        });
    let submits = warp::path!("submits")
        .and(warp::get())
        .and(h)
        .map(|h: SimulatorHandle| {
            if h.is_recording() {
                ok(&h.recorded_submits())
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "submits are not recorded; start with record_submits",
                )
            }
        });

    stats
        .or(get_behaviour)
        .unify()
        .or(put_behaviour)
        .unify()
        .or(patch_behaviour)
        .unify()
        .or(mo)
        .unify()
        .or(report)
        .unify()
        .or(damaged_deliver)
        .unify()
        .or(ismg_submit)
        .unify()
        .or(faults)
        .unify()
        .or(submits)
        .unify()
        .recover(rejection)
        .unify()
}

/// `current` with the fields present in `patch` replaced (unknown fields are refused).
fn merge(current: Behaviour, patch: Value) -> Result<Behaviour, String> {
    let Value::Object(patch) = patch else {
        return Err("expected a JSON object of Behaviour fields".into());
    };
    let mut merged = serde_json::to_value(current).map_err(|e| e.to_string())?;
    if let Value::Object(fields) = &mut merged {
        fields.extend(patch);
    }
    serde_json::from_value(merged).map_err(|e| e.to_string())
}

/// warp's rejections as JSON errors.
async fn rejection(err: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{LengthRequired, MethodNotAllowed, PayloadTooLarge};
    let (status, message) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route".to_owned())
    } else if err.find::<MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else if err.find::<PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body above {MAX_BODY} bytes"),
        )
    } else if err.find::<LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length header is required".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("{err:?}"))
    };
    Ok(error(status, message))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn patch_changes_only_the_given_fields() {
        let current = Behaviour {
            report_delay: Duration::from_millis(100),
            ..Behaviour::default()
        };
        let merged = merge(current, json!({ "window": 8 })).unwrap();
        assert_eq!(
            (merged.window, merged.report_delay),
            (8, Duration::from_millis(100))
        );
        assert!(merge(Behaviour::default(), json!({ "windw": 8 })).is_err());
        assert!(merge(Behaviour::default(), json!([1])).is_err());
    }
}
