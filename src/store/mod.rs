//! Everything the gateway keeps in Redis: the outbound stream and its consumer group, message
//! state, the Msg_Id map, idempotency answers, dead letters, and what the console reads (search
//! indexes, per-minute counters). Multi-step changes are Lua scripts or pipelines, so each
//! message costs a fixed number of round trips, not one per segment.

mod begin;
mod browse;
mod consumer;
mod counters;
mod dead_letter;
mod forward;
mod held_reports;
mod index;
mod keys;
mod lease;
mod mo;
mod orphans;
mod outbound;
mod outbound_entry;
mod references;
mod reports;
mod sample;
mod scripts;
mod segments;
mod stale_consumers;
mod state;
mod undecodable;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use begin::{Beginning, Begun};
pub use browse::{MessageQuery, MessageRow, Page, SCAN_BUDGET, StreamEntry, is_stream_id};
pub use consumer::{Consumer, SegmentRecord, Submitted};
pub use counters::HourOutcomes;
pub use held_reports::{HeldReport, HeldSweep};
pub use index::IndexCursor;
pub use keys::Keys;
pub use lease::{Lease, parse_holder};
pub use mo::{MoEntry, MoOutcome, MoSweep};
pub use outbound::{Enqueued, GroupBacklog};
pub use outbound_entry::OutboundEntry;
pub use references::NeedsReference;
pub use reports::{ReportOutcome, WhenUnmapped};
pub use sample::StreamSample;
pub use state::{MessageState, MessageStatus, MessageSummary, SegmentState};

use crate::config::{RedisConfig, StoreConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error. The text never holds the password.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis returned something unexpected: {0}")]
    Unexpected(String),
}

impl StoreError {
    /// The consumer group (or the stream) is gone, e.g. Redis restarted without persistence.
    pub fn is_missing_group(&self) -> bool {
        matches!(self, StoreError::Redis(e) if e.code() == Some("NOGROUP"))
    }

    /// Whether the cause is the connection (Redis down, timeout) rather than a command error.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(e) => is_connection_problem(e),
            StoreError::Unexpected(_) => false,
        }
    }

    /// Whether waiting and trying again can mend it: the connection, or a Redis that cannot
    /// take writes for now — loading its data, a replica during a failover (READONLY,
    /// MASTERDOWN), a busy script, out of memory until something expires. Anything else (a key
    /// of the wrong type, a script error) fails the same way however often it is tried.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT_CODES: [&str; 9] = [
            "LOADING",
            "READONLY",
            "MASTERDOWN",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "BUSY",
            "OOM",
            "NOREPLICAS",
            "NOTREADY",
        ];
        match self {
            StoreError::Redis(e) => {
                is_connection_problem(e)
                    || e.code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
            }
            StoreError::Unexpected(_) => false,
        }
    }
}

pub(crate) fn is_connection_problem(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// The shared connection for short commands (HTTP, bookkeeping). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    config: StoreConfig,
}

/// Opens a multiplexed, self-reconnecting connection whose commands give up after `timeout`.
pub(crate) async fn connect(
    redis: &RedisConfig,
    timeout: Duration,
) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(redis.url.expose())?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(redis.timeout))
        // Reconnect attempts are short: callers answer 503 or wait and try again themselves.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

impl Store {
    pub async fn connect(redis: &RedisConfig, config: StoreConfig) -> Result<Store, StoreError> {
        Ok(Store {
            conn: connect(redis, redis.timeout).await?,
            keys: Keys::new(&redis.key_prefix),
            config,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.config.state_ttl.as_millis() as u64
    }

    /// Runs a pipeline; if Redis has lost the scripts (NOSCRIPT, e.g. after a restart), loads
    /// them and runs it once more. Pipelines that invoke scripts hold only commands that are
    /// safe to repeat, so the second run cannot duplicate anything.
    pub(crate) async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                scripts::load_all(&mut conn).await?;
                Ok(pipe.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// Milliseconds since 1970, the unit of every timestamp the store writes.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unit tests of scripts against a real redis-server.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Consumer, Store};
    use crate::bench::redis_server::RedisServer;
    use crate::config::GatewayConfig;

    /// A store and a consumer (group `gateway`, created) on `redis` with the default settings.
    pub(crate) async fn consumer(redis: &RedisServer) -> (Store, Consumer) {
        let json = serde_json::json!({
            "user": "900001", "password": "x", "sms_accessno": "10690",
            "cmpp_host": "127.0.0.1", "cmpp_port": 7890, "redis_url": redis.url(),
            "consumer_name": "unit",
        });
        let config = GatewayConfig::from_str_with_env("unit.json", &json.to_string(), &|_| None)
            .expect("valid config");
        let store = Store::connect(&config.redis, config.store.clone())
            .await
            .expect("store connects");
        let stream = config.default_channel().stream.clone();
        let consumer = Consumer::new(&store, &config.redis, config.worker.clone(), stream)
            .await
            .expect("consumer connects");
        consumer.ensure_group().await.expect("group created");
        (store, consumer)
    }

    /// A plain connection for setting up and reading keys.
    pub(crate) async fn conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}
