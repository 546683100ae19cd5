//! `cmpp-gateway run`: the gateway itself.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (keys can be overridden by CMPP_GATEWAY_<KEY> variables).
    #[arg(
        long,
        short,
        default_value = "config.json",
        env = "CMPP_GATEWAY_CONFIG"
    )]
    pub config: PathBuf,
    /// Log as JSON lines (also the `log_json` key).
    #[arg(long)]
    pub log_json: bool,
}

/// Loads and checks the configuration before anything starts.
pub fn load(args: &RunArgs) -> Result<GatewayConfig, String> {
    let mut config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    config.log.json |= args.log_json;
    Ok(config)
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: GatewayConfig) -> Result<(), String> {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    crate::gateway::run(config, shutdown, Default::default()).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}
