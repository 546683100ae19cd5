//! Entries that name another channel than the stream they were added to (an application that
//! XADDs everything to `{prefix}:mt` with a `channel` field) move to that channel's stream, so
//! each channel's own consumer group and connections send them.

use super::outbound_entry::OutboundEntry;
use super::{Consumer, StoreError};

impl Consumer {
    /// Adds `entry`'s fields to `stream` under the message id `id` (its own `id`, or the stream
    /// id it had here, so the id the application was given stays the message's). The caller
    /// acknowledges the entry here afterwards; a crash in between adds it twice, and the second
    /// copy is then refused by id like any other duplicate, never sent twice.
    pub async fn forward(
        &self,
        entry: &OutboundEntry,
        stream: &str,
        id: &str,
    ) -> Result<String, StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*").arg("id").arg(id);
        for (name, value) in entry.field_pairs().filter(|(name, _)| *name != "id") {
            cmd.arg(name).arg(value);
        }
        Ok(cmd.query_async(&mut self.store.conn()).await?)
    }
}
