//! The floor gateway as the end-to-end tests run it: the production
//! gateway with kiosk K1 (printer and button panel), the RS-485 line of
//! call boards and, optionally, register R1 (payment terminal and receipt
//! printer), each device a simulator on a pseudo-terminal.

use std::future::Future;
use std::time::Duration;

use madoguchi_gateway::app::RunningGateway;
use madoguchi_gateway::config::GatewayConfig;
use madoguchi_gateway::devices::printer::sim::PrintedTicket;
use madoguchi_gateway::floor::{Simulators, start_simulated};
use madoguchi_platform::clock::SharedClock;
use tempfile::TempDir;

use crate::OFFICE;

/// Deadline that turns a hang into a failure; never a wait by itself.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Awaits `f` under [`DEADLINE`], failing with `what` on a hang.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A running gateway and its simulated devices.
#[derive(Debug)]
pub struct SimulatedFloor {
    /// The gateway.
    pub gateway: RunningGateway,
    /// Its devices' simulators.
    pub sims: Simulators,
    _state: TempDir,
}

/// Which devices besides the kiosk and the boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    /// None.
    No,
    /// Register R1 with its terminal and receipt printer.
    R1,
}

impl SimulatedFloor {
    /// Starts the gateway against `endpoint` (`http://…`), with the sample
    /// office's buttons (1 証明書, 2 相談) and board units 1–5 and 10.
    pub async fn start(endpoint: &str, clock: SharedClock, register: Register) -> Self {
        // The gateway's log, shown for failing tests (`MADOGUCHI_LOG`).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("MADOGUCHI_LOG").unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("madoguchi_gateway=info")
                }),
            )
            .with_test_writer()
            .try_init();
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut text = format!(
            r#"
            state = "{state}"
            metrics_listen = "127.0.0.1:0"
            [cluster]
            endpoint = "{endpoint}"
            office = "{OFFICE}"
            token = "test-device-032034"
            call_timeout = 5000

            [timing]
            backoff_initial = 20
            backoff_max = 200
            housekeeping = 600000

            [[kiosks]]
            id = "k1"
            heading = "大船渡市役所"
            printer = {{ path = "sim-printer" }}
            panel = {{ path = "sim-panel" }}
            lease_size = 10
            buttons = {{ 1 = "certificates", 2 = "life-events" }}

            [[board_lines]]
            id = "rs485-1f"
            port = {{ path = "sim-line" }}
            units = [1, 2, 3, 4, 5, 10]
            "#,
            state = state.path().join("gateway.db").display(),
        );
        if register == Register::R1 {
            text.push_str(
                r#"
                [[registers]]
                id = "r1"
                terminal = { path = "sim-terminal", stop_bits = "2" }
                printer = { path = "sim-receipt" }
                "#,
            );
        }
        let config = GatewayConfig::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let (gateway, sims) = start_simulated(&config, clock)
            .await
            .unwrap_or_else(|e| panic!("gateway: {e:#}"));
        Self {
            gateway,
            sims,
            _state: state,
        }
    }

    /// Presses `button` on kiosk K1's panel; the ticket it printed.
    pub async fn press(&self, button: u8) -> PrintedTicket {
        self.sims.panels["k1"].press(button);
        within("a printed ticket", self.sims.printers["k1"].next_ticket())
            .await
            .unwrap_or_else(|| panic!("printer simulator stopped"))
    }

    /// Waits until board `unit` shows `number` (e.g. `A001`).
    pub async fn board_shows(&self, unit: u8, number: &str) {
        let mut line = self.sims.lines["rs485-1f"].clone();
        let expected = number.to_owned();
        within(&format!("board {unit} to show {number}"), async move {
            loop {
                let shown = line
                    .view(unit)
                    .and_then(|v| Some(format!("{}{:03}", v.display.prefix?, v.display.number?)));
                if shown.as_deref() == Some(expected.as_str()) {
                    return;
                }
                line.changed().await;
            }
        })
        .await;
    }
}
