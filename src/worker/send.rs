//! Sending one message: every segment through the link (which carries a segment across dropped
//! connections itself, within its bounds); then the bookkeeping, then the acknowledgement, in
//! that order.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use super::acker::Acker;
use super::persist::{GaveUp, persist};
use crate::message::OutboundMessage;
use crate::metrics::Metrics;
use crate::protocol::Submit;
use crate::session::{Link, SubmitError};
use crate::store::{Consumer, MessageStatus, OutboundEntry, SegmentRecord, now_ms};

pub(crate) struct Job {
    pub link: Link,
    pub consumer: Arc<Consumer>,
    pub shutdown: CancellationToken,
    pub acker: Acker,
    pub in_flight: super::in_flight::InFlight,
    pub metrics: Arc<Metrics>,
}

impl Job {
    /// `answered`: segments already accepted (by a holder that stopped halfway), by position;
    /// they are not sent again.
    pub(crate) async fn send(
        self,
        entry: OutboundEntry,
        message: OutboundMessage,
        submits: Vec<Submit>,
        answered: Vec<Option<SegmentRecord>>,
    ) {
        let total = submits.len();
        let mut records: Vec<Option<SegmentRecord>> = answered;
        records.resize(total, None);
        let to_send = submits
            .into_iter()
            .enumerate()
            .filter(|(i, _)| records[*i].is_none());
        let outcomes =
            join_all(to_send.map(|(i, s)| self.submit_segment(&message, i, total, s))).await;
        let mut failure = None;
        for (i, outcome) in outcomes {
            match outcome {
                Ok(record) => records[i] = Some(record),
                // The link closed for good with a segment unanswered: leave the entry pending for
                // a later start.
                Err(SubmitError::Closed | SubmitError::LinkLost { .. }) => {
                    self.in_flight.remove(&entry.stream_id);
                    return;
                }
                Err(e) => failure = Some(e),
            }
        }
        // What the ISMG accepted must be on record before the entry is acknowledged: a reclaim
        // would send it again. If Redis refuses the record for good, the message ends dead with
        // a reason, never sent twice.
        let recorded = if records.iter().all(Option::is_none) {
            Ok(())
        } else {
            persist(&self.shutdown, "recording Msg_Ids", || {
                self.consumer
                    .record_submitted(&message.id, &message.to, &entry, &records)
            })
            .await
        };
        let (outcome, reason) = match (&failure, recorded) {
            // Shutting down with Redis away: left pending for the next start.
            (_, Err(GaveUp::Shutdown)) => {
                self.in_flight.remove(&entry.stream_id);
                return;
            }
            (None, Ok(())) => (MessageStatus::Submitted, None),
            (None, Err(GaveUp::Refused(e))) => (
                MessageStatus::Dead,
                Some(format!(
                    "submitted (every segment accepted) but its Msg_Ids could not be recorded ({e}); not sent again, its reports are written unmatched"
                )),
            ),
            (Some(e), recorded) => {
                let status = match e {
                    SubmitError::Rejected { .. } | SubmitError::FlowControlExhausted { .. } => {
                        MessageStatus::Failed
                    }
                    _ => MessageStatus::Dead,
                };
                let unrecorded = match recorded {
                    Err(GaveUp::Refused(r)) => {
                        format!(
                            "; the Msg_Ids of its accepted segments could not be recorded ({r})"
                        )
                    }
                    _ => String::new(),
                };
                (status, Some(format!("{e}{unrecorded}")))
            }
        };
        if let Some(reason) = &reason {
            tracing::debug!(id = %message.id, %reason, "message failed");
            let dead = persist(&self.shutdown, "writing a dead letter", || {
                self.consumer
                    .record_dead(&entry, Some(&message.id), outcome, reason)
            })
            .await;
            if dead.is_err() {
                // Neither a state nor a dead letter: pending, for a reclaim to try again.
                self.in_flight.remove(&entry.stream_id);
                return;
            }
        }
        self.metrics.worker_finished(outcome);
        self.acker.ack(entry.stream_id);
    }

    /// Sends segment `i` (from 0) of `total`. A long message's accepted segment goes on record
    /// at once, so that if this process stops before the others are answered the message is
    /// sent again without it; a failure to record is only logged (the whole message is recorded
    /// at the end anyway; only a stop in between would then send the segment twice).
    async fn submit_segment(
        &self,
        message: &OutboundMessage,
        i: usize,
        total: usize,
        submit: Submit,
    ) -> (usize, Result<SegmentRecord, SubmitError>) {
        let outcome = self.link.submit(submit).await.map(|a| SegmentRecord {
            msg_id: a.msg_id.0,
            submitted_at: now_ms(),
        });
        if let (Ok(record), true) = (&outcome, total > 1) {
            let recorded = self
                .consumer
                .record_segment(&message.id, &message.to, i + 1, total, *record)
                .await;
            if let Err(e) = recorded {
                tracing::debug!(id = %message.id, segment = i + 1, error = %e, "cannot record a segment yet");
            }
        }
        (i, outcome)
    }
}
