//! Consumers of stopped processes (one per start: host-pid) are deleted from the group once they
//! have nothing pending and have been idle for `consumer_delete_idle`: at start-up and on a
//! schedule. One with entries pending is never deleted (that would drop the entries' claim).

use std::time::Duration;

use crate::common::gateway;
use crate::common::redis::connect;
use crate::common::streams::{create_group, read_as};
use crate::common::wait::until;
use cmpp_gateway::simulator::Behaviour;
use redis::aio::MultiplexedConnection;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// Name and pending count of every consumer of the group.
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
                redis::from_redis_value_ref(&r["pending"]).unwrap(),
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

async fn wait_gone(conn: &mut MultiplexedConnection, name: &str) -> Vec<(String, u64)> {
    until(&format!("consumer {name} deleted"), LIMIT, || {
        let mut conn = conn.clone();
        async move {
            let all = consumers(&mut conn).await;
            if all.iter().any(|(n, _)| n == name) {
                Err(format!("{all:?}"))
            } else {
                Ok(all)
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_with_nothing_pending_are_deleted_and_others_kept() {
    let redis = crate::common::redis::RedisServer::start();
    let mut conn = connect(&redis).await;
    create_group(&mut conn, "$").await;
    create_consumer(&mut conn, "gone-empty").await;
    // A consumer that died holding an entry: the claim must survive until it is reclaimed.
    let _: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["to", "13800138000", "text", "held"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read_as(&mut conn, "gone-holding", 1).await.len(), 1);

    let sim = gateway::simulator(Behaviour::default()).await;
    let gw = gateway::start(gateway::config(
        &sim,
        &redis.url(),
        json!({"registered_delivery": false, "consumer_name": "live", "consumer_delete_idle": "1s"}),
    ))
    .await;
    // At start-up (or the first scheduled pass, once it is idle long enough).
    wait_gone(&mut conn, "gone-empty").await;

    // This process's own consumer exists once it has read something, and then idles.
    let _: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(&["to", "13800138000", "text", "sent"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    until(
        "the gateway's own consumer read and acknowledged",
        LIMIT,
        || {
            let mut conn = conn.clone();
            async move {
                let all = consumers(&mut conn).await;
                // Each lease gives the worker a consumer named `live/{slot}/{token}`.
                if all.iter().any(|(n, p)| n.starts_with("live/") && *p == 0) {
                    Ok(())
                } else {
                    Err(format!("{all:?}"))
                }
            }
        },
    )
    .await;
    // A consumer that appears later goes on a later pass (by which time the gateway's own is
    // idle as long); the holder never does.
    create_consumer(&mut conn, "gone-later").await;
    let left = wait_gone(&mut conn, "gone-later").await;
    assert!(
        left.contains(&("gone-holding".to_owned(), 1)),
        "the consumer holding an entry is kept: {left:?}"
    );
    assert!(
        left.iter().any(|(n, _)| n.starts_with("live/")),
        "this process's own consumer is kept: {left:?}"
    );
    gw.stop().await;
}
