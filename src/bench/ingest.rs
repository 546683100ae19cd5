//! `bench ingest`: HTTP requests per second into the outbound stream, measured with `wrk` on
//! loopback, in two set-ups on the same machine: an ingress-only gateway (HTTP to Redis, what
//! the ingest target is about), and the whole gateway, whose worker drains the same stream to
//! the simulator at the same time and so shares the two cores with the HTTP path.

use std::process::Command;

use super::rig::{Rig, RunningGateway};
use super::stream_watch::{StreamLengths, StreamWatch};
use crate::simulator::SimulatorConfig;

const POST_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"to":"13800138000","text":"benchmark message"}'
"#;

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestRun {
    /// `ingress-only` or `with-drain`.
    pub setup: &'static str,
    pub connections: usize,
    pub seconds: u64,
    pub requests_per_second: f64,
    pub p50: String,
    pub p99: String,
    pub non_2xx: u64,
    pub socket_errors: String,
    /// The outbound stream during the run (with-drain: the trimmer keeps it to the work not
    /// yet done; ingress-only: nothing reads or trims it).
    pub stream: Option<StreamLengths>,
}

pub async fn run(connections: &[usize], seconds: u64) -> Result<Vec<IngestRun>, String> {
    which_wrk()?;
    let script = std::env::temp_dir().join(format!("cmpp-gateway-post-{}.lua", std::process::id()));
    std::fs::write(&script, POST_SCRIPT).map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for (setup, ingress_only) in [("ingress-only", true), ("with-drain", false)] {
        let rig = Rig::start(SimulatorConfig::default()).await?;
        let config = rig.config(serde_json::json!({
            "registered_delivery": false, "outbound_backlog_limit": 0, "ingress_only": ingress_only,
        }))?;
        let gateway = RunningGateway::start(config).await?;
        let url = format!("http://{}/v1/messages", gateway.http);
        for &c in connections {
            let watch = StreamWatch::start(rig.redis_conn().await?);
            let text = wrk(c, seconds, &script, &url).await?;
            let mut run = parse(setup, c, seconds, &text)?;
            run.stream = Some(watch.finish().await?);
            runs.push(run);
        }
        gateway.stop().await?;
        rig.sim.shutdown().await;
    }
    let _ = std::fs::remove_file(&script);
    Ok(runs)
}

async fn wrk(
    connections: usize,
    seconds: u64,
    script: &std::path::Path,
    url: &str,
) -> Result<String, String> {
    let mut command = Command::new("wrk");
    command
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn which_wrk() -> Result<(), String> {
    Command::new("wrk")
        .arg("--version")
        .output()
        .map(|_| ())
        .map_err(|_| "wrk is not installed (Debian: apt-get install wrk)".to_owned())
}

/// Reads wrk's report: Requests/sec, the 50 % and 99 % latencies, errors.
fn parse(
    setup: &'static str,
    connections: usize,
    seconds: u64,
    text: &str,
) -> Result<IngestRun, String> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    Ok(IngestRun {
        setup,
        connections,
        seconds,
        requests_per_second: rps,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        socket_errors: field("Socket errors:").unwrap_or_else(|| "none".into()),
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 10s test @ http://127.0.0.1:1/v1/messages\n  Latency Distribution\n     50%  1.10ms\n     75%    1.50ms\n     90%    2.00ms\n     99%    5.31ms\n  300000 requests in 10.00s, 50.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  30000.12\nTransfer/sec:      5.00MB\n";
        let r = parse("with-drain", 64, 10, report).unwrap();
        assert_eq!(r.requests_per_second, 30000.12);
        assert_eq!(
            (r.p50.as_str(), r.p99.as_str(), r.non_2xx),
            ("1.10ms", "5.31ms", 3)
        );
        assert!(parse("ingress-only", 1, 1, "garbage").is_err());
    }
}
