//! One connection slot a channel may use from this process: wait until a lease on one of the
//! channel's K slots is free, hold the link on it while the lease is renewed, and give it up
//! cleanly before the lease could run out — so no more than K connections ever exist for the
//! account across every instance, and no two instances send on one slot.
//!
//! Timing, for a lease of TTL `t`: renewed every `t/3`; each renewal (and the first lease) opens
//! the fence until 90 % of `t` after it was *sent* (Redis counts from when it ran, a little
//! later, so the fence always closes first). A failed renewal is retried every half second;
//! once less than `t/2` is left the slot is given up: the worker stops reading, the window
//! drains until the fence closes, TERMINATE, close. A lease found taken closes the fence at once
//! (someone else may send on the slot now), and a fence that ran out before its renewal (the
//! process stalled) ends the lease too: it is released, never renewed back to life. A slot whose
//! link has not been up for twice `reconnect_max` (at least 10 s) is released for another
//! instance to try, and taken again only after a pause.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::sending::{Sending, Shared};
use crate::config::ChannelConfig;
use crate::session::{Fence, LinkSet, LinkState};
use crate::store::Lease;

/// How often a failed renewal is tried again.
const RENEW_RETRY: Duration = Duration::from_millis(500);
/// How often a channel whose slots are all held is looked at again, at most.
const ACQUIRE_RETRY_MAX: Duration = Duration::from_secs(5);

pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    pub(super) channel: Arc<ChannelConfig>,
    /// Shared by this instance's slot tasks of the channel: after one of them hands a slot over
    /// (its link could not come up), none of them asks for a slot until then, or a sibling would
    /// take the freed slot straight back.
    pub(super) hold_off: Arc<std::sync::Mutex<Option<Instant>>>,
    pub(super) links: LinkSet,
    pub(super) shutdown: CancellationToken,
}

/// Why holding a lease ended.
enum Ended {
    Shutdown,
    /// Taken by another holder, not renewed in time, or the fence ran out first.
    Lost(&'static str),
    /// The link could not stay up for `give_up_after`: the slot is handed to another instance,
    /// which may reach the ISMG where this one cannot.
    GiveUp,
}

/// A lease just taken: the fence it opened and when its first request was sent (renewals are
/// timed from then, not from when the link was ready).
struct Held {
    lease: Lease,
    fence: Fence,
    since: Instant,
}

impl Slot {
    pub(super) async fn run(self) {
        let ttl = self.shared.config.worker.lease_ttl;
        let families = &self.shared.metrics.families;
        let held = families
            .leases_held
            .with_label_values(&[&self.channel.name]);
        let losses = families
            .lease_losses
            .with_label_values(&[&self.channel.name]);
        while let Some(h) = self.acquire(ttl).await {
            let (lease, fence) = (&h.lease, &h.fence);
            held.inc();
            tracing::info!(channel = %lease.channel, slot = lease.slot, token = lease.token, "connection slot leased");
            // Renewed while the parts start: connecting to Redis may take a while.
            let started = CancellationToken::new();
            let start = async {
                let sending = Sending::start(
                    &self.shared,
                    &self.channel,
                    lease,
                    fence.clone(),
                    &self.shutdown,
                )
                .await;
                started.cancel();
                sending
            };
            let (sending, while_starting) = tokio::join!(start, self.keep(&h, ttl, None, &started));
            let Some(sending) = sending else {
                held.dec();
                self.release(lease).await;
                break;
            };
            self.links
                .insert(&lease.channel, lease.slot, sending.link.clone());
            let ended = match while_starting {
                lost @ Ended::Lost(_) => lost,
                _ => self.keep(&h, ttl, Some(&sending), &self.shutdown).await,
            };
            match ended {
                Ended::Shutdown => {
                    // Keep renewing while the window drains, or a long drain would outlive
                    // the lease.
                    let drained = CancellationToken::new();
                    let close = self.channel.link.close_timeout;
                    let stop = async {
                        sending.stop(close).await;
                        drained.cancel();
                    };
                    let (_, _) = tokio::join!(stop, self.keep(&h, ttl, None, &drained));
                    self.release(lease).await;
                }
                Ended::Lost(why) => {
                    losses.inc();
                    let left = fence.remaining().unwrap_or_default();
                    tracing::warn!(channel = %lease.channel, slot = lease.slot, why, ?left, "connection slot lease lost; stopping the link on it");
                    sending
                        .stop(left.min(self.channel.link.close_timeout))
                        .await;
                    fence.revoke();
                    // Ours or not any more, nobody sends on it under this lease again.
                    self.release(lease).await;
                }
                Ended::GiveUp => {
                    tracing::warn!(channel = %lease.channel, slot = lease.slot, after = ?self.give_up_after(), "the link on this slot has not come up; releasing the slot for another instance");
                    sending.stop(self.channel.link.close_timeout).await;
                    fence.revoke();
                    self.release(lease).await;
                    // Another instance's turn first.
                    let until = Instant::now() + ttl.mul_f64(1.0 + fastrand::f64());
                    *self.hold_off.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
                }
            }
            self.links.remove(&lease.channel, lease.slot);
            held.dec();
        }
    }

