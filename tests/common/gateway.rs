//! Runs the whole gateway in-process against a real redis-server and the simulator, on
//! loopback ports chosen at random.

use std::net::SocketAddr;
use std::time::Duration;

use super::redis::RedisServer;
use cmpp_gateway::bench::rig;
use cmpp_gateway::config::GatewayConfig;
use cmpp_gateway::simulator::{self, Behaviour, SimulatorConfig, SimulatorHandle};
use cmpp_gateway::store::Store;

pub struct RunningGateway {
    pub http: SocketAddr,
    inner: rig::RunningGateway,
}

impl RunningGateway {
    /// Graceful stop: the worker drains, the link closes with TERMINATE.
    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(30), self.inner.stop())
            .await
            .expect("gateway stops within 30 s")
            .expect("gateway ends without error");
    }
}

/// A config for tests: the simulator's account, the given Redis, HTTP on a free port, short
/// timers. `extra` is merged into the JSON (later keys win).
pub fn config(sim: &SimulatorHandle, redis_url: &str, extra: serde_json::Value) -> GatewayConfig {
    config_for_port(sim.addr().port(), redis_url, extra)
}

/// [`config`] for tests with no simulator (the store or HTTP alone): the ISMG port is never
/// dialled.
pub fn config_for_port(cmpp_port: u16, redis_url: &str, extra: serde_json::Value) -> GatewayConfig {
    let mut json = serde_json::json!({
        "user": "900001",
        "password": "888888",
        "sms_accessno": "1064899104221",
        "service_id": "JSASXW",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "cmpp_host": "127.0.0.1",
        "cmpp_port": cmpp_port,
        "redis_url": redis_url,
        "response_timeout": "2s",
        "reconnect_min": "50ms",
        "reconnect_max": "500ms",
        "worker_block": "200ms",
        "close_timeout": "2s",
    });
    if let (Some(base), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
        base.extend(more);
    }
    GatewayConfig::from_str_with_env("test-config.json", &json.to_string(), &|_| None)
        .expect("test config is valid")
}

/// A store on `redis` with the test config's settings.
pub async fn store(redis: &RedisServer) -> Store {
    let config = config_for_port(7890, &redis.url(), serde_json::json!({}));
    Store::connect(&config.redis, config.store.clone())
        .await
        .expect("store connects")
}

pub async fn start(config: GatewayConfig) -> RunningGateway {
    let inner = tokio::time::timeout(Duration::from_secs(20), rig::RunningGateway::start(config))
        .await
        .expect("gateway listens within 20 s")
        .expect("gateway starts");
    RunningGateway {
        http: inner.http,
        inner,
    }
}

/// [`start`] that returns once the HTTP port is bound, without waiting for Redis.
pub async fn start_listening(config: GatewayConfig) -> RunningGateway {
    let inner = tokio::time::timeout(
        Duration::from_secs(20),
        rig::RunningGateway::start_listening(config),
    )
    .await
    .expect("gateway binds within 20 s")
    .expect("gateway starts");
    RunningGateway {
        http: inner.http,
        inner,
    }
}

/// What most end-to-end tests start with: their own redis-server, a recording simulator with
/// `behaviour`, and the gateway between them with the test config plus `extra`.
pub struct Stack {
    pub redis: RedisServer,
    pub sim: SimulatorHandle,
    pub gw: RunningGateway,
}

pub async fn stack(behaviour: Behaviour, extra: serde_json::Value) -> Stack {
    let redis = RedisServer::start();
    let sim = simulator(behaviour).await;
    let gw = start(config(&sim, &redis.url(), extra)).await;
    Stack { redis, sim, gw }
}

/// A simulator on a free port that records every SUBMIT.
pub async fn simulator(behaviour: Behaviour) -> SimulatorHandle {
    simulator::start(SimulatorConfig {
        behaviour,
        record_submits: true,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}
