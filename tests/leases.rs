//! The store primitives that let several instances share one account's connections: slot
//! leases with fencing tokens, renewing only the entries a consumer still owns, taking over the
//! entries of consumers whose lease is gone, and deleting consumers that hold no lease. Against a
//! real redis-server; consumers are set up with plain commands where a test needs a stranger.

use std::collections::HashSet;
use std::time::Duration;

use cmpp_gateway::config::GatewayConfig;
use cmpp_gateway::store::{Consumer, Lease, Store, parse_holder};
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::common::redis::{RedisServer, connect};
use crate::common::streams::{create_group, read_as};
use crate::common::wait::until;

const LIMIT: Duration = Duration::from_secs(10);
const CHANNEL: &str = "sp-a";
const LONG: Duration = Duration::from_secs(60);

fn config(redis: &RedisServer, consumer: &str) -> GatewayConfig {
    GatewayConfig::from_str_with_env(
        "leases.json",
        &json!({
            "user": "900001", "password": "x", "sms_accessno": "10690",
            "cmpp_host": "127.0.0.1", "cmpp_port": 7890,
            "redis_url": redis.url(), "consumer_name": consumer,
        })
        .to_string(),
        &|_| None,
    )
    .expect("valid test config")
}

async fn store(redis: &RedisServer) -> Store {
    let config = config(redis, "unused");
    Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects")
}

/// A consumer of the group `gateway` on `cmpp:mt` named `name` (the group must exist).
async fn consumer(redis: &RedisServer, name: &str) -> Consumer {
    let config = config(redis, name);
    let store = Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects");
    Consumer::new(
        &store,
        &config.redis,
        config.worker.clone(),
        config.default_channel().stream.clone(),
    )
    .await
    .expect("consumer connects")
}

async fn xadd(conn: &mut MultiplexedConnection, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg("cmpp:mt")
            .arg("*")
            .arg(&["to", "13800138000", "text", &format!("m{i}")][..])
            .query_async(conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Every pending entry of the group: id → (owner, idle ms, deliveries).
async fn pending(
    conn: &mut MultiplexedConnection,
) -> std::collections::HashMap<String, (String, u64, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg("-")
        .arg("+")
        .arg(1000)
        .query_async(conn)
        .await
        .expect("XPENDING");
    rows.into_iter()
        .map(|(id, owner, idle, deliveries)| (id, (owner, idle, deliveries)))
        .collect()
}

/// Waits until each of `ids` has been pending (untouched) for at least `idle`.
async fn wait_idle(conn: &mut MultiplexedConnection, ids: &[String], idle: Duration) {
    let at_least = idle.as_millis() as u64;
    until(&format!("entries idle {idle:?}"), LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let all = pending(&mut conn).await;
            if ids
                .iter()
                .all(|id| all.get(id).is_some_and(|p| p.1 >= at_least))
            {
                Ok(())
            } else {
                Err(format!("{all:?}"))
            }
        }
    })
    .await
}

fn owner(all: &std::collections::HashMap<String, (String, u64, u64)>, id: &str) -> String {
    all.get(id)
        .map(|p| p.0.clone())
        .unwrap_or_else(|| "none".into())
}

