//! config.json, environment overrides and validation (`cmpp_gateway::config`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cmpp_gateway::config::{ConfigError, GatewayConfig};
use cmpp_gateway::protocol::Version;
use cmpp_gateway::secret::Secret;
use cmpp_gateway::session::{AuthCheck, LinkConfig};

/// The original Go gateway's file, byte for byte.
const OLD: &str = r#"{"user":"900001","password":"888888","sms_accessno":"1064899104221","service_id":"JSASXW","http_host":"0.0.0.0","http_port":"8000","cmpp_host":"127.0.0.1","cmpp_port":"7890","debug":true,"redis_host":"127.0.0.1","redis_port":"6379"}"#;

// Distinctive secrets: none of these may show up in a message, a warning or a Debug print.
const PASSWORD: &str = "Pw-Xq7Zk9Lm2";
const REDIS_PASSWORD: &str = "Rd-Vb4Nw8Tc6";
const URL_PASSWORD: &str = "Ur-Hj3Ks5Pq1";
const API_KEY_1: &str = "Ak-Fy6Gd2Rw0";
const API_KEY_2: &str = "Ak-Ue9Oi4Ya7";
const SECRETS: [&str; 5] = [PASSWORD, REDIS_PASSWORD, URL_PASSWORD, API_KEY_1, API_KEY_2];

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn parse(json: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_str_with_env("t.json", json, &no_env)
}

/// The old file with `extra` keys merged in (later keys win).
fn old_with(extra: serde_json::Value) -> String {
    let mut base: serde_json::Value = serde_json::from_str(OLD).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked in: {text}"
        );
    }
}

/// config.json at the repository root, found from this file's own path (works from a scratch crate).
fn repo_config() -> PathBuf {
    Path::new(file!())
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("config.json")
}

