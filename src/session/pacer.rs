//! When the next submit may go out: the configured rate limit, and how the link adapts when the
//! ISMG answers Result 8 (flow control).
//!
//! The limit is a GCRA (virtual scheduling) with a small burst, so tokio's millisecond timer can
//! keep high rates without drifting.
//!
//! Result 8 is not always a sign of sending too fast: a carrier also answers it now and then
//! whatever the rate, and cutting the rate for each one would collapse throughput (at 10 %
//! Result 8, halving per occurrence held a link to a few messages a second). So the pacer judges
//! answers in intervals (≥ 100 ms and ≥ 30 answers, or 1 s): the share of Result 8 in calm
//! intervals is the carrier's baseline; an interval whose share is clearly above it (beyond
//! statistical noise) means we exceed its capacity. Then the limit is cut — multiplicative
//! decrease — to the rate the carrier accepted over the last second, scaled up by the baseline
//! share (the send rate that would meet only baseline refusals), between a quarter and nine
//! tenths of what was being sent. Carriers count per second, so once over budget everything is
//! refused until their second ends whatever we do: after a cut the next one waits a second.
//! Calm time adds 10 % per second of the rate at the last cut — additive increase — back up to
//! the configured limit (or, with none, until it is far above what we send, when the limit is
//! lifted).
//!
//! Segments answered Result 8 wait before their resubmission ([`Pacer::resubmit_pause`]: one
//! round trip, doubling per attempt up to a second), so one segment cannot burn its attempts in
//! a burst while a carrier's one-second budget is spent, yet a random refusal costs it only a
//! round trip.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const MIN_RATE: f64 = 1.0;
/// Burst as a share of the rate: 20 ms worth of sends.
const BURST_SECONDS: f64 = 0.02;
const INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(1);
const MIN_ANSWERS: u32 = 30;
/// Calm intervals remembered for the baseline.
const HISTORY: usize = 20;
/// Standard deviations above the baseline that mean congestion, and the least absolute margin.
const NOISE_SIGMAS: f64 = 4.0;
const MIN_MARGIN: f64 = 0.05;
const CUT_FLOOR: f64 = 0.25;
const CUT_CEILING: f64 = 0.9;
/// A carrier's accounting period: one cut per period.
const CUT_HOLD: Duration = Duration::from_secs(1);
/// Growth per second of calm, as a share of the rate at the last cut.
const INCREASE_PER_SECOND: f64 = 0.1;
/// Without a configured limit, the adaptive one is lifted once it is this far above what is sent.
const LIFT_ABOVE: f64 = 4.0;

const MAX_PAUSE: Duration = Duration::from_secs(1);
const MIN_PAUSE: Duration = Duration::from_micros(100);
/// Weight of the newest SUBMIT round trip in the smoothed one.
const RTT_GAIN: f64 = 0.125;

/// Answers and sends of one interval.
#[derive(Debug)]
struct Interval {
    start: Instant,
    sent: u32,
    answered: u32,
    refused: u32,
}

impl Interval {
    fn new(start: Instant) -> Interval {
        Interval {
            start,
            sent: 0,
            answered: 0,
            refused: 0,
        }
    }
}

/// What one past interval saw.
#[derive(Debug, Clone, Copy)]
struct Recent {
    start: Instant,
    end: Instant,
    sent: u32,
    accepted: u32,
}

#[derive(Debug)]
pub(crate) struct Pacer {
    /// Configured submits per second; 0 = unlimited.
    configured: f64,
    /// Limit in force; 0 = unlimited.
    current: f64,
    /// GCRA theoretical arrival time of the next send.
    tat: Instant,
    interval: Interval,
    /// Result-8 shares of recent calm intervals.
    calm: VecDeque<f64>,
    /// The limit just before the last cut: the additive step is a share of it.
    cut_from: f64,
    /// Smoothed SUBMIT round trip.
    rtt: Duration,
    /// Recent intervals, covering about the last second.
    recent: VecDeque<Recent>,
    last_cut: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(rate: u32, now: Instant) -> Pacer {
        Pacer {
            configured: f64::from(rate),
            current: f64::from(rate),
            tat: now,
            interval: Interval::new(now),
            calm: VecDeque::with_capacity(HISTORY),
            cut_from: 0.0,
            rtt: Duration::from_millis(1),
            recent: VecDeque::new(),
            last_cut: None,
        }
    }

