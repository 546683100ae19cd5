//! The one error type of the HTTP layer and the one `recover` that turns every rejection into
//! JSON: `{"error": "human sentence", "field": "to"}` (`field` only when the error is about one).

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::reject::Rejection;
use warp::reply::Response;

use super::models::ErrorBody;
use crate::message::{Invalid, InvalidKind};

const MAYBE_ENQUEUED: &str = "; the message may have been accepted: retry with the same id";

/// Why a request was not served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// A field of the message is missing, malformed or unacceptable; the kind picks the status.
    #[error("{0}")]
    Invalid(Invalid),
    /// The body is not JSON (serde's text carries the line and column).
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("unsupported content type; send {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("the request body did not arrive within {}", humantime::format_duration(*.after))]
    BodyTimeout { after: std::time::Duration },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    /// The outbound stream holds more than the configured limit.
    #[error("outbound backlog over limit")]
    BacklogFull,
    /// Redis refused, timed out or is not reachable.
    #[error("redis unavailable")]
    Unavailable,
    /// A send that was not confirmed: `cause` is [`Unavailable`](Self::Unavailable) or
    /// [`BacklogFull`](Self::BacklogFull). `id` is the request's id to retry with (the caller's,
    /// or the one the gateway made); `maybe_enqueued` when the enqueue itself got no answer,
    /// so Redis may still have run it.
    #[error("{cause}{}", if *.maybe_enqueued { MAYBE_ENQUEUED } else { "" })]
    NotConfirmed {
        cause: Box<HttpError>,
        id: String,
        maybe_enqueued: bool,
    },
    /// `/readyz`: why this instance should get no traffic.
    #[error("{0}")]
    NotReady(String),
    #[error("internal error")]
    Internal,
}

impl warp::reject::Reject for HttpError {}

impl From<Invalid> for HttpError {
    fn from(e: Invalid) -> HttpError {
        HttpError::Invalid(e)
    }
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Invalid(e) => match e.kind {
                InvalidKind::Malformed => StatusCode::BAD_REQUEST,
                InvalidKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                InvalidKind::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                InvalidKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            },
            HttpError::MalformedJson(_) | HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::BacklogFull | HttpError::Unavailable | HttpError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::NotConfirmed { cause, .. } => cause.status(),
        }
    }

    /// The id to retry with, when a send was not confirmed.
    pub fn retry_id(&self) -> Option<&str> {
        match self {
            HttpError::NotConfirmed { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            HttpError::Invalid(e) => Some(e.field),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying, for the `Retry-After` header.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            HttpError::BacklogFull => Some(1),
            HttpError::Unavailable => Some(2),
            HttpError::NotConfirmed { cause, .. } => cause.retry_after(),
            _ => None,
        }
    }

    /// Whether the client can fix it (as opposed to trying again later).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    /// The JSON answer with its status and headers.
    pub fn into_response(&self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
            field: self.field(),
            id: self.retry_id(),
        };
        let mut resp = json_response(self.status(), &body);
        let headers = resp.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, HttpError::Unauthorized) {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, HttpError::BodyTimeout { .. }) {
            // The rest of the body may still come; the connection cannot be reused.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// `value` as JSON with `status`.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    // Our response types always serialize; the fallback only guards against a future mistake.
    let body =
        serde_json::to_string(value).unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned());
    raw_json_response(status, body)
}

/// A body that already is JSON text (a stored idempotent answer).
pub fn raw_json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The single `.recover()`: every rejection, ours or warp's, becomes an [`HttpError`] answer.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(classify(&rejection).into_response())
}

fn classify(rejection: &Rejection) -> HttpError {
    if let Some(e) = rejection.find::<HttpError>() {
        return e.clone();
    }
    if rejection.is_not_found() {
        return HttpError::NotFound("no such route");
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return HttpError::MethodNotAllowed;
    }
    if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        return HttpError::BadRequest(format!("invalid {} header", e.name()));
    }
    if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        return HttpError::BadRequest(format!("missing {} header", e.name()));
    }
    if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        return HttpError::BadRequest("invalid query string".into());
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return HttpError::BadRequest("the request body is too large".into());
    }
    if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        return HttpError::UnsupportedMediaType {
            expected: "application/json",
        };
    }
    tracing::error!(?rejection, "unhandled rejection");
    HttpError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_kinds_map_to_statuses() {
        let cases = [
            (InvalidKind::Malformed, 400),
            (InvalidKind::TooLarge, 413),
            (InvalidKind::Unsupported, 415),
            (InvalidKind::Unprocessable, 422),
        ];
        for (kind, status) in cases {
            let e = HttpError::Invalid(Invalid::new(kind, "to", "x"));
            assert_eq!(e.status().as_u16(), status);
            assert_eq!(e.field(), Some("to"));
        }
    }

    #[test]
    fn an_unconfirmed_send_names_the_id_to_retry_with() {
        let e = HttpError::NotConfirmed {
            cause: Box::new(HttpError::BacklogFull),
            id: "order-7".into(),
            maybe_enqueued: false,
        };
        assert_eq!((e.status().as_u16(), e.retry_after()), (503, Some(1)));
        assert_eq!(e.to_string(), "outbound backlog over limit");
        let e = HttpError::NotConfirmed {
            cause: Box::new(HttpError::Unavailable),
            id: "order-7".into(),
            maybe_enqueued: true,
        };
        assert_eq!(e.retry_after(), Some(2));
        assert_eq!(
            e.to_string(),
            "redis unavailable; the message may have been accepted: retry with the same id"
        );
        assert_eq!(e.retry_id(), Some("order-7"));
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let resp = HttpError::Unavailable.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[RETRY_AFTER], "2");
        let resp = HttpError::Unauthorized.into_response();
        assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
    }
}
