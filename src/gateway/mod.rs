//! The composition root of `cmpp-gateway run`: Redis, the connection slots (each a leased link
//! with its worker and receiver, `slot`/`sending`) and the HTTP server, started in dependency
//! order and stopped in reverse, so in-flight messages finish on links that are still open.

mod sending;
mod slot;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::http::{self, ConnectionLimits, HttpState};
use crate::metrics::Metrics;
use crate::metrics::sampler;
use crate::session::LinkSet;
use crate::store::{Store, StoreError};

use sending::Shared;
use slot::Slot;

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
    if started.is_some() {
        if config.ingress_only {
            tracing::info!(http = %addr, "gateway running, HTTP ingress only (no CMPP link here)")
        } else {
            for c in &config.channels {
                tracing::info!(http = %addr, channel = %c.name, cmpp = %c.link.addr, connections = c.connections_per_instance, allowed = c.max_connections, "gateway running");
            }
        }
        if let Some(tx) = progress.running {
            let _ = tx.send(addr);
        }
    }

    shutdown.cancelled().await;
    if let Some(started) = started {
        tracing::info!("shutting down: draining the workers, then closing the links");
        for slot in started.slots {
            let _ = slot.await;
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
    /// One task per connection slot this instance may hold; none on an ingress-only instance.
    slots: Vec<JoinHandle<()>>,
}

impl Started {
    /// Connects to Redis (waiting for it as long as it takes), starts a slot task per connection
    /// this instance may hold, the metrics sampler, and hands the store and the links to HTTP.
    /// `None` if shutdown came first.
    async fn start(
        config: &Arc<GatewayConfig>,
        metrics: &Arc<Metrics>,
        state: &HttpState,
        shutdown: &CancellationToken,
    ) -> Option<Started> {
        tracing::info!(redis = %config.redis.describe(), "connecting to redis");
        let store = retry_redis(shutdown, || {
            Store::connect(&config.redis, config.store.clone())
        })
        .await?;
        let outbound = config
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (sampler::outbound_label(&c.name, i == 0), c.stream.clone()))
            .collect();
        let sampler_task = tokio::spawn(sampler::run(
            store.clone(),
            config.worker.group.clone(),
            outbound,
            metrics.clone(),
            config.metrics.sample_interval,
            shutdown.clone(),
        ));
        // An ingress-only instance serves HTTP into the streams; the links and the workers live
        // elsewhere (carriers limit connections per account).
        if config.ingress_only {
            state.connect(store, None);
            return Some(Started {
                sampler_task,
                slots: Vec::new(),
            });
        }
        let links = LinkSet::default();
        let shared = Arc::new(Shared {
            config: config.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            routes: Arc::new(
                config
                    .channels
                    .iter()
                    .map(|c| (c.name.clone(), c.stream.clone()))
                    .collect(),
            ),
        });
        let mut slots = Vec::new();
        for channel in &config.channels {
            let families = &metrics.families;
            families
                .leases_allowed
                .with_label_values(&[&channel.name])
                .set(i64::from(channel.max_connections));
            families.leases_held.with_label_values(&[&channel.name]);
            families.lease_losses.with_label_values(&[&channel.name]);
            let channel = Arc::new(channel.clone());
            let hold_off = Arc::new(std::sync::Mutex::new(None));
            for _ in 0..channel.connections_per_instance {
                let slot = Slot {
                    shared: shared.clone(),
                    channel: channel.clone(),
                    hold_off: hold_off.clone(),
                    links: links.clone(),
                    shutdown: shutdown.clone(),
                };
                slots.push(tokio::spawn(slot.run()));
            }
        }
        state.connect(store, Some(links));
        Some(Started {
            sampler_task,
            slots,
        })
    }
}

/// Calls `connect` until Redis answers; `None` if shutdown came first.
pub(crate) async fn retry_redis<T, F, Fut>(shutdown: &CancellationToken, connect: F) -> Option<T>
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
