//! How Redis runs: one node (`redis_url`, or `redis_host`/`redis_port`), a primary watched by
//! Sentinel (`redis_sentinels` + `redis_master_name`), or a Cluster (`redis_cluster_nodes`).
//! With Sentinel or Cluster the nodes come from here; the URL still gives the credentials, the
//! database and TLS.

use super::redis_url::RedisUrl;
use super::{Check, ConfigError};
use crate::secret::Secret;

const SENTINEL_PORT: u16 = 26379;
const REDIS_PORT: u16 = 6379;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (or whatever answers at the URL).
    Single,
    /// The primary of `master_name`, asked of the sentinels and asked again after a failover.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master_name: String,
        /// For the sentinels themselves (`requirepass` in sentinel.conf), when they have one.
        sentinel_password: Option<Secret>,
    },
    /// The cluster these seeds belong to; the client learns the rest of it (and follows
    /// MOVED/ASK).
    Cluster { nodes: Vec<(String, u16)> },
}

/// `host:port, host:port`, for logs.
pub(crate) fn join(nodes: &[(String, u16)]) -> String {
    nodes
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Check<'_> {
    pub(super) fn redis_topology(&self, url: &RedisUrl) -> Result<RedisTopology, ConfigError> {
        let raw = self.raw;
        if raw.redis_master_name.is_some() && raw.redis_sentinels.is_none() {
            return Err(self.err("redis_master_name", "only with redis_sentinels"));
        }
        match (&raw.redis_sentinels, &raw.redis_cluster_nodes) {
            (Some(_), Some(_)) => Err(self.err(
                "redis_cluster_nodes",
                "cannot be used with redis_sentinels: Redis runs as one or the other",
            )),
            (Some(sentinels), None) => {
                let sentinels = self.nodes("redis_sentinels", sentinels, SENTINEL_PORT)?;
                let master_name = self.required(
                    "redis_master_name",
                    &raw.redis_master_name,
                    "the service name the sentinels monitor",
                )?;
                self.token("redis_master_name", master_name, Some(64))?;
                Ok(RedisTopology::Sentinel {
                    sentinels,
                    master_name: master_name.clone(),
                    sentinel_password: raw
                        .redis_sentinel_password
                        .clone()
                        .filter(|p| !p.is_empty()),
                })
            }
            (None, Some(nodes)) => {
                let nodes = self.nodes("redis_cluster_nodes", nodes, REDIS_PORT)?;
                if database(url) != 0 {
                    let key = if raw.is_set("redis_db") {
                        "redis_db"
                    } else {
                        "redis_url"
                    };
                    return Err(self.err(key, "a Redis Cluster has database 0 only"));
                }
                Ok(RedisTopology::Cluster { nodes })
            }
            (None, None) => Ok(RedisTopology::Single),
        }
    }

    /// `host:port` items (the port defaults to `default_port`), at least one.
    fn nodes(
        &self,
        key: &str,
        items: &[String],
        default_port: u16,
    ) -> Result<Vec<(String, u16)>, ConfigError> {
        if items.is_empty() {
            return Err(self.err(key, "must list at least one host:port"));
        }
        items
            .iter()
            .map(|item| {
                let (host, port) = split_host_port(item)
                    .ok_or_else(|| self.err(key, format!("{item:?} is not host:port")))?;
                let port = match port {
                    Some(p) => p
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| self.err(key, format!("{item:?}: bad port")))?,
                    None => default_port,
                };
                Ok((self.host(key, host)?, port))
            })
            .collect()
    }
}

/// The database the URL selects, as the redis crate reads it.
fn database(url: &RedisUrl) -> i64 {
    use redis::IntoConnectionInfo;
    url.render()
        .as_str()
        .into_connection_info()
        .map_or(0, |info| info.redis_settings().db())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(item: &str) -> Option<(&str, Option<&str>)> {
    let item = item.trim();
    if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match item.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((item, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:1"), Some(("a", Some("1"))));
        assert_eq!(split_host_port("a"), Some(("a", None)));
        assert_eq!(split_host_port("[::1]:7"), Some(("::1", Some("7"))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1:7"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }
}
