//! Link events → link, window, heartbeat and DELIVER metrics of one link. The children of each
//! family are looked up once here, so an event costs an atomic add, not a label hash.

use std::sync::Arc;

use prometheus::{Histogram, IntCounter, IntGauge};

use super::Metrics;
use crate::protocol::CommandId;
use crate::session::{ConnectOutcome, DisconnectReason, LinkEvent, LinkObserver, LinkState};

/// Kinds of [`LinkEvent::ProtocolAnomaly`], zero until seen.
const ANOMALY_KINDS: [&str; 4] = [
    "trailing_bytes",
    "other_version_layout",
    "missing_reserved",
    "undecodable_body",
];
const CONNECT_RESULTS: [ConnectOutcome; 9] = [
    ConnectOutcome::Ok,
    ConnectOutcome::Unreachable,
    ConnectOutcome::Refused(2),
    ConnectOutcome::Refused(3),
    ConnectOutcome::Refused(4),
    ConnectOutcome::Refused(9),
    ConnectOutcome::AuthenticatorMismatch,
    ConnectOutcome::VersionMismatch,
    ConnectOutcome::Protocol,
];
const DISCONNECT_REASONS: [DisconnectReason; 8] = [
    DisconnectReason::PeerClosed,
    DisconnectReason::PeerTerminated,
    DisconnectReason::Malformed,
    DisconnectReason::HeartbeatLost,
    DisconnectReason::WriteStalled,
    DisconnectReason::Io,
    DisconnectReason::Shutdown,
    DisconnectReason::LeaseLost,
];
/// SUBMIT_RESP Results counted by value (the spec defines 0–13); the rest are `other`.
const NAMED_RESULTS: u32 = 14;
const TIMEOUT_COMMANDS: [&str; 5] = ["submit", "active_test", "query", "cancel", "other"];

pub struct LinkMetrics {
    metrics: Arc<Metrics>,
    /// link (SP_Id), channel, slot.
    labels: [String; 3],
    up: IntGauge,
    in_flight: IntGauge,
    rtt: Histogram,
    submits: Vec<IntCounter>,
    submits_other: IntCounter,
    flow_control: IntCounter,
    retransmits: IntCounter,
    heartbeats_sent: IntCounter,
    heartbeats_answered: IntCounter,
    heartbeats_missed: IntCounter,
    peer_heartbeats_answered: IntCounter,
    delivers_report: IntCounter,
    delivers_mo: IntCounter,
    delivers_queue_full: IntCounter,
}

impl LinkMetrics {
    /// `link` (the CMPP account), `channel` and `slot` name the connection in every series;
    /// `window` is its W.
    pub fn new(
        metrics: Arc<Metrics>,
        link: &str,
        channel: &str,
        slot: u32,
        window: usize,
    ) -> LinkMetrics {
        let f = &metrics.families;
        let slot = slot.to_string();
        let slot = slot.as_str();
        let l = &[link, channel, slot];
        f.window_size.with_label_values(l).set(window as i64);
        for state in LinkState::ALL {
            f.link_state
                .with_label_values(&[link, channel, slot, state.as_str()]);
        }
        for outcome in CONNECT_RESULTS {
            f.connect_attempts
                .with_label_values(&[link, channel, slot, outcome.as_str()]);
        }
        for reason in DISCONNECT_REASONS {
            f.disconnects
                .with_label_values(&[link, channel, slot, reason.as_str()]);
        }
        for command in TIMEOUT_COMMANDS {
            f.request_timeouts
                .with_label_values(&[link, channel, slot, command]);
        }
        for kind in ANOMALY_KINDS {
            f.protocol_anomalies
                .with_label_values(&[link, channel, slot, kind]);
        }
        f.quarantined.with_label_values(l);
        f.reconnect_delay.with_label_values(l);
        f.authenticator_mismatches.with_label_values(l);
        f.malformed_pdus.with_label_values(l);
        f.unexpected_pdus.with_label_values(l);
        f.delivers_refused
            .with_label_values(&[link, channel, slot, "store_failed"]);
        let child = |family: &prometheus::IntCounterVec| family.with_label_values(l);
        let observer = LinkMetrics {
            labels: [link.to_owned(), channel.to_owned(), slot.to_owned()],
            up: f.link_up.with_label_values(l),
            in_flight: f.window_in_flight.with_label_values(l),
            rtt: f.submit_rtt.with_label_values(l),
            submits: (0..NAMED_RESULTS)
                .map(|r| {
                    f.submits
                        .with_label_values(&[link, channel, slot, &r.to_string()])
                })
                .collect(),
            submits_other: f.submits.with_label_values(&[link, channel, slot, "other"]),
            flow_control: child(&f.flow_control),
            retransmits: child(&f.retransmits),
            heartbeats_sent: child(&f.heartbeats_sent),
            heartbeats_answered: child(&f.heartbeats_answered),
            heartbeats_missed: child(&f.heartbeats_missed),
            peer_heartbeats_answered: child(&f.peer_heartbeats_answered),
            delivers_report: f
                .delivers
                .with_label_values(&[link, channel, slot, "report"]),
            delivers_mo: f.delivers.with_label_values(&[link, channel, slot, "mo"]),
            delivers_queue_full: f.delivers_refused.with_label_values(&[
                link,
                channel,
                slot,
                "queue_full",
            ]),
            metrics: metrics.clone(),
        };
        observer.set_state(LinkState::Connecting);
        observer
    }

