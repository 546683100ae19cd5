//! Recent rates for `GET /v1/link` and `GET /v1/stats`: a task started by
//! [`serve`](super::serve) samples the counters of every link this process holds once a second
//! and keeps each one's last ten samples; a request divides the difference between a link's
//! counters now and its oldest kept sample by the time between them. So the rates cover the last
//! ~10 s whatever the polling cadence, and cost a request no Redis or lock wait beyond a short
//! mutex. Links come and go with their connection slots' leases, so the set is read afresh on
//! every tick.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::HttpState;
use crate::session::{HeldLink, LinkStatsSnapshot};

/// How far back the rates look.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The counters the rates are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

impl Counters {
    /// A held link's counters now.
    pub fn of(held: &HeldLink) -> Counters {
        Counters::from(&held.link.stats().snapshot())
    }

    /// True when any counter is below `earlier`'s: these are another link's counters.
    fn went_back_from(&self, earlier: &Counters) -> bool {
        self.submits_sent < earlier.submits_sent
            || self.submits_ok < earlier.submits_ok
            || self.delivers_received < earlier.delivers_received
            || self.reports_received < earlier.reports_received
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

impl Rates {
    /// Several links' rates added up (over the longest window among them); `None` when none
    /// has rates yet.
    pub fn total(rates: impl IntoIterator<Item = Rates>) -> Option<Rates> {
        rates.into_iter().reduce(|a, b| Rates {
            window_s: a.window_s.max(b.window_s),
            submits_ok_per_s: round2(a.submits_ok_per_s + b.submits_ok_per_s),
            submits_sent_per_s: round2(a.submits_sent_per_s + b.submits_sent_per_s),
            delivers_per_s: round2(a.delivers_per_s + b.delivers_per_s),
            reports_per_s: round2(a.reports_per_s + b.reports_per_s),
        })
    }
}

/// A held connection: its channel and slot.
pub type SlotKey = (String, u32);

/// The last samples of each held link, oldest first.
#[derive(Debug, Default)]
pub struct RateSampler {
    slots: HashMap<SlotKey, VecDeque<(Instant, Counters)>>,
}

impl RateSampler {
    /// One sample of every link held now; slots no longer held are forgotten.
    pub fn record(&mut self, at: Instant, held: &[(SlotKey, Counters)]) {
        self.slots
            .retain(|key, _| held.iter().any(|(k, _)| k == key));
        for (key, counters) in held {
            let samples = self.slots.entry(key.clone()).or_default();
            // A slot given up and leased again between two ticks holds a new link whose
            // counters restart at zero: against the old samples every rate would read zero.
            if samples
                .back()
                .is_some_and(|(_, last)| counters.went_back_from(last))
            {
                samples.clear();
            }
            samples.push_back((at, *counters));
            while samples
                .front()
                .is_some_and(|(t, _)| at.saturating_duration_since(*t) > RATE_WINDOW)
            {
                samples.pop_front();
            }
        }
    }

    /// The rates of the link on `key` from its oldest kept sample to `now`; `None` before any
    /// sample or within 100 ms of it.
    pub fn rates(&self, key: &SlotKey, now: Instant, current: Counters) -> Option<Rates> {
        let (then, old) = self.slots.get(key)?.front()?;
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

/// Every link this process holds now, with its counters and its rates (by channel, then slot).
pub fn held_with_rates(state: &HttpState) -> Vec<(HeldLink, Counters, Option<Rates>)> {
    let held = state.links().map(|l| l.snapshot()).unwrap_or_default();
    let now = Instant::now();
    let sampler = state.rates().lock().unwrap_or_else(|p| p.into_inner());
    held.into_iter()
        .map(|h| {
            let counters = Counters::of(&h);
            let rates = sampler.rates(&(h.channel.clone(), h.slot), now, counters);
            (h, counters, rates)
        })
        .collect()
}

/// Samples the counters of every held link each second until shutdown, from when the state is
/// connected. Does nothing on an instance without links.
pub async fn run_sampler(state: Arc<HttpState>, shutdown: CancellationToken) {
    tokio::select! {
        () = state.wait_connected() => {}
        () = shutdown.cancelled() => return,
    }
    // The set, not one link: at start-up no slot is leased yet, and slots change hands later.
    let Some(links) = state.links() else {
        return;
    };
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let held: Vec<(SlotKey, Counters)> = links
                    .snapshot()
                    .iter()
                    .map(|h| ((h.channel.clone(), h.slot), Counters::of(h)))
                    .collect();
                let mut sampler = state.rates().lock().unwrap_or_else(|p| p.into_inner());
                sampler.record(Instant::now(), &held);
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

    fn key(slot: u32) -> SlotKey {
        ("default".to_owned(), slot)
    }

    #[test]
    fn rates_cover_the_last_ten_seconds() {
        let start = Instant::now();
        let mut s = RateSampler::default();
        assert_eq!(s.rates(&key(0), start, ok(0)), None);
        // 100 submits a second for 20 s, then nothing for 5 s.
        for sec in 0..=20 {
            s.record(start + Duration::from_secs(sec), &[(key(0), ok(sec * 100))]);
        }
        let r = s
            .rates(&key(0), start + Duration::from_secs(20), ok(2000))
            .unwrap();
        assert_eq!(
            (r.window_s, r.submits_ok_per_s, r.reports_per_s),
            (10.0, 100.0, 50.0)
        );
        for sec in 21..=25 {
            s.record(start + Duration::from_secs(sec), &[(key(0), ok(2000))]);
        }
        let r = s
            .rates(&key(0), start + Duration::from_secs(25), ok(2000))
            .unwrap();
        assert_eq!((r.window_s, r.submits_ok_per_s), (10.0, 50.0));
        assert_eq!(r.delivers_per_s, 0.0);
    }

    #[test]
    fn each_slot_has_its_own_rates_and_a_new_link_starts_afresh() {
        let start = Instant::now();
        let at = |sec| start + Duration::from_secs(sec);
        let mut s = RateSampler::default();
        for sec in 0..=10 {
            s.record(
                at(sec),
                &[(key(0), ok(sec * 10)), (key(1), ok(1000 + sec * 30))],
            );
        }
        let slot0 = s.rates(&key(0), at(10), ok(100)).unwrap();
        let slot1 = s.rates(&key(1), at(10), ok(1300)).unwrap();
        assert_eq!(
            (slot0.submits_ok_per_s, slot1.submits_ok_per_s),
            (10.0, 30.0)
        );
        let both = Rates::total([slot0, slot1]).unwrap();
        assert_eq!((both.window_s, both.submits_ok_per_s), (10.0, 40.0));
        assert_eq!(Rates::total([]), None);

        // Slot 1 released: forgotten. Slot 0 leased again: a link counting from zero.
        s.record(at(11), &[(key(0), ok(5))]);
        assert_eq!(s.rates(&key(1), at(11), ok(1330)), None);
        assert_eq!(
            s.rates(&key(0), at(11), ok(5)),
            None,
            "one sample, no span yet"
        );
        s.record(at(12), &[(key(0), ok(25))]);
        let r = s.rates(&key(0), at(12), ok(25)).unwrap();
        assert_eq!((r.window_s, r.submits_ok_per_s), (1.0, 20.0));
    }
}
