//! Msg_Id allocation that never repeats within a run.
//!
//! A Msg_Id packs the second it was made (MMDDhhmmss) and a 16-bit sequence, so at most 65 536
//! ids exist per second and gateway code. We keep one process-wide *virtual clock*
//! `V = unix_second × 65 536 + sequence` and hand out ids by advancing it:
//! * V never goes below the wall clock (`now × 65 536`), so ids carry the real time when the rate
//!   is below 65 536/s;
//! * V only ever increases, so an id is never handed out twice, even when the wall clock steps back;
//! * above 65 536/s the sequence runs into the next second and ids carry a time slightly *ahead* of
//!   the wall clock until the rate drops and the clock catches up;
//! * a block of N ids (a SUBMIT to N recipients, whose recipients are Msg_Id … Msg_Id+N−1) is
//!   never split across a second, so `Msg_Id + i` is still a valid id of the same second rather
//!   than a carry into the gateway-code bits.
//!
//! The packed date has no year, so uniqueness holds for runs shorter than a year. The state is
//! process-wide so that several simulators in one test binary (each with its own gateway code or
//! not) never hand out the same id either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{ChinaTime, MsgId, MsgIdParts};

const PER_SECOND: u64 = 1 << 16;

static VIRTUAL_CLOCK: AtomicU64 = AtomicU64::new(0);

/// Reserves `count` consecutive ids (1 ≤ count ≤ 65 536) and returns the first.
pub(crate) fn allocate(gateway: u32, count: u16) -> MsgId {
    let count = u64::from(count.max(1));
    let floor = unix_now() * PER_SECOND;
    let mut current = VIRTUAL_CLOCK.load(Ordering::Relaxed);
    let start = loop {
        let mut start = current.max(floor);
        if start % PER_SECOND + count > PER_SECOND {
            start = (start / PER_SECOND + 1) * PER_SECOND;
        }
        match VIRTUAL_CLOCK.compare_exchange_weak(
            current,
            start + count,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => break start,
            Err(seen) => current = seen,
        }
    };
    pack(start, gateway)
}

fn pack(virtual_time: u64, gateway: u32) -> MsgId {
    // The virtual second is a real Unix second (possibly a little in the future).
    let t = ChinaTime::from_unix(i64::try_from(virtual_time / PER_SECOND).unwrap_or(i64::MAX));
    MsgId::pack(MsgIdParts {
        month: t.month,
        day: t.day,
        hour: t.hour,
        minute: t.minute,
        second: t.second,
        gateway,
        // Lossless: the remainder is below 65 536.
        sequence: (virtual_time % PER_SECOND) as u16,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_past_the_sequence_wrap_and_blocks_stay_in_one_second() {
        let mut seen = HashSet::new();
        // More than one second's worth of sequence numbers, in blocks of 1 and of 99.
        for i in 0..80_000u32 {
            let count = if i % 1000 == 0 { 99 } else { 1 };
            let first = allocate(7, count);
            let parts = first.unpack();
            assert_eq!(parts.gateway, 7);
            assert!(u32::from(parts.sequence) + u32::from(count) <= 65_536);
            for k in 0..u64::from(count) {
                assert!(seen.insert(first.0 + k), "Msg_Id repeated");
            }
        }
    }

    #[test]
    fn ids_carry_the_current_time() {
        let now = ChinaTime::now();
        let parts = allocate(1, 1).unpack();
        assert_eq!((parts.month, parts.day), (now.month, now.day));
    }

    #[test]
    fn packing_places_the_virtual_second() {
        // 2026-11-26 04:49:46 in Beijing; sequence 5.
        let id = pack(1_795_639_786 * PER_SECOND + 5, 1).unpack();
        assert_eq!(
            (id.month, id.day, id.hour, id.minute, id.second),
            (11, 26, 4, 49, 46)
        );
        assert_eq!(id.sequence, 5);
    }
}
