//! API keys: when `api_keys` is configured, a request must carry one as
//! `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are compared in constant time
//! and never logged.

use std::sync::Arc;

use warp::http::HeaderValue;
use warp::{Filter, Rejection};

use super::errors::HttpError;
use super::filters::optional_header;
use super::state::HttpState;
use crate::secret::Secret;

/// Passes when no keys are configured or a configured key is presented; else 401.
pub fn api_key(state: Arc<HttpState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    optional_header("authorization")
        .and(optional_header("x-api-key"))
        .and_then(
            move |authorization: Option<HeaderValue>, x_api_key: Option<HeaderValue>| {
                let allowed = authorized(
                    &state.config().http.api_keys,
                    authorization.as_ref(),
                    x_api_key.as_ref(),
                );
                async move {
                    if allowed {
                        Ok(())
                    } else {
                        Err(warp::reject::custom(HttpError::Unauthorized))
                    }
                }
            },
        )
        .untuple_one()
}

pub fn authorized(
    keys: &[Secret],
    authorization: Option<&HeaderValue>,
    x_api_key: Option<&HeaderValue>,
) -> bool {
    if keys.is_empty() {
        return true;
    }
    let presented = [
        authorization.and_then(|v| bearer(v.as_bytes())),
        x_api_key.map(HeaderValue::as_bytes),
    ];
    let mut ok = false;
    // Every candidate against every key, without stopping early: the time taken does not tell
    // which key (or how much of one) matched.
    for candidate in presented.into_iter().flatten() {
        for key in keys {
            ok |= constant_time_eq(key.expose().as_bytes(), candidate);
        }
    }
    ok
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equal length and equal bytes, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_headers_and_only_configured_keys() {
        let keys = [Secret::new("k1"), Secret::new("second-key")];
        let h = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(authorized(&keys, h("Bearer k1").as_ref(), None));
        assert!(authorized(&keys, h("bearer  second-key ").as_ref(), None));
        assert!(authorized(&keys, None, h("second-key").as_ref()));
        assert!(authorized(
            &keys,
            h("Bearer wrong").as_ref(),
            h("k1").as_ref()
        ));
        assert!(!authorized(&keys, h("k1").as_ref(), None));
        assert!(!authorized(
            &keys,
            h("Bearer k").as_ref(),
            h("k12").as_ref()
        ));
        assert!(!authorized(&keys, None, None));
        assert!(authorized(&[], None, None));
    }
}