// ------------------------------------------------------------------------------- leases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_go_lowest_first_and_none_is_left_for_one_more() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let mut conn = connect(&redis).await;
    let mut held = Vec::new();
    for expected in 0..3 {
        let lease = store
            .lease_acquire(CHANNEL, 3, "gw-1", LONG)
            .await
            .unwrap()
            .expect("a slot is free");
        assert_eq!(lease.slot, expected);
        assert_eq!(lease.channel, CHANNEL);
        assert_eq!(lease.holder, format!("gw-1/{}/{}", lease.slot, lease.token));
        assert_eq!(
            parse_holder(&lease.holder),
            Some(("gw-1", lease.slot, lease.token))
        );
        held.push(lease);
    }
    assert_eq!(
        store.lease_acquire(CHANNEL, 3, "gw-2", LONG).await.unwrap(),
        None,
        "with 3 slots the 4th acquire gets none"
    );
    // Another channel's slots are its own.
    assert!(
        store
            .lease_acquire("sp-b", 3, "gw-2", LONG)
            .await
            .unwrap()
            .is_some()
    );

    // The keys are the documented ones, the channel a hash tag; the fence never expires.
    let value: Option<String> = redis::cmd("GET")
        .arg("cmpp:lease:{sp-a}:1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some(held[1].holder.as_str()));
    let fence_ttl: i64 = redis::cmd("PTTL")
        .arg("cmpp:lease:{sp-a}:1:fence")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fence_ttl, -1, "the fence has no TTL");

    // A freed slot in the middle is the next one taken.
    assert!(store.lease_release(&held[1]).await.unwrap());
    let holders = store.lease_holders(CHANNEL, 3).await.unwrap();
    assert_eq!(
        holders,
        vec![
            Some(held[0].holder.clone()),
            None,
            Some(held[2].holder.clone())
        ]
    );
    let again = store
        .lease_acquire(CHANNEL, 3, "gw-2", LONG)
        .await
        .unwrap()
        .expect("slot 1 is free again");
    assert_eq!(again.slot, 1);
    assert!(again.token > held[1].token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_acquirers_never_share_a_slot() {
    const SLOTS: u32 = 4;
    let redis = RedisServer::start();
    // Two stores (two instances' connections), twelve acquires at once for four slots.
    let stores = [store(&redis).await, store(&redis).await];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .lease_acquire(CHANNEL, SLOTS, &format!("gw-{i}"), LONG)
                .await
                .unwrap()
        }));
    }
    let mut got: Vec<Lease> = Vec::new();
    for task in tasks {
        got.extend(task.await.unwrap());
    }
    let mut slots: Vec<u32> = got.iter().map(|l| l.slot).collect();
    slots.sort_unstable();
    assert_eq!(slots, vec![0, 1, 2, 3], "each slot once: {got:?}");
    let holders = stores[0].lease_holders(CHANNEL, SLOTS).await.unwrap();
    for lease in &got {
        assert_eq!(
            holders[lease.slot as usize].as_deref(),
            Some(lease.holder.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_only_grow_per_slot() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let mut last = 0;
    let mut names = HashSet::new();
    for _ in 0..5 {
        let lease = store
            .lease_acquire(CHANNEL, 1, "gw", LONG)
            .await
            .unwrap()
            .expect("the slot is free");
        assert!(lease.token > last, "{} after {last}", lease.token);
        assert!(names.insert(lease.holder.clone()), "name reused");
        last = lease.token;
        assert!(store.lease_release(&lease).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_cannot_be_renewed_and_the_next_holder_has_a_higher_token() {
    const SHORT: Duration = Duration::from_millis(200);
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let mut conn = connect(&redis).await;
    let first = store
        .lease_acquire(CHANNEL, 1, "gw-1", SHORT)
        .await
        .unwrap()
        .expect("free");
    // While it is ours a renewal extends it.
    assert!(store.lease_renew(&first, LONG).await.unwrap());
    let pttl: i64 = redis::cmd("PTTL")
        .arg("cmpp:lease:{sp-a}:0")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > SHORT.as_millis() as i64, "renewed to {pttl} ms");
    assert!(store.lease_renew(&first, SHORT).await.unwrap());

    until("the lease expired", LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let exists: u64 = redis::cmd("EXISTS")
                .arg("cmpp:lease:{sp-a}:0")
                .query_async(&mut conn)
                .await
                .unwrap();
            if exists == 0 {
                Ok(())
            } else {
                Err("still there".into())
            }
        }
    })
    .await;
    assert!(!store.lease_renew(&first, LONG).await.unwrap());
    assert_eq!(store.lease_holders(CHANNEL, 1).await.unwrap(), vec![None]);

    let second = store
        .lease_acquire(CHANNEL, 1, "gw-2", LONG)
        .await
        .unwrap()
        .expect("free after expiry");
    assert_eq!(second.slot, 0);
    assert!(second.token > first.token);
    // The old holder can neither renew nor release the new holder's lease.
    assert!(!store.lease_renew(&first, LONG).await.unwrap());
    assert!(!store.lease_release(&first).await.unwrap());
    assert_eq!(
        store.lease_holders(CHANNEL, 1).await.unwrap(),
        vec![Some(second.holder.clone())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_releases() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let lease = store
        .lease_acquire(CHANNEL, 2, "gw-1", LONG)
        .await
        .unwrap()
        .expect("free");
    let stranger = Lease {
        holder: format!("gw-2/{}/{}", lease.slot, lease.token),
        ..lease.clone()
    };
    assert!(!store.lease_release(&stranger).await.unwrap());
    assert!(!store.lease_renew(&stranger, LONG).await.unwrap());
    assert_eq!(
        store.lease_holders(CHANNEL, 2).await.unwrap(),
        vec![Some(lease.holder.clone()), None]
    );
    assert!(store.lease_release(&lease).await.unwrap());
    assert!(!store.lease_release(&lease).await.unwrap(), "already gone");
    assert_eq!(
        store.lease_holders(CHANNEL, 2).await.unwrap(),
        vec![None, None]
    );
}

// --------------------------------------------------------------------------- touch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_renews_only_what_this_consumer_still_owns() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "0").await;
    let ids = xadd(&mut conn, 3).await;
    assert_eq!(read_as(&mut conn, "a", 3).await, ids);
    let a = consumer(&redis, "a").await;
    wait_idle(&mut conn, &ids, Duration::from_millis(100)).await;

    // Instance b reclaimed the first entry (a was too slow to renew); the third is finished.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg("b")
        .arg(0)
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: u64 = redis::cmd("XACK")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg(&ids[2])
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut lost = a.touch(&ids).await.unwrap();
    let all = pending(&mut conn).await;
    assert_eq!(owner(&all, &ids[0]), "b", "not taken back from b: {all:?}");
    assert_eq!(owner(&all, &ids[1]), "a");
    assert!(all[&ids[1]].1 < 100, "a's own entry renewed: {all:?}");
    assert_eq!(all[&ids[1]].2, 1, "renewing is not a delivery: {all:?}");
    assert!(!all.contains_key(&ids[2]), "an acknowledged entry stays so");
    lost.sort();
    assert_eq!(
        lost,
        vec![ids[0].clone()],
        "what another consumer holds now"
    );
    assert!(a.touch(&[]).await.unwrap().is_empty());
}

// ------------------------------------------------------------------------ orphans

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_claimed_once_idle_and_a_live_holders_never() {
    const MIN_IDLE: Duration = Duration::from_millis(1000);
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "0").await;
    let ids = xadd(&mut conn, 5).await;
    let live_name = "gw-1/0/7".to_owned();
    assert_eq!(read_as(&mut conn, &live_name, 1).await, ids[..1]);
    assert_eq!(read_as(&mut conn, "gw-2/1/3", 4).await, ids[1..]);
    // One of the dead holder's entries was deleted from the stream meanwhile.
    let _: u64 = redis::cmd("XDEL")
        .arg("cmpp:mt")
        .arg(&ids[4])
        .query_async(&mut conn)
        .await
        .unwrap();
    let claimer = consumer(&redis, "gw-3/1/4").await;
    let live = vec![live_name.clone()];

    assert!(
        claimer
            .claim_orphans(&live, MIN_IDLE, false, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing idle {MIN_IDLE:?} yet"
    );
    wait_idle(&mut conn, &ids[..4], MIN_IDLE).await;

    let first = claimer
        .claim_orphans(&live, MIN_IDLE, false, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "at most count: {first:?}");
    let rest = claimer
        .claim_orphans(&live, MIN_IDLE, false, 10)
        .await
        .unwrap();
    let claimed: Vec<_> = first.iter().chain(&rest).collect();
    let mut claimed_ids: Vec<&str> = claimed.iter().map(|e| e.stream_id.as_str()).collect();
    claimed_ids.sort_unstable();
    assert_eq!(claimed_ids, [&ids[1], &ids[2], &ids[3]]);
    for entry in &claimed {
        assert_eq!(entry.deliveries, 2, "read once, claimed once: {entry:?}");
        assert!(entry.field("text").is_some(), "parsed with its fields");
    }

    // However idle, the live holder's entry stays; so do the claimer's own.
    assert!(
        claimer
            .claim_orphans(&live, Duration::ZERO, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let all = pending(&mut conn).await;
    assert_eq!(owner(&all, &ids[0]), live_name);
    for id in &ids[1..4] {
        assert_eq!(owner(&all, id), "gw-3/1/4");
    }
    assert_ne!(
        owner(&all, &ids[4]),
        "gw-3/1/4",
        "a deleted entry is not claimed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claimers_never_both_get_an_entry() {
    // Far longer than the race takes: an entry a claimer took is never idle this long here.
    const MIN_IDLE: Duration = Duration::from_secs(60);
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "0").await;
    let ids = xadd(&mut conn, 40).await;
    assert_eq!(read_as(&mut conn, "gone", 40).await.len(), 40);
    // Left an hour ago, as far as the group knows.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg("gone")
        .arg(0)
        .arg(&ids)
        .arg("IDLE")
        .arg(3_600_000)
        .arg("JUSTID")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_idle(&mut conn, &ids, MIN_IDLE).await;

    // None knows the others as live: only the idle time keeps them from taking each other's.
    let names = ["c1", "c2", "c3", "c4"];
    let mut claimers = Vec::new();
    for name in names {
        claimers.push(std::sync::Arc::new(consumer(&redis, name).await));
    }
    let mut tasks = Vec::new();
    for (i, claimer) in claimers.iter().enumerate() {
        let claimer = claimer.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Small batches, so that the claimers interleave.
            for _ in 0..10 {
                let batch = claimer
                    .claim_orphans(&[], MIN_IDLE, false, 5)
                    .await
                    .unwrap();
                got.extend(batch.into_iter().map(|e| (e.stream_id, names[i])));
            }
            got
        }));
    }
    let mut seen = std::collections::HashMap::new();
    for task in tasks {
        for (id, by) in task.await.unwrap() {
            if let Some(other) = seen.insert(id.clone(), by) {
                panic!("{id} claimed twice: by {other}, then by {by}");
            }
        }
    }
    assert_eq!(seen.len(), 40, "every orphan claimed once");
    let all = pending(&mut conn).await;
    for (id, by) in &seen {
        assert_eq!(&owner(&all, id), by);
    }
}

// ------------------------------------------------------------- stale consumers

/// Name and idle ms of every consumer of the group.
async fn consumers(conn: &mut MultiplexedConnection) -> Vec<(String, u64)> {
    let rows: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("cmpp:mt")
        .arg("gateway")
        .query_async(conn)
        .await
        .expect("XINFO CONSUMERS");
    rows.iter()
        .map(|r| {
            (
                redis::from_redis_value_ref(&r["name"]).unwrap(),
                redis::from_redis_value_ref(&r["idle"]).unwrap(),
            )
        })
        .collect()
}

async fn create_consumer(conn: &mut MultiplexedConnection, name: &str) {
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg(name)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unleased_idle_consumers_without_entries_are_deleted() {
    const MIN_IDLE: Duration = Duration::from_millis(200);
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "0").await;
    xadd(&mut conn, 1).await;
    assert_eq!(read_as(&mut conn, "gone-holding/0/1", 1).await.len(), 1);
    for name in ["me", "gone-empty/0/2", "live-empty/1/3"] {
        create_consumer(&mut conn, name).await;
    }
    let me = consumer(&redis, "me").await;
    let live = vec!["live-empty/1/3".to_owned()];

    assert!(
        me.delete_unleased_consumers(&live, Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty(),
        "none idle an hour"
    );
    // XINFO's idle is the time since the consumer last read (or was created).
    until("consumers idle", LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let all = consumers(&mut conn).await;
            if all
                .iter()
                .all(|(_, idle)| *idle >= MIN_IDLE.as_millis() as u64)
            {
                Ok(())
            } else {
                Err(format!("{all:?}"))
            }
        }
    })
    .await;
    let deleted = me.delete_unleased_consumers(&live, MIN_IDLE).await.unwrap();
    assert_eq!(deleted, vec!["gone-empty/0/2".to_owned()]);
    let mut left: Vec<String> = consumers(&mut conn)
        .await
        .into_iter()
        .map(|c| c.0)
        .collect();
    left.sort();
    assert_eq!(left, ["gone-holding/0/1", "live-empty/1/3", "me"]);
}

/// Concatenation references come from one counter per (channel, recipient) in Redis: two
/// instances taking them at once never hand one recipient the same reference twice, and a
/// message that already has one keeps it when it is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_unique_per_recipient_across_instances_and_kept_on_resend() {
    use cmpp_gateway::store::NeedsReference;
    let redis = RedisServer::start();
    let a = consumer(&redis, "a").await;
    let b = consumer(&redis, "b").await;
    let ids: Vec<String> = (0..400).map(|i| format!("ref-{i}")).collect();
    let (from_a, from_b) = tokio::join!(take(&a, &ids[..200]), take(&b, &ids[200..]));
    let all: HashSet<u16> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(all.len(), 400, "400 long messages, 400 references");

    // Sent again (a reclaim): the same reference, whoever sends it.
    let again = b
        .references(
            CHANNEL,
            &[NeedsReference {
                id: &ids[7],
                to: "13800138000",
            }],
        )
        .await
        .unwrap();
    assert_eq!(again, vec![from_a[7]]);
    // Another recipient counts on its own.
    let other = a
        .references(
            CHANNEL,
            &[NeedsReference {
                id: "ref-other",
                to: "13900139000",
            }],
        )
        .await
        .unwrap();
    assert_eq!(other, vec![1]);
}

