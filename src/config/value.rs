//! One parser per value kind, shared by the JSON file and the environment, so `"window": 32`,
//! `"window": "32"` and `CMPP_GATEWAY_WINDOW=32` all mean the same thing.
//!
//! Error messages quote the offending value, except for secrets: a [`Secret`] never fails on its
//! content, and a wrongly typed one is described by its JSON type only.

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;

/// Where a value comes from: a JSON value in the file, or the text of an environment variable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Json(&'a Value),
    Env(&'a str),
}

/// A value kind a config key can hold.
pub(crate) trait FieldValue: Sized {
    fn parse(input: Input<'_>) -> Result<Self, String>;
}

/// "a number", "an array", … for messages that must not quote the value.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl FieldValue for String {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => Ok(text.to_string()),
            Input::Json(Value::String(s)) => Ok(s.clone()),
            // `"user": 900001` and `"cmpp_version": 3.0` are meant as text.
            Input::Json(Value::Number(n)) => Ok(n.to_string()),
            Input::Json(other) => Err(format!("must be a string, got {}", json_kind(other))),
        }
    }
}

impl FieldValue for Secret {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => Ok(Secret::new(text)),
            Input::Json(Value::String(s)) => Ok(Secret::new(s.as_str())),
            Input::Json(Value::Number(n)) => Ok(Secret::new(n.to_string())),
            Input::Json(other) => Err(format!("must be a string, got {}", json_kind(other))),
        }
    }
}

/// Whole numbers ≥ 0. Ranges are checked per key by the validation.
impl FieldValue for u64 {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => parse_uint(text),
            Input::Json(Value::String(s)) => parse_uint(s),
            Input::Json(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(v),
                None => Err(format!("must be a whole number ≥ 0, got {n}")),
            },
            Input::Json(other) => Err(format!("must be a number, got {}", json_kind(other))),
        }
    }
}

fn parse_uint(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>()
            .map_err(|_| format!("number too large, got {t:?}"))
    } else {
        Err(format!("must be a whole number ≥ 0, got {t:?}"))
    }
}

impl FieldValue for bool {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => parse_bool(text),
            Input::Json(Value::Bool(b)) => Ok(*b),
            Input::Json(Value::String(s)) => parse_bool(s),
            Input::Json(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(format!("must be true or false, got {n}")),
            },
            Input::Json(other) => Err(format!("must be true or false, got {}", json_kind(other))),
        }
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("must be true or false, got {:?}", text.trim())),
    }
}

/// A humantime string (`"60s"`, `"3m"`, `"72h"`, `"1h 30m"`) or a whole number of seconds.
impl FieldValue for Duration {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => parse_duration(text),
            Input::Json(Value::String(s)) => parse_duration(s),
            Input::Json(Value::Number(n)) => match n.as_u64() {
                Some(secs) => Ok(Duration::from_secs(secs)),
                None => Err(format!(
                    "must be a duration like \"60s\" or a whole number of seconds, got {n}"
                )),
            },
            Input::Json(other) => Err(format!(
                "must be a duration like \"60s\" or a whole number of seconds, got {}",
                json_kind(other)
            )),
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("duration too large, got {t:?}"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("must be a duration like \"60s\", \"3m\" or \"72h\", got {t:?} ({e})"))
}

/// A JSON array of strings, or one comma-separated string (the only form in the environment).
impl FieldValue for Vec<String> {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        match input {
            Input::Env(text) => Ok(split_list(text)),
            Input::Json(Value::String(s)) => Ok(split_list(s)),
            Input::Json(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "must be a list of strings, got an item that is {}",
                        json_kind(other)
                    )),
                })
                .collect(),
            Input::Json(other) => Err(format!(
                "must be a list of strings, got {}",
                json_kind(other)
            )),
        }
    }
}

impl FieldValue for Vec<Secret> {
    fn parse(input: Input<'_>) -> Result<Self, String> {
        Vec::<String>::parse(input).map(|items| items.into_iter().map(Secret::new).collect())
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j<T: FieldValue>(v: Value) -> Result<T, String> {
        T::parse(Input::Json(&v))
    }

    fn e<T: FieldValue>(s: &str) -> Result<T, String> {
        T::parse(Input::Env(s))
    }

    #[test]
    fn numbers_from_json_numbers_strings_and_env() {
        assert_eq!(j::<u64>(json!(8000)), Ok(8000));
        assert_eq!(j::<u64>(json!("8000")), Ok(8000));
        assert_eq!(e::<u64>(" 32 "), Ok(32));
        assert!(j::<u64>(json!(-1)).unwrap_err().contains("-1"));
        assert!(j::<u64>(json!(1.5)).unwrap_err().contains("whole number"));
        assert!(e::<u64>("12x").unwrap_err().contains("\"12x\""));
        assert!(j::<u64>(json!(true)).unwrap_err().contains("a boolean"));
    }

    #[test]
    fn booleans() {
        assert_eq!(j::<bool>(json!(true)), Ok(true));
        assert_eq!(j::<bool>(json!(0)), Ok(false));
        assert_eq!(e::<bool>("TRUE"), Ok(true));
        assert_eq!(e::<bool>("off"), Ok(false));
        assert!(e::<bool>("maybe").unwrap_err().contains("maybe"));
    }

    #[test]
    fn durations_as_text_or_seconds() {
        assert_eq!(j::<Duration>(json!("60s")), Ok(Duration::from_secs(60)));
        assert_eq!(j::<Duration>(json!("3m")), Ok(Duration::from_secs(180)));
        assert_eq!(
            j::<Duration>(json!("72h")),
            Ok(Duration::from_secs(72 * 3600))
        );
        assert_eq!(
            j::<Duration>(json!("1500ms")),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(j::<Duration>(json!(90)), Ok(Duration::from_secs(90)));
        assert_eq!(e::<Duration>("90"), Ok(Duration::from_secs(90)));
        let err = j::<Duration>(json!("5 parsecs")).unwrap_err();
        assert!(
            err.contains("5 parsecs") && err.contains("parsecs"),
            "{err}"
        );
        assert!(j::<Duration>(json!(-3)).is_err());
    }

    #[test]
    fn lists_from_arrays_or_commas() {
        assert_eq!(
            j::<Vec<String>>(json!(["a", "b"])),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            e::<Vec<String>>("key1, key2,,"),
            Ok(vec!["key1".to_string(), "key2".to_string()])
        );
        assert_eq!(e::<Vec<String>>(""), Ok(vec![]));
        assert!(j::<Vec<String>>(json!([1])).is_err());
    }

    #[test]
    fn strings_accept_numbers_and_secrets_never_echo() {
        assert_eq!(j::<String>(json!(900001)), Ok("900001".to_string()));
        assert_eq!(j::<String>(json!(3.0)), Ok("3.0".to_string()));
        assert!(j::<String>(json!(["x"])).unwrap_err().contains("an array"));
        let err = j::<Vec<Secret>>(json!(["ok", 12345678])).unwrap_err();
        assert!(!err.contains("12345678") && !err.contains("ok"), "{err}");
        let err = j::<Secret>(json!({"pw": "hunter2"})).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
