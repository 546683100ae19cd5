//! A throwaway Redis Sentinel set for tests: one primary, one replica and three sentinels (a
//! quorum of 2), each a redis-server on a loopback port in a temporary directory of its own,
//! killed by PID when dropped. `kill_primary` crashes whichever node is primary now, and
//! `wait_for_failover` waits for the sentinels to promote the other.
//!
//! Sentinels are `redis-server sentinel.conf --sentinel` (the same binary; Debian's redis-server
//! has it), with a config file of their own they can rewrite. Timings are short (down after 1 s,
//! failover timeout 5 s) so that a failover takes seconds, not minutes; nothing is persisted.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::redis_server::{free_port, query, spawn_answering};

const MASTER_NAME: &str = "mymaster";
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Ports tried for a process when the one found free is taken before redis-server binds it.
const PORT_ATTEMPTS: usize = 5;

pub struct RedisSentinels {
    /// The two data nodes: the first primary and the first replica, whatever their roles now.
    nodes: Vec<Process>,
    sentinels: Vec<Process>,
    /// The node `kill_primary` killed last, for `restart_killed`.
    killed: Option<usize>,
}

/// A redis-server (data node or sentinel) and the port and directory it keeps across restarts.
struct Process {
    port: u16,
    /// Its working directory (a sentinel's config file); removed when the set is dropped.
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisSentinels {
    /// Starts the set and waits until the sentinels know all of it; panics if it cannot (for
    /// tests).
    pub fn start() -> RedisSentinels {
        RedisSentinels::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a primary and its replica, waits for the replica's link, then starts three
    /// sentinels and waits until each names the primary and knows the replica and the other two
    /// sentinels (they find each other through the primary, in a few seconds).
    pub fn try_start() -> Result<RedisSentinels, String> {
        let primary = Process::start(|port, dir| Ok(data_node(port, dir, None)))?;
        let replica = Process::start(|port, dir| Ok(data_node(port, dir, Some(primary.port))))?;
        let mut set = RedisSentinels {
            nodes: vec![primary, replica],
            sentinels: Vec::new(),
            killed: None,
        };
        // Before the sentinels start: the first INFO a sentinel gets from the primary then lists
        // the replica (it would otherwise learn of it from the next one, 10 s later).
        set.wait("the replica's link to the primary", |set| {
            replica_link_up(set.nodes[1].port)
        })?;
        let primary_port = set.nodes[0].port;
        for _ in 0..3 {
            let sentinel = Process::start(|port, dir| {
                let config = dir.join("sentinel.conf");
                std::fs::write(
                    &config,
                    format!(
                        "port {port}\n\
                         bind 127.0.0.1\n\
                         dir \"{}\"\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n\
                         sentinel parallel-syncs {MASTER_NAME} 1\n",
                        dir.display()
                    ),
                )
                .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
                let mut command = Command::new("redis-server");
                command.arg(&config).arg("--sentinel");
                Ok(command)
            })?;
            set.sentinels.push(sentinel);
        }
        set.wait(
            "the sentinels to know the primary, the replica and each other",
            |set| set.sentinels_know_everyone(),
        )?;
        Ok(set)
    }

    fn wait(
        &self,
        what: &str,
        mut ready: impl FnMut(&Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let until = Instant::now() + READY_WITHIN;
        loop {
            let not_yet = match ready(self) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= until {
                return Err(format!("waited {READY_WITHIN:?} for {what}: {not_yet}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sentinels_know_everyone(&self) -> Result<(), String> {
        let primary = addr(self.nodes[0].port);
        let replica = addr(self.nodes[1].port);
        for sentinel in &self.sentinels {
            let mut conn = connect(sentinel.port)?;
            let named = master_addr(&mut conn)?;
            if named != primary {
                return Err(format!("{} names {named} as primary", addr(sentinel.port)));
            }
            let replicas = instances(&mut conn, "REPLICAS")?;
            if !replicas.iter().any(|r| r.addr() == replica && r.is_up()) {
                return Err(format!(
                    "{} does not know {replica} yet",
                    addr(sentinel.port)
                ));
            }
            let mut others: Vec<String> = instances(&mut conn, "SENTINELS")?
                .iter()
                .map(Instance::addr)
                .collect();
            others.sort();
            let mut want: Vec<String> = self
                .sentinels
                .iter()
                .filter(|s| s.port != sentinel.port)
                .map(|s| addr(s.port))
                .collect();
            want.sort();
            if others != want {
                return Err(format!(
                    "{} knows sentinels {others:?}, not {want:?}",
                    addr(sentinel.port)
                ));
            }
        }
        Ok(())
    }

    /// The name the sentinels monitor the primary under.
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// `127.0.0.1:<port>` of the three sentinels.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| addr(s.port)).collect()
    }

    /// The primary as a running sentinel names it now (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub fn primary_addr(&self) -> String {
        self.try_primary_addr().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_primary_addr(&self) -> Result<String, String> {
        let mut last_error = "no sentinel is running".to_string();
        for sentinel in self.sentinels.iter().filter(|s| s.child.is_some()) {
            match connect(sentinel.port).and_then(|mut conn| master_addr(&mut conn)) {
                Ok(named) => return Ok(named),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// `127.0.0.1:<port>` of the data nodes, running or not: the first primary, then the first
    /// replica.
    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| addr(n.port)).collect()
    }

    /// Kills the node the sentinels name as primary now (SIGKILL, like a crash), waits until it
    /// is gone, and returns its address (for [`RedisSentinels::wait_for_failover`]).
    ///
    /// # Panics
    /// If the sentinels name no node of this set, or that node is not running.
    pub fn kill_primary(&mut self) -> String {
        let primary = self.primary_addr();
        let index = self
            .nodes
            .iter()
            .position(|n| addr(n.port) == primary)
            .unwrap_or_else(|| panic!("the sentinels name {primary}, not a node of this set"));
        let mut child = self.nodes[index]
            .child
            .take()
            .unwrap_or_else(|| panic!("the primary {primary} is not running"));
        let _ = child.kill();
        let _ = child.wait();
        self.killed = Some(index);
        primary
    }

    /// Waits until every running sentinel names a primary other than `old` and that node
    /// answers ROLE as master; returns its address.
    pub fn wait_for_failover(&self, old: &str, within: Duration) -> Result<String, String> {
        let until = Instant::now() + within;
        loop {
            let seen = self.failed_over_to(old);
            match seen {
                Ok(new) => return Ok(new),
                Err(e) if Instant::now() >= until => {
                    return Err(format!("no failover from {old} within {within:?}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn failed_over_to(&self, old: &str) -> Result<String, String> {
        let mut named = Vec::new();
        for sentinel in self.sentinels.iter().filter(|s| s.child.is_some()) {
            named.push(master_addr(&mut connect(sentinel.port)?)?);
        }
        named.dedup();
        let [new] = named.as_slice() else {
            return Err(format!("the sentinels name {named:?}"));
        };
        if new == old {
            return Err(format!("the sentinels still name {old}"));
        }
        let port = new
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("the sentinels name {new}"))?;
        let role: Vec<redis::Value> = query(&mut connect(port)?, &redis::cmd("ROLE"))?;
        let role = role
            .first()
            .and_then(|r| redis::from_redis_value_ref::<String>(r).ok());
        match role.as_deref() {
            Some("master") => Ok(new.clone()),
            _ => Err(format!("{new} answers ROLE as {role:?}, not master yet")),
        }
    }

    /// Starts the node `kill_primary` killed again, empty, on its port, as a replica of the
    /// primary the sentinels name now (as an operator brings a failed node back), and waits
    /// until its link to that primary is up.
    ///
    /// # Panics
    /// If no node was killed, or it cannot start again.
    pub fn restart_killed(&mut self) {
        let index = self.killed.take().expect("no node was killed");
        let primary = self.primary_addr();
        let primary_port: u16 = primary
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the primary's address has a port");
        let node = &mut self.nodes[index];
        // Its port was just released; binding it again can take a moment.
        let until = Instant::now() + READY_WITHIN;
        loop {
            let command = data_node(node.port, node.dir.path(), Some(primary_port));
            match spawn_answering(command, &url(node.port)) {
                Ok(child) => {
                    node.child = Some(child);
                    let port = node.port;
                    while let Err(e) = replica_link_up(port) {
                        assert!(Instant::now() < until, "{e}");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
                Err(e) if Instant::now() >= until => {
                    panic!("{} did not restart: {e}", addr(node.port))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for process in self.sentinels.iter_mut().chain(&mut self.nodes) {
            if let Some(mut child) = process.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Process {
    /// Runs `command(port, dir)` with a free port and a new temporary directory until the
    /// server answering on that port is that child.
    fn start(
        command: impl Fn(u16, &std::path::Path) -> Result<Command, String>,
    ) -> Result<Process, String> {
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("cmpp-redis-sentinel-")
                .tempdir()
                .map_err(|e| format!("no temporary directory for redis-server: {e}"))?;
            let port = free_port()?;
            match spawn_answering(command(port, dir.path())?, &url(port)) {
                Ok(child) => {
                    return Ok(Process {
                        port,
                        dir,
                        child: Some(child),
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(format!("redis-server did not start: {last_error}"))
    }
}

/// A data node's command line: a replica of `primary` if given.
fn data_node(port: u16, dir: &std::path::Path, primary: Option<u16>) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no"])
        // A replica's sync starts at once, not after the default 5 s wait for more replicas.
        .args(["--repl-diskless-sync-delay", "0"]);
    if let Some(port) = primary {
        command.args(["--replicaof", "127.0.0.1", &port.to_string()]);
    }
    command
}

fn replica_link_up(port: u16) -> Result<(), String> {
    let info: redis::InfoDict = query(&mut connect(port)?, redis::cmd("INFO").arg("replication"))?;
    match info.get::<String>("master_link_status").as_deref() {
        Some("up") => Ok(()),
        status => Err(format!("{}: master_link_status {status:?}", addr(port))),
    }
}

fn master_addr(conn: &mut redis::Connection) -> Result<String, String> {
    let (host, port): (String, u16) = query(
        conn,
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME),
    )?;
    Ok(format!("{host}:{port}"))
}

/// A replica or sentinel as `SENTINEL REPLICAS|SENTINELS` lists it.
struct Instance(std::collections::HashMap<String, String>);

impl Instance {
    fn addr(&self) -> String {
        let field = |name: &str| self.0.get(name).map(String::as_str).unwrap_or("?");
        format!("{}:{}", field("ip"), field("port"))
    }

    /// Not subjectively down nor disconnected.
    fn is_up(&self) -> bool {
        self.0.get("flags").is_some_and(|flags| {
            !flags
                .split(',')
                .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
        })
    }
}

fn instances(conn: &mut redis::Connection, which: &str) -> Result<Vec<Instance>, String> {
    let listed: Vec<std::collections::HashMap<String, String>> =
        query(conn, redis::cmd("SENTINEL").arg(which).arg(MASTER_NAME))?;
    Ok(listed.into_iter().map(Instance).collect())
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

fn connect(port: u16) -> Result<redis::Connection, String> {
    super::redis_server::connect_port(port, Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinels_promote_the_replica_when_the_primary_is_killed() {
        let started = Instant::now();
        let mut set = RedisSentinels::start();
        let up = started.elapsed();
        assert_eq!(set.master_name(), "mymaster");
        assert_eq!(set.sentinel_addrs().len(), 3);
        let [first, replica] = <[String; 2]>::try_from(set.node_addrs()).unwrap();
        let primary = set.primary_addr();
        assert_eq!(primary, first);

        let port = |a: &str| a.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let mut conn = connect(port(&primary)).unwrap();
        let () = query(&mut conn, redis::cmd("SET").arg("k").arg("v")).unwrap();
        let acked: usize = query(&mut conn, redis::cmd("WAIT").arg(1).arg(2000)).unwrap();
        assert_eq!(acked, 1, "the replica has it");
        let got: Option<String> = query(
            &mut connect(port(&replica)).unwrap(),
            redis::cmd("GET").arg("k"),
        )
        .unwrap();
        assert_eq!(got.as_deref(), Some("v"));

        let killed_at = Instant::now();
        assert_eq!(set.kill_primary(), primary);
        assert_eq!(
            super::super::redis_server::server_pid(&url(port(&primary))),
            None,
            "killed"
        );
        let new = set
            .wait_for_failover(&primary, Duration::from_secs(15))
            .unwrap();
        let failover = killed_at.elapsed();
        assert_eq!(new, replica);
        assert_eq!(set.primary_addr(), replica);
        let got: Option<String> = query(
            &mut connect(port(&new)).unwrap(),
            redis::cmd("GET").arg("k"),
        )
        .unwrap();
        assert_eq!(got.as_deref(), Some("v"), "the data went over with it");
        eprintln!("sentinels up in {up:?}, failover in {failover:?}");
    }
}
