//! `bench loop`: the full round trip, from the outbound stream to the message's final report in
//! the reports stream (the simulator reports every message at once), with the latency of each
//! message from enqueue to its report; and MO per second into the MO stream.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::rig::{Rig, RunningGateway};
use super::{Latency, rate};
use crate::simulator::{MoRequest, ReportRequest, SimulatorConfig};
use crate::store::now_ms;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LoopRun {
    pub messages: u64,
    /// Enqueue pace in messages/s; 0 = all at once.
    pub enqueue_rate: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    /// Enqueue (`ts`) to the final report's `received_at`, in microseconds.
    pub enqueue_to_report: Latency,
    /// Reports that overtook their SUBMIT_RESP bookkeeping and waited for the Msg_Id map.
    pub report_match_waits: u64,
    /// Reports for unknown Msg_Ids queued at the simulator just before the messages.
    pub unmatched: u64,
    /// Redis time per EVALSHA during the loop (`INFO commandstats`): the report script, the only
    /// script this run calls (the messages are XADDed directly), in microseconds.
    pub report_script_us: Option<f64>,
    pub mo: u64,
    pub mo_seconds: f64,
    pub mo_per_second: f64,
}

/// `rate` > 0 paces the enqueue (messages per second) so the latency shows the pipeline, not
/// the queue; 0 enqueues everything at once, for throughput.
/// `deliver_window` is how many DELIVERs the simulator keeps unanswered. `unmatched` reports for
/// Msg_Ids nobody sent are queued at the simulator first, so the messages' reports queue behind
/// them: the latency then shows what such a burst costs the others.
pub async fn run(
    count: u64,
    mo: u64,
    window: usize,
    deliver_window: usize,
    rate_limit: u64,
    unmatched: u64,
) -> Result<LoopRun, String> {
    let mut sim = SimulatorConfig::default();
    sim.behaviour.deliver_window = deliver_window;
    let rig = Rig::start(sim).await?;
    let config = rig.config(serde_json::json!({
        "window": window, "worker_batch": 256, "outbound_backlog_limit": 0,
    }))?;
    let mut conn = rig.redis_conn().await?;
    let gateway = RunningGateway::start(config).await?;
    for msg_id in 1..=unmatched {
        // Real Msg_Ids carry the month in their top bits: these small ones are nobody's.
        rig.sim.send_report(ReportRequest {
            sp_id: None,
            msg_id,
            destination: "13800138000".into(),
            stat: Some("DELIVRD".into()),
            src_id: "1064899104221".into(),
            service_id: "JSASXW".into(),
        })?;
    }

    // Messages enqueue as fast as Redis takes them, with their enqueue time.
    let started = Instant::now();
    let queued_at = enqueue(&mut conn, "loop", count, rate_limit).await?;
    // Timed when the last report is in, not after reading them all back for the latencies.
    wait_for_len(&mut conn, "cmpp:reports", count + unmatched, || Ok(())).await?;
    let elapsed = started.elapsed();
    let report_script_us = evalsha_usec_per_call(&mut conn).await?;
    let finals = read_finals(&mut conn, count).await?;
    let report_match_waits = gateway
        .metric("cmpp_reports_match_waits_total")
        .await?
        .unwrap_or(0.0) as u64;
    let latencies = enqueue_to_report(&queued_at, &finals);

    let mo_started = Instant::now();
    for i in 0..mo {
        rig.sim.send_mo(MoRequest {
            from: format!("139{i:08}"),
            to: "1064899104221".into(),
            text: "上行短信".into(),
            ..MoRequest::default()
        })?;
    }
    wait_for_len(&mut conn, "cmpp:mo", mo, || Ok(())).await?;
    let mo_elapsed = mo_started.elapsed();
    gateway.stop().await?;
    Ok(LoopRun {
        messages: count,
        enqueue_rate: rate_limit,
        seconds: elapsed.as_secs_f64(),
        messages_per_second: rate(count, elapsed),
        enqueue_to_report: latencies,
        report_match_waits,
        unmatched,
        report_script_us,
        mo,
        mo_seconds: mo_elapsed.as_secs_f64(),
        mo_per_second: rate(mo, mo_elapsed),
    })
}

