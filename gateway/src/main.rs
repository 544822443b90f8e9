//! `madoguchi-gateway`: the edge gateway on the counter floor.
//!
//! ```sh
//! madoguchi-gateway --config gateway.toml     # real serial devices
//! madoguchi-gateway --simulate                # every device simulated on a pty
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use madoguchi_gateway::config::GatewayConfig;
use madoguchi_platform::clock::{SharedClock, SystemClock};

/// The edge gateway: ticket printers, button panels, call boards and
/// registers (payment terminal, receipt printer, cash drawer) on
/// serial ports, linked to the Madoguchi cluster.
#[derive(Debug, Parser)]
#[command(name = "madoguchi-gateway", version)]
struct Args {
    /// The gateway's configuration file.
    #[arg(
        long,
        env = "MADOGUCHI_GATEWAY_CONFIG",
        default_value = "sites/ofunato/gateway.toml"
    )]
    config: PathBuf,
    /// Replace every device with its simulator on a pseudo-terminal and
    /// show printed tickets, board changes, terminal charges and receipts
    /// in this terminal.
    #[arg(long)]
    simulate: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MADOGUCHI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = GatewayConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    if args.simulate {
        return madoguchi_gateway::floor::run_in_terminal(&config, clock, shutdown_signal()).await;
    }
    let gateway = madoguchi_gateway::app::start(&config, clock, Default::default()).await?;
    tracing::info!(
        kiosks = gateway.kiosks.len(),
        lines = gateway.lines.len(),
        "gateway running"
    );
    shutdown_signal().await;
    gateway.shutdown().await;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
