//! The services the forms service depends on — identity and queue —
//! reached over gRPC like any other client. The caller's bearer token is
//! forwarded, so the identity service authorises and audits the staff
//! member who asked, not the forms service.

use madoguchi_platform::error::ServiceError;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::queue::v1 as q;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// Channels to the identity and queue services.
#[derive(Debug, Clone)]
pub struct Peers {
    identity: Channel,
    queue: Channel,
}

/// The caller's credentials, forwarded to peers.
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

/// Maps a peer's status to this service's error, keeping the peer's
/// precise reason where the caller can act on it.
fn peer_error(status: tonic::Status, field: &str, what: &'static str) -> ServiceError {
    let message = status.message().to_owned();
    match status.code() {
        Code::NotFound => ServiceError::not_found(what, message),
        Code::InvalidArgument => ServiceError::invalid(field, message),
        Code::PermissionDenied => ServiceError::PermissionDenied {
            reason: "PEER_PERMISSION_DENIED",
            message,
        },
        Code::FailedPrecondition => ServiceError::precondition("PEER_PRECONDITION", field, message),
        Code::Unavailable | Code::DeadlineExceeded => {
            ServiceError::Unavailable(format!("{what} service: {message}"))
        }
        Code::Unauthenticated => ServiceError::Unauthenticated("missing credentials"),
        _ => ServiceError::Internal(format!("{what} service: {status}")),
    }
}

impl Peers {
    /// Lazy channels to `identity_url` and `queue_url` (connected on first
    /// use, so one process can name itself before it listens);
    /// `dns:///host:port` spreads requests over every replica (see
    /// `madoguchi_platform::channel`).
    pub fn new(identity_url: &str, queue_url: &str) -> Result<Self, ServiceError> {
        let channel = |url: &str| {
            madoguchi_platform::channel::lazy_channel(url, |e| e.tcp_nodelay(true))
                .map_err(|e| ServiceError::Internal(format!("peer address {e}")))
        };
        Ok(Self {
            identity: channel(identity_url)?,
            queue: channel(queue_url)?,
        })
    }

    fn identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.identity.clone())
    }

    fn queue(&self) -> QueueServiceClient<Channel> {
        QueueServiceClient::new(self.queue.clone())
    }

    /// A stored identity verification.
    pub async fn verification(
        &self,
        auth: &Forwarded,
        name: &str,
    ) -> Result<id::IdentityVerification, ServiceError> {
        self.identity()
            .get_verification(auth.wrap(id::GetVerificationRequest {
                name: name.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| peer_error(s, "verification", "verification"))
    }

    /// A resident record.
    pub async fn resident(
        &self,
        auth: &Forwarded,
        name: &str,
        field: &str,
    ) -> Result<id::Resident, ServiceError> {
        self.identity()
            .get_resident(auth.wrap(id::GetResidentRequest {
                name: name.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| peer_error(s, field, "resident"))
    }

    /// A household with every member.
    pub async fn household(
        &self,
        auth: &Forwarded,
        name: &str,
    ) -> Result<id::Household, ServiceError> {
        self.identity()
            .get_household(auth.wrap(id::GetHouseholdRequest {
                name: name.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| peer_error(s, "subject", "household"))
    }

    /// The identity service's decisions on who may do what for whom.
    pub async fn check_proxy(
        &self,
        auth: &Forwarded,
        request: id::CheckProxyRequest,
    ) -> Result<Vec<id::ProcedureDecision>, ServiceError> {
        self.identity()
            .check_proxy(auth.wrap(request))
            .await
            .map(|r| r.into_inner().decisions)
            .map_err(|s| peer_error(s, "procedures", "proxy check"))
    }

    /// A queue ticket.
    pub async fn ticket(&self, auth: &Forwarded, name: &str) -> Result<q::Ticket, ServiceError> {
        self.queue()
            .get_ticket(auth.wrap(q::GetTicketRequest {
                name: name.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| peer_error(s, "ticket", "ticket"))
    }

    /// Moves a ticket to another category's queue, once per `request_id`
    /// (the queue replays a retry).
    pub async fn transfer(
        &self,
        auth: &Forwarded,
        ticket: &str,
        category: &str,
        request_id: &str,
    ) -> Result<q::Ticket, ServiceError> {
        self.queue()
            .transfer(auth.wrap(q::TransferRequest {
                name: ticket.to_owned(),
                category: category.to_owned(),
                etag: String::new(),
                request_id: request_id.to_owned(),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| peer_error(s, "ticket", "ticket"))
    }
}
