//! Several `cmpp-gateway run` processes sharing one SP account's K connections through leases,
//! against the simulator playing the carrier's limits: never more than K connections, every
//! message delivered, a killed or stalled instance's slots taken over, its entries completed,
//! and a stalled instance that wakes after its lease ran out sending nothing more.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::gateway;
use crate::common::keys;
use crate::common::process::{GatewayProcess as Instance, Scratch};
use crate::common::redis::{RedisServer, connect};
use crate::common::streams;
use crate::common::wait::until;
use cmpp_gateway::protocol::Version;
use cmpp_gateway::simulator::{self, Account, Behaviour, SimulatorConfig, SimulatorHandle};
use serde_json::{Value, json};
use tokio::time::Instant;

const WINDOW: usize = 16;
const LEASE_TTL: Duration = Duration::from_secs(2);

/// The account's config for one instance: K = `max_connections`, short lease and timers (T × N
/// = 3 s before an orphan is claimed).
fn config(sim: &SimulatorHandle, redis: &RedisServer, name: &str, extra: Value) -> Value {
    let mut config = json!({
        "user": "900001", "password": "888888", "sms_accessno": "1064899104221",
        "service_id": "JSASXW", "http_host": "127.0.0.1", "http_port": 0,
        "cmpp_host": "127.0.0.1", "cmpp_port": sim.addr().port(),
        "redis_url": redis.url(), "window": WINDOW, "consumer_name": name,
        "lease_ttl": "2s", "response_timeout": "1s", "max_sends": 3, "reclaim_idle": "1s",
        "worker_block": "200ms", "reconnect_min": "50ms", "reconnect_max": "500ms",
        "close_timeout": "2s",
    });
    if let (Some(base), Value::Object(more)) = (config.as_object_mut(), extra) {
        base.extend(more);
    }
    config
}