#[test]
fn the_old_go_file_loads_unchanged() {
    let c = parse(OLD).unwrap();
    let defaults = LinkConfig::new("x", "y", Secret::new("z"));

    assert_eq!(c.source, "t.json");
    assert_eq!(c.default_channel().link.addr, "127.0.0.1:7890");
    assert_eq!(c.default_channel().link.sp_id, "900001");
    assert_eq!(c.default_channel().link.secret.expose(), "888888");
    assert_eq!(c.default_channel().link.version, Version::V30);
    assert_eq!(c.default_channel().link.auth_check, AuthCheck::Warn);
    assert_eq!(c.default_channel().link.window, 16);
    assert_eq!(c.default_channel().link.rate, 0);
    assert_eq!(
        c.default_channel().link.response_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(c.default_channel().link.max_sends, 3);
    assert_eq!(c.default_channel().link.flow_control_retries, 30);
    assert_eq!(
        c.default_channel().link.heartbeat_idle,
        Duration::from_secs(180)
    );
    assert_eq!(c.default_channel().link.heartbeat_misses, 3);
    assert_eq!(
        c.default_channel().link.connect_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(
        c.default_channel().link.reconnect_min,
        Duration::from_secs(1)
    );
    assert_eq!(
        c.default_channel().link.reconnect_max,
        Duration::from_secs(60)
    );
    assert_eq!(
        c.default_channel().link.close_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(
        c.default_channel().link.deliver_queue,
        defaults.deliver_queue
    );
    assert_eq!(
        c.default_channel().link.max_frame_len,
        defaults.max_frame_len
    );

    assert_eq!(c.default_channel().message.sp_id, "900001");
    assert_eq!(c.default_channel().message.access_no, "1064899104221");
    assert_eq!(c.default_channel().message.service_id, "JSASXW");
    assert_eq!(c.default_channel().message.fee_type, "01");
    assert_eq!(c.default_channel().message.fee_code, "000000");
    assert_eq!(c.default_channel().message.fee_user_type, 0);
    assert!(c.default_channel().message.registered_delivery);
    assert!(!c.default_channel().message.prefer_gbk);
    assert_eq!(
        c.default_channel().message.split,
        cmpp_gateway::text::SplitOptions::default()
    );
    assert_eq!(c.default_channel().message.max_segments, 10);
    assert_eq!(c.default_channel().message.max_recipients, 100);
    assert_eq!(
        c.default_channel().message.msisdn.as_str(),
        r"^(\+?86)?1[3-9]\d{9}$"
    );

    assert_eq!(c.http.bind, "0.0.0.0:8000".parse().unwrap());
    assert!(c.http.api_keys.is_empty());
    assert_eq!(c.http.max_body_bytes, 65536);
    assert!(c.http.readyz_requires_link);
    assert!(!c.ingress_only);

    assert_eq!(c.redis.url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(c.redis.redacted_url(), "redis://127.0.0.1:6379/0");
    assert_eq!(c.redis.timeout, Duration::from_secs(2));
    assert_eq!(c.redis.key_prefix, "cmpp");

    assert_eq!(c.store.state_ttl, Duration::from_secs(72 * 3600));
    assert_eq!(c.store.outbound_backlog_limit, 100_000);
    assert_eq!(c.store.inbound_maxlen, 1_000_000);
    assert_eq!(c.worker.group, "gateway");
    assert!(
        c.worker
            .consumer
            .ends_with(&format!("-{}", std::process::id())),
        "{}",
        c.worker.consumer
    );
    assert_eq!(c.worker.batch, 64);
    assert_eq!(c.worker.block, Duration::from_secs(1));
    assert_eq!(c.worker.reclaim_idle, Duration::from_secs(60));
    assert_eq!(c.worker.consumer_delete_idle, Duration::from_secs(3600));
    assert_eq!(c.worker.max_claims, 5);
    assert_eq!(c.default_channel().link.quarantine_after_drops, 2);
    assert_eq!(
        c.default_channel().link.reconnect_reset_after,
        Duration::from_secs(60)
    );

    assert!(c.log.debug);
    assert!(!c.log.json);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn ports_may_be_numbers() {
    let json = OLD
        .replace(r#""8000""#, "8000")
        .replace(r#""7890""#, "7890")
        .replace(r#""6379""#, "6380");
    let c = parse(&json).unwrap();
    assert_eq!(c.default_channel().link.addr, "127.0.0.1:7890");
    assert_eq!(c.http.bind.port(), 8000);
    assert_eq!(c.redis.url.expose(), "redis://127.0.0.1:6380/0");
}

#[test]
fn the_repository_config_json_loads() {
    let path = repo_config();
    let c = GatewayConfig::load(&path).unwrap();
    assert_eq!(c.source, path.display().to_string());
    assert_eq!(c.default_channel().link.addr, "127.0.0.1:7890");
    assert_eq!(c.default_channel().link.sp_id, "900001");
    assert_eq!(c.default_channel().link.secret.expose(), "888888");
    assert_eq!(c.default_channel().link.window, 16);
    assert_eq!(
        c.default_channel().link.response_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(
        c.default_channel().link.heartbeat_idle,
        Duration::from_secs(180)
    );
    assert_eq!(c.default_channel().message.access_no, "1064899104221");
    assert_eq!(c.default_channel().message.service_id, "JSASXW");
    assert_eq!(c.http.bind, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(c.redis.url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(c.redis.key_prefix, "cmpp");
    assert_eq!(c.store.state_ttl, Duration::from_secs(72 * 3600));
    assert!(!c.log.debug);
    // No unknown keys in the file (warnings about stray CMPP_GATEWAY_* variables may exist).
    assert!(
        !c.warnings.iter().any(|w| w.contains("unknown key")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn every_new_key_is_parsed() {
    let json = old_with(serde_json::json!({
        "redis_password": "pw",
        "redis_db": 3,
        "key_prefix": "sms",
        "redis_timeout": "5s",
        "cmpp_version": "2.0",
        "auth_check": "strict",
        "window": 32,
        "rate": 200,
        "response_timeout": "30s",
        "max_sends": 5,
        "flow_control_retries": 7,
        "heartbeat_idle": "3m",
        "heartbeat_misses": 4,
        "connect_timeout": "15s",
        "reconnect_min": "2s",
        "reconnect_max": "2m",
        "close_timeout": "0s",
        "fee_type": "02",
        "fee_code": "100",
        "fee_user_type": 2,
        "registered_delivery": 0,
        "prefer_gbk": true,
        "ascii_segment_chars": 134,
        "wide_udh_reference": true,
        "max_segments": 5,
        "msisdn_pattern": "^1\\d{10}$",
        "max_recipients": 50,
        "api_keys": ["k1", "k2"],
        "max_body_bytes": 1024,
        "readyz_requires_link": false,
        "ingress_only": true,
        "state_ttl": "96h",
        "outbound_backlog_limit": 0,
        "inbound_maxlen": 5000,
        "worker_batch": 10,
        "worker_block": "500ms",
        "reclaim_idle": "2m",
        "consumer_delete_idle": "1d",
        "consumer_name": "gw-a",
        "consumer_group": "senders",
        "log_json": true
    }));
    let c = parse(&json).unwrap();
    assert_eq!(c.redis.url.expose(), "redis://:pw@127.0.0.1:6379/3");
    assert_eq!(c.redis.key_prefix, "sms");
    assert_eq!(c.redis.timeout, Duration::from_secs(5));
    assert_eq!(c.default_channel().link.version, Version::V20);
    assert_eq!(c.default_channel().link.auth_check, AuthCheck::Strict);
    assert_eq!(c.default_channel().link.window, 32);
    assert_eq!(c.default_channel().link.rate, 200);
    assert_eq!(
        c.default_channel().link.response_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(c.default_channel().link.max_sends, 5);
    assert_eq!(c.default_channel().link.flow_control_retries, 7);
    assert_eq!(
        c.default_channel().link.heartbeat_idle,
        Duration::from_secs(180)
    );
    assert_eq!(c.default_channel().link.heartbeat_misses, 4);
    assert_eq!(
        c.default_channel().link.connect_timeout,
        Duration::from_secs(15)
    );
    assert_eq!(
        c.default_channel().link.reconnect_min,
        Duration::from_secs(2)
    );
    assert_eq!(
        c.default_channel().link.reconnect_max,
        Duration::from_secs(120)
    );
    assert_eq!(c.default_channel().link.close_timeout, Duration::ZERO);
    assert_eq!(c.default_channel().message.fee_type, "02");
    assert_eq!(c.default_channel().message.fee_code, "100");
    assert_eq!(c.default_channel().message.fee_user_type, 2);
    assert!(!c.default_channel().message.registered_delivery);
    assert!(c.default_channel().message.prefer_gbk);
    assert_eq!(c.default_channel().message.split.ascii_segment_chars, 134);
    assert!(c.default_channel().message.split.wide_reference);
    assert_eq!(c.default_channel().message.max_segments, 5);
    assert!(c.default_channel().message.msisdn.is_match("12345678901"));
    assert!(
        !c.default_channel()
            .message
            .msisdn
            .is_match("+8613800138000")
    );
    assert_eq!(c.default_channel().message.max_recipients, 50);
    let keys: Vec<&str> = c.http.api_keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, ["k1", "k2"]);
    assert_eq!(c.http.max_body_bytes, 1024);
    assert!(!c.http.readyz_requires_link);
    assert!(c.ingress_only);
    assert_eq!(c.store.state_ttl, Duration::from_secs(96 * 3600));
    assert_eq!(c.store.outbound_backlog_limit, 0);
    assert_eq!(c.store.inbound_maxlen, 5000);
    assert_eq!(c.worker.batch, 10);
    assert_eq!(c.worker.block, Duration::from_millis(500));
    assert_eq!(c.worker.reclaim_idle, Duration::from_secs(120));
    assert_eq!(c.worker.consumer_delete_idle, Duration::from_secs(86_400));
    assert_eq!(c.worker.consumer, "gw-a");
    assert_eq!(c.worker.group, "senders");
    assert!(c.log.json);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn durations_may_be_whole_seconds_or_humantime() {
    let json = old_with(serde_json::json!({
        "response_timeout": 30,
        "heartbeat_idle": "90",
        "state_ttl": 172_800,
        "worker_block": "1500ms",
        "reclaim_idle": "1h 30m",
        "redis_timeout": "3s",
        "connect_timeout": 5,
        "reconnect_max": "1d"
    }));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.default_channel().link.response_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        c.default_channel().link.heartbeat_idle,
        Duration::from_secs(90)
    );
    assert_eq!(c.store.state_ttl, Duration::from_secs(48 * 3600));
    assert_eq!(c.worker.block, Duration::from_millis(1500));
    assert_eq!(c.worker.reclaim_idle, Duration::from_secs(5400));
    assert_eq!(c.redis.timeout, Duration::from_secs(3));
    assert_eq!(
        c.default_channel().link.connect_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        c.default_channel().link.reconnect_max,
        Duration::from_secs(86400)
    );
}

#[test]
fn environment_overrides_win() {
    let env = env_of(&[
        ("CMPP_GATEWAY_WINDOW", "32"),
        ("CMPP_GATEWAY_API_KEYS", "key1, key2"),
        ("CMPP_GATEWAY_DEBUG", "false"),
        ("CMPP_GATEWAY_LOG_JSON", "true"),
        ("CMPP_GATEWAY_RESPONSE_TIMEOUT", "30s"),
        ("CMPP_GATEWAY_STATE_TTL", "96h"),
        ("CMPP_GATEWAY_CMPP_PORT", "7891"),
        ("CMPP_GATEWAY_USER", "900002"),
        ("CMPP_GATEWAY_PASSWORD", "from-env"),
        ("CMPP_GATEWAY_AUTH_CHECK", "off"),
        ("CMPP_GATEWAY_CMPP_VERSION", "2.0"),
        ("CMPP_GATEWAY_REDIS_URL", "redis://redis.internal:6380/1"),
        ("CMPP_GATEWAY_HEARTBEAT_IDLE", "120"),
        ("CMPP_GATEWAY_RATE", ""), // empty = unset
    ]);
    let json = old_with(serde_json::json!({"window": 16, "rate": 50}));
    let c = GatewayConfig::from_str_with_env("t.json", &json, &env).unwrap();
    assert_eq!(c.default_channel().link.window, 32);
    let keys: Vec<&str> = c.http.api_keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, ["key1", "key2"]);
    assert!(!c.log.debug, "the file says true, the environment false");
    assert!(c.log.json);
    assert_eq!(
        c.default_channel().link.response_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(c.store.state_ttl, Duration::from_secs(96 * 3600));
    assert_eq!(c.default_channel().link.addr, "127.0.0.1:7891");
    assert_eq!(c.default_channel().link.sp_id, "900002");
    assert_eq!(c.default_channel().message.sp_id, "900002");
    assert_eq!(c.default_channel().link.secret.expose(), "from-env");
    assert_eq!(c.default_channel().link.auth_check, AuthCheck::Off);
    assert_eq!(c.default_channel().link.version, Version::V20);
    assert_eq!(c.redis.url.expose(), "redis://redis.internal:6380/1");
    assert_eq!(
        c.default_channel().link.heartbeat_idle,
        Duration::from_secs(120)
    );
    assert_eq!(c.default_channel().link.rate, 50);
}

#[test]
fn the_environment_alone_can_supply_required_keys() {
    let env = env_of(&[
        ("CMPP_GATEWAY_USER", "900001"),
        ("CMPP_GATEWAY_PASSWORD", "x"),
        ("CMPP_GATEWAY_SMS_ACCESSNO", "10690"),
        ("CMPP_GATEWAY_CMPP_HOST", "ismg"),
        ("CMPP_GATEWAY_CMPP_PORT", "7890"),
    ]);
    let c = GatewayConfig::from_str_with_env("t.json", "{}", &env).unwrap();
    assert_eq!(c.default_channel().link.addr, "ismg:7890");
    let err = GatewayConfig::from_str_with_env("t.json", "{}", &no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.json: key \"user\": required (the SP_Id) but missing"
    );
}

#[test]
fn a_bad_override_names_the_variable() {
    let cases = [
        ("CMPP_GATEWAY_WINDOW", "lots", "must be a whole number"),
        (
            "CMPP_GATEWAY_WINDOW",
            "0",
            "must be between 1 and 1024, got 0",
        ),
        ("CMPP_GATEWAY_DEBUG", "maybe", "must be true or false"),
        ("CMPP_GATEWAY_STATE_TTL", "1h", "at least 48h"),
        ("CMPP_GATEWAY_WORKER_BLOCK", "5 parsecs", "parsecs"),
        (
            "CMPP_GATEWAY_AUTH_CHECK",
            "sometimes",
            "strict, warn or off",
        ),
    ];
    for (var, value, fragment) in cases {
        let err = GatewayConfig::from_str_with_env("t.json", OLD, &env_of(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("environment {var}: ")),
            "{var}={value}: {err}"
        );
        assert!(err.contains(fragment), "{var}={value}: {err}");
    }
    let err =
        GatewayConfig::from_str_with_env("t.json", OLD, &env_of(&[("CMPP_GATEWAY_WINDOW", "0")]))
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment CMPP_GATEWAY_WINDOW: must be between 1 and 1024, got 0"
    );
    assert_eq!(err.key(), Some("window"));
}

#[test]
fn redis_url_wins_over_host_and_port() {
    let json = old_with(serde_json::json!({"redis_url": "redis://cache.example.com:6390/2"}));
    let c = parse(&json).unwrap();
    assert_eq!(c.redis.url.expose(), "redis://cache.example.com:6390/2");
    // The old file's redis_host/redis_port are now ignored, and that is said.
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("redis_host") && c.warnings[0].contains("ignored"));

    let json = old_with(serde_json::json!({"redis_url": "rediss://cache.example.com:6380"}));
    let c = parse(&json).unwrap();
    assert_eq!(c.redis.url.expose(), "rediss://cache.example.com:6380");
    assert_eq!(c.redis.redacted_url(), "rediss://cache.example.com:6380");

    let json = old_with(serde_json::json!({"redis_url": "memcached://cache:11211"}));
    let err = parse(&json).unwrap_err().to_string();
    assert!(err.starts_with("t.json: key \"redis_url\": "), "{err}");
    assert!(err.contains("redis://"), "{err}");
}

#[test]
fn the_redis_password_is_inserted_and_redacted() {
    // From host/port, with characters that must be percent-encoded.
    let json = old_with(serde_json::json!({"redis_password": "p@ss:w/rd", "redis_db": 1}));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        "redis://:p%40ss%3Aw%2Frd@127.0.0.1:6379/1"
    );
    assert_eq!(c.redis.redacted_url(), "redis://:***@127.0.0.1:6379/1");

    // Into a URL without one.
    let json = old_with(serde_json::json!({
        "redis_url": "redis://cache:6379/0", "redis_password": REDIS_PASSWORD
    }));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        format!("redis://:{REDIS_PASSWORD}@cache:6379/0")
    );
    assert_eq!(c.redis.redacted_url(), "redis://:***@cache:6379/0");

    // The explicit password wins over the URL's, the username stays; redis_db replaces the path.
    let json = old_with(serde_json::json!({
        "redis_url": format!("rediss://app:{URL_PASSWORD}@cache:6380/0"),
        "redis_password": REDIS_PASSWORD,
        "redis_db": 4
    }));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        format!("rediss://app:{REDIS_PASSWORD}@cache:6380/4")
    );
    assert_eq!(c.redis.redacted_url(), "rediss://app:***@cache:6380/4");

    // A URL's own password is kept and redacted.
    let json = old_with(serde_json::json!({"redis_url": format!("redis://:{URL_PASSWORD}@cache")}));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        format!("redis://:{URL_PASSWORD}@cache")
    );
    assert_eq!(c.redis.redacted_url(), "redis://:***@cache");
    assert_no_secret(&format!("{c:?}"));
}

#[test]
fn redis_url_may_be_a_unix_socket() {
    let json = old_with(serde_json::json!({
        "redis_url": format!("redis+unix:///run/redis/redis.sock?pass={URL_PASSWORD}"),
        "redis_db": 3
    }));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        format!("redis+unix:///run/redis/redis.sock?pass={URL_PASSWORD}&db=3")
    );
    assert_eq!(
        c.redis.redacted_url(),
        "redis+unix:///run/redis/redis.sock?pass=***&db=3"
    );
    assert_no_secret(&format!("{c:?}"));

    // redis_password goes where the client reads it for a socket: the query.
    let json = old_with(serde_json::json!({
        "redis_url": "unix:///tmp/redis.sock", "redis_password": REDIS_PASSWORD
    }));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.redis.url.expose(),
        format!("unix:///tmp/redis.sock?pass={REDIS_PASSWORD}")
    );
    assert_no_secret(&c.redis.redacted_url());

    // A socket URL with a host is not one the client can use.
    let json = old_with(serde_json::json!({"redis_url": "unix://cache/redis.sock"}));
    let err = parse(&json).unwrap_err().to_string();
    assert!(
        err.starts_with("t.json: key \"redis_url\": ") && err.contains("absolute path"),
        "{err}"
    );
}

#[test]
fn validation_errors_name_the_source_and_the_key() {
    use serde_json::json;
    let cases = [
        ("window", json!(0), "must be between 1 and 1024, got 0"),
        (
            "window",
            json!(1025),
            "must be between 1 and 1024, got 1025",
        ),
        ("state_ttl", json!("1h"), "at least 48h"),
        ("state_ttl", json!(3600), "at least 48h"),
        (
            "msisdn_pattern",
            json!("^(1\\d+$"),
            "invalid regular expression",
        ),
        ("response_timeout", json!("5 parsecs"), "\"5 parsecs\""),
        ("response_timeout", json!(0), "greater than zero"),
        ("consumer_delete_idle", json!("0s"), "greater than zero"),
        ("user", json!("9000011"), "at most 6 bytes"),
        ("user", json!(""), "must not be empty"),
        ("sms_accessno", json!("10648a"), "digits only"),
        (
            "sms_accessno",
            json!("1234567890123456789012"),
            "1 to 21 digits",
        ),
        ("service_id", json!("ABCDEFGHIJK"), "at most 10 bytes"),
        ("auth_check", json!("maybe"), "expected strict, warn or off"),
        ("cmpp_version", json!("4.0"), "expected 2.0 or 3.0"),
        ("max_sends", json!(11), "between 1 and 10"),
        ("quarantine_after_drops", json!(0), "between 1 and 100"),
        ("max_claims", json!(1), "between 2 and 1000"),
        ("reconnect_reset_after", json!("0s"), "greater than zero"),
        ("max_segments", json!(0), "between 1 and 255"),
        ("max_recipients", json!(101), "between 1 and 100"),
        ("fee_user_type", json!(4), "between 0 and 3"),
        ("fee_type", json!("1"), "exactly 2 digits"),
        ("fee_code", json!("1234567"), "1 to 6 digits"),
        ("registered_delivery", json!(2), "true or false"),
        ("ascii_segment_chars", json!(160), "between 1 and 153"),
        (
            "reconnect_max",
            json!("500ms"),
            "must not be less than reconnect_min",
        ),
        ("cmpp_port", json!("70000"), "between 1 and 65535"),
        (
            "http_host",
            json!("example.com"),
            "IP address or \"localhost\"",
        ),
        ("redis_url", json!("http://cache"), "unsupported URL scheme"),
        ("api_keys", json!([""]), "key number 1 is empty"),
        ("window", json!("sixteen"), "whole number"),
        ("debug", json!("yes please"), "true or false"),
        ("key_prefix", json!("my prefix"), "without spaces"),
        ("worker_batch", json!(0), "between 1 and 100000"),
        ("inbound_maxlen", json!(0), "at least 1"),
        ("http_header_timeout", json!(0), "greater than zero"),
        ("http_body_timeout", json!("0s"), "greater than zero"),
        ("http_idle_timeout", json!(0), "greater than zero"),
        ("http_max_connections", json!(0), "between 1 and 1000000"),
    ];
    for (key, value, fragment) in cases {
        let json = old_with(json!({ key: value.clone() }));
        let err = parse(&json).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("t.json: key \"{key}\": ")),
            "{key}={value}: {text}"
        );
        assert!(text.contains(fragment), "{key}={value}: {text}");
        assert!(!text.contains('\n'), "{key}={value}: {text}");
        assert_eq!(err.key(), Some(key));
    }
    // The exact form for the canonical example.
    let err = parse(&old_with(json!({"window": 0}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.json: key \"window\": must be between 1 and 1024, got 0"
    );
    let err = parse(&old_with(json!({"state_ttl": "1h"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.json: key \"state_ttl\": must be at least 48h because delivery reports may arrive up to 48 hours after the submit, got 1h"
    );
}

#[test]
fn unknown_keys_warn_and_do_not_fail() {
    let json = old_with(serde_json::json!({"log_file": "/var/log/gw.log", "Window": 8}));
    let c = parse(&json).unwrap();
    assert_eq!(
        c.default_channel().link.window,
        16,
        "a misspelt key is not applied"
    );
    assert_eq!(
        c.warnings,
        vec![
            "t.json: unknown key \"log_file\" ignored".to_string(),
            "t.json: unknown key \"Window\" ignored (did you mean \"window\"?)".to_string(),
        ]
    );
}

#[test]
fn secrets_never_appear_in_debug_errors_or_warnings() {
    use serde_json::json;
    let secrets = json!({
        "password": PASSWORD,
        "redis_password": REDIS_PASSWORD,
        "api_keys": [API_KEY_1, API_KEY_2],
        "extra_key": 1
    });
    let c = parse(&old_with(secrets.clone())).unwrap();
    assert_eq!(c.default_channel().link.secret.expose(), PASSWORD);
    let debug = format!("{c:?} {c:#?}");
    assert_no_secret(&debug);
    assert!(debug.contains("redis://:***@127.0.0.1:6379/0"), "{debug}");
    assert_no_secret(&c.redis.redacted_url());
    assert_no_secret(&c.warnings.join("\n"));
    assert!(!c.warnings.is_empty());

    // A URL password, in the file and in the environment.
    let url = format!("redis://:{URL_PASSWORD}@cache:6379/0");
    let c = parse(&old_with(json!({ "redis_url": url }))).unwrap();
    assert_no_secret(&format!("{c:?}"));
    let env = env_of(&[("CMPP_GATEWAY_REDIS_URL", &url)]);
    let c = GatewayConfig::from_str_with_env("t.json", OLD, &env).unwrap();
    assert_no_secret(&format!("{c:?}"));

    // Errors raised about the secrets themselves, or about other keys while they are set.
    let mut errors = Vec::new();
    for extra in [
        json!({"password": [PASSWORD]}),
        json!({"password": {"value": PASSWORD}}),
        json!({"redis_password": [REDIS_PASSWORD]}),
        json!({"api_keys": [API_KEY_1, 7]}),
        json!({"api_keys": [format!("{API_KEY_1} {API_KEY_2}")]}),
        json!({"api_keys": {"k": API_KEY_1}}),
        json!({"redis_url": format!("redis://:{URL_PASSWORD}@cache:port/0")}),
        json!({"redis_url": format!("redis://:{URL_PASSWORD}@cache/db")}),
        json!({"redis_url": format!("redis://:{URL_PASSWORD}@0.0.0.0")}),
        json!({"redis_url": format!("{URL_PASSWORD}://cache")}),
        json!({"redis_url": URL_PASSWORD}),
        json!({"redis_url": format!("redis://:{URL_PASSWORD}@"), "redis_password": REDIS_PASSWORD}),
    ] {
        let mut merged = secrets.clone();
        for (k, v) in extra.as_object().unwrap() {
            merged[k] = v.clone();
        }
        errors.push(parse(&old_with(merged)).unwrap_err());
    }
    let mut merged = secrets.clone();
    merged["window"] = json!(0);
    errors.push(parse(&old_with(merged)).unwrap_err());
    for (var, value) in [
        (
            "CMPP_GATEWAY_REDIS_URL",
            format!("redis://:{URL_PASSWORD}@cache:99999"),
        ),
        ("CMPP_GATEWAY_REDIS_URL", URL_PASSWORD.to_string()),
    ] {
        let env = env_of(&[(var, &value)]);
        errors.push(GatewayConfig::from_str_with_env("t.json", OLD, &env).unwrap_err());
    }
    for err in &errors {
        assert!(err.key().is_some(), "{err}");
        assert_no_secret(&format!("{err} {err:?}"));
    }
}

#[test]
fn a_missing_file_names_the_path_and_the_os_error() {
    let path = Path::new("/nonexistent-dir/cmpp-gateway/config.json");
    let err = GatewayConfig::load(path).unwrap_err();
    let ConfigError::Read { error, .. } = &err else {
        panic!("expected a read error, got {err}");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent-dir/cmpp-gateway/config.json: "),
        "{text}"
    );
    assert!(text.contains(&error.to_string()), "{text}");
}

#[test]
fn malformed_json_names_the_file_line_and_column() {
    let json = "{\n  \"user\": \"900001\",\n  \"password\": 888888\n  \"window\": 16\n}";
    let err = parse(json).unwrap_err();
    assert!(matches!(err, ConfigError::Json { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("t.json: malformed JSON: "), "{text}");
    assert!(text.contains("line 4 column 3"), "{text}");

    let err = parse("[1, 2]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.json: the top level must be a JSON object"
    );
}

#[test]
fn http_connection_limits() {
    use serde_json::json;
    let c = parse(&old_with(json!({}))).unwrap();
    assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.body_timeout, Duration::from_secs(10));
    assert_eq!(c.http.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.http.shutdown_timeout, Duration::from_secs(10));

    let c = parse(&old_with(json!({
        "http_header_timeout": "5s",
        "http_body_timeout": 20,
        "http_idle_timeout": "2m",
        "http_shutdown_timeout": 0,
        "http_max_connections": 10,
    })))
    .unwrap();
    assert_eq!(c.http.header_timeout, Duration::from_secs(5));
    assert_eq!(c.http.body_timeout, Duration::from_secs(20));
    assert_eq!(c.http.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.http.shutdown_timeout, Duration::ZERO);
    assert_eq!(c.http.max_connections, 10);
}

/// The cap against open-file limits given here, so that neither the expectation nor the
/// checks depend on this process's limit.
#[test]
fn the_connection_cap_follows_the_open_file_limit() {
    use serde_json::json;
    let with_limit = |extra: serde_json::Value, open_files: Option<u64>| {
        GatewayConfig::from_str_with_env_and_open_files(
            "t.json",
            &old_with(extra),
            &no_env,
            open_files,
        )
    };
    let cap = |extra, open_files| {
        let c = with_limit(extra, open_files).unwrap();
        (c.http.max_connections, c.warnings)
    };
    let refusal = |extra, open_files| {
        let err = with_limit(extra, open_files).unwrap_err().to_string();
        assert!(
            err.starts_with("t.json: key \"http_max_connections\": "),
            "{err}"
        );
        err
    };

    // By default a quarter of the limit, at least 64, stays free; at most 4096 connections.
    assert_eq!(cap(json!({}), Some(1024)), (768, vec![]));
    assert_eq!(cap(json!({}), Some(100)).0, 36);
    assert_eq!(cap(json!({}), Some(1_048_576)).0, 4096);
    assert_eq!(cap(json!({}), None).0, 4096);
    // The metrics listener's 16 connections are kept free as well.
    assert_eq!(cap(json!({"metrics_port": 9108}), Some(1024)).0, 752);
    let err = refusal(json!({}), Some(64));
    assert!(err.contains("raise the open-file limit"), "{err}");

    // A configured cap must leave 64 descriptors; less than a quarter is only a warning.
    assert_eq!(
        cap(json!({"http_max_connections": 700}), Some(1024)),
        (700, vec![])
    );
    let (connections, warnings) = cap(json!({"http_max_connections": 960}), Some(1024));
    assert_eq!(connections, 960);
    assert!(
        warnings.len() == 1 && warnings[0].contains("leave only 64 of the 1024"),
        "{warnings:?}"
    );
    let err = refusal(json!({"http_max_connections": 961}), Some(1024));
    assert!(err.contains("would leave 63 of the 1024"), "{err}");
    let err = refusal(
        json!({"http_max_connections": 950, "metrics_port": 9108}),
        Some(1024),
    );
    assert!(err.contains("would leave 58 of the 1024"), "{err}");
    // Without a limit any cap in the key's range goes; the range still applies.
    assert_eq!(
        cap(json!({"http_max_connections": 1_000_000}), None).0,
        1_000_000
    );
    refusal(json!({"http_max_connections": 1_000_001}), None);
}

#[test]
fn an_ingress_only_instance_is_ready_without_a_link() {
    use serde_json::json;
    let c = parse(&old_with(json!({"ingress_only": true}))).unwrap();
    assert!(!c.http.readyz_requires_link, "there is no link to wait for");
    let c = parse(&old_with(json!({}))).unwrap();
    assert!(c.http.readyz_requires_link, "the default with a link");
    let err = parse(&old_with(
        json!({"ingress_only": true, "readyz_requires_link": true}),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("readyz_requires_link") && err.contains("ingress_only"),
        "{err}"
    );
}

#[test]
fn the_bounds_on_resending_are_configurable() {
    let json = old_with(serde_json::json!({
        "max_claims": 9,
        "quarantine_after_drops": 4,
        "reconnect_reset_after": "5m",
    }));
    let c = parse(&json).unwrap();
    assert_eq!(c.worker.max_claims, 9);
    assert_eq!(c.default_channel().link.quarantine_after_drops, 4);
    assert_eq!(
        c.default_channel().link.reconnect_reset_after,
        Duration::from_secs(300)
    );
}
