//! Sending one message: every segment through the link (which carries a segment across dropped
//! connections itself, within its bounds); then the bookkeeping, then the acknowledgement, in
//! that order.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use super::acker::Acker;
use super::persist::persist;
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
    pub(crate) async fn send(
        self,
        entry: OutboundEntry,
        message: OutboundMessage,
        submits: Vec<Submit>,
    ) {
        let outcomes = join_all(submits.into_iter().map(|s| self.link.submit(s))).await;
        let mut accepted = Vec::with_capacity(outcomes.len());
        let mut failure = None;
        for outcome in outcomes {
            match outcome {
                Ok(a) => accepted.push(SegmentRecord {
                    msg_id: a.msg_id.0,
                    submitted_at: now_ms(),
                }),
                // The link closed for good with a segment unanswered: leave the entry pending for
                // a later start.
                Err(SubmitError::Closed | SubmitError::LinkLost { .. }) => {
                    self.in_flight.remove(&entry.stream_id);
                    return;
                }
                Err(e) => failure = Some(e),
            }
        }
        let outcome = match &failure {
            None => MessageStatus::Submitted,
            Some(SubmitError::Rejected { .. } | SubmitError::FlowControlExhausted { .. }) => {
                MessageStatus::Failed
            }
            Some(_) => MessageStatus::Dead,
        };
        let recorded = match &failure {
            None => {
                self.with_redis(|| {
                    self.consumer
                        .record_submitted(&message.id, &message.to, &entry, &accepted)
                })
                .await
            }
            Some(e) => {
                let reason = e.to_string();
                tracing::debug!(id = %message.id, %reason, "message failed");
                // Segments that did get a Msg_Id are kept so their reports still correlate.
                let kept = accepted.is_empty()
                    || self
                        .with_redis(|| {
                            self.consumer.record_submitted(
                                &message.id,
                                &message.to,
                                &entry,
                                &accepted,
                            )
                        })
                        .await;
                kept && self
                    .with_redis(|| {
                        self.consumer
                            .record_dead(&entry, Some(&message.id), outcome, &reason)
                    })
                    .await
            }
        };
        if recorded {
            self.metrics.worker_finished(outcome);
            self.acker.ack(entry.stream_id);
        } else {
            self.in_flight.remove(&entry.stream_id);
        }
    }

    /// Runs a Redis write (see [`persist`]); `false` leaves the entry pending for a reclaim.
    async fn with_redis<F, Fut>(&self, write: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
    {
        persist(&self.shutdown, "recording a sent message", write).await
    }
}
