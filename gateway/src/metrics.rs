//! Prometheus metrics of the gateway (text exposition format on
//! `GET /metrics`, on the address `metrics_listen` of the configuration):
//! the health of every device, the link to the cluster and the offline
//! outbox. Gauges are read from the drivers' health channels at scrape
//! time, so they are never stale and cost nothing between scrapes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tokio::sync::watch;

use crate::devices::board::LineHealth;
use crate::devices::panel::PanelHealth;
use crate::devices::printer::PrinterHealth;
use crate::store::{LocalStore, OutboxState};

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
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
    }
}

impl Metrics {
    /// The exposition text.
    pub async fn render(&self) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "madoguchi_gateway_cluster_reachable",
            "1 when the last call to the cluster got an answer.",
        );
        sample(
            &mut out,
            "madoguchi_gateway_cluster_reachable",
            &[],
            u8::from(*self.reachable.borrow()),
        );

        gauge(
            &mut out,
            "madoguchi_gateway_device_up",
            "1 when the device answers on its port.",
        );
        for (device, h) in &self.printers {
            let h = h.borrow();
            sample(
                &mut out,
                "madoguchi_gateway_device_up",
                &[("device", device)],
                u8::from(h.connected),
            );
        }
        for (kiosk, h) in &self.panels {
            let h = h.borrow();
            sample(
                &mut out,
                "madoguchi_gateway_device_up",
                &[("device", &format!("panel-{kiosk}"))],
                u8::from(h.connected),
            );
        }
        for (register, h) in &self.terminals {
            let h = h.borrow();
            sample(
                &mut out,
                "madoguchi_gateway_device_up",
                &[("device", &format!("terminal-{register}"))],
                u8::from(h.connected),
            );
        }
        for (line, h) in &self.lines {
            let h = h.borrow();
            for (unit, board) in &h.boards {
                sample(
                    &mut out,
                    "madoguchi_gateway_device_up",
                    &[("device", &format!("board-{line}-{unit}"))],
                    u8::from(h.connected && board.online),
                );
            }
        }

        gauge(
            &mut out,
            "madoguchi_gateway_printer_condition",
            "1 while the printer is in the condition (paper_near_end, paper_out, cover_open, offline).",
        );
        for (device, h) in &self.printers {
            let h = h.borrow();
            for (condition, on) in [
                ("paper_near_end", h.paper_near_end),
                ("paper_out", h.paper_out),
                ("cover_open", h.cover_open),
                ("offline", h.offline),
            ] {
                sample(
                    &mut out,
                    "madoguchi_gateway_printer_condition",
                    &[("device", device), ("condition", condition)],
                    u8::from(on),
                );
            }
        }

        gauge(
            &mut out,
            "madoguchi_gateway_board_resends",
            "Displays re-sent to a board after it lost its value.",
        );
        for (line, h) in &self.lines {
            let h = h.borrow();
            for (unit, board) in &h.boards {
                sample(
                    &mut out,
                    "madoguchi_gateway_board_resends",
                    &[("device", &format!("board-{line}-{unit}"))],
                    board.resends,
                );
            }
        }

        gauge(
            &mut out,
            "madoguchi_gateway_outbox_tickets",
            "Tickets printed offline, by state (pending = not yet imported).",
        );
        let count = |state| async move { self.store.outbox_count(state).await.unwrap_or(0) };
        let pending = count(OutboxState::Printed).await + count(OutboxState::Printing).await;
        for (state, value) in [
            ("pending", pending),
            ("imported", count(OutboxState::Imported).await),
            ("rejected", count(OutboxState::Rejected).await),
            ("void", count(OutboxState::Void).await),
        ] {
            sample(
                &mut out,
                "madoguchi_gateway_outbox_tickets",
                &[("state", state)],
                value,
            );
        }
        out
    }

    /// Serves `GET /metrics` on `listener` until `stop` fires.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = self.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render().await,
                    )
                }
            }),
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    }
}
