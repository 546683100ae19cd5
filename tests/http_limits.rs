//! Connections that misbehave, over real TCP against `http::serve`: headers that never finish,
//! bodies that stall, idle keep-alive connections, responses nobody reads, more connections
//! than the cap, and a graceful shutdown with a stalled connection open. The metrics listener
//! gets the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::gateway::config_for_port;
use crate::common::redis::RedisServer;
use cmpp_gateway::http::{self, HttpState};
use cmpp_gateway::metrics::Metrics;
use cmpp_gateway::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen well within it.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _redis: RedisServer,
}

/// `http::serve` on a free loopback port with the test config plus `extra`.
async fn serve_with(extra: Value) -> Server {
    let redis = RedisServer::start();
    let config = Arc::new(config_for_port(7890, &redis.url(), extra));
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects");
    let state = Arc::new(HttpState::new(
        store,
        config,
        None,
        Arc::new(Metrics::new()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(http::serve(listener, state, shutdown.clone()));
    Server {
        addr,
        shutdown,
        task,
        _redis: redis,
    }
}

/// Reads until the server closes the connection; `None` if it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// One response with a `Content-Length` body, read without waiting for the connection to end.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream
            .read(&mut byte)
            .await
            .expect("read the response head");
        assert_eq!(n, 1, "connection closed inside a response head: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("read the body");
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `/metrics` on `stream` until the server counts `open` connections on its listener.
async fn wait_for_open_connections(stream: &mut TcpStream, open: usize) {
    wait_for_series(
        stream,
        &format!("cmpp_http_connections{{listener=\"http\"}} {open}"),
    )
    .await;
}

/// Polls `/metrics` on a connection of its own until the API listener has counted `count`
/// connections closed by the `kind` timeout.
async fn wait_for_timeouts(addr: SocketAddr, kind: &str, count: u64) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    wait_for_series(
        &mut stream,
        &format!(
            "cmpp_http_connection_timeouts_total{{kind=\"{kind}\",listener=\"http\"}} {count}"
        ),
    )
    .await;
}

/// Polls `/metrics` on `stream` until it has the line `series` (name, labels and value).
async fn wait_for_series(stream: &mut TcpStream, series: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, _, metrics) = keep_alive_get(stream, "/metrics").await;
        if metrics.lines().any(|line| line == series) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never `{series}`: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn keep_alive_get(stream: &mut TcpStream, path: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(PATIENCE, read_response(stream))
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path}"))
}

#[tokio::test]
async fn a_connection_that_stops_mid_headers_is_closed_after_the_header_timeout() {
    let server = serve_with(json!({"http_header_timeout": "300ms"})).await;

    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut stalled, PATIENCE).await.is_some(),
        "half the headers, then nothing: still open {PATIENCE:?} after a 300 ms header timeout"
    );

    // The limit is on the whole head, not on each read: a client that drips a header byte every
    // 50 ms never completes its head and is closed as well.
    let mut dripping = TcpStream::connect(server.addr).await.unwrap();
    dripping
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if dripping.write_all(b"x").await.is_err() {
                return;
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::ZERO, dripping.read(&mut probe)).await
            {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a dripping head is never cut off");
    wait_for_timeouts(server.addr, "header", 2).await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_the_connection_closed() {
    let server = serve_with(json!({"http_body_timeout": "300ms"})).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"to\": \"13800138000\",",
        )
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("a body that stops arriving is cut off");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("300ms"),
        "the reason names the limit: {body}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server =
        serve_with(json!({"http_header_timeout": "200ms", "http_idle_timeout": "1500ms"})).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(keep_alive_get(&mut stream, "/healthz").await.0, 200);
    // Idle for longer than the header timeout but within the idle timeout: the header clock
    // starts with the next request's first byte, so the connection is still usable.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(keep_alive_get(&mut stream, "/healthz").await.0, 200);
    assert_eq!(
        read_until_closed(&mut stream, PATIENCE).await,
        Some(Vec::new()),
        "an idle keep-alive connection is closed, without a response"
    );
    wait_for_timeouts(server.addr, "idle", 1).await;
}

/// A client that asks for more than the socket buffers on both sides hold and reads none of it
/// (a zero TCP window) would hold its connection, one of the capped slots, for ever: once the
/// socket has taken nothing of the response for `http_idle_timeout`, the gateway closes it.
#[tokio::test]
async fn a_client_that_reads_no_response_is_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_millis(500);
    let server =
        serve_with(json!({"http_header_timeout": "60s", "http_idle_timeout": "500ms"})).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small window: the responses pile up in the server's send buffer sooner.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut unread = socket.connect(server.addr).await.unwrap();
    // Pipelined requests for the console script: about 20 MB of responses, several times the
    // kernel's largest send buffer (4 MiB by default; here about 2.8 MB went out before the
    // writes stalled) plus the small receive buffer.
    let requests = "GET /console/app.js HTTP/1.1\r\nHost: gateway\r\n\r\n".repeat(1000);
    let stalled_at = tokio::time::Instant::now();
    // Once its writes stall the server reads no more requests; if the rest do not fit in the
    // socket buffers, this write ends only when the server closes, with an error.
    let _ = unread.write_all(requests.as_bytes()).await;

    // Nothing is read from `unread` until the server has let it go: reading would open the
    // window and let the writes through.
    let mut observer = TcpStream::connect(server.addr).await.unwrap();
    wait_for_series(
        &mut observer,
        "cmpp_http_connection_timeouts_total{kind=\"write\",listener=\"http\"} 1",
    )
    .await;
    wait_for_open_connections(&mut observer, 1).await;
    assert!(
        stalled_at.elapsed() >= idle_timeout,
        "closed after {:?}, before the socket had taken nothing for {idle_timeout:?}",
        stalled_at.elapsed()
    );
    assert!(
        read_until_closed(&mut unread, PATIENCE).await.is_some(),
        "the server counted the connection closed but it is still open"
    );
}

