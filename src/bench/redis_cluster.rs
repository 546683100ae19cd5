//! A throwaway Redis Cluster for tests: a few redis-server nodes on loopback ports, each in a
//! temporary directory of its own, joined by `redis-cli --cluster create`, killed by PID when
//! dropped. Besides the addresses it can kill a node (a crash, for failover) and move one slot
//! with its keys to another primary the way `redis-cli --cluster reshard` does, while clients
//! keep writing to it (for resharding under load).
//!
//! Nothing is persisted but `nodes.conf`, the cluster state each node must keep. The machines
//! this runs on have 2 cores: a cluster is 3 primaries (the fewest `--cluster create` accepts)
//! and, where a test needs failover, a replica each; every wait polls against a deadline.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::{free_port, query, spawn_answering};

/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
/// How long the nodes may take to agree on the cluster after `--cluster create`, replicas synced.
const SETTLED_WITHIN: Duration = Duration::from_secs(30);
/// Ports tried for a node when the ones found free are taken before redis-server binds them.
const PORT_ATTEMPTS: usize = 5;
/// Keys per MIGRATE, as `redis-cli --cluster reshard` (its `--cluster-pipeline` default).
const MIGRATE_BATCH: usize = 100;
/// MIGRATE's own timeout for talking to the target, in milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5000;
/// Failed MIGRATEs (I/O errors, a busy target) retried before `migrate_slot` gives up.
const MIGRATE_RETRIES: usize = 5;
/// Bound on a whole `migrate_slot`, pauses between batches not counted.
const MIGRATE_WITHIN: Duration = Duration::from_secs(60);
/// Longer than MIGRATE's timeout, so that a slow MIGRATE fails on the server's side, not ours.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RedisCluster {
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    /// Holds nodes.conf; removed when the cluster is dropped.
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisCluster {
    /// Starts a cluster and waits until it is settled; panics if it cannot (for tests).
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        RedisCluster::try_start(primaries, replicas_per_primary).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `primaries × (1 + replicas_per_primary)` nodes, creates the cluster with the slots
    /// spread evenly over the primaries, and waits until every node says `cluster_state:ok`,
    /// every node sees the same owner for all 16384 slots, and every replica's link is up.
    pub fn try_start(
        primaries: usize,
        replicas_per_primary: usize,
    ) -> Result<RedisCluster, String> {
        if primaries < 3 {
            return Err(format!(
                "a Redis Cluster needs at least 3 primaries (redis-cli --cluster create refuses \
                 fewer), not {primaries}"
            ));
        }
        let mut cluster = RedisCluster { nodes: Vec::new() };
        for _ in 0..primaries * (1 + replicas_per_primary) {
            cluster.nodes.push(Node::start()?);
        }
        cluster.create(replicas_per_primary)?;
        let until = Instant::now() + SETTLED_WITHIN;
        let mut not_yet = String::new();
        while Instant::now() < until {
            match cluster.settled(primaries) {
                Ok(()) => return Ok(cluster),
                Err(e) => not_yet = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "the cluster did not settle within {SETTLED_WITHIN:?}: {not_yet}"
        ))
    }

    fn create(&self, replicas_per_primary: usize) -> Result<(), String> {
        // redis-cli waits for the nodes to agree with no bound of its own: the output goes to a
        // file (no pipe to fill) and the process is killed past the deadline.
        let log_path = self.nodes[0].dir.path().join("cluster-create.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{e}"))?;
        let mut child = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.seeds())
            .arg("--cluster-replicas")
            .arg(replicas_per_primary.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| format!("{e}"))?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        let until = Instant::now() + SETTLED_WITHIN;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| format!("{e}"))? {
                break Some(status);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        match status {
            // Its own last check must have found every slot covered.
            Some(s) if s.success() && output.contains("[OK] All 16384 slots covered") => Ok(()),
            Some(s) => Err(format!("redis-cli --cluster create: {s}:\n{output}")),
            None => Err(format!(
                "redis-cli --cluster create did not finish within {SETTLED_WITHIN:?}:\n{output}"
            )),
        }
    }

    /// Why the cluster is not ready yet, if it is not.
    fn settled(&self, primaries: usize) -> Result<(), String> {
        let mut first_view: Option<(u16, SlotOwners)> = None;
        for node in &self.nodes {
            let mut conn = connect(node.port)?;
            let info: String = query(&mut conn, redis::cmd("CLUSTER").arg("INFO"))?;
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return Err(format!("{} is not cluster_state:ok", node.addr()));
            }
            let view = View::of(&mut conn)?;
            let known = view.nodes.iter().filter(|n| !n.flags.contains("handshake"));
            if known.count() != self.nodes.len() {
                return Err(format!("{} does not know every node yet", node.addr()));
            }
            if view.primaries().len() != primaries {
                return Err(format!(
                    "{} does not see {primaries} primaries",
                    node.addr()
                ));
            }
            let owners = view.slot_owners();
            let covered: u32 = owners.iter().map(|&(a, b, _)| u32::from(b - a) + 1).sum();
            if covered != u32::from(SLOTS) {
                return Err(format!("{} sees {covered} slots covered", node.addr()));
            }
            match &first_view {
                None => first_view = Some((node.port, owners)),
                Some((port, first)) if *first != owners => {
                    return Err(format!(
                        "{} and 127.0.0.1:{port} disagree on who owns the slots",
                        node.addr()
                    ));
                }
                Some(_) => {}
            }
            let replication: redis::InfoDict =
                query(&mut conn, redis::cmd("INFO").arg("replication"))?;
            if replication.get::<String>("role").as_deref() == Some("slave")
                && replication.get::<String>("master_link_status").as_deref() != Some("up")
            {
                return Err(format!(
                    "replica {} has no link to its primary",
                    node.addr()
                ));
            }
        }
        Ok(())
    }

    /// `127.0.0.1:<port>` of every node, primaries and replicas, dead or alive: seeds for a
    /// cluster client.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    /// The primaries now (asked of a running node), sorted; those the cluster has marked as
    /// failed are left out.
    pub fn primaries(&self) -> Vec<String> {
        self.try_primaries().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_primaries(&self) -> Result<Vec<String>, String> {
        let view = self.view()?;
        let mut primaries: Vec<String> = view.primaries().iter().map(|n| n.addr()).collect();
        primaries.sort();
        Ok(primaries)
    }

    /// The primary serving `slot` now, as a running node sees it.
    pub fn node_for_slot(&self, slot: u16) -> String {
        self.try_node_for_slot(slot)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_node_for_slot(&self, slot: u16) -> Result<String, String> {
        Ok(self.view()?.owner(slot)?.addr())
    }

    /// The hash slot of `key` (CRC16 of the key, or of its `{hash tag}`, modulo 16384).
    pub fn slot_of(key: &str) -> u16 {
        // redis::cluster_routing::Slot::for_key computes it too, but gives no way to read the
        // number back; the tests check that the two agree.
        let bytes = key.as_bytes();
        let hashed = match bytes.iter().position(|&b| b == b'{') {
            Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
                Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
                _ => bytes,
            },
            None => bytes,
        };
        crc16_xmodem(hashed) % SLOTS
    }

    /// The process id of the node at `addr` while it runs.
    pub fn pid(&self, addr: &str) -> Option<u32> {
        self.node(addr).child.as_ref().map(Child::id)
    }

    /// Kills the node at `addr` (SIGKILL, like a crash) and waits until it is gone. Its replica,
    /// if it has one, is promoted by the cluster after the node timeout (2 s) and an election.
    ///
    /// # Panics
    /// If no node of this cluster is at `addr`.
    pub fn kill(&mut self, addr: &str) {
        let node = self.node_mut(addr);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Moves `slot` and its keys from the primary serving it to the primary `to`; see
    /// [`RedisCluster::migrate_slot_slowly`].
    pub fn migrate_slot(&self, slot: u16, to: &str) -> Result<usize, String> {
        self.migrate_slot_slowly(slot, to, Duration::ZERO)
    }

    /// Moves `slot` and its keys from the primary serving it to the primary `to` the way
    /// `redis-cli --cluster reshard` does, sleeping `pause_between_batches` between MIGRATEs of
    /// 100 keys so that a test can keep the slot half-moved for a while. Returns the number of
    /// keys moved (0 if `to` already serves the slot), once every running node sees `to` as the
    /// slot's owner.
    ///
    /// Clients may go on using the slot meanwhile: a key still at the source is served there, a
    /// key not there is redirected to the target (`-ASK`), where new keys land; a MOVED follows
    /// once the slot is handed over.
    pub fn migrate_slot_slowly(
        &self,
        slot: u16,
        to: &str,
        pause_between_batches: Duration,
    ) -> Result<usize, String> {
        let view = self.view()?;
        let source = view.owner(slot)?.clone();
        let target = view
            .primaries()
            .into_iter()
            .find(|n| n.addr() == to)
            .ok_or_else(|| format!("{to} is not a primary of this cluster"))?
            .clone();
        if source.id == target.id {
            return Ok(0);
        }
        let mut src = connect(source.port)?;
        let mut dst = connect(target.port)?;
        // Importing first, so that the -ASK redirects the source starts giving are taken.
        set_slot(&mut dst, slot, "IMPORTING", &source.id)?;
        set_slot(&mut src, slot, "MIGRATING", &target.id)?;
        let until = Instant::now() + MIGRATE_WITHIN;
        let mut moved = 0;
        loop {
            moved += move_keys(&mut src, slot, target.port, pause_between_batches, until)?;
            // The target first: once it owns the slot it answers for it rather than redirect.
            set_slot(&mut dst, slot, "NODE", &target.id)?;
            match set_slot(&mut src, slot, "NODE", &target.id) {
                Ok(()) => break,
                // A key reached the source after its last GETKEYSINSLOT (a client that does not
                // follow the protocol): move it too and hand over again.
                Err(e) if e.contains("still hold keys") && Instant::now() < until => continue,
                Err(e) => return Err(e),
            }
        }
        for other in view.primaries() {
            if other.id == source.id || other.id == target.id || !self.is_running(other.port) {
                continue;
            }
            set_slot(&mut connect(other.port)?, slot, "NODE", &target.id)?;
        }
        // Replicas learn of it by gossip; wait, so that whoever asks any node next gets one
        // answer.
        let until = Instant::now() + SETTLED_WITHIN;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            loop {
                let owner = View::of(&mut connect(node.port)?)?.owner(slot)?.id.clone();
                if owner == target.id {
                    break;
                }
                if Instant::now() >= until {
                    return Err(format!(
                        "{} still sees slot {slot} at {owner}, not {to}",
                        node.addr()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(moved)
    }

    /// What a running node sees of the cluster.
    fn view(&self) -> Result<View, String> {
        let mut last_error = "no node of the cluster is running".to_string();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            match connect(node.port).and_then(|mut conn| View::of(&mut conn)) {
                Ok(view) => return Ok(view),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn is_running(&self, port: u16) -> bool {
        self.nodes
            .iter()
            .any(|n| n.port == port && n.child.is_some())
    }

    fn node(&self, addr: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node of this cluster is at {addr}"))
    }

    fn node_mut(&mut self, addr: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node of this cluster is at {addr}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Node {
    /// A cluster-enabled redis-server on a free loopback port that answers as our own child.
    fn start() -> Result<Node, String> {
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("cmpp-redis-cluster-")
                .tempdir()
                .map_err(|e| format!("no temporary directory for redis-server: {e}"))?;
            let mut node = Node {
                port: free_port()?,
                dir,
                child: None,
            };
            // The cluster bus is port + 10000 by default, which can be past 65535 or taken:
            // it gets a free port of its own.
            match node.spawn(free_port()?) {
                Ok(()) => return Ok(node),
                Err(e) => last_error = e,
            }
        }
        Err(format!("a cluster node did not start: {last_error}"))
    }

    fn spawn(&mut self, bus_port: u16) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            // A replica's first sync starts at once, not after the default 5 s wait for more.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(self.dir.path());
        let url = format!("redis://127.0.0.1:{}/", self.port);
        self.child = Some(spawn_answering(command, &url)?);
        Ok(())
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Moves the keys of `slot` from `src` (MIGRATING) to the target until none are left there.
/// Returns how many left the source, counted with COUNTKEYSINSLOT around each MIGRATE (which
/// counts the keys of a partly failed batch that did move).
fn move_keys(
    src: &mut redis::Connection,
    slot: u16,
    target_port: u16,
    pause_between_batches: Duration,
    until: Instant,
) -> Result<usize, String> {
    let mut moved = 0;
    let mut failures = 0;
    // A key at both ends can only be one an earlier MIGRATE copied and then failed to delete at
    // the source (a timeout): clients were served the source's copy all along, so it wins.
    let mut replace = false;
    loop {
        if Instant::now() >= until {
            return Err(format!(
                "slot {slot} still had keys at the source after {MIGRATE_WITHIN:?}"
            ));
        }
        let keys: Vec<Vec<u8>> = query(
            src,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(MIGRATE_BATCH),
        )?;
        if keys.is_empty() {
            return Ok(moved);
        }
        if moved > 0 && !pause_between_batches.is_zero() {
            std::thread::sleep(pause_between_batches);
        }
        let before = count_keys(src, slot)?;
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg("127.0.0.1")
            .arg(target_port)
            .arg("")
            .arg(0)
            .arg(MIGRATE_TIMEOUT_MS);
        if replace {
            migrate.arg("REPLACE");
        }
        migrate.arg("KEYS").arg(&keys);
        // OK, or NOKEY when clients deleted them all meanwhile.
        let result: Result<String, String> = query(src, &migrate);
        moved += before.saturating_sub(count_keys(src, slot)?);
        match result {
            Ok(_) => failures = 0,
            Err(e) if e.contains("BUSYKEY") && !replace => replace = true,
            // The target did not answer in time: the keys not moved are still at the source and
            // are taken again.
            Err(e) if e.contains("IOERR") && failures < MIGRATE_RETRIES => {
                failures += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("MIGRATE of slot {slot}: {e}")),
        }
    }
}

fn count_keys(conn: &mut redis::Connection, slot: u16) -> Result<usize, String> {
    query(conn, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))
}

fn set_slot(
    conn: &mut redis::Connection,
    slot: u16,
    state: &str,
    node_id: &str,
) -> Result<(), String> {
    query(
        conn,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(node_id),
    )
    .map_err(|e| format!("CLUSTER SETSLOT {slot} {state} {node_id}: {e}"))
}

/// A plain (not cluster-aware) connection to one node.
fn connect(port: u16) -> Result<redis::Connection, String> {
    super::redis_server::connect_port(port, COMMAND_TIMEOUT)
}

/// (first slot, last slot, port of the primary) of every owned range, sorted.
type SlotOwners = Vec<(u16, u16, u16)>;

/// One node's `CLUSTER NODES`.
struct View {
    nodes: Vec<NodeLine>,
}

#[derive(Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    /// Inclusive ranges; importing/migrating markers (`[slot->-id]`) are not ownership.
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(',').any(|f| f == flag)
    }
}

impl View {
    fn of(conn: &mut redis::Connection) -> Result<View, String> {
        let text: String = query(conn, redis::cmd("CLUSTER").arg("NODES"))?;
        let nodes = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(NodeLine::parse)
            .collect::<Result<_, _>>()?;
        Ok(View { nodes })
    }

    fn primaries(&self) -> Vec<&NodeLine> {
        self.nodes
            .iter()
            .filter(|n| n.has_flag("master") && !n.has_flag("fail"))
            .collect()
    }

    fn slot_owners(&self) -> SlotOwners {
        let mut owners: Vec<_> = self
            .primaries()
            .iter()
            .flat_map(|n| n.slots.iter().map(|&(a, b)| (a, b, n.port)))
            .collect();
        owners.sort_unstable();
        owners
    }

    fn owner(&self, slot: u16) -> Result<&NodeLine, String> {
        self.nodes
            .iter()
            .filter(|n| n.has_flag("master"))
            .find(|n| n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .ok_or_else(|| format!("no primary serves slot {slot}"))
    }
}

impl NodeLine {
    /// `<id> <ip:port@bus[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slot>…`
    fn parse(line: &str) -> Result<NodeLine, String> {
        let bad = || format!("unexpected CLUSTER NODES line: {line}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(bad());
        }
        let address = fields[1].split('@').next().ok_or_else(bad)?;
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        let mut slots = Vec::new();
        for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            slots.push((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?));
        }
        Ok(NodeLine {
            id: fields[0].to_string(),
            port,
            flags: fields[2].to_string(),
            slots,
        })
    }
}

/// CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster hashes keys with.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn cluster_connection(cluster: &RedisCluster) -> redis::cluster::ClusterConnection {
        let seeds = cluster.seeds().into_iter().map(|a| format!("redis://{a}/"));
        redis::cluster::ClusterClient::new(seeds)
            .and_then(|c| c.get_connection())
            .unwrap()
    }

    #[test]
    fn three_primaries_cover_every_slot_and_serve_a_cluster_client() {
        let cluster = RedisCluster::start(3, 0);
        assert_eq!(cluster.seeds().len(), 3);
        let primaries = cluster.primaries();
        assert_eq!(primaries.len(), 3, "{primaries:?}");
        let mut owners: Vec<String> = [0, 8000, 16383]
            .into_iter()
            .map(|slot| cluster.node_for_slot(slot))
            .collect();
        owners.sort();
        assert_eq!(owners, primaries, "the slots are spread over the three");

        let mut conn = cluster_connection(&cluster);
        let () = redis::cmd("SET")
            .arg("greeting")
            .arg("hi")
            .query(&mut conn)
            .unwrap();
        let got: String = redis::cmd("GET").arg("greeting").query(&mut conn).unwrap();
        assert_eq!(got, "hi");

        let mut node = connect(cluster.nodes[0].port).unwrap();
        for key in [
            "greeting",
            "{user1000}.following",
            "a{}b",
            "{}{x}",
            "x{y}z",
            "",
        ] {
            let slot = RedisCluster::slot_of(key);
            assert_eq!(Slot::new(slot), Some(Slot::for_key(key)), "{key:?}");
            let server: u16 =
                query(&mut node, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).unwrap();
            assert_eq!(slot, server, "{key:?}");
        }
        let owner = cluster.node_for_slot(RedisCluster::slot_of("greeting"));
        let pid = cluster.pid(&owner).expect("running");
        let seeds = cluster.seeds();
        assert_eq!(server_pid_of(&owner), Some(pid), "{seeds:?}");
    }

    fn server_pid_of(addr: &str) -> Option<u32> {
        super::super::redis_server::server_pid(&format!("redis://{addr}/"))
    }

    #[test]
    fn a_slot_moves_with_its_keys_while_a_client_writes_to_it() {
        let mut cluster = RedisCluster::start(3, 0);
        let slot = RedisCluster::slot_of("{moving}");
        let from = cluster.node_for_slot(slot);
        let to = cluster
            .primaries()
            .into_iter()
            .find(|p| *p != from)
            .unwrap();
        let mut conn = cluster_connection(&cluster);
        let mut want: HashMap<String, String> = HashMap::new();
        // One slot, so one MSET.
        let mut mset = redis::cmd("MSET");
        for i in 0..500 {
            let key = format!("{{moving}}:{i}");
            mset.arg(&key).arg("before");
            want.insert(key, "before".to_string());
        }
        let () = mset.query(&mut conn).unwrap();

        // A writer overwrites old keys (served by the source until they move) and adds new ones
        // (sent on to the target) all through the move.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let mut conn = cluster_connection(&cluster);
            std::thread::spawn(move || {
                let mut written = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) || i < 50 {
                    let key = if i % 2 == 0 {
                        format!("{{moving}}:{}", (i * 7) % 500)
                    } else {
                        format!("{{moving}}:new:{i}")
                    };
                    let value = format!("during-{i}");
                    let () = redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .query(&mut conn)
                        .unwrap_or_else(|e| panic!("SET {key} during the move: {e}"));
                    written.push((key, value));
                    i += 1;
                }
                written
            })
        };
        let started = Instant::now();
        let moved = cluster
            .migrate_slot_slowly(slot, &to, Duration::from_millis(20))
            .unwrap();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        let new_keys = written.iter().filter(|(k, _)| k.contains(":new:")).count();
        assert!(
            (500..=500 + new_keys).contains(&moved),
            "{moved} keys moved, 500 old and {new_keys} new ones"
        );
        want.extend(written);

        assert_eq!(cluster.node_for_slot(slot), to);
        let mut target = connect(to.rsplit(':').next().unwrap().parse().unwrap()).unwrap();
        let count: usize = query(
            &mut target,
            redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot),
        )
        .unwrap();
        assert_eq!(count, want.len(), "every key is at the new owner");
        for (key, value) in &want {
            let got: Option<String> = query(&mut target, redis::cmd("GET").arg(key)).unwrap();
            assert_eq!(got.as_deref(), Some(value.as_str()), "{key}");
        }
        let mut source = connect(from.rsplit(':').next().unwrap().parse().unwrap()).unwrap();
        let err =
            query::<Option<String>>(&mut source, redis::cmd("GET").arg("{moving}:0")).unwrap_err();
        assert!(err.to_lowercase().contains("moved"), "{err}");
        assert_eq!(cluster.migrate_slot(slot, &to), Ok(0), "already there");
        eprintln!("moved {moved} keys in {took:?} with {new_keys} new ones written");

        let pids: Vec<u32> = cluster
            .seeds()
            .iter()
            .filter_map(|a| cluster.pid(a))
            .collect();
        cluster.kill(&from);
        assert_eq!(cluster.pid(&from), None);
        assert_eq!(server_pid_of(&from), None, "killed");
        drop(cluster);
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "node {pid} is gone"
            );
        }
    }
}
