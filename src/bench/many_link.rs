//! `bench many-link`: one account with K = 8 connections held by two gateway processes (4 leased
//! slots each), against an ISMG that allows the account 8 logins and each connection 500
//! submits/s (Result 8 beyond). Measures what the account achieves — submits/s accepted, the
//! share of Result 8, enqueue-to-final-report latency — and what the carrier saw: the most
//! connections at once and logins refused. Also the CPU each process used, since on a small
//! machine the processes share the cores.
//!
//! The gateways are real processes (this binary's `run`), so they compete for leases through
//! Redis exactly as separately deployed instances do; the simulator runs in this process and the
//! messages are XADDed directly, so HTTP is not part of the measurement.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cpu::cpu_time;
use super::full_loop::{enqueue, enqueue_to_report, read_finals, wait_for_len};
use super::gateway_process::GatewayProcess;
use super::redis_server::RedisServer;
use super::stream_watch::{StreamLengths, StreamWatch};
use super::{Latency, rate};
use crate::simulator::{self, SimulatorConfig, SimulatorHandle};

/// K: the account's connections at the carrier, and what the gateways are told.
pub const CONNECTIONS: u32 = 8;
pub const INSTANCES: u32 = 2;
/// The carrier's cap per connection, and the gateway's `rate` per connection.
pub const CAP_PER_CONNECTION: u32 = 500;
const WINDOW: usize = 16;
const SP_ID: &str = "900001";
/// How long the gateways get to log in every connection.
const READY_WITHIN: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, serde::Serialize)]
pub struct ManyLinkRun {
    pub messages: u64,
    /// Enqueue pace in messages/s; 0 = all at once.
    pub enqueue_rate: u64,
    pub connections: u32,
    pub instances: u32,
    pub cap_per_connection: u32,
    /// Enqueue of the first message to the last final report.
    pub seconds: f64,
    /// Accepted submits per second from the first SUBMIT accepted to the last (the steady state:
    /// the links were logged in before the first message was queued).
    pub submits_per_second: f64,
    /// The most submits accepted within any one second of the run.
    pub peak_one_second: u64,
    /// SUBMITs the simulator received (resubmissions after Result 8 included).
    pub submits_received: u64,
    pub submits_accepted: u64,
    /// SUBMIT_RESPs with Result 8.
    pub flow_control: u64,
    /// `flow_control` / `submits_received`.
    pub flow_control_share: f64,
    /// Enqueue (`ts`) to the final report's `received_at`, in microseconds.
    pub enqueue_to_report: Latency,
    /// The most connections of the account logged in at once (the carrier allows 8).
    pub connections_peak: u64,
    /// Logins the simulator refused because the account had 8 live connections.
    pub logins_refused: u64,
    /// Connections of the account closed during the run (none expected).
    pub connections_closed: u64,
    pub per_connection: Vec<ConnectionShare>,
    /// CPU used during the run (first enqueue to last report) per process.
    pub cpu: Vec<ProcessCpu>,
    pub outbound: StreamLengths,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionShare {
    /// The simulator's connection id.
    pub id: u64,
    pub submits_received: u64,
    pub flow_control: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessCpu {
    pub process: String,
    pub pid: u32,
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the run's wall time, in percent of one core.
    pub percent_of_core: f64,
}

/// Runs the benchmark with `gateway_exe` as the gateway binary (this one, from the command line).
pub async fn run(gateway_exe: &Path, count: u64, rate_limit: u64) -> Result<ManyLinkRun, String> {
    let redis = RedisServer::try_start()?;
    let mut sim_config = SimulatorConfig::default();
    sim_config.behaviour.flow_control_above_rate = CAP_PER_CONNECTION;
    sim_config.behaviour.max_connections = CONNECTIONS as usize;
    let sim = simulator::start(sim_config)
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("cmpp-many-link-")
        .tempdir()
        .map_err(|e| format!("no temporary directory: {e}"))?;
    let mut gateways = Vec::new();
    for i in 1..=INSTANCES {
        gateways.push(GatewayProcess::spawn(
            gateway_exe,
            dir.path(),
            &format!("gateway-{i}"),
            &gateway_config(&sim, &redis),
        )?);
    }
    let result = measure(&redis, &sim, &mut gateways, count, rate_limit).await;
    // Stopped on success and on error alike; a gateway that ignores SIGTERM is killed by its PID
    // when dropped.
    for gateway in gateways {
        let name = gateway.name.clone();
        if !gateway.stop(STOP_GRACE).await {
            eprintln!("warning: {name} did not stop within {STOP_GRACE:?} of SIGTERM: killed");
        }
    }
    sim.shutdown().await;
    result
}

/// One instance's config: the same for both, as for instances deployed from one file; each
/// leases 4 of the account's 8 slots.
fn gateway_config(sim: &SimulatorHandle, redis: &RedisServer) -> serde_json::Value {
    serde_json::json!({
        "user": SP_ID, "password": "888888", "sms_accessno": "1064899104221", "service_id": "JSASXW",
        "http_host": "127.0.0.1", "http_port": 0,
        "cmpp_host": "127.0.0.1", "cmpp_port": sim.addr().port(),
        "redis_url": redis.url(),
        "max_connections": CONNECTIONS,
        "connections_per_instance": CONNECTIONS / INSTANCES,
        "rate": CAP_PER_CONNECTION,
        "window": WINDOW,
    })
}

async fn measure(
    redis: &RedisServer,
    sim: &SimulatorHandle,
    gateways: &mut [GatewayProcess],
    count: u64,
    rate_limit: u64,
) -> Result<ManyLinkRun, String> {
    wait_for_logins(sim, gateways).await?;
    let mut conn = redis::Client::open(redis.url())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut processes: Vec<(String, u32)> =
        gateways.iter().map(|g| (g.name.clone(), g.pid())).collect();
    processes.extend(redis.pid().map(|pid| ("redis-server".to_owned(), pid)));
    processes.push(("bench (simulator, enqueue)".to_owned(), std::process::id()));
    let cpu_before: Vec<Option<Duration>> = processes.iter().map(|(_, p)| cpu_time(*p)).collect();
    let watch = StreamWatch::start(conn.clone());
    let sampler = Sampler::start(sim.clone());

    let started = Instant::now();
    let queued_at = enqueue(&mut conn, "many", count, rate_limit).await?;
    wait_for_len(&mut conn, "cmpp:reports", count, || {
        gateways
            .iter_mut()
            .try_for_each(GatewayProcess::check_running)
    })
    .await?;
    let elapsed = started.elapsed();
    let cpu = processes
        .iter()
        .zip(cpu_before)
        .map(|((process, pid), before)| {
            let used = cpu_time(*pid)
                .zip(before)
                .map_or(Duration::ZERO, |(after, before)| {
                    after.saturating_sub(before)
                });
            ProcessCpu {
                process: process.clone(),
                pid: *pid,
                cpu_seconds: used.as_secs_f64(),
                percent_of_core: 100.0 * used.as_secs_f64() / elapsed.as_secs_f64(),
            }
        })
        .collect();
    let samples = sampler.finish().await;
    let outbound = watch.finish().await?;
    let finals = read_finals(&mut conn, count).await?;

    let stats = sim.stats();
    let account = stats.accounts.get(SP_ID).cloned().unwrap_or_default();
    let counters = &stats.counters;
    let ours = || stats.connections.iter().filter(|c| c.sp_id == SP_ID);
    let (submits_per_second, peak_one_second) = submit_rates(&samples, count);
    Ok(ManyLinkRun {
        messages: count,
        enqueue_rate: rate_limit,
        connections: CONNECTIONS,
        instances: INSTANCES,
        cap_per_connection: CAP_PER_CONNECTION,
        seconds: elapsed.as_secs_f64(),
        submits_per_second,
        peak_one_second,
        submits_received: counters.submits_received,
        submits_accepted: counters.submits_accepted,
        flow_control: counters.flow_control_sent,
        flow_control_share: counters.flow_control_sent as f64
            / counters.submits_received.max(1) as f64,
        enqueue_to_report: enqueue_to_report(&queued_at, &finals),
        connections_peak: account.connections_peak,
        logins_refused: counters.logins_refused_max_connections,
        connections_closed: ours().filter(|c| c.closed).count() as u64,
        per_connection: ours()
            .map(|c| ConnectionShare {
                id: c.id,
                submits_received: c.submits_received,
                flow_control: c.flow_control_sent,
            })
            .collect(),
        cpu,
        outbound,
    })
}

/// Until the account has all its connections logged in at the simulator.
async fn wait_for_logins(
    sim: &SimulatorHandle,
    gateways: &mut [GatewayProcess],
) -> Result<(), String> {
    let until = Instant::now() + READY_WITHIN;
    loop {
        let live = sim
            .stats()
            .accounts
            .get(SP_ID)
            .map_or(0, |a| a.connections_live);
        if live >= u64::from(CONNECTIONS) {
            return Ok(());
        }
        for gateway in gateways.iter_mut() {
            gateway.check_running()?;
        }
        if Instant::now() >= until {
            let logs: Vec<String> = gateways
                .iter()
                .map(|g| format!("{}:\n{}", g.name, g.log_tail()))
                .collect();
            return Err(format!(
                "{live} of {CONNECTIONS} connections logged in after {READY_WITHIN:?}\n{}",
                logs.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's accepted-submit count over time.
struct Sampler {
    sim: SimulatorHandle,
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(sim: SimulatorHandle) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (sim, samples, stop) = (sim.clone(), samples.clone(), stop.clone());
            async move {
                let mut every = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        () = stop.cancelled() => return,
                    }
                    let accepted = sim.counters().submits_accepted;
                    if let Ok(mut samples) = samples.lock() {
                        samples.push((Instant::now(), accepted));
                    }
                }
            }
        });
        Sampler {
            sim,
            samples,
            stop,
            task,
        }
    }

    async fn finish(self) -> Vec<(Instant, u64)> {
        self.stop.cancel();
        let _ = self.task.await;
        let mut samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        // The last report is in, so every submit has been answered: a final sample closes the
        // series even when the last periodic one came just before the end.
        samples.push((Instant::now(), self.sim.counters().submits_accepted));
        samples
    }
}

/// Accepted submits/s from the last sample before the first acceptance to the first sample that
/// has `count` of them, and the most accepted within one second (between samples ≥ 1 s apart).
fn submit_rates(samples: &[(Instant, u64)], count: u64) -> (f64, u64) {
    let first = samples.iter().rposition(|&(_, a)| a == 0).unwrap_or(0);
    let last = samples
        .iter()
        .position(|&(_, a)| a >= count)
        .unwrap_or(samples.len().saturating_sub(1));
    let steady = match (samples.get(first), samples.get(last)) {
        (Some(&(t0, a0)), Some(&(t1, a1))) if t1 > t0 => rate(a1 - a0, t1 - t0),
        _ => 0.0,
    };
    let mut peak = 0;
    let mut j = 0;
    for &(t0, a0) in samples {
        while j < samples.len() && samples[j].0 < t0 + Duration::from_secs(1) {
            j += 1;
        }
        // The first sample at least a second later, scaled back to exactly one second.
        if let Some(&(t1, a1)) = samples.get(j) {
            let per_second = (a1 - a0) as f64 / (t1 - t0).as_secs_f64();
            peak = peak.max(per_second as u64);
        }
    }
    (steady, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_run_from_the_first_acceptance_to_the_last() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Idle for 1 s, then 4,000/s for 2 s, then the count is reached and stays.
        let mut samples = vec![(at(0), 0), (at(500), 0), (at(1_000), 0)];
        for step in 1..=20 {
            samples.push((at(1_000 + step * 100), step * 400));
        }
        samples.push((at(3_500), 8_000));
        let (steady, peak) = submit_rates(&samples, 8_000);
        assert!((steady - 4_000.0).abs() < 1.0, "{steady}");
        assert_eq!(peak, 4_000);
        assert_eq!(submit_rates(&[], 1), (0.0, 0));
    }
}
