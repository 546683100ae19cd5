//! The one connection type the store talks through, whatever Redis runs as: a single node (the
//! redis crate's self-reconnecting `ConnectionManager`), the primary of a Sentinel-monitored
//! service (looked up through the crate's `SentinelClient`, and looked up again when it stops
//! taking writes), or a Cluster (the crate's cluster client, which follows MOVED and ASK).
//!
//! Nothing here retries a command: an error goes back to the caller, who answers 503 or waits
//! and tries again with its own bound. Following a failover only makes the next try go to the
//! new primary.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    RedisFuture, RedisResult, TlsMode, Value,
};

use super::is_connection_problem;
use crate::config::{RedisConfig, RedisTopology};

/// Sentinels are asked at most this often, however many commands fail meanwhile.
const LOOKUP_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(crate) enum RedisConn {
    Single(ConnectionManager),
    Sentinel(FollowedPrimary),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects as the config says; commands give up after `timeout` (a blocking read needs
    /// more than its BLOCK).
    pub(crate) async fn open(redis: &RedisConfig, timeout: Duration) -> RedisResult<RedisConn> {
        let url = redis.url.expose();
        match &redis.topology {
            RedisTopology::Single => {
                let client = redis::Client::open(url)?;
                let conn =
                    ConnectionManager::new_with_config(client, manager_config(redis, timeout))
                        .await?;
                Ok(RedisConn::Single(conn))
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name,
                sentinel_password,
            } => {
                let node = url.into_connection_info()?;
                let mut node_info = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(node.redis_settings().clone());
                if let Some(mode) = tls_mode(node.addr()) {
                    node_info = node_info.set_tls_mode(mode);
                }
                let mut settings = RedisConnectionInfo::default();
                if let Some(password) = sentinel_password {
                    settings = settings.set_password(password.expose());
                }
                let sentinel_infos: Vec<ConnectionInfo> = sentinels
                    .iter()
                    .map(|(host, port)| tcp_info(host, *port, &settings, None))
                    .collect();
                let client = SentinelClient::build(
                    sentinel_infos,
                    master_name.as_str(),
                    Some(node_info),
                    SentinelServerType::Master,
                )?;
                let followed =
                    FollowedPrimary::connect(client, manager_config(redis, timeout)).await?;
                Ok(RedisConn::Sentinel(followed))
            }
            RedisTopology::Cluster { nodes } => {
                let node = url.into_connection_info()?;
                let tls = tls_mode(node.addr());
                let seeds: Vec<ConnectionInfo> = nodes
                    .iter()
                    .map(|(host, port)| tcp_info(host, *port, node.redis_settings(), tls))
                    .collect();
                let client = ClusterClientBuilder::new(seeds)
                    .connection_timeout(redis.timeout)
                    .response_timeout(timeout)
                    // MOVED, ASK and TRYAGAIN during a slot migration are followed inside one
                    // call, so that call may take several response times.
                    .overall_response_timeout(Some(timeout * 3))
                    .retries(5)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?;
                Ok(RedisConn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// `WAIT replicas timeout`: how many replicas have every write this connection made so far.
    /// On a Cluster, the writes of `key`'s slot (its primary's replicas); without a key, the
    /// fewest over every primary.
    pub(crate) async fn wait_for_replicas(
        &mut self,
        replicas: u32,
        timeout: Duration,
        key: Option<&str>,
    ) -> RedisResult<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout.as_millis() as u64);
        match (self, key) {
            (RedisConn::Cluster(conn), Some(key)) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                let value = conn.route_command(cmd, route).await?;
                redis::from_redis_value(value).map_err(RedisError::from)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

fn manager_config(redis: &RedisConfig, timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(redis.timeout))
        // Reconnect attempts are short: callers answer 503 or wait and try again themselves.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// The TLS mode of a `rediss://` address, for the nodes found through Sentinel or Cluster.
fn tls_mode(addr: &ConnectionAddr) -> Option<TlsMode> {
    match addr {
        ConnectionAddr::TcpTls { insecure: true, .. } => Some(TlsMode::Insecure),
        ConnectionAddr::TcpTls { .. } => Some(TlsMode::Secure),
        _ => None,
    }
}

fn tcp_info(
    host: &str,
    port: u16,
    settings: &RedisConnectionInfo,
    tls: Option<TlsMode>,
) -> ConnectionInfo {
    // Config keeps IPv6 hosts bracketed for URLs; an address takes them bare.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addr = match tls {
        None => ConnectionAddr::Tcp(host, port),
        Some(mode) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: mode == TlsMode::Insecure,
            tls_params: None,
        },
    };
    // `ConnectionInfo` has no public constructor; any address parses into one to replace.
    ("127.0.0.1", port)
        .into_connection_info()
        .expect("a host and port always make a connection info")
        .set_addr(addr)
        .set_redis_settings(settings.clone())
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Sentinel(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The current primary of a Sentinel service. A command that fails because the node is gone
/// or no longer a primary (READONLY after a failover, or an old primary back as a replica) has
/// the sentinels asked again, so the caller's next try goes to whichever node they name now.
#[derive(Clone)]
pub(crate) struct FollowedPrimary {
    shared: Arc<Followed>,
}

struct Followed {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Current>,
    config: ConnectionManagerConfig,
}

#[derive(Clone)]
struct Current {
    conn: ConnectionManager,
    /// Counts look-ups that changed the connection, so concurrent failures follow once.
    generation: u64,
    looked_up: Instant,
}

impl FollowedPrimary {
    async fn connect(
        mut sentinel: SentinelClient,
        config: ConnectionManagerConfig,
    ) -> RedisResult<FollowedPrimary> {
        let client = sentinel.async_get_client().await?;
        let conn = ConnectionManager::new_with_config(client, config.clone()).await?;
        Ok(FollowedPrimary {
            shared: Arc::new(Followed {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: RwLock::new(Current {
                    conn,
                    generation: 0,
                    looked_up: Instant::now(),
                }),
                config,
            }),
        })
    }

    fn current(&self) -> Current {
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Asks the sentinels for the primary again, unless another caller did since `seen`.
    async fn follow(&self, seen: u64) {
        let mut sentinel = self.shared.sentinel.lock().await;
        let current = self.current();
        if current.generation != seen || current.looked_up.elapsed() < LOOKUP_INTERVAL {
            return;
        }
        let found = async {
            let client = sentinel.async_get_client().await?;
            let addr = client.get_connection_info().addr().to_string();
            let conn =
                ConnectionManager::new_with_config(client, self.shared.config.clone()).await?;
            RedisResult::Ok((conn, addr))
        }
        .await;
        let mut slot = self
            .shared
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.looked_up = Instant::now();
        match found {
            Ok((conn, addr)) => {
                tracing::info!(primary = %addr, "redis: following the primary the sentinels name");
                slot.conn = conn;
                slot.generation += 1;
            }
            Err(e) => {
                tracing::debug!(error = %e, "redis: the sentinels named no reachable primary yet")
            }
        }
    }
}

/// A failure after which the node may no longer be the primary.
fn primary_may_have_moved(e: &RedisError) -> bool {
    is_connection_problem(e) || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl ConnectionLike for FollowedPrimary {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Current {
                mut conn,
                generation,
                ..
            } = self.current();
            let result = conn.req_packed_command(cmd).await;
            if let Err(e) = &result
                && primary_may_have_moved(e)
            {
                self.follow(generation).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let Current {
                mut conn,
                generation,
                ..
            } = self.current();
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            let moved = match &result {
                Err(e) => primary_may_have_moved(e),
                // A write refused inside a pipeline comes back as one of its replies.
                Ok(values) => values.iter().any(|v| {
                    matches!(v, Value::ServerError(e) if matches!(e.code(), "READONLY" | "MASTERDOWN" | "LOADING"))
                }),
            };
            if moved {
                self.follow(generation).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.current().conn.get_db()
    }
}
