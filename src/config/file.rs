//! The raw form of config.json: every known key as an optional, parsed but not yet validated
//! value, with where it was set. Unknown keys become warnings (old files may carry extra keys).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::channel::RawChannels;
use super::error::{ConfigError, Origin};
use super::value::{FieldValue, Input};
use crate::secret::Secret;

macro_rules! raw_config {
    ($($key:ident: $ty:ty,)*) => {
        /// config.json as written, plus environment overrides. `None` = not set (default applies).
        #[derive(Debug, Clone, Default)]
        pub(crate) struct RawConfig {
            $(pub $key: Option<$ty>,)*
            /// Where each set key got its value.
            pub origins: BTreeMap<&'static str, Origin>,
        }

        /// Every key config.json may hold, in file order.
        pub const KEYS: &[&str] = &[$(stringify!($key),)*];

        impl RawConfig {
            /// Parses `input` as the value of `key` and stores it. `Ok(false)` for an unknown key.
            pub(crate) fn set(
                &mut self,
                key: &str,
                input: Input<'_>,
                origin: Origin,
            ) -> Result<bool, String> {
                match key {
                    $(stringify!($key) => {
                        self.$key = Some(<$ty as FieldValue>::parse(input)?);
                        self.origins.insert(stringify!($key), origin);
                        Ok(true)
                    })*
                    _ => Ok(false),
                }
            }
        }
    };
}

raw_config! {
    // The original Go gateway's keys.
    user: String,
    password: Secret,
    sms_accessno: String,
    service_id: String,
    http_host: String,
    http_port: u64,
    cmpp_host: String,
    cmpp_port: u64,
    debug: bool,
    redis_host: String,
    redis_port: u64,
    // Redis.
    redis_url: Secret,
    redis_password: Secret,
    redis_db: u64,
    key_prefix: String,
    redis_timeout: Duration,
    redis_sentinels: Vec<String>,
    redis_master_name: String,
    redis_sentinel_password: Secret,
    redis_cluster_nodes: Vec<String>,
    redis_wait_replicas: u64,
    redis_wait_timeout: Duration,
    // Link.
    cmpp_version: String,
    auth_check: String,
    window: u64,
    rate: u64,
    response_timeout: Duration,
    max_sends: u64,
    quarantine_after_drops: u64,
    flow_control_retries: u64,
    heartbeat_idle: Duration,
    heartbeat_misses: u64,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    reconnect_reset_after: Duration,
    close_timeout: Duration,
    // Channels and connections.
    channels: RawChannels,
    max_connections: u64,
    connections_per_instance: u64,
    lease_ttl: Duration,
    // Messages.
    fee_type: String,
    fee_code: String,
    fee_user_type: u64,
    registered_delivery: bool,
    prefer_gbk: bool,
    ascii_segment_chars: u64,
    wide_udh_reference: bool,
    max_segments: u64,
    msisdn_pattern: String,
    max_recipients: u64,
    // HTTP.
    api_keys: Vec<Secret>,
    max_body_bytes: u64,
    readyz_requires_link: bool,
    http_header_timeout: Duration,
    http_body_timeout: Duration,
    http_idle_timeout: Duration,
    http_shutdown_timeout: Duration,
    http_max_connections: u64,
    ingress_only: bool,
    metrics_host: String,
    metrics_port: u64,
    metrics_sample_interval: Duration,
    // Store and worker.
    state_ttl: Duration,
    outbound_backlog_limit: u64,
    inbound_maxlen: u64,
    report_match_wait: Duration,
    mo_reassembly_timeout: Duration,
    worker_batch: u64,
    worker_block: Duration,
    reclaim_idle: Duration,
    consumer_delete_idle: Duration,
    max_claims: u64,
    consumer_name: String,
    consumer_group: String,
    // Logging.
    log_json: bool,
}

impl RawConfig {
    /// Where `key` was set; the file when it was not set at all.
    pub(crate) fn origin(&self, key: &str, file: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| Origin::File(file.to_string()))
    }

    pub(crate) fn is_set(&self, key: &str) -> bool {
        self.origins.contains_key(key)
    }
}

/// Parses the text of config.json. Returns the raw values and one warning per unknown key.
/// `null` counts as not set.
pub(crate) fn parse_file(file: &str, json: &str) -> Result<(RawConfig, Vec<String>), ConfigError> {
    // Editors on Windows like to start UTF-8 files with a BOM.
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    let value: Value = serde_json::from_str(json).map_err(|error| ConfigError::Json {
        file: file.to_string(),
        error,
    })?;
    let Value::Object(map) = value else {
        return Err(ConfigError::NotAnObject {
            file: file.to_string(),
        });
    };
    let mut raw = RawConfig::default();
    let mut warnings = Vec::new();
    for (key, value) in &map {
        if value.is_null() {
            if !KEYS.contains(&key.as_str()) {
                warnings.push(unknown_key_warning(file, key));
            }
            continue;
        }
        let known = raw
            .set(key, Input::Json(value), Origin::File(file.to_string()))
            .map_err(|message| ConfigError::Invalid {
                origin: Origin::File(file.to_string()),
                key: key.clone(),
                message,
            })?;
        if !known {
            warnings.push(unknown_key_warning(file, key));
        }
    }
    Ok((raw, warnings))
}

fn unknown_key_warning(file: &str, key: &str) -> String {
    let lower = key.trim().to_ascii_lowercase().replace('-', "_");
    match KEYS.iter().find(|k| **k == lower) {
        Some(known) => format!("{file}: unknown key {key:?} ignored (did you mean {known:?}?)"),
        None => format!("{file}: unknown key {key:?} ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_snake_case_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for key in KEYS {
            assert!(
                key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{key}"
            );
            assert!(seen.insert(*key), "{key} twice");
        }
        assert_eq!(KEYS.len(), 76);
    }

    #[test]
    fn unknown_and_null_keys() {
        let (raw, warnings) = parse_file(
            "c.json",
            r#"{"window": 8, "Window": 9, "extra": 1, "rate": null}"#,
        )
        .unwrap();
        assert_eq!(raw.window, Some(8));
        assert_eq!(raw.rate, None);
        assert!(!raw.is_set("rate"));
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("\"Window\"") && warnings[0].contains("did you mean"));
        assert_eq!(warnings[1], "c.json: unknown key \"extra\" ignored");
    }

    #[test]
    fn a_type_error_names_file_and_key() {
        let err = parse_file("c.json", r#"{"window": [1]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.json: key \"window\": must be a number, got an array"
        );
        let err = parse_file("c.json", "[1]").unwrap_err();
        assert!(matches!(err, ConfigError::NotAnObject { .. }));
        let err = parse_file("c.json", "\u{feff}{\"window\": }").unwrap_err();
        assert!(err.to_string().contains("line 1 column"), "{err}");
    }
}
