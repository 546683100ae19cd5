//! One link under load against the simulator over real TCP: 100 000 submits with none lost, and
//! a flow-control storm (Result 8 above 2 000 submits/s) that ends with every message accepted.

use std::collections::HashSet;

use crate::common::gateway;
use crate::common::link::{config, spawn_up, submit};
use cmpp_gateway::simulator::{self, Behaviour, SimulatorConfig};

#[tokio::test]
async fn a_flow_control_storm_ends_with_every_message_accepted() {
    let sim = gateway::simulator(Behaviour {
        flow_control_above_rate: 2_000,
        ..Behaviour::default()
    })
    .await;
    let link = spawn_up(config(&sim)).await;
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let l = link.link().clone();
            tokio::spawn(async move {
                let mut most = 0;
                for i in 0..150 {
                    let a = l
                        .submit(submit(t * 1000 + i))
                        .await
                        .expect("accepted in the end");
                    most = most.max(a.flow_control_retries);
                }
                most
            })
        })
        .collect();
    let mut most = 0;
    for t in tasks {
        most = most.max(t.await.unwrap());
    }
    let c = sim.counters();
    assert_eq!(c.submits_accepted, 32 * 150, "{c:?}");
    assert!(c.flow_control_sent > 0, "the storm never happened: {c:?}");
    assert!(most <= 30, "a segment needed {most} resubmissions");
    assert_eq!(
        link.link().stats().snapshot().flow_control,
        c.flow_control_sent
    );
    link.close().await;
}

#[tokio::test]
async fn one_hundred_thousand_submits_through_one_link_none_lost() {
    let sim = simulator::start(SimulatorConfig::default()).await.unwrap();
    let link = spawn_up(config(&sim)).await;
    const TASKS: u32 = 32;
    const EACH: u32 = 100_000 / TASKS;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let l = link.link().clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH as usize);
                for i in 0..EACH {
                    ids.push(
                        l.submit(submit(t * EACH + i))
                            .await
                            .expect("accepted")
                            .msg_id,
                    );
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let total = (TASKS * EACH) as usize;
    assert_eq!(ids.len(), total, "distinct Msg_Ids for {total} submits");
    let c = sim.counters();
    assert_eq!(c.submits_received, total as u64, "{c:?}");
    assert_eq!(c.submits_accepted, total as u64);
    assert_eq!(link.link().stats().snapshot().submits_ok, total as u64);
    link.close().await;
}
