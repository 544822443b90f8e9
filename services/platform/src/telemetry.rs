//! Logs and traces.
//!
//! **Logs** go to stderr, filtered with `MADOGUCHI_LOG` (e.g.
//! `info,madoguchi_queue=debug`; default `info`; spans are never printed,
//! only events), as text or, with
//! `MADOGUCHI_LOG_FORMAT=json`, one JSON object per line carrying the
//! `trace_id` and `span_id` of the span the line was written in, for a
//! cluster's log collector. Logs never carry request bodies or statements.
//!
//! **Traces** are the same `tracing` spans, exported as OpenTelemetry spans
//! over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not at all otherwise.
//! Which spans are exported is filtered apart from the logs, with
//! `MADOGUCHI_TRACE` (same syntax; default `info,madoguchi::db=debug`:
//! every request and device span, and the database operations). The standard variables apply: `OTEL_SERVICE_NAME` (default: the name the
//! program gives), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`),
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_BSP_MAX_QUEUE_SIZE` (2048), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512)
//! and `OTEL_BSP_SCHEDULE_DELAY` (1000 ms here); `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none` turn export off.
//!
//! Finished spans go through a bounded queue to an exporter thread; when
//! the queue is full a span is dropped and counted
//! ([`spans_dropped`], the `madoguchi_telemetry_spans_dropped_total`
//! metric), so a slow or absent collector never holds up a request.
//!
//! **Propagation** is W3C trace context (`traceparent`, `tracestate`): the
//! server layer ([`crate::trace`]) continues the caller's trace, clients
//! call [`inject`] on their outgoing metadata, and writers that leave a
//! record for another process to act on (the queue's event log) store
//! [`current_traceparent`] beside it, which the reader turns back into a
//! parent with [`context_from_traceparent`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// What is exported unless `MADOGUCHI_TRACE` says otherwise.
pub const DEFAULT_TRACE_FILTER: &str = "info,madoguchi::db=debug";

static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);
static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Spans dropped because the export queue was full, since the process
/// started.
pub fn spans_dropped() -> u64 {
    SPANS_DROPPED.load(Ordering::Relaxed)
}

/// Spans handed to the collector successfully, since the process started.
pub fn spans_exported() -> u64 {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

/// Export calls that failed (collector unreachable, timed out, refused).
pub fn export_failures() -> u64 {
    EXPORT_FAILURES.load(Ordering::Relaxed)
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, with trace and span ids.
    Json,
}

/// What [`init`] reads from the environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The log filter (`MADOGUCHI_LOG`).
    pub log_filter: String,
    /// Which spans are exported (`MADOGUCHI_TRACE`).
    pub trace_filter: String,
    /// `MADOGUCHI_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Whether traces are exported (an OTLP endpoint is configured and the
    /// SDK is not disabled).
    pub export_traces: bool,
    /// The collector's OTLP/gRPC endpoint
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The service name when `OTEL_SERVICE_NAME` does not give one.
    pub default_service_name: String,
    /// Export queue capacity in spans.
    pub max_queue: usize,
    /// Largest export batch.
    pub max_batch: usize,
    /// Longest a finished span waits before it is exported.
    pub schedule_delay: Duration,
}

impl TelemetryConfig {
    /// The configuration from the process environment.
    pub fn from_env(default_service_name: &str) -> Result<Self, String> {
        Self::from_vars(default_service_name, |name| std::env::var(name).ok())
    }

    /// The configuration from `var` (the environment in production, a map
    /// in tests).
    pub fn from_vars(
        default_service_name: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let log_format = match var("MADOGUCHI_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(format!(
                    "MADOGUCHI_LOG_FORMAT: expected text or json, not {other:?}"
                ));
            }
        };
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
        let endpoint = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .into_iter()
        .find(|name| set(name))
        .and_then(&var);
        let export_traces = !disabled && endpoint.is_some();
        let number = |name: &'static str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: expected a positive integer, not {text:?}")),
            }
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?;
        let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.min(max_queue);
        let delay = number("OTEL_BSP_SCHEDULE_DELAY", 1000)?;
        Ok(Self {
            log_filter: var("MADOGUCHI_LOG").unwrap_or_else(|| "info".into()),
            trace_filter: var("MADOGUCHI_TRACE").unwrap_or_else(|| DEFAULT_TRACE_FILTER.into()),
            log_format,
            export_traces,
            endpoint,
            default_service_name: default_service_name.to_owned(),
            max_queue: usize::try_from(max_queue).unwrap_or(usize::MAX),
            max_batch: usize::try_from(max_batch).unwrap_or(usize::MAX),
            schedule_delay: Duration::from_millis(delay),
        })
    }
}

