//! The gateway's configuration: config.json (a superset of the original Go gateway's file),
//! environment overrides, and validation once at start-up.
//!
//! # Layout
//! * `file`: the raw form of config.json, every key optional; unknown keys become warnings.
//! * `env`: `CMPP_GATEWAY_<KEY>` overrides, parsed like the JSON value of that key.
//! * `value`: the shared parsers (numbers as numbers or digit strings, humantime durations or
//!   whole seconds, booleans, lists as arrays or comma-separated text).
//! * this module: defaults, ranges and cross-checks, producing [`GatewayConfig`].
//!
//! Every [`ConfigError`] is one line naming the file and the key (or the environment variable).
//! Secrets (`password`, `redis_password`, the password inside `redis_url`, `api_keys`) are held in
//! [`Secret`]s and never appear in an error, a warning or a `Debug` print.

mod channel;
pub mod connection_cap;
mod env;
mod error;
mod file;
mod redis_topology;
mod redis_url;
mod value;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use regex::Regex;

use crate::protocol::Version;
use crate::secret::Secret;
use crate::session::{AuthCheck, LinkConfig};
use crate::text::SplitOptions;

pub use channel::{ChannelConfig, DEFAULT_CHANNEL};
pub use env::{ENV_PREFIX, env_var_name};
pub use error::{ConfigError, Origin};
pub use file::KEYS;

use file::RawConfig;
pub use redis_topology::RedisTopology;
use redis_url::RedisUrl;

/// Delivery reports may arrive up to 48 hours after the submit; message state must outlive that.
pub const MIN_STATE_TTL: Duration = Duration::from_secs(48 * 3600);
/// Mainland China mobile numbers, with an optional `86` / `+86` prefix.
pub const DEFAULT_MSISDN_PATTERN: &str = r"^(\+?86)?1[3-9]\d{9}$";

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The config file's path as shown in errors and logs.
    pub source: String,
    /// The SP accounts, in file order; the first is the default channel (messages that name
    /// none, and the original `{prefix}:mt` stream).
    pub channels: Vec<ChannelConfig>,
    pub http: HttpConfig,
    pub redis: RedisConfig,
    pub store: StoreConfig,
    pub worker: WorkerConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    /// Serve HTTP only: no CMPP link, worker or receive path in this process (another instance
    /// holds the link; carriers limit connections per account, HTTP may need more instances).
    pub ingress_only: bool,
    /// Unknown keys and other things worth a log line at start-up; never contain secrets.
    pub warnings: Vec<String>,
}

/// What goes into each SUBMIT.
#[derive(Debug, Clone)]
pub struct MessageConfig {
    /// SP_Id (`user`): Msg_src.
    pub sp_id: String,
    /// SP access number (`sms_accessno`): the Src_Id prefix, digits, at most 21.
    pub access_no: String,
    /// Service_Id, at most 10 bytes.
    pub service_id: String,
    /// FeeType, two digits.
    pub fee_type: String,
    /// FeeCode, at most six digits.
    pub fee_code: String,
    /// Fee_UserType 0..=3.
    pub fee_user_type: u8,
    /// Registered_Delivery = 1 (status reports wanted).
    pub registered_delivery: bool,
    /// Encode non-ASCII text as GBK (Msg_Fmt 15) when it can be, instead of UCS2.
    pub prefer_gbk: bool,
    pub split: SplitOptions,
    /// Most parts one message may be split into.
    pub max_segments: usize,
    /// Most destination numbers per request.
    pub max_recipients: usize,
    /// A destination number must match this.
    pub msisdn: Regex,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Accepted API keys; empty = no authentication.
    pub api_keys: Vec<Secret>,
    pub max_body_bytes: u64,
    /// `/readyz` fails while the CMPP link is down.
    pub readyz_requires_link: bool,
    /// A request head must arrive within this long of its first byte (of the connection, for
    /// the first request).
    pub header_timeout: Duration,
    /// A request body must arrive within this long once the handler starts reading it.
    pub body_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed; a response the client
    /// does not read for this long ends the connection too.
    pub idle_timeout: Duration,
    /// After shutdown, how long requests in progress may take before their connections are cut.
    pub shutdown_timeout: Duration,
    /// Most open HTTP connections: `http_max_connections`, or derived from the open-file limit
    /// ([`connection_cap`]).
    pub max_connections: usize,
}

#[derive(Clone)]
pub struct RedisConfig {
    /// The full URL, password and database included: for the client only, never for a log.
    /// With Sentinel or Cluster, only its credentials, database and TLS count (the nodes come
    /// from `topology`).
    pub url: Secret,
    /// Single node, Sentinel or Cluster.
    pub topology: RedisTopology,
    /// Response timeout of one command.
    pub timeout: Duration,
    /// Prefix of every key and stream the gateway uses.
    pub key_prefix: String,
    /// Replicas that must confirm a write (`WAIT`) before the ingress answers 202 and before
    /// the worker acknowledges an entry; 0 = no waiting.
    pub wait_replicas: u32,
    /// How long one `WAIT` may take.
    pub wait_timeout: Duration,
}

