//! When the next submit may go out: the configured rate limit, and the slowdown after the ISMG
//! answers Result 8 (flow control).
//!
//! The limit is a GCRA (virtual scheduling) with a small burst, so tokio's millisecond timer can
//! keep high rates without drifting. On Result 8 the pacer pauses for a back-off that doubles
//! while Result 8 keeps coming, and halves the send rate (at most once per back-off period, so
//! one burst of Result 8s does not collapse it). While no Result 8 comes, the rate grows back by
//! a quarter every 100 ms until it reaches the configured limit (or, with no limit, until it is
//! well above the rate at which the ISMG first pushed back).

use std::time::Duration;

use tokio::time::Instant;

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const RECOVERY_STEP: Duration = Duration::from_millis(100);
const MIN_RATE: f64 = 1.0;
/// Burst as a share of the rate: 20 ms worth of sends.
const BURST_SECONDS: f64 = 0.02;

#[derive(Debug)]
pub(crate) struct Pacer {
    /// Configured submits per second; 0 = unlimited.
    configured: f64,
    /// Rate in force; 0 = unlimited.
    current: f64,
    /// GCRA theoretical arrival time of the next send.
    tat: Instant,
    paused_until: Instant,
    backoff: Duration,
    /// The last time the rate was cut, to cut once per back-off period.
    last_cut: Option<Instant>,
    /// The unlimited-mode rate at the first cut; recovery returns to unlimited above twice this.
    cut_from: f64,
    next_recovery: Instant,
    /// Sends counted in the current and previous second, to know the rate to cut from.
    window_start: Instant,
    sent_this_window: u32,
    sent_last_window: u32,
}

impl Pacer {
    pub(crate) fn new(rate: u32, now: Instant) -> Pacer {
        Pacer {
            configured: f64::from(rate),
            current: f64::from(rate),
            tat: now,
            paused_until: now,
            backoff: MIN_BACKOFF,
            last_cut: None,
            cut_from: 0.0,
            next_recovery: now,
            window_start: now,
            sent_this_window: 0,
            sent_last_window: 0,
        }
    }

    /// `None` when a submit may go now, else the instant it may.
    pub(crate) fn ready_at(&self, now: Instant) -> Option<Instant> {
        let mut at = self.paused_until;
        if self.current > 0.0 {
            let tolerance =
                Duration::from_secs_f64((self.current * BURST_SECONDS).max(1.0) / self.current);
            at = at.max(self.tat.checked_sub(tolerance).unwrap_or(self.tat));
        }
        (at > now).then_some(at)
    }

    pub(crate) fn on_send(&mut self, now: Instant) {
        if self.current > 0.0 {
            self.tat = self.tat.max(now) + Duration::from_secs_f64(1.0 / self.current);
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.sent_last_window = self.sent_this_window;
            self.sent_this_window = 0;
            self.window_start = now;
        }
        self.sent_this_window += 1;
    }

    /// The ISMG answered Result 8.
    pub(crate) fn on_flow_control(&mut self, now: Instant) {
        let in_same_episode = self.last_cut.is_some_and(|t| now < t + self.backoff);
        if in_same_episode {
            return;
        }
        if self.last_cut.is_some_and(|t| now < t + self.backoff * 4) {
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        } else {
            self.backoff = MIN_BACKOFF;
        }
        self.paused_until = now + self.backoff;
        self.last_cut = Some(now);
        let from = if self.current > 0.0 {
            self.current
        } else {
            let observed = f64::from(self.sent_this_window.max(self.sent_last_window));
            self.cut_from = observed;
            observed
        };
        self.current = (from / 2.0).max(MIN_RATE);
        self.tat = self.tat.max(self.paused_until);
        self.next_recovery = self.paused_until + RECOVERY_STEP;
    }

    /// A submit was accepted: grow the rate back if it was cut.
    pub(crate) fn on_accept(&mut self, now: Instant) {
        if now < self.next_recovery || !self.is_slowed() {
            return;
        }
        self.next_recovery = now + RECOVERY_STEP;
        self.current *= 1.25;
        if self.configured > 0.0 && self.current >= self.configured {
            self.current = self.configured;
        } else if self.configured == 0.0 && self.current >= self.cut_from * 2.0 {
            self.current = 0.0;
        }
    }

    /// Whether flow control has the rate below its configured value.
    pub(crate) fn is_slowed(&self) -> bool {
        self.current != self.configured
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
    fn flow_control_pauses_halves_and_recovers() {
        let start = Instant::now();
        let mut p = Pacer::new(1_000, start);
        drive(&mut p, start, Duration::from_millis(500));
        let t = start + Duration::from_millis(500);
        p.on_flow_control(t);
        assert!(p.ready_at(t).is_some_and(|at| at >= t + MIN_BACKOFF));
        assert_eq!(p.current_rate(), 500.0);
        // More Result 8s in the same episode do not cut again.
        p.on_flow_control(t + Duration::from_millis(1));
        assert_eq!(p.current_rate(), 500.0);
        // Accepts after the pause ramp the rate back to the configured limit, never above.
        let mut now = t + MIN_BACKOFF;
        for _ in 0..100 {
            now += RECOVERY_STEP;
            p.on_accept(now);
        }
        assert_eq!(p.current_rate(), 1_000.0);
        assert!(!p.is_slowed());
    }

    #[test]
    fn repeated_flow_control_backs_off_longer() {
        let start = Instant::now();
        let mut p = Pacer::new(0, start);
        for _ in 0..100 {
            p.on_send(start);
        }
        p.on_flow_control(start);
        let first = p.backoff;
        let t2 = start + first;
        p.on_flow_control(t2);
        assert_eq!(p.backoff, first * 2);
        // Unlimited mode cut from the observed rate (100 in this second) to half.
        assert!(p.current_rate() <= 50.0 && p.current_rate() >= MIN_RATE);
        // Much later, an isolated Result 8 starts again from the minimum back-off.
        p.on_flow_control(t2 + Duration::from_secs(30));
        assert_eq!(p.backoff, MIN_BACKOFF);
    }
}
