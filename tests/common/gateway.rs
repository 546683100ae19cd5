//! Runs the whole gateway in-process against a real redis-server and the simulator, on
//! loopback ports chosen at random.

use std::net::SocketAddr;
use std::time::Duration;

use cmpp_gateway::config::GatewayConfig;
use cmpp_gateway::simulator::SimulatorHandle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct RunningGateway {
    pub http: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl RunningGateway {
    /// Graceful stop: the worker drains, the link closes with TERMINATE.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("gateway stops within 30 s")
            .expect("gateway task does not panic")
            .expect("gateway ends without error");
    }
}

/// A config for tests: the simulator's account, the given Redis, HTTP on a free port, short
/// timers. `extra` is merged into the JSON (later keys win).
pub fn config(sim: &SimulatorHandle, redis_url: &str, extra: serde_json::Value) -> GatewayConfig {
    let mut json = serde_json::json!({
        "user": "900001",
        "password": "888888",
        "sms_accessno": "1064899104221",
        "service_id": "JSASXW",
        "http_host": "127.0.0.1",
        "http_port": 0,
        "cmpp_host": "127.0.0.1",
        "cmpp_port": sim.addr().port(),
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

pub async fn start(config: GatewayConfig) -> RunningGateway {
    let shutdown = CancellationToken::new();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(cmpp_gateway::gateway::run(
        config,
        shutdown.clone(),
        Some(tx),
    ));
    let http = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("gateway listens within 20 s")
        .expect("gateway reports its address");
    RunningGateway {
        http,
        shutdown,
        task,
    }
}
