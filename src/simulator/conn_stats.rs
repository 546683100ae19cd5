//! Per-connection counters for `/stats`: each live connection, and the last [`CLOSED_KEPT`]
//! closed ones, with what it received and what it was answered.
//!
//! A connection's task is the only writer of its [`ConnectionMeter`]: relaxed atomics, a few per
//! SUBMIT, no lock on the hot path. The registry's lock is taken at login, at close and by
//! `/stats`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::protocol::Version;

/// Closed connections kept for `/stats`, oldest dropped first: enough to see what happened to
/// the connections of a reconnect storm without growing with every reconnect.
pub(crate) const CLOSED_KEPT: usize = 64;

/// One connection's line in `/stats` `connections`. The field names are part of the control
/// interface and stay stable:
/// - `id`: the simulator's connection id (1, 2, … in accept order; `connection` in `/submits`);
/// - `sp_id`: the account (the CONNECT's Source_Addr);
/// - `version`: what the session speaks, `"3.0"` or `"2.0"`;
/// - `peer`: the client's address, `ip:port`;
/// - `logged_in_at`, `closed_at`: RFC 3339 UTC times; `closed_at` is null while live;
/// - `closed`: false for a live connection;
/// - `submits_received`: SUBMITs read on this connection;
/// - `flow_control_sent`: SUBMIT_RESPs with Result 8 (window, ratio and rate alike);
/// - `submits_last_second`: SUBMITs received in the last full second, seconds counted from the
///   login (a rate per connection); for a closed connection, as it was when it closed;
/// - `delivers_sent`: DELIVERs written (reports and MO, resends included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    pub id: u64,
    pub sp_id: String,
    pub version: String,
    pub peer: String,
    pub logged_in_at: String,
    pub closed: bool,
    pub closed_at: Option<String>,
    pub submits_received: u64,
    pub flow_control_sent: u64,
    pub submits_last_second: u64,
    pub delivers_sent: u64,
}

/// The live counters of one connection.
#[derive(Debug)]
pub(crate) struct ConnectionMeter {
    id: u64,
    sp_id: String,
    version: Version,
    peer: SocketAddr,
    logged_in_at: SystemTime,
    submits_received: AtomicU64,
    flow_control_sent: AtomicU64,
    delivers_sent: AtomicU64,
    rate: RateMeter,
}