    /// The wait before a segment answered Result 8 for the `attempt`-th time (from 1) is
    /// submitted again: a round trip, doubling per attempt, at most a second — so the default 30
    /// attempts outlast a carrier's one-second accounting window many times over.
    pub(crate) fn resubmit_pause(&self, attempt: u32) -> Duration {
        self.rtt
            .max(MIN_PAUSE)
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(MAX_PAUSE)
    }

    /// `None` when a submit may go now, else the instant it may.
    pub(crate) fn ready_at(&self, now: Instant) -> Option<Instant> {
        if self.current <= 0.0 {
            return None;
        }
        let tolerance =
            Duration::from_secs_f64((self.current * BURST_SECONDS).max(1.0) / self.current);
        let at = self.tat.checked_sub(tolerance).unwrap_or(self.tat);
        (at > now).then_some(at)
    }

    pub(crate) fn on_send(&mut self, now: Instant) {
        if self.current > 0.0 {
            self.tat = self.tat.max(now) + Duration::from_secs_f64(1.0 / self.current);
        }
        self.interval.sent += 1;
    }

    /// The ISMG answered Result 8, `rtt` after the send.
    pub(crate) fn on_flow_control(&mut self, now: Instant, rtt: Duration) {
        self.interval.refused += 1;
        self.on_answer(now, rtt);
    }

    /// A submit was accepted, `rtt` after the send.
    pub(crate) fn on_accept(&mut self, now: Instant, rtt: Duration) {
        self.on_answer(now, rtt);
    }

    /// Whether flow control has the limit below its configured value.
    #[cfg(test)]
    fn is_slowed(&self) -> bool {
        self.current != self.configured
    }

    fn on_answer(&mut self, now: Instant, rtt: Duration) {
        self.rtt = self.rtt.mul_f64(1.0 - RTT_GAIN) + rtt.mul_f64(RTT_GAIN);
        self.interval.answered += 1;
        let elapsed = now.saturating_duration_since(self.interval.start);
        let long_enough = elapsed >= INTERVAL && self.interval.answered >= MIN_ANSWERS;
        if long_enough || elapsed >= MAX_INTERVAL {
            let i = &self.interval;
            self.recent.push_back(Recent {
                start: i.start,
                end: now,
                sent: i.sent,
                accepted: i.answered - i.refused,
            });
            while self
                .recent
                .front()
                .is_some_and(|r| now.saturating_duration_since(r.start) > MAX_INTERVAL)
                && self.recent.len() > 1
            {
                self.recent.pop_front();
            }
            self.judge(now, elapsed);
            self.interval = Interval::new(now);
        }
    }

    /// The Result-8 share calm intervals show: the carrier's refusals that sending slower would
    /// not avoid. The lowest recent share, so that congested stretches do not raise it.
    fn baseline(&self) -> f64 {
        self.calm
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(1.0)
    }

