//! Leases on a channel's connection slots, so several gateway instances can share one SP
//! account's K carrier connections without opening more than K: an instance opens a connection
//! only for a slot it holds, renews the lease while the connection lives, and releases it when
//! the connection ends. A lease it fails to renew has lapsed and may already be someone else's.
//!
//! Each slot has a fencing counter that only grows: every acquisition gets a higher token, and
//! the holder's name `{base}/{slot}/{token}` is never given twice. That name is also the stream
//! consumer name of the slot's worker, so the holder list says which consumers are alive.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Store, StoreError};

/// One slot held by one acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub channel: String,
    pub slot: u32,
    /// The slot's fence after this acquisition: higher than any earlier holder's.
    pub token: u64,
    /// `{base}/{slot}/{token}`: the value of the lease key and this slot's consumer name.
    pub holder: String,
}

/// Takes the lowest free slot: the first lease key that does not exist gets a new token from
/// its fence and the holder's name, with the TTL. KEYS: per slot, in order, its lease key and
/// its fence key. ARGV[1] base name, ARGV[2] TTL ms. Returns {slot, token, holder}, or nil when
/// every slot is held.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/acquire.lua")));

/// Extends the lease only if it still holds our name. KEYS[1] lease key. ARGV[1] holder,
/// ARGV[2] TTL ms. Returns 1 when renewed, 0 when it lapsed or someone else holds it.
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));

/// Deletes the lease only if it still holds our name. KEYS[1] lease key. ARGV[1] holder.
/// Returns 1 when deleted, 0 when it was not ours (any more).
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

/// Milliseconds for PX/PEXPIRE, which refuse 0.
fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// The parts of a holder name `{base}/{slot}/{token}`; `None` for a name not of that form (the
/// consumer name of a gateway from before leases, say). The base may itself contain '/'.
pub fn parse_holder(name: &str) -> Option<(&str, u32, u64)> {
    fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
        // `parse` would also take a leading '+', which no holder name has.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
    let mut parts = name.rsplitn(3, '/');
    let token = number(parts.next()?)?;
    let slot = number(parts.next()?)?;
    let base = parts.next()?;
    Some((base, slot, token))
}

impl Store {
    /// Takes the lowest free slot of `0..slots` on `channel` for `ttl`, under a name built from
    /// `base`; `None` when all are held. Atomic: two callers never get the same slot.
    pub async fn lease_acquire(
        &self,
        channel: &str,
        slots: u32,
        base: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if slots == 0 {
            return Ok(None);
        }
        let mut invocation = ACQUIRE.prepare_invoke();
        for slot in 0..slots {
            invocation
                .key(self.keys.lease(channel, slot))
                .key(self.keys.lease_fence(channel, slot));
        }
        let taken: Option<(u32, u64, String)> = invocation
            .arg(base)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(taken.map(|(slot, token, holder)| Lease {
            channel: channel.to_owned(),
            slot,
            token,
            holder,
        }))
    }

    /// Extends `lease` to `ttl` from now; `false` when it is no longer ours (it expired, and
    /// perhaps another instance took the slot): stop using the slot's connection.
    pub async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        Ok(RENEW
            .key(self.keys.lease(&lease.channel, lease.slot))
            .arg(&lease.holder)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Gives the slot up; `false` when it was not ours any more (nothing is deleted then).
    pub async fn lease_release(&self, lease: &Lease) -> Result<bool, StoreError> {
        Ok(RELEASE
            .key(self.keys.lease(&lease.channel, lease.slot))
            .arg(&lease.holder)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Who holds each slot of `0..slots` now (`None` for a free one), by slot.
    pub async fn lease_holders(
        &self,
        channel: &str,
        slots: u32,
    ) -> Result<Vec<Option<String>>, StoreError> {
        if slots == 0 {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = (0..slots).map(|s| self.keys.lease(channel, s)).collect();
        Ok(redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_name_gives_its_base_slot_and_token() {
        assert_eq!(parse_holder("gw-1/0/1"), Some(("gw-1", 0, 1)));
        assert_eq!(
            parse_holder("host/with/slashes/12/345"),
            Some(("host/with/slashes", 12, 345))
        );
        assert_eq!(parse_holder("/3/4"), Some(("", 3, 4)));
    }

    #[test]
    fn a_name_not_made_by_a_lease_gives_none() {
        for name in [
            "host-1234",
            "gw/1",
            "gw/x/1",
            "gw/1/x",
            "gw/1/",
            "gw//1",
            "gw/+1/2",
            "gw/1/-2",
            "gw/4294967296/1",
            "",
        ] {
            assert_eq!(parse_holder(name), None, "{name:?}");
        }
    }

    #[test]
    fn lease_keys_share_the_channel_hash_tag() {
        let keys = super::super::Keys::new("cmpp");
        assert_eq!(keys.lease("sp-a", 3), "cmpp:lease:{sp-a}:3");
        assert_eq!(keys.lease_fence("sp-a", 3), "cmpp:lease:{sp-a}:3:fence");
    }
}
