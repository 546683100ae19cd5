//! JSON forms of the types the protocol module keeps serde-free: durations as humantime strings
//! ("100ms"), report layouts as "71"/"60", versions as "3.0"/"2.0", and byte strings as hex.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

pub mod duration {
    use std::time::Duration;

    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// A humantime string ("250ms", "5s"), or a number of milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"100ms\" or a number of milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v).map_err(|e| E::custom(format!("{v:?}: {e}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_millis(v))
            }
        }
        d.deserialize_any(V)
    }
}

pub mod report_layout {
    use super::*;
    use crate::protocol::ReportLayout;

    pub fn serialize<S: Serializer>(l: &ReportLayout, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match l {
            ReportLayout::Spec71 => "71",
            ReportLayout::Compact60 => "60",
        })
    }

    pub fn parse(v: &str) -> Option<ReportLayout> {
        match v.trim().to_ascii_lowercase().as_str() {
            "71" | "spec71" | "spec" => Some(ReportLayout::Spec71),
            "60" | "compact60" | "compact" => Some(ReportLayout::Compact60),
            _ => None,
        }
    }

    /// "71" / "60" as a string or a number; "spec71" / "compact60" also read.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ReportLayout, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ReportLayout;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a report layout: \"71\" (spec) or \"60\" (2.0 layout)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReportLayout, E> {
                parse(v).ok_or_else(|| E::custom(format!("unknown report layout {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ReportLayout, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

pub mod version {
    use super::*;
    use crate::protocol::Version;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

pub mod stat_mix {
    use super::*;

    pub fn serialize<S: Serializer>(mix: &[(String, u32)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(mix)
    }

    /// `[["DELIVRD", 95], ["UNDELIV", 5]]` or the command-line form `"DELIVRD=95,UNDELIV=5"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, u32)>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Pairs(Vec<(String, u32)>),
            Text(String),
        }
        match Form::deserialize(d)? {
            Form::Pairs(pairs) => Ok(pairs),
            Form::Text(text) => {
                crate::simulator::config::parse_stat_mix(&text).map_err(de::Error::custom)
            }
        }
    }
}

/// Bytes as a lowercase hex string (recorded Msg_Content).
pub fn hex_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}
