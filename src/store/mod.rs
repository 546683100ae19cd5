//! Everything the gateway keeps in Redis: the outbound stream and its consumer group, message
//! state, the Msg_Id map, idempotency answers, dead letters, and what the console reads (search
//! indexes, per-minute counters). Multi-step changes are Lua scripts or pipelines, so each
//! message costs a fixed number of round trips, not one per segment.

mod batch;
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
mod redis_conn;
mod references;
mod renewing;
mod reports;
mod sample;
mod scripts;
mod segments;
mod stale_consumers;
mod state;
mod undecodable;

use std::time::Duration;

pub(crate) use batch::Batch;
pub(crate) use redis_conn::RedisConn;

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
    /// `redis_wait_replicas` asked for more replicas than confirmed the write in time.
    #[error("redis: {confirmed} of {wanted} replicas confirmed the write in time")]
    NotReplicated { wanted: u32, confirmed: u32 },
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
            StoreError::NotReplicated { .. } => true,
            StoreError::Unexpected(_) => false,
        }
    }

    /// Whether waiting and trying again can mend it: the connection, or a Redis that cannot
    /// take writes for now — loading its data, a replica during a failover (READONLY,
    /// MASTERDOWN), a busy script, out of memory until something expires. Anything else (a key
    /// of the wrong type, a script error) fails the same way however often it is tried.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT_CODES: [&str; 11] = [
            // A Cluster slot moving: the client is sent elsewhere, the next try finds it.
            "MOVED",
            "ASK",
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
            StoreError::NotReplicated { .. } => true,
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
    conn: RedisConn,
    keys: Keys,
    config: StoreConfig,
    /// Replicas a write must reach before it is acknowledged (`WAIT`), and how long to wait.
    wait_replicas: u32,
    wait_timeout: Duration,
}

/// Opens a multiplexed, self-reconnecting connection whose commands give up after `timeout`.
pub(crate) async fn connect(
    redis: &RedisConfig,
    timeout: Duration,
) -> Result<RedisConn, StoreError> {
    Ok(RedisConn::open(redis, timeout).await?)
}

impl Store {
    pub async fn connect(redis: &RedisConfig, config: StoreConfig) -> Result<Store, StoreError> {
        // A WAIT holds its reply until the replicas answer or its own timeout passes.
        let wait = if redis.wait_replicas > 0 {
            redis.wait_timeout
        } else {
            Duration::ZERO
        };
        Ok(Store {
            conn: connect(redis, redis.timeout + wait).await?,
            keys: Keys::new(&redis.key_prefix),
            config,
            wait_replicas: redis.wait_replicas,
            wait_timeout: redis.wait_timeout,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Whether Redis runs as a Cluster (where a batch is split by slot).
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// With `redis_wait_replicas`, waits until that many replicas hold every write made so far
    /// on this connection: on a Cluster, the writes to the primaries of `keys` (every primary
    /// when there are none). An error when fewer confirm in time: the write may still be lost
    /// in a failover.
    pub async fn confirm_replicated(&self, keys: &[&str]) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut conn = self.conn();
        let mut routes: Vec<Option<&str>> = keys.iter().map(|k| Some(*k)).collect();
        if routes.is_empty() || !conn.is_cluster() {
            routes = vec![None];
        }
        for key in routes {
            let confirmed = conn
                .wait_for_replicas(self.wait_replicas, self.wait_timeout, key)
                .await?;
            if confirmed < self.wait_replicas {
                return Err(StoreError::NotReplicated {
                    wanted: self.wait_replicas,
                    confirmed,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.config.state_ttl.as_millis() as u64
    }

    /// Runs a batch; if Redis has lost the scripts (NOSCRIPT, e.g. after a restart or on a
    /// node that never had them), loads them and runs it once more. Batches that invoke
    /// scripts hold only commands that are safe to repeat, so the second run cannot duplicate
    /// anything.
    pub(crate) async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        batch: &Batch,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        match batch.query(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                scripts::load_all(&mut conn).await?;
                Ok(batch.query(&mut conn).await?)
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

    /// An entry with `fields` XADDed to the consumer's stream and read by it: pending, as the
    /// entries the worker dead-letters are.
    pub(crate) async fn pending(
        redis: &RedisServer,
        consumer: &Consumer,
        fields: &[(&str, &str)],
    ) -> super::OutboundEntry {
        let mut conn = conn(redis).await;
        let _: String = redis::cmd("XADD")
            .arg(consumer.stream())
            .arg("*")
            .arg(fields)
            .query_async(&mut conn)
            .await
            .unwrap();
        consumer
            .read(1)
            .await
            .unwrap()
            .pop()
            .expect("the entry read")
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