    fn judge(&mut self, now: Instant, elapsed: Duration) {
        let Interval {
            sent,
            answered,
            refused,
            ..
        } = self.interval;
        let share = f64::from(refused) / f64::from(answered);
        // Until some calm interval was seen, any clear share of Result 8 is congestion.
        let baseline = match self.baseline() {
            b if b.is_finite() => b,
            _ => 0.0,
        };
        let noise = (baseline.max(0.01) * (1.0 - baseline) / f64::from(answered)).sqrt();
        let congested = share > baseline + (NOISE_SIGMAS * noise).max(MIN_MARGIN);
        let sending = f64::from(sent) / elapsed.as_secs_f64();
        if !congested {
            if self.calm.len() == HISTORY {
                self.calm.pop_front();
            }
            self.calm.push_back(share);
            self.increase(sending, elapsed);
            return;
        }
        // The carrier's period that refused us is not over yet: the last cut shows next period.
        if self.last_cut.is_some_and(|at| now < at + CUT_HOLD) {
            return;
        }
        self.last_cut = Some(now);
        let accepting = self.last_second(|r| r.accepted);
        let sent_recently = self.last_second(|r| r.sent).max(MIN_RATE);
        let from = if self.current > 0.0 {
            self.current
        } else {
            sent_recently
        };
        // What the carrier accepted says what it takes only while we offered it enough; after
        // a refused burst the segments wait out their pauses and little is sent, and then only
        // the mild cut applies.
        let target = if sent_recently >= from * 0.5 {
            accepting / (1.0 - baseline).max(0.05)
        } else {
            from * CUT_CEILING
        };
        self.cut_from = from;
        self.current = target
            .clamp(from * CUT_FLOOR, from * CUT_CEILING)
            .max(MIN_RATE);
        if self.configured > 0.0 {
            self.current = self.current.min(self.configured);
        }
        tracing::debug!(
            share,
            baseline,
            sent_recently,
            accepting,
            limit = self.current,
            "Result 8 above the carrier's baseline; rate limit cut"
        );
    }

