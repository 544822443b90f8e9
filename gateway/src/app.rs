//! Wiring: from a [`GatewayConfig`] to running drivers, kiosks, the call
//! follower, housekeeping (leases, outbox, health) and the local
//! `KioskService`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use madoguchi_platform::clock::SharedClock;
use madoguchi_proto::prost_types::Timestamp;
use madoguchi_proto::queue::v1 as pb;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::config::GatewayConfig;
use crate::devices::board::{self, BoardLineConfig, BoardLineHandle, LineHealth};
use crate::devices::panel::{self, PanelConfig, PanelHealth};
use crate::devices::printer::{self, PrinterConfig, PrinterHealth};
use crate::devices::terminal::journal::SqliteJournal;
use crate::devices::terminal::{TerminalConfig, TerminalDriver};
use crate::kiosk::Kiosk;
use crate::kiosk_api::KioskApi;
use crate::link::{Cluster, Follower, follow_calls};
use crate::metrics::{Metrics, Recorder};
use crate::register::{Register, TerminalHealth};
use crate::serial::{Backoff, Connector};
use crate::store::LocalStore;

/// Devices a test or the simulated floor hands in instead of opening the
/// configured ports (the paths in the configuration are then only labels).
#[derive(Debug, Default)]
pub struct Overrides {
    /// Kiosk id → printer transport connector.
    pub printers: HashMap<String, Connector>,
    /// Kiosk id → panel connector.
    pub panels: HashMap<String, Connector>,
    /// Line id → board line connector.
    pub lines: HashMap<String, Connector>,
    /// Register id → payment terminal connector.
    pub terminals: HashMap<String, Connector>,
    /// Register id → receipt printer connector.
    pub receipt_printers: HashMap<String, Connector>,
    /// Terminal timers for every register (tests shorten them).
    pub terminal_config: Option<TerminalConfig>,
}

/// A running gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Kiosks by id.
    pub kiosks: HashMap<String, Kiosk>,
    /// Board lines by id.
    pub lines: HashMap<String, BoardLineHandle>,
    /// Registers by id.
    pub registers: HashMap<String, Register>,
    /// The local store.
    pub store: LocalStore,
    /// The cluster link.
    pub cluster: Cluster,
    /// Where the local `KioskService` listens, if configured.
    pub kiosk_addr: Option<SocketAddr>,
    /// Where `/metrics` is served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningGateway {
    /// Stops every task and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops every task and waits for them at most `deadline`; tasks still
    /// running then are aborted. False when the deadline passed.
    pub async fn shutdown_within(mut self, deadline: Duration) -> bool {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        // Dropping the set aborts whatever is left.
        drop(self.tasks);
        drained
    }

    /// Runs the housekeeping round now (leases, import, health), instead of
    /// waiting for its timer; tests use it to avoid sleeping.
    pub async fn housekeep(&self) {
        for kiosk in self.kiosks.values() {
            housekeep_kiosk(kiosk).await;
        }
    }
}

async fn housekeep_kiosk(kiosk: &Kiosk) {
    if let Err(status) = kiosk.refresh().await {
        tracing::debug!(code = ?status.code(), "category refresh postponed");
    }
    match kiosk.sync().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(kiosk = kiosk.id(), imported = n, "offline tickets imported"),
        Err(status) => tracing::debug!(code = ?status.code(), "import postponed"),
    }
    if let Err(status) = kiosk.top_up().await {
        tracing::debug!(code = ?status.code(), "lease top-up postponed");
    }
}

