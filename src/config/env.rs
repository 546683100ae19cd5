//! Environment overrides: `CMPP_GATEWAY_<KEY>` replaces config.json's `<key>`, parsed by the same
//! rules as the JSON value (numbers, booleans, durations, comma-separated lists).
//!
//! An empty variable counts as unset, so `VAR=${VAR:-}` in a compose file changes nothing.

use super::error::{ConfigError, Origin};
use super::file::{KEYS, RawConfig};
use super::value::Input;

/// Prefix of every override variable.
pub const ENV_PREFIX: &str = "CMPP_GATEWAY_";

/// Variables with the prefix that are not config keys but are used elsewhere (not warned about).
const NOT_KEYS: &[&str] = &["CMPP_GATEWAY_CONFIG"];

/// The variable that overrides `key`, e.g. `window` → `CMPP_GATEWAY_WINDOW`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Applies every override `env` knows about. A value that does not parse is an error naming
/// the variable.
pub(crate) fn apply_env(
    raw: &mut RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for key in KEYS {
        let var = env_var_name(key);
        let Some(text) = env(&var).filter(|v| !v.is_empty()) else {
            continue;
        };
        raw.set(key, Input::Env(&text), Origin::Env(var.clone()))
            .map_err(|message| ConfigError::Invalid {
                origin: Origin::Env(var),
                key: key.to_string(),
                message,
            })?;
    }
    Ok(())
}

/// Warnings for variables that carry the prefix but match no key (typos such as
/// `CMPP_GATEWAY_WINDOWS`). Only names are reported, never values.
pub(crate) fn unknown_env_warnings(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with(ENV_PREFIX))
        .filter(|name| !NOT_KEYS.contains(&name.as_str()))
        .filter(|name| !KEYS.iter().any(|key| env_var_name(key) == *name))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| format!("environment {name}: not a config key, ignored"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn overrides_are_parsed_and_recorded() {
        let mut raw = RawConfig::default();
        let env = lookup(&[
            ("CMPP_GATEWAY_WINDOW", "32"),
            ("CMPP_GATEWAY_RESPONSE_TIMEOUT", "30s"),
            ("CMPP_GATEWAY_DEBUG", "true"),
            ("CMPP_GATEWAY_RATE", ""),
        ]);
        apply_env(&mut raw, &env).unwrap();
        assert_eq!(raw.window, Some(32));
        assert_eq!(raw.response_timeout, Some(Duration::from_secs(30)));
        assert_eq!(raw.debug, Some(true));
        assert_eq!(raw.rate, None);
        assert_eq!(
            raw.origin("window", "f"),
            Origin::Env("CMPP_GATEWAY_WINDOW".into())
        );
    }

    #[test]
    fn a_bad_override_names_the_variable() {
        let mut raw = RawConfig::default();
        let err = apply_env(&mut raw, &lookup(&[("CMPP_GATEWAY_WINDOW", "lots")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment CMPP_GATEWAY_WINDOW: must be a whole number ≥ 0, got \"lots\""
        );
    }

    #[test]
    fn unknown_prefixed_variables_warn_by_name() {
        let w = unknown_env_warnings(
            [
                "CMPP_GATEWAY_WINDOWS",
                "CMPP_GATEWAY_WINDOW",
                "CMPP_GATEWAY_CONFIG",
                "PATH",
            ]
            .map(String::from),
        );
        assert_eq!(
            w,
            vec!["environment CMPP_GATEWAY_WINDOWS: not a config key, ignored".to_string()]
        );
    }
}
