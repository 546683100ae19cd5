//! Channels: each one SP account at one ISMG, with the number of connections the carrier allows
//! it. `channels` in config.json is an array of objects; each object may set the account and link
//! keys below and inherits every other key (and any of these it leaves out) from the top level.
//! Without `channels`, the top-level keys are one channel named `default` with one connection, so
//! a file written before channels existed means what it meant.

use std::fmt;

use serde_json::{Map, Value};

use super::MessageConfig;
use super::value::{FieldValue, Input};
use crate::session::LinkConfig;

/// The name of the one channel a file without `channels` describes.
pub const DEFAULT_CHANNEL: &str = "default";

/// Keys a channel object may set (besides `name`); `rate_per_connection` is read as `rate`.
pub(crate) const CHANNEL_KEYS: &[&str] = &[
    "user",
    "password",
    "cmpp_host",
    "cmpp_port",
    "sms_accessno",
    "service_id",
    "cmpp_version",
    "auth_check",
    "window",
    "rate",
    "max_connections",
    "connections_per_instance",
    "fee_type",
    "fee_code",
    "fee_user_type",
];

/// One SP account at one ISMG.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Names the channel in requests (`channel`), keys, metrics and logs.
    pub name: String,
    /// One connection's settings; `rate` is per connection.
    pub link: LinkConfig,
    pub message: MessageConfig,
    /// K: connections the carrier allows this account, across every instance.
    pub max_connections: u32,
    /// Connections this instance tries to hold (0..=K); each is one leased slot.
    pub connections_per_instance: u32,
    /// Its outbound stream (`{prefix}:mt` for the default channel, `{prefix}:mt:{<name>}`).
    pub stream: String,
}

/// `channels` as written: the objects are overlaid on the top-level keys at validation, so each
/// value is parsed and checked by the same rules as the top-level key of that name.
#[derive(Clone, Default)]
pub(crate) struct RawChannels(pub Vec<Map<String, Value>>);

impl fmt::Debug for RawChannels {
    // Objects hold passwords: names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| c.get("name")))
            .finish()
    }
}

impl FieldValue for RawChannels {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        let parsed;
        let value = match input {
            Input::Json(v) => v,
            // The environment carries the same array as JSON text.
            Input::Env(text) => {
                parsed = serde_json::from_str::<Value>(text).map_err(|e| {
                    format!(
                        "must be a JSON array of channel objects (line {}, column {})",
                        e.line(),
                        e.column()
                    )
                })?;
                &parsed
            }
        };
        let Value::Array(items) = value else {
            return Err("must be an array of channel objects".into());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(map.clone()),
                _ => Err(format!("channel number {} must be an object", i + 1)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RawChannels)
    }
}

/// A channel name: it appears in Redis keys and metric labels, so 1–32 of `A-Z a-z 0-9 _ -`,
/// and not `dead` (the dead-letter stream is `{prefix}:mt:dead`).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 {
        return Err(format!("name must be 1 to 32 characters, got {name:?}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "name may hold only letters, digits, '_' and '-', got {name:?}"
        ));
    }
    if name == "dead" {
        return Err("name \"dead\" is taken by the dead-letter stream".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("cm-bj_1").is_ok());
        for bad in ["", "a b", "a:b", "{x}", "dead", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let raw = RawChannels::parse(Input::Env(r#"[{"name":"a","password":"s3cret"}]"#)).unwrap();
        let shown = format!("{raw:?}");
        assert!(
            shown.contains("\"a\"") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn shapes() {
        assert!(RawChannels::parse(Input::Env("{}")).is_err());
        assert!(
            RawChannels::parse(Input::Env("[1]"))
                .unwrap_err()
                .contains("number 1")
        );
        assert!(
            RawChannels::parse(Input::Env("["))
                .unwrap_err()
                .contains("JSON array")
        );
    }
}
