//! `bench hostile`: the whole gateway against each hostile ISMG behaviour of the simulator, with
//! the copies of each message the ISMG received, logins and dead letters; then a link against an
//! ISMG that drops every connection a second after login, counting logins per minute.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::drain::wait_drained;
use super::rig::{Rig, RunningGateway};
use crate::secret::Secret;
use crate::session::{Link, LinkConfig, LinkEvent, LinkObserver};
use crate::simulator::{
    self, Behaviour, Damage, DamagedDeliverRequest, IsmgSubmitRequest, SimulatorConfig,
    SimulatorHandle,
};

const POISON: &str = "13900000000";

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostileRun {
    pub fault: &'static str,
    pub messages: u64,
    pub seconds: f64,
    /// Most SUBMITs the ISMG received for one message.
    pub max_copies: u64,
    /// SUBMITs received per message sent.
    pub mean_copies: f64,
    pub logins: u64,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FlapRun {
    pub seconds: f64,
    pub logins: u64,
    pub logins_per_minute: f64,
    /// The waits the link scheduled between logins, in seconds, in order.
    pub waits: Vec<f64>,
}

/// A fault: its name, the simulator's behaviour, and what to do once the link is up (`true`
/// once it reached the simulator; tried again until it does).
struct Fault {
    name: &'static str,
    behaviour: Behaviour,
    extra: serde_json::Value,
    inject: fn(&SimulatorHandle) -> bool,
}

/// One damaged MO and one damaged report into the outbox.
fn queue_damaged(sim: &SimulatorHandle, damage: Damage) -> bool {
    [false, true].into_iter().all(|report| {
        sim.send_damaged_deliver(DamagedDeliverRequest {
            damage,
            report,
            sp_id: None,
        })
        .is_ok()
    })
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            name: "undecodable DELIVER, resent after each login",
            behaviour: Behaviour::default(),
            extra: serde_json::json!({}),
            inject: |sim| queue_damaged(sim, Damage::MsgLengthOverrun),
        },
        Fault {
            name: "8 bytes after the last field of every PDU",
            behaviour: Behaviour {
                trailing_bytes: 8,
                ..Behaviour::default()
            },
            extra: serde_json::json!({}),
            inject: |sim| queue_damaged(sim, Damage::TrailingBytes),
        },
        Fault {
            name: "2.0-layout SUBMIT_RESP on a 3.0 link",
            behaviour: Behaviour {
                v20_responses: true,
                ..Behaviour::default()
            },
            extra: serde_json::json!({}),
            inject: |_| true,
        },
        Fault {
            name: "SUBMITs sent by the ISMG",
            behaviour: Behaviour::default(),
            extra: serde_json::json!({}),
            // The simulator counts a login before it registers the connection for faults: a
            // SUBMIT that found no connection was not sent.
            inject: |sim| {
                [false, true]
                    .into_iter()
                    .all(|valid| sim.send_ismg_submit(IsmgSubmitRequest { valid }) == 1)
            },
        },
        Fault {
            name: "ACTIVE_TEST_RESP without Reserved",
            behaviour: Behaviour {
                active_test_resp_without_reserved: true,
                ..Behaviour::default()
            },
            extra: serde_json::json!({"heartbeat_idle": "20ms"}),
            inject: |_| true,
        },
        Fault {
            name: "closes the connection on one message",
            behaviour: Behaviour {
                close_on_dest: POISON.into(),
                ..Behaviour::default()
            },
            extra: serde_json::json!({}),
            inject: |_| true,
        },
    ]
}

/// One run per fault, `count` messages each (plus one to the poison number in every run).
pub async fn run(count: u64) -> Result<Vec<HostileRun>, String> {
    let mut runs = Vec::new();
    for fault in faults() {
        runs.push(run_one(&fault, count).await?);
    }
    Ok(runs)
}

async fn run_one(fault: &Fault, count: u64) -> Result<HostileRun, String> {
    let rig = Rig::start(SimulatorConfig {
        behaviour: fault.behaviour.clone(),
        record_submits: true,
        ..SimulatorConfig::default()
    })
    .await?;
    let config = rig.config(fault.extra.clone())?;
    let mut conn = rig.redis_conn().await?;
    let gateway = RunningGateway::start(config).await?;
    let started = Instant::now();
    wait_for("the first login", || rig.sim.counters().logins_ok >= 1).await?;
    wait_for("the fault injected", || (fault.inject)(&rig.sim)).await?;
    let mut pipe = redis::pipe();
    pipe.cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["id", "poison", "to", POISON, "text", "poison"][..])
        .ignore();
    for i in 0..count {
        pipe.cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg("id")
            .arg(format!("m-{i}"))
            .arg("to")
            .arg("13800138000")
            .arg("text")
            .arg(format!("message {i}"))
            .ignore();
    }
    let () = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    wait_drained(&mut conn, count + 1).await?;
    let seconds = started.elapsed().as_secs_f64();
    let dead: u64 = redis::cmd("XLEN")
        .arg(crate::store::Keys::new("cmpp").dead_letters())
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    gateway.stop().await?;
    let counters = rig.sim.counters();
    let mut copies: HashMap<Vec<u8>, u64> = HashMap::new();
    for s in rig.sim.recorded_submits() {
        *copies.entry(s.msg_content).or_default() += 1;
    }
    // The simulator closes before it records a SUBMIT to the poison number.
    copies.insert(b"poison".to_vec(), counters.poison_closes.max(1));
    rig.sim.shutdown().await;
    let total: u64 = copies.values().sum();
    Ok(HostileRun {
        fault: fault.name,
        messages: count + 1,
        seconds,
        max_copies: copies.values().copied().max().unwrap_or(0),
        mean_copies: total as f64 / (count + 1) as f64,
        logins: counters.logins_ok,
        dead_letters: dead,
    })
}

async fn wait_for(what: &str, check: impl Fn() -> bool) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(60);
    while !check() {
        if Instant::now() > until {
            return Err(format!("{what} did not happen within a minute"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Records the waits the link schedules.
#[derive(Default)]
struct Waits(std::sync::Mutex<Vec<f64>>);

impl LinkObserver for Waits {
    fn on_event(&self, event: &LinkEvent) {
        if let LinkEvent::ReconnectScheduled { delay } = event {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(delay.as_secs_f64());
        }
    }
}

/// A link with the default reconnect settings against an ISMG that ends every connection at its
/// second PDU — the first ACTIVE_TEST, one second after login — for `seconds`.
pub async fn flap(seconds: u64) -> Result<FlapRun, String> {
    let sim = simulator::start(SimulatorConfig {
        behaviour: Behaviour {
            close_after_pdus: 2,
            ..Behaviour::default()
        },
        ..SimulatorConfig::default()
    })
    .await
    .map_err(|e| format!("simulator: {e}"))?;
    let mut config = LinkConfig::new(sim.addr().to_string(), "900001", Secret::new("888888"));
    config.heartbeat_idle = Duration::from_secs(1);
    let waits = std::sync::Arc::new(Waits::default());
    let parts = Link::spawn(config, Some(waits.clone()), CancellationToken::new());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed();
    let logins = sim.counters().logins_ok;
    parts.link.close();
    let _ = parts.task.await;
    sim.shutdown().await;
    let waits = waits.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(FlapRun {
        seconds: elapsed.as_secs_f64(),
        logins,
        logins_per_minute: logins as f64 * 60.0 / elapsed.as_secs_f64(),
        waits,
    })
}
