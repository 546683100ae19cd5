//! Long messages segment by segment. Each answered segment of a long message is put on record at
//! once (its Msg_Id mapped, and kept in the message's state), so a message whose holder stopped
//! halfway is sent again without the segments the ISMG already accepted: the phone gets each
//! part once, under the reference the message kept, and their reports still correlate.

use super::consumer::packed_record;
use super::{Batch, Consumer, SegmentRecord, StoreError};

impl Consumer {
    /// Segment `segment` (from 1) of `segments` was accepted with `record`.
    pub async fn record_segment(
        &self,
        id: &str,
        to: &str,
        segment: usize,
        segments: usize,
        record: SegmentRecord,
    ) -> Result<(), StoreError> {
        let keys = &self.store.keys;
        let packed = packed_record(id, to, segment, segments)?;
        let mut pipe = Batch::new();
        // Only where unmapped, as `record_submitted` maps it (which then finds its own record).
        pipe.cmd("SET")
            .arg(keys.msg_id(record.msg_id))
            .arg(&packed)
            .arg("PX")
            .arg(self.store.ttl_ms())
            .arg("NX")
            .ignore();
        pipe.cmd("HSET")
            .arg(keys.state(id))
            .arg(format!("s{segment}_msg_id"))
            .arg(record.msg_id)
            .arg(format!("s{segment}_submitted_at"))
            .arg(record.submitted_at)
            .ignore();
        self.store.query_pipeline::<()>(&pipe).await
    }

    /// For each message `(id, segments)`, the segments already on record, by position.
    pub async fn answered_segments(
        &self,
        messages: &[(&str, usize)],
    ) -> Result<Vec<Vec<Option<SegmentRecord>>>, StoreError> {
        let mut pipe = Batch::new();
        for (id, segments) in messages {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(self.store.keys.state(id));
            for n in 1..=*segments {
                cmd.arg(format!("s{n}_msg_id"))
                    .arg(format!("s{n}_submitted_at"));
            }
            pipe.add(cmd);
        }
        let replies: Vec<Vec<Option<u64>>> = self.store.query_pipeline(&pipe).await?;
        Ok(replies
            .into_iter()
            .map(|fields| {
                fields
                    .chunks(2)
                    .map(|pair| match pair {
                        [Some(msg_id), Some(submitted_at)] => Some(SegmentRecord {
                            msg_id: *msg_id,
                            submitted_at: *submitted_at,
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .collect())
    }
}
