//! A single Redis with AOF (`appendonly yes`, `appendfsync everysec`) SIGKILLed and started
//! again on its files while messages come in over HTTP: nothing the ingress acknowledged more
//! than a second before the crash is lost, and the gateway (its consumer group, its link)
//! carries on without a restart, delivering what comes after.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmpp_gateway::bench::redis_server::RedisServer;
use cmpp_gateway::simulator::Behaviour;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::common::gateway;
use crate::common::http_client::post_json;
use crate::common::keys;

const COUNT: usize = 10_000;
const CLIENTS: usize = 8;
const CRASH_AFTER: usize = 4_000;
const TO: &str = "13800138000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aof_redis_crash_loses_nothing_acknowledged_a_second_before_it() {
    let mut redis = RedisServer::start_tcp_with_aof();
    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"redis_timeout": "1s", "reclaim_idle": "5s", "window": 32}),
    ))
    .await;

    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, acknowledged) = (next.clone(), acknowledged.clone());
            let http = gw.http;
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= COUNT {
                        return;
                    }
                    let id = format!("aof-{n}");
                    let body = json!({"to": TO, "text": id, "id": id});
                    for _ in 0..600 {
                        if post_json(http, "/v1/messages", &body).await.status == 202 {
                            acknowledged.lock().await.push((id.clone(), Instant::now()));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().await.len() < CRASH_AFTER {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let crashed_at = Instant::now();
    tokio::task::block_in_place(|| redis.restart_keeping_data());
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert_eq!(
        acknowledged.len(),
        COUNT,
        "every request acknowledged in the end"
    );

    // Settled: nothing delivered for 10 s, or everything.
    let mut conn = crate::common::redis::connect(&redis).await;
    let mut last = (usize::MAX, Instant::now());
    let statuses = loop {
        let mut pipe = redis::pipe();
        for (id, _) in &acknowledged {
            pipe.cmd("HGET").arg(keys().state(id)).arg("status");
        }
        let statuses: Vec<Option<String>> = pipe.query_async(&mut conn).await.unwrap();
        let delivered = statuses
            .iter()
            .filter(|s| s.as_deref() == Some("delivered"))
            .count();
        if delivered == COUNT || last.1.elapsed() > Duration::from_secs(10) {
            break statuses;
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
    let safe_before = crashed_at - Duration::from_secs(1);
    let mut lost_early = Vec::new();
    let (mut lost_late, mut undecided) = (0, 0);
    for ((id, at), status) in acknowledged.iter().zip(&statuses) {
        let lost = status.is_none() && !submits.contains_key(id);
        if lost && *at < safe_before {
            lost_early.push(id.clone());
        } else if lost {
            lost_late += 1;
        } else if status.as_deref() != Some("delivered") {
            undecided += 1;
        }
    }
    let after: Vec<bool> = acknowledged
        .iter()
        .zip(&statuses)
        .filter(|((_, at), _)| *at > crashed_at)
        .map(|(_, status)| status.as_deref() == Some("delivered"))
        .collect();
    let delivered_after = after.iter().filter(|d| **d).count();
    eprintln!(
        "aof crash: {} acknowledged, {} of them before the last second lost, {} in the last second lost, {} not decided (a report lost with the last second), {} duplicate SUBMITs; all {} acknowledged after the restart delivered: {}",
        acknowledged.len(),
        lost_early.len(),
        lost_late,
        undecided,
        submits.values().map(|n| n - 1).sum::<usize>(),
        after.len(),
        delivered_after == after.len()
    );
    assert!(lost_early.is_empty(), "lost: {lost_early:?}");
    assert!(!after.is_empty());
    assert_eq!(
        delivered_after,
        after.len(),
        "the gateway carries on after the restart"
    );
    gw.stop().await;
}
