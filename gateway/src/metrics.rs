//! Prometheus metrics of the gateway (OpenMetrics text on `GET /metrics`,
//! with `GET /healthz` beside it, on the address `metrics_listen` of the
//! configuration): the health of every device, the link to the cluster,
//! the offline outbox, tickets printed and the time from a call to the
//! board showing it. The names are those of
//! `k8s/observability/metrics.txt`; `docs/devices/telemetry.md` lists them.
//!
//! Device gauges are read from the drivers' health channels at scrape
//! time, so they are never stale and cost nothing between scrapes; the
//! outbox gauge is counted in the local store at scrape time. Only what
//! happens once (a ticket printed, a call shown) is counted as it happens,
//! through the cheap-to-clone [`Recorder`] the kiosks and the call
//! follower hold.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use madoguchi_platform::metrics::{LatencyFamily, latency_histogram};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use crate::devices::board::LineHealth;
use crate::devices::panel::PanelHealth;
use crate::devices::printer::PrinterHealth;
use crate::store::{LocalStore, OutboxState};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels1 = [(&'static str, String); 1];
type Labels2 = [(&'static str, String); 2];

/// How a ticket was printed: `online` (issued by the cluster) or `offline`
/// (from the kiosk's lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintMode {
    /// Issued by the cluster.
    Online,
    /// From the lease, while the cluster was unreachable.
    Offline,
}

impl PrintMode {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// What is counted as it happens. Cheap to clone; a default recorder
/// belongs to no endpoint (tests of a single kiosk).
#[derive(Debug, Clone)]
pub struct Recorder {
    call_to_board: LatencyFamily<Labels1>,
    tickets_printed: Family<Labels2, Counter>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            call_to_board: Family::new_with_constructor(latency_histogram),
            tickets_printed: Family::default(),
        }
    }
}

impl Recorder {
    /// A ticket came out of kiosk `kiosk`'s printer.
    pub fn ticket_printed(&self, kiosk: &str, mode: PrintMode) {
        self.tickets_printed
            .get_or_create(&[
                ("kiosk", kiosk.to_owned()),
                ("mode", mode.as_str().to_owned()),
            ])
            .inc();
    }

    /// A board on `line` acknowledged a called number `seconds` after the
    /// queue committed the call (by the two hosts' clocks; a negative
    /// difference, a clock offset, counts as zero).
    pub fn call_shown(&self, line: &str, seconds: f64) {
        self.call_to_board
            .get_or_create(&[("line", line.to_owned())])
            .observe(seconds.max(0.0));
    }
}

/// What a scrape reads.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Device id (`printer-{kiosk}`, `receipt-printer-{register}`) →
    /// printer health.
    pub printers: BTreeMap<String, watch::Receiver<PrinterHealth>>,
    /// Kiosk id → panel health.
    pub panels: BTreeMap<String, watch::Receiver<PanelHealth>>,
    /// Line id → board line health.
    pub lines: BTreeMap<String, watch::Receiver<LineHealth>>,
    /// Register id → payment terminal health.
    pub terminals: BTreeMap<String, watch::Receiver<crate::register::TerminalHealth>>,
    /// Whether the last call reached the cluster.
    pub reachable: watch::Receiver<bool>,
    /// The outbox.
    pub store: LocalStore,
    /// Counted as it happens.
    pub recorder: Recorder,
}

/// The gauges and counters read from the drivers' health at scrape time.
#[derive(Debug)]
struct DeviceCollector(Metrics);

impl Collector for DeviceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let reachable = ConstGauge::new(i64::from(*m.reachable.borrow()));
        reachable.encode(encoder.encode_descriptor(
            "madoguchi_gateway_cluster_reachable",
            "1 when the last call to the cluster got an answer",
            None,
            reachable.metric_type(),
        )?)?;

        // (device, kind, up)
        let mut up: Vec<(String, &'static str, bool)> = Vec::new();
        for (device, h) in &m.printers {
            up.push((device.clone(), "printer", h.borrow().connected));
        }
        for (kiosk, h) in &m.panels {
            up.push((format!("panel-{kiosk}"), "panel", h.borrow().connected));
        }
        for (register, h) in &m.terminals {
            up.push((
                format!("terminal-{register}"),
                "terminal",
                h.borrow().connected,
            ));
        }
        let mut resends: Vec<(String, u64)> = Vec::new();
        for (line, h) in &m.lines {
            let h = h.borrow();
            for (unit, board) in &h.boards {
                let device = format!("board-{line}-{unit}");
                up.push((device.clone(), "board", h.connected && board.online));
                resends.push((device, board.resends));
            }
        }
        let mut family = encoder.encode_descriptor(
            "madoguchi_gateway_device_up",
            "1 when the device answers on its port (kind: printer, panel, terminal, board)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (device, kind, on) in &up {
            let labels = [("device", device.as_str()), ("kind", *kind)];
            ConstGauge::new(i64::from(*on)).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "madoguchi_gateway_printer_condition",
            "1 while the printer is in the condition (paper_near_end, paper_out, cover_open, offline)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (device, h) in &m.printers {
            let h = h.borrow();
            for (condition, on) in [
                ("paper_near_end", h.paper_near_end),
                ("paper_out", h.paper_out),
                ("cover_open", h.cover_open),
                ("offline", h.offline),
            ] {
                let labels = [("device", device.as_str()), ("condition", condition)];
                ConstGauge::new(i64::from(on)).encode(family.encode_family(&labels)?)?;
            }
        }

        // The driver counts re-sends from its start, never down: a counter.
        let mut family = encoder.encode_descriptor(
            "madoguchi_gateway_board_resends",
            "Displays re-sent to a board after it lost its value (power cycle, recovery)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (device, count) in &resends {
            let labels = [("device", device.as_str())];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The registry behind one `/metrics` endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    registry: Arc<Mutex<Registry>>,
    outbox: Family<Labels1, Gauge>,
    store: LocalStore,
}

impl Metrics {
    /// The registry of these metrics (one per endpoint).
    pub fn endpoint(self) -> Endpoint {
        let mut registry = Registry::default();
        let outbox: Family<Labels1, Gauge> = Family::default();
        registry.register(
            "madoguchi_gateway_outbox_tickets",
            "Tickets printed offline, by state (pending = not yet imported)",
            outbox.clone(),
        );
        registry.register_with_unit(
            "madoguchi_gateway_call_to_board",
            "From the queue committing a call (its event_time, the queue host's clock) to a board acknowledging the number (the floor PC's clock); includes the offset between the two clocks",
            Unit::Seconds,
            self.recorder.call_to_board.clone(),
        );
        registry.register(
            "madoguchi_gateway_tickets_printed",
            "Tickets that came out of a kiosk's printer, by mode (online, offline)",
            self.recorder.tickets_printed.clone(),
        );
        let store = self.store.clone();
        registry.register_collector(Box::new(DeviceCollector(self)));
        Endpoint {
            registry: Arc::new(Mutex::new(registry)),
            outbox,
            store,
        }
    }
}

impl Endpoint {
    /// The exposition text (OpenMetrics).
    pub async fn render(&self) -> String {
        let count = |state| async move { self.store.outbox_count(state).await.unwrap_or(0) };
        let pending = count(OutboxState::Printed).await + count(OutboxState::Printing).await;
        for (state, value) in [
            ("pending", pending),
            ("imported", count(OutboxState::Imported).await),
            ("rejected", count(OutboxState::Rejected).await),
            ("void", count(OutboxState::Void).await),
        ] {
            self.outbox
                .get_or_create(&[("state", state.to_owned())])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }

    /// Serves `GET /metrics` and `GET /healthz` on `listener` until `stop`
    /// fires.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let endpoint = self.clone();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            endpoint.render().await,
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok\n" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    }
}
