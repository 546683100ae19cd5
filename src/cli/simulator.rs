//! `cmpp-gateway simulator`: run the built-in ISMG until Ctrl-C / SIGTERM.
//!
//! stdout carries exactly two JSON lines, for scripts: `{"event":"listening","cmpp":…,
//! "control":…}` once both listeners are bound, and `{"event":"stopped", <counters>}` at exit.
//! Logs go to stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value, json};

use crate::simulator::{self, Account, Behaviour, Counters, SimulatorConfig, parse_stat_mix};

#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// CMPP listen address.
    #[arg(long, default_value = "127.0.0.1:7890")]
    pub listen: SocketAddr,
    /// HTTP control address (GET /stats, PUT/PATCH /behaviour, POST /mo, POST /faults/…); "off" for none.
    #[arg(long, default_value = "127.0.0.1:7891", value_parser = parse_control)]
    pub control: ControlAddr,
    /// An accepted account, SPID:SECRET or SPID:SECRET:2.0 (repeatable). Default: 900001:888888.
    #[arg(long = "account", value_name = "SPID:SECRET[:VERSION]")]
    pub accounts: Vec<Account>,
    /// JSON list of accounts: [{"sp_id":"900001","secret":"…","version":"3.0"}].
    #[arg(long, value_name = "PATH")]
    pub accounts_file: Option<PathBuf>,
    /// ISMG code packed into Msg_Ids (22 bits).
    #[arg(long, default_value_t = 1)]
    pub gateway_code: u32,
    /// JSON Behaviour to start from; the flags below override its fields.
    #[arg(long, value_name = "PATH")]
    pub behaviour_file: Option<PathBuf>,
    /// Delay before each SUBMIT_RESP, e.g. 0ms, 2ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub response_delay: Option<Duration>,
    /// Delay before each status report, e.g. 100ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub report_delay: Option<Duration>,
    /// Weighted report Stat values, e.g. DELIVRD=95,UNDELIV=5.
    #[arg(long = "stat", value_parser = parse_stat_arg)]
    pub stat_mix: Option<StatMix>,
    /// Send 60-byte report bodies (the 2.0 layout) instead of the spec's 71.
    #[arg(long = "report-60")]
    pub report_60: bool,
    /// Fraction of submits answered with Result 8 (flow control).
    #[arg(long)]
    pub flow_control_ratio: Option<f64>,
    /// Result 8 for submits beyond this many per second per connection (0 = off).
    #[arg(long)]
    pub flow_control_above_rate: Option<u32>,
    /// Result 8 (and a counted violation) for a submit beyond this many unanswered (0 = off).
    #[arg(long)]
    pub window: Option<usize>,
    /// Fraction of SUBMIT_RESPs silently dropped.
    #[arg(long)]
    pub drop_response_ratio: Option<f64>,
    /// Close each connection when its N-th PDU arrives (0 = off).
    #[arg(long)]
    pub close_after_pdus: Option<u64>,
    /// Leave ACTIVE_TEST unanswered.
    #[arg(long)]
    pub ignore_heartbeats: bool,
    /// Answer logins with a wrong AuthenticatorISMG.
    #[arg(long)]
    pub bad_authenticator: bool,
    /// Answer every CONNECT in the 30-byte CMPP 2.0 layout, as a 2.0-only ISMG does.
    #[arg(long = "answer-v20")]
    pub answer_v20: bool,
    /// Give every accepted SUBMIT the same Msg_Id, as a broken peer does.
    #[arg(long = "repeat-msg-id")]
    pub repeat_msg_id: bool,
    /// Refuse a login (CONNECT_RESP Status 5) beyond N live connections of its account (0 = no limit).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Resend a DELIVER not acknowledged within this long (default 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deliver_retry: Option<Duration>,
    /// Send ACTIVE_TEST to clients idle this long (0 = off).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Pad every PDU sent after login with N bytes inside Total_Length (0 = off).
    #[arg(long)]
    pub trailing_bytes: Option<usize>,
    /// On a 3.0 account, write responses in the 2.0 layout (21-byte SUBMIT_RESP).
    #[arg(long)]
    pub v20_responses: bool,
    /// Answer ACTIVE_TEST with a 12-byte ACTIVE_TEST_RESP (no Reserved byte).
    #[arg(long)]
    pub active_test_resp_without_reserved: bool,
    /// Close the connection, unanswered, when a SUBMIT to this number arrives.
    #[arg(long, value_name = "MSISDN")]
    pub close_on_dest: Option<String>,
    /// Keep every SUBMIT for GET /submits (memory grows with traffic).
    #[arg(long)]
    pub record_submits: bool,
}

/// `--control`: an address, or none.
#[derive(Debug, Clone, Copy)]
pub struct ControlAddr(pub Option<SocketAddr>);

fn parse_control(s: &str) -> Result<ControlAddr, String> {
    match s {
        "off" | "none" | "" => Ok(ControlAddr(None)),
        _ => s
            .parse()
            .map(|a| ControlAddr(Some(a)))
            .map_err(|e| format!("{s:?}: {e} (or \"off\")")),
    }
}

/// `--stat`: weighted Stat values (a newtype, because clap reads `Option<Vec<_>>` as a list flag).
#[derive(Debug, Clone)]
pub struct StatMix(pub Vec<(String, u32)>);

