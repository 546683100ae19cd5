//! Everything a benchmark (or a test) needs around the gateway: its own redis-server, the
//! in-process simulator, a config pointing at both, and the gateway running in this process.

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::redis_server::RedisServer;
use crate::config::GatewayConfig;
use crate::simulator::{self, SimulatorConfig, SimulatorHandle};

pub struct Rig {
    pub redis: RedisServer,
    pub sim: SimulatorHandle,
}

impl Rig {
    /// A fresh redis-server (on a Unix socket) and a simulator with `sim` as its config.
    pub async fn start(sim: SimulatorConfig) -> Result<Rig, String> {
        let redis = RedisServer::try_start()?;
        let sim = simulator::start(sim)
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        Ok(Rig { redis, sim })
    }

    /// A gateway config for the simulator's default account and this Redis, HTTP on a free
    /// loopback port; `extra` keys are merged over it.
    pub fn config(&self, extra: serde_json::Value) -> Result<GatewayConfig, String> {
        let mut json = serde_json::json!({
            "user": "900001", "password": "888888", "sms_accessno": "1064899104221", "service_id": "JSASXW",
            "http_host": "127.0.0.1", "http_port": 0,
            "cmpp_host": "127.0.0.1", "cmpp_port": self.sim.addr().port(),
            "redis_url": self.redis.url(),
        });
        if let (Some(base), serde_json::Value::Object(more)) = (json.as_object_mut(), extra) {
            base.extend(more);
        }
        GatewayConfig::from_str_with_env("rig-config.json", &json.to_string(), &|_| None)
            .map_err(|e| e.to_string())
    }

    /// A plain connection for filling or inspecting streams.
    pub async fn redis_conn(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        redis::Client::open(self.redis.url())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())
    }
}

/// The gateway running in this process.
pub struct RunningGateway {
    pub http: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl RunningGateway {
    /// Starts it and waits until everything runs (Redis answered, HTTP serving).
    pub async fn start(config: GatewayConfig) -> Result<RunningGateway, String> {
        let (tx, rx) = oneshot::channel();
        let progress = crate::gateway::Progress {
            running: Some(tx),
            ..Default::default()
        };
        RunningGateway::start_until(config, progress, rx).await
    }

    /// Starts it and returns as soon as the HTTP port is bound, before Redis need answer.
    pub async fn start_listening(config: GatewayConfig) -> Result<RunningGateway, String> {
        let (tx, rx) = oneshot::channel();
        let progress = crate::gateway::Progress {
            listening: Some(tx),
            ..Default::default()
        };
        RunningGateway::start_until(config, progress, rx).await
    }

    async fn start_until(
        config: GatewayConfig,
        progress: crate::gateway::Progress,
        reached: oneshot::Receiver<SocketAddr>,
    ) -> Result<RunningGateway, String> {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(crate::gateway::run(config, shutdown.clone(), progress));
        match reached.await {
            Ok(http) => Ok(RunningGateway {
                http,
                shutdown,
                task,
            }),
            Err(_) => Err(match task.await {
                Ok(Err(e)) => e,
                _ => "the gateway stopped before listening".to_owned(),
            }),
        }
    }

    /// The value of one series of its `/metrics` (`name{labels}` as exposed), if present.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.http)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        stream
            .read_to_string(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()))
    }

    /// Graceful stop; returns how the gateway ended.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        self.task.await.map_err(|e| format!("gateway task: {e}"))?
    }
}
