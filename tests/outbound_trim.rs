//! The outbound stream keeps only the work not yet done: entries every consumer group has
//! acknowledged are trimmed, pending and unread ones never are, and an application's group that
//! has read nothing holds everything.

use crate::common::gateway::store;
use crate::common::redis::{RedisServer, connect};
use crate::common::streams;

const GROUP: &str = "gateway";

async fn ids(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let entries = streams::entries(conn, "cmpp:mt").await;
    entries.into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn only_entries_every_group_acknowledged_are_trimmed() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    let store = store(&redis).await;
    assert_eq!(
        store.trim_outbound("cmpp:mt").await.unwrap(),
        0,
        "no stream yet"
    );

    streams::create_group(&mut conn, "0").await;
    // Blocks of 100 entries (set before the entries go in) and explicit ids, so the blocks
    // Redis trims whole are known.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    for n in 1..=300 {
        pipe.cmd("XADD")
            .arg("cmpp:mt")
            .arg(format!("{n}-0"))
            .arg("to")
            .arg("13800138000")
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    // 250 read, the first 200 acknowledged: 201–250 pending, 251–300 unread.
    assert_eq!(streams::read_as(&mut conn, "c1", 250).await.len(), 250);
    let acked: Vec<String> = (1..=200).map(|n| format!("{n}-0")).collect();
    let n: u64 = redis::cmd("XACK")
        .arg("cmpp:mt")
        .arg(GROUP)
        .arg(&acked)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 200);

    // An application's own group that has read nothing yet holds every entry.
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("cmpp:mt")
        .arg("audit")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.trim_outbound("cmpp:mt").await.unwrap(), 0);
    assert_eq!(ids(&mut conn).await.len(), 300);
    let () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg("cmpp:mt")
        .arg("audit")
        .query_async(&mut conn)
        .await
        .unwrap();

    let deleted = store.trim_outbound("cmpp:mt").await.unwrap();
    let left = ids(&mut conn).await;
    let expected: Vec<String> = (201..=300).map(|n| format!("{n}-0")).collect();
    assert_eq!(
        (deleted, left),
        (200, expected),
        "the 200 acknowledged entries go, the 50 pending and 50 unread stay"
    );
}

/// Redis's `XTRIM MINID ~` removes at most 100 stream nodes per call unless told otherwise: at
/// thousands of messages per second one call per trimmer period fell behind for good. One call
/// of the trimmer brings 30 000 acknowledged entries down to the unacknowledged ones.
#[tokio::test]
async fn one_trim_removes_every_acknowledged_entry_however_many() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis).await;
    let store = store(&redis).await;
    // Nodes of 10 entries keep Redis's default per-call limit (100 nodes) at 1 000 entries.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(10)
        .query_async(&mut conn)
        .await
        .unwrap();
    streams::create_group(&mut conn, "0").await;
    streams::fill(&mut conn, "bulk", 30_100).await;
    let read = streams::read_as(&mut conn, "c1", 30_050).await;
    // The first 30 000 acknowledged; 50 pending, 50 unread.
    for chunk in read[..30_000].chunks(5_000) {
        let _: u64 = redis::cmd("XACK")
            .arg("cmpp:mt")
            .arg(GROUP)
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let deleted = store.trim_outbound("cmpp:mt").await.unwrap();
    let left = ids(&mut conn).await;
    assert!(
        (100..=110).contains(&left.len()),
        "one call leaves the 100 unacknowledged entries (and at most a node's worth before \
         them), not {} (deleted {deleted})",
        left.len()
    );
    assert_eq!(
        left[left.len() - 100],
        read[30_000],
        "none of the pending gone"
    );
}
