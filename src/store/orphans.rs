//! Entries left pending by a worker whose lease is gone (its instance stopped, or lost the slot):
//! no one renews them, so they are taken over once they have been idle long enough. A consumer
//! that still holds a lease is alive and keeps its entries, however long they wait (a message
//! held back by flow control or a link outage is not abandoned).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::outbound_entry::{OutboundEntry, parse_claim_reply};
use super::{Consumer, StoreError};

/// Claims up to ARGV[4] entries pending at consumers other than this one and the live ones, idle
/// at least ARGV[3] ms. XCLAIM checks the idle time again, so of two instances racing for an
/// entry only the first gets it (the claim resets its idle time). Entries deleted from the
/// stream are dropped from the pending list by XCLAIM and not returned (Redis before 7 returns
/// nil in their place).
/// With ARGV[5] = 1 this consumer's own entries idle that long are taken again too (a worker
/// renews what it is sending, so its own entry that idle is one it left pending: a write Redis
/// refused, an acknowledgement given up).
/// KEYS[1] outbound stream. ARGV[1] group, ARGV[2] this consumer, ARGV[3] min idle ms,
/// ARGV[4] most entries, ARGV[5] 1 to include its own, ARGV[6..] live consumer names. Returns
/// the claimed entries as XCLAIM does.
static CLAIM_ORPHANS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_orphans.lua")));

impl Consumer {
    /// Takes over up to `count` entries pending at consumers not named in `live` (the current
    /// lease holders) and idle at least `min_idle`, with their delivery counts. This consumer's
    /// own entries are taken again only with `own` (and only those idle that long).
    pub async fn claim_orphans(
        &self,
        live: &[String],
        min_idle: Duration,
        own: bool,
        count: usize,
    ) -> Result<Vec<OutboundEntry>, StoreError> {
        let config = self.config();
        let reply: redis::Value = CLAIM_ORPHANS
            .key(self.stream())
            .arg(&config.group)
            .arg(&config.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(count.max(1))
            .arg(if own { "1" } else { "0" })
            .arg(live)
            .invoke_async(&mut self.store.conn())
            .await?;
        let mut entries = parse_claim_reply(&reply)?;
        self.count_deliveries(&mut entries).await?;
        Ok(entries)
    }
}
