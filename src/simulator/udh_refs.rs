//! Concatenation reference collisions: two different long messages to one recipient that share a
//! UDH reference, which a handset would splice into one garbled text.
//!
//! Every accepted concatenated part is remembered per (recipient, reference, total parts, part
//! number) with a hash of its payload. A part whose key is known with a different payload is a
//! collision; the same part again with the same payload is a resend and is not. The key is
//! stricter than a handset's: the originator (Src_Id) is left out and an 8-bit and a 16-bit
//! reference of the same value are the same key, so a gateway that reuses a reference for one
//! recipient is caught however it varies the rest.
//!
//! Memory is bounded two ways: a key is forgotten [`KEEP_FOR`] after its first part arrived
//! (the parts of one message go out within seconds; a collision is a reuse within minutes), and
//! at most [`MAX_KEYS`] keys are
//! kept, the oldest forgotten first: about 60 MB at the cap. To fit, a key is kept as a 64-bit
//! hash; two keys sharing one, which would count a false collision, are about one chance in 10^13
//! per part even at the cap.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::text::Concat;

/// How long a part is remembered after it first arrived.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(10 * 60);
/// Most parts remembered at once.
pub(crate) const MAX_KEYS: usize = 1_000_000;

/// (recipient, reference, total parts, part number), hashed.
type PartKey = u64;

fn part_key(destination: &str, concat: &Concat) -> PartKey {
    let mut hasher = DefaultHasher::new();
    destination.hash(&mut hasher);
    (concat.reference, concat.total, concat.number).hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug)]
struct Seen {
    payload: u64,
    /// Seconds since the tracker started: 4 bytes where an `Instant` takes 16.
    first_seen: u32,
}

/// The parts seen, shared by every connection (a recipient's parts may arrive on any of them).
#[derive(Debug)]
pub(crate) struct UdhReferences {
    inner: Mutex<Parts>,
}

#[derive(Debug)]
struct Parts {
    seen: HashMap<PartKey, Seen>,
    /// Keys in first-seen order, so the oldest is forgotten first.
    order: VecDeque<PartKey>,
    epoch: Instant,
    keep_for_secs: u64,
    max_keys: usize,
}

impl Default for UdhReferences {
    fn default() -> Self {
        UdhReferences::with_bounds(KEEP_FOR, MAX_KEYS)
    }
}

impl UdhReferences {
    pub fn with_bounds(keep_for: Duration, max_keys: usize) -> Self {
        UdhReferences {
            inner: Mutex::new(Parts {
                seen: HashMap::new(),
                order: VecDeque::new(),
                epoch: Instant::now(),
                keep_for_secs: keep_for.as_secs(),
                max_keys: max_keys.max(1),
            }),
        }
    }

    /// Notes one concatenated part sent to `destinations` and returns how many of them it
    /// collides for (one per recipient that already had this part of another message).
    pub fn observe(
        &self,
        destinations: &[String],
        concat: &Concat,
        msg_fmt: u8,
        payload: &[u8],
        now: Instant,
    ) -> u64 {
        let payload = payload_hash(msg_fmt, payload);
        let mut parts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = parts.seconds(now);
        parts.forget_before(now);
        destinations
            .iter()
            .map(|d| u64::from(parts.observe(part_key(d, concat), payload, now)))
            .sum()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().seen.len()
    }
}

