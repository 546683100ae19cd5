//! The gateway binary's log, at debug level and in both formats, while it logs in (with a right
//! and a wrong password), sends, receives reports and MO, answers good and bad API keys and
//! rides out a Redis pause: it holds the lines an operator needs, and never the CMPP password,
//! an API key or the Redis password.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::http_client::request_with_headers;
use crate::common::redis::{RedisServer, connect};
use cmpp_gateway::simulator::{self, Account, MoRequest, SimulatorConfig, SimulatorHandle};
use serde_json::{Value, json};
use tokio::time::Instant;

const CMPP_PASSWORD: &str = "Cmpp-Pw-7f3a91";
const WRONG_PASSWORD: &str = "Wrong-Pw-52be07";
const API_KEY: &str = "Api-Key-c4d2e8";
const OTHER_KEY: &str = "Not-A-Key-913ab4";
const REDIS_PASSWORD: &str = "Redis-Pw-0e6b5d";

struct Gateway {
    child: Child,
    log: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn spawn(dir: &Path, name: &str, config: Value, json_logs: bool) -> Gateway {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_cmpp-gateway"));
        command.arg("run").arg("--config").arg(&path);
        if json_logs {
            command.arg("--log-json");
        }
        let child = command
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the gateway binary starts");
        Gateway { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Shuts the gateway down (SIGTERM, as an operator would) and returns its whole log: once it
    /// has exited nothing more can be written, shutdown lines included.
    async fn finish(mut self) -> String {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let until = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < until,
                "no exit within 20 s of SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.log()
    }

    /// The HTTP address, from the "http listening" line.
    async fn http_addr(&self) -> std::net::SocketAddr {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter(|l| l.contains("http listening"))
                .find_map(|l| {
                    l.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                        .find_map(|word| {
                            word.trim_start_matches("addr=")
                                .parse::<std::net::SocketAddr>()
                                .ok()
                        })
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < until, "no http address in the log:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(sim: &SimulatorHandle, redis: &RedisServer, password: &str) -> Value {
    json!({
        "user": "900001", "password": password, "sms_accessno": "1064899104221",
        "service_id": "JSASXW", "http_host": "127.0.0.1", "http_port": 0,
        "cmpp_host": "127.0.0.1", "cmpp_port": sim.addr().port(),
        "redis_url": format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", redis.port()),
        "api_keys": [API_KEY], "debug": true,
        "reconnect_min": "50ms", "reconnect_max": "300ms", "worker_block": "200ms",
        "redis_timeout": "500ms",
    })
}

/// One request with an optional bearer key; the status code.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, key: Option<&str>) -> u16 {
    let body = if method == "POST" {
        json!({"to": "13800138000", "text": "secret test 短信"}).to_string()
    } else {
        String::new()
    };
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    request_with_headers(addr, method, path, &headers, &body)
        .await
        .status
}

fn assert_no_secrets(name: &str, log: &str) {
    for secret in [
        CMPP_PASSWORD,
        WRONG_PASSWORD,
        API_KEY,
        OTHER_KEY,
        REDIS_PASSWORD,
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("the {name} log holds a secret ({secret}) in:\n{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_what_operators_need_and_never_a_secret() {
    // TCP: the password travels in the `redis://:password@host:port` form operators use.
    let redis = RedisServer::start_tcp();
    let mut conn = connect(&redis).await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(REDIS_PASSWORD)
        .query_async(&mut conn)
        .await
        .unwrap();
    let sim = simulator::start(SimulatorConfig {
        accounts: vec![Account {
            sp_id: "900001".into(),
            secret: CMPP_PASSWORD.into(),
            version: Default::default(),
        }],
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let dir = std::env::temp_dir().join(format!("cmpp-gateway-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // The human format, with the right password: traffic of every kind.
    let gw = Gateway::spawn(&dir, "human", config(&sim, &redis, CMPP_PASSWORD), false);
    let http = gw.http_addr().await;
    let until = Instant::now() + Duration::from_secs(30);
    while call(http, "POST", "/v1/messages", Some(API_KEY)).await != 202 {
        assert!(Instant::now() < until, "never accepted:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        call(http, "POST", "/v1/messages", Some(OTHER_KEY)).await,
        401
    );
    assert_eq!(call(http, "GET", "/v1/link", None).await, 401);
    assert_eq!(call(http, "GET", "/metrics", Some(API_KEY)).await, 200);
    let compat = format!("/submit?dest=13800138000&cont=hello&key={API_KEY}");
    call(http, "GET", &compat, Some(API_KEY)).await;
    sim.send_mo(MoRequest {
        from: "13900139000".into(),
        to: "1064899104221".into(),
        text: "上行".into(),
        ..MoRequest::default()
    })
    .unwrap();
    // A Redis pause: errors and reconnects get logged.
    redis.pause();
    call(http, "POST", "/v1/messages", Some(API_KEY)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.resume();
    let until = Instant::now() + Duration::from_secs(30);
    while call(http, "POST", "/v1/messages", Some(API_KEY)).await != 202 {
        assert!(Instant::now() < until, "no recovery:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let human = gw.finish().await;

    // What an operator needs is there (so the search below looked at a real log).
    for needle in [
        "link state",
        "state=up",
        "request_id=",
        "status=401",
        "redis",
        "DEBUG",
    ] {
        assert!(human.contains(needle), "the log lacks {needle:?}:\n{human}");
    }
    assert_no_secrets("human", &human);

    // JSON lines, with a wrong password: a refused login, retried.
    let gw = Gateway::spawn(&dir, "json", config(&sim, &redis, WRONG_PASSWORD), true);
    gw.http_addr().await;
    let until = Instant::now() + Duration::from_secs(20);
    while gw.log().matches("link state").count() < 4 {
        assert!(Instant::now() < until, "no login retries:\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let json_log = gw.finish().await;
    for line in json_log.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    assert!(
        // ConnectError::Refused for the wrong password (Status 3), not merely any "auth…".
        json_log.contains("refused the login with Status 3"),
        "the refused login is not explained:\n{json_log}"
    );
    assert_no_secrets("json", &json_log);
    let _ = std::fs::remove_dir_all(&dir);
}
