//! A throwaway redis-server for tests and benchmarks: no persistence, a temporary directory of its
//! own, killed by PID when dropped. `stop` and `restart` (same address) simulate an outage.
//!
//! By default it listens only on a Unix socket inside that directory: nobody else can be there,
//! so tests running side by side (and other processes on the machine) never race for an address.
//! `start_tcp` gives a loopback port for what needs one (a URL with host and port).
//!
//! `start_tcp_with_aof` keeps an append-only file (fsync every second) in that directory, and
//! `restart_keeping_data` crashes the server and brings it back on it: what a Redis with
//! persistence loses in a crash, and what it keeps.
//!
//! The cluster and sentinel harnesses beside this one start their processes with the helpers at
//! the bottom ([`spawn_answering`], [`free_port`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Found on PATH (Debian installs it as /usr/bin/redis-server).
const REDIS_SERVER: &str = "redis-server";
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Ports tried by `start_tcp` when the one found free is taken before redis-server binds it.
const TCP_ATTEMPTS: usize = 5;

pub struct RedisServer {
    listen: Listen,
    /// Holds the socket and whatever redis-server writes; removed when the server is dropped.
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `--appendonly yes --appendfsync everysec`: the data survives `restart_keeping_data`.
    aof: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    Unix,
    Tcp(u16),
}

