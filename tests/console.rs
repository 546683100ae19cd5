//! The console's JSON routes against a real redis-server: through `warp::test` (an ingress
//! without a link) for paging, searches, refusals, keys and outages; and end to end (the
//! gateway in-process with the simulator) for what needs the worker and the receive path:
//! entries XADDed directly, reports and MO by number, dead letters, the stats cards (every
//! channel and each connection held).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get as tcp_get, post_json as tcp_post};
use crate::common::keys;
use crate::common::redis::{RedisServer, connect};
use bytes::Bytes;
use cmpp_gateway::http::{self, HttpState};
use cmpp_gateway::metrics::Metrics;
use cmpp_gateway::simulator::{Behaviour, MoRequest};
use cmpp_gateway::store::Store;
use serde_json::{Value, json};
use tokio::time::Instant;
use warp::http::Response;

const A: &str = "13800138000";
const B: &str = "13900139000";

async fn ingress(redis: &RedisServer, extra: Value) -> Arc<HttpState> {
    let mut settings = json!({"redis_timeout": "1s"});
    if let (Some(base), Value::Object(more)) = (settings.as_object_mut(), extra) {
        base.extend(more);
    }
    let config = Arc::new(gateway::config_for_port(7890, &redis.url(), settings));
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

async fn call(state: &Arc<HttpState>, req: warp::test::RequestBuilder) -> Response<Bytes> {
    req.reply(&http::routes(state.clone())).await
}

fn get(path: &str) -> warp::test::RequestBuilder {
    warp::test::request().method("GET").path(path)
}

async fn get_json(state: &Arc<HttpState>, path: &str) -> Value {
    let resp = call(state, get(path)).await;
    let body = body(&resp);
    assert_eq!(resp.status(), 200, "{path}: {body}");
    body
}

fn body(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.body()))
}

