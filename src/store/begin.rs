//! The worker takes a batch of messages on: each message id is claimed for its entry (so an id
//! is sent, and its state written, for one entry only), a new state starts `submitting` and the
//! message is indexed for the console. One round trip for a fresh batch, of plain commands that
//! cannot harm a state another entry owns: this runs for every message at full rate, and a
//! script making the same writes conditionally cost Redis a fifth of the full loop's time.

use super::outbound_entry::OutboundEntry;
use super::scripts::TRANSITION;
use super::state::MessageStatus;
use super::{Batch, Consumer, StoreError, now_ms};

/// A message the worker is about to send: its entry, id, recipient and segment count.
pub struct Beginning<'a> {
    pub entry: &'a OutboundEntry,
    pub id: &'a str,
    pub to: &'a str,
    pub segments: usize,
}

/// What [`Consumer::begin`] found for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The entry owns the id; its status before (`None` for a new state).
    Owned(Option<MessageStatus>),
    /// The id belongs to this other entry: a duplicate, neither sent nor allowed to touch the
    /// state.
    Duplicate(String),
}

impl Consumer {
    /// Claims each message id for its entry and marks the message `submitting` (indexing it
    /// for the console); says for each whether it was taken on (with its status before) or is
    /// a duplicate of another entry.
    /// A reclaimed entry may already be past submission (acknowledged then instead of sent
    /// again), so its status is read and moved by the ranked transition script, after its id
    /// is claimed. A `fresh` entry cannot be: one pipeline of plain commands for the batch
    /// claims the ids and starts new states.
    pub async fn begin(
        &self,
        messages: &[Beginning<'_>],
        fresh: bool,
    ) -> Result<Vec<Begun>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if fresh {
            self.begin_fresh(messages).await
        } else {
            self.begin_reclaimed(messages).await
        }
    }

    /// The state's fields `begin` writes. The content too, for entries XADDed directly (the
    /// enqueue script stored it for the others): the console shows it after the entry is
    /// trimmed.
    fn begin_fields<'a>(m: &'a Beginning<'_>, now: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut fields = vec![
            ("id", m.id),
            ("to", m.to),
            ("stream_id", m.entry.stream_id.as_str()),
            ("updated_at", now),
        ];
        fields.extend(m.entry.content_fields());
        fields
    }

    /// Fresh entries (read with ">", never given to a consumer before, so nothing can have sent
    /// them): each id is claimed, and a new state (an entry XADDed directly) gets its first
    /// fields, only where absent: a state another entry owns keeps every field it has. An HTTP
    /// entry's state, written by the enqueue script, is its own and stays `queued` until its
    /// Msg_Ids are recorded, with the rest of the fields (`record_submitted`).
    async fn begin_fresh(&self, messages: &[Beginning<'_>]) -> Result<Vec<Begun>, StoreError> {
        let store = &self.store;
        let now_ms = now_ms();
        let ttl = store.ttl_ms();
        let mut pipe = Batch::new();
        for m in messages {
            let key = store.keys.state(m.id);
            for (field, value) in [
                ("stream_id", m.entry.stream_id.as_str()),
                ("status", "submitting"),
                ("id", m.id),
                ("to", m.to),
            ] {
                pipe.cmd("HSETNX").arg(&key).arg(field).arg(value).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).arg("NX").ignore();
            pipe.cmd("HGET").arg(&key).arg("stream_id");
            // Entries XADDed directly never passed the enqueue script: index them here (for
            // the others the same ZADDs change nothing). The index keeps the first entry of
            // an id, so a duplicate's own time does not move it.
            store.index_message(&mut pipe, m.id, m.to, &m.entry.stream_id, now_ms);
        }
        store.trim_message_index(&mut pipe, now_ms);
        let owners: Vec<Option<String>> = store.query_pipeline(&pipe).await?;
        Ok(messages
            .iter()
            .zip(owners)
            .map(|(m, owner)| match owner {
                Some(owner) if owner != m.entry.stream_id => Begun::Duplicate(owner),
                _ => Begun::Owned(None),
            })
            .collect())
    }

    async fn begin_reclaimed(&self, messages: &[Beginning<'_>]) -> Result<Vec<Begun>, StoreError> {
        let store = &self.store;
        let claims: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| (m.id, m.entry.stream_id.as_str()))
            .collect();
        let owners = self.claim_ids(&claims).await?;
        let now_ms = now_ms();
        let now = now_ms.to_string();
        let ttl = store.ttl_ms();
        let mut pipe = Batch::new();
        store.trim_message_index(&mut pipe, now_ms);
        for (m, _) in messages.iter().zip(&owners).filter(|(_, o)| o.is_none()) {
            store.index_message(&mut pipe, m.id, m.to, &m.entry.stream_id, now_ms);
            pipe.invoke_script(
                TRANSITION
                    .key(store.keys.state(m.id))
                    .arg("submitting")
                    .arg(ttl)
                    .arg("segments")
                    .arg(m.segments)
                    .arg(&Self::begin_fields(m, &now)[..]),
            );
        }
        let mut before = store
            .query_pipeline::<Vec<Option<String>>>(&pipe)
            .await?
            .into_iter();
        Ok(owners
            .into_iter()
            .map(|owner| match owner {
                Some(owner) => Begun::Duplicate(owner),
                None => Begun::Owned(
                    before
                        .next()
                        .flatten()
                        .as_deref()
                        .and_then(MessageStatus::parse),
                ),
            })
            .collect())
    }

    /// Claims each (message id, stream id) for its entry: the first to claim an id owns it,
    /// recorded as the state's `stream_id` (which the enqueue script writes for entries from
    /// HTTP). Gives, for each, the entry that owns the id when that is another one.
    async fn claim_ids(&self, claims: &[(&str, &str)]) -> Result<Vec<Option<String>>, StoreError> {
        let ttl = self.store.ttl_ms();
        let mut pipe = Batch::new();
        for (id, stream_id) in claims {
            let key = self.store.keys.state(id);
            pipe.cmd("HSETNX")
                .arg(&key)
                .arg("stream_id")
                .arg(stream_id)
                .ignore();
            // A state created by the claim expires like any other (the transition fills it next).
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl).arg("NX").ignore();
            pipe.cmd("HGET").arg(&key).arg("stream_id");
        }
        let owners: Vec<Option<String>> = self.store.query_pipeline(&pipe).await?;
        Ok(claims
            .iter()
            .zip(owners)
            .map(|((_, stream_id), owner)| owner.filter(|o| o != stream_id))
            .collect())
    }
}
