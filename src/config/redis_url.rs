//! Just enough of `redis://[user[:password]@]host[:port][/db]` to check it, swap its password or
//! database, and print it with the password masked. Error messages never quote the URL: it may
//! hold a password.

use std::fmt::Write as _;

/// A parsed `redis://` or `rediss://` URL. Username and password are kept percent-encoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    scheme: String,
    username: String,
    password: Option<String>,
    /// As written; an IPv6 address keeps its brackets.
    host: String,
    port: Option<u16>,
    db: Option<u64>,
    /// `?query` and `#fragment` as written (e.g. `#insecure` for rediss).
    tail: String,
}

/// Shows the redacted form only.
impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

const USAGE: &str = "expected redis://[user:password@]host[:port][/db] or rediss://…";

impl RedisUrl {
    pub(crate) fn parse(url: &str) -> Result<RedisUrl, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("not a redis URL; {USAGE}"));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "redis" && scheme != "rediss" {
            // Not even the scheme is quoted: whatever was pasted here may be a secret.
            return Err(format!("unsupported URL scheme; {USAGE}"));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        let (path, tail) = match after.strip_prefix('/') {
            Some(p) => {
                let end = p.find(['?', '#']).unwrap_or(p.len());
                (&p[..end], &p[end..])
            }
            None => ("", after),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (user.to_string(), Some(pass.to_string())),
                None => (u.to_string(), None),
            },
            None => (String::new(), None),
        };
        let (host, port) = split_host_port(hostport)?;
        let db = match path.trim_matches('/') {
            "" => None,
            p if p.bytes().all(|b| b.is_ascii_digit()) => Some(
                p.parse::<u64>()
                    .map_err(|_| format!("the database number is too large; {USAGE}"))?,
            ),
            _ => {
                return Err(format!(
                    "the path must be a database number such as /0; {USAGE}"
                ));
            }
        };
        Ok(RedisUrl {
            scheme,
            username,
            password,
            host,
            port,
            db,
            tail: tail.to_string(),
        })
    }

    /// `redis://host:port/db`; the host must already be checked by the caller.
    pub(crate) fn from_parts(host: &str, port: u16, db: u64) -> RedisUrl {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        RedisUrl {
            scheme: "redis".into(),
            username: String::new(),
            password: None,
            host,
            port: Some(port),
            db: Some(db),
            tail: String::new(),
        }
    }

    /// Replaces the password (plain text; percent-encoded here). An empty one removes it.
    pub(crate) fn set_password(&mut self, plain: &str) {
        self.password = if plain.is_empty() {
            None
        } else {
            Some(percent_encode(plain))
        };
    }

    pub(crate) fn set_db(&mut self, db: u64) {
        self.db = Some(db);
    }

    /// The full URL, password included: only for the Redis client.
    pub(crate) fn render(&self) -> String {
        self.write(false)
    }

    /// The URL for logs: the password (or a bare userinfo, which some clients read as one) is `***`.
    pub(crate) fn redacted(&self) -> String {
        self.write(true)
    }

    fn write(&self, mask: bool) -> String {
        let mut out = format!("{}://", self.scheme);
        match (&self.password, mask) {
            (Some(_), true) => {
                let _ = write!(out, "{}:***@", self.username);
            }
            (Some(pw), false) => {
                let _ = write!(out, "{}:{pw}@", self.username);
            }
            (None, _) if self.username.is_empty() => {}
            (None, true) => out.push_str("***@"),
            (None, false) => {
                let _ = write!(out, "{}@", self.username);
            }
        }
        out.push_str(&self.host);
        if let Some(port) = self.port {
            let _ = write!(out, ":{port}");
        }
        if let Some(db) = self.db {
            let _ = write!(out, "/{db}");
        }
        out.push_str(&self.tail);
        out
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(format!("unclosed [ in the host; {USAGE}"));
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("bad host; {USAGE}"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("the host is missing; {USAGE}"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '@' || (c == ':' && !host.starts_with('[')))
    {
        return Err(format!("bad host; {USAGE}"));
    }
    if matches!(host.as_str(), "0.0.0.0" | "[::]") {
        return Err("a wildcard address (0.0.0.0 or ::) cannot be connected to".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "the port must be a number from 1 to 65535; {USAGE}"
                ));
            }
        },
    };
    Ok((host, port))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set `[A-Za-z0-9._~-]`.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_unchanged() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "rediss://user:pa%40ss@cache.example.com:6380/2",
            "rediss://cache.example.com#insecure",
            "redis://[::1]:6379/1?protocol=resp3",
            "redis://:pw@h/3",
        ] {
            assert_eq!(RedisUrl::parse(url).unwrap().render(), url);
        }
    }

    #[test]
    fn redaction_masks_the_password_only() {
        let u = RedisUrl::parse("redis://:Hunter2@h:6379/0").unwrap();
        assert_eq!(u.redacted(), "redis://:***@h:6379/0");
        let u = RedisUrl::parse("rediss://admin:Hunter2@h").unwrap();
        assert_eq!(u.redacted(), "rediss://admin:***@h");
        let u = RedisUrl::parse("redis://Hunter2@h").unwrap();
        assert_eq!(u.redacted(), "redis://***@h");
        let u = RedisUrl::parse("redis://h:1").unwrap();
        assert_eq!(u.redacted(), "redis://h:1");
    }

    #[test]
    fn password_and_db_replacement() {
        let mut u = RedisUrl::from_parts("::1", 6379, 0);
        assert_eq!(u.render(), "redis://[::1]:6379/0");
        u.set_password("p@ss w/rd");
        u.set_db(4);
        assert_eq!(u.render(), "redis://:p%40ss%20w%2Frd@[::1]:6379/4");
        let mut u = RedisUrl::parse("redis://user:old@h/1").unwrap();
        u.set_password("new");
        assert_eq!(u.render(), "redis://user:new@h/1");
    }

    #[test]
    fn bad_urls_are_refused_without_echo() {
        for url in [
            "http://h",
            "Hunter2",
            "redis://",
            "redis://:Hunter2@",
            "redis://:Hunter2@h:port",
            "redis://:Hunter2@h:0",
            "redis://:Hunter2@h/db",
            "redis://:Hunter2@0.0.0.0",
            "redis://:Hunter2@[::1",
            "redis://:Hunter2@h h",
        ] {
            let err = RedisUrl::parse(url).unwrap_err();
            assert!(!err.contains("Hunter2"), "{url}: {err}");
        }
        assert!(
            RedisUrl::parse("http://h")
                .unwrap_err()
                .contains("unsupported URL scheme")
        );
    }
}
