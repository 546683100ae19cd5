//! Counters of one link, kept with atomics so any task can read them without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use super::events::{ConnectOutcome, LinkEvent, LinkObserver, LinkState};
use crate::protocol::CommandId;

#[derive(Debug, Default)]
pub struct LinkStats {
    state: AtomicU64,
    state_since_ms: AtomicU64,
    in_flight: AtomicU64,
    connect_attempts: AtomicU64,
    connects_ok: AtomicU64,
    authenticator_mismatches: AtomicU64,
    disconnects: AtomicU64,
    submits_sent: AtomicU64,
    retransmits: AtomicU64,
    submit_responses: AtomicU64,
    submits_ok: AtomicU64,
    flow_control: AtomicU64,
    request_timeouts: AtomicU64,
    rtt_sum_us: AtomicU64,
    heartbeats_sent: AtomicU64,
    heartbeats_missed: AtomicU64,
    peer_heartbeats_answered: AtomicU64,
    delivers_received: AtomicU64,
    reports_received: AtomicU64,
    delivers_refused: AtomicU64,
    malformed_pdus: AtomicU64,
    protocol_anomalies: AtomicU64,
    quarantined: AtomicU64,
    unexpected_pdus: AtomicU64,
}

/// A point-in-time copy, for `/v1/link`, tests and benchmarks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkStatsSnapshot {
    pub state: LinkState,
    /// Unix time in milliseconds of the last state change.
    pub state_since_ms: u64,
    pub in_flight: u64,
    pub connect_attempts: u64,
    pub connects_ok: u64,
    pub authenticator_mismatches: u64,
    pub disconnects: u64,
    pub submits_sent: u64,
    pub retransmits: u64,
    pub submit_responses: u64,
    pub submits_ok: u64,
    pub flow_control: u64,
    pub request_timeouts: u64,
    /// Mean SUBMIT round trip in microseconds.
    pub submit_rtt_mean_us: u64,
    pub heartbeats_sent: u64,
    pub heartbeats_missed: u64,
    pub peer_heartbeats_answered: u64,
    pub delivers_received: u64,
    pub reports_received: u64,
    pub delivers_refused: u64,
    pub malformed_pdus: u64,
    /// PDUs read leniently, or answered by their header alone.
    pub protocol_anomalies: u64,
    /// Segments given up after repeated drops while they were the only one in flight.
    pub quarantined: u64,
    pub unexpected_pdus: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LinkStats {
    pub fn state(&self) -> LinkState {
        LinkState::ALL
            .get(self.state.load(Relaxed) as usize)
            .copied()
            .unwrap_or(LinkState::Down)
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn snapshot(&self) -> LinkStatsSnapshot {
        let responses = self.submit_responses.load(Relaxed);
        LinkStatsSnapshot {
            state: self.state(),
            state_since_ms: self.state_since_ms.load(Relaxed),
            in_flight: self.in_flight(),
            connect_attempts: self.connect_attempts.load(Relaxed),
            connects_ok: self.connects_ok.load(Relaxed),
            authenticator_mismatches: self.authenticator_mismatches.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            submits_sent: self.submits_sent.load(Relaxed),
            retransmits: self.retransmits.load(Relaxed),
            submit_responses: responses,
            submits_ok: self.submits_ok.load(Relaxed),
            flow_control: self.flow_control.load(Relaxed),
            request_timeouts: self.request_timeouts.load(Relaxed),
            submit_rtt_mean_us: self
                .rtt_sum_us
                .load(Relaxed)
                .checked_div(responses)
                .unwrap_or(0),
            heartbeats_sent: self.heartbeats_sent.load(Relaxed),
            heartbeats_missed: self.heartbeats_missed.load(Relaxed),
            peer_heartbeats_answered: self.peer_heartbeats_answered.load(Relaxed),
            delivers_received: self.delivers_received.load(Relaxed),
            reports_received: self.reports_received.load(Relaxed),
            delivers_refused: self.delivers_refused.load(Relaxed),
            malformed_pdus: self.malformed_pdus.load(Relaxed),
            protocol_anomalies: self.protocol_anomalies.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            unexpected_pdus: self.unexpected_pdus.load(Relaxed),
        }
    }
}

impl LinkObserver for LinkStats {
    fn on_event(&self, event: &LinkEvent) {
        match event {
            LinkEvent::StateChanged { state } => {
                let index = LinkState::ALL.iter().position(|s| s == state).unwrap_or(2);
                self.state.store(index as u64, Relaxed);
                self.state_since_ms.store(now_ms(), Relaxed);
            }
            LinkEvent::ConnectAttempt { outcome } => {
                bump(&self.connect_attempts);
                if *outcome == ConnectOutcome::Ok {
                    bump(&self.connects_ok);
                }
            }
            LinkEvent::AuthenticatorMismatch => bump(&self.authenticator_mismatches),
            LinkEvent::Disconnected { .. } => bump(&self.disconnects),
            LinkEvent::RequestSent {
                command: CommandId::Submit,
                retransmit,
            } => {
                bump(&self.submits_sent);
                if *retransmit {
                    bump(&self.retransmits);
                }
            }
            LinkEvent::RequestSent {
                retransmit: true, ..
            } => bump(&self.retransmits),
            LinkEvent::RequestSent { .. } => {}
            LinkEvent::Response {
                command: CommandId::SubmitResp,
                rtt,
                result,
            } => {
                bump(&self.submit_responses);
                self.rtt_sum_us.fetch_add(rtt.as_micros() as u64, Relaxed);
                if *result == 0 {
                    bump(&self.submits_ok);
                }
            }
            LinkEvent::Response { .. } => {}
            LinkEvent::FlowControl => bump(&self.flow_control),
            LinkEvent::RequestTimeout { .. } => bump(&self.request_timeouts),
            LinkEvent::HeartbeatSent => bump(&self.heartbeats_sent),
            LinkEvent::HeartbeatAnswered => {}
            LinkEvent::HeartbeatMissed => bump(&self.heartbeats_missed),
            LinkEvent::PeerHeartbeatAnswered => bump(&self.peer_heartbeats_answered),
            LinkEvent::DeliverReceived { report } => {
                bump(&self.delivers_received);
                if *report {
                    bump(&self.reports_received);
                }
            }
            LinkEvent::DeliverRefused => bump(&self.delivers_refused),
            LinkEvent::MalformedPdu => bump(&self.malformed_pdus),
            LinkEvent::ProtocolAnomaly { .. } => bump(&self.protocol_anomalies),
            LinkEvent::Quarantined { .. } => bump(&self.quarantined),
            LinkEvent::ReconnectScheduled { .. } => {}
            LinkEvent::UnexpectedPdu { .. } => bump(&self.unexpected_pdus),
            LinkEvent::InFlight { count } => self.in_flight.store(*count as u64, Relaxed),
        }
    }
}
