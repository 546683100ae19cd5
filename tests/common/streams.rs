//! Stream and state checks shared by the end-to-end proofs.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use super::keys;

/// A stream entry as XRANGE returns it: id and fields in stream order.
pub type Entry = (String, Vec<(String, String)>);

/// The value of one field of an entry.
pub fn field<'a>(entry: &'a Entry, name: &str) -> Option<&'a str> {
    entry
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every entry of `stream`, oldest first.
pub async fn entries(conn: &mut MultiplexedConnection, stream: &str) -> Vec<Entry> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE")
}

/// XADDs `count` one-segment messages with ids `{prefix}-{i}`, pipelined.
pub async fn fill(conn: &mut MultiplexedConnection, prefix: &str, count: usize) {
    for start in (0..count).step_by(1_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1_000).min(count) {
            pipe.cmd("XADD")
                .arg("cmpp:mt")
                .arg("*")
                .arg(
                    &[
                        "id",
                        &format!("{prefix}-{i}"),
                        "to",
                        "13800138000",
                        "text",
                        &format!("{prefix} {i}"),
                    ][..],
                )
                .ignore();
        }
        let () = pipe.query_async(conn).await.expect("XADD batch");
    }
}

/// Waits until every message `{prefix}-{i}` is `delivered`; the failure message counts states.
pub async fn wait_all_delivered(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    count: usize,
    limit: Duration,
) {
    let until = Instant::now() + limit;
    loop {
        let mut pipe = redis::pipe();
        for i in 0..count {
            pipe.cmd("HGET")
                .arg(keys().state(&format!("{prefix}-{i}")))
                .arg("status");
        }
        let statuses: Vec<Option<String>> = pipe.query_async(conn).await.expect("HGET batch");
        let mut by_status: HashMap<String, usize> = HashMap::new();
        for s in statuses {
            *by_status
                .entry(s.unwrap_or_else(|| "none".into()))
                .or_default() += 1;
        }
        if by_status.get("delivered") == Some(&count) {
            return;
        }
        assert!(
            Instant::now() < until,
            "after {limit:?}: {by_status:?} of {count} messages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Entries the consumer group read and never acknowledged.
pub async fn pending(conn: &mut MultiplexedConnection) -> i64 {
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg("cmpp:mt")
        .arg("gateway")
        .query_async(conn)
        .await
        .expect("XPENDING");
    match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    }
}

/// The ids of the entries the group `gateway` has read and not acknowledged, oldest first (none
/// before a worker created the group).
pub async fn pending_ids(conn: &mut MultiplexedConnection) -> Vec<String> {
    let rows: Result<Vec<(String, String, u64, u64)>, redis::RedisError> = redis::cmd("XPENDING")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(conn)
        .await;
    match rows {
        Ok(rows) => rows.into_iter().map(|(id, ..)| id).collect(),
        Err(e) if e.code() == Some("NOGROUP") => Vec::new(),
        Err(e) => panic!("XPENDING range: {e}"),
    }
}

/// One message's state hash (empty when it has none).
pub async fn state(conn: &mut MultiplexedConnection, id: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(keys().state(id))
        .query_async(conn)
        .await
        .expect("HGETALL")
}

/// Creates the group `gateway` on `cmpp:mt` (and the stream), reading from `start` (`0`, `$`).
pub async fn create_group(conn: &mut MultiplexedConnection, start: &str) {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("cmpp:mt")
        .arg("gateway")
        .arg(start)
        .arg("MKSTREAM")
        .query_async(conn)
        .await
        .expect("XGROUP CREATE");
}

/// Reads up to `count` new entries of `cmpp:mt` as `consumer` of the group `gateway`, and
/// returns their ids: they are then pending for that consumer.
pub async fn read_as(
    conn: &mut MultiplexedConnection,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gateway")
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg("cmpp:mt")
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|e| e.id)
        .collect()
}

/// Waits until the dead-letter stream has at least `count` entries, and returns them.
pub async fn wait_dead_letters(conn: &mut MultiplexedConnection, count: usize) -> Vec<Entry> {
    super::wait::until("dead letters", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let dead = entries(&mut conn, &keys().dead_letters()).await;
            if dead.len() >= count {
                Ok(dead)
            } else {
                Err(format!("{dead:?}"))
            }
        }
    })
    .await
}

/// Waits until the group `gateway` has nothing pending.
pub async fn wait_nothing_pending(conn: &mut MultiplexedConnection) {
    super::wait::until("nothing pending", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let ids = pending_ids(&mut conn).await;
            if ids.is_empty() {
                Ok(())
            } else {
                Err(format!("pending {ids:?}"))
            }
        }
    })
    .await
}
