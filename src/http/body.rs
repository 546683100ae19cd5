//! Request bodies: the content-type check and the size cap.
//!
//! The cap is enforced twice: a `Content-Length` over the limit is refused before reading
//! anything (what `warp::body::content_length_limit` does), and the body is read with a running
//! count, so a chunked body without a length is capped too instead of refused with 411.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use warp::{Filter, Rejection};

use super::errors::HttpError;

/// The body, at most `limit` bytes; 413 otherwise.
pub fn capped(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |length: Option<u64>| async move {
            match length {
                Some(length) if length > limit => {
                    Err(warp::reject::custom(HttpError::BodyTooLarge { limit }))
                }
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |stream| collect(stream, limit))
}

async fn collect<B: Buf>(
    stream: impl futures_util::Stream<Item = Result<B, warp::Error>>,
    limit: u64,
) -> Result<Bytes, Rejection> {
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
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