/// Starts the gateway.
pub async fn start(
    config: &GatewayConfig,
    clock: SharedClock,
    mut overrides: Overrides,
) -> anyhow::Result<RunningGateway> {
    let token = config.token()?;
    let cluster = Cluster::new(&config.cluster, &token)?;
    let store = LocalStore::open(&config.state).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let backoff = Backoff::new(config.timing.backoff_initial, config.timing.backoff_max);

    let mut metrics = Metrics {
        printers: Default::default(),
        panels: Default::default(),
        lines: Default::default(),
        terminals: Default::default(),
        reachable: cluster.reachable(),
        store: store.clone(),
        recorder: Recorder::default(),
    };
    let mut lines = HashMap::new();
    for line in &config.board_lines {
        let connector = overrides
            .lines
            .remove(&line.id)
            .unwrap_or_else(|| Connector::serial(line.port.clone()));
        let handle = board::spawn(connector, BoardLineConfig::new(line.units.iter().copied()));
        metrics.lines.insert(line.id.clone(), handle.health());
        spawn_line_health(
            &mut tasks,
            &cluster,
            &line.id,
            handle.health(),
            config.timing.health_interval,
            stopped.clone(),
        );
        lines.insert(line.id.clone(), handle);
    }

    let mut kiosks = HashMap::new();
    for k in &config.kiosks {
        let connector = overrides
            .printers
            .remove(&k.id)
            .unwrap_or_else(|| Connector::serial(k.printer.clone()));
        let printer = printer::spawn(connector, PrinterConfig::default());
        metrics
            .printers
            .insert(format!("printer-{}", k.id), printer.health());
        spawn_printer_health(
            &mut tasks,
            &cluster,
            &format!("printer-{}", k.id),
            pb::DeviceKind::TicketPrinter,
            printer.health(),
            config.timing.health_interval,
            stopped.clone(),
        );
        let kiosk = Kiosk::new(
            k.clone(),
            cluster.clone(),
            store.clone(),
            printer,
            clock.clone(),
            metrics.recorder.clone(),
        );
        let panel_connector = overrides
            .panels
            .remove(&k.id)
            .or_else(|| k.panel.clone().map(Connector::serial));
        if let Some(connector) = panel_connector {
            let (panel, mut presses) = panel::spawn(connector, PanelConfig::default());
            metrics.panels.insert(k.id.clone(), panel.health());
            spawn_panel_health(
                &mut tasks,
                &cluster,
                &k.id,
                panel.health(),
                config.timing.health_interval,
                stopped.clone(),
            );
            let kiosk = kiosk.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                loop {
                    let press = tokio::select! {
                        press = presses.recv() => press,
                        _ = stopped.changed() => return,
                    };
                    let Some(press) = press else { return };
                    let Some(category) = kiosk.buttons().get(&press.button).cloned() else {
                        tracing::warn!(button = press.button, "button not mapped to a category");
                        continue;
                    };
                    let span = crate::kiosk::press_span(kiosk.id(), &category, Some(press.button));
                    let led = match kiosk.issue(&category, false).instrument(span).await {
                        Ok(ticket) => {
                            tracing::info!(kiosk = kiosk.id(), ticket = %ticket.display_number, offline = ticket.offline, "ticket printed");
                            panel::protocol::Led::On
                        }
                        Err(error) => {
                            tracing::warn!(kiosk = kiosk.id(), %error, "no ticket");
                            panel::protocol::Led::Blink
                        }
                    };
                    let _ = panel.set_led(press.button, led).await;
                }
            });
        }
        kiosks.insert(k.id.clone(), kiosk);
    }

    let mut registers = HashMap::new();
    if !config.registers.is_empty() {
        let journal = std::sync::Arc::new(SqliteJournal::new(store.connection()).await?);
        for r in &config.registers {
            let connector = overrides
                .terminals
                .remove(&r.id)
                .unwrap_or_else(|| Connector::serial(r.terminal.clone()));
            let terminal = std::sync::Arc::new(TerminalDriver::new(
                connector,
                journal.clone(),
                overrides.terminal_config.clone().unwrap_or_default(),
            ));
            let connector = overrides
                .receipt_printers
                .remove(&r.id)
                .unwrap_or_else(|| Connector::serial(r.printer.clone()));
            let printer = printer::spawn(connector, PrinterConfig::default());
            let device = format!("receipt-printer-{}", r.id);
            metrics.printers.insert(device.clone(), printer.health());
            spawn_printer_health(
                &mut tasks,
                &cluster,
                &device,
                pb::DeviceKind::ReceiptPrinter,
                printer.health(),
                config.timing.health_interval,
                stopped.clone(),
            );
            let register = Register::new(
                r.id.clone(),
                config.register_name(&r.id),
                cluster.clone(),
                store.clone(),
                terminal,
                printer,
                backoff.clone(),
            );
            metrics
                .terminals
                .insert(r.id.clone(), register.terminal_health());
            spawn_terminal_health(
                &mut tasks,
                &cluster,
                &r.id,
                register.terminal_health(),
                config.timing.health_interval,
                stopped.clone(),
            );
            tasks.spawn(register.clone().run(stopped.clone()));
            registers.insert(r.id.clone(), register);
        }
    }

    tasks.spawn(follow_calls(
        cluster.clone(),
        store.clone(),
        lines.clone(),
        Follower {
            clock: clock.clone(),
            recorder: metrics.recorder.clone(),
        },
        backoff.clone(),
        stopped.clone(),
    ));

    // Housekeeping: refresh what the kiosks print, import the outbox, top
    // up leases; at once when the link comes back, and on a timer.
    {
        let kiosks: Vec<Kiosk> = kiosks.values().cloned().collect();
        let mut reachable = cluster.reachable();
        let mut stopped = stopped.clone();
        let every = config.timing.housekeeping;
        tasks.spawn(async move {
            loop {
                for kiosk in &kiosks {
                    housekeep_kiosk(kiosk).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    changed = reachable.changed() => if changed.is_err() { return },
                    _ = stopped.changed() => return,
                }
            }
        });
    }

    let kiosk_addr = match config.kiosk_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let addr = listener.local_addr()?;
            let api = KioskApi::new(kiosks.clone()).service();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let result = tonic::transport::Server::builder()
                    .add_service(api)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stopped.changed().await;
                    })
                    .await;
                if let Err(error) = result {
                    tracing::error!(%error, "kiosk api stopped");
                }
            });
            Some(addr)
        }
        None => None,
    };

    let metrics_addr = match config.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let addr = listener.local_addr()?;
            let stopped = stopped.clone();
            tasks.spawn(async move {
                if let Err(error) = metrics.endpoint().serve(listener, stopped).await {
                    tracing::error!(%error, "metrics endpoint stopped");
                }
            });
            Some(addr)
        }
        None => None,
    };

    Ok(RunningGateway {
        kiosks,
        lines,
        registers,
        store,
        cluster,
        kiosk_addr,
        metrics_addr,
        stop,
        tasks,
    })
}

