//! The gateway on a real Redis Cluster (three primaries, one replica each, made with
//! `redis-cli --cluster create`): the whole send and receive path with three channels whose
//! outbound streams live on three different primaries, and a slot that holds live message state
//! (then the report stream's slot) moved to another primary while 20 000 messages flow.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cmpp_gateway::bench::redis_cluster::RedisCluster;
use cmpp_gateway::protocol::Version;
use cmpp_gateway::simulator::{
    self, Account, Behaviour, MoRequest, ReportRequest, SimulatorConfig, SimulatorHandle,
};
use redis::cluster_async::ClusterConnection;
use serde_json::{Value, json};

use crate::common::gateway::{self, RunningGateway};
use crate::common::http_client::{get, post_json};
use crate::common::keys;
use crate::common::wait::until;

const TO: &str = "13800138000";
const FROM: &str = "13900139000";

/// A cluster connection for the test's own reads and writes.
async fn cluster_conn(cluster: &RedisCluster) -> ClusterConnection {
    redis::cluster::ClusterClientBuilder::new(
        cluster
            .seeds()
            .iter()
            .map(|s| format!("redis://{s}/"))
            .collect::<Vec<_>>(),
    )
    .response_timeout(Duration::from_secs(30))
    .build()
    .unwrap()
    .get_async_connection()
    .await
    .expect("test connects to the cluster")
}

/// The gateway's config for the cluster, with `extra` merged in.
fn cluster_config(
    sim: &SimulatorHandle,
    cluster: &RedisCluster,
    extra: Value,
) -> cmpp_gateway::config::GatewayConfig {
    let seeds = cluster.seeds();
    let mut json = json!({"redis_cluster_nodes": seeds});
    if let (Some(base), Value::Object(more)) = (json.as_object_mut(), extra) {
        base.extend(more);
    }
    gateway::config(sim, &format!("redis://{}/0", seeds[0]), json)
}

/// Two more channel names whose outbound streams land on primaries other than the default
/// stream's and each other's.
fn names_on_other_primaries(cluster: &RedisCluster) -> [String; 2] {
    let node_of = |stream: &str| cluster.node_for_slot(RedisCluster::slot_of(stream));
    let mut taken = vec![node_of(&keys().outbound())];
    let mut names = Vec::new();
    for i in 0.. {
        let name = format!("ch{i}");
        let node = node_of(&keys().outbound_stream(&name, false));
        if !taken.contains(&node) {
            taken.push(node);
            names.push(name);
            if names.len() == 2 {
                break;
            }
        }
    }
    [names[0].clone(), names[1].clone()]
}

