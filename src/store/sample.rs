//! What the metrics sampler reads every few seconds: stream lengths, each channel's consumer
//! group pending and lag, and long MO waiting for parts. A few cheap commands per sample, never
//! per message.

use super::outbound::GroupBacklog;
use super::{Batch, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSample {
    /// Per outbound stream asked for, in that order: its XLEN and its group's backlog (`None`
    /// before the consumer group exists).
    pub outbound: Vec<(u64, Option<GroupBacklog>)>,
    /// XLEN of the dead-letter, reports and MO streams, in that order.
    pub lengths: [u64; 3],
    /// Reassembly sets of long MO waiting for parts.
    pub mo_pending: u64,
    /// Status reports held until their Msg_Id is mapped.
    pub reports_held: u64,
}

impl Store {
    pub async fn sample_streams(
        &self,
        outbound: &[String],
        group: &str,
    ) -> Result<StreamSample, StoreError> {
        let k = &self.keys;
        let mut pipe = Batch::new();
        for stream in outbound {
            pipe.cmd("XLEN").arg(stream);
        }
        // Every channel's dead letters, summed.
        for stream in outbound {
            pipe.cmd("XLEN").arg(k.dead_letters_of(stream));
        }
        for stream in [k.reports(), k.mo()] {
            pipe.cmd("XLEN").arg(stream);
        }
        pipe.cmd("ZCARD").arg(k.mo_pending());
        pipe.cmd("ZCARD").arg(k.held_reports());
        let counts: Vec<u64> = self.query_pipeline(&pipe).await?;
        let n = outbound.len();
        let dead: u64 = counts[n..2 * n].iter().sum();
        let rest = &counts[2 * n..];
        let mut sample = StreamSample {
            outbound: Vec::with_capacity(n),
            lengths: [dead, rest[0], rest[1]],
            mo_pending: rest[2],
            reports_held: rest[3],
        };
        for (stream, len) in outbound.iter().zip(&counts) {
            let group = self.group_backlog(stream, group).await?;
            sample.outbound.push((*len, group));
        }
        Ok(sample)
    }
}
