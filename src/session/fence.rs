//! The lease a link sends under. A connection slot is leased in Redis for a TTL and renewed; the
//! holder extends its fence to a little before each lease's end, measured from when the renewal
//! was sent. The connection checks it before every write: a process that was paused (SIGSTOP, a
//! long stall, cut off from Redis) and wakes after its lease ran out writes nothing more on the
//! slot, even if its renewal task has not run yet, because another instance may hold it now.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Shared between the lease keeper (which extends or revokes it) and the link (which checks it).
#[derive(Debug, Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: Instant,
    /// Milliseconds after `base` up to which writes are allowed; 0 = never.
    valid_until_ms: AtomicU64,
}

impl Fence {
    /// A fence open until `until` (a lease just taken).
    pub fn open_until(until: Instant) -> Fence {
        let base = Instant::now();
        let fence = Fence {
            inner: Arc::new(Inner {
                base,
                valid_until_ms: AtomicU64::new(0),
            }),
        };
        fence
            .inner
            .valid_until_ms
            .store(fence.ms(until), Ordering::Release);
        fence
    }

    /// Allows writes until `until`, if writes are still allowed now; `false` when the fence had
    /// already closed. A closed fence stays closed: a process that stalled past the end has
    /// stopped its link, and a renewal that still reached the key before Redis expired it must
    /// not bring the slot back as if nothing happened. Never moves the end backwards (a late
    /// answer to an older renewal must not shorten a newer one).
    pub fn extend_to(&self, until: Instant) -> bool {
        let target = self.ms(until);
        let now = self.ms(Instant::now());
        self.inner
            .valid_until_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current > now).then_some(current.max(target))
            })
            .is_ok()
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.inner.base).as_millis() as u64
    }

    /// When writes stop being allowed; `None` once they are not.
    pub fn deadline(&self) -> Option<Instant> {
        let until = self.inner.base
            + std::time::Duration::from_millis(self.inner.valid_until_ms.load(Ordering::Acquire));
        (Instant::now() < until).then_some(until)
    }

    /// Allows nothing from now on.
    pub fn revoke(&self) {
        self.inner.valid_until_ms.store(0, Ordering::Release);
    }

    /// Whether a write may go out now.
    pub fn is_open(&self) -> bool {
        self.remaining().is_some()
    }

    /// How long writes stay allowed; `None` once they are not.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        let until = self.inner.base
            + std::time::Duration::from_millis(self.inner.valid_until_ms.load(Ordering::Acquire));
        let now = Instant::now();
        (now < until).then(|| until - now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn extends_and_closes_when_the_time_passes() {
        let fence = Fence::open_until(Instant::now() + Duration::from_secs(1));
        assert!(fence.is_open());
        assert!(fence.extend_to(Instant::now() + Duration::from_secs(9)));
        // An older renewal's shorter end does not shorten it.
        fence.extend_to(Instant::now() + Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!fence.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn revoked_is_closed_at_once() {
        let fence = Fence::open_until(Instant::now() + Duration::from_secs(9));
        fence.revoke();
        assert!(!fence.is_open());
        assert!(!fence.extend_to(Instant::now() + Duration::from_secs(9)));
    }

    /// A process that stalled past its fence and wakes before Redis expired the lease: the
    /// renewal that still succeeds must not reopen it (its link has stopped for good).
    #[tokio::test(start_paused = true)]
    async fn a_closed_fence_stays_closed() {
        let fence = Fence::open_until(Instant::now() + Duration::from_secs(9));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!fence.extend_to(Instant::now() + Duration::from_secs(9)));
        assert!(!fence.is_open());
        assert_eq!(fence.deadline(), None);
    }
}
