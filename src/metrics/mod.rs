//! Prometheus metrics: one registry per gateway (tests run several in one process), the
//! families of `docs/metrics.md`, and the text exposition for `GET /metrics`.
//!
//! - [`link`]: a [`LinkObserver`](crate::session::LinkObserver) that turns link events into
//!   link, window and heartbeat metrics.
//! - [`sampler`]: stream lengths, consumer-group pending and lag, MO waiting for reassembly,
//!   read from Redis every few seconds rather than per request.
//! - [`families`]: every family, created and registered in one place.

mod families;
pub mod link;
pub mod sampler;

use prometheus::{Encoder, Registry, TextEncoder};

use crate::store::MessageStatus;

pub use families::Families;

/// Label values that exist from the start, so alerts and panels see zeros, not absent series.
pub const STREAMS: [&str; 4] = ["mt", "dead", "reports", "mo"];
pub const HTTP_ROUTES: [&str; 12] = [
    "send",
    "message",
    "list",
    "stats",
    "link",
    "compat_submit",
    "compat_send",
    "healthz",
    "readyz",
    "metrics",
    "console",
    "other",
];
/// Report Stat values counted by name; everything else is `other` (vendors invent many).
pub const REPORT_STATS: [&str; 7] = [
    "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD",
];

pub struct Metrics {
    registry: Registry,
    pub families: Families,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let families = Families::register(&registry);
        Metrics { registry, families }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail on I/O; a family that cannot encode is a bug here.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The worker is done with a message: `Submitted`, or `Failed`/`Dead` with a dead letter.
    pub fn worker_finished(&self, outcome: MessageStatus) {
        let f = &self.families;
        f.worker_messages
            .with_label_values(&[outcome.as_str()])
            .inc();
        if matches!(outcome, MessageStatus::Failed | MessageStatus::Dead) {
            f.dead_letters.with_label_values(&[outcome.as_str()]).inc();
        }
    }

    /// A reclaimed entry whose message was already submitted: acknowledged, not sent again.
    pub fn worker_skipped(&self) {
        self.families
            .worker_messages
            .with_label_values(&["skipped"])
            .inc();
    }

    /// An entry whose message id belongs to another entry: dead-lettered, not sent.
    /// An entry that named another channel, moved to that channel's stream.
    pub fn worker_forwarded(&self) {
        self.families
            .worker_messages
            .with_label_values(&["forwarded"])
            .inc();
    }

    pub fn worker_duplicate(&self) {
        let f = &self.families;
        f.worker_messages.with_label_values(&["duplicate"]).inc();
        f.dead_letters.with_label_values(&["dead"]).inc();
    }

    /// A status report written to the reports stream.
    pub fn report_written(&self, stat: &str, unmatched: bool) {
        let f = &self.families;
        let label = REPORT_STATS
            .iter()
            .find(|s| **s == stat)
            .copied()
            .unwrap_or("other");
        f.reports.with_label_values(&[label]).inc();
        if unmatched {
            f.reports_unmatched.inc();
        }
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The route label of a request path (low cardinality: never an id from the path).
pub fn route_label(method: &warp::http::Method, path: &str) -> &'static str {
    match path {
        "/v1/messages" if method == warp::http::Method::POST => "send",
        p if p.starts_with("/v1/messages/") => "message",
        "/v1/messages" | "/v1/mo" | "/v1/reports" | "/v1/dead" => "list",
        "/v1/stats" | "/v1/config" => "stats",
        "/v1/link" => "link",
        "/submit" => "compat_submit",
        "/send" => "compat_send",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p == "/" || p.starts_with("/console") => "console",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::Method;

    #[test]
    fn routes_never_carry_ids() {
        assert_eq!(route_label(&Method::POST, "/v1/messages"), "send");
        assert_eq!(route_label(&Method::GET, "/v1/messages/abc"), "message");
        assert_eq!(route_label(&Method::GET, "/v1/messages"), "list");
        assert_eq!(route_label(&Method::GET, "/nope/13800138000"), "other");
        // One real path per route: the two hand-kept lists cannot drift apart.
        let labels: std::collections::BTreeSet<&str> = [
            (Method::POST, "/v1/messages"),
            (Method::GET, "/v1/messages/m1"),
            (Method::GET, "/v1/mo"),
            (Method::GET, "/v1/stats"),
            (Method::GET, "/v1/link"),
            (Method::GET, "/submit"),
            (Method::POST, "/send"),
            (Method::GET, "/healthz"),
            (Method::GET, "/readyz"),
            (Method::GET, "/metrics"),
            (Method::GET, "/console/app.js"),
            (Method::GET, "/favicon.ico"),
        ]
        .iter()
        .map(|(m, p)| route_label(m, p))
        .collect();
        assert_eq!(labels, HTTP_ROUTES.into_iter().collect());
    }

    #[test]
    fn a_fresh_registry_exposes_every_family_with_zeros() {
        let m = Metrics::new();
        m.report_written("MK:0001", true);
        let text = m.render();
        for name in [
            "cmpp_build_info",
            "cmpp_http_request_duration_seconds_bucket",
            "cmpp_stream_length",
            "cmpp_reports_unmatched_total 1",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        assert!(text.contains(r#"cmpp_reports_total{stat="other"} 1"#));
        assert!(text.contains(r#"cmpp_reports_total{stat="DELIVRD"} 0"#));
    }
}
