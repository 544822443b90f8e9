//! `madoguchi-gateway`: the edge gateway on the counter floor.
//!
//! ```sh
//! madoguchi-gateway --config gateway.toml     # real serial devices
//! madoguchi-gateway --simulate                # every device simulated on a pty
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// How long the gateway's tasks get to finish after SIGINT or SIGTERM
/// (a print in progress, the outbox's last write) before they are aborted.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs (MADOGUCHI_LOG, MADOGUCHI_LOG_FORMAT) and, with
    // OTEL_EXPORTER_OTLP_ENDPOINT set, traces over OTLP; inside the
    // runtime, which the OTLP client runs on.
    let telemetry = madoguchi_platform::telemetry::init("madoguchi-gateway");
    let result = run(Args::parse()).await;
    // Exports the spans still queued (bounded wait).
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .ok();
    result
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = GatewayConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    // Installed before anything starts, so a signal that comes early is
    // not the default action (which kills the process without draining).
    let shutdown = shutdown_signal()?;
    if args.simulate {
        return madoguchi_gateway::floor::run_in_terminal(&config, clock, shutdown, DRAIN_DEADLINE)
            .await;
    }
    let gateway = madoguchi_gateway::app::start(&config, clock, Default::default()).await?;
    tracing::info!(
        kiosks = gateway.kiosks.len(),
        lines = gateway.lines.len(),
        "gateway running"
    );
    shutdown.await;
    if !gateway.shutdown_within(DRAIN_DEADLINE).await {
        tracing::warn!(deadline = ?DRAIN_DEADLINE, "gateway tasks still running after the drain deadline");
    }
    Ok(())
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