fn now_ts() -> Timestamp {
    let now = chrono::Utc::now();
    Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// How long a device's first health report waits for its driver's first
/// contact with it.
const FIRST_REPORT_GRACE: Duration = Duration::from_secs(3);

/// Reports a device's health whenever it changes, and every `interval`.
fn spawn_reporter<H, F>(
    tasks: &mut JoinSet<()>,
    cluster: &Cluster,
    mut health: watch::Receiver<H>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
    to_reports: F,
) where
    H: Clone + Send + Sync + 'static,
    F: Fn(&H) -> Vec<pb::DeviceHealth> + Send + 'static,
{
    let cluster = cluster.clone();
    tasks.spawn(async move {
        // At start the driver has not tried its port yet: the initial
        // state says "not connected" only because nothing is known. The
        // first report waits for the driver's first news, or a grace
        // period for a device that never answers, so staff and the server
        // log are not told of a fault that is not there.
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(FIRST_REPORT_GRACE.min(interval)) => {}
            _ = stopped.changed() => return,
        }
        let mut sent: Vec<pb::DeviceHealth> = Vec::new();
        loop {
            let reports = to_reports(&health.borrow_and_update().clone());
            let mut all_sent = true;
            for report in &reports {
                // Compare without the timestamp: resend only changes.
                let changed = !sent.iter().any(|s| {
                    s.name == report.name
                        && pb::DeviceHealth {
                            observe_time: None,
                            ..s.clone()
                        } == pb::DeviceHealth {
                            observe_time: None,
                            ..report.clone()
                        }
                });
                if !changed {
                    continue;
                }
                let result = cluster
                    .call(
                        cluster
                            .queue()
                            .report_device_health(pb::ReportDeviceHealthRequest {
                                health: Some(report.clone()),
                            }),
                    )
                    .await;
                match result {
                    Ok(_) => {
                        sent.retain(|s| s.name != report.name);
                        sent.push(report.clone());
                    }
                    Err(_) => all_sent = false,
                }
            }
            let wait = if all_sent {
                interval
            } else {
                Duration::from_secs(2).min(interval)
            };
            tokio::select! {
                changed = health.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => if all_sent { sent.clear() },
                _ = stopped.changed() => return,
            }
        }
    });
}