fn parse_stat_arg(s: &str) -> Result<StatMix, String> {
    parse_stat_mix(s).map(StatMix)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl SimulatorArgs {
    /// The configuration these arguments describe, validated.
    pub fn config(&self) -> Result<SimulatorConfig, String> {
        let mut accounts = self.accounts.clone();
        if let Some(path) = &self.accounts_file {
            accounts.extend(read_json::<Vec<Account>>(path)?);
        }
        if accounts.is_empty() {
            accounts = SimulatorConfig::default().accounts;
        }
        let mut b: Behaviour = match &self.behaviour_file {
            Some(path) => read_json(path)?,
            None => Behaviour::default(),
        };
        let flags = self;
        if let Some(v) = flags.response_delay {
            b.response_delay = v;
        }
        if let Some(v) = flags.report_delay {
            b.report_delay = v;
        }
        if let Some(v) = &flags.stat_mix {
            b.stat_mix = v.0.clone();
        }
        if flags.report_60 {
            b.report_layout = crate::protocol::ReportLayout::Compact60;
        }
        if let Some(v) = flags.flow_control_ratio {
            b.flow_control_ratio = v;
        }
        if let Some(v) = flags.flow_control_above_rate {
            b.flow_control_above_rate = v;
        }
        if let Some(v) = flags.window {
            b.window = v;
        }
        if let Some(v) = flags.drop_response_ratio {
            b.drop_response_ratio = v;
        }
        if let Some(v) = flags.close_after_pdus {
            b.close_after_pdus = v;
        }
        if flags.ignore_heartbeats {
            b.ignore_heartbeats = true;
        }
        if flags.bad_authenticator {
            b.bad_authenticator = true;
        }
        if flags.answer_v20 {
            b.answer_v20 = true;
        }
        if flags.repeat_msg_id {
            b.repeat_msg_id = true;
        }
        if let Some(v) = flags.max_connections {
            b.max_connections = v;
        }
        if let Some(v) = flags.deliver_retry {
            b.deliver_retry = v;
        }
        if let Some(v) = flags.heartbeat_interval {
            b.heartbeat_interval = v;
        }
        if let Some(v) = flags.trailing_bytes {
            b.trailing_bytes = v;
        }
        b.v20_responses |= flags.v20_responses;
        b.active_test_resp_without_reserved |= flags.active_test_resp_without_reserved;
        if let Some(v) = &flags.close_on_dest {
            b.close_on_dest = v.clone();
        }
        let config = SimulatorConfig {
            listen: self.listen,
            control: self.control.0,
            accounts,
            gateway_code: self.gateway_code,
            behaviour: b,
            record_submits: self.record_submits,
        };
        config.validate()?;
        Ok(config)
    }
}

pub async fn run(args: &SimulatorArgs) -> Result<(), String> {
    // Logs on stderr, so stdout stays two machine-readable lines. Another subscriber may already
    // be installed by the binary; then that one is used.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let config = args.config()?;
    let accounts: Vec<String> = config
        .accounts
        .iter()
        .map(|a| format!("{}:{}", a.sp_id, a.version))
        .collect();
    let handle = simulator::start(config)
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    println!(
        "{}",
        json!({
            "event": "listening",
            "cmpp": handle.addr().to_string(),
            "control": handle.control_addr().map(|a| a.to_string()),
            "accounts": accounts,
        })
    );
    wait_for_signal().await?;
    let counters = handle.shutdown().await;
    println!("{}", stopped_line(&counters));
    Ok(())
}

/// `{"event":"stopped", <every counter>}`: flat, so `jq .submits_accepted` reads it directly.
fn stopped_line(counters: &Counters) -> Value {
    let mut line = Map::new();
    line.insert("event".into(), "stopped".into());
    if let Ok(Value::Object(fields)) = serde_json::to_value(counters) {
        line.extend(fields);
    }
    Value::Object(line)
}

/// The same, for a synchronous `main`: builds a multi-threaded runtime and runs to the end.
pub fn run_blocking(args: &SimulatorArgs) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(run(args))
}

async fn wait_for_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot watch Ctrl-C: {e}")),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("cannot watch Ctrl-C: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::protocol::{ReportLayout, Version};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulatorArgs,
    }

    fn parse(argv: &[&str]) -> Result<SimulatorConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("sim").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.config()
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7890");
        assert_eq!(
            c.control.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:7891")
        );
        assert_eq!(
            c.accounts,
            vec![Account::new("900001", "888888", Version::V30)]
        );
        assert_eq!(c.behaviour, Behaviour::default());
    }

    #[test]
    fn flags_set_behaviour_fields() {
        let c = parse(&[
            "--control",
            "off",
            "--account",
            "900002:pw:2.0",
            "--response-delay",
            "2ms",
            "--stat",
            "DELIVRD=95,UNDELIV=5",
            "--report-60",
            "--window",
            "16",
            "--ignore-heartbeats",
            "--answer-v20",
            "--repeat-msg-id",
            "--max-connections",
            "4",
        ])
        .unwrap();
        assert_eq!(c.control, None);
        assert_eq!(c.accounts[0].version, Version::V20);
        assert_eq!(c.behaviour.response_delay, Duration::from_millis(2));
        assert_eq!(c.behaviour.stat_mix[1], ("UNDELIV".to_owned(), 5));
        assert_eq!(c.behaviour.report_layout, ReportLayout::Compact60);
        assert_eq!(c.behaviour.window, 16);
        assert!(c.behaviour.ignore_heartbeats);
        assert!(c.behaviour.answer_v20);
        assert!(c.behaviour.repeat_msg_id);
        assert_eq!(c.behaviour.max_connections, 4);
    }

    #[test]
    fn the_exit_line_is_flat() {
        let counters = Counters {
            submits_accepted: 3,
            ..Counters::default()
        };
        let line = stopped_line(&counters);
        assert_eq!(
            (line["event"].as_str(), line["submits_accepted"].as_u64()),
            (Some("stopped"), Some(3))
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(parse(&["--flow-control-ratio", "2"]).is_err());
        assert!(parse(&["--response-delay", "soon"]).is_err());
        assert!(parse(&["--account", "nosecret"]).is_err());
    }
}