    /// A count per second over the intervals of about the last second.
    fn last_second(&self, count: impl Fn(&Recent) -> u32) -> f64 {
        let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) else {
            return 0.0;
        };
        let span = last
            .end
            .saturating_duration_since(first.start)
            .as_secs_f64();
        let total: u32 = self.recent.iter().map(count).sum();
        if span > 0.0 {
            f64::from(total) / span
        } else {
            0.0
        }
    }

    fn increase(&mut self, sending: f64, calm: Duration) {
        if self.current <= 0.0 || !(self.current < self.configured || self.configured == 0.0) {
            return;
        }
        self.current += (self.cut_from * INCREASE_PER_SECOND * calm.as_secs_f64()).max(MIN_RATE);
        if self.configured > 0.0 {
            self.current = self.current.min(self.configured);
        } else if self.current > sending * LIFT_ABOVE && self.current > self.cut_from * 2.0 {
            self.current = 0.0;
        }
    }

    #[cfg(test)]
    fn current_rate(&self) -> f64 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends as fast as the pacer allows for `span`, returning how many went out.
    fn drive(p: &mut Pacer, start: Instant, span: Duration) -> u32 {
        let mut now = start;
        let mut sent = 0;
        while now < start + span {
            match p.ready_at(now) {
                None => {
                    p.on_send(now);
                    sent += 1;
                }
                Some(at) => now = at.max(now + Duration::from_micros(1)),
            }
        }
        sent
    }

    #[test]
    fn unlimited_never_waits() {
        let now = Instant::now();
        let mut p = Pacer::new(0, now);
        for _ in 0..10_000 {
            assert_eq!(p.ready_at(now), None);
            p.on_send(now);
        }
    }

    #[test]
    fn holds_the_configured_rate() {
        let start = Instant::now();
        let mut p = Pacer::new(1_000, start);
        let sent = drive(&mut p, start, Duration::from_secs(10));
        // 10 s at 1 000/s, plus at most the 20-send burst.
        assert!((10_000..=10_021).contains(&sent), "sent {sent}");
    }

    #[test]
    fn resubmit_pauses_start_at_a_round_trip_and_double_to_a_second() {
        let now = Instant::now();
        let mut p = Pacer::new(0, now);
        for _ in 0..100 {
            p.on_accept(now, Duration::from_millis(10));
        }
        let first = p.resubmit_pause(1);
        assert!(
            first.abs_diff(Duration::from_millis(10)) < Duration::from_micros(100),
            "{first:?}"
        );
        assert_eq!(p.resubmit_pause(2), first * 2);
        assert_eq!(p.resubmit_pause(8), MAX_PAUSE);
        assert_eq!(p.resubmit_pause(30), MAX_PAUSE);
    }

    /// A carrier in simulated time: it refuses every submit beyond `capacity` in each one-second
    /// window (0 = no limit) and a random `refuse` share of the rest, answering each submit after
    /// 1 ms; a client with window 16 sends as fast as the pacer lets it. Returns the accepted
    /// submits per second over the last `measure` of `total`, and the pacer.
    fn carrier(
        rate: u32,
        capacity: u32,
        refuse: f64,
        total: Duration,
        measure: Duration,
    ) -> (f64, Pacer) {
        let rtt = Duration::from_millis(1);
        let start = Instant::now();
        let mut p = Pacer::new(rate, start);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut in_flight: VecDeque<Instant> = VecDeque::new();
        let (mut window_start, mut in_window) = (start, 0u32);
        let mut accepted = 0u32;
        let mut now = start;
        while now < start + total {
            while in_flight.front().is_some_and(|t| *t + rtt <= now) {
                let sent_at = in_flight.pop_front().unwrap_or(now);
                if sent_at >= window_start + Duration::from_secs(1) {
                    window_start = sent_at;
                    in_window = 0;
                }
                in_window += 1;
                let over = capacity > 0 && in_window > capacity;
                if over || rng.f64() < refuse {
                    p.on_flow_control(now, rtt);
                } else {
                    p.on_accept(now, rtt);
                    if now >= start + total - measure {
                        accepted += 1;
                    }
                }
            }
            if in_flight.len() < 16 && p.ready_at(now).is_none() {
                p.on_send(now);
                in_flight.push_back(now);
                continue;
            }
            let next_answer = in_flight.front().map(|t| *t + rtt);
            let next_send = p.ready_at(now);
            now = [next_answer, next_send]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + rtt)
                .max(now + Duration::from_micros(10));
        }
        (f64::from(accepted) / measure.as_secs_f64(), p)
    }

    #[test]
    fn random_result_8_alone_does_not_slow_the_link() {
        // No capacity limit: the window bounds the rate at 16 per 1 ms round trip.
        let ceiling = 16_000.0;
        for refuse in [0.1, 0.3] {
            let (accepted, p) =
                carrier(0, 0, refuse, Duration::from_secs(5), Duration::from_secs(3));
            let ideal = (1.0 - refuse) * ceiling;
            assert!(
                accepted >= 0.9 * ideal,
                "{refuse}: {accepted:.0}/s of {ideal:.0}/s"
            );
            assert!(!p.is_slowed() || p.current_rate() > ceiling, "{p:?}");
        }
    }

    #[test]
    fn a_capacity_limit_is_found_and_held() {
        for (capacity, refuse) in [(2_000, 0.0), (2_000, 0.1), (2_000, 0.3), (5_000, 0.1)] {
            let (accepted, _) = carrier(
                0,
                capacity,
                refuse,
                Duration::from_secs(20),
                Duration::from_secs(10),
            );
            let ideal = (1.0 - refuse) * f64::from(capacity);
            assert!(
                accepted >= 0.85 * ideal && accepted <= 1.01 * ideal,
                "{capacity}/s at {refuse}: {accepted:.0}/s accepted of {ideal:.0}/s"
            );
        }
    }

    #[test]
    fn a_configured_rate_is_never_exceeded_and_comes_back_after_a_cut() {
        let (accepted, p) = carrier(
            3_000,
            2_000,
            0.0,
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert!((1_700.0..=2_001.0).contains(&accepted), "{accepted:.0}/s");
        assert!(p.current_rate() <= 3_000.0);
        // Without the capacity limit the configured rate is reached again.
        let (accepted, p) = carrier(
            3_000,
            0,
            0.0,
            Duration::from_secs(5),
            Duration::from_secs(3),
        );
        assert!(accepted >= 2_900.0, "{accepted:.0}/s");
        assert!(!p.is_slowed());
    }
}
