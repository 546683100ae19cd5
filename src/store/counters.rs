//! Per-minute counters for the console's delivery ratio: one hash per minute
//! (`cmpp:stats:{Unix ms / 60 000}`) with `delivered` and `failed`, incremented by the report
//! script when a report decides a message, so every instance's reports count and a restart
//! loses nothing. Reading an hour is one pipelined round trip of 60 HMGETs.

use std::time::Duration;

use serde::Serialize;

use super::{Batch, Store, StoreError, now_ms};

/// Long enough to cover the hour read back, short enough that the keys never pile up.
pub(crate) const COUNTER_TTL: Duration = Duration::from_secs(2 * 3600);
const MINUTES: u64 = 60;

/// Messages decided by a report in the last hour (the current minute and the 59 before it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HourOutcomes {
    pub delivered: u64,
    pub failed: u64,
    /// `delivered / (delivered + failed)`, rounded to 4 places; `None` without any.
    pub delivery_ratio: Option<f64>,
}

impl Store {
    pub async fn last_hour_outcomes(&self) -> Result<HourOutcomes, StoreError> {
        let this_minute = now_ms() / 60_000;
        let mut pipe = Batch::new();
        for minute in this_minute.saturating_sub(MINUTES - 1)..=this_minute {
            pipe.cmd("HMGET")
                .arg(self.keys.minute_counters(minute))
                .arg("delivered")
                .arg("failed");
        }
        let minutes: Vec<(Option<u64>, Option<u64>)> = self.query_pipeline(&pipe).await?;
        let (delivered, failed) = minutes.iter().fold((0, 0), |(d, f), (md, mf)| {
            (d + md.unwrap_or(0), f + mf.unwrap_or(0))
        });
        let decided = delivered + failed;
        Ok(HourOutcomes {
            delivered,
            failed,
            delivery_ratio: (decided > 0)
                .then(|| (delivered as f64 / decided as f64 * 10_000.0).round() / 10_000.0),
        })
    }
}
