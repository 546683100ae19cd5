//! Why a configuration was refused. Every message is one line that names where the bad value came
//! from (the file and the key, or the environment variable) and never contains a secret.

/// Where a key's value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The config file (its path as shown in messages); also used for keys left at their default.
    File(String),
    /// An environment variable, e.g. `CMPP_GATEWAY_WINDOW`.
    Env(String),
}

/// A refused configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{path}: cannot read the config file: {error}")]
    Read { path: String, error: std::io::Error },
    /// The file is not JSON; serde's message carries the line and column.
    #[error("{file}: malformed JSON: {error}")]
    Json {
        file: String,
        error: serde_json::Error,
    },
    /// The file is JSON but its top level is not an object.
    #[error("{file}: the top level must be a JSON object")]
    NotAnObject { file: String },
    /// One key's value is missing, does not parse, or is out of range.
    #[error("{}: {message}", place(origin, key))]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The config key at fault, if the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// `config.json: key "window"` or `environment CMPP_GATEWAY_WINDOW`.
fn place(origin: &Origin, key: &str) -> String {
    match origin {
        Origin::File(file) => format!("{file}: key {key:?}"),
        Origin::Env(var) => format!("environment {var}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_file_and_key_or_variable() {
        let e = ConfigError::Invalid {
            origin: Origin::File("config.json".into()),
            key: "window".into(),
            message: "must be between 1 and 1024, got 0".into(),
        };
        assert_eq!(
            e.to_string(),
            "config.json: key \"window\": must be between 1 and 1024, got 0"
        );
        assert_eq!(e.key(), Some("window"));
        let e = ConfigError::Invalid {
            origin: Origin::Env("CMPP_GATEWAY_WINDOW".into()),
            key: "window".into(),
            message: "must be between 1 and 1024, got 0".into(),
        };
        assert_eq!(
            e.to_string(),
            "environment CMPP_GATEWAY_WINDOW: must be between 1 and 1024, got 0"
        );
    }
}
