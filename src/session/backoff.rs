//! Reconnect delays: exponential with jitter, and never short after a refused login, because a
//! real ISMG locks accounts that retry a bad password quickly. A connection that ends soon after
//! its login counts as a failure too, so a link that flaps (an ISMG that drops us on every
//! login) backs off like one that cannot log in; only a connection that stayed up for
//! `reconnect_reset_after` starts the back-off over.

use std::time::Duration;

use super::config::LinkConfig;

/// The back-off state of one link, across its connections.
#[derive(Debug, Default)]
pub(crate) struct Reconnects {
    /// Failures in a row: refused or failed logins, and connections that did not stay up.
    failures: u32,
}

impl Reconnects {
    /// The wait after a failed login.
    pub(crate) fn after_login_failure(&mut self, config: &LinkConfig, auth: bool) -> Duration {
        self.next(config, auth)
    }

    /// The wait after a connection that was up for `up_for` ended.
    pub(crate) fn after_connection(&mut self, config: &LinkConfig, up_for: Duration) -> Duration {
        if up_for >= config.reconnect_reset_after {
            self.failures = 0;
        }
        self.next(config, false)
    }

    fn next(&mut self, c: &LinkConfig, auth: bool) -> Duration {
        let delay = reconnect_delay(self.failures, c.reconnect_min, c.reconnect_max, auth);
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

/// The wait before reconnect attempt `attempt` (0 = first retry).
pub(crate) fn reconnect_delay(
    attempt: u32,
    min: Duration,
    max: Duration,
    auth_failure: bool,
) -> Duration {
    let max = max.max(min);
    if auth_failure {
        // At least the maximum, plus up to a quarter more so many gateways do not retry in step.
        return max + max.mul_f64(fastrand::f64() * 0.25);
    }
    let base = min.saturating_mul(1u32 << attempt.min(20)).min(max);
    // "Equal jitter": half fixed, half random, and never below the minimum.
    (base / 2 + base.mul_f64(fastrand::f64() / 2.0)).max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn grows_exponentially_within_bounds() {
        for attempt in 0..40 {
            let base = MIN.saturating_mul(1 << attempt.min(20)).min(MAX);
            for _ in 0..50 {
                let d = reconnect_delay(attempt, MIN, MAX, false);
                assert!(
                    d >= MIN && d >= base / 2 && d <= base,
                    "attempt {attempt}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| reconnect_delay(5, MIN, MAX, false))
            .collect();
        assert!(delays.len() > 1);
    }

    fn config() -> LinkConfig {
        let mut c = LinkConfig::new("127.0.0.1:7890", "900001", crate::secret::Secret::new("x"));
        c.reconnect_min = MIN;
        c.reconnect_max = MAX;
        c.reconnect_reset_after = Duration::from_secs(30);
        c
    }

    /// Base delay of the n-th failure in a row (jitter takes at most half off).
    fn base(n: u32) -> Duration {
        MIN.saturating_mul(1 << n).min(MAX)
    }

    #[test]
    fn connections_that_end_soon_after_login_back_off_like_failed_logins() {
        let c = config();
        let mut r = Reconnects::default();
        for n in 0..10 {
            let d = r.after_connection(&c, Duration::from_millis(50));
            assert!(d >= base(n) / 2 && d <= base(n), "drop {n}: {d:?}");
        }
        // The ceiling holds.
        assert!(r.after_connection(&c, Duration::from_secs(1)) <= MAX);
    }

    #[test]
    fn only_a_connection_that_stayed_up_resets_the_back_off() {
        let c = config();
        let mut r = Reconnects::default();
        for _ in 0..6 {
            r.after_login_failure(&c, false);
        }
        // A login that works but drops at once does not start over.
        let d = r.after_connection(&c, Duration::from_secs(29));
        assert!(d >= base(6) / 2, "{d:?}");
        let d = r.after_connection(&c, Duration::from_secs(30));
        assert!(d <= base(0), "{d:?}");
        let d = r.after_connection(&c, Duration::from_secs(1));
        assert!(d >= base(1) / 2 && d <= base(1), "{d:?}");
    }

    #[test]
    fn auth_failures_wait_at_least_the_maximum() {
        for _ in 0..50 {
            let d = reconnect_delay(0, MIN, MAX, true);
            assert!(d >= MAX && d <= MAX + MAX / 4, "{d:?}");
        }
    }
}
