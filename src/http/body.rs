//! Request bodies: the content-type check, the size cap and the time limit.
//!
//! The cap is enforced twice: a `Content-Length` over the limit is refused before reading
//! anything (what `warp::body::content_length_limit` does), and the body is read with a running
//! count, so a chunked body without a length is capped too instead of refused with 411.
//! The whole body must arrive within `http_body_timeout`, else 408 and the connection closes:
//! a client that stalls mid-upload holds neither a connection nor its partial body for longer.
//! Routes check the API key before this filter, so nothing is read for an unauthorized client.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use warp::{Filter, Rejection};

use super::errors::HttpError;

/// The body, at most `limit` bytes (413 otherwise), arrived within `timeout` (408 otherwise).
pub fn capped(
    limit: u64,
    timeout: Duration,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |length: Option<u64>| async move {
            match length {
                Some(length) if length > limit => {
                    Err(warp::reject::custom(HttpError::BodyTooLarge { limit }))
                }
                _ => Ok(length.unwrap_or(0)),
            }
        })
        .and(warp::body::stream())
        .and_then(move |announced, stream| async move {
            tokio::time::timeout(timeout, collect(stream, announced, limit))
                .await
                .unwrap_or(Err(warp::reject::custom(HttpError::BodyTimeout {
                    after: timeout,
                })))
        })
}

/// Reads the body, `announced` bytes long by its `Content-Length` (0 when chunked).
async fn collect<B: Buf>(
    stream: impl futures_util::Stream<Item = Result<B, warp::Error>>,
    announced: u64,
    limit: u64,
) -> Result<Bytes, Rejection> {
    let mut stream = std::pin::pin!(stream);
    // Sized once (the length is within the limit): growing by doubling as chunks arrive would
    // leave up to twice the body allocated per connection.
    let mut body = BytesMut::with_capacity(announced as usize);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            warp::reject::custom(HttpError::BadRequest(format!(
                "could not read the body: {e}"
            )))
        })?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(warp::reject::custom(HttpError::BodyTooLarge { limit }));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            body.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Requires the media type `expected` (parameters such as `charset` are ignored); 415 otherwise.
pub fn content_type(
    expected: &'static str,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    super::filters::optional_header("content-type")
        .and_then(move |value: Option<warp::http::HeaderValue>| async move {
            if value
                .as_ref()
                .is_some_and(|v| media_type_is(v.as_bytes(), expected))
            {
                Ok(())
            } else {
                Err(warp::reject::custom(HttpError::UnsupportedMediaType {
                    expected,
                }))
            }
        })
        .untuple_one()
}

/// `application/json; charset=utf-8` is `application/json`.
pub fn media_type_is(value: &[u8], expected: &str) -> bool {
    let essence = value
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    essence.eq_ignore_ascii_case(expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(media_type_is(b"application/json", "application/json"));
        assert!(media_type_is(
            b"Application/JSON ; charset=utf-8",
            "application/json"
        ));
        assert!(!media_type_is(b"text/plain", "application/json"));
        assert!(!media_type_is(b"application/jsonx", "application/json"));
    }
}
