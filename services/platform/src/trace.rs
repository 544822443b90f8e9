//! Request ids and the per-request tracing span.
//!
//! Every request gets an id: the caller's `x-request-id` when it is a
//! sane token (visible ASCII, at most 64 bytes), otherwise a fresh UUIDv7.
//! The id is echoed in the response headers and recorded, with the gRPC
//! method and the authenticated subject, on a span that wraps the whole
//! request, so every log line of a request can be found by its id. Request
//! bodies are never logged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderValue;
use tower::{Layer, Service};
use tracing::Instrument;

/// The header that carries request ids.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of a request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The tower layer that assigns request ids and opens the request span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTraceLayer;

impl<S> Layer<S> for RequestTraceLayer {
    type Service = RequestTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTrace { inner }
    }
}

/// The service [`RequestTraceLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequestTrace<S> {
    inner: S,
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
        let id = match request.headers().get(REQUEST_ID_HEADER) {
            Some(value) if acceptable(value) => value.clone(),
            _ => HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        };
        let id_text = id.to_str().unwrap_or_default().to_owned();
        let span = tracing::info_span!(
            "grpc",
            method = request.uri().path(),
            request_id = id_text.as_str(),
            subject = tracing::field::Empty,
        );
        request.extensions_mut().insert(RequestId(id_text));
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let started = Instant::now();
        Box::pin(
            async move {
                let result = future.await;
                match &result {
                    Ok(_) => {
                        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "done")
                    }
                    Err(error) => tracing::warn!(%error, "transport error"),
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
