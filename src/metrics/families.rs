//! Every metric family of `docs/metrics.md`, created and registered in one place, with the
//! label values known in advance set to zero.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use super::{HTTP_ROUTES, REPORT_STATS, STREAMS};

/// SUBMIT RTT: from a loopback peer (tens of µs) to a distant ISMG under load (seconds).
const RTT_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const HTTP_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub struct Families {
    // Link, window, heartbeats (label `link` first).
    pub link_up: IntGaugeVec,
    pub link_state: IntGaugeVec,
    pub connect_attempts: IntCounterVec,
    pub disconnects: IntCounterVec,
    pub authenticator_mismatches: IntCounterVec,
    pub malformed_pdus: IntCounterVec,
    pub unexpected_pdus: IntCounterVec,
    pub protocol_anomalies: IntCounterVec,
    pub quarantined: IntCounterVec,
    pub reconnect_delay: GaugeVec,
    pub window_size: IntGaugeVec,
    pub window_in_flight: IntGaugeVec,
    pub submit_rtt: HistogramVec,
    pub submits: IntCounterVec,
    pub flow_control: IntCounterVec,
    pub retransmits: IntCounterVec,
    pub request_timeouts: IntCounterVec,
    pub heartbeats_sent: IntCounterVec,
    pub heartbeats_answered: IntCounterVec,
    pub heartbeats_missed: IntCounterVec,
    pub peer_heartbeats_answered: IntCounterVec,
    pub delivers: IntCounterVec,
    pub delivers_refused: IntCounterVec,
    // Connection-slot leases (label `channel`).
    pub leases_held: IntGaugeVec,
    pub leases_allowed: IntGaugeVec,
    pub lease_losses: IntCounterVec,
    // Receive path.
    pub reports: IntCounterVec,
    pub reports_unmatched: IntCounter,
    pub reports_malformed: IntCounter,
    pub reports_match_waits: IntCounter,
    pub reports_held: IntGauge,
    pub messages_final: IntCounterVec,
    pub mo_messages: IntCounterVec,
    pub mo_reassembly_pending: IntGauge,
    // Worker and streams.
    pub worker_messages: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub msg_id_duplicates: IntCounter,
    pub stream_length: IntGaugeVec,
    pub group_pending: IntGaugeVec,
    pub group_lag: IntGaugeVec,
    pub sample_errors: IntCounter,
    // HTTP.
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_unavailable: IntCounterVec,
    pub http_accepted: IntCounter,
    pub http_connections: IntGaugeVec,
    pub http_connection_limit: IntGaugeVec,
    pub http_connection_timeouts: IntCounterVec,
    // Build.
    pub build_info: IntGaugeVec,
    pub start_time: Gauge,
}

