//! The gateway phases of the benchmark: the real gateway, in this
//! process, with its devices simulated on pseudo-terminals (the same code
//! as `madoguchi-gateway --simulate`). A call is complete when the
//! simulated board has received the whole Modbus frame and applied the
//! number; a button press when the simulated printer has received the
//! whole ticket up to the cut.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use madoguchi_gateway::app::RunningGateway;
use madoguchi_gateway::config::GatewayConfig;
use madoguchi_gateway::floor::{Simulators, start_simulated};
use madoguchi_platform::clock::SystemClock;
use tokio::sync::Notify;

use crate::{DEVICE_TOKEN, OFFICE, Run, open_loop};

/// How long a call may take to reach its board before it counts as lost.
const BOARD_DEADLINE: Duration = Duration::from_secs(5);

/// The gateway and its simulated devices.
pub struct Floor {
    gateway: RunningGateway,
    sims: Simulators,
    /// What the boards showed, and when.
    pub boards: BoardWatch,
}

impl Floor {
    /// Starts the gateway against the server at `addr` with one kiosk
    /// (button 1 issues in category `issue`) and one line of `boards`.
    pub async fn start(addr: SocketAddr, dir: &Path, boards: u64) -> anyhow::Result<Self> {
        let units: Vec<String> = (1..=boards).map(|u| u.to_string()).collect();
        let text = format!(
            r#"
            state = "{state}"
            [cluster]
            endpoint = "http://{addr}"
            office = "{OFFICE}"
            token = "{DEVICE_TOKEN}"
            [[kiosks]]
            id = "k1"
            printer = {{ path = "sim-printer", baud = 115200 }}
            panel = {{ path = "sim-panel" }}
            buttons = {{ 1 = "issue" }}
            [[board_lines]]
            id = "bench"
            port = {{ path = "sim-line", baud = 115200 }}
            units = [{units}]
            "#,
            state = dir.join("gateway.db").display(),
            units = units.join(", "),
        );
        let config = GatewayConfig::parse(&text)?;
        let (gateway, sims) = start_simulated(&config, Arc::new(SystemClock)).await?;
        let boards = BoardWatch::spawn(&sims, boards);
        Ok(Self {
            gateway,
            sims,
            boards,
        })
    }

    /// Presses button 1 at `rate`/s for `seconds`, each press complete
    /// when a ticket came out of the printer.
    pub async fn press_phase(&self, rate: u32, seconds: u32) -> anyhow::Result<Run> {
        let panel = self.sims.panels["k1"].clone();
        let printer = self.sims.printers["k1"].clone();
        open_loop(rate, seconds, move |_| {
            let panel = panel.clone();
            let printer = printer.clone();
            async move {
                panel.press(1);
                tokio::time::timeout(BOARD_DEADLINE, printer.next_ticket())
                    .await
                    .map_err(|_| anyhow::anyhow!("no ticket printed in time"))?
                    .ok_or_else(|| anyhow::anyhow!("printer simulator stopped"))?;
                Ok(None)
            }
        })
        .await
    }

    /// Stops the gateway.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
    }
}

/// Records each (board, number) the first time a board shows it.
#[derive(Clone)]
pub struct BoardWatch {
    seen: Arc<Mutex<HashMap<(u8, String), Instant>>>,
    notify: Arc<Notify>,
}

impl BoardWatch {
    fn spawn(sims: &Simulators, boards: u64) -> Self {
        let watch = Self {
            seen: Arc::default(),
            notify: Arc::default(),
        };
        let mut line = sims.lines["bench"].clone();
        let task = watch.clone();
        tokio::spawn(async move {
            let mut last: HashMap<u8, String> = HashMap::new();
            loop {
                line.changed().await;
                let now = Instant::now();
                for unit in 1..=boards as u8 {
                    let Some(view) = line.view(unit) else {
                        continue;
                    };
                    let (Some(prefix), Some(number)) = (view.display.prefix, view.display.number)
                    else {
                        continue;
                    };
                    let shown = format!("{prefix}{number:03}");
                    if last.get(&unit) != Some(&shown) {
                        last.insert(unit, shown.clone());
                        if let Ok(mut seen) = task.seen.lock() {
                            // When the simulator applied the frame, not
                            // when this task got round to looking.
                            seen.entry((unit, shown))
                                .or_insert(view.written_at.unwrap_or(now));
                        }
                    }
                }
                task.notify.notify_waiters();
            }
        });
        watch
    }

    /// Waits until board `unit` has shown `number`.
    pub async fn wait_for(&self, unit: u8, number: &str) -> anyhow::Result<Instant> {
        let key = (unit, number.to_owned());
        let deadline = Instant::now() + BOARD_DEADLINE;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(at) = self.seen.lock().ok().and_then(|s| s.get(&key).copied()) {
                return Ok(at);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                anyhow::bail!("board {unit} never showed {number}");
            }
        }
    }
}
