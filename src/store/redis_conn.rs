//! The one connection type the store talks through, whatever Redis runs as: a single node (the
//! redis crate's self-reconnecting `ConnectionManager`), the primary of a Sentinel-monitored
//! service (looked up through the crate's `SentinelClient`, and looked up again when it stops
//! taking writes), or a Cluster (the crate's cluster client, which follows MOVED and ASK, opened
//! anew when it stops answering).
//!
//! Nothing here retries a command: an error goes back to the caller, who answers 503 or waits
//! and tries again with its own bound. A new connection (see `renewing`) only makes the next
//! try go to the new primary, or through a client that answers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
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

use super::renewing::Renewing;

#[derive(Clone)]
pub(crate) enum RedisConn {
    Single(ConnectionManager),
    /// The primary the sentinels name, asked again when it stops taking writes.
    Sentinel(Renewing<ConnectionManager>),
    /// Replaced by a new one when it stops answering.
    Cluster(Renewing<ClusterConnection>),
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
                let sentinel = Arc::new(tokio::sync::Mutex::new(client));
                let config = manager_config(redis, timeout);
                let open = move || {
                    let (sentinel, config) = (sentinel.clone(), config.clone());
                    async move {
                        let client = sentinel.lock().await.async_get_client().await?;
                        let addr = client.get_connection_info().addr().to_string();
                        let conn = ConnectionManager::new_with_config(client, config).await?;
                        Ok((conn, format!("the primary the sentinels name, {addr}")))
                    }
                    .boxed()
                };
                let followed =
                    Renewing::open(open, primary_may_have_moved, reply_says_primary_moved).await?;
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
                    // Also the bound of a whole call, redirections included: a client that
                    // stopped answering is found (and replaced, see `Renewing`) within it.
                    .response_timeout(timeout)
                    .retries(5)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?;
                let open = move || {
                    let client = client.clone();
                    async move {
                        let conn = client.get_async_connection().await?;
                        Ok((conn, "a new cluster connection".to_owned()))
                    }
                    .boxed()
                };
                let conn = Renewing::open(open, cluster_connection_stuck, |_| false).await?;
                Ok(RedisConn::Cluster(conn))
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
                let value = conn.current().route_command(cmd, route).await?;
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

/// A failure after which the node may no longer be the primary.
fn primary_may_have_moved(e: &RedisError) -> bool {
    is_connection_problem(e) || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// A write refused inside a pipeline comes back as one of its replies.
fn reply_says_primary_moved(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(e.code(), "READONLY" | "MASTERDOWN" | "LOADING"))
}

/// The cluster client stopped answering: after many redirections at once while a slot moves,
/// the redis crate's cluster connection (1.8) was seen to time out every command for good,
/// while a new one worked at once.
fn cluster_connection_stuck(e: &RedisError) -> bool {
    e.is_timeout()
}