/// At the cap the gateway stops accepting: a new connection waits in the listen queue (it is
/// not refused) while the connections it has are served, and is served once one of them ends.
#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_while_open_ones_are_served() {
    let server = serve_with(json!({
        "http_max_connections": 2,
        "http_header_timeout": "60s",
        "http_idle_timeout": "60s",
    }))
    .await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(keep_alive_get(&mut first, "/healthz").await.0, 200);
    let second = TcpStream::connect(server.addr).await.unwrap();
    wait_for_open_connections(&mut first, 2).await;

    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        keep_alive_get(&mut first, "/healthz").await.0,
        200,
        "an open connection is served at the cap"
    );
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "a connection over the cap was served: {early:?}"
    );

    drop(second);
    let received = read_until_closed(&mut waiting, PATIENCE)
        .await
        .expect("the waiting connection is served once a slot is free");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
}

#[tokio::test]
async fn shutdown_completes_within_its_deadline_with_a_stalled_connection_open() {
    let server = serve_with(json!({
        "http_header_timeout": "60s",
        "http_idle_timeout": "60s",
        "http_shutdown_timeout": "500ms",
    }))
    .await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(keep_alive_get(&mut idle, "/healthz").await.0, 200);
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        .await
        .unwrap();
    // The stalled connection must be in the server's hands before shutdown begins.
    wait_for_open_connections(&mut idle, 2).await;

    server.shutdown.cancel();
    tokio::time::timeout(PATIENCE, server.task)
        .await
        .expect("serve returns within the shutdown deadline despite the stalled connection")
        .unwrap();
    assert!(read_until_closed(&mut idle, PATIENCE).await.is_some());
    assert!(read_until_closed(&mut stalled, PATIENCE).await.is_some());
}

/// With API keys, the key is checked before any of the body is read: a client without one that
/// announces a large body and sends none gets its 401 at once, and the connection ends.
#[tokio::test]
async fn an_unauthenticated_upload_is_refused_before_its_body_is_read() {
    let server = serve_with(json!({"api_keys": ["secret-key"], "http_body_timeout": "60s"})).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Content-Length: 65536\r\n\r\n",
        )
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, PATIENCE)
        .await
        .expect("answered and closed without waiting for the body");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
}

#[tokio::test]
async fn the_metrics_listener_closes_stalled_connections_too() {
    let redis = RedisServer::start();
    let config = config_for_port(
        7890,
        &redis.url(),
        json!({"http_header_timeout": "300ms", "http_shutdown_timeout": "500ms"}),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(http::serve_metrics(
        listener,
        Arc::new(Metrics::new()),
        http::ConnectionLimits::for_metrics(&config.http),
        shutdown.clone(),
    ));
    let mut served = TcpStream::connect(addr).await.unwrap();
    let (status, _, body) = keep_alive_get(&mut served, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("cmpp_build_info"), "{body}");

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut stalled, PATIENCE).await.is_some(),
        "a stalled head on the metrics port is cut off"
    );
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the metrics listener stops")
        .unwrap();
}
