//! How the simulated ISMG judges one SUBMIT: window → flow control (ratio, rate) → dropped
//! response, in that order. Pure so the order is testable without sockets. Also the record kept of
//! each SUBMIT when `record_submits` is on.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::config::Behaviour;
use super::serde_fmt;

/// What happens to one SUBMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Result 8 because `window` submits were already unanswered.
    WindowViolation,
    /// Result 8 from flow_control_ratio or flow_control_above_rate.
    FlowControl,
    /// Result 0; with `drop_response` the SUBMIT_RESP is never sent (the report still follows).
    Accept { drop_response: bool },
}

/// flow_control_above_rate in fixed one-second windows per connection.
#[derive(Debug)]
pub(crate) struct RateWindow {
    start: Instant,
    admitted: u32,
}

impl RateWindow {
    pub fn new(now: Instant) -> RateWindow {
        RateWindow {
            start: now,
            admitted: 0,
        }
    }

    /// Whether one more submit fits this second's allowance of `rate`.
    fn admit(&mut self, rate: u32, now: Instant) -> bool {
        if now.duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.admitted = 0;
        }
        if self.admitted >= rate {
            return false;
        }
        self.admitted += 1;
        true
    }
}

/// `unanswered_before` counts this connection's submits still owed a response, not this one.
pub(crate) fn judge(
    b: &Behaviour,
    unanswered_before: usize,
    rate: &mut RateWindow,
    now: Instant,
    rng: &mut fastrand::Rng,
) -> Verdict {
    if b.window > 0 && unanswered_before >= b.window {
        return Verdict::WindowViolation;
    }
    // `rng.f64() < 0.0` is never true and `< 1.0` always is, so 0 and 1 are exact.
    if b.flow_control_ratio > 0.0 && rng.f64() < b.flow_control_ratio {
        return Verdict::FlowControl;
    }
    if b.flow_control_above_rate > 0 && !rate.admit(b.flow_control_above_rate, now) {
        return Verdict::FlowControl;
    }
    let drop_response = b.drop_response_ratio > 0.0 && rng.f64() < b.drop_response_ratio;
    Verdict::Accept { drop_response }
}

/// One SUBMIT as received, with what the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedSubmit {
    /// The simulator's id of the TCP connection (1, 2, … in accept order).
    pub connection: u64,
    pub sp_id: String,
    pub sequence_id: u32,
    pub dest_terminal_ids: Vec<String>,
    pub pk_total: u8,
    pub pk_number: u8,
    pub registered_delivery: u8,
    pub msg_fmt: u8,
    pub tp_udhi: u8,
    #[serde(serialize_with = "serde_fmt::hex_bytes")]
    pub msg_content: Vec<u8>,
    /// The Msg_Id the client was told: `None` when Result ≠ 0 or the response was dropped.
    pub msg_id: Option<u64>,
    /// The Msg_Id the simulator assigned (reports carry it), even when the response was dropped.
    pub assigned_msg_id: Option<u64>,
    pub result: u32,
    pub response_dropped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour() -> Behaviour {
        Behaviour::default()
    }

    #[test]
    fn window_is_checked_first() {
        let b = Behaviour {
            window: 2,
            flow_control_ratio: 1.0,
            ..behaviour()
        };
        let now = Instant::now();
        let mut rate = RateWindow::new(now);
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(
            judge(&b, 2, &mut rate, now, &mut rng),
            Verdict::WindowViolation
        );
        assert_eq!(judge(&b, 1, &mut rate, now, &mut rng), Verdict::FlowControl);
    }

    #[test]
    fn ratios_of_zero_and_one_are_exact() {
        let now = Instant::now();
        let mut rate = RateWindow::new(now);
        let mut rng = fastrand::Rng::with_seed(3);
        let dropping = Behaviour {
            drop_response_ratio: 1.0,
            ..behaviour()
        };
        for _ in 0..100 {
            assert_eq!(
                judge(&behaviour(), 0, &mut rate, now, &mut rng),
                Verdict::Accept {
                    drop_response: false
                }
            );
            assert_eq!(
                judge(&dropping, 0, &mut rate, now, &mut rng),
                Verdict::Accept {
                    drop_response: true
                }
            );
        }
    }

    #[test]
    fn rate_limit_resets_each_second() {
        let b = Behaviour {
            flow_control_above_rate: 2,
            ..behaviour()
        };
        let t0 = Instant::now();
        let mut rate = RateWindow::new(t0);
        let mut rng = fastrand::Rng::with_seed(3);
        let verdicts: Vec<_> = (0..3)
            .map(|_| judge(&b, 0, &mut rate, t0, &mut rng))
            .collect();
        assert_eq!(verdicts[2], Verdict::FlowControl);
        assert!(matches!(verdicts[1], Verdict::Accept { .. }));
        let later = t0 + Duration::from_secs(1);
        assert!(matches!(
            judge(&b, 0, &mut rate, later, &mut rng),
            Verdict::Accept { .. }
        ));
    }
}
