//! Consumers of processes that are gone. Every start joins the group under a new name
//! (host-pid), and every lease acquisition under another (`base/slot/token`); Redis keeps a
//! consumer until it is deleted: without this the group's list grows by one per restart or
//! lease, for ever.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Consumer, StoreError};

/// Deletes the group's consumers, other than the caller and the names spared, that have nothing
/// pending and have been idle at least ARGV[2] ms, in one step: none can read an entry between
/// the check and the delete (deleting a consumer drops its pending entries' claim, so one with
/// any is kept).
/// KEYS[1] outbound stream. ARGV[1] group, ARGV[2] idle ms, ARGV[3] the caller's consumer name,
/// ARGV[4..] names to keep (live lease holders). Returns the names deleted.
static DELETE_STALE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/delete_stale.lua")));

impl Consumer {
    /// Deletes the consumers of the group, other than this one and those named in `live` (the
    /// current lease holders: a slot's worker may idle long while its link is down), idle at
    /// least `min_idle` with nothing pending; returns their names.
    pub async fn delete_unleased_consumers(
        &self,
        live: &[String],
        min_idle: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let config = self.config();
        Ok(DELETE_STALE
            .key(self.stream())
            .arg(&config.group)
            .arg(min_idle.as_millis() as u64)
            .arg(&config.consumer)
            .arg(live)
            .invoke_async(&mut self.store.conn())
            .await?)
    }
}
