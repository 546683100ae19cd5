//! Just enough of `redis://[user[:password]@]host[:port][/db]` and
//! `redis+unix:///path/to/redis.sock[?db=N&pass=…]` to check them, swap the password or database,
//! and print them with the password masked. Error messages never quote the URL: it may hold a
//! password.

use std::fmt::Write as _;

/// A parsed redis URL: over TCP (`redis://`, `rediss://`) or a Unix socket (`unix://`,
/// `redis+unix://`, which carry the database and credentials in the query, as the redis crate
/// reads them).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum RedisUrl {
    Tcp(TcpUrl),
    Unix(UnixUrl),
}

/// `redis://` or `rediss://`. Username and password are kept percent-encoded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TcpUrl {
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

/// `unix:///path` or `redis+unix:///path`, with `?name=value` pairs in their order, names and
/// values kept percent-encoded. `db`, `user` and `pass` are the ones the redis crate reads; it
/// decodes the names first, so they are compared decoded ([`query_name_is`]).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UnixUrl {
    scheme: String,
    /// Absolute, as written.
    path: String,
    query: Vec<(String, Option<String>)>,
}

/// Shows the redacted form only.
impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

const USAGE: &str = "expected redis://[user:password@]host[:port][/db], rediss://… \
                     or redis+unix:///path/to/redis.sock[?db=N]";

impl RedisUrl {
    pub(crate) fn parse(url: &str) -> Result<RedisUrl, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("not a redis URL; {USAGE}"));
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "redis" | "rediss" => TcpUrl::parse(scheme, rest).map(RedisUrl::Tcp),
            "unix" | "redis+unix" => UnixUrl::parse(scheme, rest).map(RedisUrl::Unix),
            // Not even the scheme is quoted: whatever was pasted here may be a secret.
            _ => Err(format!("unsupported URL scheme; {USAGE}")),
        }
    }

    /// `redis://host:port/db`; the host must already be checked by the caller.
    pub(crate) fn from_parts(host: &str, port: u16, db: u64) -> RedisUrl {
        RedisUrl::Tcp(TcpUrl::from_parts(host, port, db))
    }

    /// Replaces the password (plain text; percent-encoded here). An empty one removes it.
    pub(crate) fn set_password(&mut self, plain: &str) {
        let encoded = (!plain.is_empty()).then(|| percent_encode(plain));
        match self {
            RedisUrl::Tcp(u) => u.password = encoded,
            RedisUrl::Unix(u) => u.set("pass", encoded),
        }
    }

    pub(crate) fn set_db(&mut self, db: u64) {
        match self {
            RedisUrl::Tcp(u) => u.db = Some(db),
            RedisUrl::Unix(u) => u.set("db", Some(db.to_string())),
        }
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
        match self {
            RedisUrl::Tcp(u) => u.write(mask),
            RedisUrl::Unix(u) => u.write(mask),
        }
    }
}

impl TcpUrl {
    fn parse(scheme: String, rest: &str) -> Result<TcpUrl, String> {
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
        Ok(TcpUrl {
            scheme,
            username,
            password,
            host,
            port,
            db,
            tail: tail.to_string(),
        })
    }