fn device(cluster: &Cluster, id: &str, kind: pb::DeviceKind) -> pb::DeviceHealth {
    pb::DeviceHealth {
        name: format!("{}/devices/{id}", cluster.office),
        kind: kind as i32,
        observe_time: Some(now_ts()),
        ..Default::default()
    }
}

/// `device`: the device id, `printer-{kiosk}` or `receipt-printer-{register}`.
fn spawn_printer_health(
    tasks: &mut JoinSet<()>,
    cluster: &Cluster,
    device_id: &str,
    kind: pb::DeviceKind,
    health: watch::Receiver<PrinterHealth>,
    interval: Duration,
    stopped: watch::Receiver<bool>,
) {
    let id = device_id.to_owned();
    let c = cluster.clone();
    spawn_reporter(
        tasks,
        cluster,
        health,
        interval,
        stopped,
        move |h: &PrinterHealth| {
            vec![pb::DeviceHealth {
                connected: h.connected,
                paper_near_end: h.paper_near_end,
                paper_out: h.paper_out,
                cover_open: h.cover_open,
                last_error: h.last_error.clone().unwrap_or_default(),
                ..device(&c, &id, kind)
            }]
        },
    );
}

fn spawn_terminal_health(
    tasks: &mut JoinSet<()>,
    cluster: &Cluster,
    register: &str,
    health: watch::Receiver<TerminalHealth>,
    interval: Duration,
    stopped: watch::Receiver<bool>,
) {
    let id = format!("terminal-{register}");
    let c = cluster.clone();
    spawn_reporter(
        tasks,
        cluster,
        health,
        interval,
        stopped,
        move |h: &TerminalHealth| {
            vec![pb::DeviceHealth {
                connected: h.connected,
                last_error: h.last_error.clone().unwrap_or_default(),
                ..device(&c, &id, pb::DeviceKind::PaymentTerminal)
            }]
        },
    );
}

fn spawn_panel_health(
    tasks: &mut JoinSet<()>,
    cluster: &Cluster,
    kiosk: &str,
    health: watch::Receiver<PanelHealth>,
    interval: Duration,
    stopped: watch::Receiver<bool>,
) {
    let id = format!("panel-{kiosk}");
    let c = cluster.clone();
    spawn_reporter(
        tasks,
        cluster,
        health,
        interval,
        stopped,
        move |h: &PanelHealth| {
            vec![pb::DeviceHealth {
                connected: h.connected,
                last_error: h.last_error.clone().unwrap_or_default(),
                ..device(&c, &id, pb::DeviceKind::ButtonPanel)
            }]
        },
    );
}

fn spawn_line_health(
    tasks: &mut JoinSet<()>,
    cluster: &Cluster,
    line: &str,
    health: watch::Receiver<LineHealth>,
    interval: Duration,
    stopped: watch::Receiver<bool>,
) {
    let line = line.to_owned();
    let c = cluster.clone();
    spawn_reporter(
        tasks,
        cluster,
        health,
        interval,
        stopped,
        move |h: &LineHealth| {
            h.boards
                .iter()
                .filter(|(_, b)| b.wanted.is_some() || b.online)
                .map(|(unit, b)| pb::DeviceHealth {
                    connected: h.connected && b.online,
                    last_error: b
                        .last_error
                        .clone()
                        .or_else(|| h.last_error.clone())
                        .unwrap_or_default(),
                    ..device(
                        &c,
                        &format!("board-{line}-{unit}"),
                        pb::DeviceKind::CallBoard,
                    )
                })
                .collect()
        },
    );
}