/// References for `ids` (one recipient), taken 20 at a time as the worker takes a batch.
async fn take(consumer: &Consumer, ids: &[String]) -> Vec<u16> {
    use cmpp_gateway::store::NeedsReference;
    let mut got = Vec::new();
    for chunk in ids.chunks(20) {
        let wanted: Vec<NeedsReference<'_>> = chunk
            .iter()
            .map(|id| NeedsReference {
                id,
                to: "13800138000",
            })
            .collect();
        got.extend(consumer.references(CHANNEL, &wanted).await.unwrap());
    }
    got
}

/// A worker's own entries that it left pending (a refused write, an acknowledgement given up)
/// are taken again once idle as long as an orphan; without `own` they are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_takes_its_own_idle_entries_again_when_asked() {
    const MIN_IDLE: Duration = Duration::from_millis(200);
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "0").await;
    let ids = xadd(&mut conn, 2).await;
    assert_eq!(read_as(&mut conn, "me/0/1", 2).await, ids);
    let me = consumer(&redis, "me/0/1").await;
    wait_idle(&mut conn, &ids, MIN_IDLE).await;
    let live = [];
    assert!(
        me.claim_orphans(&live, MIN_IDLE, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = me.claim_orphans(&live, MIN_IDLE, true, 10).await.unwrap();
    let got: Vec<&str> = again.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    // Taken again, so idle no more.
    assert!(
        me.claim_orphans(&live, MIN_IDLE, true, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