    fn from_parts(host: &str, port: u16, db: u64) -> TcpUrl {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        TcpUrl {
            scheme: "redis".into(),
            username: String::new(),
            password: None,
            host,
            port: Some(port),
            db: Some(db),
            tail: String::new(),
        }
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

impl UnixUrl {
    fn parse(scheme: String, rest: &str) -> Result<UnixUrl, String> {
        if rest.contains('#') {
            return Err(format!("a Unix socket URL takes no #fragment; {USAGE}"));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // A host (`unix://host/path`) or credentials before the path are not read by the client.
        if !path.starts_with('/') || path.len() < 2 {
            return Err(format!(
                "a Unix socket URL needs an absolute path after the scheme, such as \
                 redis+unix:///run/redis/redis.sock; {USAGE}"
            ));
        }
        if path.chars().any(char::is_whitespace) {
            return Err(format!("bad socket path; {USAGE}"));
        }
        let query: Vec<(String, Option<String>)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (pair.to_string(), None),
            })
            .collect();
        let is_db_number =
            |v: &str| v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<u64>().is_ok();
        if query.iter().any(|(name, value)| {
            query_name_is(name, "db") && !value.as_deref().is_some_and(is_db_number)
        }) {
            return Err(format!("db= must be a database number such as 0; {USAGE}"));
        }
        Ok(UnixUrl {
            scheme,
            path: path.to_string(),
            query,
        })
    }

    /// Replaces the value of `name` where it first stands (dropping repeats, which the client
    /// would read instead), or appends it; `None` removes it.
    fn set(&mut self, name: &str, value: Option<String>) {
        let at = self.query.iter().position(|(n, _)| query_name_is(n, name));
        self.query.retain(|(n, _)| !query_name_is(n, name));
        if let Some(value) = value {
            let at = at.unwrap_or(self.query.len());
            self.query.insert(at, (name.to_string(), Some(value)));
        }
    }

    fn write(&self, mask: bool) -> String {
        let mut out = format!("{}://{}", self.scheme, self.path);
        for (i, (name, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            match value {
                Some(_) if mask && query_name_is(name, "pass") => out.push_str("=***"),
                Some(value) => {
                    let _ = write!(out, "={value}");
                }
                None => {}
            }
        }
        out
    }
}

/// Whether the query name `written` is `name` once decoded as the redis crate decodes it
/// (`application/x-www-form-urlencoded`: `%XX` escapes, `+` for a space): `p%61ss` is `pass`.
fn query_name_is(written: &str, name: &str) -> bool {
    let bytes = written.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |digit: u8| char::from(digit).to_digit(16);
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', high, low]) => hex(high).zip(hex(low)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                decoded.push(byte);
                i += 3;
            }
            (None, b'+') => {
                decoded.push(b' ');
                i += 1;
            }
            (None, byte) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded == name.as_bytes()
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
            "redis+unix:///run/redis/redis.sock",
            "unix:///tmp/r.sock?db=3&pass=x%26y",
            "redis+unix:///r.sock?protocol=resp3&db=1",
        ] {
            assert_eq!(RedisUrl::parse(url).unwrap().render(), url);
        }
    }

    /// What the redis crate reads from a Unix socket URL after our edits: the socket, the
    /// database and the password (query values are form-decoded, so `+` must be encoded).
    #[test]
    fn unix_socket_urls_reach_the_client_with_their_database_and_password() {
        use redis::{ConnectionAddr, IntoConnectionInfo};
        let mut u = RedisUrl::parse("redis+unix:///run/redis.sock?db=1&pass=old&db=5").unwrap();
        u.set_password("p@ss+w&rd");
        u.set_db(4);
        assert_eq!(
            u.render(),
            "redis+unix:///run/redis.sock?db=4&pass=p%40ss%2Bw%26rd"
        );
        assert_eq!(u.redacted(), "redis+unix:///run/redis.sock?db=4&pass=***");
        let info = u.render().into_connection_info().unwrap();
        assert_eq!(info.addr(), &ConnectionAddr::Unix("/run/redis.sock".into()));
        assert_eq!(info.redis_settings().db(), 4);
        assert_eq!(info.redis_settings().password(), Some("p@ss+w&rd"));

        let mut u = RedisUrl::parse("unix:///r.sock").unwrap();
        u.set_db(2);
        assert_eq!(u.render(), "unix:///r.sock?db=2");
        u.set_password("");
        assert_eq!(
            u.render(),
            "unix:///r.sock?db=2",
            "no password, nothing added"
        );
        let mut u = RedisUrl::parse("unix:///r.sock?pass=x&user=app").unwrap();
        u.set_password("");
        assert_eq!(
            u.render(),
            "unix:///r.sock?user=app",
            "an empty password removes it"
        );
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
        let u = RedisUrl::parse("redis+unix:///r.sock?user=app&pass=Hunter2&db=2").unwrap();
        assert_eq!(u.redacted(), "redis+unix:///r.sock?user=app&pass=***&db=2");
        assert!(!format!("{u:?}").contains("Hunter2"));
    }

    /// The redis crate form-decodes query names, so `p%61ss=` is its password: the masking,
    /// the password swap and the database check read names the same way.
    #[test]
    fn percent_encoded_query_names_are_read_as_the_client_reads_them() {
        use redis::IntoConnectionInfo;
        let u = RedisUrl::parse("redis+unix:///r.sock?p%61ss=Hunter2&db=2").unwrap();
        let info = u.render().into_connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("Hunter2"));
        assert_eq!(u.redacted(), "redis+unix:///r.sock?p%61ss=***&db=2");
        assert!(!format!("{u:?}").contains("Hunter2"));
        let u =
            RedisUrl::parse("unix:///r.sock?%70%41ss=x&%70%61%73%73=Hunter2&pa%+73s=y").unwrap();
        assert_eq!(
            u.redacted(),
            "unix:///r.sock?%70%41ss=x&%70%61%73%73=***&pa%+73s=y",
            "names are case-sensitive; a bad escape stays as written"
        );

        let mut u = RedisUrl::parse("unix:///r.sock?p%61ss=old&user=app").unwrap();
        u.set_password("new");
        assert_eq!(u.render(), "unix:///r.sock?pass=new&user=app");
        let mut u = RedisUrl::parse("unix:///r.sock?d%62=1").unwrap();
        u.set_db(3);
        assert_eq!(u.render(), "unix:///r.sock?db=3");

        let err = RedisUrl::parse("unix:///r.sock?pass=Hunter2&d%62=x").unwrap_err();
        assert!(err.contains("db="), "{err}");
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
            "unix://Hunter2/r.sock",
            "redis+unix://:Hunter2@/r.sock",
            "redis+unix:///r.sock?pass=Hunter2&db=x",
            "redis+unix:///r.sock?pass=Hunter2&db",
            "redis+unix:///r.sock?pass=Hunter2#frag",
            "redis+unix:///r sock?pass=Hunter2",
            "unix:///?pass=Hunter2",
            "unix:Hunter2",
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
