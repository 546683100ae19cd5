//! `bench link`: submits per second and SUBMIT round trips through one link against the
//! simulator, with no Redis in the loop. It shows what the CMPP side alone can carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Latency, rate};
use crate::protocol::Submit;
use crate::secret::Secret;
use crate::session::{Link, LinkConfig};
use crate::simulator::{self, Behaviour, SimulatorConfig};

#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkRun {
    pub window: usize,
    pub submits: u64,
    pub errors: u64,
    pub seconds: f64,
    pub submits_per_second: f64,
    pub rtt: Latency,
    /// The simulator's own count of submits it answered with Result 0.
    pub simulator_accepted: u64,
    /// The most submits the simulator saw unanswered at once: never above the window.
    pub simulator_max_unanswered: u64,
    /// Result 8 answers the simulator sent.
    pub flow_control: u64,
}

/// How the simulated ISMG limits a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// The simulator's delay before each SUBMIT_RESP.
    pub response_delay: Duration,
    /// Share of submits answered Result 8 at random.
    pub flow_control_ratio: f64,
    /// Result 8 beyond this many submits per second (0 = none): the carrier's capacity.
    pub capacity: u32,
}

/// One run: a fresh simulator and link, `count` one-segment submits with `window` in flight,
/// each resubmitted after Result 8 within the link's default limit (30); `errors` counts those
/// that still failed.
pub async fn run(count: u64, window: usize, limits: Limits) -> Result<LinkRun, String> {
    let sim = simulator::start(SimulatorConfig {
        behaviour: Behaviour {
            response_delay: limits.response_delay,
            flow_control_ratio: limits.flow_control_ratio,
            flow_control_above_rate: limits.capacity,
            ..Behaviour::default()
        },
        ..SimulatorConfig::default()
    })
    .await
    .map_err(|e| format!("simulator: {e}"))?;
    let mut config = LinkConfig::new(sim.addr().to_string(), "900001", Secret::new("888888"));
    config.window = window;
    let shutdown = CancellationToken::new();
    let parts = Link::spawn(config, None, shutdown.clone());
    let link = parts.link;
    if !link.wait_up().await {
        return Err("link did not come up".into());
    }

    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Twice the window of submitters keeps the window full while responses are processed.
    let workers: Vec<_> = (0..window * 2)
        .map(|_| {
            let (link, issued, errors) = (link.clone(), issued.clone(), errors.clone());
            tokio::spawn(async move {
                let mut rtts = Vec::new();
                while issued.fetch_add(1, Ordering::Relaxed) < count {
                    match link.submit(sample_submit()).await {
                        Ok(accepted) => rtts.push(accepted.rtt.as_micros() as u64),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                rtts
            })
        })
        .collect();
    let mut rtts = Vec::with_capacity(count as usize);
    for worker in workers {
        rtts.extend(worker.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    link.close();
    let _ = parts.task.await;
    let counters = sim.shutdown().await;
    let submits = rtts.len() as u64;
    Ok(LinkRun {
        window,
        submits,
        errors: errors.load(Ordering::Relaxed),
        seconds: elapsed.as_secs_f64(),
        submits_per_second: rate(submits, elapsed),
        rtt: Latency::from_micros(rtts),
        simulator_accepted: counters.submits_accepted,
        simulator_max_unanswered: counters.max_unanswered,
        flow_control: counters.flow_control_sent,
    })
}

fn sample_submit() -> Submit {
    Submit {
        pk_total: 1,
        pk_number: 1,
        service_id: "BENCH".into(),
        msg_src: "900001".into(),
        fee_type: "01".into(),
        src_id: "1064899104221".into(),
        dest_terminal_ids: vec!["13800138000".into()],
        msg_content: b"benchmark message".to_vec(),
        ..Submit::default()
    }
}