/// The process's telemetry; flushes the traces still queued when shut
/// down (or dropped).
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is queued and stops the exporter (waits up to 5 s).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs logging, and tracing export where configured, from the
/// environment. Call inside the tokio runtime (the OTLP client runs on
/// it). A second call installs nothing and returns an inert handle.
/// Configuration errors are printed and logging falls back to text
/// without export.
pub fn init(default_service_name: &str) -> Telemetry {
    match TelemetryConfig::from_env(default_service_name) {
        Ok(config) => init_with(&config),
        Err(message) => {
            eprintln!("telemetry: {message}; logging as text without trace export");
            let filters_only = TelemetryConfig::from_vars(default_service_name, |name| {
                matches!(name, "MADOGUCHI_LOG" | "MADOGUCHI_TRACE")
                    .then(|| std::env::var(name).ok())
                    .flatten()
            });
            match filters_only {
                Ok(config) => init_with(&config),
                Err(_) => Telemetry::default(),
            }
        }
    }
}

/// [`init`] with an explicit configuration.
pub fn init_with(config: &TelemetryConfig) -> Telemetry {
    let filter = |variable: &str, text: &str| {
        EnvFilter::try_new(text).unwrap_or_else(|error| {
            eprintln!("{variable}: {error}; using info (the filter was {text:?})");
            EnvFilter::new("info")
        })
    };
    let provider = if config.export_traces {
        match exporting_provider(config) {
            Ok(provider) => Some(provider),
            Err(message) => {
                eprintln!("telemetry: cannot export traces: {message}");
                None
            }
        }
    } else {
        None
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("madoguchi"))
            .with_threads(false)
            .with_location(false)
            .with_tracked_inactivity(false)
            .with_filter(filter("MADOGUCHI_TRACE", &config.trace_filter))
    });
    let text = (config.log_format == LogFormat::Text).then(|| {
        use std::io::IsTerminal as _;
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(true)
            .with_filter(filter("MADOGUCHI_LOG", &config.log_filter))
    });
    let json = (config.log_format == LogFormat::Json).then(|| {
        JsonLines::new(std::io::stderr).with_filter(filter("MADOGUCHI_LOG", &config.log_filter))
    });
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(text)
        .with(json)
        .try_init()
        .is_ok();
    if !installed {
        // Another subscriber (an earlier init in this process) is in force;
        // this provider would export nothing.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry::default();
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::info!(
            queue = config.max_queue,
            batch = config.max_batch,
            delay_ms = config.schedule_delay.as_millis() as u64,
            "exporting traces over OTLP"
        );
    }
    Telemetry { provider }
}

fn exporting_provider(config: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    // The exporter reads the other OTEL_EXPORTER_OTLP_* settings itself
    // (timeout, headers, compression).
    use opentelemetry_otlp::WithExportConfig as _;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.trim());
    }
    let exporter = builder.build().map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(config.default_service_name.clone());
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "no tokio runtime to run the OTLP client on".to_owned())?;
    let processor = BoundedExport::start(exporter, handle, config)?;
    // The sampler comes from OTEL_TRACES_SAMPLER (the SDK's default
    // configuration reads it).
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// A span processor with a bounded queue that never blocks the span's
/// thread: `on_end` either enqueues or drops and counts. One exporter
/// thread takes batches off the queue and exports them on the runtime.
struct BoundedExport {
    spans: SyncSender<SpanData>,
    control: Mutex<Sender<Control>>,
    resource: Arc<Mutex<Option<Resource>>>,
}

impl fmt::Debug for BoundedExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedExport").finish_non_exhaustive()
    }
}

