//! `bench drain`: messages per second from the outbound stream to SUBMIT_RESP through one link,
//! with Redis in the loop: the worker reads, submits, records the Msg_Ids and acknowledges.

use std::time::Duration;

use tokio::time::Instant;

use super::rate;
use super::rig::{Rig, RunningGateway};
use crate::simulator::SimulatorConfig;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DrainRun {
    pub messages: u64,
    /// Segments per message.
    pub parts: u32,
    pub window: usize,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub simulator_accepted: u64,
}

/// Pre-fills the stream with `count` entries of `parts` segments each, then times the gateway
/// draining all of them.
pub async fn run(count: u64, window: usize, parts: u32) -> Result<DrainRun, String> {
    let rig = Rig::start(SimulatorConfig::default()).await?;
    let config = rig.config(serde_json::json!({
        "window": window, "registered_delivery": false, "worker_batch": 256, "outbound_backlog_limit": 0,
    }))?;
    let mut conn = rig.redis_conn().await?;
    fill(&mut conn, count, parts).await?;

    let started = Instant::now();
    let gateway = RunningGateway::start(config).await?;
    wait_drained(&mut conn, count).await?;
    let elapsed = started.elapsed();
    gateway.stop().await?;
    let counters = rig.sim.shutdown().await;
    Ok(DrainRun {
        messages: count,
        parts,
        window,
        seconds: elapsed.as_secs_f64(),
        messages_per_second: rate(count, elapsed),
        simulator_accepted: counters.submits_accepted,
    })
}

/// XADDs `count` messages of `parts` segments (ASCII, 153 characters a segment; long ones to
/// 100 recipients, so the concatenation references are spread as in real traffic), pipelined
/// in chunks.
async fn fill(
    conn: &mut redis::aio::MultiplexedConnection,
    count: u64,
    parts: u32,
) -> Result<(), String> {
    let text = if parts <= 1 {
        "benchmark message".to_owned()
    } else {
        "b".repeat(153 * (parts as usize - 1) + 10)
    };
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
                .arg(format!("138001{:05}", i % 100))
                .arg("text")
                .arg(&text)
                .ignore();
        }
        let () = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
        added += chunk;
    }
    Ok(())
}

/// Waits until the group has read every entry and acknowledged it.
pub(super) async fn wait_drained(
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