    fn set_state(&self, current: LinkState) {
        let f = &self.metrics.families;
        for state in LinkState::ALL {
            f.link_state
                .with_label_values(&self.with(state.as_str()))
                .set(i64::from(state == current));
        }
        self.up.set(i64::from(current == LinkState::Up));
    }

    fn labelled(&self, family: &prometheus::IntCounterVec, value: &str) -> IntCounter {
        family.with_label_values(&self.with(value))
    }

    /// The connection's labels and one more value.
    fn with<'a>(&'a self, value: &'a str) -> [&'a str; 4] {
        let [link, channel, slot] = &self.labels;
        [link, channel, slot, value]
    }
}

fn timeout_command(command: CommandId) -> &'static str {
    match command {
        CommandId::Submit => "submit",
        CommandId::ActiveTest => "active_test",
        CommandId::Query => "query",
        CommandId::Cancel => "cancel",
        _ => "other",
    }
}

impl LinkObserver for LinkMetrics {
    fn on_event(&self, event: &LinkEvent) {
        let f = &self.metrics.families;
        match event {
            LinkEvent::StateChanged { state } => self.set_state(*state),
            LinkEvent::ConnectAttempt { outcome } => {
                self.labelled(&f.connect_attempts, outcome.as_str()).inc()
            }
            LinkEvent::AuthenticatorMismatch => f
                .authenticator_mismatches
                .with_label_values(&self.labels)
                .inc(),
            LinkEvent::Disconnected { reason } => {
                self.labelled(&f.disconnects, reason.as_str()).inc()
            }
            LinkEvent::RequestSent { retransmit, .. } => {
                if *retransmit {
                    self.retransmits.inc();
                }
            }
            LinkEvent::Response {
                command: CommandId::SubmitResp,
                rtt,
                result,
            } => {
                self.rtt.observe(rtt.as_secs_f64());
                match self.submits.get(*result as usize) {
                    Some(counter) => counter.inc(),
                    None => self.submits_other.inc(),
                }
            }
            LinkEvent::Response { .. } => {}
            LinkEvent::FlowControl => self.flow_control.inc(),
            LinkEvent::RequestTimeout { command } => self
                .labelled(&f.request_timeouts, timeout_command(*command))
                .inc(),
            LinkEvent::HeartbeatSent => self.heartbeats_sent.inc(),
            LinkEvent::HeartbeatAnswered => self.heartbeats_answered.inc(),
            LinkEvent::HeartbeatMissed => self.heartbeats_missed.inc(),
            LinkEvent::PeerHeartbeatAnswered => self.peer_heartbeats_answered.inc(),
            LinkEvent::DeliverReceived { report: true } => self.delivers_report.inc(),
            LinkEvent::DeliverReceived { report: false } => self.delivers_mo.inc(),
            LinkEvent::DeliverRefused => self.delivers_queue_full.inc(),
            LinkEvent::MalformedPdu => f.malformed_pdus.with_label_values(&self.labels).inc(),
            LinkEvent::ProtocolAnomaly { kind } => self.labelled(&f.protocol_anomalies, kind).inc(),
            LinkEvent::Quarantined { .. } => f.quarantined.with_label_values(&self.labels).inc(),
            LinkEvent::ReconnectScheduled { delay } => f
                .reconnect_delay
                .with_label_values(&self.labels)
                .set(delay.as_secs_f64()),
            LinkEvent::UnexpectedPdu { .. } => {
                f.unexpected_pdus.with_label_values(&self.labels).inc()
            }
            LinkEvent::InFlight { count } => self.in_flight.set(*count as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn events_move_the_series_of_their_link() {
        let metrics = Arc::new(Metrics::new());
        let link = LinkMetrics::new(metrics.clone(), "900001", "default", 0, 16);
        link.on_event(&LinkEvent::StateChanged {
            state: LinkState::Up,
        });
        link.on_event(&LinkEvent::Response {
            command: CommandId::SubmitResp,
            rtt: Duration::from_millis(2),
            result: 8,
        });
        link.on_event(&LinkEvent::Response {
            command: CommandId::SubmitResp,
            rtt: Duration::from_millis(2),
            result: 200,
        });
        link.on_event(&LinkEvent::InFlight { count: 5 });
        link.on_event(&LinkEvent::RequestTimeout {
            command: CommandId::Submit,
        });
        let text = metrics.render();
        for line in [
            r#"cmpp_link_up{channel="default",link="900001",slot="0"} 1"#,
            r#"cmpp_link_state{channel="default",link="900001",slot="0",state="up"} 1"#,
            r#"cmpp_link_state{channel="default",link="900001",slot="0",state="connecting"} 0"#,
            r#"cmpp_link_submits_total{channel="default",link="900001",result="8",slot="0"} 1"#,
            r#"cmpp_link_submits_total{channel="default",link="900001",result="other",slot="0"} 1"#,
            r#"cmpp_link_submits_total{channel="default",link="900001",result="0",slot="0"} 0"#,
            r#"cmpp_link_window_in_flight{channel="default",link="900001",slot="0"} 5"#,
            r#"cmpp_link_window_size{channel="default",link="900001",slot="0"} 16"#,
            r#"cmpp_link_request_timeouts_total{channel="default",command="submit",link="900001",slot="0"} 1"#,
            r#"cmpp_link_submit_rtt_seconds_count{channel="default",link="900001",slot="0"} 2"#,
            r#"cmpp_link_disconnects_total{channel="default",link="900001",reason="heartbeat_lost",slot="0"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
