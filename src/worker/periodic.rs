//! The worker's housekeeping tasks: a job run on a fixed period (the first run at once) until
//! shutdown. A slow run delays the next rather than piling up behind it.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub(crate) async fn every<F, Fut>(period: Duration, shutdown: CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        job().await;
    }
}
