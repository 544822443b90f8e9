//! Prometheus metrics of a server process, served on an admin port of
//! their own (`GET /metrics`, with `GET /healthz` beside it), apart from
//! the gRPC port so that scraping needs no bearer token and a scrape can
//! never queue behind requests.
//!
//! Names follow OpenTelemetry's semantic conventions where one exists,
//! translated the way Prometheus translates OTLP names (dots become
//! underscores, the unit becomes a suffix): `rpc.server.call.duration`
//! (seconds, by `rpc.method` and `rpc.status_code`) is
//! `rpc_server_call_duration_seconds`, and the connection pool's
//! `db.client.connection.count` is `db_client_connection_count`. Project
//! metrics are `madoguchi_{service}_…`. Histograms resolve a tenth of a
//! millisecond: the call path's latency lives well under one.
//!
//! Every server builds one [`Metrics`] (tests run several servers in one
//! process, each with its own). Services register what they count;
//! gauges that are cheaper to read than to maintain (queue lengths, open
//! payments, pool use) are refreshed by hooks that run on each scrape.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

/// Bucket bounds in seconds for every latency histogram: from 0.1 ms to
/// 10 s, dense below 5 ms where the floor's calls are.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`] (10 s and more land in the
/// `+Inf` bucket).
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Labels of `rpc_server_call_duration_seconds`.
pub type RpcLabels = [(&'static str, String); 3];

/// A histogram family keyed by labels, with latency buckets.
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A float gauge (seconds, ratios).
pub type FloatGauge = Gauge<f64, AtomicU64>;

type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The metrics of one server process.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    refreshers: Arc<Mutex<Vec<Refresh>>>,
    rpc: LatencyFamily<RpcLabels>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the RPC histogram and the process-wide telemetry
    /// and storage metrics.
    pub fn new() -> Self {
        let rpc: LatencyFamily<RpcLabels> = Family::new_with_constructor(latency_histogram);
        let mut registry = Registry::default();
        registry.register_with_unit(
            "rpc_server_call_duration",
            "Duration of inbound gRPC calls until the response (the stream's start for streams)",
            Unit::Seconds,
            rpc.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            refreshers: Arc::new(Mutex::new(Vec::new())),
            rpc,
        }
    }

    /// Records one inbound call. `method` is `package.Service/Method`;
    /// `status` the gRPC code's name (`OK`, `NOT_FOUND`, …).
    pub fn record_rpc(&self, method: &str, status: &str, seconds: f64) {
        let labels = [
            ("rpc_system_name", "grpc".to_owned()),
            ("rpc_method", method.to_owned()),
            ("rpc_status_code", status.to_owned()),
        ];
        self.rpc.get_or_create(&labels).observe(seconds);
    }

    /// Registers a metric under `name` (a counter gets `_total` appended).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help.trim_end_matches('.'), metric);
        }
    }

    /// Registers a metric under `name` with a unit suffix.
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register_with_unit(name, help.trim_end_matches('.'), unit, metric);
        }
    }

    /// Runs `refresh` before every scrape (to set gauges from storage).
    pub fn on_scrape<F, Fut>(&self, refresh: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Ok(mut refreshers) = self.refreshers.lock() {
            refreshers.push(Arc::new(move || Box::pin(refresh())));
        }
    }

    /// Refreshes and encodes everything (OpenMetrics text).
    pub async fn render(&self) -> String {
        let refreshers: Vec<Refresh> = self
            .refreshers
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        for refresh in refreshers {
            refresh().await;
        }
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }

    /// Serves `/metrics` and `/healthz` on `listener` until `shutdown`
    /// resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = self.clone();
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                            metrics.render().await,
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok\n" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process-wide counters of trace export and SQLite checkpoints.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "madoguchi_telemetry_spans_dropped",
                "Finished spans dropped because the export queue was full or the export failed",
                crate::telemetry::spans_dropped(),
            ),
            (
                "madoguchi_telemetry_spans_exported",
                "Spans the collector accepted",
                crate::telemetry::spans_exported(),
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        if let Some(histogram) = crate::storage::checkpoint_histogram() {
            let metric = encoder.encode_descriptor(
                "madoguchi_sqlite_checkpoint_duration",
                "Duration of the passive WAL checkpoints of the SQLite database",
                Some(&Unit::Seconds),
                histogram.metric_type(),
            )?;
            histogram.encode(metric)?;
        }
        Ok(())
    }
}

/// Registers the connection pool gauges of `db`
/// (`db_client_connection_count` by state, `db_client_connection_max`),
/// read at each scrape.
pub fn register_pool(metrics: &Metrics, db: &sea_orm::DatabaseConnection, pool_name: &str) {
    let count: Family<[(&'static str, String); 2], Gauge> = Family::default();
    let max: Family<[(&'static str, String); 1], Gauge> = Family::default();
    metrics.register(
        "db_client_connection_count",
        "Connections of the database pool by state (idle, used).",
        count.clone(),
    );
    metrics.register(
        "db_client_connection_max",
        "Most connections the pool opens.",
        max.clone(),
    );
    let db = db.clone();
    let pool_name = pool_name.to_owned();
    metrics.on_scrape(move || {
        let (size, idle, limit) = crate::storage::pool_usage(&db);
        let name = ("db_client_connection_pool_name", pool_name.clone());
        count
            .get_or_create(&[
                name.clone(),
                ("db_client_connection_state", "idle".to_owned()),
            ])
            .set(idle);
        count
            .get_or_create(&[
                name.clone(),
                ("db_client_connection_state", "used".to_owned()),
            ])
            .set(size.saturating_sub(idle));
        max.get_or_create(&[name]).set(limit);
        std::future::ready(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rpc_durations_render_with_convention_names_and_fine_buckets() {
        let metrics = Metrics::new();
        metrics.record_rpc("madoguchi.queue.v1.QueueService/CallNext", "OK", 0.0004);
        let counter: Family<
            [(&'static str, String); 1],
            prometheus_client::metrics::counter::Counter,
        > = Family::default();
        metrics.register("madoguchi_test_calls", "Calls.", counter.clone());
        counter.get_or_create(&[("counter", "c1".to_owned())]).inc();
        let text = metrics.render().await;
        assert!(
            text.contains(
                "rpc_server_call_duration_seconds_bucket{le=\"0.0005\",rpc_system_name=\"grpc\",rpc_method=\"madoguchi.queue.v1.QueueService/CallNext\",rpc_status_code=\"OK\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("{le=\"0.00025\",rpc_system_name"), "{text}");
        assert!(
            text.contains("madoguchi_test_calls_total{counter=\"c1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("madoguchi_telemetry_spans_dropped_total"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
