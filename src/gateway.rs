//! The composition root of `cmpp-gateway run`: Redis, the link, the worker and the HTTP server,
//! started in dependency order and stopped in reverse, so in-flight messages finish on a link
//! that is still open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::http::{self, ConnectionLimits, HttpState};
use crate::inbound::Receiver;
use crate::metrics::Metrics;
use crate::metrics::link::LinkMetrics;
use crate::metrics::sampler;
use crate::session::{Link, LinkParts};
use crate::store::{Consumer, Store, StoreError};
use crate::worker::Worker;

const REDIS_RETRY: Duration = Duration::from_secs(1);

/// Who to tell when start-up reaches a stage; each receives the HTTP address.
#[derive(Debug, Default)]
pub struct Progress {
    /// As soon as the HTTP port is bound (Redis may not answer yet).
    pub listening: Option<oneshot::Sender<SocketAddr>>,
    /// Once Redis answered and everything runs.
    pub running: Option<oneshot::Sender<SocketAddr>>,
}

/// Runs until `shutdown` is cancelled, telling `progress` how far start-up got.
pub async fn run(
    config: GatewayConfig,
    shutdown: CancellationToken,
    progress: Progress,
) -> Result<(), String> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if config.http.api_keys.is_empty() && !config.http.bind.ip().is_loopback() {
        tracing::warn!(bind = %config.http.bind, "no api_keys configured and HTTP listens beyond loopback: anyone who can reach it can send SMS");
    }
    let listener = TcpListener::bind(config.http.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.http.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics_task = match config.metrics.bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind)
                .await
                .map_err(|e| format!("cannot listen on {bind} (metrics): {e}"))?;
            Some(tokio::spawn(http::serve_metrics(
                listener,
                metrics.clone(),
                ConnectionLimits::for_metrics(&config.http),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    // HTTP answers from here on, before Redis does: the health checks at once, the rest 503
    // until the store is connected (a load balancer's check fails fast instead of hanging).
    let state = Arc::new(HttpState::starting(config.clone(), metrics.clone()));
    let http_task = tokio::spawn(http::serve(listener, state.clone(), shutdown.clone()));
    if let Some(tx) = progress.listening {
        let _ = tx.send(addr);
    }

    let started = Started::start(&config, &metrics, &state, &shutdown).await;
    if let Some(started) = &started {
        match &started.sending {
            Some(_) => tracing::info!(http = %addr, cmpp = %config.link.addr, "gateway running"),
            None => {
                tracing::info!(http = %addr, "gateway running, HTTP ingress only (no CMPP link here)")
            }
        }
        if let Some(tx) = progress.running {
            let _ = tx.send(addr);
        }
    }

    shutdown.cancelled().await;
    if let Some(started) = started {
        if let Some(sending) = started.sending {
            sending.stop(config.link.close_timeout).await;
        }
        let _ = started.sampler_task.await;
    }
    let _ = http_task.await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    Ok(())
}

/// What starts once Redis answers.
struct Started {
    sampler_task: JoinHandle<()>,
    /// `None` on an ingress-only instance.
    sending: Option<Sending>,
}

impl Started {
    /// Connects to Redis (waiting for it as long as it takes), starts the sending side, the
    /// metrics sampler, and hands the store and the link to HTTP. `None` if shutdown came first.
    async fn start(
        config: &Arc<GatewayConfig>,
        metrics: &Arc<Metrics>,
        state: &HttpState,
        shutdown: &CancellationToken,
    ) -> Option<Started> {
        tracing::info!(redis = %config.redis.redacted_url(), "connecting to redis");
        let store = retry_redis(shutdown, || {
            Store::connect(&config.redis, config.store.clone())
        })
        .await?;
        // An ingress-only instance serves HTTP into the stream; the link and the worker live
        // elsewhere (carriers limit connections per account).
        let sending = if config.ingress_only {
            None
        } else {
            Some(Sending::start(config, &store, metrics, shutdown).await?)
        };
        let sampler_task = tokio::spawn(sampler::run(
            store.clone(),
            config.worker.group.clone(),
            metrics.clone(),
            config.metrics.sample_interval,
            shutdown.clone(),
        ));
        state.connect(store, sending.as_ref().map(|s| s.link.clone()));
        Some(Started {
            sampler_task,
            sending,
        })
    }
}

/// The sending and receiving side: the link, the worker that drains the stream over it, and
/// the receiver that stores what the ISMG delivers.
struct Sending {
    link: Link,
    /// The link outlives the worker: it closes only after the worker's messages are answered.
    link_shutdown: CancellationToken,
    link_task: JoinHandle<()>,
    worker_task: JoinHandle<()>,
    inbound_task: JoinHandle<()>,
}

impl Sending {
    /// `None` when shutdown came before Redis answered.
    async fn start(
        config: &Arc<GatewayConfig>,
        store: &Store,
        metrics: &Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> Option<Sending> {
        let consumer = retry_redis(shutdown, || {
            Consumer::new(store, &config.redis, config.worker.clone())
        })
        .await?
        .counting_msg_id_duplicates(metrics.families.msg_id_duplicates.clone());
        let link_shutdown = CancellationToken::new();
        let LinkParts {
            link,
            inbound,
            task: link_task,
        } = Link::spawn(
            config.link.clone(),
            Some(Arc::new(LinkMetrics::new(
                metrics.clone(),
                &config.link.sp_id,
                config.link.window,
            ))),
            link_shutdown.clone(),
        );
        // The receive path gets a connection of its own: each DELIVER the ISMG sends waits for
        // its write, and the ISMG allows only a window of them unanswered, so report writes must
        // not queue behind the worker's batches on a shared connection.
        let inbound_store = retry_redis(shutdown, || {
            Store::connect(&config.redis, config.store.clone())
        })
        .await?;
        let receiver = Receiver::new(
            inbound_store,
            config.store.clone(),
            metrics.clone(),
            &config.link.sp_id,
            shutdown.clone(),
        );
        let inbound_task = tokio::spawn(receiver.run(inbound));
        let worker = Worker::new(
            link.clone(),
            consumer,
            config.message.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let worker_task = tokio::spawn(worker.run());
        Some(Sending {
            link,
            link_shutdown,
            link_task,
            worker_task,
            inbound_task,
        })
    }

    /// After shutdown: messages in flight get until `close_timeout` to be answered; after that
    /// the link closes, hands them back, and their entries stay pending for the next start to
    /// reclaim.
    async fn stop(mut self, close_timeout: Duration) {
        tracing::info!("shutting down: draining the worker, then closing the link");
        if tokio::time::timeout(close_timeout, &mut self.worker_task)
            .await
            .is_err()
        {
            tracing::info!(
                "messages still in flight after close_timeout; they stay pending in the stream"
            );
            self.link_shutdown.cancel();
            let _ = self.worker_task.await;
        }
        self.link_shutdown.cancel();
        let _ = self.link_task.await;
        let _ = self.inbound_task.await;
    }
}

/// Calls `connect` until Redis answers; `None` if shutdown came first.
async fn retry_redis<T, F, Fut>(shutdown: &CancellationToken, connect: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    loop {
        match connect().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error = %e, "redis unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(REDIS_RETRY) => {}
                    () = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
