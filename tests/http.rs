//! The HTTP ingress through `warp::test` (and once over real TCP via `serve`), against a real
//! redis-server started for each test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::keys;
use crate::common::redis::RedisServer;
use bytes::Bytes;
use cmpp_gateway::config::GatewayConfig;
use cmpp_gateway::http::{self, HttpState};
use cmpp_gateway::metrics::Metrics;
use cmpp_gateway::session::Link;
use cmpp_gateway::store::Store;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warp::http::Response;

const STREAM: &str = "cmpp:mt";

fn config(redis: &RedisServer, extra: Value) -> Arc<GatewayConfig> {
    config_with_port(redis, 7890, extra)
}

fn config_with_port(redis: &RedisServer, cmpp_port: u16, extra: Value) -> Arc<GatewayConfig> {
    let mut json = json!({
        "user": "900001",
        "password": "888888",
        "sms_accessno": "1064899104221",
        "cmpp_host": "127.0.0.1",
        "cmpp_port": cmpp_port,
        "redis_url": redis.url(),
        "redis_timeout": "1s",
        "readyz_requires_link": false,
    });
    if let (Some(base), Value::Object(more)) = (json.as_object_mut(), extra) {
        base.extend(more);
    }
    Arc::new(
        GatewayConfig::from_str_with_env("http-test.json", &json.to_string(), &|_| None)
            .expect("valid test config"),
    )
}

async fn state_with(redis: &RedisServer, extra: Value) -> Arc<HttpState> {
    let config = config(redis, extra);
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects");
    Arc::new(HttpState::new(
        store,
        config,
        None,
        Arc::new(Metrics::new()),
    ))
}

async fn state(redis: &RedisServer) -> Arc<HttpState> {
    state_with(redis, json!({})).await
}

async fn call(state: &Arc<HttpState>, req: warp::test::RequestBuilder) -> Response<Bytes> {
    req.reply(&http::routes(state.clone())).await
}

fn post_json(body: &Value) -> warp::test::RequestBuilder {
    warp::test::request()
        .method("POST")
        .path("/v1/messages")
        .json(body)
}

fn get(path: &str) -> warp::test::RequestBuilder {
    warp::test::request().method("GET").path(path)
}

fn body(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.body()))
}

fn header<'a>(resp: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    crate::common::redis::connect(redis).await
}

