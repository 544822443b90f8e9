//! The signage service's client of the queue service. Signage follows the
//! queue only through its public gRPC API (`GetOfficeStatus`, `GetTicket`,
//! `WatchOffice`), as any display would, with a `display`-role bearer
//! token: read-only, its own municipality only.

use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds the bearer token and the trace context to every request.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        // Interceptors run in the caller's span, so the call continues the
        // caller's trace (W3C traceparent).
        madoguchi_platform::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

/// The generated queue client with the signage token.
pub type QueueClient = QueueServiceClient<InterceptedService<Channel, Bearer>>;

/// A lazily connecting client of the queue at `url`: creating it never
/// fails on a queue that is not up yet, and the channel reconnects by
/// itself, so the signage pages recover when the queue comes back. With
/// `dns:///host:port` the hub's followers spread over the queue's replicas
/// and move to another when theirs drains (see
/// `madoguchi_platform::channel`).
pub fn connect(url: &str, token: &SecretString) -> Result<QueueClient, String> {
    let header = AsciiMetadataValue::try_from(format!("Bearer {}", token.expose_secret()))
        .map_err(|_| "the queue token is not printable ascii".to_owned())?;
    let channel = madoguchi_platform::channel::lazy_channel(url, |e| e.tcp_nodelay(true))
        .map_err(|e| format!("invalid queue url {e}"))?;
    Ok(QueueServiceClient::with_interceptor(
        channel,
        Bearer(header),
    ))
}