/// XADDs `count` one-segment messages to `cmpp:mt` (ids `{prefix}-{i}`), in pipelines of 1,000,
/// or paced at `rate_limit` messages per second in 10 ms ticks (0 = as fast as Redis takes them);
/// returns each id's enqueue time (`ts`, ms since the epoch), what the reports are matched with.
pub(super) async fn enqueue(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    count: u64,
    rate_limit: u64,
) -> Result<HashMap<String, u64>, String> {
    let started = Instant::now();
    let mut queued_at = HashMap::with_capacity(count as usize);
    let mut added = 0;
    let tick = Duration::from_millis(10);
    let per_tick = if rate_limit > 0 {
        (rate_limit / 100).max(1)
    } else {
        1_000
    };
    while added < count {
        let chunk = (count - added).min(per_tick);
        if rate_limit > 0 {
            tokio::time::sleep_until(started + tick * (added / per_tick) as u32).await;
        }
        let mut pipe = redis::pipe();
        let ts = now_ms();
        for i in added..added + chunk {
            let id = format!("{prefix}-{i}");
            pipe.cmd("XADD")
                .arg("cmpp:mt")
                .arg("*")
                .arg(
                    &[
                        "id",
                        &id,
                        "to",
                        "13800138000",
                        "text",
                        "full loop",
                        "ts",
                        &ts.to_string(),
                    ][..],
                )
                .ignore();
            queued_at.insert(id, ts);
        }
        let () = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
        added += chunk;
    }
    Ok(queued_at)
}

/// Reads the reports stream once (after it holds every report: one-segment messages, so each
/// report is final; only its length was polled meanwhile, so the measurement did not load
/// Redis); returns id → received_at of the entries that carry a final status.
pub(super) async fn read_finals(
    conn: &mut redis::aio::MultiplexedConnection,
    count: u64,
) -> Result<Vec<(String, u64)>, String> {
    let mut cursor = "-".to_owned();
    let mut finals = Vec::with_capacity(count as usize);
    loop {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("cmpp:reports")
            .arg(&cursor)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = entries.last() else {
            break;
        };
        cursor = format!("({last}");
        for (_, fields) in &entries {
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            if let (Some(_), Some(id), Some(received)) =
                (get("status"), get("id"), get("received_at"))
            {
                finals.push((id, received.parse().unwrap_or(0)));
            }
        }
    }
    Ok(finals)
}

/// Each final report's delay after its message's enqueue, in microseconds (both clocks are
/// milliseconds: the stream entry's `ts` and the report's `received_at`).
pub(super) fn enqueue_to_report(
    queued_at: &HashMap<String, u64>,
    finals: &[(String, u64)],
) -> Latency {
    let latencies = finals
        .iter()
        .filter_map(|(id, received)| {
            queued_at
                .get(id)
                .map(|q| received.saturating_sub(*q) * 1_000)
        })
        .collect();
    Latency::from_micros(latencies)
}

/// `usec_per_call` of EVALSHA in `INFO commandstats` (Redis' own clock, scripts' inner
/// commands included); `None` when no script ran.
async fn evalsha_usec_per_call(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Result<Option<f64>, String> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("usec_per_call="))
        })
        .and_then(|v| v.parse().ok()))
}

/// Polls XLEN until `stream` holds `n` entries; `alive` is asked on every poll and ends the wait
/// with its error (e.g. a gateway process that exited), so a run does not sit out the deadline.
pub(super) async fn wait_for_len(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    n: u64,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(stream)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if len >= n {
            return Ok(());
        }
        alive()?;
        if Instant::now() > deadline {
            return Err(format!("{len} of {n} entries in {stream} after 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
