//! Long messages before they go out: each gets its concatenation reference from Redis (one per
//! recipient and channel, kept in its state, so a message sent again keeps it), and a reclaimed
//! one learns which of its segments a holder that stopped halfway had already got accepted, so
//! only the others are sent again.

use super::persist::persist;
use super::{Ready, Worker};
use crate::message::build_submits;
use crate::store::NeedsReference;

impl Worker {
    /// `Err` leaves the batch pending (Redis refused for good, or shutdown). `fresh` entries
    /// (never read before) cannot have segments on record.
    pub(super) async fn prepare_long<T>(
        &self,
        mut batch: Vec<(Ready, T)>,
        fresh: bool,
    ) -> Result<Vec<(Ready, T)>, ()> {
        let long: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].0.submits.len() > 1)
            .collect();
        if long.is_empty() {
            return Ok(batch);
        }
        let wanted: Vec<NeedsReference<'_>> = long
            .iter()
            .map(|&i| NeedsReference {
                id: &batch[i].0.message.id,
                to: &batch[i].0.message.to,
            })
            .collect();
        let channel = &self.assignment.channel;
        let references = persist(&self.shutdown, "taking concatenation references", || {
            self.consumer.references(channel, &wanted)
        })
        .await
        .map_err(|_| ())?;
        let answered = if fresh {
            vec![Vec::new(); long.len()]
        } else {
            let messages: Vec<(&str, usize)> = long
                .iter()
                .map(|&i| (batch[i].0.message.id.as_str(), batch[i].0.submits.len()))
                .collect();
            persist(&self.shutdown, "reading segments on record", || {
                self.consumer.answered_segments(&messages)
            })
            .await
            .map_err(|_| ())?
        };
        for ((i, reference), answered) in long.into_iter().zip(references).zip(answered) {
            let ready = &mut batch[i].0;
            // Built once with reference 0, so it builds again: the reference changes no length.
            if let Ok(built) = build_submits(&ready.message, &self.assignment.message, reference) {
                ready.submits = built;
            }
            ready.answered = answered;
        }
        Ok(batch)
    }
}