impl RedisConfig {
    /// The URL with its password masked (`redis://:***@host:6379/0`), for logs.
    pub fn redacted_url(&self) -> String {
        match RedisUrl::parse(self.url.expose()) {
            Ok(url) => url.redacted(),
            Err(_) => "redis://***".to_string(),
        }
    }

    /// Where the gateway finds Redis, for logs: the redacted URL, or the Sentinel service or
    /// Cluster seeds.
    pub fn describe(&self) -> String {
        match &self.topology {
            RedisTopology::Single => self.redacted_url(),
            RedisTopology::Sentinel {
                sentinels,
                master_name,
                ..
            } => format!(
                "sentinel service {master_name} via {}",
                redis_topology::join(sentinels)
            ),
            RedisTopology::Cluster { nodes } => {
                format!("cluster via {}", redis_topology::join(nodes))
            }
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("topology", &self.topology)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout", &self.wait_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How long message state is kept (at least [`MIN_STATE_TTL`]).
    pub state_ttl: Duration,
    /// Refuse new submits beyond this many queued; 0 = no limit.
    pub outbound_backlog_limit: u64,
    /// Approximate MAXLEN of the inbound streams.
    pub inbound_maxlen: u64,
    /// How long a report whose Msg_Id is not mapped yet (the SUBMIT_RESP race) is retried
    /// before it is written with `unmatched=1`.
    pub report_match_wait: Duration,
    /// How long the parts of a long MO wait for the rest before it is written as partial.
    pub mo_reassembly_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Consumer group of the outbound stream.
    pub group: String,
    /// This process's consumer name (default `hostname-pid`).
    pub consumer: String,
    /// XREADGROUP COUNT.
    pub batch: usize,
    /// XREADGROUP BLOCK.
    pub block: Duration,
    /// XAUTOCLAIM min-idle-time.
    pub reclaim_idle: Duration,
    /// Other consumers idle this long with nothing pending are deleted from the group (one is
    /// left behind by every process that stopped).
    pub consumer_delete_idle: Duration,
    /// An entry the group handed to workers more than this many times without an outcome (each
    /// holder stopped before finishing it) is dead-lettered instead of sent again.
    pub max_claims: u64,
    /// How long a connection-slot lease lasts unless renewed (renewed every third of it). A
    /// holder that cannot renew stops sending on the slot before this runs out.
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// A second address serving only `GET /metrics`, without API keys (for a scrape network).
    pub bind: Option<SocketAddr>,
    /// How often stream lengths and the consumer group are read from Redis.
    pub sample_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Log level debug instead of info.
    pub debug: bool,
    /// One JSON object per line.
    pub json: bool,
}

impl GatewayConfig {
    /// The first channel: messages that name none go out on it.
    pub fn default_channel(&self) -> &ChannelConfig {
        &self.channels[0]
    }

    /// The channel a message names (`None` or empty: the default); `None` for a name no channel
    /// has.
    pub fn channel(&self, name: Option<&str>) -> Option<&ChannelConfig> {
        match name.filter(|n| !n.is_empty()) {
            None => Some(self.default_channel()),
            Some(name) => self.channels.iter().find(|c| c.name == name),
        }
    }

    /// Reads `path`, applies the process environment's `CMPP_GATEWAY_*` overrides and validates.
    /// Also warns about `CMPP_GATEWAY_*` variables that match no key.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
            path: file.clone(),
            error,
        })?;
        let json = String::from_utf8(bytes).map_err(|_| ConfigError::Read {
            path: file.clone(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
        })?;
        let lookup = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let mut config = GatewayConfig::from_str_with_env(&file, &json, &lookup)?;
        config.warnings.extend(env::unknown_env_warnings(
            std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()),
        ));
        Ok(config)
    }

    /// [`load`](Self::load) without the file system or the process environment: `source` is the
    /// name shown in messages, `env` looks up a variable. The default consumer name still reads
    /// /etc/hostname (then `env("HOSTNAME")`), and `http_max_connections` is checked against
    /// this process's open-file limit.
    pub fn from_str_with_env(
        source: &str,
        json: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        let open_files = connection_cap::open_file_limit();
        GatewayConfig::from_str_with_env_and_open_files(source, json, env, open_files)
    }

    /// [`from_str_with_env`](Self::from_str_with_env) with the open-file limit given
    /// (`None`: unlimited) rather than read from the process, so that the connection cap it
    /// derives does not depend on where it runs.
    pub fn from_str_with_env_and_open_files(
        source: &str,
        json: &str,
        env: &dyn Fn(&str) -> Option<String>,
        open_files: Option<u64>,
    ) -> Result<GatewayConfig, ConfigError> {
        let (mut raw, mut warnings) = file::parse_file(source, json)?;
        env::apply_env(&mut raw, env)?;
        let check = Check {
            raw: &raw,
            file: source,
            scope: None,
        };
        let config = check.build(env, open_files, &mut warnings)?;
        Ok(GatewayConfig { warnings, ..config })
    }
}

/// Turns raw values into a [`GatewayConfig`], naming the key (and where it was set) on failure.
struct Check<'a> {
    raw: &'a RawConfig,
    file: &'a str,
    /// `channels[i]` while one channel's keys are checked: errors name the key in it.
    scope: Option<String>,
}

