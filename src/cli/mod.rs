//! Command-line interface of the `cmpp-gateway` binary.

pub mod bench;
pub mod decode;
pub mod run;
pub mod simulator;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cmpp-gateway",
    version,
    about = "HTTP and Redis Streams gateway for CMPP 3.0 SMS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: HTTP ingress, the outbound worker and the CMPP link.
    Run(run::RunArgs),
    /// Pretty-print CMPP PDUs given in hex (argument or stdin) as JSON.
    Decode(decode::DecodeArgs),
    /// Run the built-in ISMG simulator (the carrier side), for demos, tests and benchmarks.
    Simulator(Box<simulator::SimulatorArgs>),
    /// Measure throughput and latency against the built-in simulator.
    Bench(bench::BenchArgs),
}
