//! `rediss://` works: the store talks to a TLS-only redis-server whose certificate is signed by
//! a private CA, trusted through SSL_CERT_FILE as an operator would. Its own test binary, because
//! SSL_CERT_FILE is process-wide.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cmpp_gateway::bench::rig::Rig;
use cmpp_gateway::message::OutboundMessage;
use cmpp_gateway::simulator::SimulatorConfig;
use cmpp_gateway::store::{Enqueued, Store};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (Debian: apt-get install openssl)");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1, made fresh for this run.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=cmpp-gateway test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test]
async fn the_store_works_over_rediss() {
    let dir = std::env::temp_dir().join(format!("cmpp-gateway-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let _server = KillOnDrop(server);
    // SAFETY: set before any TLS connection, in a test binary with this one test.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.join("ca.crt")) };

    // The rig's simulator gives a valid config; its plain Redis is replaced by the TLS one.
    let rig = Rig::start(SimulatorConfig::default()).await.unwrap();
    let url = format!("rediss://127.0.0.1:{port}/0");
    let config = rig.config(serde_json::json!({"redis_url": url})).unwrap();
    assert!(config.redis.redacted_url().starts_with("rediss://"));

    let mut store = None;
    for _ in 0..50 {
        match Store::connect(&config.redis, config.store.clone()).await {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let store = store.expect("connects over TLS");
    store.ping().await.expect("PING over TLS");
    let message = OutboundMessage::text("tls-1", "13800138000", "over TLS");
    assert_eq!(
        store
            .enqueue("cmpp:mt", &[message], Some("tls-1"), true, "{}")
            .await
            .unwrap(),
        Enqueued::Added("{}".into())
    );
    let state = store
        .state("tls-1")
        .await
        .unwrap()
        .expect("state written over TLS");
    assert_eq!(state.summary.to, "13800138000");
    let _ = std::fs::remove_dir_all(&dir);
}
