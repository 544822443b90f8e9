//! Serving a set of gRPC services on a listener the caller bound.
//!
//! The caller binds (so tests bind `127.0.0.1:0`) and passes a shutdown
//! future. On shutdown the server stops accepting, flips health to
//! NOT_SERVING, tells long-lived streams to end through [`Draining`], and
//! waits for in-flight requests up to a deadline, after which remaining
//! connections are dropped.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::auth::{AuthLayer, TokenRegistry};
use crate::plain_http::PlainHttpLayer;
use crate::trace::RequestTraceLayer;

/// Server-wide limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Deadline of one request (streams excepted: they end on shutdown).
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long the server keeps serving after it turned NOT_SERVING on a
    /// shutdown signal, before it stops accepting and ends its streams
    /// (zero: at once).
    pub drain_delay: Duration,
    /// Concurrent requests per connection.
    pub concurrency_per_connection: usize,
    /// Path prefixes served without credentials and over HTTP/1.1 too:
    /// the public web pages (`/signage/`). gRPC stays authenticated.
    pub public_http_prefixes: Vec<&'static str>,
    /// TLS (and client-certificate checking) on the port; `None` is
    /// cleartext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Close client connections gracefully after this long (see
    /// `ServerConfig::max_connection_age`); `None` keeps them.
    pub max_connection_age: Option<Duration>,
    /// Where RPC durations are recorded (`rpc_server_call_duration_seconds`);
    /// `None` records nothing.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            concurrency_per_connection: 256,
            public_http_prefixes: Vec::new(),
            tls: None,
            max_connection_age: None,
            metrics: None,
        }
    }
}

/// The health name that answers SERVING for as long as the process runs,
/// draining included: what a liveness probe asks. The overall name `""`
/// and each service's name turn NOT_SERVING when draining starts, which is
/// what a readiness probe asks — a draining pod leaves the endpoints but
/// is not killed for it.
pub const LIVENESS: &str = "liveness";

/// Sender half of the drain signal; owned by [`serve`].
#[derive(Debug, Clone)]
pub struct DrainSignal(watch::Sender<bool>);

/// Receiver half: long-lived handlers (streams) end when it fires.
#[derive(Debug, Clone)]
pub struct Draining(watch::Receiver<bool>);

/// A new drain signal and its first receiver.
pub fn drain_channel() -> (DrainSignal, Draining) {
    let (tx, rx) = watch::channel(false);
    (DrainSignal(tx), Draining(rx))
}

impl DrainSignal {
    /// Tells every receiver to finish.
    pub fn drain(&self) {
        self.0.send_replace(true);
    }
}

impl Draining {
    /// Resolves once draining started (immediately if it already has).
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means shut down.
        let _ = self.0.wait_for(|draining| *draining).await;
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// The services to serve, with the health names they report under.
#[derive(Debug)]
pub struct ServiceSet {
    /// The gRPC routes of the application services.
    pub routes: Routes,
    /// Fully-qualified names (`madoguchi.queue.v1.QueueService`) for health.
    pub health_names: Vec<&'static str>,
}

/// Serves `services` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    services: ServiceSet,
    tokens: TokenRegistry,
    options: ServerOptions,
    drain: DrainSignal,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(
        &health_reporter,
        &services.health_names,
        ServingStatus::Serving,
    )
    .await;
    health_reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    let mut routes = services.routes.add_service(health_service);
    match reflection_services(&services.health_names) {
        Ok((v1, v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        Err(error) => tracing::warn!(%error, "reflection unavailable: descriptor set did not load"),
    }

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let layers = ServiceBuilder::new()
        .layer(RequestTraceLayer::new(options.metrics.clone()))
        // Plain HTTP outside the public pages is 404, not a gRPC answer.
        .layer(PlainHttpLayer::new(&options.public_http_prefixes))
        .layer(AuthLayer::new(tokens).with_public_prefixes(&options.public_http_prefixes));
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    // HTTP/1.1 is accepted beside HTTP/2 because browsers reach the public
    // pages over plain HTTP/1.1 (they never speak cleartext HTTP/2); gRPC
    // clients keep using HTTP/2 on the same port.
    let mut builder = Server::builder();
    if let Some(tls) = options.tls.clone() {
        builder = builder.tls_config(tls)?;
    }
    if let Some(age) = options.max_connection_age {
        // The same again as grace: a WatchOffice stream that outlives the
        // GOAWAY is cut then, and its client resumes from its sequence.
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(age);
    }
    let server = builder
        .accept_http1(!options.public_http_prefixes.is_empty())
        .timeout(options.request_timeout)
        .concurrency_limit_per_connection(options.concurrency_per_connection)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(layers)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    set_health(
        &health_reporter,
        &services.health_names,
        ServingStatus::NotServing,
    )
    .await;
    if !options.drain_delay.is_zero() {
        // Lame duck: NOT_SERVING already, still serving everything. Clients
        // that check health (platform::channel, the kubelet's readiness
        // probe) take this replica out of rotation before it refuses.
        tracing::info!(delay = ?options.drain_delay, "not serving; draining after the delay");
        tokio::select! {
            result = &mut server => return result,
            () = tokio::time::sleep(options.drain_delay) => {}
        }
    }
    tracing::info!(grace = ?options.shutdown_grace, "draining");
    drain.drain();
    let _ = stop_accepting.send(());
    match tokio::time::timeout(options.shutdown_grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("drain deadline passed; dropping remaining connections");
            Ok(())
        }
    }
}

/// Health and both reflection versions, beside the application services.
const PLATFORM_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Reflection v1 and v1alpha, advertising exactly the services this process
/// serves: the application services in `served` plus health and reflection.
///
/// Both versions are offered because common clients (Python's
/// `grpcio-reflection`, older grpcurl and Postman) still speak only v1alpha.
/// The whole madoguchi descriptor set is registered so that every message
/// resolves by symbol, but `with_service_name` limits `ListServices`: a
/// one-service process, or the server without the gateway's
/// `KioskService`, must not advertise RPCs that would answer UNIMPLEMENTED.
/// Both reflection descriptor sets go into both builders so either version
/// can describe the other.
#[allow(clippy::type_complexity)]
fn reflection_services(
    served: &[&'static str],
) -> Result<
    (
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
        tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        served.iter().chain(PLATFORM_SERVICES.iter()).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(madoguchi_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                ),
            |builder, name| builder.with_service_name(*name),
        )
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

async fn set_health(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// The server TLS configuration from PEM files.
pub fn tls_config(
    files: &crate::config::TlsFiles,
) -> Result<tonic::transport::ServerTlsConfig, String> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("tls: {}: {e}", path.display()))
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}
