//! SIGKILL the gateway process while 5 000 messages are in flight, start another: every message
//! reaches a final state, none is lost, and the duplicates the ISMG sees stay bounded.

use std::time::Duration;

use crate::common::gateway;
use crate::common::process::GatewayProcess;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams;
use cmpp_gateway::simulator::{Behaviour, SimulatorHandle};
use serde_json::json;
use tokio::time::Instant;

const MESSAGES: usize = 5_000;
const WINDOW: usize = 16;

fn spawn_gateway(
    dir: &std::path::Path,
    sim: &SimulatorHandle,
    redis: &RedisServer,
    consumer: &str,
) -> GatewayProcess {
    let config = json!({
        "user": "900001", "password": "888888", "sms_accessno": "1064899104221", "service_id": "JSASXW",
        "http_host": "127.0.0.1", "http_port": 0,
        "cmpp_host": "127.0.0.1", "cmpp_port": sim.addr().port(),
        "redis_url": redis.url(), "window": WINDOW,
        "consumer_name": consumer, "reclaim_idle": "2s", "worker_block": "200ms", "response_timeout": "2s",
        "reconnect_min": "50ms", "reconnect_max": "500ms",
    });
    GatewayProcess::spawn(dir, consumer, &config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_gateway_loses_nothing_and_duplicates_stay_bounded() {
    let redis = RedisServer::start();
    let sim = gateway::simulator(Behaviour::default()).await;
    let dir = std::env::temp_dir().join(format!("cmpp-gateway-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut conn = connect(&redis).await;
    streams::fill(&mut conn, "crash", MESSAGES).await;

    let first = spawn_gateway(&dir, &sim, &redis, "first");
    // Kill it mid-stream: some messages sent, some in flight, most still waiting.
    let until = Instant::now() + Duration::from_secs(60);
    while sim.counters().submits_received < 1_000 {
        assert!(Instant::now() < until, "the first gateway never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(first); // SIGKILL
    let sent_by_first = sim.counters().submits_received;
    assert!(
        (sent_by_first as usize) < MESSAGES,
        "killed too late to prove anything: {sent_by_first} sent"
    );

    let _second = spawn_gateway(&dir, &sim, &redis, "second");
    streams::wait_all_delivered(&mut conn, "crash", MESSAGES, Duration::from_secs(120)).await;
    assert_eq!(streams::pending(&mut conn).await, 0, "nothing left pending");
    let received = sim.counters().submits_received as usize;
    let duplicates = received - MESSAGES;
    // In flight at the kill: up to a window of submits unanswered, plus the few answered whose
    // Msg_Id the killed process had not written yet.
    assert!(
        duplicates <= 2 * WINDOW,
        "{received} submits for {MESSAGES} messages: {duplicates} duplicates (window {WINDOW})"
    );
    eprintln!(
        "killed after {sent_by_first} submits; {received} submits in all for {MESSAGES} messages: {duplicates} duplicates"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
