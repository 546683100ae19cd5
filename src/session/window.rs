//! Requests on the wire waiting for their response, with their resend deadlines, and the
//! Sequence_Id counter that never hands out an id still in flight.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use super::error::SubmitError;
use crate::protocol::{MsgId, Pdu};

/// What a successful submit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitAccepted {
    /// The ISMG's id for this segment: reports carry it.
    pub msg_id: MsgId,
    /// Sequence_Id of the send that was answered.
    pub sequence_id: u32,
    /// Sends of the answered request (1 unless it was resent after T or after a dropped
    /// connection).
    pub sends: u32,
    /// Resubmissions after Result 8 before this acceptance.
    pub flow_control_retries: u32,
    /// From the last send to the response.
    pub rtt: Duration,
}

pub(crate) type Reply = oneshot::Sender<Result<SubmitAccepted, SubmitError>>;

/// A SUBMIT owned by the link until it is answered. The permit is its slot in the window: it is
/// released when this value is dropped, whatever the outcome. It outlives the connection it was
/// sent on: a request still unanswered when the connection drops is sent again on the next one,
/// and what it went through before is counted here, so its bounds hold across reconnects.
#[derive(Debug)]
pub(crate) struct Pending {
    pub pdu: Pdu,
    pub reply: Reply,
    pub _permit: OwnedSemaphorePermit,
    pub flow_control_attempts: u32,
    /// Sends on earlier connections that dropped before answering it.
    pub unanswered_sends: u32,
    /// A connection dropped while it was unanswered: it could be what the ISMG chokes on, so it
    /// goes out alone until it is answered.
    pub suspect: bool,
    /// Connections that dropped while it was the only request in flight on them.
    pub blamed: u32,
}

impl Pending {
    pub(crate) fn new(pdu: Pdu, reply: Reply, permit: OwnedSemaphorePermit) -> Pending {
        Pending {
            pdu,
            reply,
            _permit: permit,
            flow_control_attempts: 0,
            unanswered_sends: 0,
            suspect: false,
            blamed: 0,
        }
    }
}

impl Pending {
    pub(crate) fn finish(self, outcome: Result<SubmitAccepted, SubmitError>) {
        // The caller may have stopped waiting; nothing to do then.
        let _ = self.reply.send(outcome);
    }
}

#[derive(Debug)]
pub(crate) struct Sent {
    pub pending: Pending,
    /// Sends so far, on this connection and the ones that dropped before.
    pub sends: u32,
    /// The last send.
    pub sent_at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    entries: HashMap<u32, Sent>,
    /// (deadline, Sequence_Id, sends at that deadline), in send order. T is the same for every
    /// request, so deadlines are in order too and the front is always the earliest. Entries whose
    /// request was answered or resent are stale and skipped.
    deadlines: VecDeque<(Instant, u32, u32)>,
}

impl Window {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn contains(&self, sequence_id: u32) -> bool {
        self.entries.contains_key(&sequence_id)
    }

    pub(crate) fn get(&self, sequence_id: u32) -> Option<&Sent> {
        self.entries.get(&sequence_id)
    }

    pub(crate) fn insert(&mut self, sequence_id: u32, sent: Sent, deadline: Instant) {
        self.deadlines
            .push_back((deadline, sequence_id, sent.sends));
        self.entries.insert(sequence_id, sent);
    }

    pub(crate) fn remove(&mut self, sequence_id: u32) -> Option<Sent> {
        let sent = self.entries.remove(&sequence_id);
        self.drop_stale_front();
        sent
    }

    /// The earliest deadline still in force.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, ..)| *at)
    }

    /// Takes out one request whose deadline has passed.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(u32, Sent)> {
        while let Some(&(at, seq, sends)) = self.deadlines.front() {
            if at > now {
                return None;
            }
            self.deadlines.pop_front();
            if self.entries.get(&seq).is_some_and(|s| s.sends == sends) {
                return self.entries.remove(&seq).map(|sent| (seq, sent));
            }
        }
        None
    }

    /// Every request still waiting, e.g. when the connection is gone.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (u32, Sent)> + '_ {
        self.deadlines.clear();
        self.entries.drain()
    }

    fn drop_stale_front(&mut self) {
        while let Some(&(_, seq, sends)) = self.deadlines.front() {
            if self.entries.get(&seq).is_some_and(|s| s.sends == sends) {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}

/// Sequence_Id allocation: +1 per request, wrapping, never 0, never an id still in flight.
/// It lives with the link, not the connection, so ids keep counting across reconnects.
#[derive(Debug)]
pub(crate) struct SequenceIds {
    next: u32,
}

impl Default for SequenceIds {
    fn default() -> Self {
        SequenceIds { next: 1 }
    }
}

impl SequenceIds {
    pub(crate) fn next(&mut self, in_use: impl Fn(u32) -> bool) -> u32 {
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if id != 0 && !in_use(id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn sent(sends: u32, at: Instant) -> Sent {
        let (reply, _) = oneshot::channel();
        Sent {
            pending: Pending::new(
                Pdu::ActiveTest,
                reply,
                Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            ),
            sends,
            sent_at: at,
        }
    }

    #[test]
    fn sequence_ids_skip_zero_and_ids_in_flight() {
        let mut ids = SequenceIds { next: u32::MAX - 1 };
        assert_eq!(ids.next(|_| false), u32::MAX - 1);
        assert_eq!(ids.next(|id| id == u32::MAX), 1);
        assert_eq!(ids.next(|id| id == 2 || id == 3), 4);
    }

    #[test]
    fn expired_requests_come_out_in_deadline_order_and_stale_ones_are_skipped() {
        let t0 = Instant::now();
        let t = Duration::from_secs(1);
        let mut w = Window::default();
        w.insert(1, sent(1, t0), t0 + t);
        w.insert(2, sent(1, t0), t0 + t);
        w.insert(3, sent(1, t0), t0 + t * 2);
        assert!(w.remove(1).is_some());
        // The answered request no longer holds the front.
        assert_eq!(w.next_deadline(), Some(t0 + t));
        assert!(w.pop_expired(t0).is_none());
        let (seq, mut s) = w.pop_expired(t0 + t).unwrap();
        assert_eq!(seq, 2);
        // Resent: a new deadline with a new send count; the old one must not fire.
        s.sends = 2;
        w.insert(2, s, t0 + t * 3);
        assert_eq!(w.pop_expired(t0 + t * 2).map(|(seq, _)| seq), Some(3));
        assert!(w.pop_expired(t0 + t * 2).is_none());
        assert_eq!(
            w.pop_expired(t0 + t * 3).map(|(seq, s)| (seq, s.sends)),
            Some((2, 2))
        );
        assert!(w.is_empty());
    }
}