async fn simulator_with(behaviour: Behaviour, accounts: Vec<Account>) -> SimulatorHandle {
    simulator::start(SimulatorConfig {
        behaviour,
        accounts,
        record_submits: true,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn limited(max_connections: usize) -> Behaviour {
    Behaviour {
        max_connections,
        ..Behaviour::default()
    }
}

async fn wait_live_connections(sim: &SimulatorHandle, want: u64, limit: Duration) {
    until(&format!("{want} live connections"), limit, || {
        let live = sim.counters().connections_live;
        async move {
            if live == want {
                Ok(())
            } else {
                Err(format!("{live} live"))
            }
        }
    })
    .await
}

/// Instance `a` holding two of the four slots, then `b` (which would take all four) holding the
/// other two, paced at `rate` per connection.
async fn a_with_two_then_b(
    dir: &Scratch,
    sim: &SimulatorHandle,
    redis: &RedisServer,
    rate: u32,
) -> (Instance, Instance) {
    let pace = json!({"max_connections": 4, "rate": rate});
    let mut a_config = pace.clone();
    a_config["connections_per_instance"] = json!(2);
    let a = Instance::spawn(&dir.0, "a", &config(sim, redis, "a", a_config));
    wait_live_connections(sim, 2, Duration::from_secs(30)).await;
    let mut b_config = pace;
    b_config["connections_per_instance"] = json!(4);
    let b = Instance::spawn(&dir.0, "b", &config(sim, redis, "b", b_config));
    wait_live_connections(sim, 4, Duration::from_secs(30)).await;
    (a, b)
}

async fn wait_submits(sim: &SimulatorHandle, at_least: u64) {
    until(
        &format!("{at_least} SUBMITs received"),
        Duration::from_secs(60),
        || {
            let n = sim.counters().submits_received;
            async move {
                if n >= at_least {
                    Ok(())
                } else {
                    Err(format!("{n} so far"))
                }
            }
        },
    )
    .await
}

/// SUBMITs received per simulator connection id, from the recorded submits.
fn submits_per_connection(sim: &SimulatorHandle) -> HashMap<u64, usize> {
    let mut per = HashMap::new();
    for s in sim.recorded_submits() {
        *per.entry(s.connection).or_default() += 1;
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k4_over_two_instances_never_exceeds_four_connections_and_sends_each_message_once() {
    const MESSAGES: usize = 50_000;
    let redis = RedisServer::start();
    let sim = simulator_with(limited(4), SimulatorConfig::default().accounts).await;
    let dir = Scratch::new("k4");
    let mut conn = connect(&redis).await;
    streams::fill(&mut conn, "k4", MESSAGES).await;
    // Each instance would take all four slots if it could: only the leases keep the two
    // together at four.
    let both = json!({"max_connections": 4, "connections_per_instance": 4});
    let _a = Instance::spawn(&dir.0, "a", &config(&sim, &redis, "a", both.clone()));
    let _b = Instance::spawn(&dir.0, "b", &config(&sim, &redis, "b", both));

    streams::wait_all_delivered(&mut conn, "k4", MESSAGES, Duration::from_secs(300)).await;
    let c = sim.counters();
    assert!(
        c.connections_peak <= 4,
        "{} connections at once",
        c.connections_peak
    );
    assert_eq!(c.logins_refused_max_connections, 0, "no login beyond K");
    assert_eq!(
        c.submits_received, MESSAGES as u64,
        "each message sent exactly once"
    );
    assert_eq!(streams::pending(&mut conn).await, 0, "nothing left pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_slots_and_entries_are_taken_over() {
    const MESSAGES: usize = 20_000;
    let redis = RedisServer::start();
    let sim = simulator_with(limited(4), SimulatorConfig::default().accounts).await;
    let dir = Scratch::new("kill");
    let mut conn = connect(&redis).await;
    // Paced so the load is still on when the first instance dies.
    let (a, _b) = a_with_two_then_b(&dir, &sim, &redis, 500).await;
    streams::fill(&mut conn, "kill", MESSAGES).await;
    wait_submits(&sim, 3_000).await;

    drop(a); // SIGKILL: its two connections close, its leases stay until they expire.
    let killed = Instant::now();
    let sent_before = sim.counters().submits_received;
    assert!(
        (sent_before as usize) < MESSAGES / 2,
        "killed too late to prove anything: {sent_before} sent"
    );
    // Its two connections close at the simulator, then the other instance logs in on them.
    wait_live_connections(&sim, 2, Duration::from_secs(30)).await;
    wait_live_connections(&sim, 4, Duration::from_secs(30)).await;
    let takeover = killed.elapsed();
    // The lease TTL, then a login (the acquire retry backs off up to TTL/2).
    assert!(
        takeover <= LEASE_TTL * 3,
        "the other instance took the slots over after {takeover:?}"
    );

    streams::wait_all_delivered(&mut conn, "kill", MESSAGES, Duration::from_secs(180)).await;
    assert_eq!(streams::pending(&mut conn).await, 0, "nothing left pending");
    let c = sim.counters();
    let duplicates = c.submits_received as usize - MESSAGES;
    // At most the killed instance's two windows (what it had sent, answered or not, without
    // its Msg_Ids on record yet).
    assert!(
        duplicates <= 2 * WINDOW,
        "{duplicates} duplicates for two windows of {WINDOW}"
    );
    assert!(c.connections_peak <= 4, "{} at once", c.connections_peak);
    assert_eq!(
        c.logins_refused_max_connections, 0,
        "no login beyond K, the takeover included"
    );
    eprintln!(
        "slots taken over after {takeover:?}; {} submits for {MESSAGES} messages: {duplicates} duplicates",
        c.submits_received
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_past_its_lease_sends_nothing_more_on_its_slots() {
    const MESSAGES: usize = 12_000;
    let redis = RedisServer::start();
    // No connection cap here: a stopped process's sockets stay open, and a real ISMG would
    // refuse the other instance's logins until its heartbeats gave them up. The point is what
    // the stopped process does when it wakes.
    let sim = simulator_with(Behaviour::default(), SimulatorConfig::default().accounts).await;
    let dir = Scratch::new("stop");
    let mut conn = connect(&redis).await;
    let (a, _b) = a_with_two_then_b(&dir, &sim, &redis, 400).await;
    streams::fill(&mut conn, "stop", MESSAGES).await;
    wait_submits(&sim, 2_000).await;

    a.signal("STOP");
    // What was already on the wire lands; after that the stopped instance's connections are
    // the ones that stay silent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_stop = submits_per_connection(&sim);
    // Past the lease: the other instance takes the slots over meanwhile.
    tokio::time::sleep(LEASE_TTL * 2).await;
    let before_cont = submits_per_connection(&sim);
    let silent: HashSet<u64> = at_stop
        .iter()
        .filter(|(id, n)| before_cont.get(id) == Some(n))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        silent.len(),
        2,
        "the stopped instance's two connections went quiet ({at_stop:?} → {before_cont:?})"
    );
    a.signal("CONT");

    streams::wait_all_delivered(&mut conn, "stop", MESSAGES, Duration::from_secs(180)).await;
    let after = submits_per_connection(&sim);
    for id in &silent {
        assert_eq!(
            after.get(id),
            before_cont.get(id),
            "connection {id} of the stopped instance sent after its lease had run out"
        );
    }
    assert_eq!(streams::pending(&mut conn).await, 0, "nothing left pending");
    let c = sim.counters();
    let duplicates = c.submits_received as usize - MESSAGES;
    assert!(
        duplicates <= 2 * WINDOW,
        "{duplicates} duplicates for two windows of {WINDOW}"
    );
    eprintln!(
        "{} submits for {MESSAGES} messages: {duplicates} duplicates",
        c.submits_received
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_channel_waits_and_the_other_delivers_everything() {
    const GOOD: usize = 2_000;
    const BAD: usize = 300;
    let redis = RedisServer::start();
    let accounts = vec![
        Account::new("900001", "888888", Version::V30),
        Account::new("900002", "777777", Version::V30),
    ];
    let sim = simulator_with(Behaviour::default(), accounts).await;
    let channels = |password: &str| {
        json!({"channels": [
            {"name": "good"},
            {"name": "bad", "user": "900002", "password": password, "sms_accessno": "1064899104222"},
        ]})
    };
    let gw = gateway::start(gateway::config(&sim, &redis.url(), channels("wrong"))).await;
    let mut conn = connect(&redis).await;
    streams::fill(&mut conn, "good", GOOD).await;
    // Added to the default stream naming the other channel: moved to that channel's stream.
    let mut pipe = redis::pipe();
    for i in 0..BAD {
        pipe.cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg(
                &[
                    "id",
                    &format!("bad-{i}"),
                    "to",
                    "13800138000",
                    "text",
                    "waits",
                    "channel",
                    "bad",
                ][..],
            )
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();

    streams::wait_all_delivered(&mut conn, "good", GOOD, Duration::from_secs(60)).await;
    let bad_stream = "cmpp:mt:{bad}";
    let waiting = until(
        "the refused channel's messages moved to its stream",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move {
                let len: usize = redis::cmd("XLEN")
                    .arg(bad_stream)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                if len == BAD {
                    Ok(len)
                } else {
                    Err(format!("{len} there"))
                }
            }
        },
    )
    .await;
    assert_eq!(waiting, BAD);
    let dead: usize = redis::cmd("XLEN")
        .arg(keys().dead_letters())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0, "waiting is not dying");
    let sp_ids: HashSet<String> = sim
        .recorded_submits()
        .into_iter()
        .map(|s| s.sp_id)
        .collect();
    assert_eq!(sp_ids, HashSet::from(["900001".to_owned()]));
    gw.stop().await;

    // The password fixed and the gateway restarted: the waiting messages go out.
    let gw = gateway::start(gateway::config(&sim, &redis.url(), channels("777777"))).await;
    streams::wait_all_delivered(&mut conn, "bad", BAD, Duration::from_secs(60)).await;
    let on_bad = sim
        .recorded_submits()
        .into_iter()
        .filter(|s| s.sp_id == "900002")
        .count();
    assert_eq!(
        on_bad, BAD,
        "each waiting message sent once, on its own account"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_give_one_recipient_two_long_messages_one_reference() {
    const MESSAGES: usize = 10_000;
    let redis = RedisServer::start();
    let sim = simulator_with(limited(2), SimulatorConfig::default().accounts).await;
    let dir = Scratch::new("udh");
    let mut conn = connect(&redis).await;
    // Three parts each (16-bit references: 10 000 messages to one phone need more than 256).
    let mut pipe = redis::pipe();
    for i in 0..MESSAGES {
        let text = format!("{i:05} {}", "x".repeat(380));
        pipe.cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg(
                &[
                    "id",
                    &format!("udh-{i}"),
                    "to",
                    "13800138000",
                    "text",
                    &text,
                ][..],
            )
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    let each =
        json!({"max_connections": 2, "connections_per_instance": 1, "wide_udh_reference": true});
    let _a = Instance::spawn(&dir.0, "a", &config(&sim, &redis, "a", each.clone()));
    let _b = Instance::spawn(&dir.0, "b", &config(&sim, &redis, "b", each));

    streams::wait_all_delivered(&mut conn, "udh", MESSAGES, Duration::from_secs(300)).await;
    let submits = sim.recorded_submits();
    let connections: HashSet<u64> = submits.iter().map(|s| s.connection).collect();
    assert_eq!(connections.len(), 2, "both instances sent");
    // The reference (bytes 4-5 of `06 08 04 RR RR TT NN`) of every first part, one per message.
    let mut by_reference: HashMap<u16, HashSet<Vec<u8>>> = HashMap::new();
    for s in submits.iter().filter(|s| s.pk_number == 1) {
        let udh = &s.msg_content;
        assert_eq!(&udh[..3], &[0x06, 0x08, 0x04], "16-bit concatenation UDH");
        let reference = u16::from_be_bytes([udh[3], udh[4]]);
        by_reference
            .entry(reference)
            .or_default()
            .insert(udh[7..12].to_vec());
    }
    let shared: Vec<_> = by_reference.iter().filter(|(_, m)| m.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "references given to two messages: {shared:?}"
    );
    assert_eq!(by_reference.len(), MESSAGES, "one reference per message");
    assert_eq!(sim.counters().udh_reference_collisions, 0);
}

/// K = 1 and two instances, the first unable to reach the ISMG: it holds the only slot at first,
/// then hands it over once its link has stayed down for twice `reconnect_max` (at least 10 s),
/// and the other instance sends everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_link_cannot_log_in_is_handed_to_another_instance() {
    const MESSAGES: usize = 200;
    let redis = RedisServer::start();
    let sim = simulator_with(limited(1), SimulatorConfig::default().accounts).await;
    let dir = Scratch::new("handover");
    let mut conn = connect(&redis).await;
    // A port nothing listens on.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cut_off = config(&sim, &redis, "a", json!({"max_connections": 1}));
    cut_off["cmpp_port"] = json!(unreachable);
    let _a = Instance::spawn(&dir.0, "a", &cut_off);
    until(
        "the first instance holds the slot",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move {
                let holder: Option<String> = redis::cmd("GET")
                    .arg("cmpp:lease:{default}:0")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                match holder {
                    Some(h) if h.starts_with("a/") => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let _b = Instance::spawn(
        &dir.0,
        "b",
        &config(&sim, &redis, "b", json!({"max_connections": 1})),
    );
    streams::fill(&mut conn, "handover", MESSAGES).await;
    streams::wait_all_delivered(&mut conn, "handover", MESSAGES, Duration::from_secs(90)).await;
    assert_eq!(sim.counters().submits_received, MESSAGES as u64);
}
