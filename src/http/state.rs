//! What every handler shares: the store, the configuration, the link handle, and two small
//! caches (the backlog, the rate samples).
//!
//! HTTP serves from the moment its port is bound, before Redis has answered: until the store
//! and the link are [connected](HttpState::connect), every store call is "redis unavailable".

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::errors::HttpError;
use super::rates::RateSampler;
use crate::config::GatewayConfig;
use crate::metrics::Metrics;
use crate::session::{Link, LinkSet};
use crate::store::{Store, StoreError};

/// A hard bound on any store call made for a request, on top of the store's own response
/// timeout, so a request never hangs (a reconnect that stalls, a lock held by a stuck call).
pub const STORE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a measured backlog is trusted before the next XINFO.
pub const BACKLOG_CACHE: Duration = Duration::from_secs(1);

pub struct HttpState {
    /// Set once, when Redis first answered.
    backend: OnceLock<Backend>,
    connected: Notify,
    config: Arc<GatewayConfig>,
    store_deadline: Duration,
    /// The last measured backlog plus what this process enqueued since, and when it was measured.
    /// An async mutex: concurrent requests wait for one XINFO instead of each sending their own.
    backlog: tokio::sync::Mutex<HashMap<String, (Instant, u64)>>,
    rates: Mutex<RateSampler>,
    metrics: Arc<Metrics>,
}

/// What exists once Redis has answered.
struct Backend {
    store: Store,
    /// `None` on an instance without links (ingress only).
    links: Option<LinkSet>,
}

impl HttpState {
    /// `link` is `None` when this process serves HTTP without a CMPP link (tests, ingress-only
    /// instances): `/v1/link` then says `absent`. `metrics` is the gateway's registry.
    pub fn new(
        store: Store,
        config: Arc<GatewayConfig>,
        link: Option<Link>,
        metrics: Arc<Metrics>,
    ) -> HttpState {
        let state = HttpState::starting(config, metrics);
        let channel = state.config.default_channel().name.clone();
        state.connect(store, link.map(|l| LinkSet::single(&channel, l)));
        state
    }

    /// A state without a store yet: the API answers 503 until [`connect`](Self::connect).
    pub fn starting(config: Arc<GatewayConfig>, metrics: Arc<Metrics>) -> HttpState {
        HttpState {
            backend: OnceLock::new(),
            connected: Notify::new(),
            config,
            store_deadline: STORE_DEADLINE,
            backlog: tokio::sync::Mutex::new(HashMap::new()),
            rates: Mutex::new(RateSampler::default()),
            metrics,
        }
    }

    /// Hands over the store (and the link) once Redis answered; later calls change nothing.
    pub fn connect(&self, store: Store, links: Option<LinkSet>) {
        if self.backend.set(Backend { store, links }).is_ok() {
            self.connected.notify_waiters();
        }
    }

    pub fn is_connected(&self) -> bool {
        self.backend.get().is_some()
    }

    /// Returns once [`connect`](Self::connect) was called.
    pub async fn wait_connected(&self) {
        loop {
            // Created before the check, so a `connect` in between still wakes it.
            let notified = self.connected.notified();
            if self.is_connected() {
                return;
            }
            notified.await;
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replaces [`STORE_DEADLINE`].
    pub fn with_store_deadline(mut self, deadline: Duration) -> HttpState {
        self.store_deadline = deadline;
        self
    }

    /// The store; "redis unavailable" until Redis first answered.
    pub fn store(&self) -> Result<&Store, HttpError> {
        match self.backend.get() {
            Some(backend) => Ok(&backend.store),
            None => {
                self.unavailable("redis");
                Err(HttpError::Unavailable)
            }
        }
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The link shown for this process (see [`LinkSet::representative`]).
    pub fn link(&self) -> Option<Link> {
        self.backend.get()?.links.as_ref()?.representative()
    }

    /// Every link this process holds now; `None` on an instance without links.
    pub fn links(&self) -> Option<&LinkSet> {
        self.backend.get()?.links.as_ref()
    }

    pub(crate) fn rates(&self) -> &Mutex<RateSampler> {
        &self.rates
    }

    /// Runs a store call under the hard deadline. Every failure is "redis unavailable" to the
    /// client; the cause goes to the log (store errors never contain the password).
    pub(crate) async fn store_call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, HttpError> {
        match tokio::time::timeout(self.store_deadline, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, unavailable = e.is_unavailable(), "redis {what} failed");
                self.unavailable("redis");
                Err(HttpError::Unavailable)
            }
            Err(_) => {
                tracing::warn!(deadline = ?self.store_deadline, "redis {what} timed out");
                self.unavailable("redis");
                Err(HttpError::Unavailable)
            }
        }
    }

    /// Refuses new work while the outbound backlog has reached `outbound_backlog_limit` (0 = no
    /// limit). Admission is by the backlog before the request, so a batch may overshoot the
    /// limit by at most its own size, and a batch larger than the limit is not refused forever.
    /// The limit is per channel: one account that stopped sending does not refuse another's.
    pub(crate) async fn check_backlog(&self, stream: &str) -> Result<(), HttpError> {
        let limit = self.store()?.config().outbound_backlog_limit;
        if limit == 0 {
            return Ok(());
        }
        let backlog = self.backlog(stream).await?;
        if backlog >= limit {
            tracing::info!(backlog, limit, "outbound backlog over limit");
            self.unavailable("backlog");
            return Err(HttpError::BacklogFull);
        }
        Ok(())
    }

    async fn backlog(&self, stream: &str) -> Result<u64, HttpError> {
        let deadline = tokio::time::sleep(self.store_deadline);
        let mut cached = tokio::select! {
            guard = self.backlog.lock() => guard,
            () = deadline => return Err(HttpError::Unavailable),
        };
        if let Some((at, value)) = cached.get(stream) {
            if at.elapsed() < BACKLOG_CACHE {
                return Ok(*value);
            }
        }
        let group = &self.config.worker.group;
        let value = self
            .store_call("backlog", self.store()?.backlog(stream, group))
            .await?;
        cached.insert(stream.to_owned(), (Instant::now(), value));
        Ok(value)
    }

    fn unavailable(&self, reason: &str) {
        let family = &self.metrics.families.http_unavailable;
        family.with_label_values(&[reason]).inc();
    }

    /// Counts what this process just added, so the cached backlog does not lag behind its own
    /// writes for up to a second. Skipped while a measurement is running (it will be fresher).
    pub(crate) fn note_enqueued(&self, stream: &str, count: usize) {
        if let Ok(mut cached) = self.backlog.try_lock() {
            if let Some((_, value)) = cached.get_mut(stream) {
                *value += count as u64;
            }
        }
    }
}