/// Sends one message through `POST /v1/messages`; returns the ids in recipient order.
async fn send(state: &Arc<HttpState>, to: Value, text: &str) -> Vec<String> {
    let req = warp::test::request()
        .method("POST")
        .path("/v1/messages")
        .json(&json!({"to": to, "text": text}));
    let resp = call(state, req).await;
    assert_eq!(resp.status(), 202, "{:?}", resp.body());
    body(&resp)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `next_cursor` from `path` (which already has a `?`) until the last page.
async fn all_pages(state: &Arc<HttpState>, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={}", urlencode(c)),
            None => path.to_owned(),
        };
        let page = get_json(state, &url).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
    panic!("more than 100 pages for {path}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_error(resp: &Response<Bytes>, status: u16, field: Option<&str>) -> Value {
    let b = body(resp);
    assert_eq!(resp.status().as_u16(), status, "{b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
    assert_eq!(b.get("field").and_then(Value::as_str), field, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_page_newest_first_and_are_found_by_number_id_and_status() {
    let redis = RedisServer::start();
    let state = ingress(&redis, json!({})).await;

    // Seven to A, one millisecond apart at least, so their order is exact.
    let mut to_a = Vec::new();
    for i in 0..7 {
        to_a.extend(send(&state, json!(A), &format!("to A number {i}")).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Five recipients in one request.
    let batch = send(
        &state,
        json!([
            B,
            "13700137001",
            "13700137002",
            "13700137003",
            "+8613700137004"
        ]),
        "batch",
    )
    .await;
    // Equal scores for certain (one script is usually, not always, within one millisecond), so
    // pages of 2 must cut through members of equal score.
    let mut conn = connect(&redis).await;
    let score: f64 = redis::cmd("ZSCORE")
        .arg("cmpp:index:msg")
        .arg(&batch[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in &batch {
        let _: i64 = redis::cmd("ZADD")
            .arg("cmpp:index:msg")
            .arg("XX")
            .arg(score)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let page = get_json(&state, "/v1/messages?limit=3").await;
    assert_eq!(ids(&page).len(), 3);
    let everything = all_pages(&state, "/v1/messages?limit=2").await;
    let listed: Vec<String> = everything
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len(), 12, "{listed:?}");
    assert_eq!(
        listed.iter().collect::<HashSet<_>>().len(),
        12,
        "no repeats: {listed:?}"
    );
    let mut expected_a = to_a.clone();
    expected_a.reverse();
    assert_eq!(
        &listed[5..],
        &expected_a[..],
        "A's messages newest first after the batch"
    );
    assert_eq!(
        listed[..5].iter().collect::<HashSet<_>>(),
        batch.iter().collect::<HashSet<_>>()
    );
    let times: Vec<u64> = everything
        .iter()
        .map(|m| m["queued_at"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let row = &everything[5];
    assert_eq!(
        (row["to"].as_str(), row["status"].as_str()),
        (Some(A), Some("queued"))
    );
    assert_eq!(row["text"], "to A number 6");
    assert!(
        row.get("segments").is_none(),
        "known once a worker takes it: {row}"
    );

    // By number: exact, with the +86 form normalized like a recipient.
    let by_a = all_pages(&state, &format!("/v1/messages?to=%2B86{A}&limit=3")).await;
    assert_eq!(by_a.len(), 7);
    let page = get_json(&state, "/v1/messages?to=13700137004").await;
    assert_eq!(ids(&page), [batch[4].clone()]);
    assert_eq!(page["next_cursor"], Value::Null);

    // By id: that message alone (and nothing when the number does not match).
    let page = get_json(&state, &format!("/v1/messages?id={}", to_a[2])).await;
    assert_eq!(ids(&page), [to_a[2].clone()]);
    assert_eq!(page["items"][0]["text"], "to A number 2");
    let page = get_json(&state, &format!("/v1/messages?id={}&to={B}", to_a[2])).await;
    assert!(ids(&page).is_empty());
    assert!(ids(&get_json(&state, "/v1/messages?id=nope").await).is_empty());

    // By status, with the state rule: `submitting` plus `submitted_at` is submitted.
    let mut conn = connect(&redis).await;
    let () = redis::cmd("HSET")
        .arg(keys().state(&to_a[1]))
        .arg(&["status", "submitting", "submitted_at", "5"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = redis::cmd("HSET")
        .arg(keys().state(&to_a[3]))
        .arg(&["status", "delivered", "submitted_at", "5"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let submitted = get_json(&state, "/v1/messages?status=submitted").await;
    assert_eq!(ids(&submitted), [to_a[1].clone()]);
    assert_eq!(submitted["items"][0]["status"], "submitted");
    assert!(ids(&get_json(&state, "/v1/messages?status=submitting").await).is_empty());
    let delivered = get_json(&state, &format!("/v1/messages?status=delivered&to={A}")).await;
    assert_eq!(ids(&delivered), [to_a[3].clone()]);
    let queued = all_pages(&state, "/v1/messages?status=queued&limit=4").await;
    assert_eq!(queued.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_search_is_bounded_per_request_and_continues_with_the_cursor() {
    let redis = RedisServer::start();
    let state = ingress(&redis, json!({})).await;
    let count = cmpp_gateway::store::SCAN_BUDGET + 300;
    let mut recipients = Vec::new();
    for i in 0..count {
        recipients.push(format!("137{:08}", i));
    }
    let mut sent = Vec::new();
    for chunk in recipients.chunks(100) {
        sent.extend(send(&state, json!(chunk), "bulk").await);
    }
    // Only the oldest is delivered, beyond the first request's budget (newest first): that
    // request finds nothing and hands back a cursor, the second finds it.
    let oldest = &sent[0];
    let mut conn = connect(&redis).await;
    let () = redis::cmd("HSET")
        .arg(keys().state(oldest))
        .arg("status")
        .arg("delivered")
        .query_async(&mut conn)
        .await
        .unwrap();
    let page = get_json(&state, "/v1/messages?status=delivered").await;
    assert!(ids(&page).is_empty(), "{page}");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a cursor to continue the scan")
        .to_owned();
    let page = get_json(
        &state,
        &format!(
            "/v1/messages?status=delivered&cursor={}",
            urlencode(&cursor)
        ),
    )
    .await;
    assert_eq!(
        ids(&page),
        std::slice::from_ref(oldest),
        "the cursor continues where the budget ended"
    );
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "the rest fits the second request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_naming_the_parameter() {
    let redis = RedisServer::start();
    let state = ingress(&redis, json!({})).await;
    let cases: [(&str, u16, Option<&str>); 11] = [
        ("/v1/messages?too=1", 400, None),
        ("/v1/messages?limit=0", 422, Some("limit")),
        ("/v1/messages?limit=500", 422, Some("limit")),
        ("/v1/messages?limit=ten", 400, Some("limit")),
        ("/v1/messages?to=abc", 422, Some("to")),
        ("/v1/messages?status=sent", 422, Some("status")),
        ("/v1/messages?cursor=1-0", 400, Some("cursor")),
        ("/v1/messages?to=1&to=2", 400, Some("to")),
        ("/v1/mo?cursor=12:x", 400, Some("cursor")),
        ("/v1/reports?from=13800138000", 400, None),
        ("/v1/dead?to=13800138000", 400, None),
    ];
    for (path, status, field) in cases {
        let resp = call(&state, get(path)).await;
        assert_error(&resp, status, field);
    }
    let resp = call(
        &state,
        warp::test::request().method("DELETE").path("/v1/messages"),
    )
    .await;
    assert_error(&resp, 405, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_every_json_route_needs_one_but_the_page_does_not() {
    let redis = RedisServer::start();
    let state = ingress(&redis, json!({"api_keys": ["console-key"]})).await;
    for path in [
        "/v1/messages",
        "/v1/mo",
        "/v1/reports",
        "/v1/dead",
        "/v1/stats",
        "/v1/config",
    ] {
        let resp = call(&state, get(path)).await;
        assert_error(&resp, 401, None);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let resp = call(&state, get(path).header("authorization", "Bearer wrong")).await;
        assert_eq!(resp.status(), 401, "{path}");
        let resp = call(
            &state,
            get(path).header("authorization", "Bearer console-key"),
        )
        .await;
        assert_eq!(resp.status(), 200, "{path}: {:?}", resp.body());
    }
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let resp = call(&state, get(path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        let content_type = resp.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!resp.body().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_on_every_json_route() {
    let mut redis = RedisServer::start();
    let state = ingress(&redis, json!({})).await;
    redis.stop();
    for path in [
        "/v1/messages",
        "/v1/messages?to=13800138000",
        "/v1/mo",
        "/v1/reports?to=13800138000",
        "/v1/dead",
        "/v1/stats",
    ] {
        let resp = tokio::time::timeout(Duration::from_secs(10), call(&state, get(path)))
            .await
            .expect("no request hangs while Redis is down");
        let b = assert_error(&resp, 503, None);
        assert_eq!(b["error"], "redis unavailable", "{path}");
    }
    // The send form's settings need no Redis, nor does the page.
    assert_eq!(call(&state, get("/v1/config")).await.status(), 200);
    assert_eq!(call(&state, get("/")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_settings_are_the_servers() {
    let redis = RedisServer::start();
    let state = ingress(
        &redis,
        json!({"prefer_gbk": true, "ascii_segment_chars": 134, "wide_udh_reference": true, "max_segments": 4}),
    )
    .await;
    let config = get_json(&state, "/v1/config").await;
    assert_eq!(
        config,
        json!({"prefer_gbk": true, "ascii_segment_chars": 134, "wide_udh_reference": true,
               "max_segments": 4, "max_recipients": 100, "src_ext_max_digits": 8})
    );
    let stats = get_json(&state, "/v1/stats").await;
    assert_eq!(stats["link"]["state"], "absent");
    // An instance without links still lists the channels it would serve, holding none.
    assert_eq!(
        stats["channels"],
        json!([{"name": "default", "allowed": 1, "connections_per_instance": 1,
                "held_here": 0, "links": []}])
    );
    assert_eq!(
        (stats["backlog"].as_u64(), stats["dead_letters"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        stats["last_hour"],
        json!({"delivered": 0, "failed": 0, "delivery_ratio": null})
    );
}

// ---- end to end: worker, link, receive path ----------------------------------------------

/// GETs `path` over TCP until `done` accepts the answer (20 s at most).
async fn wait_for(http: std::net::SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = tcp_get(http, path).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        let body = resp.json();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < until, "{path} after 20 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

/// The connections of `channel` in a `/v1/stats` answer.
fn connections(stats: &Value, channel: usize) -> &[Value] {
    stats["channels"][channel]["links"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

fn sum(links: &[Value], field: &str) -> u64 {
    links.iter().filter_map(|l| l[field].as_u64()).sum()
}

/// Two channels on one account: `default` with K = 2, both slots leased by this one instance,
/// and `spare` (K = 3), which this instance is set to hold none of. `/v1/stats` lists both
/// ("held here h / allowed K") with a row per held slot: its state, window, counters and rates;
/// `link` stays, as before channels, with the rates of both connections together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_list_every_channel_and_each_connection_held_here() {
    let gateway::Stack {
        redis: _redis,
        sim,
        gw,
    } = gateway::stack(
        Behaviour::default(),
        json!({"channels": [
            {"name": "default", "max_connections": 2},
            {"name": "spare", "max_connections": 3, "connections_per_instance": 0},
        ]}),
    )
    .await;
    let http = gw.http;
    let stats = wait_for(http, "/v1/stats", |s| {
        let links = connections(s, 0);
        links.len() == 2 && links.iter().all(|l| l["state"] == "up")
    })
    .await;
    let default = &stats["channels"][0];
    assert_eq!(
        (
            &default["name"],
            &default["allowed"],
            &default["connections_per_instance"],
            &default["held_here"],
        ),
        (&json!("default"), &json!(2), &json!(2), &json!(2)),
        "{stats}"
    );
    let links = connections(&stats, 0);
    let slots: Vec<u64> = links.iter().map(|l| l["slot"].as_u64().unwrap()).collect();
    assert_eq!(slots, [0, 1]);
    let now = cmpp_gateway::store::now_ms();
    for link in links {
        let since = link["since"].as_u64().expect("since in Unix ms");
        assert!(since <= now && now - since < 60_000, "{link}");
        assert_eq!(link["reason"], "logged in", "{link}");
        assert_eq!(
            link["window"],
            json!({"size": 16, "in_flight": 0}),
            "{link}"
        );
        for counter in [
            "submits_sent",
            "submits_ok",
            "delivers_received",
            "reports_received",
        ] {
            assert!(link[counter].is_u64(), "{counter} in {link}");
        }
    }
    assert_eq!(
        stats["channels"][1],
        json!({"name": "spare", "allowed": 3, "connections_per_instance": 0,
               "held_here": 0, "links": []})
    );
    assert_eq!(stats["channels"].as_array().unwrap().len(), 2);
    assert_eq!(stats["link"]["state"], "up");
    assert_eq!(stats["link"]["window"]["size"], 16);

    // Four messages go out over the two connections, however the workers share them; each
    // connection counts its own, and the sampler gives each its rates: from a sample taken
    // before they were sent, so the rates cannot miss them.
    wait_for(http, "/v1/stats", |s| {
        connections(s, 0).iter().all(|l| l["rates"].is_object())
    })
    .await;
    for to in [A, B, A, B] {
        let resp = tcp_post(http, "/v1/messages", &json!({"to": to, "text": "hi"})).await;
        assert_eq!(resp.status, 202, "{}", resp.body);
    }
    let stats = wait_for(http, "/v1/stats", |s| {
        let links = connections(s, 0);
        sum(links, "submits_ok") == 4 && sum(links, "reports_received") == 4
    })
    .await;
    assert_eq!(sim.recorded_submits().len(), 4);
    let links = connections(&stats, 0);
    let per_connection: f64 = links
        .iter()
        .map(|l| l["rates"]["submits_ok_per_s"].as_f64().unwrap())
        .sum();
    let together = stats["link"]["rates"]["submits_ok_per_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("the link's rates: {stats}"));
    assert!(per_connection > 0.0, "{stats}");
    // Measured a moment apart within one answer: equal up to rounding.
    assert!(
        (together - per_connection).abs() < 0.05,
        "link {together}/s, connections {per_connection}/s: {stats}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_messages_reports_and_mo_are_found_by_number_and_counted() {
    let gateway::Stack { redis, sim, gw } = gateway::stack(Behaviour::default(), json!({})).await;
    let http = gw.http;
    let mut sent = Vec::new();
    for (to, text) in [
        (A, "one"),
        (A, "two"),
        (A, "three"),
        (B, "four"),
        (B, "five"),
    ] {
        let resp = tcp_post(http, "/v1/messages", &json!({"to": to, "text": text})).await;
        assert_eq!(resp.status, 202, "{}", resp.body);
        sent.push(
            resp.json()["messages"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // An application's own XADD never passes the enqueue script: the worker indexes it.
    let mut conn = connect(&redis).await;
    let _: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(
            &[
                "id",
                "direct-1",
                "to",
                "13600136000",
                "text",
                "straight into the stream",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .unwrap();

    let delivered = wait_for(http, "/v1/messages?status=delivered", |p| {
        items(p).len() == 6
    })
    .await;
    assert_eq!(delivered["items"][0]["id"], "direct-1", "newest first");
    assert_eq!(delivered["items"][0]["segments"], 1);
    // Sent entries leave the outbound stream; the console keeps showing what was sent.
    let () = redis::cmd("XTRIM")
        .arg("cmpp:mt")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let direct = tcp_get(http, "/v1/messages?to=13600136000").await.json();
    assert_eq!(direct["items"][0]["text"], "straight into the stream");
    assert_eq!(direct["items"][0]["status"], "delivered");
    let by_http = tcp_get(http, &format!("/v1/messages?to={A}&limit=1"))
        .await
        .json();
    assert_eq!(
        by_http["items"][0]["text"], "three",
        "the newest HTTP message's text after the trim: {by_http}"
    );

    // Reports by number, paged.
    let reports_a = tcp_get(http, &format!("/v1/reports?to={A}&limit=2"))
        .await
        .json();
    assert_eq!(items(&reports_a).len(), 2);
    let cursor = reports_a["next_cursor"].as_str().unwrap();
    let rest = tcp_get(
        http,
        &format!("/v1/reports?to={A}&limit=2&cursor={}", urlencode(cursor)),
    )
    .await
    .json();
    assert_eq!(items(&rest).len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let report_ids: HashSet<&str> = items(&reports_a)
        .iter()
        .chain(items(&rest))
        .map(|r| r["fields"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(report_ids, sent[..3].iter().map(String::as_str).collect());
    for r in items(&reports_a) {
        assert_eq!(r["fields"]["stat"], "DELIVRD");
        assert!(r["entry_id"].as_str().unwrap().contains('-'));
    }
    let all_reports = tcp_get(http, "/v1/reports?limit=4").await.json();
    assert_eq!(items(&all_reports).len(), 4);
    let older = tcp_get(
        http,
        &format!(
            "/v1/reports?limit=4&cursor={}",
            all_reports["next_cursor"].as_str().unwrap()
        ),
    )
    .await
    .json();
    assert_eq!(items(&older).len(), 2);

    // MO by sender.
    for (from, text) in [
        ("13500135000", "first"),
        ("13500135001", "other"),
        ("13500135000", "second"),
    ] {
        sim.send_mo(MoRequest {
            from: from.into(),
            to: "1064899104221".into(),
            text: text.into(),
            ..MoRequest::default()
        })
        .unwrap();
        // One at a time, so the stream's order is the order sent.
        wait_for(http, &format!("/v1/mo?from={from}"), |p| {
            items(p).iter().any(|e| e["fields"]["text"] == text)
        })
        .await;
    }
    let mine = tcp_get(http, "/v1/mo?from=8613500135000").await.json();
    let texts: Vec<&str> = items(&mine)
        .iter()
        .map(|e| e["fields"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["second", "first"]);
    let all_mo = tcp_get(http, "/v1/mo").await.json();
    assert_eq!(items(&all_mo).len(), 3);
    assert_eq!(all_mo["items"][0]["fields"]["text"], "second");

    // The cards: the link, and the hour's outcomes from the per-minute counters.
    let stats = tcp_get(http, "/v1/stats").await.json();
    assert_eq!(stats["link"]["state"], "up", "{stats}");
    assert_eq!(stats["link"]["window"]["size"], 16);
    assert_eq!(stats["channels"][0]["held_here"], 1, "{stats}");
    assert_eq!(stats["channels"][0]["links"][0]["state"], "up", "{stats}");
    assert_eq!(
        stats["last_hour"],
        json!({"delivered": 6, "failed": 0, "delivery_ratio": 1.0})
    );
    assert_eq!(stats["backlog"], 0);

    sim.set_behaviour(Behaviour {
        stat_mix: vec![("UNDELIV".into(), 1)],
        ..Behaviour::default()
    })
    .unwrap();
    let resp = tcp_post(http, "/v1/messages", &json!({"to": B, "text": "will fail"})).await;
    assert_eq!(resp.status, 202);
    let failed = wait_for(http, "/v1/messages?status=failed", |p| items(p).len() == 1).await;
    assert_eq!(failed["items"][0]["error"], "Stat UNDELIV");
    let stats = tcp_get(http, "/v1/stats").await.json();
    assert_eq!(stats["last_hour"]["failed"], 1);
    assert_eq!(stats["last_hour"]["delivery_ratio"], 0.8571);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_newest_first_with_their_reasons() {
    let gateway::Stack {
        redis,
        sim: _sim,
        gw,
    } = gateway::stack(Behaviour::default(), json!({})).await;
    let mut conn = connect(&redis).await;
    for i in 0..3 {
        let _: String = redis::cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg(
                &[
                    "id",
                    &format!("bad-{i}"),
                    "to",
                    "12345",
                    "text",
                    "<b>not a number</b>",
                ][..],
            )
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let first = wait_for(gw.http, "/v1/dead?limit=2", |p| {
        p["next_cursor"].is_string()
    })
    .await;
    let ids: Vec<&str> = items(&first)
        .iter()
        .map(|e| e["fields"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad-2", "bad-1"]);
    let reason = first["items"][0]["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains("not a valid mobile number"), "{reason}");
    assert_eq!(first["items"][0]["fields"]["text"], "<b>not a number</b>");
    let rest = tcp_get(
        gw.http,
        &format!(
            "/v1/dead?limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        ),
    )
    .await
    .json();
    assert_eq!(items(&rest).len(), 1);
    assert_eq!(rest["items"][0]["fields"]["id"], "bad-0");
    assert_eq!(rest["next_cursor"], Value::Null);

    let dead = tcp_get(gw.http, "/v1/messages?status=dead").await.json();
    assert_eq!(items(&dead).len(), 3, "{dead}");
    let stats = tcp_get(gw.http, "/v1/stats").await.json();
    assert_eq!(stats["dead_letters"], 3);
    gw.stop().await;
}