async fn simulator_for(accounts: Vec<Account>, behaviour: Behaviour) -> SimulatorHandle {
    simulator::start(SimulatorConfig {
        behaviour,
        accounts,
        record_submits: true,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn send(gw: &RunningGateway, body: Value) -> Value {
    let r = post_json(gw.http, "/v1/messages", &body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()
}

async fn wait_status(gw: &RunningGateway, id: &str, status: &str) {
    until(
        &format!("{id} {status}"),
        Duration::from_secs(30),
        || async move {
            let r = get(gw.http, &format!("/v1/messages/{id}")).await;
            let now = r.json()["status"].as_str().unwrap_or_default().to_owned();
            if now == status { Ok(()) } else { Err(now) }
        },
    )
    .await
}

async fn list(gw: &RunningGateway, path: &str) -> Vec<Value> {
    let r = get(gw.http, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()["items"].as_array().cloned().unwrap_or_default()
}

/// Everything a single-node Redis gives, on a Cluster: HTTP sends on three channels whose
/// streams are on three primaries (one a batch to several recipients, one a long message, one
/// replayed by its id), delivered and their reports correlated; a long MO reassembled; a report
/// nobody sent written unmatched; a direct XADD dead-lettered in its channel's slot; and the
/// console's lists and stats reading it all back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_and_receive_paths_work_on_a_cluster_with_channels_on_three_primaries() {
    let cluster = RedisCluster::start(3, 1);
    let [b, c] = names_on_other_primaries(&cluster);
    let accounts = vec![
        Account::new("900001", "888888", Version::V30),
        Account::new("900002", "777777", Version::V30),
        Account::new("900003", "666666", Version::V30),
    ];
    let sim = simulator_for(accounts, Behaviour::default()).await;
    let channels = json!({"report_match_wait": "1s", "mo_reassembly_timeout": "5s", "channels": [
        {"name": "a"},
        {"name": b, "user": "900002", "password": "777777", "sms_accessno": "1064899104222"},
        {"name": c, "user": "900003", "password": "666666", "sms_accessno": "1064899104223"},
    ]});
    let gw = gateway::start(cluster_config(&sim, &cluster, channels)).await;
    let mut conn = cluster_conn(&cluster).await;
    let primaries: HashSet<String> = [
        keys().outbound(),
        keys().outbound_stream(&b, false),
        keys().outbound_stream(&c, false),
    ]
    .iter()
    .map(|s| cluster.node_for_slot(RedisCluster::slot_of(s)))
    .collect();
    assert_eq!(primaries.len(), 3, "three streams on three primaries");

    // A batch on the default channel, a long message on b, a plain one on c.
    let batch = send(
        &gw,
        json!({"to": [TO, "13700137000", "13600136000"], "text": "batch", "id": "order-1"}),
    )
    .await;
    let long_text: String = "集群长短信".chars().cycle().take(150).collect();
    let long = send(&gw, json!({"to": TO, "text": long_text, "channel": b})).await;
    let plain = send(&gw, json!({"to": TO, "text": "on c", "channel": c})).await;
    let mut ids: Vec<String> = Vec::new();
    for answer in [&batch, &long, &plain] {
        for m in answer["messages"].as_array().unwrap() {
            ids.push(m["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids[..3], ["order-1~1", "order-1~2", "order-1~3"]);
    for id in &ids {
        wait_status(&gw, id, "delivered").await;
    }
    // Replayed by its id: the first answer, nothing sent again.
    let replay = post_json(
        gw.http,
        "/v1/messages",
        &json!({"to": [TO, "13700137000", "13600136000"], "text": "batch", "id": "order-1"}),
    )
    .await;
    assert_eq!(replay.status, 202);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let long_parts = sim
        .recorded_submits()
        .iter()
        .filter(|s| s.sp_id == "900002")
        .count();
    assert_eq!(
        long_parts, 3,
        "the long message in three parts on b's account"
    );

    // Reports: one per segment, each carrying its message's id.
    let reports = until("every report written", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        async move {
            let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(keys().reports())
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if rows.len() >= 7 {
                Ok(rows)
            } else {
                Err(format!("{} reports", rows.len()))
            }
        }
    })
    .await;
    let reported: HashSet<&str> = reports
        .iter()
        .filter_map(|(_, f)| f.get("id").map(String::as_str))
        .collect();
    for id in &ids {
        assert!(reported.contains(id.as_str()), "{id} has its report");
    }

    // A long MO in shuffled parts, reassembled once.
    sim.send_mo(MoRequest {
        from: FROM.into(),
        to: "1064899104221".into(),
        text: "上行长短信在集群上重新组装".repeat(8),
        max_part_len: Some(60),
        shuffle: true,
        ..MoRequest::default()
    })
    .unwrap();
    let mo = until("the long MO written", Duration::from_secs(30), || {
        let gw = &gw;
        async move {
            let items = list(gw, &format!("/v1/mo?from={FROM}")).await;
            if items.is_empty() {
                Err("no MO yet".to_owned())
            } else {
                Ok(items)
            }
        }
    })
    .await;
    assert_eq!(mo.len(), 1);
    assert_eq!(
        mo[0]["fields"]["text"],
        "上行长短信在集群上重新组装".repeat(8)
    );
    assert_eq!(mo[0]["fields"]["partial"], "0");

    // A report for a Msg_Id nobody holds: held, then written unmatched.
    sim.send_report(ReportRequest {
        sp_id: None,
        msg_id: 77,
        destination: "13500135000".into(),
        stat: Some("DELIVRD".into()),
        src_id: "1064899104221".into(),
        service_id: String::new(),
    })
    .unwrap();
    let unmatched = until("the unmatched report", Duration::from_secs(30), || {
        let gw = &gw;
        async move {
            let items = list(gw, "/v1/reports?to=13500135000").await;
            if items.is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(items)
            }
        }
    })
    .await;
    assert_eq!(unmatched[0]["fields"]["unmatched"], "1");

    // A direct XADD the worker refuses: dead-lettered in its own channel's slot.
    let _: String = redis::cmd("XADD")
        .arg(keys().outbound_stream(&c, false))
        .arg("*")
        .arg(&[("id", "bad-1"), ("to", "not a number"), ("text", "x")][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let dead = until("the dead letter", Duration::from_secs(30), || {
        let (gw, c) = (&gw, &c);
        async move {
            let items = list(gw, &format!("/v1/dead?channel={c}")).await;
            if items.is_empty() {
                Err("none yet".to_owned())
            } else {
                Ok(items)
            }
        }
    })
    .await;
    assert_eq!(dead[0]["fields"]["message_id"], "bad-1");
    wait_status(&gw, "bad-1", "dead").await;

    // The console's lists: by recipient, newest first, and the stats card.
    let by_to = list(&gw, &format!("/v1/messages?to={TO}")).await;
    let listed: HashSet<&str> = by_to.iter().filter_map(|m| m["id"].as_str()).collect();
    for id in [&ids[0], &ids[3], &ids[4]] {
        assert!(listed.contains(id.as_str()), "{id} listed under {TO}");
    }
    assert!(list(&gw, &format!("/v1/reports?to={TO}")).await.len() >= 5);
    let stats = get(gw.http, "/v1/stats").await.json();
    assert_eq!(stats["dead_letters"], 1);
    assert!(
        stats["last_hour"]["delivered"].as_u64().unwrap() >= 5,
        "{stats}"
    );
    gw.stop().await;
}

/// 20 000 direct XADDs whose ids share one request id (so their states share one slot) flow
/// through the gateway while that slot, then the report stream's slot, moves to another
/// primary (`CLUSTER SETSLOT … MIGRATING/IMPORTING` and `MIGRATE`, batch by batch): every
/// message is delivered once, every report correlated, nothing left pending or dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_while_their_slot_and_the_report_stream_move() {
    const COUNT: usize = 20_000;
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,cmpp_gateway=info,redis=debug")
        .try_init();
    let cluster = RedisCluster::start(3, 0);
    let sim = simulator_for(
        vec![Account::new("900001", "888888", Version::V30)],
        Behaviour::default(),
    )
    .await;
    // A Redis stall while the slot moves must not leave entries to the orphan time.
    let gw = gateway::start(cluster_config(
        &sim,
        &cluster,
        json!({"window": 64, "reclaim_idle": "5s"}),
    ))
    .await;
    let conn = cluster_conn(&cluster).await;

    let state_slot = RedisCluster::slot_of(&keys().state("moving~1"));
    let report_slot = RedisCluster::slot_of(&keys().reports());
    let elsewhere = |slot: u16| {
        let owner = cluster.node_for_slot(slot);
        cluster
            .primaries()
            .into_iter()
            .find(|p| *p != owner)
            .unwrap()
    };
    let feeder = {
        let mut conn = conn.clone();
        tokio::spawn(async move {
            for chunk in (1..=COUNT).collect::<Vec<_>>().chunks(500) {
                let mut pipe = redis::pipe();
                for n in chunk {
                    pipe.cmd("XADD")
                        .arg(keys().outbound())
                        .arg("*")
                        .arg(
                            &[
                                ("id", format!("moving~{n}")),
                                ("to", TO.to_owned()),
                                ("text", format!("m{n}")),
                            ][..],
                        )
                        .ignore();
                }
                let () = pipe.query_async(&mut conn).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Both moves while messages are being sent and reported.
    until("messages flowing", Duration::from_secs(30), || {
        let submitted = sim.counters().submits_accepted;
        async move {
            if submitted >= 2_000 {
                Ok(())
            } else {
                Err(format!("{submitted}"))
            }
        }
    })
    .await;
    let target = elsewhere(state_slot);
    // The harness is blocking: the gateway runs on the other worker meanwhile.
    let keys_moved = tokio::task::block_in_place(|| {
        cluster.migrate_slot_slowly(state_slot, &target, Duration::from_millis(5))
    })
    .expect("the state slot moves");
    assert!(keys_moved > 100, "live states moved: {keys_moved}");
    assert_eq!(cluster.node_for_slot(state_slot), target);
    let target = elsewhere(report_slot);
    tokio::task::block_in_place(|| {
        cluster.migrate_slot_slowly(report_slot, &target, Duration::from_millis(5))
    })
    .expect("the report stream's slot moves");
    feeder.await.unwrap();

    // Every message delivered, once (read through a connection of its own: the test's own
    // client, the crate's, may have stopped answering while the slot moved).
    let mut conn = cluster_conn(&cluster).await;
    until("every message delivered", Duration::from_secs(120), || {
        let mut conn = conn.clone();
        async move {
            let mut pipe = redis::pipe();
            for n in 1..=COUNT {
                pipe.cmd("HGET")
                    .arg(keys().state(&format!("moving~{n}")))
                    .arg("status");
            }
            let statuses: Vec<Option<String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let done = statuses
                .iter()
                .filter(|s| s.as_deref() == Some("delivered"))
                .count();
            if done == COUNT {
                Ok(())
            } else {
                Err(format!("{done} of {COUNT} delivered"))
            }
        }
    })
    .await;
    let submits = sim.recorded_submits();
    let texts: HashSet<Vec<u8>> = submits.iter().map(|s| s.msg_content.clone()).collect();
    assert_eq!(submits.len(), COUNT, "each message submitted once");
    assert_eq!(texts.len(), COUNT);
    let reports: u64 = redis::cmd("XLEN")
        .arg(keys().reports())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(reports as usize, COUNT, "one report each");
    let rows: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(keys().reports())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let correlated: HashSet<&str> = rows
        .iter()
        .filter_map(|(_, f)| f.get("id").map(String::as_str))
        .collect();
    assert_eq!(correlated.len(), COUNT, "every report correlated");
    let dead: u64 = redis::cmd("XLEN")
        .arg(keys().dead_letters())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    let (pending, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(keys().outbound())
        .arg("gateway")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending, 0, "nothing stuck");
    gw.stop().await;
}