impl Check<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.raw.origin(key, self.file),
            key: match &self.scope {
                Some(scope) => format!("{scope}.{key}"),
                None => key.to_string(),
            },
            message: message.into(),
        }
    }

    fn required<'v, T>(
        &self,
        key: &str,
        value: &'v Option<T>,
        what: &str,
    ) -> Result<&'v T, ConfigError> {
        value
            .as_ref()
            .ok_or_else(|| self.err(key, format!("required ({what}) but missing")))
    }

    fn int(
        &self,
        key: &str,
        value: Option<u64>,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let v = value.unwrap_or(default);
        if (min..=max).contains(&v) {
            return Ok(v);
        }
        Err(self.err(
            key,
            if max == u64::MAX {
                format!("must be at least {min}, got {v}")
            } else {
                format!("must be between {min} and {max}, got {v}")
            },
        ))
    }

    /// An IP address, or `localhost`.
    fn ip(&self, key: &str, host: &str) -> Result<IpAddr, ConfigError> {
        match host.trim_start_matches('[').trim_end_matches(']') {
            h if h.eq_ignore_ascii_case("localhost") => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            h => h.parse::<IpAddr>().map_err(|_| {
                self.err(
                    key,
                    format!("must be an IP address or \"localhost\", got {host:?}"),
                )
            }),
        }
    }

    /// A duration; `positive` refuses zero.
    fn dur(
        &self,
        key: &str,
        value: Option<Duration>,
        default: Duration,
        positive: bool,
    ) -> Result<Duration, ConfigError> {
        let v = value.unwrap_or(default);
        if positive && v.is_zero() {
            return Err(self.err(key, "must be greater than zero"));
        }
        Ok(v)
    }

    fn port(
        &self,
        key: &str,
        value: Option<u64>,
        default: Option<u16>,
        allow_zero: bool,
    ) -> Result<u16, ConfigError> {
        let v = match (value, default) {
            (Some(v), _) => v,
            (None, Some(d)) => return Ok(d),
            (None, None) => return Err(self.err(key, "required (a port number) but missing")),
        };
        let min = u64::from(!allow_zero);
        match u16::try_from(v) {
            Ok(p) if v >= min => Ok(p),
            _ => Err(self.err(
                key,
                format!("must be a port number between {min} and 65535, got {v}"),
            )),
        }
    }

    /// A name used in Redis keys or on the wire: non-empty, printable ASCII, no spaces.
    fn token(&self, key: &str, value: &str, max_len: Option<usize>) -> Result<(), ConfigError> {
        if value.is_empty() {
            return Err(self.err(key, "must not be empty"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.err(
                key,
                format!("must be printable ASCII without spaces, got {value:?}"),
            ));
        }
        match max_len {
            Some(max) if value.len() > max => Err(self.err(
                key,
                format!(
                    "must be at most {max} bytes, got {} ({value:?})",
                    value.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A host name or IP address to connect to; IPv6 gets brackets for `host:port`.
    fn host(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let bare = value.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(self.err(key, "must not be empty"));
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if ip.is_unspecified() {
                return Err(self.err(
                    key,
                    format!("{bare} is a wildcard address and cannot be connected to"),
                ));
            }
            return Ok(match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            });
        }
        let ok = bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !ok {
            return Err(self.err(
                key,
                format!("must be a host name or an IP address, got {value:?}"),
            ));
        }
        Ok(bare.to_string())
    }

    fn digits(
        &self,
        key: &str,
        value: &str,
        min_len: usize,
        max_len: usize,
        what: &str,
    ) -> Result<(), ConfigError> {
        if !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(key, format!("must be digits only ({what}), got {value:?}")));
        }
        if value.len() < min_len || value.len() > max_len {
            let range = if min_len == max_len {
                format!("exactly {max_len}")
            } else {
                format!("{min_len} to {max_len}")
            };
            return Err(self.err(
                key,
                format!(
                    "must be {range} digits ({what}), got {} ({value:?})",
                    value.len()
                ),
            ));
        }
        Ok(())
    }

    /// The channels: each object of `channels` overlaid on the top-level keys, or the top-level
    /// keys alone as the one channel `default`.
    fn channels(&self, warnings: &mut Vec<String>) -> Result<Vec<ChannelConfig>, ConfigError> {
        let Some(list) = &self.raw.channels else {
            return Ok(vec![self.channel(DEFAULT_CHANNEL, warnings)?]);
        };
        if list.0.is_empty() {
            return Err(self.err("channels", "must list at least one channel"));
        }
        let mut channels: Vec<ChannelConfig> = Vec::with_capacity(list.0.len());
        for (i, object) in list.0.iter().enumerate() {
            let scope = format!("channels[{i}]");
            let name = match object.get("name") {
                Some(serde_json::Value::String(name)) => name.clone(),
                _ => {
                    return Err(
                        self.err(&format!("{scope}.name"), "required (a string) but missing")
                    );
                }
            };
            channel::check_name(&name).map_err(|m| self.err(&format!("{scope}.name"), m))?;
            if channels.iter().any(|c| c.name == name) {
                return Err(self.err(
                    &format!("{scope}.name"),
                    format!("channel {name:?} is listed twice"),
                ));
            }
            let mut overlay = self.raw.clone();
            overlay.channels = None;
            for (key, value) in object {
                let key = match key.as_str() {
                    "name" => continue,
                    "rate_per_connection" => "rate",
                    other => other,
                };
                if !channel::CHANNEL_KEYS.contains(&key) {
                    return Err(self.err(
                        &format!("{scope}.{key}"),
                        format!(
                            "not a channel key (a channel may set name, rate_per_connection, {})",
                            channel::CHANNEL_KEYS.join(", ")
                        ),
                    ));
                }
                if value.is_null() {
                    continue;
                }
                overlay
                    .set(
                        key,
                        value::Input::Json(value),
                        Origin::File(self.file.to_string()),
                    )
                    .map_err(|m| self.err(&format!("{scope}.{key}"), m))?;
            }
            let check = Check {
                raw: &overlay,
                file: self.file,
                scope: Some(scope),
            };
            channels.push(check.channel(&name, warnings)?);
        }
        Ok(channels)
    }

    /// One channel from the keys in `self.raw`: its account, its link and what goes into its
    /// SUBMITs.
    fn channel(
        &self,
        name: &str,
        warnings: &mut Vec<String>,
    ) -> Result<ChannelConfig, ConfigError> {
        let raw = self.raw;

        // Account.
        let user = self.required("user", &raw.user, "the SP_Id")?;
        self.token("user", user, Some(6))?;
        let password = self.required("password", &raw.password, "the shared secret")?;
        if password.is_empty() {
            warnings.push(format!("{}: password is empty", self.place("password")));
        }
        let access_no = self.required("sms_accessno", &raw.sms_accessno, "the SP access number")?;
        self.digits("sms_accessno", access_no, 1, 21, "the SP access number")?;
        let service_id = raw.service_id.clone().unwrap_or_default();
        if !service_id.is_empty() {
            self.token("service_id", &service_id, Some(10))?;
        }

        // Link.
        let cmpp_host = self.required("cmpp_host", &raw.cmpp_host, "the ISMG address")?;
        let cmpp_host = self.host("cmpp_host", cmpp_host)?;
        let cmpp_port = self.port("cmpp_port", raw.cmpp_port, None, false)?;
        let mut link = LinkConfig::new(
            format!("{cmpp_host}:{cmpp_port}"),
            user.clone(),
            password.clone(),
        );
        if let Some(v) = &raw.cmpp_version {
            link.version = v
                .parse::<Version>()
                .map_err(|m| self.err("cmpp_version", m))?;
        }
        if let Some(v) = &raw.auth_check {
            link.auth_check = v
                .parse::<AuthCheck>()
                .map_err(|m| self.err("auth_check", m))?;
        }
        link.window = self.int("window", raw.window, 16, 1, 1024)? as usize;
        link.rate = self.int("rate", raw.rate, 0, 0, u64::from(u32::MAX))? as u32;
        link.response_timeout = self.dur(
            "response_timeout",
            raw.response_timeout,
            link.response_timeout,
            true,
        )?;
        link.max_sends = self.int("max_sends", raw.max_sends, 3, 1, 10)? as u32;
        link.quarantine_after_drops = self.int(
            "quarantine_after_drops",
            raw.quarantine_after_drops,
            2,
            1,
            100,
        )? as u32;
        link.flow_control_retries = self.int(
            "flow_control_retries",
            raw.flow_control_retries,
            30,
            0,
            u64::from(u32::MAX),
        )? as u32;
        link.heartbeat_idle = self.dur(
            "heartbeat_idle",
            raw.heartbeat_idle,
            link.heartbeat_idle,
            true,
        )?;
        link.heartbeat_misses = self.int(
            "heartbeat_misses",
            raw.heartbeat_misses,
            3,
            1,
            u64::from(u32::MAX),
        )? as u32;
        link.connect_timeout = self.dur(
            "connect_timeout",
            raw.connect_timeout,
            link.connect_timeout,
            true,
        )?;
        link.reconnect_min =
            self.dur("reconnect_min", raw.reconnect_min, link.reconnect_min, true)?;
        link.reconnect_max =
            self.dur("reconnect_max", raw.reconnect_max, link.reconnect_max, true)?;
        if link.reconnect_max < link.reconnect_min {
            // Blame the key that was set (max when both were).
            let key = if raw.is_set("reconnect_max") || !raw.is_set("reconnect_min") {
                "reconnect_max"
            } else {
                "reconnect_min"
            };
            return Err(self.err(
                key,
                format!(
                    "reconnect_max ({}) must not be less than reconnect_min ({})",
                    fmt_dur(link.reconnect_max),
                    fmt_dur(link.reconnect_min)
                ),
            ));
        }
        link.reconnect_reset_after = self.dur(
            "reconnect_reset_after",
            raw.reconnect_reset_after,
            link.reconnect_reset_after,
            true,
        )?;
        link.close_timeout = self.dur(
            "close_timeout",
            raw.close_timeout,
            link.close_timeout,
            false,
        )?;

        // Messages.
        let fee_type = raw.fee_type.clone().unwrap_or_else(|| "01".to_string());
        self.digits("fee_type", &fee_type, 2, 2, "FeeType")?;
        let fee_code = raw.fee_code.clone().unwrap_or_else(|| "000000".to_string());
        self.digits("fee_code", &fee_code, 1, 6, "FeeCode")?;
        let fee_user_type = self.int("fee_user_type", raw.fee_user_type, 0, 0, 3)? as u8;
        let wide_reference = raw.wide_udh_reference.unwrap_or(false);
        let min_chars = if wide_reference { 2 } else { 1 };
        let ascii_segment_chars = self.int(
            "ascii_segment_chars",
            raw.ascii_segment_chars,
            153,
            min_chars,
            153,
        )? as usize;
        let max_segments = self.int("max_segments", raw.max_segments, 10, 1, 255)? as usize;
        let pattern = raw
            .msisdn_pattern
            .as_deref()
            .unwrap_or(DEFAULT_MSISDN_PATTERN);
        let msisdn = Regex::new(pattern).map_err(|e| {
            self.err(
                "msisdn_pattern",
                format!(
                    "invalid regular expression {pattern:?}: {}",
                    regex_reason(&e)
                ),
            )
        })?;
        let max_recipients = self.int("max_recipients", raw.max_recipients, 100, 1, 100)? as usize;
        let message = MessageConfig {
            sp_id: user.clone(),
            access_no: access_no.clone(),
            service_id,
            fee_type,
            fee_code,
            fee_user_type,
            registered_delivery: raw.registered_delivery.unwrap_or(true),
            prefer_gbk: raw.prefer_gbk.unwrap_or(false),
            split: SplitOptions {
                ascii_segment_chars,
                wide_reference,
            },
            max_segments,
            max_recipients,
            msisdn,
        };

        let max_connections = self.int("max_connections", raw.max_connections, 1, 1, 256)? as u32;
        let connections_per_instance = self.int(
            "connections_per_instance",
            raw.connections_per_instance,
            u64::from(max_connections),
            0,
            u64::from(max_connections),
        )? as u32;
        Ok(ChannelConfig {
            name: name.to_string(),
            link,
            message,
            max_connections,
            connections_per_instance,
            stream: String::new(), // once the key prefix is known
        })
    }

    fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        open_files: Option<u64>,
        warnings: &mut Vec<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        let raw = self.raw;

        let channels = self.channels(warnings)?;

        // HTTP.
        let ip = self.ip("http_host", raw.http_host.as_deref().unwrap_or("0.0.0.0"))?;
        let http_port = self.port("http_port", raw.http_port, Some(8000), true)?;
        let api_keys = raw.api_keys.clone().unwrap_or_default();
        for (i, key) in api_keys.iter().enumerate() {
            if key.is_empty() {
                return Err(self.err("api_keys", format!("key number {} is empty", i + 1)));
            }
            if key
                .expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(self.err(
                    "api_keys",
                    format!(
                        "key number {} contains whitespace or control characters",
                        i + 1
                    ),
                ));
            }
        }
        let ingress_only = raw.ingress_only.unwrap_or(false);
        let mut http = HttpConfig {
            bind: SocketAddr::new(ip, http_port),
            api_keys,
            max_body_bytes: self.int("max_body_bytes", raw.max_body_bytes, 65536, 1, u64::MAX)?,
            // An ingress-only instance has no link to wait for.
            readyz_requires_link: match (raw.readyz_requires_link, ingress_only) {
                (Some(true), true) => {
                    return Err(self.err(
                        "readyz_requires_link",
                        "cannot be true with ingress_only: this instance holds no link",
                    ));
                }
                (requires, ingress_only) => requires.unwrap_or(true) && !ingress_only,
            },
            header_timeout: self.dur(
                "http_header_timeout",
                raw.http_header_timeout,
                Duration::from_secs(10),
                true,
            )?,
            body_timeout: self.dur(
                "http_body_timeout",
                raw.http_body_timeout,
                Duration::from_secs(10),
                true,
            )?,
            idle_timeout: self.dur(
                "http_idle_timeout",
                raw.http_idle_timeout,
                Duration::from_secs(60),
                true,
            )?,
            shutdown_timeout: self.dur(
                "http_shutdown_timeout",
                raw.http_shutdown_timeout,
                Duration::from_secs(10),
                false,
            )?,
            max_connections: 0, // below, once the metrics listener is known
        };

        // Metrics: on the HTTP address, and on a second one when metrics_port is set.
        let metrics_bind = match (&raw.metrics_host, raw.metrics_port) {
            (_, Some(port)) => {
                let host = raw.metrics_host.as_deref().unwrap_or("127.0.0.1");
                let ip = self.ip("metrics_host", host)?;
                Some(SocketAddr::new(
                    ip,
                    self.port("metrics_port", Some(port), None, true)?,
                ))
            }
            (Some(_), None) => {
                return Err(self.err("metrics_host", "is set but metrics_port is not"));
            }
            (None, None) => None,
        };
        let configured_cap = raw
            .http_max_connections
            .map(|v| self.int("http_max_connections", Some(v), 0, 1, 1_000_000))
            .transpose()?;
        let reserved = match metrics_bind {
            Some(_) => connection_cap::METRICS_CONNECTIONS,
            None => 0,
        };
        let cap = connection_cap::resolve(configured_cap, reserved, open_files)
            .map_err(|m| self.err("http_max_connections", m))?;
        if let Some(warning) = cap.warning {
            warnings.push(format!("{}: {warning}", self.place("http_max_connections")));
        }
        http.max_connections = cap.connections as usize;
        let metrics = MetricsConfig {
            bind: metrics_bind,
            sample_interval: self.dur(
                "metrics_sample_interval",
                raw.metrics_sample_interval,
                Duration::from_secs(5),
                true,
            )?,
        };

        // Redis.
        let redis_db = self.int("redis_db", raw.redis_db, 0, 0, i32::MAX as u64)?;
        let (mut url, url_key) = match &raw.redis_url {
            Some(text) => {
                let url = RedisUrl::parse(text.expose()).map_err(|m| self.err("redis_url", m))?;
                for ignored in ["redis_host", "redis_port"] {
                    if raw.is_set(ignored) {
                        warnings.push(format!(
                            "{}: ignored because redis_url is set",
                            self.place(ignored)
                        ));
                    }
                }
                (url, "redis_url")
            }
            None => {
                let host = self.host(
                    "redis_host",
                    raw.redis_host.as_deref().unwrap_or("127.0.0.1"),
                )?;
                let port = self.port("redis_port", raw.redis_port, Some(6379), false)?;
                (RedisUrl::from_parts(&host, port, redis_db), "redis_host")
            }
        };
        if raw.is_set("redis_db") {
            url.set_db(redis_db);
        }
        if let Some(pw) = &raw.redis_password {
            url.set_password(pw.expose());
        }
        let rendered = url.render();
        if redis::parse_redis_url(&rendered).is_none() {
            return Err(self.err(url_key, "does not form a valid redis URL"));
        }
        let topology = self.redis_topology(&url)?;
        let wait_replicas = self.int("redis_wait_replicas", raw.redis_wait_replicas, 0, 0, 16)?;
        let redis = RedisConfig {
            url: Secret::new(rendered),
            topology,
            wait_replicas: wait_replicas as u32,
            wait_timeout: self.dur(
                "redis_wait_timeout",
                raw.redis_wait_timeout,
                Duration::from_secs(1),
                true,
            )?,
            timeout: self.dur(
                "redis_timeout",
                raw.redis_timeout,
                Duration::from_secs(2),
                true,
            )?,
            key_prefix: {
                let prefix = raw.key_prefix.clone().unwrap_or_else(|| "cmpp".to_string());
                self.token("key_prefix", &prefix, None)?;
                // Braces would make the prefix the hash tag of every key: one Cluster slot.
                if prefix.contains(['{', '}']) {
                    return Err(self.err("key_prefix", "must not contain { or }"));
                }
                prefix
            },
        };

        // Store and worker.
        let state_ttl = raw.state_ttl.unwrap_or(Duration::from_secs(72 * 3600));
        if state_ttl < MIN_STATE_TTL {
            return Err(self.err(
                "state_ttl",
                format!(
                    "must be at least 48h because delivery reports may arrive up to 48 hours after the submit, got {}",
                    fmt_dur(state_ttl)
                ),
            ));
        }
        let store = StoreConfig {
            state_ttl,
            outbound_backlog_limit: raw.outbound_backlog_limit.unwrap_or(100_000),
            inbound_maxlen: self.int(
                "inbound_maxlen",
                raw.inbound_maxlen,
                1_000_000,
                1,
                u64::MAX,
            )?,
            report_match_wait: self.dur(
                "report_match_wait",
                raw.report_match_wait,
                Duration::from_secs(10),
                false,
            )?,
            mo_reassembly_timeout: self.dur(
                "mo_reassembly_timeout",
                raw.mo_reassembly_timeout,
                Duration::from_secs(300),
                true,
            )?,
        };
        let group = raw
            .consumer_group
            .clone()
            .unwrap_or_else(|| "gateway".to_string());
        self.token("consumer_group", &group, None)?;
        let consumer = match &raw.consumer_name {
            Some(name) => name.clone(),
            None => format!("{}-{}", hostname(env), std::process::id()),
        };
        self.token("consumer_name", &consumer, None)?;
        let worker = WorkerConfig {
            group,
            consumer,
            batch: self.int("worker_batch", raw.worker_batch, 64, 1, 100_000)? as usize,
            block: self.dur(
                "worker_block",
                raw.worker_block,
                Duration::from_secs(1),
                true,
            )?,
            reclaim_idle: self.dur(
                "reclaim_idle",
                raw.reclaim_idle,
                Duration::from_secs(60),
                true,
            )?,
            consumer_delete_idle: self.dur(
                "consumer_delete_idle",
                raw.consumer_delete_idle,
                Duration::from_secs(3600),
                true,
            )?,
            max_claims: self.int("max_claims", raw.max_claims, 5, 2, 1_000)?,
            lease_ttl: self.dur("lease_ttl", raw.lease_ttl, Duration::from_secs(10), true)?,
        };
        if worker.lease_ttl < Duration::from_secs(1) {
            return Err(self.err("lease_ttl", "must be at least 1s"));
        }

        let log = LogConfig {
            debug: raw.debug.unwrap_or(false),
            json: raw.log_json.unwrap_or(false),
        };

        let keys = crate::store::Keys::new(&redis.key_prefix);
        let mut channels = channels;
        for (i, channel) in channels.iter_mut().enumerate() {
            channel.stream = keys.outbound_stream(&channel.name, i == 0);
        }
        Ok(GatewayConfig {
            source: self.file.to_string(),
            channels,
            http,
            redis,
            store,
            worker,
            log,
            metrics,
            ingress_only,
            warnings: Vec::new(),
        })
    }

    /// `config.json: key "x"` or `environment CMPP_GATEWAY_X`, for warnings.
    fn place(&self, key: &str) -> String {
        let origin = self.raw.origin(key, self.file);
        let key = match &self.scope {
            Some(scope) => format!("{scope}.{key}"),
            None => key.to_string(),
        };
        match origin {
            Origin::File(file) => format!("{file}: key {key:?}"),
            Origin::Env(var) => format!("environment {var}"),
        }
    }
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// regex's syntax errors span several lines (pattern, caret, reason); keep the reason.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_string))
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// This machine's name for the default consumer: /etc/hostname, then `$HOSTNAME`, then "gateway".
fn hostname(env: &dyn Fn(&str) -> Option<String>) -> String {
    let clean = |s: String| {
        let s: String = s.trim().chars().filter(|c| c.is_ascii_graphic()).collect();
        (!s.is_empty()).then_some(s)
    };
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(clean)
        .or_else(|| env("HOSTNAME").and_then(clean))
        .unwrap_or_else(|| "gateway".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"user":"900001","password":"888888","sms_accessno":"1064899104221","cmpp_host":"127.0.0.1","cmpp_port":7890}"#;

    fn load(json: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_str_with_env("t.json", json, &|_| None)
    }

    fn with(extra: &str) -> String {
        format!("{},{extra}}}", &MIN[..MIN.len() - 1])
    }

    #[test]
    fn defaults_of_a_minimal_file() {
        let c = load(MIN).unwrap();
        assert_eq!(c.default_channel().link.addr, "127.0.0.1:7890");
        assert_eq!(c.http.bind, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.redis.url.expose(), "redis://127.0.0.1:6379/0");
        assert_eq!(c.default_channel().message.service_id, "");
        assert!(c.default_channel().message.msisdn.is_match("13800138000"));
        assert!(
            c.default_channel()
                .message
                .msisdn
                .is_match("+8613800138000")
        );
        assert!(!c.default_channel().message.msisdn.is_match("12800138000"));
        assert!(
            c.worker
                .consumer
                .ends_with(&format!("-{}", std::process::id()))
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn missing_required_keys() {
        let err = load(r#"{"password":"x","sms_accessno":"1","cmpp_host":"h","cmpp_port":1}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.json: key \"user\": required (the SP_Id) but missing"
        );
        let err =
            load(r#"{"user":"1","password":"x","sms_accessno":"1","cmpp_host":"h"}"#).unwrap_err();
        assert_eq!(err.key(), Some("cmpp_port"));
    }

    #[test]
    fn reconnect_bounds_blame_the_key_set() {
        let err = load(&with(r#""reconnect_min":"120s""#)).unwrap_err();
        assert_eq!(err.key(), Some("reconnect_min"));
        let err = load(&with(r#""reconnect_max":"1s","reconnect_min":"2s""#)).unwrap_err();
        assert_eq!(err.key(), Some("reconnect_max"));
        assert!(err.to_string().contains("must not be less than"), "{err}");
    }

    #[test]
    fn hosts() {
        let c = load(&with(
            r#""cmpp_host":"::1","http_host":"::1","redis_host":"::1""#,
        ))
        .unwrap();
        assert_eq!(c.default_channel().link.addr, "[::1]:7890");
        assert_eq!(c.http.bind, "[::1]:8000".parse().unwrap());
        assert_eq!(c.redis.url.expose(), "redis://[::1]:6379/0");
        let c = load(&with(
            r#""cmpp_host":"ismg.example.com","http_host":"LOCALHOST""#,
        ))
        .unwrap();
        assert_eq!(c.default_channel().link.addr, "ismg.example.com:7890");
        assert_eq!(c.http.bind.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        for (json, key) in [
            (r#""cmpp_host":"0.0.0.0""#, "cmpp_host"),
            (r#""cmpp_host":"a b""#, "cmpp_host"),
            (r#""redis_host":"0.0.0.0""#, "redis_host"),
            (r#""http_host":"example.com""#, "http_host"),
            (r#""http_port":70000"#, "http_port"),
            (r#""cmpp_port":0"#, "cmpp_port"),
        ] {
            assert_eq!(load(&with(json)).unwrap_err().key(), Some(key), "{json}");
        }
    }

    #[test]
    fn ascii_segment_chars_with_wide_reference() {
        assert!(load(&with(r#""ascii_segment_chars":1"#)).is_ok());
        let err = load(&with(
            r#""ascii_segment_chars":1,"wide_udh_reference":true"#,
        ))
        .unwrap_err();
        assert_eq!(err.key(), Some("ascii_segment_chars"));
        let err = load(&with(r#""ascii_segment_chars":154"#)).unwrap_err();
        assert!(err.to_string().contains("between 1 and 153"), "{err}");
    }

    #[test]
    fn regex_errors_are_one_line() {
        let err = load(&with(r#""msisdn_pattern":"^(\\d+$""#))
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.contains("msisdn_pattern") && err.contains("unclosed group"),
            "{err}"
        );
    }

    #[test]
    fn redis_host_and_port_ignored_next_to_a_url_are_warned() {
        let c = load(&with(r#""redis_url":"redis://r:1/2","redis_host":"x""#)).unwrap();
        assert_eq!(c.redis.url.expose(), "redis://r:1/2");
        assert_eq!(
            c.warnings,
            vec!["t.json: key \"redis_host\": ignored because redis_url is set"]
        );
    }

    #[test]
    fn without_channels_the_top_level_keys_are_the_channel_default() {
        let c = load(MIN).unwrap();
        assert_eq!(c.channels.len(), 1);
        let d = c.default_channel();
        assert_eq!(d.name, DEFAULT_CHANNEL);
        assert_eq!((d.max_connections, d.connections_per_instance), (1, 1));
        assert_eq!(d.stream, "cmpp:mt");
        assert_eq!(c.worker.lease_ttl, Duration::from_secs(10));
    }

    #[test]
    fn channels_inherit_the_top_level_keys_and_override_their_own() {
        let c = load(&with(
            r#""window":32,"max_connections":2,"channels":[
                {"name":"cm-bj","max_connections":4,"connections_per_instance":2,"rate_per_connection":500},
                {"name":"cm-sh","user":"900002","password":"p2","cmpp_port":7891}]"#,
        ))
        .unwrap();
        let [bj, sh] = &c.channels[..] else {
            panic!("two channels")
        };
        assert_eq!(bj.name, "cm-bj");
        assert_eq!((bj.max_connections, bj.connections_per_instance), (4, 2));
        assert_eq!((bj.link.rate, bj.link.window), (500, 32));
        assert_eq!(bj.link.sp_id, "900001");
        assert_eq!(bj.stream, "cmpp:mt", "the first channel is the default");
        assert_eq!(sh.link.sp_id, "900002");
        assert_eq!(sh.message.sp_id, "900002");
        assert_eq!(sh.link.secret.expose(), "p2");
        assert_eq!(sh.link.addr, "127.0.0.1:7891");
        assert_eq!((sh.max_connections, sh.connections_per_instance), (2, 2));
        assert_eq!(sh.stream, "cmpp:mt:{cm-sh}");
        assert_eq!(c.channel(None).unwrap().name, "cm-bj");
        assert_eq!(c.channel(Some("cm-sh")).unwrap().name, "cm-sh");
        assert!(c.channel(Some("nope")).is_none());
    }

    #[test]
    fn channel_errors_name_the_channel_and_key() {
        for (channels, key, says) in [
            (
                r#"[{"name":"a","window":0}]"#,
                "channels[0].window",
                "between 1 and 1024",
            ),
            (
                r#"[{"name":"a"},{"name":"b","user":"1234567"}]"#,
                "channels[1].user",
                "at most 6",
            ),
            (
                r#"[{"name":"a","colour":"red"}]"#,
                "channels[0].colour",
                "not a channel key",
            ),
            (r#"[{"window":8}]"#, "channels[0].name", "required"),
            (
                r#"[{"name":"a"},{"name":"a"}]"#,
                "channels[1].name",
                "twice",
            ),
            (r#"[{"name":"dead"}]"#, "channels[0].name", "dead-letter"),
            (
                r#"[{"name":"a{b}"}]"#,
                "channels[0].name",
                "letters, digits",
            ),
            (
                r#"[{"name":"a","connections_per_instance":2}]"#,
                "channels[0].connections_per_instance",
                "between 0 and 1",
            ),
            (r#"[]"#, "channels", "at least one"),
        ] {
            let err = load(&with(&format!(r#""channels":{channels}"#))).unwrap_err();
            assert_eq!(err.key(), Some(key), "{channels}: {err}");
            assert!(err.to_string().contains(says), "{channels}: {err}");
        }
    }

    #[test]
    fn channels_come_from_the_environment_too_and_hide_their_passwords() {
        let json = r#"[{"name":"x","password":"s3cret-pass"}]"#;
        let env = |k: &str| (k == "CMPP_GATEWAY_CHANNELS").then(|| json.to_string());
        let c = GatewayConfig::from_str_with_env("t.json", MIN, &env).unwrap();
        assert_eq!(c.default_channel().name, "x");
        assert_eq!(c.default_channel().link.secret.expose(), "s3cret-pass");
        assert!(!format!("{c:?}").contains("s3cret-pass"));
    }

    #[test]
    fn hostname_falls_back() {
        let name = hostname(&|k| (k == "HOSTNAME").then(|| "box".to_string()));
        assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
        if std::fs::read_to_string("/etc/hostname").is_err() {
            assert_eq!(name, "box");
        }
    }
}
