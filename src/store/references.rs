//! Concatenation references for long messages. A phone reassembles the parts of one message by
//! (sender, reference, part count); two long messages to one phone with one reference at once
//! are garbled together. A per-process counter cannot keep several instances apart, so each
//! (channel, recipient) counts in Redis; and the message keeps the reference it got in its
//! state, so a reclaimed message sent again carries the same one (a phone that already has some
//! of its parts completes it instead of starting a second, broken one).

use super::{Batch, Consumer, StoreError};

/// How long a recipient's counter lives after its last long message: long enough that the next
/// message within a day never repeats a recent reference.
const COUNTER_TTL_MS: u64 = 24 * 3600 * 1000;

/// A long message that needs a reference.
pub struct NeedsReference<'a> {
    /// Its message id (the state holds the reference).
    pub id: &'a str,
    pub to: &'a str,
}

impl Consumer {
    /// The reference of each message: the one its state already holds, else the next of its
    /// recipient's counter on `channel`. Two round trips for the whole batch, and only for long
    /// messages.
    pub async fn references(
        &self,
        channel: &str,
        messages: &[NeedsReference<'_>],
    ) -> Result<Vec<u16>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.store.keys;
        let mut pipe = Batch::new();
        for m in messages {
            let counter = keys.reference_counter(channel, m.to);
            pipe.cmd("INCR").arg(&counter);
            pipe.cmd("PEXPIRE")
                .arg(&counter)
                .arg(COUNTER_TTL_MS)
                .ignore();
        }
        let next: Vec<u64> = self.store.query_pipeline(&pipe).await?;
        let mut pipe = Batch::new();
        for (m, n) in messages.iter().zip(&next) {
            let state = keys.state(m.id);
            // A message sent before keeps its first reference; a counter value it did not use
            // is simply skipped.
            pipe.cmd("HSETNX")
                .arg(&state)
                .arg("ref")
                .arg(n % 65_536)
                .ignore();
            pipe.cmd("HGET").arg(&state).arg("ref");
        }
        let stored: Vec<Option<String>> = self.store.query_pipeline(&pipe).await?;
        stored
            .into_iter()
            .map(|r| {
                r.as_deref()
                    .and_then(|r| r.parse::<u16>().ok())
                    .ok_or_else(|| StoreError::Unexpected(format!("reference {r:?} in a state")))
            })
            .collect()
    }
}
