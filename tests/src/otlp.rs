//! An OTLP trace receiver for the tests: a tonic server implementing the
//! collector's `TraceService` (from the `opentelemetry-proto` definitions)
//! on 127.0.0.1:0, keeping every span it is sent and the raw requests, so
//! tests can follow a trace across processes and search everything that
//! left a process for personal data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tonic::{Request, Response, Status};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// OTLP span kind (1 internal, 2 server, 3 client, …).
    pub kind: i32,
    /// Attributes as text.
    pub attributes: BTreeMap<String, String>,
    /// Event names, in order.
    pub events: Vec<String>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status: i32,
}

impl ReceivedSpan {
    /// The attribute `key` as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What the receiver got.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Every request, as its debug text (every string a process sent).
    raw: Vec<String>,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

#[derive(Debug, Clone)]
struct Service(Arc<Mutex<Received>>);

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        let mut spans = Vec::new();
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in &resource_spans.scope_spans {
                for span in &scope.spans {
                    spans.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: span.kind,
                        attributes: attributes(&span.attributes),
                        events: span.events.iter().map(|e| e.name.clone()).collect(),
                        status: span.status.as_ref().map_or(0, |s| s.code),
                    });
                }
            }
        }
        let mut received = self.0.lock().map_err(|_| Status::internal("poisoned"))?;
        received.raw.push(format!("{request:?}"));
        received.spans.extend(spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpSink {
    /// Starts a receiver on 127.0.0.1:0 on the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let received = Arc::new(Mutex::new(Received::default()));
        let service = TraceServiceServer::new(Service(received.clone()));
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self { addr, received }
    }

    /// `http://addr`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received
            .lock()
            .map(|r| r.spans.clone())
            .unwrap_or_default()
    }

    /// Everything received so far as text: span names, attributes, event
    /// attributes, resources.
    pub fn raw(&self) -> String {
        self.received
            .lock()
            .map(|r| r.raw.join("\n"))
            .unwrap_or_default()
    }

    /// The spans of trace `trace_id`.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Waits (up to 20 s) until `found` picks something out of the spans
    /// received; what it picked.
    pub async fn wait_for<T>(&self, what: &str, found: impl Fn(&[ReceivedSpan]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = found(&self.spans()) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| format!("{} {} {}", s.service, s.trace_id, s.name))
                    .collect();
                panic!(
                    "timed out waiting for {what}; spans received:\n{}",
                    names.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// True when `child` descends from `ancestor` within `spans` (following
/// parent ids).
pub fn descends(spans: &[ReceivedSpan], child: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut current = child.parent_span_id.clone();
    for _ in 0..64 {
        if current.is_empty() {
            return false;
        }
        if current == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == current) {
            Some(parent) => current = parent.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}
