//! The query strings of the list routes. Every parameter must be known (a typo such as
//! `?too=138…` must not silently list everything), given once, and valid; each error names
//! its parameter: 400 for a malformed one, 422 for a value out of range. An empty value
//! counts as absent, so a search form can send every field.

use super::errors::HttpError;
use crate::message::{Invalid, normalize_msisdn};
use crate::store::{IndexCursor, MessageStatus, is_stream_id};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;
/// Src_terminal_Id and Dest_terminal_Id are 21 octets.
const MAX_NUMBER_DIGITS: usize = 21;

#[derive(Debug)]
pub struct Params {
    given: Vec<(&'static str, String)>,
}

impl Params {
    /// `pairs` as decoded by warp's query filter (into a list, which never fails).
    pub fn parse(
        pairs: Vec<(String, String)>,
        known: &[&'static str],
    ) -> Result<Params, HttpError> {
        let mut given: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in pairs {
            let Some(&known_name) = known.iter().find(|k| **k == name) else {
                return Err(HttpError::BadRequest(format!(
                    "unknown query parameter {name:?}; known: {}",
                    known.join(", ")
                )));
            };
            if given.iter().any(|(k, _)| *k == known_name) {
                return Err(Invalid::malformed(known_name, "given more than once").into());
            }
            let value = value.trim();
            if !value.is_empty() {
                given.push((known_name, value.to_owned()));
            }
        }
        Ok(Params { given })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.given
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> Result<usize, HttpError> {
        let Some(text) = self.get("limit") else {
            return Ok(DEFAULT_LIMIT);
        };
        let n: usize = text
            .parse()
            .map_err(|_| Invalid::malformed("limit", "must be a whole number"))?;
        if !(1..=MAX_LIMIT).contains(&n) {
            return Err(Invalid::unprocessable("limit", format!("1 to {MAX_LIMIT}")).into());
        }
        Ok(n)
    }

    /// A phone number to search for, normalized like recipients (`+86…` → national).
    pub fn number(&self, name: &'static str) -> Result<Option<String>, HttpError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let digits = text.strip_prefix('+').unwrap_or(text);
        if digits.is_empty()
            || digits.len() > MAX_NUMBER_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Invalid::unprocessable(
                name,
                "a phone number: digits, optionally after +, the whole number",
            )
            .into());
        }
        Ok(Some(normalize_msisdn(text)))
    }

    pub fn status(&self) -> Result<Option<MessageStatus>, HttpError> {
        self.get("status")
            .map(|s| {
                MessageStatus::parse(s).ok_or_else(|| {
                    Invalid::unprocessable(
                        "status",
                        "one of queued, submitting, submitted, delivered, failed, dead",
                    )
                    .into()
                })
            })
            .transpose()
    }

    /// The `next_cursor` of an index-backed page.
    pub fn index_cursor(&self) -> Result<Option<IndexCursor>, HttpError> {
        self.get("cursor")
            .map(|c| IndexCursor::parse(c).ok_or_else(bad_cursor))
            .transpose()
    }

    /// The `next_cursor` of a stream page: an entry id.
    pub fn stream_cursor(&self) -> Result<Option<&str>, HttpError> {
        self.get("cursor")
            .map(|c| {
                if is_stream_id(c) {
                    Ok(c)
                } else {
                    Err(bad_cursor())
                }
            })
            .transpose()
    }
}

fn bad_cursor() -> HttpError {
    Invalid::malformed(
        "cursor",
        "not a cursor of this list; pass next_cursor from the previous page, with the same search",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<Params, HttpError> {
        let pairs = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::parse(pairs, &["to", "limit", "cursor", "status"])
    }

    fn status_and_field(e: HttpError) -> (u16, Option<&'static str>) {
        (e.status().as_u16(), e.field())
    }

    #[test]
    fn defaults_and_empty_values() {
        let p = parse(&[("to", ""), ("limit", " ")]).unwrap();
        assert_eq!(p.limit().unwrap(), DEFAULT_LIMIT);
        assert_eq!(p.number("to").unwrap(), None);
        let p = parse(&[("to", "+8613800138000"), ("limit", "5")]).unwrap();
        assert_eq!(p.number("to").unwrap().as_deref(), Some("13800138000"));
        assert_eq!(p.limit().unwrap(), 5);
    }

    #[test]
    fn every_refusal_names_its_parameter() {
        let e = parse(&[("too", "1")]).unwrap_err();
        assert_eq!(status_and_field(e), (400, None));
        let e = parse(&[("to", "1"), ("to", "2")]).unwrap_err();
        assert_eq!(status_and_field(e), (400, Some("to")));
        let cases: [(&str, &str, u16); 6] = [
            ("limit", "x", 400),
            ("limit", "0", 422),
            ("limit", "201", 422),
            ("to", "138-0013", 422),
            ("status", "sent", 422),
            ("cursor", "nope", 400),
        ];
        for (name, value, status) in cases {
            let p = parse(&[(name, value)]).unwrap();
            let e = match name {
                "limit" => p.limit().unwrap_err(),
                "to" => p.number("to").unwrap_err(),
                "status" => p.status().unwrap_err(),
                _ => p.index_cursor().unwrap_err(),
            };
            assert_eq!(status_and_field(e), (status, Some(name)), "{name}={value}");
        }
        let p = parse(&[("cursor", "17-0")]).unwrap();
        assert!(p.index_cursor().is_err());
        assert_eq!(p.stream_cursor().unwrap(), Some("17-0"));
    }
}
