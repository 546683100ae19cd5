//! Samples Redis every `interval` for the stream gauges. Sampling, not counting per request,
//! keeps the cost fixed however busy the gateway is; every instance samples the same shared
//! streams, and Prometheus' `instance` label tells their (equal) series apart.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Metrics, STREAMS};
use crate::store::{GroupBacklog, Store};

/// The `stream` label of a channel's outbound stream: `mt` for the default channel (as before
/// channels existed), `mt:<name>` for the others.
pub fn outbound_label(channel: &str, default: bool) -> String {
    if default {
        "mt".to_owned()
    } else {
        format!("mt:{channel}")
    }
}

/// `outbound`: each channel's (label, stream key).
pub async fn run(
    store: Store,
    group: String,
    outbound: Vec<(String, String)>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let f = &metrics.families;
    let streams: Vec<String> = outbound.iter().map(|(_, key)| key.clone()).collect();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let sample = tokio::select! {
            sample = store.sample_streams(&streams, &group) => sample,
            () = shutdown.cancelled() => return,
        };
        match sample {
            Ok(s) => {
                for (stream, len) in STREAMS[1..].iter().zip(s.lengths) {
                    f.stream_length.with_label_values(&[stream]).set(len as i64);
                }
                for ((label, _), (len, group)) in outbound.iter().zip(s.outbound) {
                    let label = label.as_str();
                    f.stream_length.with_label_values(&[label]).set(len as i64);
                    // Before the group exists every entry is waiting, as `Store::backlog`
                    // counts it.
                    let group = group.unwrap_or(GroupBacklog {
                        pending: 0,
                        lag: len,
                    });
                    f.group_pending
                        .with_label_values(&[label])
                        .set(group.pending as i64);
                    f.group_lag
                        .with_label_values(&[label])
                        .set(group.lag as i64);
                }
                f.mo_reassembly_pending.set(s.mo_pending as i64);
                f.reports_held.set(s.reports_held as i64);
            }
            Err(e) => {
                // The last values stay; the error counter and the Redis alerts tell the rest.
                f.sample_errors.inc();
                tracing::debug!(error = %e, "cannot sample the streams");
            }
        }
    }
}
