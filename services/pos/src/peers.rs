//! The forms service, reached over gRPC like any other client, to read the
//! certificate request an order charges. The caller's bearer token is
//! forwarded, so the forms service authorises the staff member who asked.

use madoguchi_platform::error::ServiceError;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// A channel to the forms service.
#[derive(Debug, Clone)]
pub struct FormsPeer {
    channel: Channel,
}

/// The caller's credentials, forwarded to the peer.
#[derive(Debug, Clone)]
pub struct Forwarded(Option<MetadataValue<Ascii>>);

impl Forwarded {
    /// Takes the authorization header of an incoming request.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        Self(request.metadata().get("authorization").cloned())
    }

    fn wrap<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        // The call continues the caller's trace (W3C traceparent).
        madoguchi_platform::telemetry::inject(request.metadata_mut());
        request
    }
}

impl FormsPeer {
    /// A lazy channel to `url` (connected on first use, so one process can
    /// name itself before it listens); `dns:///host:port` spreads requests
    /// over every replica (see `madoguchi_platform::channel`).
    pub fn new(url: &str) -> Result<Self, ServiceError> {
        let channel = madoguchi_platform::channel::lazy_channel(url, |e| e.tcp_nodelay(true))
            .map_err(|e| ServiceError::Internal(format!("forms address {e}")))?;
        Ok(Self { channel })
    }

    /// The certificate request `name`
    /// (`{visit}/certificateRequests/{id}`), read through its visit.
    pub async fn certificate_request(
        &self,
        auth: &Forwarded,
        name: &str,
    ) -> Result<f::CertificateRequest, ServiceError> {
        let visit = name
            .rsplit_once("/certificateRequests/")
            .map(|(visit, _)| visit)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "certificate_request",
                    "expected {visit}/certificateRequests/{id}",
                )
            })?;
        let visit = FormsServiceClient::new(self.channel.clone())
            .get_visit(auth.wrap(f::GetVisitRequest {
                name: visit.to_owned(),
            }))
            .await
            .map_err(|status| {
                let message = status.message().to_owned();
                match status.code() {
                    Code::NotFound => ServiceError::not_found("certificate request", name),
                    Code::InvalidArgument => ServiceError::invalid("certificate_request", message),
                    Code::PermissionDenied => ServiceError::PermissionDenied {
                        reason: "PEER_PERMISSION_DENIED",
                        message,
                    },
                    Code::Unauthenticated => ServiceError::Unauthenticated("missing credentials"),
                    Code::Unavailable | Code::DeadlineExceeded => {
                        ServiceError::Unavailable(format!("forms service: {message}"))
                    }
                    _ => ServiceError::Internal(format!("forms service: {status}")),
                }
            })?
            .into_inner();
        visit
            .certificate_requests
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ServiceError::not_found("certificate request", name))
    }
}
