//! Reconnect delays: exponential with jitter, and never short after a refused login, because a
//! real ISMG locks accounts that retry a bad password quickly.

use std::time::Duration;

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

    #[test]
    fn auth_failures_wait_at_least_the_maximum() {
        for _ in 0..50 {
            let d = reconnect_delay(0, MIN, MAX, true);
            assert!(d >= MAX && d <= MAX + MAX / 4, "{d:?}");
        }
    }
}
