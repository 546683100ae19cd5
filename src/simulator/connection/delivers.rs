//! The DELIVER side of a connection: pulling from the account's outbox within the deliver
//! window, matching DELIVER_RESPs, and handing back whatever is unanswered (after deliver_retry,
//! or when the connection ends) so that it goes out again.

use tokio::time::Instant;
use tracing::debug;

use super::Connection;
use crate::protocol::DeliverResp;
use crate::simulator::counters::inc;
use crate::simulator::outbox::{DeliverKind, Entry};

/// A DELIVER written on this connection and not yet answered.
pub(super) struct InFlight {
    pub sent_at: Instant,
    pub entry: Entry,
}

impl Connection {
    pub(super) fn deliver_resp(&mut self, sequence: u32, resp: DeliverResp) {
        let Some(at) = self
            .in_flight
            .iter()
            .position(|f| f.entry.packet.sequence_id == sequence)
        else {
            // Late (we already re-queued it) or never asked for.
            debug!(
                conn = self.id,
                sequence, "DELIVER_RESP matches no DELIVER in flight"
            );
            return;
        };
        let flight = self.in_flight.remove(at);
        if resp.msg_id != flight.entry.msg_id() {
            debug!(conn = self.id, sequence, got = %resp.msg_id, expected = %flight.entry.msg_id(),
                "DELIVER_RESP Msg_Id differs from the DELIVER's; matched by Sequence_Id");
        }
        let counters = &self.shared.counters;
        if resp.result == 0 {
            inc(match flight.entry.kind {
                DeliverKind::Report => &counters.reports_acked,
                DeliverKind::Mo => &counters.mo_acked,
            });
        } else {
            // The SP could not take it now; a real ISMG tries again later.
            inc(&counters.deliver_resp_nonzero);
            let due = self.now + self.behaviour.deliver_retry;
            self.account.outbox.push_at(flight.entry, due);
        }
    }

    /// DELIVERs unanswered for deliver_retry go back to the front of the outbox to be resent.
    pub(super) fn expire_in_flight(&mut self, now: Instant) {
        let retry = self.behaviour.deliver_retry;
        if !self.in_flight.iter().any(|f| f.sent_at + retry <= now) {
            return;
        }
        let (expired, kept) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition::<Vec<_>, _>(|f| f.sent_at + retry <= now);
        self.in_flight = kept;
        debug!(
            conn = self.id,
            count = expired.len(),
            "DELIVERs unanswered; re-queued"
        );
        self.account
            .outbox
            .push_front(expired.into_iter().map(|f| f.entry).collect());
    }

    pub(super) fn pull_outbox(&mut self, now: Instant) {
        let room = self
            .behaviour
            .deliver_window
            .saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        // Mark before looking, so that anything pushed after the look wakes us again.
        self.outbox_wake.mark_unchanged();
        let mut taken = std::mem::take(&mut self.taken);
        self.outbox_due = self.account.outbox.take(now, room, &mut taken);
        for mut entry in taken.drain(..) {
            entry.packet.sequence_id = self.next_sequence();
            entry.fit_version(self.version);
            if !self.write_damaged(&entry.packet, entry.damage) {
                // Checked when queued, so this is a bug; resending would fail the same way.
                continue;
            }
            let counters = &self.shared.counters;
            inc(match (entry.sends, entry.kind) {
                (0, DeliverKind::Report) => &counters.reports_sent,
                (0, DeliverKind::Mo) => &counters.mo_sent,
                _ => &counters.delivers_resent,
            });
            entry.sends += 1;
            self.meter.deliver_sent();
            debug!(conn = self.id, sequence = entry.packet.sequence_id, msg_id = %entry.msg_id(), sends = entry.sends, "DELIVER");
            self.in_flight.push(InFlight {
                sent_at: now,
                entry,
            });
        }
        self.taken = taken;
    }

    /// Returns the DELIVERs still in flight to the outbox, first-sent first; returns how many.
    pub(super) fn hand_back_in_flight(&mut self) -> usize {
        let entries: Vec<Entry> = self.in_flight.drain(..).map(|f| f.entry).collect();
        let n = entries.len();
        self.account.outbox.push_front(entries);
        n
    }
}