impl Families {
    pub(super) fn register(registry: &Registry) -> Families {
        let r = Registrar { registry };
        // Every link family names the link (SP_Id), its channel and its connection slot.
        let link = &["link", "channel", "slot"];
        let f = Families {
            link_up: r.gauges("cmpp_link_up", "1 while the CMPP link is logged in", link),
            link_state: r.gauges(
                "cmpp_link_state",
                "1 for the link's current state",
                &["link", "channel", "slot", "state"],
            ),
            connect_attempts: r.counters(
                "cmpp_link_connect_attempts_total",
                "Login attempts by result",
                &["link", "channel", "slot", "result"],
            ),
            disconnects: r.counters(
                "cmpp_link_disconnects_total",
                "Established connections that ended, by reason",
                &["link", "channel", "slot", "reason"],
            ),
            authenticator_mismatches: r.counters(
                "cmpp_link_authenticator_mismatches_total",
                "CONNECT_RESPs whose AuthenticatorISMG did not match",
                link,
            ),
            malformed_pdus: r.counters(
                "cmpp_link_malformed_pdus_total",
                "Bytes from the ISMG that are not a PDU",
                link,
            ),
            unexpected_pdus: r.counters(
                "cmpp_link_unexpected_pdus_total",
                "Responses nobody waits for and requests the gateway does not serve",
                link,
            ),
            protocol_anomalies: r.counters(
                "cmpp_link_protocol_anomalies_total",
                "PDUs read although not as the spec says, or answered by their header alone",
                &["link", "channel", "slot", "kind"],
            ),
            quarantined: r.counters(
                "cmpp_link_quarantined_total",
                "Segments given up after the connection dropped repeatedly while they were the only one in flight",
                link,
            ),
            reconnect_delay: r.float_gauges(
                "cmpp_link_reconnect_delay_seconds",
                "The wait before the next login attempt, as last scheduled",
                link,
            ),
            window_size: r.gauges(
                "cmpp_link_window_size",
                "Requests allowed unanswered (W)",
                link,
            ),
            window_in_flight: r.gauges(
                "cmpp_link_window_in_flight",
                "Requests sent and not yet answered",
                link,
            ),
            submit_rtt: r.histograms(
                "cmpp_link_submit_rtt_seconds",
                "SUBMIT to SUBMIT_RESP time",
                link,
                &RTT_BUCKETS,
            ),
            submits: r.counters(
                "cmpp_link_submits_total",
                "SUBMIT_RESPs by Result",
                &["link", "channel", "slot", "result"],
            ),
            flow_control: r.counters(
                "cmpp_link_flow_control_total",
                "Result 8 (flow control) answers",
                link,
            ),
            retransmits: r.counters(
                "cmpp_link_retransmits_total",
                "Requests sent again after no response within T",
                link,
            ),
            request_timeouts: r.counters(
                "cmpp_link_request_timeouts_total",
                "Requests with no response after every send",
                &["link", "channel", "slot", "command"],
            ),
            heartbeats_sent: r.counters(
                "cmpp_link_heartbeats_sent_total",
                "ACTIVE_TESTs sent",
                link,
            ),
            heartbeats_answered: r.counters(
                "cmpp_link_heartbeats_answered_total",
                "ACTIVE_TEST_RESPs received",
                link,
            ),
            heartbeats_missed: r.counters(
                "cmpp_link_heartbeats_missed_total",
                "ACTIVE_TESTs not answered in time",
                link,
            ),
            peer_heartbeats_answered: r.counters(
                "cmpp_link_peer_heartbeats_answered_total",
                "ACTIVE_TESTs from the ISMG answered",
                link,
            ),
            delivers: r.counters(
                "cmpp_delivers_total",
                "DELIVERs received, by kind",
                &["link", "channel", "slot", "kind"],
            ),
            delivers_refused: r.counters(
                "cmpp_delivers_refused_total",
                "DELIVERs answered non-zero so the ISMG resends them",
                &["link", "channel", "slot", "reason"],
            ),
            leases_held: r.gauges(
                "cmpp_leases_held",
                "Connection slots of the channel this instance holds a lease on",
                &["channel"],
            ),
            leases_allowed: r.gauges(
                "cmpp_channel_max_connections",
                "Connections the carrier allows the channel across all instances (K)",
                &["channel"],
            ),
            lease_losses: r.counters(
                "cmpp_lease_losses_total",
                "Leases this instance lost (not renewed in time, or taken) while holding them",
                &["channel"],
            ),
            reports: r.counters(
                "cmpp_reports_total",
                "Status reports written, by Stat",
                &["stat"],
            ),
            reports_unmatched: r.counter(
                "cmpp_reports_unmatched_total",
                "Reports written with unmatched=1",
            ),
            reports_malformed: r.counter(
                "cmpp_reports_malformed_total",
                "Report bodies that could not be decoded, written raw",
            ),
            reports_match_waits: r.counter(
                "cmpp_reports_match_waits_total",
                "Reports that arrived before their Msg_Id was recorded and were held for it",
            ),
            reports_held: r.gauge(
                "cmpp_reports_held",
                "Status reports held until their Msg_Id is mapped",
            ),
            messages_final: r.counters(
                "cmpp_messages_final_total",
                "Messages decided by their last segment report, by status",
                &["status"],
            ),
            mo_messages: r.counters(
                "cmpp_mo_messages_total",
                "MO messages written to the MO stream",
                &["complete"],
            ),
            mo_reassembly_pending: r.gauge(
                "cmpp_mo_reassembly_pending",
                "Long MO messages waiting for parts",
            ),
            worker_messages: r.counters(
                "cmpp_worker_messages_total",
                "Messages the worker finished, by outcome",
                &["outcome"],
            ),
            dead_letters: r.counters(
                "cmpp_dead_letters_total",
                "Entries written to the dead-letter stream",
                &["status"],
            ),
            msg_id_duplicates: r.counter(
                "cmpp_msg_id_duplicates_total",
                "Msg_Ids the ISMG gave a segment that another message already holds",
            ),
            stream_length: r.gauges("cmpp_stream_length", "Entries in each stream", &["stream"]),
            group_pending: r.gauges(
                "cmpp_consumer_group_pending",
                "Entries read and not yet acknowledged",
                &["stream"],
            ),
            group_lag: r.gauges(
                "cmpp_consumer_group_lag",
                "Entries not yet read by the consumer group",
                &["stream"],
            ),
            sample_errors: r.counter(
                "cmpp_redis_sample_errors_total",
                "Stream samples that failed because Redis did not answer",
            ),
            http_requests: r.counters(
                "cmpp_http_requests_total",
                "HTTP requests by route and status code",
                &["route", "code"],
            ),
            http_duration: r.histograms(
                "cmpp_http_request_duration_seconds",
                "HTTP request to response time",
                &["route"],
                &HTTP_BUCKETS,
            ),
            http_unavailable: r.counters(
                "cmpp_http_unavailable_total",
                "503 answers by reason",
                &["reason"],
            ),
            http_accepted: r.counter(
                "cmpp_http_messages_accepted_total",
                "Messages accepted into the outbound stream by HTTP",
            ),
            http_connections: r.gauges(
                "cmpp_http_connections",
                "Open HTTP connections by listener",
                &["listener"],
            ),
            http_connection_limit: r.gauges(
                "cmpp_http_connection_limit",
                "Most HTTP connections a listener keeps open at once",
                &["listener"],
            ),
            http_connection_timeouts: r.counters(
                "cmpp_http_connection_timeouts_total",
                "HTTP connections closed by a timeout, by listener and kind",
                &["listener", "kind"],
            ),
            build_info: r.gauges(
                "cmpp_build_info",
                "Always 1: the version and git commit of this build",
                &["version", "commit"],
            ),
            start_time: {
                let g = Gauge::new("cmpp_start_time_seconds", "Unix time the process started")
                    .expect("valid metric");
                r.add(g.clone());
                g
            },
        };
        f.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("CMPP_GIT_COMMIT")])
            .set(1);
        f.start_time.set(crate::store::now_ms() as f64 / 1000.0);
        f.touch_known_labels();
        f
    }

    fn touch_known_labels(&self) {
        for stat in REPORT_STATS.iter().chain(&["other"]) {
            self.reports.with_label_values(&[stat]);
        }
        for status in ["delivered", "failed"] {
            self.messages_final.with_label_values(&[status]);
        }
        for complete in ["true", "false"] {
            self.mo_messages.with_label_values(&[complete]);
        }
        for outcome in [
            "submitted",
            "failed",
            "dead",
            "skipped",
            "duplicate",
            "forwarded",
        ] {
            self.worker_messages.with_label_values(&[outcome]);
        }
        for status in ["failed", "dead"] {
            self.dead_letters.with_label_values(&[status]);
        }
        for stream in STREAMS {
            self.stream_length.with_label_values(&[stream]);
        }
        self.group_pending.with_label_values(&["mt"]);
        self.group_lag.with_label_values(&["mt"]);
        for route in HTTP_ROUTES {
            self.http_duration.with_label_values(&[route]);
        }
        for reason in ["redis", "backlog"] {
            self.http_unavailable.with_label_values(&[reason]);
        }
        for listener in ["http", "metrics"] {
            self.http_connections.with_label_values(&[listener]);
            for kind in ["header", "idle", "write", "shutdown"] {
                self.http_connection_timeouts
                    .with_label_values(&[listener, kind]);
            }
        }
    }
}

/// Creates families and registers them; a failure is a programming error (a bad or repeated
/// name), caught by the first test that builds a registry.
struct Registrar<'a> {
    registry: &'a Registry,
}

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + 'static>(&self, c: C) {
        self.registry
            .register(Box::new(c))
            .expect("metric names are unique");
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.add(c.clone());
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        let c = IntCounter::new(name, help).expect("valid metric");
        self.add(c.clone());
        c
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.add(g.clone());
        g
    }

    fn float_gauges(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.add(g.clone());
        g
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).expect("valid metric");
        self.add(g.clone());
        g
    }

    fn histograms(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let h = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric");
        self.add(h.clone());
        h
    }
}
