//! The web console: one HTML page, its script and its style sheet, compiled into the binary so
//! it works without internet or files beside the binary. They hold no data and are served
//! without an API key; the page asks for the key and sends it on every JSON call.
//!
//! | route | file |
//! |---|---|
//! | `GET /` | `console/index.html` |
//! | `GET /console/app.js` | `console/app.js` |
//! | `GET /console/style.css` | `console/style.css` |
//!
//! The page may only run its own script and talk to its own origin (Content-Security-Policy):
//! even if a message's text were ever rendered as HTML by mistake, an injected script would
//! not run. `X-Content-Type-Options: nosniff` comes with every answer (`request_log::finish`).

use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use warp::http::{HeaderName, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE_CSS: &str = include_str!("console/style.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let page = warp::path::end()
        .and(warp::get())
        .map(|| asset(INDEX_HTML, "text/html; charset=utf-8"));
    let script = warp::path!("console" / "app.js")
        .and(warp::get())
        .map(|| asset(APP_JS, "text/javascript; charset=utf-8"));
    let style = warp::path!("console" / "style.css")
        .and(warp::get())
        .map(|| asset(STYLE_CSS, "text/css; charset=utf-8"));
    page.or(script).unify().or(style).unify()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load: a new gateway version must not run last version's script.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
