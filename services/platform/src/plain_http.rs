//! What a plain HTTP request (a browser, a scanner, `curl`) gets on the
//! gRPC port outside the public pages: `404 Not Found`, not a gRPC answer.
//!
//! The port serves gRPC and, under the public prefixes (`/signage/`),
//! web pages. Without this layer every other path answered a browser as
//! gRPC would — `200 OK`, `content-type: application/grpc`,
//! `grpc-status: 16` (or `12` with a token) — which tells a resident's
//! browser nothing and a scanner that something is there.
//!
//! A request is gRPC when its `content-type` starts with
//! `application/grpc` (gRPC, `+proto`, gRPC-Web); those pass untouched
//! and keep their statuses. Any other request:
//!
//! * outside the public prefixes is answered `404` here, before
//!   authentication;
//! * under a public prefix goes to the pages; if no page route matched,
//!   the router's gRPC fallback answers, and that answer becomes `404`.
//!
//! Every `404` from here carries the same protective headers as the pages
//! (nothing to load, never framed, never sniffed, no referrer).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, MapOk, Ready, TryFutureExt, ready};
use http::{HeaderValue, StatusCode, header};
use tower::{Layer, Service};

/// The `Content-Security-Policy` of a response with nothing to load.
pub const NOTHING_TO_LOAD: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The layer; `public_prefixes` are the paths the web pages live under.
#[derive(Debug, Clone)]
pub struct PlainHttpLayer {
    public_prefixes: Arc<[&'static str]>,
}

impl PlainHttpLayer {
    /// Plain HTTP is served only under `public_prefixes` (each ending in
    /// `/`).
    pub fn new(public_prefixes: &[&'static str]) -> Self {
        Self {
            public_prefixes: public_prefixes.into(),
        }
    }
}

impl<S> Layer<S> for PlainHttpLayer {
    type Service = PlainHttp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PlainHttp {
            inner,
            public_prefixes: self.public_prefixes.clone(),
        }
    }
}

/// The service [`PlainHttpLayer`] produces.
#[derive(Debug, Clone)]
pub struct PlainHttp<S> {
    inner: S,
    public_prefixes: Arc<[&'static str]>,
}

type Reply = http::Response<tonic::body::Body>;

/// True for gRPC (and gRPC-Web) requests, by their content type.
pub fn is_grpc<B>(request: &http::Request<B>) -> bool {
    content_type_is_grpc(request.headers())
}

fn content_type_is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// `404 Not Found` as plain text, with the protective headers.
pub fn not_found() -> Reply {
    let mut reply = http::Response::new(tonic::body::Body::new(String::from("not found\n")));
    *reply.status_mut() = StatusCode::NOT_FOUND;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    protect(headers, NOTHING_TO_LOAD);
    reply
}

/// Sets the headers every public HTTP response carries: the content
/// security `policy`, no MIME sniffing, and no `Referer` (a status page's
/// URL holds its token).
pub fn protect(headers: &mut http::HeaderMap, policy: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A gRPC answer to a request that was not gRPC (no page matched) becomes
/// `404`; a page's answer passes.
fn page_or_not_found(reply: Reply) -> Reply {
    if content_type_is_grpc(reply.headers()) {
        not_found()
    } else {
        reply
    }
}

impl<S, B> Service<http::Request<B>> for PlainHttp<S>
where
    S: Service<http::Request<B>, Response = Reply>,
{
    type Response = Reply;
    type Error = S::Error;
    #[allow(clippy::type_complexity)]
    type Future = Either<
        S::Future,
        Either<Ready<Result<Reply, S::Error>>, MapOk<S::Future, fn(Reply) -> Reply>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if is_grpc(&request) {
            return Either::Left(self.inner.call(request));
        }
        let path = request.uri().path();
        if !self.public_prefixes.iter().any(|p| path.starts_with(p)) {
            return Either::Right(Either::Left(ready(Ok(not_found()))));
        }
        let pages: fn(Reply) -> Reply = page_or_not_found;
        Either::Right(Either::Right(self.inner.call(request).map_ok(pages)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(path: &str, content_type: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::get(path);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn grpc_is_told_by_content_type() {
        assert!(is_grpc(&request("/x.Y/Z", Some("application/grpc"))));
        assert!(is_grpc(&request("/x.Y/Z", Some("application/grpc+proto"))));
        assert!(is_grpc(&request("/x.Y/Z", Some("application/grpc-web"))));
        assert!(!is_grpc(&request("/x.Y/Z", None)));
        assert!(!is_grpc(&request("/x.Y/Z", Some("text/html"))));
    }
}
