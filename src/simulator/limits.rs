//! One account's logged-in connections against `max_connections`, as a carrier counts them: the
//! live count the limit is checked against, the most seen at once, and the logins refused.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Live connections of one account. Only [`AccountSlots::try_take`] raises `live`, and only a
/// dropped `Admitted` (see `admission`) lowers it, so it counts logged-in connections exactly.
#[derive(Debug, Default)]
pub(crate) struct AccountSlots {
    live: AtomicU64,
    peak: AtomicU64,
    refused: AtomicU64,
}

/// One account's line in `/stats` `accounts` (keyed by SP id). Field names are part of the
/// control interface:
/// - `connections_live`: logged in and not yet closed;
/// - `connections_peak`: the most that were live at once since start;
/// - `logins_refused_max_connections`: logins refused with Status 5 because `connections_live`
///   had reached `max_connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountStats {
    pub connections_live: u64,
    pub connections_peak: u64,
    pub logins_refused_max_connections: u64,
}

impl AccountSlots {
    /// Takes a slot when fewer than `max` are live (0 = no limit) and returns the live count with
    /// it; `None` (counted as a refusal) when the account is full. The check and the increment
    /// are one atomic read-modify-write, so two logins racing for the last slot cannot both get it.
    pub fn try_take(&self, max: usize) -> Option<u64> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        let taken = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (max == 0 || live < max).then_some(live + 1)
            });
        match taken {
            Ok(before) => {
                self.peak.fetch_max(before + 1, Ordering::Relaxed);
                Some(before + 1)
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Gives back a slot taken with [`Self::try_take`].
    pub fn release(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn snapshot(&self) -> AccountStats {
        AccountStats {
            connections_live: self.live.load(Ordering::Acquire),
            connections_peak: self.peak.load(Ordering::Relaxed),
            logins_refused_max_connections: self.refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn the_limit_refuses_beyond_max_and_a_release_frees_a_slot() {
        let slots = AccountSlots::default();
        assert_eq!(slots.try_take(2), Some(1));
        assert_eq!(slots.try_take(2), Some(2));
        assert_eq!(slots.try_take(2), None);
        slots.release();
        assert_eq!(slots.try_take(2), Some(2));
        assert_eq!(
            slots.snapshot(),
            AccountStats {
                connections_live: 2,
                connections_peak: 2,
                logins_refused_max_connections: 1,
            }
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let slots = AccountSlots::default();
        for n in 1..=100 {
            assert_eq!(slots.try_take(0), Some(n));
        }
        assert_eq!(slots.snapshot().logins_refused_max_connections, 0);
    }

    /// Threads take and give back slots as fast as they can: the live count never passes the
    /// limit. This catches a check and an increment done apart only when the threads really run
    /// at once (not on a loaded machine); the concurrent-logins test in tests/simulator.rs
    /// catches them split by an await, the likelier mistake.
    #[test]
    fn racing_takers_never_exceed_the_limit() {
        const THREADS: usize = 4;
        const ROUNDS: usize = 200_000;
        let slots = Arc::new(AccountSlots::default());
        let start = Arc::new(Barrier::new(THREADS));
        let taken: usize = (0..THREADS)
            .map(|_| {
                let (slots, start) = (Arc::clone(&slots), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let mut taken = 0;
                    for _ in 0..ROUNDS {
                        if let Some(live) = slots.try_take(2) {
                            assert!(live <= 2, "{live} live with a limit of 2");
                            taken += 1;
                            slots.release();
                        }
                    }
                    taken
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        let stats = slots.snapshot();
        assert_eq!((stats.connections_live, stats.connections_peak), (0, 2));
        assert_eq!(
            taken as u64 + stats.logins_refused_max_connections,
            (THREADS * ROUNDS) as u64
        );
    }
}