impl BoundedExport {
    fn start<E: SpanExporter + 'static>(
        exporter: E,
        runtime: tokio::runtime::Handle,
        config: &TelemetryConfig,
    ) -> Result<Self, String> {
        let (spans, queue) = std::sync::mpsc::sync_channel(config.max_queue);
        let (control, commands) = std::sync::mpsc::channel();
        let resource = Arc::new(Mutex::new(None));
        let worker = Worker {
            exporter,
            runtime,
            queue,
            commands,
            resource: resource.clone(),
            max_batch: config.max_batch,
            delay: config.schedule_delay,
        };
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the export thread: {e}"))?;
        Ok(Self {
            spans,
            control: Mutex::new(control),
            resource,
        })
    }

    fn command(&self, make: fn(Sender<()>) -> Control, timeout: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        let sent = self
            .control
            .lock()
            .map(|control| control.send(make(done)).is_ok())
            .unwrap_or(false);
        if sent {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

impl SpanProcessor for BoundedExport {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                SPANS_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.command(Control::Flush, Duration::from_secs(5));
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.command(Control::Shutdown, timeout);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Ok(mut slot) = self.resource.lock() {
            *slot = Some(resource.clone());
        }
    }
}

struct Worker<E> {
    exporter: E,
    runtime: tokio::runtime::Handle,
    queue: Receiver<SpanData>,
    commands: Receiver<Control>,
    resource: Arc<Mutex<Option<Resource>>>,
    max_batch: usize,
    delay: Duration,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut oldest: Option<Instant> = None;
        loop {
            // Commands are checked between waits of at most 100 ms.
            let wait = match oldest {
                Some(at) => self.delay.saturating_sub(at.elapsed()),
                None => self.delay,
            }
            .min(Duration::from_millis(100));
            match self.queue.recv_timeout(wait) {
                Ok(span) => {
                    oldest.get_or_insert_with(Instant::now);
                    batch.push(span);
                    if batch.len() >= self.max_batch {
                        self.export(&mut batch);
                        oldest = None;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain(&mut batch);
                    return;
                }
            }
            if oldest.is_some_and(|at| at.elapsed() >= self.delay) {
                self.export(&mut batch);
                oldest = None;
            }
            match self.commands.try_recv() {
                Ok(Control::Flush(done)) => {
                    self.drain(&mut batch);
                    oldest = None;
                    let _ = done.send(());
                }
                Ok(Control::Shutdown(done)) => {
                    self.drain(&mut batch);
                    let _ = self.exporter.shutdown();
                    let _ = done.send(());
                    return;
                }
                Err(_) => {}
            }
        }
    }

    /// Exports everything queued now.
    fn drain(&mut self, batch: &mut Vec<SpanData>) {
        while let Ok(span) = self.queue.try_recv() {
            batch.push(span);
            if batch.len() >= self.max_batch {
                self.export(batch);
            }
        }
        self.export(batch);
    }

    fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        // The provider hands the resource over after the thread started.
        if let Ok(mut slot) = self.resource.lock()
            && let Some(resource) = slot.take()
        {
            self.exporter.set_resource(&resource);
        }
        let spans = std::mem::take(batch);
        let count = spans.len() as u64;
        // The exporter's client lives on the runtime; this thread only
        // waits for it.
        let result = self.runtime.block_on(self.exporter.export(spans));
        match result {
            Ok(()) => {
                SPANS_EXPORTED.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                // Once per failure, never per span; the spans are lost.
                EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
                SPANS_DROPPED.fetch_add(count, Ordering::Relaxed);
                if !matches!(error, OTelSdkError::AlreadyShutdown) {
                    eprintln!("telemetry: exporting {count} spans failed: {error}");
                }
            }
        }
    }
}

/// A JSON object per line: time, level, target, message and fields, the
/// names of the enclosing spans, and the OpenTelemetry trace and span ids
/// of the current span when there is one. A layer rather than an fmt
/// event format: reading a span's OpenTelemetry context needs the
/// dispatcher, which a layer is handed when it is registered (inside an
/// event's dispatch the default dispatcher is not reachable).
struct JsonLines<W> {
    make_writer: W,
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<W> JsonLines<W> {
    fn new(make_writer: W) -> Self {
        Self {
            make_writer,
            dispatch: std::sync::OnceLock::new(),
        }
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLines<W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_owned().into(),
        );
        line.insert("target".into(), event.metadata().target().into());
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.0.is_empty() {
            line.insert(
                "fields".into(),
                serde_json::Value::Object(fields.0.into_iter().collect()),
            );
        }
        if let Some(scope) = ctx.event_scope(event) {
            let spans: Vec<&'static str> = scope.from_root().map(|span| span.name()).collect();
            line.insert("spans".into(), spans.into());
        }
        let current = event
            .parent()
            .cloned()
            .or_else(|| ctx.lookup_current().map(|span| span.id()));
        let dispatch = self.dispatch.get().and_then(|d| d.upgrade());
        if let (Some(id), Some(dispatch)) = (current, dispatch)
            && let Some(context) = tracing_opentelemetry::get_otel_context(&id, &dispatch)
        {
            let span = context.span();
            let span_context = span.span_context();
            if span_context.is_valid() {
                line.insert(
                    "trace_id".into(),
                    span_context.trace_id().to_string().into(),
                );
                line.insert("span_id".into(), span_context.span_id().to_string().into());
            }
        }
        if let Ok(mut text) = serde_json::to_string(&serde_json::Value::Object(line)) {
            text.push('\n');
            let mut writer = self.make_writer.make_writer();
            let _ = std::io::Write::write_all(&mut writer, text.as_bytes());
        }
    }
}

