//! DELIVERs whose body nobody can read are kept raw where their report or MO was expected, once
//! per DELIVER Msg_Id (the ISMG resends them), so an operator can see what the carrier sent.

use std::sync::LazyLock;

use redis::Script;

use super::{Store, StoreError};
use crate::session::UndecodableDeliver;

/// KEYS[1] stream, KEYS[2] the DELIVER's seen-marker; ARGV[1] TTL ms, ARGV[2] approximate MAXLEN,
/// then the entry's field/value pairs. Returns 1 when written, 0 when it was written before.
static KEEP_ONCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/keep_once.lua")));

impl Store {
    /// Writes `deliver` raw, flagged `malformed=1`, into the reports stream when it reads as a
    /// report, else into the MO stream. Returns `false` for a redelivery (written before).
    pub async fn record_undecodable_deliver(
        &self,
        deliver: &UndecodableDeliver,
        received_at: u64,
    ) -> Result<bool, StoreError> {
        // The marker in the stream's own slot: the report stream's or the MO stream's.
        let (stream, seen) = if deliver.report == Some(true) {
            (self.keys.reports(), self.keys.seen_report(deliver.msg_id.0))
        } else {
            (self.keys.mo(), self.keys.seen_mo(deliver.msg_id.0))
        };
        let written: i64 = KEEP_ONCE
            .key(stream)
            .key(seen)
            .arg(self.ttl_ms())
            .arg(self.config.inbound_maxlen)
            .arg("malformed")
            .arg("1")
            .arg("reason")
            .arg(&deliver.reason)
            .arg("body_hex")
            .arg(hex::encode(&deliver.body))
            .arg("deliver_msg_id")
            .arg(deliver.msg_id.0)
            .arg("received_at")
            .arg(received_at)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(written == 1)
    }
}
