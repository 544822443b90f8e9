//! The local `KioskService` (touch-screen kiosks): a thin adapter over
//! [`Kiosk`]. It listens only where the configuration says (normally
//! loopback on the kiosk PC) and carries no personal data.

use std::collections::HashMap;

use madoguchi_platform::error::ServiceError;
use madoguchi_proto::gateway::v1 as pb;
use madoguchi_proto::gateway::v1::kiosk_service_server::{KioskService, KioskServiceServer};
use madoguchi_proto::prost_types::Timestamp;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::kiosk::{Kiosk, KioskError};
use crate::store::OutboxState;

/// The service.
#[derive(Debug, Clone)]
pub struct KioskApi {
    kiosks: HashMap<String, Kiosk>,
}

impl KioskApi {
    /// Over the gateway's kiosks.
    pub fn new(kiosks: HashMap<String, Kiosk>) -> Self {
        Self { kiosks }
    }

    /// The tonic service.
    pub fn service(self) -> KioskServiceServer<Self> {
        KioskServiceServer::new(self)
    }

    fn kiosk(&self, id: &str) -> Result<&Kiosk, ServiceError> {
        self.kiosks
            .get(id)
            .ok_or_else(|| ServiceError::not_found("kiosk", id))
    }
}

fn to_status(error: KioskError) -> Status {
    let service_error = match error {
        KioskError::UnknownCategory(category) => ServiceError::invalid(
            "category",
            format!("{category} has no button on this kiosk"),
        ),
        KioskError::PrinterUnavailable(why) => {
            ServiceError::precondition("PRINTER_UNAVAILABLE", "printer", why)
        }
        KioskError::PrintFailed(error) => {
            ServiceError::precondition("PRINT_FAILED", "printer", error.to_string())
        }
        KioskError::LeaseExhausted(category) => ServiceError::ResourceExhausted {
            reason: "LEASE_EXHAUSTED",
            subject: category,
            message: "offline and every leased number is used".into(),
        },
        KioskError::Store(message) => ServiceError::Internal(message),
        KioskError::Refused(status) => return status,
    };
    service_error.into()
}

#[tonic::async_trait]
impl KioskService for KioskApi {
    async fn issue_ticket(
        &self,
        request: Request<pb::IssueTicketRequest>,
    ) -> Result<Response<pb::IssueTicketResponse>, Status> {
        let req = request.into_inner();
        let kiosk = self.kiosk(&req.kiosk)?;
        let span = crate::kiosk::press_span(kiosk.id(), &req.category, None);
        let ticket = kiosk
            .issue(&req.category, req.priority)
            .instrument(span)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::IssueTicketResponse {
            display_number: ticket.display_number,
            ticket: ticket.name,
            offline: ticket.offline,
            people_ahead: ticket.people_ahead,
            wait_min_minutes: ticket.wait.0,
            wait_max_minutes: ticket.wait.1,
            issue_time: Some(Timestamp {
                seconds: ticket.issued_at.timestamp(),
                nanos: i32::try_from(ticket.issued_at.timestamp_subsec_nanos()).unwrap_or(0),
            }),
            status_url: ticket.status_url,
        }))
    }

    async fn get_kiosk_status(
        &self,
        request: Request<pb::GetKioskStatusRequest>,
    ) -> Result<Response<pb::KioskStatus>, Status> {
        let req = request.into_inner();
        let kiosk = self.kiosk(&req.kiosk)?;
        let health = kiosk.printer().health().borrow().clone();
        let pending = kiosk.store().outbox_count(OutboxState::Printed).await?
            + kiosk.store().outbox_count(OutboxState::Printing).await?;
        Ok(Response::new(pb::KioskStatus {
            kiosk: req.kiosk,
            printer_ready: health.connected
                && !health.paper_out
                && !health.cover_open
                && !health.offline,
            paper_near_end: health.paper_near_end,
            paper_out: health.paper_out,
            cover_open: health.cover_open,
            cluster_reachable: *kiosk.cluster().reachable().borrow(),
            offline_pending: pending,
            last_error: health.last_error.unwrap_or_default(),
        }))
    }
}
