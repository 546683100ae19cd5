//! `/metrics` of a running gateway follows real traffic: a message sent and reported, an MO,
//! an HTTP refusal; the stream gauges are sampled; the separate metrics address needs no key
//! while the API's `/metrics` does.

use std::time::Duration;

use crate::common::gateway;
use crate::common::http_client::{get, post_json};
use cmpp_gateway::simulator::{Behaviour, MoRequest};
use serde_json::json;
use tokio::time::Instant;

/// The value of one exposition line `series value`, if present.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic() {
    let metrics_port = free_port();
    let stack = gateway::stack(
        Behaviour::default(),
        json!({"api_keys": ["k1"], "metrics_port": metrics_port, "metrics_sample_interval": "100ms"}),
    )
    .await;
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();

    let r = post_json(
        stack.gw.http,
        "/v1/messages",
        &json!({"to": "13800138000", "text": "hi"}),
    )
    .await;
    assert_eq!(r.status, 401, "no key: refused");
    assert_eq!(get(stack.gw.http, "/metrics").await.status, 401);
    let sent = crate::common::http_client::request_with_key(
        stack.gw.http,
        "POST",
        "/v1/messages",
        "k1",
        &json!({"to": "13800138000", "text": "hi"}).to_string(),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    stack
        .sim
        .send_mo(MoRequest {
            from: "13900139000".into(),
            to: "1064899104221".into(),
            text: "上行".into(),
            ..MoRequest::default()
        })
        .unwrap();

    let expected = [
        (
            r#"cmpp_link_up{channel="default",link="900001",slot="0"}"#,
            1.0,
        ),
        (
            r#"cmpp_link_submits_total{channel="default",link="900001",result="0",slot="0"}"#,
            1.0,
        ),
        (
            r#"cmpp_link_submit_rtt_seconds_count{channel="default",link="900001",slot="0"}"#,
            1.0,
        ),
        (
            r#"cmpp_delivers_total{channel="default",kind="report",link="900001",slot="0"}"#,
            1.0,
        ),
        (
            r#"cmpp_delivers_total{channel="default",kind="mo",link="900001",slot="0"}"#,
            1.0,
        ),
        (r#"cmpp_reports_total{stat="DELIVRD"}"#, 1.0),
        (r#"cmpp_messages_final_total{status="delivered"}"#, 1.0),
        (r#"cmpp_mo_messages_total{complete="true"}"#, 1.0),
        (r#"cmpp_worker_messages_total{outcome="submitted"}"#, 1.0),
        ("cmpp_http_messages_accepted_total", 1.0),
        (r#"cmpp_http_requests_total{code="401",route="send"}"#, 1.0),
        (r#"cmpp_http_requests_total{code="202",route="send"}"#, 1.0),
        (r#"cmpp_consumer_group_lag{stream="mt"}"#, 0.0),
        (r#"cmpp_stream_length{stream="reports"}"#, 1.0),
        (r#"cmpp_stream_length{stream="mo"}"#, 1.0),
        (r#"cmpp_consumer_group_pending{stream="mt"}"#, 0.0),
        (
            r#"cmpp_link_window_size{channel="default",link="900001",slot="0"}"#,
            16.0,
        ),
    ];
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = get(metrics_addr, "/metrics").await;
        assert_eq!(scrape.status, 200);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, want)| value(&scrape.body, series) != Some(*want))
            .map(|(series, want)| {
                format!(
                    "{series}: want {want}, got {:?}",
                    value(&scrape.body, series)
                )
            })
            .collect();
        if missing.is_empty() {
            assert!(scrape.body.contains("cmpp_build_info{commit=\""));
            break;
        }
        assert!(
            Instant::now() < until,
            "after 20 s, {} of {} series differ:\n{}",
            missing.len(),
            expected.len(),
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.gw.stop().await;
}
