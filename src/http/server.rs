//! Serving HTTP/1.1 connections within limits. warp's own server has none: a client could hold
//! a descriptor per idle or half-sent request until the process runs out of them.
//!
//! - At most `max_connections` are open at once. At the cap nothing more is accepted: new
//!   connections wait in the kernel's listen queue and are served in turn as slots free, while
//!   the open ones are served as usual. A connection holds at most [`MAX_BUF`] of hyper's
//!   buffer plus the body its route reads (at most `max_body_bytes`).
//! - A request head must arrive within `header_timeout`, an idle keep-alive connection is closed
//!   after `idle_timeout`, and so is one whose client takes nothing of its response for as long
//!   ([`ConnectionClock`]); the body's limit is the body filter's.
//! - On shutdown nothing more is accepted, idle connections close, requests in progress get
//!   `shutdown_timeout` to finish, then whatever is left is cut.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus::{IntCounterVec, IntGauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection_clock::ConnectionClock;
use crate::config::HttpConfig;
use crate::config::connection_cap::METRICS_CONNECTIONS;
use crate::metrics::Metrics;

/// hyper's read buffer per connection; also the largest request head (431 beyond it).
const MAX_BUF: usize = 16 * 1024;
/// After an accept error such as EMFILE, wait before trying again rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one "cap reached" warning this often.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl ConnectionLimits {
    /// The API listener's.
    pub fn for_http(http: &HttpConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: http.max_connections,
            header_timeout: http.header_timeout,
            idle_timeout: http.idle_timeout,
            shutdown_timeout: http.shutdown_timeout,
        }
    }

    /// The metrics listener's: the same timeouts, a few connections.
    pub fn for_metrics(http: &HttpConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: METRICS_CONNECTIONS as usize,
            ..ConnectionLimits::for_http(http)
        }
    }
}

/// One listener's series of the connection metrics.
#[derive(Clone)]
struct ListenerMetrics {
    open: IntGauge,
    timeouts: IntCounterVec,
    listener: &'static str,
}

impl ListenerMetrics {
    fn new(metrics: &Metrics, listener: &'static str, limits: &ConnectionLimits) -> Self {
        let f = &metrics.families;
        f.http_connection_limit
            .with_label_values(&[listener])
            .set(limits.max_connections as i64);
        ListenerMetrics {
            open: f.http_connections.with_label_values(&[listener]),
            timeouts: f.http_connection_timeouts.clone(),
            listener,
        }
    }

    fn timed_out(&self, kind: &str, count: u64) {
        self.timeouts
            .with_label_values(&[self.listener, kind])
            .inc_by(count);
    }
}

/// Serves `service` on every connection `listener` accepts until `shutdown`, within `limits`.
/// `listener_name` labels the metrics (`http`, `metrics`).
pub(super) async fn serve_connections<S, B>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    metrics: &Metrics,
    listener_name: &'static str,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let metrics = ListenerMetrics::new(metrics, listener_name, &limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut last_cap_warning: Option<tokio::time::Instant> = None;
    loop {
        if slots.available_permits() == 0
            && last_cap_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY)
        {
            tracing::warn!(
                listener = listener_name,
                max = limits.max_connections,
                "connection cap reached; new connections wait until one closes"
            );
            last_cap_warning = Some(tokio::time::Instant::now());
        }
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let Some(stream) = accept(&listener, &shutdown).await else {
            break;
        };
        let service = service.clone();
        let (shutdown, metrics) = (shutdown.clone(), metrics.clone());
        connections.spawn(async move {
            // Both are released when the task ends, aborted at the shutdown deadline included.
            let _permit = permit;
            let _open = OpenConnection::count(&metrics.open);
            serve_one(stream, service, limits, &metrics, shutdown).await;
        });
        // Finished connections are reaped here so their results do not pile up.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);

    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let cut = connections.len();
        tracing::warn!(
            listener = listener_name,
            connections = cut,
            timeout = ?limits.shutdown_timeout,
            "connections still busy after http_shutdown_timeout; closing them"
        );
        metrics.timed_out("shutdown", cut as u64);
        connections.shutdown().await;
    }
}

/// One connection in the open-connections gauge, for as long as this lives.
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn count(gauge: &IntGauge) -> OpenConnection {
        gauge.inc();
        OpenConnection(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The next connection; `None` on shutdown. Errors such as EMFILE are logged and retried.
async fn accept(listener: &TcpListener, shutdown: &CancellationToken) -> Option<TcpStream> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((stream, _)) => return Some(stream),
            // The peer gave up before we took it: nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot accept an HTTP connection; retrying");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_RETRY) => {}
                    () = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

async fn serve_one<S, B>(
    stream: TcpStream,
    service: S,
    limits: ConnectionLimits,
    metrics: &ListenerMetrics,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let clock = ConnectionClock::new(limits.header_timeout, limits.idle_timeout);
    let io = TokioIo::new(clock.watch(stream));
    let mut builder = http1::Builder::new();
    builder
        .timer(clock.clone())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            // Closes at once when idle, else after the response in progress.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match (result, clock.expired()) {
        (Ok(()), _) => {}
        (Err(_), Some(expired)) => metrics.timed_out(expired.as_str(), 1),
        (Err(e), None) => tracing::debug!(error = %e, "http connection ended with an error"),
    }
}