impl ConnectionMeter {
    pub fn new(id: u64, sp_id: &str, version: Version, peer: SocketAddr, now: Instant) -> Self {
        ConnectionMeter {
            id,
            sp_id: sp_id.to_owned(),
            version,
            peer,
            logged_in_at: SystemTime::now(),
            submits_received: AtomicU64::new(0),
            flow_control_sent: AtomicU64::new(0),
            delivers_sent: AtomicU64::new(0),
            rate: RateMeter::new(now),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn submit_received(&self, now: Instant) {
        self.submits_received.fetch_add(1, Ordering::Relaxed);
        self.rate.record(now);
    }

    pub fn flow_control_sent(&self) {
        self.flow_control_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deliver_sent(&self) {
        self.delivers_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, now: Instant, closed_at: Option<SystemTime>) -> ConnectionStats {
        ConnectionStats {
            id: self.id,
            sp_id: self.sp_id.clone(),
            version: self.version.to_string(),
            peer: self.peer.to_string(),
            logged_in_at: rfc3339(self.logged_in_at),
            closed: closed_at.is_some(),
            closed_at: closed_at.map(rfc3339),
            submits_received: self.submits_received.load(Ordering::Relaxed),
            flow_control_sent: self.flow_control_sent.load(Ordering::Relaxed),
            submits_last_second: self.rate.last_full_second(now),
            delivers_sent: self.delivers_sent.load(Ordering::Relaxed),
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Events per whole second counted from `epoch`: the second running now and the one before, each
/// packed as `second << 32 | count` so that a reader sees a second and its count together.
/// Written by one task only (a load and a store, no read-modify-write needed).
#[derive(Debug)]
struct RateMeter {
    epoch: Instant,
    current: AtomicU64,
    previous: AtomicU64,
}

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl RateMeter {
    fn new(epoch: Instant) -> Self {
        RateMeter {
            epoch,
            current: AtomicU64::new(0),
            previous: AtomicU64::new(0),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn record(&self, now: Instant) {
        let second = self.second(now);
        let current = self.current.load(Ordering::Relaxed);
        if current >> COUNT_BITS == second {
            // Four billion in one second cannot happen on one connection; saturate regardless.
            if current & COUNT_MASK < COUNT_MASK {
                self.current.store(current + 1, Ordering::Relaxed);
            }
        } else {
            self.previous.store(current, Ordering::Relaxed);
            self.current
                .store(second << COUNT_BITS | 1, Ordering::Relaxed);
        }
    }

    /// Events in the last second that is over; 0 when nothing arrived in it.
    fn last_full_second(&self, now: Instant) -> u64 {
        let Some(wanted) = self.second(now).checked_sub(1) else {
            return 0;
        };
        [&self.current, &self.previous]
            .into_iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .find(|packed| packed >> COUNT_BITS == wanted)
            .map_or(0, |packed| packed & COUNT_MASK)
    }
}

/// Live connections by id, and the last [`CLOSED_KEPT`] closed ones as they were at their close.
#[derive(Debug, Default)]
pub(crate) struct ConnectionRegistry {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    live: BTreeMap<u64, Arc<ConnectionMeter>>,
    closed: VecDeque<ConnectionStats>,
}

impl ConnectionRegistry {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(&self, meter: Arc<ConnectionMeter>) {
        self.lock().live.insert(meter.id, meter);
    }

    /// Moves connection `id` to the closed list, frozen as it is now.
    pub fn close(&self, id: u64, now: Instant) {
        let mut registry = self.lock();
        if let Some(meter) = registry.live.remove(&id) {
            registry
                .closed
                .push_back(meter.snapshot(now, Some(SystemTime::now())));
            if registry.closed.len() > CLOSED_KEPT {
                registry.closed.pop_front();
            }
        }
    }

    /// Live connections by id, then the closed ones, oldest close first.
    pub fn snapshot(&self, now: Instant) -> Vec<ConnectionStats> {
        let registry = self.lock();
        registry
            .live
            .values()
            .map(|meter| meter.snapshot(now, None))
            .chain(registry.closed.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn meter(id: u64, now: Instant) -> Arc<ConnectionMeter> {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
        Arc::new(ConnectionMeter::new(id, "900001", Version::V30, peer, now))
    }

    #[test]
    fn the_rate_is_the_last_full_second() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let rate = RateMeter::new(t0);
        for ms in [10, 20, 990] {
            rate.record(at(ms));
        }
        assert_eq!(rate.last_full_second(at(999)), 0, "second 0 is not over");
        assert_eq!(rate.last_full_second(at(1_000)), 3);
        rate.record(at(1_500));
        assert_eq!(rate.last_full_second(at(1_600)), 3, "second 1 is running");
        assert_eq!(rate.last_full_second(at(2_000)), 1);
        // Nothing in second 2: its rate is 0, whatever came before.
        assert_eq!(rate.last_full_second(at(3_100)), 0);
        // A gap of several seconds, then a burst.
        for _ in 0..5 {
            rate.record(at(7_200));
        }
        assert_eq!(rate.last_full_second(at(8_000)), 5);
        assert_eq!(rate.last_full_second(at(9_000)), 0);
    }

    #[test]
    fn a_snapshot_has_every_counter() {
        let t0 = Instant::now();
        let m = meter(7, t0);
        m.submit_received(t0);
        m.submit_received(t0);
        m.flow_control_sent();
        m.deliver_sent();
        let s = m.snapshot(t0 + Duration::from_secs(1), None);
        assert_eq!(
            (s.id, s.sp_id.as_str(), s.version.as_str(), s.peer.as_str()),
            (7, "900001", "3.0", "127.0.0.1:40000")
        );
        assert_eq!(
            (
                s.submits_received,
                s.flow_control_sent,
                s.submits_last_second,
                s.delivers_sent
            ),
            (2, 1, 2, 1)
        );
        assert!((!s.closed && s.closed_at.is_none()));
        humantime::parse_rfc3339(&s.logged_in_at).unwrap();
    }

    #[test]
    fn closed_connections_are_kept_up_to_the_limit() {
        let t0 = Instant::now();
        let registry = ConnectionRegistry::default();
        let total = CLOSED_KEPT as u64 + 10;
        for id in 1..=total {
            registry.open(meter(id, t0));
        }
        for id in 1..total {
            registry.close(id, t0);
        }
        registry.close(999, t0); // never opened: nothing happens
        let listed = registry.snapshot(t0);
        assert_eq!(listed.len(), 1 + CLOSED_KEPT);
        assert_eq!((listed[0].id, listed[0].closed), (total, false));
        assert!(
            listed[1..]
                .iter()
                .all(|c| c.closed && c.closed_at.is_some())
        );
        // The oldest closes were forgotten; the last close is last.
        assert_eq!(listed[1].id, total - CLOSED_KEPT as u64);
        assert_eq!(listed.last().unwrap().id, total - 1);
    }
}