impl RedisServer {
    /// Starts a server on a Unix socket and waits until it answers; panics if it cannot (for
    /// tests).
    pub fn start() -> RedisServer {
        RedisServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a Unix socket in a new temporary directory and waits until it answers.
    pub fn try_start() -> Result<RedisServer, String> {
        let mut server = RedisServer::new(Listen::Unix)?;
        server.spawn()?;
        Ok(server)
    }

    /// Starts a server on a loopback TCP port (see [`RedisServer::port`]); panics if it cannot.
    pub fn start_tcp() -> RedisServer {
        RedisServer::try_start_tcp().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a free loopback TCP port and waits until it answers.
    pub fn try_start_tcp() -> Result<RedisServer, String> {
        // The port is free when we look; another process can take it before redis binds, so try
        // a few. `spawn` checks that the server answering is our child, not whoever won the port.
        RedisServer::try_start_tcp_persisting(false)
    }

    /// Starts a server on a loopback TCP port with an append-only file (fsync every second) in
    /// its directory, for [`RedisServer::restart_keeping_data`]; panics if it cannot.
    pub fn start_tcp_with_aof() -> RedisServer {
        RedisServer::try_start_tcp_with_aof().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server with an append-only file on a free loopback TCP port and waits until it
    /// answers.
    pub fn try_start_tcp_with_aof() -> Result<RedisServer, String> {
        RedisServer::try_start_tcp_persisting(true)
    }

    fn try_start_tcp_persisting(aof: bool) -> Result<RedisServer, String> {
        let mut last_error = String::new();
        for _ in 0..TCP_ATTEMPTS {
            let mut server = RedisServer::new(Listen::Tcp(free_port()?))?;
            server.aof = aof;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(format!("redis-server did not start: {last_error}"))
    }

    fn new(listen: Listen) -> Result<RedisServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("cmpp-redis-")
            .tempdir()
            .map_err(|e| format!("no temporary directory for redis-server: {e}"))?;
        Ok(RedisServer {
            listen,
            dir,
            child: None,
            aof: false,
        })
    }

    /// The TCP port.
    ///
    /// # Panics
    /// For a server on a Unix socket: only [`RedisServer::start_tcp`] gives a port.
    pub fn port(&self) -> u16 {
        match self.listen {
            Listen::Tcp(port) => port,
            Listen::Unix => panic!("this redis-server listens on a Unix socket; use start_tcp"),
        }
    }

    /// The socket redis-server listens on (whether or not it is running now).
    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Database 0: `redis+unix:///…/redis.sock?db=0`, or `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        match self.listen {
            Listen::Unix => format!("redis+unix://{}?db=0", self.socket().display()),
            Listen::Tcp(port) => format!("redis://127.0.0.1:{port}/0"),
        }
    }

    /// The server's process id while it runs (for its CPU time in a benchmark).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash) and waits until it is gone.
    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a
    /// Redis that hangs or a network that drops everything. Data is kept.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT); commands sent meanwhile are then executed.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status();
            assert!(status.is_ok_and(|s| s.success()), "kill {sig} redis-server");
        }
    }

    /// Starts a fresh, empty server on the same socket or port (with an append-only file, that
    /// file is deleted first: the server starts empty all the same).
    pub fn restart(&mut self) {
        self.stop();
        let aof_dir = self.dir.path().join(AOF_DIR);
        if aof_dir.exists() {
            std::fs::remove_dir_all(&aof_dir)
                .unwrap_or_else(|e| panic!("cannot remove {}: {e}", aof_dir.display()));
        }
        self.respawn();
    }

    /// Kills the server (SIGKILL, like a crash) and starts it again in the same directory on the
    /// same socket or port, returning once it has loaded its append-only file (`loading:0`).
    /// With [`RedisServer::start_tcp_with_aof`] it keeps what had been written up to a second or
    /// so before the kill; a server without that file comes back empty, like `restart`.
    pub fn restart_keeping_data(&mut self) {
        self.stop();
        self.respawn();
        let url = self.url();
        let until = Instant::now() + READY_WITHIN;
        while !finished_loading(&url) {
            assert!(
                Instant::now() < until,
                "redis-server at {url} did not finish loading its data"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn respawn(&mut self) {
        // A port just released can take a moment to bind again (a socket path is replaced at
        // once: redis-server removes the stale file).
        let until = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= until => panic!("redis-server did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let socket = self.socket();
        let mut command = Command::new(REDIS_SERVER);
        match self.listen {
            Listen::Unix => command
                .args(["--port", "0"])
                .arg("--unixsocket")
                .arg(&socket)
                .args(["--unixsocketperm", "700"]),
            Listen::Tcp(port) => command
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"]),
        };
        command.args(["--save", ""]);
        if self.aof {
            command.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        command.arg("--dir").arg(self.dir.path());
        self.child = Some(spawn_answering(command, &self.url())?);
        Ok(())
    }
}

/// Where redis-server 7 keeps its append-only files, inside `--dir`.
const AOF_DIR: &str = "appendonlydir";

/// Runs `command` (a redis-server, output discarded) and waits until the server answering at
/// `url` is that very process: not another one that won the port, which would make a test pass
/// against a server it does not control. Kills the child if it does not answer in time.
pub(crate) fn spawn_answering(mut command: Command, url: &str) -> Result<Child, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {REDIS_SERVER}: {e}"))?;
    let until = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server at {url} exited: {status}"));
        }
        if server_pid(url) == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server at {url} did not answer"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free at the time of asking (someone else may take it before it is bound).
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A plain connection to the server on loopback `port` whose commands wait at most `timeout`.
pub(crate) fn connect_port(port: u16, timeout: Duration) -> Result<redis::Connection, String> {
    let url = format!("redis://127.0.0.1:{port}/");
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|c| c.set_read_timeout(Some(timeout)).map(|()| c))
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// Runs `cmd`, its error as text.
pub(crate) fn query<T: redis::FromRedisValue>(
    conn: &mut redis::Connection,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    cmd.query(conn).map_err(|e| e.to_string())
}

/// The process id of the redis-server answering at `url`, if one answers.
pub(crate) fn server_pid(url: &str) -> Option<u32> {
    info(url, "server")?.get("process_id")
}

/// `INFO persistence` says the data set is loaded (INFO is answered while loading, most
/// commands are not).
fn finished_loading(url: &str) -> bool {
    info(url, "persistence").and_then(|i| i.get::<u8>("loading")) == Some(0)
}

fn info(url: &str, section: &str) -> Option<redis::InfoDict> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(200))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    redis::cmd("INFO").arg(section).query(&mut conn).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_and_get(url: &str) -> Option<String> {
        let mut conn = redis::Client::open(url).ok()?.get_connection().ok()?;
        let () = redis::cmd("SET").arg("k").arg("v").query(&mut conn).ok()?;
        redis::cmd("GET").arg("k").query(&mut conn).ok()
    }

    #[test]
    fn a_unix_socket_server_restarts_empty_on_the_same_socket_and_leaves_nothing() {
        let mut redis = RedisServer::start();
        let url = redis.url();
        assert!(url.starts_with("redis+unix:///"), "{url}");
        assert_eq!(set_and_get(&url).as_deref(), Some("v"));
        redis.stop();
        assert_eq!(server_pid(&url), None, "stopped");
        redis.restart();
        assert_eq!(redis.url(), url, "same socket");
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let v: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
        assert_eq!(v, None, "a restart starts empty");
        let dir = redis.dir.path().to_path_buf();
        drop(redis);
        assert!(!dir.exists(), "the temporary directory is removed");
    }

    #[test]
    fn a_port_another_server_holds_is_not_taken_for_ours() {
        let other = RedisServer::start_tcp();
        let mut late = RedisServer::new(Listen::Tcp(other.port())).unwrap();
        let err = late
            .spawn()
            .expect_err("the other server answers on that port, ours cannot bind it");
        assert!(err.contains("exited"), "{err}");
        assert!(!late.is_running());
    }

    #[test]
    fn an_aof_server_keeps_its_data_through_a_crash_and_a_plain_restart_empties_it() {
        let mut redis = RedisServer::start_tcp_with_aof();
        let (url, pid) = (redis.url(), redis.pid());
        assert_eq!(set_and_get(&url).as_deref(), Some("v"));
        // everysec: what was written over a second before the crash has been fsynced.
        std::thread::sleep(Duration::from_millis(1600));
        redis.restart_keeping_data();
        assert_ne!(redis.pid(), pid, "a new process");
        assert_eq!(redis.url(), url, "same port");
        let get = |url: &str| -> Option<String> {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            redis::cmd("GET").arg("k").query(&mut conn).unwrap()
        };
        assert_eq!(get(&url).as_deref(), Some("v"), "loaded from the AOF");
        redis.restart();
        assert_eq!(get(&url), None, "restart starts empty, AOF or not");
    }

    #[test]
    fn servers_started_side_by_side_have_addresses_of_their_own() {
        let (a, b) = (RedisServer::start(), RedisServer::start());
        assert_ne!(a.url(), b.url());
        let tcp = RedisServer::start_tcp();
        assert_eq!(tcp.url(), format!("redis://127.0.0.1:{}/0", tcp.port()));
        for server in [&a, &b, &tcp] {
            let pid = server.child.as_ref().map(Child::id);
            assert_eq!(server_pid(&server.url()), pid, "{}", server.url());
        }
    }
}
