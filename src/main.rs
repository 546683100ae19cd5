use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cmpp_gateway::cli::{Cli, Command, bench, decode, run, simulator};

/// Every message allocates many small, short-lived buffers across tasks and threads (PDUs, Redis
/// commands and replies); mimalloc serves them faster than the system allocator: the full loop
/// (`bench loop`) ran 5–8 % faster with it, alternating runs of both builds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Run(args) => run::load(args).and_then(|config| {
            let level = if config.log.debug { "debug" } else { "info" };
            init_logging(level, config.log.json);
            runtime()?.block_on(run::run(config))
        }),
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
    init_logging(default_level, false);
    runtime()?.block_on(command)
}

/// warp logs every client that hangs up mid-request (a load balancer's probe, a load tool
/// stopping) as an ERROR; that is the client's business, not the operator's.
const QUIET_TARGETS: &str = "warp::server::run=off";

fn init_logging(default_level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},{QUIET_TARGETS}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into a log file or a collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}