/// Every entry of the outbound stream: (entry id, fields).
async fn entries(redis: &RedisServer) -> Vec<(String, HashMap<String, String>)> {
    let mut conn = redis_conn(redis).await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let fields = e
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect();
            (e.id, fields)
        })
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn assert_error(resp: &Response<Bytes>, status: u16, field: Option<&str>) -> Value {
    let b = body(resp);
    assert_eq!(resp.status().as_u16(), status, "{b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
    assert_eq!(b.get("field").and_then(Value::as_str), field, "{b}");
    assert_eq!(header(resp, "content-type"), Some("application/json"));
    b
}

#[tokio::test]
async fn a_single_message_is_queued_with_flat_fields() {
    let redis = RedisServer::start();
    let state = state(&redis).await;
    let before = now_ms();
    let resp = call(
        &state,
        post_json(&json!({"to": "+8613800138000", "text": "hello"}))
            .header("x-request-id", "req-42"),
    )
    .await;
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
    assert_eq!(header(&resp, "x-request-id"), Some("req-42"));
    let answer = body(&resp);
    let messages = answer["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    let id = messages[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 27, "a generated id: {id}");
    assert_eq!(messages[0]["to"], "13800138000");
    assert_eq!(messages[0]["segments"], 1);

    let stream = entries(&redis).await;
    assert_eq!(stream.len(), 1);
    let (entry_id, fields) = &stream[0];
    assert_eq!(fields["id"], id);
    assert_eq!(fields["to"], "13800138000");
    assert_eq!(fields["text"], "hello");
    let ts: u64 = fields["ts"].parse().unwrap();
    assert!(ts >= before && ts <= now_ms(), "ts {ts}");

    let resp = call(&state, get(&format!("/v1/messages/{id}"))).await;
    assert_eq!(resp.status(), 200);
    let message = body(&resp);
    assert_eq!(message["status"], "queued");
    assert_eq!(message["id"], id.as_str());
    assert_eq!(message["to"], "13800138000");
    assert_eq!(message["stream_id"], entry_id.as_str());
    assert_eq!(message["queued_at"], ts);
    // Without X-Request-Id one is generated.
    let generated = header(&resp, "x-request-id").unwrap();
    assert_eq!(generated.len(), 16);
}

#[tokio::test]
async fn three_recipients_are_three_entries_with_derived_ids() {
    let redis = RedisServer::start();
    let state = state(&redis).await;
    let to = ["13800138000", "13900139000", "+8613700137000"];
    let resp = call(
        &state,
        post_json(&json!({"to": to, "text": "你好", "id": "batch-9", "src_ext": "01"})),
    )
    .await;
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
    let answer = body(&resp);
    let ids: Vec<&str> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["batch-9~1", "batch-9~2", "batch-9~3"]);

    let stream = entries(&redis).await;
    let got: Vec<(&str, &str, &str, &str)> = stream
        .iter()
        .map(|(_, f)| {
            (
                f["id"].as_str(),
                f["to"].as_str(),
                f["text"].as_str(),
                f["src_ext"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("batch-9~1", "13800138000", "你好", "01"),
            ("batch-9~2", "13900139000", "你好", "01"),
            ("batch-9~3", "13700137000", "你好", "01"),
        ]
    );
    for id in ids {
        let state_resp = call(&state, get(&format!("/v1/messages/{id}"))).await;
        assert_eq!(body(&state_resp)["status"], "queued", "{id}");
    }
}

#[tokio::test]
async fn a_repeated_id_gets_the_first_answer_and_adds_nothing() {
    let redis = RedisServer::start();
    let state = state(&redis).await;
    let request = json!({"to": "13800138000", "text": "pay 5 yuan", "id": "order-77"});
    let first = call(&state, post_json(&request)).await;
    assert_eq!(first.status(), 202);
    assert_eq!(header(&first, http::IDEMPOTENT_REPLAYED), None);
    assert_eq!(body(&first)["messages"][0]["id"], "order-77");

    // Same id, even with another text: the first answer, nothing enqueued.
    let again = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": "other", "id": "order-77"})),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(header(&again, http::IDEMPOTENT_REPLAYED), Some("true"));
    assert_eq!(again.body(), first.body());
    let stream = entries(&redis).await;
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].1["text"], "pay 5 yuan");
}

#[tokio::test]
async fn refusals_name_the_field_and_pick_the_status() {
    let redis = RedisServer::start();
    let state = state_with(
        &redis,
        json!({"max_body_bytes": 1024, "max_recipients": 2, "max_segments": 3}),
    )
    .await;

    let resp = call(&state, post_json(&json!({"to": "12345", "text": "x"}))).await;
    let b = assert_error(&resp, 422, Some("to"));
    assert!(b["error"].as_str().unwrap().contains("12345"), "{b}");

    let resp = call(
        &state,
        warp::test::request()
            .method("POST")
            .path("/v1/messages")
            .header("content-type", "application/json")
            .body("{\"to\": "),
    )
    .await;
    assert_error(&resp, 400, None);

    let resp = call(&state, post_json(&json!({"text": "no recipient"}))).await;
    assert_error(&resp, 400, Some("to"));

    let resp = call(
        &state,
        warp::test::request()
            .method("POST")
            .path("/v1/messages")
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    let b = assert_error(&resp, 415, None);
    assert!(
        b["error"].as_str().unwrap().contains("application/json"),
        "{b}"
    );

    let long = "长".repeat(67 * 4);
    let resp = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": long})),
    )
    .await;
    let b = assert_error(&resp, 413, Some("text"));
    assert!(b["error"].as_str().unwrap().contains("4 segments"), "{b}");

    let big = "a".repeat(2000);
    let resp = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": big})),
    )
    .await;
    let b = assert_error(&resp, 413, None);
    assert!(b["error"].as_str().unwrap().contains("1024"), "{b}");

    let resp = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": "x", "coding": "utf7"})),
    )
    .await;
    assert_error(&resp, 415, Some("coding"));

    let resp = call(
        &state,
        post_json(&json!({"to": ["13800138000", "13900139000", "13700137000"], "text": "x"})),
    )
    .await;
    assert_error(&resp, 413, Some("to"));

    let resp = call(
        &state,
        post_json(&json!({"to": ["13800138000", "+8613800138000"], "text": "x"})),
    )
    .await;
    assert_error(&resp, 422, Some("to"));

    let resp = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": "x", "src-ext": "1"})),
    )
    .await;
    assert_error(&resp, 400, None);

    assert!(
        entries(&redis).await.is_empty(),
        "nothing refused reaches the stream"
    );
}

