//! The outbound stream's length while a benchmark runs: sampled every 100 ms for the peak, and
//! read once at the end with the consumer group's share (what is not yet sent), so a run shows
//! whether the stream holds only the work not yet done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const STREAM: &str = "cmpp:mt";
const EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StreamLengths {
    /// The largest XLEN sampled during the run.
    pub peak: u64,
    /// XLEN when the run ended.
    pub end: u64,
    /// Of those, entries not yet read or not yet acknowledged by the group (all of them when
    /// there is no group: nothing reads them).
    pub unacknowledged_end: u64,
}

pub struct StreamWatch {
    conn: MultiplexedConnection,
    peak: Arc<AtomicU64>,
    stop: CancellationToken,
    sampler: JoinHandle<()>,
}

impl StreamWatch {
    pub fn start(conn: MultiplexedConnection) -> StreamWatch {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let sampler = tokio::spawn({
            let (mut conn, peak, stop) = (conn.clone(), peak.clone(), stop.clone());
            async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(EVERY) => {}
                        () = stop.cancelled() => return,
                    }
                    if let Ok(len) = xlen(&mut conn).await {
                        peak.fetch_max(len, Ordering::Relaxed);
                    }
                }
            }
        });
        StreamWatch {
            conn,
            peak,
            stop,
            sampler,
        }
    }

    pub async fn finish(mut self) -> Result<StreamLengths, String> {
        self.stop.cancel();
        let _ = self.sampler.await;
        let end = xlen(&mut self.conn).await?;
        let groups: Option<redis::streams::StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(STREAM)
            .query_async(&mut self.conn)
            .await
            .ok();
        let unacknowledged_end = groups
            .and_then(|g| g.groups.into_iter().next())
            .map_or(end, |g| g.lag.unwrap_or(0) as u64 + g.pending as u64);
        Ok(StreamLengths {
            peak: self.peak.load(Ordering::Relaxed).max(end),
            end,
            unacknowledged_end,
        })
    }
}

async fn xlen(conn: &mut MultiplexedConnection) -> Result<u64, String> {
    redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())
}
