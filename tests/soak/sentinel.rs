//! The gateway on a primary watched by three sentinels (with one replica): the primary is
//! killed (SIGKILL) while 20 000 messages come in over HTTP and their reports come back. The
//! gateway follows the failover without a restart. With `redis_wait_replicas` = 1 nothing the
//! ingress acknowledged is lost and nothing is stuck; without it the last writes before the
//! failover may be lost, and the test reports how many were (README gives the numbers).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmpp_gateway::bench::redis_sentinel::RedisSentinels;
use cmpp_gateway::simulator::Behaviour;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::common::gateway;
use crate::common::http_client::post_json;
use crate::common::keys;

const COUNT: usize = 20_000;
const CLIENTS: usize = 16;
/// The primary is killed once this many messages were acknowledged.
const KILL_AFTER: usize = 5_000;
const TO: &str = "13800138000";

/// What a run ended with, over the messages the ingress acknowledged (202).
#[derive(Debug, Default)]
struct Outcome {
    acknowledged: usize,
    /// Acknowledged, never sent, and no state: gone with the primary.
    lost: usize,
    /// Acknowledged with a state that never became final.
    stuck: usize,
    /// SUBMITs beyond the first, over all messages.
    duplicates: usize,
    /// Of the acknowledged, delivered.
    delivered: usize,
    /// 503s answered to the clients (each retried with the same id).
    unavailable: usize,
    failover: Duration,
}

async fn run(wait_replicas: u32) -> Outcome {
    let mut redis = RedisSentinels::start();
    let sim = gateway::simulator(Behaviour::default()).await;
    let first = redis.primary_addr();
    let config = gateway::config(
        &sim,
        &format!("redis://{first}/0"),
        json!({
            "redis_sentinels": redis.sentinel_addrs(),
            "redis_master_name": redis.master_name(),
            "redis_wait_replicas": wait_replicas,
            "redis_timeout": "1s",
            "window": 32,
            "reclaim_idle": "5s",
        }),
    );
    let gw = gateway::start(config).await;

    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, acknowledged, unavailable) =
                (next.clone(), acknowledged.clone(), unavailable.clone());
            let http = gw.http;
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= COUNT {
                        return;
                    }
                    let id = format!("fo-{n}");
                    let body = json!({"to": TO, "text": id, "id": id});
                    // A 503 is retried with the same id, as a client is told to.
                    for _ in 0..600 {
                        let r = post_json(http, "/v1/messages", &body).await;
                        if r.status == 202 {
                            acknowledged.lock().await.push(id.clone());
                            break;
                        }
                        unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    while acknowledged.lock().await.len() < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = redis.kill_primary();
    let killed_at = Instant::now();
    let promoted =
        tokio::task::block_in_place(|| redis.wait_for_failover(&killed, Duration::from_secs(30)))
            .expect("the sentinels promote the replica");
    let failover = killed_at.elapsed();
    // The old primary comes back as the new one's replica, as an operator would bring it
    // back: until then a write cannot reach a replica (with WAIT, the ingress answers 503).
    tokio::task::block_in_place(|| redis.restart_killed());
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged: Vec<String> = acknowledged.lock().await.clone();

    // Settled: every acknowledged message final, or nothing changing for 15 s.
    let client = redis::Client::open(format!("redis://{promoted}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut last = (usize::MAX, Instant::now());
    let states = loop {
        let mut pipe = redis::pipe();
        for id in &acknowledged {
            pipe.cmd("HMGET")
                .arg(keys().state(id))
                .arg("status")
                .arg("submitted_at");
        }
        let states: Vec<(Option<String>, Option<String>)> =
            pipe.query_async(&mut conn).await.unwrap();
        let delivered = states
            .iter()
            .filter(|(s, _)| s.as_deref() == Some("delivered"))
            .count();
        if delivered == acknowledged.len() || last.1.elapsed() > Duration::from_secs(15) {
            break states;
        }
        if delivered != last.0 {
            last = (delivered, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut submits: HashMap<String, usize> = HashMap::new();
    for s in sim.recorded_submits() {
        *submits
            .entry(String::from_utf8_lossy(&s.msg_content).into_owned())
            .or_default() += 1;
    }
    let mut outcome = Outcome {
        acknowledged: acknowledged.len(),
        unavailable: unavailable.load(Ordering::Relaxed),
        failover,
        duplicates: submits.values().map(|n| n - 1).sum(),
        ..Outcome::default()
    };
    for (id, (status, _)) in acknowledged.iter().zip(&states) {
        match status.as_deref() {
            Some("delivered") => outcome.delivered += 1,
            None if !submits.contains_key(id) => outcome.lost += 1,
            _ => outcome.stuck += 1,
        }
    }
    let unique: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(
        unique.len(),
        acknowledged.len(),
        "each id acknowledged once"
    );
    eprintln!(
        "sentinel failover, redis_wait_replicas = {wait_replicas}: {} acknowledged, {} lost, {} stuck, {} duplicate SUBMITs, {} delivered; {} answers 503 (retried); the sentinels promoted the replica {:.1} s after the kill",
        outcome.acknowledged,
        outcome.lost,
        outcome.stuck,
        outcome.duplicates,
        outcome.delivered,
        outcome.unavailable,
        outcome.failover.as_secs_f64()
    );
    gw.stop().await;
    outcome
}

/// With `redis_wait_replicas` = 1: every message the ingress acknowledged is delivered after
/// the failover, none lost or stuck; duplicates stay within the messages in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_nothing_acknowledged_is_lost_in_a_failover() {
    let o = run(1).await;
    assert_eq!(o.acknowledged, COUNT, "{o:?}");
    assert_eq!((o.lost, o.stuck), (0, 0), "{o:?}");
    assert_eq!(o.delivered, COUNT, "{o:?}");
    assert!(o.duplicates <= 4 * 32, "{o:?}");
}

/// Without it the gateway still follows the failover by itself and delivers what the new
/// primary holds; what it may lose is the last second of writes before the kill, and nothing
/// it kept is left stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_gateway_follows_the_failover_and_nothing_kept_is_stuck() {
    let o = run(0).await;
    assert_eq!(o.acknowledged, COUNT, "{o:?}");
    assert_eq!(o.stuck, 0, "{o:?}");
    assert_eq!(o.delivered + o.lost, COUNT, "{o:?}");
    assert!(o.delivered > COUNT - KILL_AFTER, "{o:?}");
}
