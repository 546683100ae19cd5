//! `bench drain`: messages per second from the outbound stream to SUBMIT_RESP through one link,
//! with Redis in the loop: the worker reads, submits, records the Msg_Ids and acknowledges.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::rate;
use super::redis_server::RedisServer;
use crate::config::GatewayConfig;
use crate::simulator::{self, SimulatorConfig};

#[derive(Debug, Clone, serde::Serialize)]
pub struct DrainRun {
    pub messages: u64,
    pub window: usize,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub simulator_accepted: u64,
}

/// Pre-fills the stream with `count` entries, then times the gateway draining all of them.
pub async fn run(count: u64, window: usize) -> Result<DrainRun, String> {
    let redis = RedisServer::try_start()?;
    let sim = simulator::start(SimulatorConfig::default())
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let config = serde_json::json!({
        "user": "900001", "password": "888888", "sms_accessno": "1064899104221", "service_id": "BENCH",
        "http_host": "127.0.0.1", "http_port": 0,
        "cmpp_host": "127.0.0.1", "cmpp_port": sim.addr().port(),
        "redis_url": redis.url(), "window": window, "registered_delivery": false,
        "worker_batch": 256, "outbound_backlog_limit": 0,
    });
    let config = GatewayConfig::from_str_with_env("bench", &config.to_string(), &|_| None)
        .map_err(|e| e.to_string())?;

    let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    fill(&mut conn, count).await?;

    let shutdown = CancellationToken::new();
    let (tx, rx) = oneshot::channel();
    let started = Instant::now();
    let gateway = tokio::spawn(crate::gateway::run(config, shutdown.clone(), Some(tx)));
    rx.await.map_err(|_| "gateway did not start".to_owned())?;
    wait_drained(&mut conn, count).await?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = gateway.await;
    let counters = sim.shutdown().await;
    Ok(DrainRun {
        messages: count,
        window,
        seconds: elapsed.as_secs_f64(),
        messages_per_second: rate(count, elapsed),
        simulator_accepted: counters.submits_accepted,
    })
}

/// XADDs `count` one-segment messages, pipelined in chunks.
async fn fill(conn: &mut redis::aio::MultiplexedConnection, count: u64) -> Result<(), String> {
    let mut added = 0;
    while added < count {
        let chunk = (count - added).min(1_000);
        let mut pipe = redis::pipe();
        for i in added..added + chunk {
            pipe.cmd("XADD")
                .arg("cmpp:mt")
                .arg("*")
                .arg("id")
                .arg(format!("bench-{i}"))
                .arg("to")
                .arg("13800138000")
                .arg("text")
                .arg("benchmark message")
                .ignore();
        }
        let () = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
        added += chunk;
    }
    Ok(())
}

/// Waits until the group has read every entry and acknowledged it.
async fn wait_drained(
    conn: &mut redis::aio::MultiplexedConnection,
    count: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("cmpp:mt")
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(g) = groups.groups.first() {
            let read = g.entries_read.unwrap_or(0) as u64;
            if read >= count && g.pending == 0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the stream was not drained within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
