//! `SimulatorHandle`: what tests, benchmarks and the control interface hold to steer a running
//! simulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::config::Behaviour;
use super::counters::{Counters, add};
use super::hostile::{DamagedDeliverRequest, IsmgSubmitRequest};
use super::mo::{self, MoRequest};
use super::outbox::{DeliverKind, Entry};
use super::report::{ReportRequest, ReportSpec};
use super::server::{ConnCommand, Shared};
use super::stats::Stats;
use super::submit::RecordedSubmit;
use crate::protocol::MsgId;

/// How long `shutdown` waits for connections and the control interface to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Cheap to clone; every clone steers the same simulator.
#[derive(Clone)]
pub struct SimulatorHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle")
            .field("addr", &self.addr)
            .field("control_addr", &self.control_addr)
            .finish_non_exhaustive()
    }
}

impl SimulatorHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        addr: SocketAddr,
        control_addr: Option<SocketAddr>,
    ) -> Self {
        SimulatorHandle {
            shared,
            addr,
            control_addr,
        }
    }

    /// The CMPP address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP control address actually bound, if any.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// What `GET /stats` answers: the counters, per-account connections, per-connection counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    pub fn behaviour(&self) -> Behaviour {
        Behaviour::clone(&self.shared.behaviour.get())
    }

    /// Replaces the behaviour; live connections use it from their next PDU on.
    pub fn set_behaviour(&self, b: Behaviour) -> Result<(), String> {
        b.validate()?;
        info!(behaviour = ?b, "behaviour changed");
        self.shared.behaviour.set(b);
        Ok(())
    }

    /// Queues the DELIVER(s) of one MO message in the account's outbox. Returns the message's
    /// number of parts (Pk_total; a dropped or duplicated part does not change it).
    pub fn send_mo(&self, req: MoRequest) -> Result<usize, String> {
        let account = self.shared.account_or_first(req.sp_id.as_deref())?;
        let mut rng = fastrand::Rng::new();
        let reference = self.shared.next_mo_reference();
        let (delivers, parts) =
            mo::build(&req, reference, &mut rng, || self.shared.next_msg_id(1))?;
        let entries: Vec<Entry> = delivers
            .into_iter()
            .map(|d| Entry::new(d, DeliverKind::Mo))
            .collect();
        // Refuse now what this account's version cannot carry (e.g. a 25-digit sender in 2.0)
        // instead of failing later on the wire.
        for entry in &entries {
            entry
                .packet
                .to_bytes(account.account.version)
                .map_err(|e| format!("MO cannot be encoded: {e}"))?;
        }
        add(&self.shared.counters.mo_queued, entries.len() as u64);
        account.outbox.push(entries);
        Ok(parts)
    }

    /// Queues one status report at once (no report_delay), e.g. for a Msg_Id the client never saw.
    pub fn send_report(&self, req: ReportRequest) -> Result<(), String> {
        let account = self.shared.account_or_first(req.sp_id.as_deref())?;
        let behaviour = self.shared.behaviour.get();
        let stat = match &req.stat {
            Some(s) => s.clone(),
            None => behaviour
                .stat_for(fastrand::u64(..behaviour.stat_weight().max(1)))
                .to_owned(),
        };
        let spec = ReportSpec {
            submit_msg_id: MsgId(req.msg_id),
            src_id: &req.src_id,
            service_id: &req.service_id,
            destination: &req.destination,
            stat: &stat,
        };
        let layout = account.report_layout(&behaviour);
        // Checked here so that what goes into the outbox can always be sent.
        self.shared
            .queue_report(account, &spec, layout, Duration::ZERO, Instant::now())
            .map_err(|e| format!("report cannot be encoded: {e}"))?;
        Ok(())
    }

    /// Queues one damaged DELIVER (an MO, or a report for a Msg_Id nobody sent) in the account's
    /// outbox; like every DELIVER it is resent until answered with Result 0.
    pub fn send_damaged_deliver(&self, req: DamagedDeliverRequest) -> Result<(), String> {
        let account = self.shared.account_or_first(req.sp_id.as_deref())?;
        let msg_id = self.shared.next_msg_id(1);
        let mut entry = if req.report {
            let behaviour = self.shared.behaviour.get();
            let spec = ReportSpec {
                submit_msg_id: MsgId(msg_id.0 ^ 0x5A5A),
                src_id: "1064899104221",
                service_id: "",
                destination: "13800138000",
                stat: "DELIVRD",
            };
            let deliver = super::report::build(
                &spec,
                msg_id,
                self.shared.next_smsc_sequence(),
                account.report_layout(&behaviour),
                Duration::ZERO,
            )
            .map_err(|e| format!("report cannot be encoded: {e}"))?;
            Entry::new(deliver, DeliverKind::Report)
        } else {
            let deliver = crate::protocol::Deliver {
                msg_id,
                dest_id: "1064899104221".into(),
                src_terminal_id: "13800138000".into(),
                msg_content: b"damaged".to_vec(),
                ..crate::protocol::Deliver::default()
            };
            Entry::new(deliver, DeliverKind::Mo)
        };
        entry.damage = Some(req.damage);
        add(&self.shared.counters.damaged_delivers_queued, 1);
        account.outbox.push([entry]);
        Ok(())
    }

    /// Every logged-in connection receives a SUBMIT from the ISMG. Returns how many.
    pub fn send_ismg_submit(&self, req: IsmgSubmitRequest) -> usize {
        self.shared
            .broadcast(ConnCommand::Submit { valid: req.valid })
    }

    /// The next PDU written on every logged-in connection is malformed (Total_Length 8).
    /// Returns the number of connections affected.
    pub fn inject_malformed(&self) -> usize {
        self.shared.broadcast(ConnCommand::Malformed)
    }

    /// Drops every logged-in TCP connection without a word. Returns how many.
    pub fn disconnect_all(&self) -> usize {
        let n = self.shared.broadcast(ConnCommand::Disconnect);
        add(&self.shared.counters.disconnects_injected, n as u64);
        n
    }

    /// Sends CMPP_TERMINATE on every logged-in connection; each closes on TERMINATE_RESP or after
    /// one second. Returns how many.
    pub fn terminate_all(&self) -> usize {
        self.shared.broadcast(ConnCommand::Terminate)
    }

    /// Every SUBMIT received so far, in arrival order (empty unless `record_submits`).
    pub fn recorded_submits(&self) -> Vec<RecordedSubmit> {
        self.shared.recorded()
    }

    /// Whether SUBMITs are being recorded (`record_submits`).
    pub fn is_recording(&self) -> bool {
        self.shared.recorded.is_some()
    }

    /// DELIVERs waiting in the outboxes (not counting those in flight on a connection).
    pub fn outbox_len(&self) -> usize {
        self.shared
            .accounts
            .iter()
            .map(|a| {
                let (ready, delayed) = a.outbox.len();
                ready + delayed
            })
            .sum()
    }

    /// Stops accepting, closes every connection and the control interface, and returns the final
    /// counters.
    pub async fn shutdown(self) -> Counters {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "simulator tasks still running after {SHUTDOWN_GRACE:?}; giving up on them"
            );
        }
        self.counters()
    }
}