    /// How long a link may stay down before its slot is handed over.
    fn give_up_after(&self) -> Duration {
        (self.channel.link.reconnect_max * 2).max(Duration::from_secs(10))
    }

    /// Waits for a free slot; `None` at shutdown.
    async fn acquire(&self, ttl: Duration) -> Option<Held> {
        let store = &self.shared.store;
        let base = &self.shared.config.worker.consumer;
        let channel = &self.channel;
        let mut wait = Duration::from_millis(200);
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            let hold_off = *self.hold_off.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = hold_off.filter(|until| *until > Instant::now()) {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = self.shutdown.cancelled() => return None,
                }
                continue;
            }
            let sent = Instant::now();
            match store
                .lease_acquire(&channel.name, channel.max_connections, base, ttl)
                .await
            {
                Ok(Some(lease)) => {
                    let fence = Fence::open_until(sent + ttl * 9 / 10);
                    return Some(Held {
                        lease,
                        fence,
                        since: sent,
                    });
                }
                Ok(None) => {
                    tracing::debug!(channel = %channel.name, "every connection slot is held; waiting");
                    wait = (wait * 2).min(ACQUIRE_RETRY_MAX.min(ttl / 2));
                }
                Err(e) => {
                    tracing::warn!(channel = %channel.name, error = %e, "cannot take a connection slot lease; retrying");
                    wait = Duration::from_secs(1);
                }
            }
            // Jitter, so instances that start together do not ask in lockstep.
            let jittered = wait.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                () = tokio::time::sleep(jittered) => {}
                () = self.shutdown.cancelled() => return None,
            }
        }
    }

    /// Renews the lease until `stop` is cancelled, the lease is lost, or (with `sending`) its
    /// link has been down for too long.
    async fn keep(
        &self,
        h: &Held,
        ttl: Duration,
        sending: Option<&Sending>,
        stop: &CancellationToken,
    ) -> Ended {
        let store = &self.shared.store;
        let mut next = h.since + ttl / 3;
        let mut down_since: Option<Instant> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = stop.cancelled() => return Ended::Shutdown,
            }
            if !h.fence.is_open() {
                // The process stalled past the fence: its link has stopped for good.
                return Ended::Lost("the fence ran out before the renewal");
            }
            if let Some(sending) = sending {
                let now = Instant::now();
                if sending.link.status().state == LinkState::Up {
                    down_since = None;
                } else if now - *down_since.get_or_insert(now) >= self.give_up_after() {
                    return Ended::GiveUp;
                }
            }
            let sent = Instant::now();
            match store.lease_renew(&h.lease, ttl).await {
                Ok(true) => {
                    if !h.fence.extend_to(sent + ttl * 9 / 10) {
                        return Ended::Lost("the fence ran out before the renewal was answered");
                    }
                    next = sent + ttl / 3;
                }
                Ok(false) => {
                    // Someone else may hold it now: not one more write under it.
                    h.fence.revoke();
                    return Ended::Lost("taken or expired");
                }
                Err(e) => {
                    if h.fence.remaining().is_none_or(|left| left < ttl / 2) {
                        return Ended::Lost("not renewed in time");
                    }
                    tracing::warn!(channel = %h.lease.channel, slot = h.lease.slot, error = %e, "cannot renew the connection slot lease; retrying");
                    next = Instant::now() + RENEW_RETRY;
                }
            }
        }
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.shared.store.lease_release(lease).await {
            tracing::warn!(channel = %lease.channel, slot = lease.slot, error = %e, "cannot release the connection slot lease; it expires on its own");
        }
    }
}