impl Parts {
    fn seconds(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Whether `key` was seen with another payload. The newer payload replaces it, so a resend of
    /// the newer message is not counted again.
    fn observe(&mut self, key: PartKey, payload: u64, now: u32) -> bool {
        match self.seen.entry(key) {
            Entry::Occupied(mut known) => {
                let collides = known.get().payload != payload;
                known.get_mut().payload = payload;
                collides
            }
            Entry::Vacant(new) => {
                new.insert(Seen {
                    payload,
                    first_seen: now,
                });
                self.order.push_back(key);
                if self.order.len() > self.max_keys {
                    self.forget_oldest();
                }
                false
            }
        }
    }

    fn forget_before(&mut self, now: u32) {
        while self
            .order
            .front()
            .and_then(|key| self.seen.get(key))
            .is_some_and(|seen| u64::from(seen.first_seen) + self.keep_for_secs <= u64::from(now))
        {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(key) = self.order.pop_front() {
            self.seen.remove(&key);
        }
    }
}

/// The payload after the UDH, with its coding: the same bytes in another Msg_Fmt are another
/// text. 64 bits make two different payloads hashing alike (a missed collision) negligible.
fn payload_hash(msg_fmt: u8, payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    msg_fmt.hash(&mut hasher);
    payload.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(reference: u16, number: u8) -> Concat {
        Concat {
            reference,
            wide_reference: false,
            total: 2,
            number,
        }
    }

    fn to(numbers: &[&str]) -> Vec<String> {
        numbers.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn another_payload_under_a_known_key_collides_and_a_resend_does_not() {
        let refs = UdhReferences::default();
        let now = Instant::now();
        let one = to(&["13800000001"]);
        assert_eq!(refs.observe(&one, &part(7, 1), 8, b"first A", now), 0);
        assert_eq!(refs.observe(&one, &part(7, 2), 8, b"second A", now), 0);
        assert_eq!(
            refs.observe(&one, &part(7, 1), 8, b"first A", now),
            0,
            "resend"
        );
        assert_eq!(refs.observe(&one, &part(7, 1), 8, b"first B", now), 1);
        assert_eq!(
            refs.observe(&one, &part(7, 1), 8, b"first B", now),
            0,
            "B resent"
        );
        // The same bytes in another coding are another text.
        assert_eq!(refs.observe(&one, &part(7, 2), 15, b"second A", now), 1);
        // Another recipient, reference, total or part number is another key.
        let other = to(&["13800000002"]);
        assert_eq!(refs.observe(&other, &part(7, 1), 8, b"first C", now), 0);
        assert_eq!(refs.observe(&one, &part(8, 1), 8, b"first C", now), 0);
        let three_parts = Concat {
            total: 3,
            ..part(7, 1)
        };
        assert_eq!(refs.observe(&one, &three_parts, 8, b"first C", now), 0);
    }

    #[test]
    fn each_recipient_of_a_part_counts() {
        let refs = UdhReferences::default();
        let now = Instant::now();
        let both = to(&["13800000001", "13800000002", "13800000003"]);
        assert_eq!(refs.observe(&both[..2], &part(1, 1), 8, b"A", now), 0);
        assert_eq!(refs.observe(&both, &part(1, 1), 8, b"B", now), 2);
    }

    #[test]
    fn keys_are_forgotten_after_keep_for() {
        let refs = UdhReferences::with_bounds(Duration::from_secs(600), 100);
        let t0 = Instant::now();
        let one = to(&["13800000001"]);
        refs.observe(&one, &part(7, 1), 8, b"A", t0);
        let later = t0 + Duration::from_secs(300);
        refs.observe(&one, &part(9, 1), 8, b"A", later);
        // Ten minutes after the first part it is forgotten: the same key is new again.
        let expired = t0 + Duration::from_secs(600);
        assert_eq!(refs.observe(&one, &part(7, 1), 8, b"B", expired), 0);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs.observe(&one, &part(9, 1), 8, b"B", expired), 1);
    }

    #[test]
    fn at_the_cap_the_oldest_key_goes_first() {
        let refs = UdhReferences::with_bounds(KEEP_FOR, 3);
        let now = Instant::now();
        let one = to(&["13800000001"]);
        for reference in 1..=4 {
            refs.observe(&one, &part(reference, 1), 8, b"A", now);
        }
        assert_eq!(refs.len(), 3);
        // Reference 1 was forgotten (coming back, it pushes 2 out); 3 is still known.
        assert_eq!(refs.observe(&one, &part(1, 1), 8, b"B", now), 0);
        assert_eq!(refs.observe(&one, &part(3, 1), 8, b"B", now), 1);
    }
}
