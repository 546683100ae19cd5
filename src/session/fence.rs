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
    /// A fence that allows nothing until extended.
    pub fn closed() -> Fence {
        Fence {
            inner: Arc::new(Inner {
                base: Instant::now(),
                valid_until_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Allows writes until `until` (never moves the end backwards: a late answer to an older
    /// renewal must not shorten a newer one).
    pub fn extend_to(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.inner.base).as_millis() as u64;
        self.inner.valid_until_ms.fetch_max(ms, Ordering::AcqRel);
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
    async fn opens_when_extended_and_closes_when_the_time_passes() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        fence.extend_to(Instant::now() + Duration::from_secs(9));
        assert!(fence.is_open());
        // An older renewal's shorter end does not shorten it.
        fence.extend_to(Instant::now() + Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!fence.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn revoked_is_closed_at_once() {
        let fence = Fence::closed();
        fence.extend_to(Instant::now() + Duration::from_secs(9));
        fence.revoke();
        assert!(!fence.is_open());
    }
}
