//! Recent rates for `GET /v1/link`: a task started by [`serve`](super::serve) samples the link's
//! counters once a second and keeps the last ten samples; a request divides the difference
//! between the counters now and the oldest kept sample by the time between them. So the rates
//! cover the last ~10 s whatever the polling cadence, and cost a request no Redis or lock wait
//! beyond a short mutex.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::HttpState;
use crate::session::LinkStatsSnapshot;

/// How far back the rates look.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The counters the rates are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub submits_sent: u64,
    pub submits_ok: u64,
    pub delivers_received: u64,
    pub reports_received: u64,
}

impl From<&LinkStatsSnapshot> for Counters {
    fn from(s: &LinkStatsSnapshot) -> Counters {
        Counters {
            submits_sent: s.submits_sent,
            submits_ok: s.submits_ok,
            delivers_received: s.delivers_received,
            reports_received: s.reports_received,
        }
    }
}

/// Per-second rates over `window_s` seconds (the span actually covered, at most ~10).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    pub window_s: f64,
    /// SUBMITs answered with Result 0.
    pub submits_ok_per_s: f64,
    /// SUBMITs written to the socket, retransmits included.
    pub submits_sent_per_s: f64,
    pub delivers_per_s: f64,
    pub reports_per_s: f64,
}

/// The last samples, oldest first.
#[derive(Debug, Default)]
pub struct RateSampler {
    samples: VecDeque<(Instant, Counters)>,
}

impl RateSampler {
    pub fn record(&mut self, at: Instant, counters: Counters) {
        self.samples.push_back((at, counters));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Rates from the oldest kept sample to `now`; `None` before any sample or within 100 ms of it.
    pub fn rates(&self, now: Instant, current: Counters) -> Option<Rates> {
        let (then, old) = self.samples.front()?;
        let secs = now.saturating_duration_since(*then).as_secs_f64();
        if secs < 0.1 {
            return None;
        }
        let per_s = |new: u64, old: u64| round2(new.saturating_sub(old) as f64 / secs);
        Some(Rates {
            window_s: round2(secs),
            submits_ok_per_s: per_s(current.submits_ok, old.submits_ok),
            submits_sent_per_s: per_s(current.submits_sent, old.submits_sent),
            delivers_per_s: per_s(current.delivers_received, old.delivers_received),
            reports_per_s: per_s(current.reports_received, old.reports_received),
        })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Samples the link's counters every second until shutdown, from when the state is connected.
/// Does nothing without a link.
pub async fn run_sampler(state: Arc<HttpState>, shutdown: CancellationToken) {
    tokio::select! {
        () = state.wait_connected() => {}
        () = shutdown.cancelled() => return,
    }
    let Some(link) = state.link() else {
        return;
    };
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let counters = Counters::from(&link.stats().snapshot());
                let mut sampler = state.rates().lock().unwrap_or_else(|p| p.into_inner());
                sampler.record(Instant::now(), counters);
            }
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(n: u64) -> Counters {
        Counters {
            submits_sent: n,
            submits_ok: n,
            delivers_received: 0,
            reports_received: n / 2,
        }
    }

    #[test]
    fn rates_cover_the_last_ten_seconds() {
        let start = Instant::now();
        let mut s = RateSampler::default();
        assert_eq!(s.rates(start, ok(0)), None);
        // 100 submits a second for 20 s, then nothing for 5 s.
        for sec in 0..=20 {
            s.record(start + Duration::from_secs(sec), ok(sec * 100));
        }
        let r = s.rates(start + Duration::from_secs(20), ok(2000)).unwrap();
        assert_eq!(
            (r.window_s, r.submits_ok_per_s, r.reports_per_s),
            (10.0, 100.0, 50.0)
        );
        for sec in 21..=25 {
            s.record(start + Duration::from_secs(sec), ok(2000));
        }
        let r = s.rates(start + Duration::from_secs(25), ok(2000)).unwrap();
        assert_eq!((r.window_s, r.submits_ok_per_s), (10.0, 50.0));
        assert_eq!(r.delivers_per_s, 0.0);
    }
}
