//! The gRPC adapter of `SignageService`: authenticate, parse every field
//! (all violations at once), check the tenant, answer, map the error
//! through the platform's one mapping.

use madoguchi_platform::auth::{Principal, Role};
use madoguchi_platform::error::{ServiceError, Violations};
use madoguchi_proto::signage::v1 as pb;
use madoguchi_proto::signage::v1::signage_service_server::SignageService;
use tonic::{Request, Response, Status};

use crate::SignageApp;
use crate::guide::{Language, MAX_QUERY_CHARS};

/// Who may read board routing: the gateway drives the boards; staff and
/// admins look.
const ROUTING_READERS: &[Role] = &[Role::Admin, Role::Staff, Role::Device, Role::Display];
/// Who may obtain a ticket's status URL: whoever issues or hands out
/// tickets (the gateway's printer, staff, a reservation system).
const URL_READERS: &[Role] = &[Role::Admin, Role::Staff, Role::Device, Role::Integrator];
/// Who may search the guide: anyone with a token of the municipality.
const GUIDE_READERS: &[Role] = &[
    Role::Admin,
    Role::Staff,
    Role::Device,
    Role::Display,
    Role::Integrator,
];

/// The `SignageService` implementation.
#[derive(Debug, Clone)]
pub struct SignageGrpc {
    app: SignageApp,
}

impl SignageGrpc {
    /// An adapter over `app`.
    pub fn new(app: SignageApp) -> Self {
        Self { app }
    }
}

fn authorize<T>(request: &Request<T>, roles: &[Role]) -> Result<Principal, ServiceError> {
    let principal = Principal::of(request)?.clone();
    principal.require(roles)?;
    Ok(principal)
}

/// Parses `municipalities/{m}/offices/{o}`; checks the tenant; returns `o`.
fn office_id<'a>(v: &mut Violations, field: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let parsed = name
        .strip_prefix("municipalities/")
        .and_then(|rest| rest.split_once("/offices/"))
        .filter(|(m, o)| {
            m.len() == 6
                && m.bytes().all(|b| b.is_ascii_digit())
                && madoguchi_platform::site::is_resource_id(o)
        });
    if parsed.is_none() {
        v.add(field, "must be municipalities/{code}/offices/{office}");
    }
    parsed
}

fn check_tenant(principal: &Principal, municipality: &str) -> Result<(), ServiceError> {
    if principal.municipality.as_str() == municipality {
        Ok(())
    } else {
        Err(ServiceError::PermissionDenied {
            reason: "OTHER_MUNICIPALITY",
            message: format!("principal may not access municipality {municipality}"),
        })
    }
}

impl SignageGrpc {
    /// Checks that `office` of `municipality` is served here (the tenant
    /// is checked before, so a caller learns nothing of another
    /// municipality's offices).
    fn known_office(
        &self,
        name: &str,
        municipality: &str,
        office: &str,
    ) -> Result<(), ServiceError> {
        if self.app.floor(Some(municipality), office).is_some() {
            Ok(())
        } else {
            Err(ServiceError::not_found("office", name))
        }
    }
}

#[tonic::async_trait]
impl SignageService for SignageGrpc {
    #[tracing::instrument(skip_all)]
    async fn get_board_routing(
        &self,
        request: Request<pb::GetBoardRoutingRequest>,
    ) -> Result<Response<pb::BoardRouting>, Status> {
        let principal = authorize(&request, ROUTING_READERS)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let parsed = office_id(&mut v, "office", &request.office);
        v.finish()?;
        let Some((municipality, office)) = parsed else {
            return Err(ServiceError::invalid("office", "unparsable").into());
        };
        check_tenant(&principal, municipality)?;
        self.known_office(&request.office, municipality, office)?;
        let boards = self
            .app
            .municipality(Some(municipality))
            .and_then(|m| m.guide.office(office))
            .map(|g| {
                g.signage
                    .boards
                    .iter()
                    .map(|b| pb::Board {
                        id: b.id.clone(),
                        line: b.line.clone(),
                        address: b.address,
                        counters: b
                            .counters
                            .iter()
                            .map(|c| format!("{}/counters/{c}", request.office))
                            .collect(),
                        location_ja: b.location_ja.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::BoardRouting {
            office: request.office,
            boards,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_ticket_status_url(
        &self,
        request: Request<pb::GetTicketStatusUrlRequest>,
    ) -> Result<Response<pb::GetTicketStatusUrlResponse>, Status> {
        let principal = authorize(&request, URL_READERS)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let parsed = request
            .ticket
            .split_once("/tickets/")
            .and_then(|(office, ticket)| {
                office_id(&mut v, "ticket", office).map(|(m, o)| (m, o, ticket))
            })
            .filter(|(_, _, ticket)| madoguchi_platform::site::is_resource_id(ticket));
        if parsed.is_none() {
            v.add(
                "ticket",
                "must be municipalities/{code}/offices/{office}/tickets/{ticket}",
            );
        }
        v.finish()?;
        let Some((municipality, office, _)) = parsed else {
            return Err(ServiceError::invalid("ticket", "unparsable").into());
        };
        check_tenant(&principal, municipality)?;
        self.known_office(&request.ticket, municipality, office)?;
        // The URL is derived, not looked up: a ticket that does not exist
        // gets a URL whose page answers 404, and nothing is disclosed.
        let (Some(path), Some(url)) = (
            self.app.status_path(&request.ticket),
            self.app.status_url(&request.ticket),
        ) else {
            return Err(ServiceError::not_found("office", request.ticket).into());
        };
        Ok(Response::new(pb::GetTicketStatusUrlResponse { url, path }))
    }

    #[tracing::instrument(skip_all)]
    async fn search_floor_guide(
        &self,
        request: Request<pb::SearchFloorGuideRequest>,
    ) -> Result<Response<pb::SearchFloorGuideResponse>, Status> {
        let principal = authorize(&request, GUIDE_READERS)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let parsed = office_id(&mut v, "office", &request.office);
        let chars = request.query.trim().chars().count();
        if chars == 0 || chars > MAX_QUERY_CHARS {
            v.add(
                "query",
                format!("must have 1..={MAX_QUERY_CHARS} characters"),
            );
        }
        let language = v.check("language", Language::parse(&request.language));
        v.finish()?;
        let (Some((municipality, office)), Some(language)) = (parsed, language) else {
            return Err(ServiceError::invalid("office", "unparsable").into());
        };
        check_tenant(&principal, municipality)?;
        self.known_office(&request.office, municipality, office)?;
        let matches = self
            .app
            .search(Some(municipality), office, &request.query, language)
            .unwrap_or_default()
            .into_iter()
            .map(|m| pb::PurposeMatch {
                id: m.id,
                title: m.title,
                description: m.description,
                documents: m.documents,
                category: format!("{}/categories/{}", request.office, m.category),
                counter_display_number: m.counter,
                floor: m.floor,
                colour: m.colour,
            })
            .collect();
        Ok(Response::new(pb::SearchFloorGuideResponse { matches }))
    }
}
