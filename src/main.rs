use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cmpp_gateway::cli::{Cli, Command, bench, decode, simulator};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Simulator(args) => with_runtime("info", simulator::run(args)),
        Command::Bench(args) => with_runtime("warn", bench::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (RUST_LOG overrides `default_level`) and runs an async command on tokio.
fn with_runtime(
    default_level: &str,
    command: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(command)
}