#[derive(Default)]
struct JsonFields(HashMap<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Headers as a propagation carrier.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Adds the current span's trace context to outgoing request metadata
/// (nothing when traces are not exported).
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    inject_context(&tracing::Span::current().context(), metadata);
}

/// Adds `context` to outgoing request metadata.
pub fn inject_context(
    context: &opentelemetry::Context,
    metadata: &mut tonic::metadata::MetadataMap,
) {
    if !context.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, &mut MetadataInjector(metadata));
    });
}

/// The caller's trace context from request headers (empty when there is
/// none, or traces are not exported).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// The W3C `traceparent` of the current span, when it is sampled: what a
/// writer stores beside a record so that whoever acts on the record later
/// continues this trace.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() || !span_context.is_sampled() {
        return None;
    }
    Some(format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// A parent context from a stored `traceparent` (empty when it does not
/// parse).
pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes the span a child of the trace `traceparent` names (no-op when
/// empty, malformed, or traces are not exported).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let context = context_from_traceparent(traceparent);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_is_off_without_an_endpoint_and_when_disabled() {
        let off =
            TelemetryConfig::from_vars("madoguchi", vars(&[])).unwrap_or_else(|e| panic!("{e}"));
        assert!(!off.export_traces);
        assert_eq!(off.log_format, LogFormat::Text);
        let on = TelemetryConfig::from_vars(
            "madoguchi",
            vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(on.export_traces);
        for disabled in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let config = TelemetryConfig::from_vars(
                "madoguchi",
                vars(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                    disabled,
                ]),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.export_traces, "{disabled:?}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let error = TelemetryConfig::from_vars("m", vars(&[("MADOGUCHI_LOG_FORMAT", "xml")]))
            .err()
            .unwrap_or_default();
        assert!(error.contains("MADOGUCHI_LOG_FORMAT"), "{error}");
        let error = TelemetryConfig::from_vars("m", vars(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")]))
            .err()
            .unwrap_or_default();
        assert!(error.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{error}");
        let json = TelemetryConfig::from_vars("m", vars(&[("MADOGUCHI_LOG_FORMAT", "json")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json.log_format, LogFormat::Json);
    }

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_trace_and_span_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(JsonLines::new(move || writer.clone()));
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("rpc", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(ticket = "A001", count = 2, "ticket called");
            let context = tracing::Span::current().context();
            let span_context = context.span().span_context().clone();
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        });
        let text = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(text).unwrap_or_default();
        let line: serde_json::Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(line["message"], "ticket called");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["ticket"], "A001");
        assert_eq!(line["fields"]["count"], 2);
        assert_eq!(line["spans"][0], "rpc");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"], span_id.as_str());
        assert_ne!(trace_id, "00000000000000000000000000000000");
    }

    /// A collector that never answers.
    #[derive(Debug)]
    struct Stuck;

    impl SpanExporter for Stuck {
        fn export(&self, _batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            std::future::pending()
        }
    }

    /// With the exporter stuck, ending spans neither blocks nor grows a
    /// queue: beyond the queue's capacity (and the batch stuck in export)
    /// every span is dropped and counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stuck_collector_makes_spans_drop_and_count_never_wait() {
        let mut config =
            TelemetryConfig::from_vars("test", vars(&[])).unwrap_or_else(|e| panic!("{e}"));
        config.max_queue = 4;
        config.max_batch = 2;
        config.schedule_delay = Duration::from_millis(1);
        let processor = BoundedExport::start(Stuck, tokio::runtime::Handle::current(), &config)
            .unwrap_or_else(|e| panic!("{e}"));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        let before = spans_dropped();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use opentelemetry::trace::{Span as _, Tracer as _};
            for _ in 0..1000 {
                tracer.start("span").end();
            }
            let _ = done.send(());
        });
        // A deadline that turns a blocked span into a failure, not a timing.
        assert!(
            finished.recv_timeout(Duration::from_secs(30)).is_ok(),
            "ending spans blocked on the stuck exporter"
        );
        let dropped = spans_dropped() - before;
        assert!(dropped >= 1000 - 4 - 2, "dropped {dropped}");
        // Shutting down would wait for the stuck export; leave it.
        std::mem::forget(provider);
    }

    #[test]
    fn a_stored_traceparent_becomes_a_remote_parent() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = context_from_traceparent(parent);
        let span = context.span();
        let span_context = span.span_context();
        assert!(span_context.is_valid());
        assert!(span_context.is_remote());
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(
            !context_from_traceparent("garbage")
                .span()
                .span_context()
                .is_valid()
        );
    }
}