#[tokio::test]
async fn routing_health_and_absent_link() {
    let redis = RedisServer::start();
    let state = state(&redis).await;

    let resp = call(&state, get("/healthz")).await;
    assert_eq!(
        (resp.status().as_u16(), body(&resp)),
        (200, json!({"status": "ok"}))
    );
    let resp = call(&state, get("/readyz")).await;
    assert_eq!(
        (resp.status().as_u16(), body(&resp)),
        (200, json!({"status": "ready"}))
    );
    let resp = call(&state, get("/v1/link")).await;
    assert_eq!(
        (resp.status().as_u16(), body(&resp)),
        (200, json!({"state": "absent"}))
    );

    let resp = call(&state, get("/v1/messages/nope")).await;
    assert_eq!(
        (resp.status().as_u16(), body(&resp)),
        (404, json!({"error": "no such message"}))
    );
    let resp = call(&state, get("/nowhere")).await;
    assert_error(&resp, 404, None);
    let resp = call(
        &state,
        warp::test::request().method("PUT").path("/v1/messages"),
    )
    .await;
    assert_error(&resp, 405, None);
    assert!(
        header(&resp, "x-request-id").is_some(),
        "rejections carry a request id too"
    );

    // A process that must have a link is not ready without one.
    let strict = state_with(&redis, json!({"readyz_requires_link": true})).await;
    let resp = call(&strict, get("/readyz")).await;
    let b = assert_error(&resp, 503, None);
    assert!(b["error"].as_str().unwrap().contains("link"), "{b}");
    // Unless other instances hold every connection slot: a spare instance serves HTTP.
    let mut conn = redis_conn(&redis).await;
    let () = redis::cmd("SET")
        .arg("cmpp:lease:{default}:0")
        .arg("elsewhere/0/1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let resp = call(&strict, get("/readyz")).await;
    assert_eq!(resp.status(), 200, "{}", body(&resp));
}

#[tokio::test]
async fn the_original_gateways_submit_and_send() {
    let redis = RedisServer::start();
    let state = state(&redis).await;

    let resp = call(
        &state,
        get("/submit?dest=13800138000&cont=hello%20world&src=88"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let b = body(&resp);
    assert_eq!(
        (b["result"].as_i64(), b["error"].as_str()),
        (Some(0), Some("")),
        "{b}"
    );
    let get_id = b["id"].as_str().unwrap().to_owned();

    let resp = call(
        &state,
        warp::test::request()
            .method("POST")
            .path("/send")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("dest=%2B8613900139000&cont=%E4%BD%A0%E5%A5%BD+there"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let b = body(&resp);
    assert_eq!(b["result"], 0, "{b}");
    let post_id = b["id"].as_str().unwrap().to_owned();

    let stream = entries(&redis).await;
    let got: Vec<(&str, &str, &str, Option<&str>)> = stream
        .iter()
        .map(|(_, f)| {
            (
                f["id"].as_str(),
                f["to"].as_str(),
                f["text"].as_str(),
                f.get("src_ext").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (get_id.as_str(), "13800138000", "hello world", Some("88")),
            (post_id.as_str(), "13900139000", "你好 there", None),
        ]
    );

    let resp = call(&state, get("/send?dest=12345&cont=hi")).await;
    assert_eq!(resp.status(), 200);
    let b = body(&resp);
    assert_eq!(
        (b["result"].as_i64(), b["id"].as_str()),
        (Some(-1), Some("")),
        "{b}"
    );
    assert!(b["error"].as_str().unwrap().starts_with("dest:"), "{b}");
    let resp = call(&state, get("/submit?dest=13800138000")).await;
    let b = body(&resp);
    assert_eq!(
        (b["result"].as_i64(), b["error"].as_str()),
        (Some(-1), Some("cont: missing")),
        "{b}"
    );
    assert_eq!(entries(&redis).await.len(), 2);
}

#[tokio::test]
async fn api_keys_are_required_except_for_health_checks() {
    let redis = RedisServer::start();
    let state = state_with(&redis, json!({"api_keys": ["k-one", "k-two"]})).await;
    let msg = json!({"to": "13800138000", "text": "hi"});

    let resp = call(&state, post_json(&msg)).await;
    assert_error(&resp, 401, None);
    assert_eq!(header(&resp, "www-authenticate"), Some("Bearer"));
    let resp = call(
        &state,
        post_json(&msg).header("authorization", "Bearer k-wrong"),
    )
    .await;
    assert_error(&resp, 401, None);
    let resp = call(&state, post_json(&msg).header("x-api-key", "k-on")).await;
    assert_error(&resp, 401, None);
    // A key refused before the body is looked at: no 415 leak for unauthenticated callers.
    let resp = call(
        &state,
        warp::test::request()
            .method("POST")
            .path("/v1/messages")
            .body("x"),
    )
    .await;
    assert_error(&resp, 401, None);

    let resp = call(
        &state,
        post_json(&msg).header("authorization", "Bearer k-two"),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let resp = call(&state, post_json(&msg).header("x-api-key", "k-one")).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(entries(&redis).await.len(), 2);

    for path in [
        "/v1/link",
        "/v1/messages/x",
        "/submit?dest=13800138000&cont=x",
    ] {
        assert_eq!(call(&state, get(path)).await.status(), 401, "{path}");
    }
    let resp = call(
        &state,
        get("/submit?dest=13800138000&cont=x").header("x-api-key", "k-one"),
    )
    .await;
    assert_eq!(body(&resp)["result"], 0);
    assert_eq!(call(&state, get("/healthz")).await.status(), 200);
    assert_eq!(call(&state, get("/readyz")).await.status(), 200);
}

#[tokio::test]
async fn redis_down_is_503_promptly_and_recovers_without_a_new_state() {
    let mut redis = RedisServer::start();
    let state = state(&redis).await;
    let msg = json!({"to": "13800138000", "text": "hi"});
    assert_eq!(call(&state, post_json(&msg)).await.status(), 202);

    redis.stop();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), call(&state, post_json(&msg)))
        .await
        .expect("a POST never hangs while Redis is down");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
    let b = assert_error(&resp, 503, None);
    // The (cached) backlog check passed, the enqueue failed: the gateway cannot tell whether
    // Redis ran it before going away.
    assert_eq!(
        b["error"],
        "redis unavailable; the message may have been accepted: retry with the same id"
    );
    assert!(b["id"].is_string(), "{b}");
    assert_eq!(header(&resp, "retry-after"), Some("2"));

    let resp = tokio::time::timeout(Duration::from_secs(10), call(&state, get("/readyz")))
        .await
        .unwrap();
    let b = assert_error(&resp, 503, None);
    assert_eq!(b["error"], "redis unavailable");
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        call(&state, get("/submit?dest=13800138000&cont=x")),
    )
    .await
    .unwrap();
    let b = body(&resp);
    assert_eq!(
        (resp.status().as_u16(), b["result"].as_i64()),
        (200, Some(-2))
    );
    // No id can be passed here: the answer names the id to look up instead.
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        b["error"].as_str().unwrap(),
        format!(
            "redis unavailable; the message may have been accepted: look up GET /v1/messages/{id} \
             before sending it again"
        )
    );
    let resp = tokio::time::timeout(Duration::from_secs(10), call(&state, get("/v1/messages/x")))
        .await
        .unwrap();
    assert_error(&resp, 503, None);
    assert_eq!(
        call(&state, get("/healthz")).await.status(),
        200,
        "the process is still alive"
    );

    redis.restart();
    // The same state (and ConnectionManager) reconnects; a client retrying gets through.
    let until = Instant::now() + Duration::from_secs(15);
    let mut attempts = 0;
    let accepted = loop {
        attempts += 1;
        let resp = call(&state, post_json(&msg)).await;
        if resp.status() == 202 {
            break body(&resp);
        }
        assert_eq!(resp.status(), 503, "{:?}", resp.body());
        assert!(
            Instant::now() < until,
            "no 202 within 15 s of the restart ({attempts} attempts)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stream = entries(&redis).await;
    assert_eq!(
        stream.len(),
        1,
        "the restarted server is empty, then holds the new message"
    );
    assert_eq!(
        stream[0].1["id"],
        accepted["messages"][0]["id"].as_str().unwrap()
    );
    assert_eq!(call(&state, get("/readyz")).await.status(), 200);
}

#[tokio::test]
async fn a_full_backlog_is_503_with_retry_after() {
    let redis = RedisServer::start();
    let state = state_with(&redis, json!({"outbound_backlog_limit": 2})).await;
    let msg = json!({"to": "13800138000", "text": "hi"});
    assert_eq!(call(&state, post_json(&msg)).await.status(), 202);
    assert_eq!(call(&state, post_json(&msg)).await.status(), 202);
    let resp = call(&state, post_json(&msg)).await;
    let b = assert_error(&resp, 503, None);
    assert_eq!(b["error"], "outbound backlog over limit");
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    let resp = call(&state, get("/submit?dest=13800138000&cont=x")).await;
    assert_eq!(body(&resp)["result"], -2);
    assert_eq!(entries(&redis).await.len(), 2);

    // A consumer group that has taken and acknowledged the entries leaves no backlog.
    let mut conn = redis_conn(&redis).await;
    let group = &state.config().worker.group;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(group)
        .arg("$")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(http::BACKLOG_CACHE + Duration::from_millis(100)).await;
    assert_eq!(call(&state, post_json(&msg)).await.status(), 202);
}

/// `channel` picks the stream: the default channel's is `cmpp:mt`, another's `cmpp:mt:{name}`;
/// a name no channel has is a 422 naming the field, and nothing is added anywhere. The backlog
/// limit is per channel: a full one does not refuse the other.
#[tokio::test]
async fn the_channel_field_picks_the_stream_and_an_unknown_one_is_refused() {
    let redis = RedisServer::start();
    let channels = json!({
        "outbound_backlog_limit": 1,
        "channels": [{"name": "cm"}, {"name": "ct", "user": "900002", "sms_accessno": "10691"}],
    });
    let state = state_with(&redis, channels).await;
    let msg = |channel: Option<&str>| {
        let mut m = json!({"to": "13800138000", "text": "hi"});
        if let Some(c) = channel {
            m["channel"] = json!(c);
        }
        m
    };
    assert_eq!(call(&state, post_json(&msg(None))).await.status(), 202);
    let resp = call(&state, post_json(&msg(Some("ct")))).await;
    assert_eq!(resp.status(), 202, "{}", body(&resp));
    let b = assert_error(
        &call(&state, post_json(&msg(Some("cu")))).await,
        422,
        Some("channel"),
    );
    assert!(b["error"].as_str().unwrap().contains("cm, ct"), "{b}");
    // The default channel's stream is at its limit; the other is too now, each on its own.
    assert_eq!(
        call(&state, post_json(&msg(Some("cm")))).await.status(),
        503
    );
    assert_eq!(
        call(&state, post_json(&msg(Some("ct")))).await.status(),
        503
    );

    let default = entries(&redis).await;
    assert_eq!(default.len(), 1, "{default:?}");
    assert_eq!(default[0].1.get("channel"), None);
    let mut conn = redis_conn(&redis).await;
    let other: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("cmpp:mt:{ct}")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(other.ids.len(), 1);
    let channel: String = redis::from_redis_value_ref(&other.ids[0].map["channel"]).unwrap();
    assert_eq!(channel, "ct");
}

/// `serve` over real TCP with a real link to the simulator: link view, readiness, rates, and a
/// graceful stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_link() {
    use crate::common::http_client::{get as tcp_get, post_json as tcp_post};
    use cmpp_gateway::simulator::{self, SimulatorConfig};

    let redis = RedisServer::start();
    let sim = simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator starts");
    let config = config_with_port(
        &redis,
        sim.addr().port(),
        json!({"readyz_requires_link": true, "window": 8, "max_body_bytes": 1024}),
    );
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .unwrap();
    let link_shutdown = CancellationToken::new();
    let parts = Link::spawn(
        config.default_channel().link.clone(),
        None,
        link_shutdown.clone(),
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(10), parts.link.wait_up())
            .await
            .unwrap()
    );
    let state = Arc::new(HttpState::new(
        store,
        config,
        Some(parts.link.clone()),
        Arc::new(Metrics::new()),
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(http::serve(listener, state, shutdown.clone()));

    let ready = tcp_get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let view = tcp_get(addr, "/v1/link").await.json();
    assert_eq!(view["state"], "up");
    assert_eq!(view["window"], json!({"size": 8, "in_flight": 0}));
    assert_eq!(view["stats"]["connects_ok"], 1);
    assert!(view["since"].as_u64().unwrap() <= now_ms());

    let resp = tcp_post(
        addr,
        "/v1/messages",
        &json!({"to": "13800138000", "text": "over tcp"}),
    )
    .await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert!(resp.header("x-request-id").is_some());

    // Chunked bodies (no Content-Length) are read up to the cap, not refused with 411.
    let small = json!({"to": "13800138000", "text": "chunked"}).to_string();
    let (status, text) = chunked_post(addr, &[&small[..10], &small[10..]]).await;
    assert_eq!(status, 202, "{text}");
    let filler = "x".repeat(600);
    let (status, text) = chunked_post(addr, &[&filler, &filler]).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("larger than 1024 bytes"), "{text}");

    // The sampler runs once a second; after it has a sample the rates appear.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = tcp_get(addr, "/v1/link").await.json();
    let rates = &view["rates"];
    assert!(rates["window_s"].as_f64().unwrap() > 0.0, "{view}");
    assert_eq!(
        rates["submits_ok_per_s"], 0.0,
        "nothing was submitted: no worker runs here"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve stops on shutdown")
        .unwrap();
    link_shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), parts.task).await;
}

/// A Redis that accepts commands but does not answer (CLIENT PAUSE) is cut off by the HTTP
/// layer's own deadline, even when the store's response timeout is longer.
#[tokio::test]
async fn a_stalled_redis_is_cut_off_by_the_deadline() {
    let redis = RedisServer::start();
    let config = config(&redis, json!({"redis_timeout": "30s"}));
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .unwrap();
    let state = Arc::new(
        HttpState::new(store, config, None, Arc::new(Metrics::new()))
            .with_store_deadline(Duration::from_millis(700)),
    );
    let msg = json!({"to": "13800138000", "text": "hi"});
    assert_eq!(call(&state, post_json(&msg)).await.status(), 202);

    let mut conn = redis_conn(&redis).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    tokio::time::sleep(http::BACKLOG_CACHE).await; // the cached backlog must not hide the stall
    let resp = tokio::time::timeout(Duration::from_secs(10), call(&state, post_json(&msg)))
        .await
        .expect("never hangs");
    let b = assert_error(&resp, 503, None);
    assert_eq!(b["error"], "redis unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(2400),
        "cut off while still paused: {:?}",
        started.elapsed()
    );

    // Once Redis answers again, so does the gateway.
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(started.elapsed())).await;
    let resp = call(&state, post_json(&msg)).await;
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
}

/// One line per request with id, method, path, status and duration; never the body, the query
/// or the API key.
#[tokio::test]
async fn one_log_line_per_request_without_secrets() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let redis = RedisServer::start();
    let state = state_with(&redis, json!({"api_keys": ["key-that-must-not-leak"]})).await;
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests run on other threads without a subscriber; make sure callsites they registered
    // first are enabled for this one.
    tracing::callsite::rebuild_interest_cache();

    let ok = call(
        &state,
        post_json(&json!({"to": "13800138000", "text": "text-that-must-not-leak"}))
            .header("authorization", "Bearer key-that-must-not-leak")
            .header("x-request-id", "rid-ok"),
    )
    .await;
    assert_eq!(ok.status(), 202);
    let refused = call(
        &state,
        get("/submit?dest=1&cont=query-that-must-not-leak").header("x-request-id", "rid-401"),
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(header(&refused, "x-request-id"), Some("rid-401"));

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("http request")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("DEBUG") && lines[0].contains("request_id=rid-ok"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("method=\"POST\"") || lines[0].contains("method=POST"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("status=202") && lines[0].contains("duration_ms="),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("INFO") && lines[1].contains("request_id=rid-401"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("path=\"/submit\"") || lines[1].contains("path=/submit"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("status=401"), "{}", lines[1]);
    for secret in [
        "key-that-must-not-leak",
        "text-that-must-not-leak",
        "query-that-must-not-leak",
    ] {
        assert!(!log.contains(secret), "{secret} leaked:\n{log}");
    }
}

/// POSTs JSON to /v1/messages with `Transfer-Encoding: chunked`; returns the status and the raw
/// response.
async fn chunked_post(addr: std::net::SocketAddr, chunks: &[&str]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A key given twice in a JSON body is refused, naming the key, instead of the last one winning.
#[tokio::test]
async fn a_json_key_given_twice_is_refused() {
    let redis = RedisServer::start();
    let state = state(&redis).await;
    let post_text = |text: &'static str| {
        warp::test::request()
            .method("POST")
            .path("/v1/messages")
            .header("content-type", "application/json")
            .body(text)
    };
    let twice = r#"{"to": "13800138000", "text": "hi", "to": "13900139000"}"#;
    let resp = call(&state, post_text(twice)).await;
    let b = assert_error(&resp, 400, Some("to"));
    assert!(b["error"].as_str().unwrap().contains("\"to\""), "{b}");
    // Unknown keys and keys inside nested values are named too.
    let nested = r#"{"to": ["13800138000"], "text": "hi", "x": {"a": 1, "a": 2}}"#;
    let resp = call(&state, post_text(nested)).await;
    let b = assert_error(&resp, 400, None);
    assert!(b["error"].as_str().unwrap().contains("\"a\""), "{b}");
    assert!(entries(&redis).await.is_empty());
}

/// `/submit` and `/send` with a parameter given twice are refused (`result: -1`), not sent to
/// one of the two numbers.
#[tokio::test]
async fn the_original_routes_refuse_a_parameter_given_twice() {
    let redis = RedisServer::start();
    let state = state(&redis).await;
    let refused = |resp: Response<Bytes>| {
        let b = body(&resp);
        assert_eq!(resp.status(), 200);
        assert_eq!(b["result"], -1, "{b}");
        b["error"].as_str().unwrap().to_owned()
    };
    let error = refused(
        call(
            &state,
            get("/submit?dest=13800138000&dest=13900139000&cont=x"),
        )
        .await,
    );
    assert!(error.starts_with("dest:"), "{error}");
    let error = refused(
        call(
            &state,
            warp::test::request()
                .method("POST")
                .path("/send?dest=13800138000")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("dest=13900139000&cont=x"),
        )
        .await,
    );
    assert!(error.starts_with("dest:"), "{error}");
    let error = refused(call(&state, get("/send?dest=13800138000&cont=a&cont=b")).await);
    assert!(error.starts_with("cont:"), "{error}");
    assert!(entries(&redis).await.is_empty());
}

/// Every answer tells browsers not to guess its type: JSON answers, errors, the console.
#[tokio::test]
async fn every_answer_says_nosniff() {
    let redis = RedisServer::start();
    let state = state_with(&redis, json!({"api_keys": ["k"]})).await;
    let requests = [
        get("/healthz"),
        get("/readyz"),
        get("/v1/link"),
        get("/v1/link").header("x-api-key", "k"),
        get("/v1/messages/none").header("x-api-key", "k"),
        get("/no/such/route"),
        get("/submit?dest=1&cont=x").header("x-api-key", "k"),
        post_json(&json!({"to": "13800138000", "text": "hi"})).header("x-api-key", "k"),
        post_json(&json!({"to": "1"})).header("x-api-key", "k"),
        get("/"),
    ];
    for request in requests {
        let resp = call(&state, request).await;
        assert_eq!(
            header(&resp, "x-content-type-options"),
            Some("nosniff"),
            "{} {:?}",
            resp.status(),
            resp.body()
        );
    }
}

/// A store call that times out may still have enqueued the message (the script runs once Redis
/// gets to it): the 503 says so and carries the id to retry with, and a retry with that id is
/// an idempotent replay, whether the caller gave the id or the gateway made it.
#[tokio::test]
async fn a_503_after_a_store_timeout_gives_the_id_to_retry_with() {
    let redis = RedisServer::start();
    // No backlog check: the enqueue itself is what times out.
    let config = config(
        &redis,
        json!({"redis_timeout": "30s", "outbound_backlog_limit": 0}),
    );
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .unwrap();
    let state = Arc::new(
        HttpState::new(store, config, None, Arc::new(Metrics::new()))
            .with_store_deadline(Duration::from_millis(300)),
    );
    let mut conn = redis_conn(&redis).await;
    // Loads the enqueue script: a first EVALSHA answered NOSCRIPT after the pause would have
    // nobody left to load it and try again.
    let warm_up = json!({"to": "13600136000", "text": "warm-up"});
    assert_eq!(call(&state, post_json(&warm_up)).await.status(), 202);
    let _: () = redis::cmd("DEL")
        .arg(STREAM)
        .query_async(&mut conn)
        .await
        .unwrap();
    let given = json!({"to": ["13800138000", "13900139000"], "text": "hi", "id": "order-9"});
    let generated = json!({"to": "13700137000", "text": "hi"});
    let mut retry_ids = Vec::new();
    for msg in [&given, &generated] {
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1000)
            .arg("WRITE")
            .query_async(&mut conn)
            .await
            .unwrap();
        let resp = call(&state, post_json(msg)).await;
        let b = assert_error(&resp, 503, None);
        assert_eq!(header(&resp, "retry-after"), Some("2"));
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .contains("retry with the same id"),
            "{b}"
        );
        let id = b["id"].as_str().unwrap_or_else(|| panic!("no id: {b}"));
        retry_ids.push(id.to_owned());
        // The paused enqueue runs once the pause ends, to its end (the states), though the
        // request was answered.
        let first_id = if msg["to"].is_array() {
            format!("{id}~1")
        } else {
            id.to_owned()
        };
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let added = entries(&redis).await.len() >= msg["to"].as_array().map_or(1, Vec::len);
            let recorded: bool = redis::cmd("EXISTS")
                .arg(keys().state(&first_id))
                .query_async(&mut conn)
                .await
                .unwrap();
            if added && recorded {
                break;
            }
            assert!(Instant::now() < until, "the paused enqueue never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _: () = redis::cmd("DEL")
            .arg(STREAM)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(retry_ids[0], "order-9");

    for (msg, id) in [(&given, &retry_ids[0]), (&generated, &retry_ids[1])] {
        let mut retry = msg.clone();
        retry["id"] = json!(id);
        let resp = call(&state, post_json(&retry)).await;
        assert_eq!(resp.status(), 202, "{:?}", resp.body());
        assert_eq!(header(&resp, "idempotent-replayed"), Some("true"));
    }
    assert!(entries(&redis).await.is_empty(), "a retry adds nothing");
}

/// Redis down when the gateway starts: from the moment the port is bound, `/healthz` answers
/// 200, `/readyz` 503 with the reason, the API 503 with `Retry-After`; once Redis is up, a send
/// goes through to the ISMG without restarting the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_up_is_503_until_it_comes() {
    use crate::common::gateway;
    use crate::common::http_client::{get as tcp_get, post_json as tcp_post};

    let mut redis = RedisServer::start();
    redis.stop();
    let sim = gateway::simulator(cmpp_gateway::simulator::Behaviour::default()).await;
    let gw = gateway::start_listening(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false}),
    ))
    .await;
    let answer = |path: &'static str| {
        let addr = gw.http;
        async move {
            tokio::time::timeout(Duration::from_secs(5), tcp_get(addr, path))
                .await
                .unwrap_or_else(|_| panic!("{path} does not answer while Redis is down"))
        }
    };
    assert_eq!(answer("/healthz").await.status, 200);
    let ready = answer("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.json()["error"].as_str().unwrap().contains("redis"));
    let link = answer("/v1/link").await;
    assert_eq!(link.status, 503, "{}", link.body);
    let msg = json!({"to": "13800138000", "text": "after redis"});
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tcp_post(gw.http, "/v1/messages", &msg),
    )
    .await
    .expect("a send does not hang while Redis is down");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(refused.json()["error"], "redis unavailable");

    redis.restart();
    let until = Instant::now() + Duration::from_secs(20);
    let accepted = loop {
        let resp = tcp_post(gw.http, "/v1/messages", &msg).await;
        if resp.status == 202 {
            break resp.json();
        }
        assert_eq!(resp.status, 503, "{}", resp.body);
        assert!(
            Instant::now() < until,
            "no 202 within 20 s of Redis starting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = accepted["messages"][0]["id"].as_str().unwrap().to_owned();
    let until = Instant::now() + Duration::from_secs(20);
    while sim.recorded_submits().is_empty() {
        assert!(Instant::now() < until, "{id} never reached the ISMG");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer("/readyz").await.status, 200);
    gw.stop().await;
}
