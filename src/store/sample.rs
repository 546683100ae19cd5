//! What the metrics sampler reads every few seconds: stream lengths, the consumer group's
//! pending and lag, and long MO waiting for parts. A few cheap commands per sample, never per
//! message.

use super::outbound::GroupBacklog;
use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSample {
    /// XLEN of the outbound, dead-letter, reports and MO streams, in that order.
    pub lengths: [u64; 4],
    /// `None` before the consumer group exists.
    pub group: Option<GroupBacklog>,
    /// Reassembly sets of long MO waiting for parts.
    pub mo_pending: u64,
    /// Status reports held until their Msg_Id is mapped.
    pub reports_held: u64,
}

impl Store {
    pub async fn sample_streams(&self, group: &str) -> Result<StreamSample, StoreError> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        for stream in [k.outbound(), k.dead_letters(), k.reports(), k.mo()] {
            pipe.cmd("XLEN").arg(stream);
        }
        pipe.cmd("ZCARD").arg(k.mo_pending());
        pipe.cmd("ZCARD").arg(k.held_reports());
        let (mt, dead, reports, mo, mo_pending, reports_held): (u64, u64, u64, u64, u64, u64) =
            pipe.query_async(&mut self.conn()).await?;
        Ok(StreamSample {
            lengths: [mt, dead, reports, mo],
            group: self.group_backlog(group).await?,
            mo_pending,
            reports_held,
        })
    }
}
