//! A stand-in for the cluster's edge proxy (the Gateway API route in
//! `k8s/`): one cleartext HTTP/2 port that forwards each gRPC request, by
//! its service's path prefix, to that service's replicas — streams, trailers
//! and all — over a balanced channel, the way Envoy routes a `GRPCRoute`.
//! A request whose backend cannot take it gets `UNAVAILABLE`, as from a
//! real proxy, so clients retry with their request id.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;

/// The running proxy; it stops with the test's runtime.
#[derive(Debug)]
pub struct Edge {
    /// Where clients connect.
    pub addr: SocketAddr,
}

impl Edge {
    /// Listens on `127.0.0.1:0` and routes each path prefix to its target
    /// (`http://…` or `ipv4:…,…`, see `madoguchi_platform::channel`).
    pub async fn start(routes: Vec<(&'static str, String)>) -> Self {
        let routes: Arc<Vec<(&'static str, Channel)>> = Arc::new(
            routes
                .into_iter()
                .map(|(prefix, target)| {
                    let channel = madoguchi_platform::channel::lazy_channel(&target, |e| e)
                        .unwrap_or_else(|e| panic!("{e}"));
                    (prefix, channel)
                })
                .collect(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let routes = routes.clone();
                let service = tower::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let routes = routes.clone();
                        async move { Ok::<_, std::convert::Infallible>(forward(&routes, request).await) }
                    },
                );
                tokio::spawn(async move {
                    let _ = Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        Self { addr }
    }
}

async fn forward(
    routes: &[(&'static str, Channel)],
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Body> {
    let path = request.uri().path().to_owned();
    let Some((_, channel)) = routes.iter().find(|(prefix, _)| path.starts_with(prefix)) else {
        return tonic::Status::unimplemented(format!("no route for {path}")).into_http();
    };
    let request = request.map(Body::new);
    match channel.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) => tonic::Status::unavailable(format!("upstream: {error}")).into_http(),
    }
}
