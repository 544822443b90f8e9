//! Request ids, the per-request span and the RPC duration metric.
//!
//! Every request gets an id: the caller's `x-request-id` when it is a
//! sane token (visible ASCII, at most 64 bytes), otherwise a fresh UUIDv7.
//! The id is echoed in the response headers and recorded, with the
//! authenticated subject, on a span that wraps the whole request, so every
//! log line of a request can be found by its id. Request bodies are never
//! logged.
//!
//! The span follows OpenTelemetry's RPC conventions (semantic conventions
//! 1.37 onwards): it is named by `rpc.method` (`package.Service/Method`),
//! is of kind server, and carries `rpc.system.name` = `grpc`, `rpc.method`,
//! `rpc.status_code` (the gRPC code's name) and, for the codes the gRPC
//! conventions count as server errors, `error.type` and an error status.
//! It continues the caller's trace when the request carries a W3C
//! `traceparent`. A public page (HTTP, not gRPC) gets a span named by its
//! HTTP method and the public prefix, never by its path (status-page paths
//! hold tokens).
//!
//! The same layer records `rpc_server_call_duration_seconds` when the
//! server has [`Metrics`]: from the request's arrival to its response
//! headers (for a stream, its start). A method the server does not serve
//! is counted as `_OTHER`, so a scanner cannot grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderValue;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::Metrics;

/// The header that carries request ids.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of a request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The tower layer that assigns request ids, opens the request span and
/// times the call.
#[derive(Debug, Clone, Default)]
pub struct RequestTraceLayer {
    metrics: Option<Metrics>,
}

impl RequestTraceLayer {
    /// A layer that also records RPC durations into `metrics`.
    pub fn new(metrics: Option<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RequestTraceLayer {
    type Service = RequestTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTrace {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RequestTraceLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequestTrace<S> {
    inner: S,
    metrics: Option<Metrics>,
}

/// The name of a gRPC status code as OpenTelemetry's `rpc.status_code`
/// spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The codes OpenTelemetry's gRPC conventions count as errors of a server
/// span (the others are the caller's mistakes, not the server's).
fn server_error(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The gRPC status of a response: its `grpc-status` header (a
/// trailers-only answer, which is how errors come), otherwise OK (the
/// status of a success comes in the trailers, after the body).
fn response_code<R>(response: &http::Response<R>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 64 && bytes.iter().all(|b| b.is_ascii_graphic())
}

impl<S, B, R> Service<http::Request<B>> for RequestTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(value) if acceptable(value) => value.clone(),
            _ => HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        };
        let id_text = id.to_str().unwrap_or_default().to_owned();
        let grpc = crate::plain_http::is_grpc(&request);
        let path = request.uri().path();
        let method = path.strip_prefix('/').unwrap_or(path).to_owned();
        let span = if grpc {
            tracing::info_span!(
                "rpc",
                otel.name = method.as_str(),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system.name = "grpc",
                rpc.method = method.as_str(),
                rpc.status_code = tracing::field::Empty,
                "error.type" = tracing::field::Empty,
                request_id = id_text.as_str(),
                subject = tracing::field::Empty,
            )
        } else {
            let prefix = path.split('/').nth(1).unwrap_or_default();
            tracing::info_span!(
                "http",
                otel.name = format!("{} /{prefix}", request.method()).as_str(),
                otel.kind = "server",
                http.request.method = request.method().as_str(),
                http.response.status_code = tracing::field::Empty,
                request_id = id_text.as_str(),
                subject = tracing::field::Empty,
            )
        };
        // Continue the caller's trace (nothing when traces are not
        // exported: the propagator is then a no-op).
        let parent = crate::telemetry::extract(request.headers());
        let _ = span.set_parent(parent);
        request.extensions_mut().insert(RequestId(id_text));
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let result = future.await;
                let span = tracing::Span::current();
                match &result {
                    Ok(response) if grpc => {
                        let code = response_code(response);
                        let name = code_name(code);
                        span.record("rpc.status_code", name);
                        if server_error(code) {
                            span.record("error.type", name);
                            span.record("otel.status_code", "ERROR");
                        }
                        if let Some(metrics) = &metrics {
                            let method = if code == tonic::Code::Unimplemented {
                                "_OTHER"
                            } else {
                                method.as_str()
                            };
                            metrics.record_rpc(method, name, started.elapsed().as_secs_f64());
                        }
                        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "done");
                    }
                    Ok(response) => {
                        span.record("http.response.status_code", response.status().as_u16());
                    }
                    Err(error) => {
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(%error, "transport error");
                    }
                }
                result.map(|mut response| {
                    response.headers_mut().insert(REQUEST_ID_HEADER, id);
                    response
                })
            }
            .instrument(span),
        )
    }
}
