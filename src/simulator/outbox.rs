//! Per-account queue of DELIVERs (status reports and MO) waiting to be sent, as a real ISMG keeps
//! them: whatever is not acknowledged with DELIVER_RESP Result 0 comes back here and goes out
//! again, on any live connection of the account, until it is.
//!
//! Entries are either *ready* (FIFO) or *delayed* until an instant (report_delay, the retry wait
//! after a non-zero DELIVER_RESP). Connections pull; a `watch` channel wakes them when something
//! they could not have known about arrives (a ready entry, or a delayed one due earlier than
//! anything before). The lock is never held across an await.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

use super::hostile::Damage;
use crate::protocol::{Deliver, MsgId, Packet, Pdu, ReportLayout, Version};

/// What a DELIVER carries; decides which counters it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliverKind {
    Report,
    Mo,
}

/// One DELIVER as it travels between the outbox and connections. Its Msg_Id is fixed for life;
/// each send overwrites the packet's Sequence_Id. Kept as a whole `Packet` so that a resend
/// encodes it again without rebuilding or cloning anything.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub packet: Packet,
    pub kind: DeliverKind,
    /// How many times it was written so far.
    pub sends: u32,
    /// Damage applied to its bytes each time it is written (`POST /faults/deliver`).
    pub damage: Option<Damage>,
}

impl Entry {
    pub fn new(deliver: Deliver, kind: DeliverKind) -> Entry {
        Entry {
            packet: Packet::new(0, Pdu::Deliver(deliver)),
            kind,
            sends: 0,
            damage: None,
        }
    }

    /// A 2.0 session reads only the 60-byte report body: a report queued in the 3.0 layout (the
    /// account speaks 3.0, this session 2.0) is rewritten before it goes out.
    pub fn fit_version(&mut self, version: Version) {
        let Pdu::Deliver(d) = &mut self.packet.pdu else {
            return;
        };
        let compact = ReportLayout::Compact60;
        if version != Version::V20
            || self.kind != DeliverKind::Report
            || d.msg_content.len() == compact.body_len()
        {
            return;
        }
        if let Some(Ok(report)) = d.report()
            && let Ok(content) = report.encode(compact)
        {
            d.msg_content = content;
        }
    }

    /// The DELIVER's own Msg_Id (for logs and tests).
    pub fn msg_id(&self) -> MsgId {
        match &self.packet.pdu {
            Pdu::Deliver(d) => d.msg_id,
            _ => MsgId(0),
        }
    }
}

struct Delayed {
    due: Instant,
    /// Insertion order, so equal due times keep FIFO order.
    order: u64,
    entry: Entry,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

#[derive(Default)]
struct State {
    ready: VecDeque<Entry>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    order: u64,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    wake: watch::Sender<()>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            state: Mutex::default(),
            wake: watch::Sender::new(()),
        }
    }
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a consistent queue; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes whenever a connection should look at the outbox again.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.wake.subscribe()
    }

    /// Ready now, behind everything already waiting.
    pub fn push(&self, entries: impl IntoIterator<Item = Entry>) {
        self.lock().ready.extend(entries);
        self.wake.send_replace(());
    }

    /// Ready now, ahead of everything else: DELIVERs that were already sent once and are owed to
    /// the client first. Their relative order is kept.
    pub fn push_front(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut state = self.lock();
        for entry in entries.into_iter().rev() {
            state.ready.push_front(entry);
        }
        drop(state);
        self.wake.send_replace(());
    }

    /// Ready at `due`.
    pub fn push_at(&self, entry: Entry, due: Instant) {
        let mut state = self.lock();
        let earliest = state.delayed.peek().is_none_or(|Reverse(d)| due < d.due);
        state.order += 1;
        let order = state.order;
        state.delayed.push(Reverse(Delayed { due, order, entry }));
        drop(state);
        // Sleeping connections wake for the earliest due entry they know of; only a new earliest
        // one needs to wake them (under steady load with a constant delay that is rare).
        if earliest {
            self.wake.send_replace(());
        }
    }

    /// Moves up to `max` entries ready at `now` into `out`. Returns when the next delayed entry
    /// is due, if any remain delayed, so the caller knows when to look again.
    pub fn take(&self, now: Instant, max: usize, out: &mut Vec<Entry>) -> Option<Instant> {
        let mut state = self.lock();
        while let Some(Reverse(first)) = state.delayed.peek() {
            if first.due > now {
                break;
            }
            if let Some(Reverse(d)) = state.delayed.pop() {
                state.ready.push_back(d.entry);
            }
        }
        let n = max.min(state.ready.len());
        out.extend(state.ready.drain(..n));
        state.delayed.peek().map(|Reverse(d)| d.due)
    }

    /// (ready, delayed) lengths.
    pub fn len(&self) -> (usize, usize) {
        let state = self.lock();
        (state.ready.len(), state.delayed.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(id: u64) -> Entry {
        Entry::new(
            Deliver {
                msg_id: MsgId(id),
                ..Deliver::default()
            },
            DeliverKind::Mo,
        )
    }

    fn ids(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.msg_id().0).collect()
    }

    #[test]
    fn delayed_entries_become_ready_in_due_order() {
        let outbox = Outbox::default();
        let t0 = Instant::now();
        outbox.push_at(entry(2), t0 + Duration::from_millis(20));
        outbox.push_at(entry(1), t0 + Duration::from_millis(10));
        outbox.push([entry(0)]);
        let mut out = Vec::new();
        assert_eq!(
            outbox.take(t0, 10, &mut out),
            Some(t0 + Duration::from_millis(10))
        );
        assert_eq!(ids(&out), [0]);
        out.clear();
        assert_eq!(
            outbox.take(t0 + Duration::from_millis(30), 10, &mut out),
            None
        );
        assert_eq!(ids(&out), [1, 2]);
    }

    #[test]
    fn take_respects_max_and_push_front_keeps_order() {
        let outbox = Outbox::default();
        outbox.push([entry(3), entry(4)]);
        outbox.push_front(vec![entry(1), entry(2)]);
        let mut out = Vec::new();
        outbox.take(Instant::now(), 3, &mut out);
        assert_eq!(ids(&out), [1, 2, 3]);
        assert_eq!(outbox.len(), (1, 0));
    }

    #[test]
    fn only_news_wake_connections() {
        let outbox = Outbox::default();
        let mut rx = outbox.subscribe();
        let t0 = Instant::now();
        outbox.push_at(entry(1), t0 + Duration::from_secs(1));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        // Later than the earliest: no wake-up needed.
        outbox.push_at(entry(2), t0 + Duration::from_secs(2));
        assert!(!rx.has_changed().unwrap());
        outbox.push([entry(3)]);
        assert!(rx.has_changed().unwrap());
    }
}
