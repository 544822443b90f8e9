//! `madoguchi edge`: a stand-in for the cluster's edge proxy (the Gateway
//! API routes in `k8s/`) on a machine without one — for
//! `scripts/cluster-local.sh` and the cluster tests, never for production.
//! One cleartext port forwards each request, by its path prefix (a gRPC
//! service, or `/signage/` for the public pages), to that service's
//! replicas — streams, trailers and all — over a health-checked, balanced
//! channel (`madoguchi_platform::channel`), the way Envoy routes a
//! `GRPCRoute` to ready endpoints. A request whose backend cannot take it
//! gets `UNAVAILABLE`, as from a real proxy, so clients retry with their
//! request id.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use madoguchi_platform::plain_http::{is_grpc, not_found};
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
    /// Serves on `listener`, routing each path prefix to its target
    /// (`http://…`, `dns:///…` or `ipv4:…,…`); the first matching prefix
    /// wins. Runs until the runtime stops.
    pub fn start(
        listener: tokio::net::TcpListener,
        routes: Vec<(String, String)>,
    ) -> Result<Self, String> {
        let routes: Arc<Vec<(String, Channel)>> = Arc::new(
            routes
                .into_iter()
                .map(|(prefix, target)| {
                    madoguchi_platform::channel::lazy_channel(&target, |e| e)
                        .map(|channel| (prefix, channel))
                })
                .collect::<Result<_, _>>()?,
        );
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
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
                    // HTTP/1.1 too: browsers reach the public pages so.
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        Ok(Self { addr })
    }
}

async fn forward(
    routes: &[(String, Channel)],
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Body> {
    let path = request.uri().path().to_owned();
    let Some((_, channel)) = routes
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
    else {
        // As the servers answer: a gRPC status to gRPC, 404 to the rest.
        if !is_grpc(&request) {
            return not_found();
        }
        return tonic::Status::unimplemented(format!("no route for {path}")).into_http();
    };
    let request = request.map(Body::new);
    match channel.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) => tonic::Status::unavailable(format!("upstream: {error}")).into_http(),
    }
}

/// Parses `PREFIX=TARGET` (a `--route` of `madoguchi edge`).
pub fn parse_route(route: &str) -> Result<(String, String), String> {
    let (prefix, target) = route
        .split_once('=')
        .ok_or_else(|| format!("{route}: expected PREFIX=TARGET"))?;
    if !prefix.starts_with('/') {
        return Err(format!("{route}: the prefix must start with /"));
    }
    madoguchi_platform::channel::Target::parse(target)?;
    Ok((prefix.to_owned(), target.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_route("/madoguchi.queue.v1.QueueService/=ipv4:127.0.0.1:1,127.0.0.1:2"),
            Ok((
                "/madoguchi.queue.v1.QueueService/".to_owned(),
                "ipv4:127.0.0.1:1,127.0.0.1:2".to_owned()
            ))
        );
        for bad in ["/x", "x=http://a:1", "/x=queue:1"] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }
}
