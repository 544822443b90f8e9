//! The gRPC adapter: authenticate, parse and validate the request (every
//! violation at once), check the tenant, call the store, map the error.
//! No queue rule lives here.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use chrono::NaiveDate;
use futures::Stream;
use madoguchi_platform::auth::{Principal, Role};
use madoguchi_platform::error::{ServiceError, Violations};
use madoguchi_platform::server::Draining;
use madoguchi_platform::site::is_resource_id;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_server::QueueService;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{OfficeChild, OfficeName, TicketAction, VisitState};
use crate::metrics::{FollowerMark, QueueMetrics};
use crate::notify::{EventBus, LoggedEvent, Mark};
use crate::storage::offline::{DeviceReport, HealthChange, MAX_LEASE, OfflineTicketInput};
use crate::storage::{QueueStore, TicketQuery};

/// Roles that may read queues and follow events.
const READERS: &[Role] = &[
    Role::Admin,
    Role::Staff,
    Role::Device,
    Role::Display,
    Role::Integrator,
];
/// Roles that may issue tickets (kiosks, staff, reservation systems).
const ISSUERS: &[Role] = &[Role::Admin, Role::Staff, Role::Device, Role::Integrator];
/// Roles that may call and serve tickets.
const COUNTER_STAFF: &[Role] = &[Role::Admin, Role::Staff];

/// Events read from the log per query while replaying.
const REPLAY_BATCH: u64 = 256;
/// How often a stream re-reads the log without a wake-up: a safety net for
/// a lost notification, not the delivery path.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Most tickets one `ImportOfflineTickets` may carry.
const MAX_IMPORT: usize = 500;
/// Largest page of `ListTickets`.
const MAX_PAGE_SIZE: i32 = 1000;

/// The `QueueService` implementation.
#[derive(Debug, Clone)]
pub struct QueueGrpc {
    store: QueueStore,
    draining: Draining,
    metrics: QueueMetrics,
}

impl QueueGrpc {
    /// An adapter over `store`; streams end when `draining` fires; what
    /// it does is counted in `metrics`.
    pub fn new(store: QueueStore, draining: Draining, metrics: QueueMetrics) -> Self {
        Self {
            store,
            draining,
            metrics,
        }
    }
}

fn authorize<T>(request: &Request<T>, roles: &[Role]) -> Result<Principal, ServiceError> {
    let principal = Principal::of(request)?.clone();
    principal.require(roles)?;
    Ok(principal)
}

fn parse_request_id(v: &mut Violations, field: &str, value: &str) -> Option<Uuid> {
    if value.is_empty() {
        return None;
    }
    match Uuid::parse_str(value) {
        Ok(id) if !id.is_nil() => Some(id),
        _ => {
            v.add(
                field,
                "must be a UUID, e.g. 0b9d7c8e-8f0e-4b1a-9d6e-2f1c3b4a5d6e",
            );
            None
        }
    }
}

fn parse_etag(v: &mut Violations, value: &str) -> Option<String> {
    if value.is_empty() {
        None
    } else if value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        v.add("etag", "not an etag this service issued");
        None
    } else {
        Some(value.to_owned())
    }
}

/// Checks that `child` (when parsed) belongs to `office`.
fn same_office(
    v: &mut Violations,
    field: &str,
    office: Option<&OfficeName>,
    child: Option<&OfficeChild>,
) {
    if let (Some(office), Some(child)) = (office, child)
        && &child.office != office
    {
        v.add(field, "must belong to the same office");
    }
}

fn ticket_name(v: &mut Violations, name: &str) -> Option<OfficeChild> {
    v.check("name", OfficeChild::parse(name, "tickets"))
}

impl QueueGrpc {
    async fn act(
        &self,
        principal: Principal,
        name: &str,
        etag: &str,
        action: TicketAction,
        target: Option<&str>,
        request_id: &str,
    ) -> Result<pb::Ticket, ServiceError> {
        let mut v = Violations::new();
        let ticket = ticket_name(&mut v, name);
        let etag = parse_etag(&mut v, etag);
        let request_id = parse_request_id(&mut v, "request_id", request_id);
        let target = match target {
            Some(target) => {
                let parsed = v.check("category", OfficeChild::parse(target, "categories"));
                same_office(
                    &mut v,
                    "category",
                    ticket.as_ref().map(|t| &t.office),
                    parsed.as_ref(),
                );
                parsed
            }
            None => None,
        };
        v.finish()?;
        let Some(ticket) = ticket else {
            return Err(ServiceError::invalid("name", "missing"));
        };
        principal.check_tenant(&ticket.office.municipality)?;
        self.store
            .act(
                &ticket,
                action,
                etag.as_deref(),
                target.as_ref(),
                request_id,
            )
            .await
    }
}

/// The stream type of `WatchOffice`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOfficeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl QueueService for QueueGrpc {
    async fn issue_ticket(
        &self,
        request: Request<pb::IssueTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, ISSUERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        let category = v.check("category", OfficeChild::parse(&req.category, "categories"));
        same_office(&mut v, "category", office.as_ref(), category.as_ref());
        let request_id = parse_request_id(&mut v, "request_id", &req.request_id);
        v.finish()?;
        let (Some(office), Some(category)) = (office, category) else {
            return Err(ServiceError::invalid("parent", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        let ticket = self
            .store
            .issue_ticket(&office, &category, req.priority, request_id)
            .await?;
        self.metrics.issued(&office.to_string(), &category.id, 1);
        tracing::info!(ticket = %ticket.display_number, "ticket issued");
        Ok(Response::new(ticket))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, READERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let ticket = ticket_name(&mut v, &req.name);
        v.finish()?;
        let Some(ticket) = ticket else {
            return Err(ServiceError::invalid("name", "missing").into());
        };
        principal.check_tenant(&ticket.office.municipality)?;
        Ok(Response::new(self.store.get_ticket(&ticket).await?))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let principal = authorize(&request, READERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        let page_size = match req.page_size {
            0 => 100,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n as u64,
            _ => {
                v.add("page_size", format!("must be 0..={MAX_PAGE_SIZE}"));
                0
            }
        };
        let after_sequence = if req.page_token.is_empty() {
            0
        } else {
            match req
                .page_token
                .strip_prefix('t')
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n > 0)
            {
                Some(n) => n,
                None => {
                    v.add("page_token", "not a token this service issued");
                    0
                }
            }
        };
        let day = match &req.business_day {
            None => None,
            Some(date) => {
                let parsed = u32::try_from(date.month)
                    .ok()
                    .zip(u32::try_from(date.day).ok())
                    .and_then(|(m, d)| NaiveDate::from_ymd_opt(date.year, m, d))
                    .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)));
                if parsed.is_none() {
                    v.add("business_day", "not a calendar date");
                }
                parsed.map(BusinessDay::from_date)
            }
        };
        let mut states = Vec::with_capacity(req.states.len());
        for (i, state) in req.states.iter().enumerate() {
            match i16::try_from(*state).ok().and_then(VisitState::from_i16) {
                Some(state) => states.push(state),
                None => v.add(format!("states[{i}]"), "not a ticket state"),
            }
        }
        let category = if req.category.is_empty() {
            None
        } else {
            let parsed = v.check("category", OfficeChild::parse(&req.category, "categories"));
            same_office(&mut v, "category", office.as_ref(), parsed.as_ref());
            parsed
        };
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("parent", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        let query = TicketQuery {
            day,
            states,
            category: category.map(|c| c.to_string()),
            page_size,
            after_sequence,
        };
        let (tickets, next) = self.store.list_tickets(&office, &query).await?;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets,
            next_page_token: next.map(|n| format!("t{n}")).unwrap_or_default(),
        }))
    }

    async fn call_next(
        &self,
        request: Request<pb::CallNextRequest>,
    ) -> Result<Response<pb::CallNextResponse>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let counter = v.check("counter", OfficeChild::parse(&req.counter, "counters"));
        let mut categories = Vec::with_capacity(req.categories.len());
        for (i, category) in req.categories.iter().enumerate() {
            let field = format!("categories[{i}]");
            if let Some(parsed) = v.check(&field, OfficeChild::parse(category, "categories")) {
                same_office(
                    &mut v,
                    &field,
                    counter.as_ref().map(|c| &c.office),
                    Some(&parsed),
                );
                categories.push(parsed);
            }
        }
        if req.categories.len() > 32 {
            v.add("categories", "at most 32 categories");
        }
        let request_id = parse_request_id(&mut v, "request_id", &req.request_id);
        v.finish()?;
        let Some(counter) = counter else {
            return Err(ServiceError::invalid("counter", "missing").into());
        };
        principal.check_tenant(&counter.office.municipality)?;
        let ticket = self
            .store
            .call_next(&counter, &categories, request_id)
            .await?;
        if let Some(ticket) = &ticket {
            self.metrics
                .called(&counter.office.to_string(), &counter.id);
            tracing::info!(ticket = %ticket.display_number, counter = %counter.id, "ticket called");
        }
        Ok(Response::new(pb::CallNextResponse { ticket }))
    }

    async fn recall(
        &self,
        request: Request<pb::RecallRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let ticket = self
            .act(
                principal,
                &req.name,
                &req.etag,
                TicketAction::Recall,
                None,
                "",
            )
            .await?;
        Ok(Response::new(ticket))
    }

    async fn mark_no_show(
        &self,
        request: Request<pb::MarkNoShowRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let ticket = self
            .act(
                principal,
                &req.name,
                &req.etag,
                TicketAction::NoShow,
                None,
                "",
            )
            .await?;
        Ok(Response::new(ticket))
    }

    async fn start_service(
        &self,
        request: Request<pb::StartServiceRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let ticket = self
            .act(
                principal,
                &req.name,
                &req.etag,
                TicketAction::Start,
                None,
                "",
            )
            .await?;
        Ok(Response::new(ticket))
    }

    async fn finish_service(
        &self,
        request: Request<pb::FinishServiceRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let ticket = self
            .act(
                principal,
                &req.name,
                &req.etag,
                TicketAction::Finish,
                None,
                "",
            )
            .await?;
        Ok(Response::new(ticket))
    }

    async fn transfer(
        &self,
        request: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authorize(&request, COUNTER_STAFF)?;
        let req = request.into_inner();
        let ticket = self
            .act(
                principal,
                &req.name,
                &req.etag,
                TicketAction::Transfer,
                Some(&req.category),
                &req.request_id,
            )
            .await?;
        Ok(Response::new(ticket))
    }

    async fn cancel_ticket(
        &self,
        request: Request<pb::CancelTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        // A kiosk's gateway may void the ticket it failed to print; any
        // other cancellation is the counter's.
        let not_printed = request.get_ref().reason == pb::CancelReason::NotPrinted as i32;
        let roles = if not_printed { ISSUERS } else { COUNTER_STAFF };
        let principal = authorize(&request, roles)?;
        let req = request.into_inner();
        if pb::CancelReason::try_from(req.reason).is_err() {
            return Err(ServiceError::invalid("reason", "not a cancel reason").into());
        }
        let action = if not_printed {
            TicketAction::Void
        } else {
            TicketAction::Cancel
        };
        let ticket = self
            .act(principal, &req.name, &req.etag, action, None, "")
            .await?;
        Ok(Response::new(ticket))
    }

    async fn get_office_status(
        &self,
        request: Request<pb::GetOfficeStatusRequest>,
    ) -> Result<Response<pb::OfficeStatus>, Status> {
        let principal = authorize(&request, READERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("name", OfficeName::parse(&req.name));
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("name", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        Ok(Response::new(self.store.office_status(&office).await?))
    }

    async fn lease_numbers(
        &self,
        request: Request<pb::LeaseNumbersRequest>,
    ) -> Result<Response<pb::NumberLease>, Status> {
        let principal = authorize(&request, ISSUERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let category = v.check("category", OfficeChild::parse(&req.category, "categories"));
        if !is_resource_id(&req.device) {
            v.add(
                "device",
                "must be 1-63 lowercase letters, digits or hyphens",
            );
        }
        if !(1..=MAX_LEASE).contains(&req.count) {
            v.add("count", format!("must be 1..={MAX_LEASE}"));
        }
        let request_id = parse_request_id(&mut v, "request_id", &req.request_id);
        v.finish()?;
        let Some(category) = category else {
            return Err(ServiceError::invalid("category", "missing").into());
        };
        principal.check_tenant(&category.office.municipality)?;
        let lease = self
            .store
            .lease_numbers(&category, &req.device, req.count, request_id)
            .await?;
        Ok(Response::new(lease))
    }

    async fn import_offline_tickets(
        &self,
        request: Request<pb::ImportOfflineTicketsRequest>,
    ) -> Result<Response<pb::ImportOfflineTicketsResponse>, Status> {
        let principal = authorize(&request, ISSUERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        if req.tickets.is_empty() || req.tickets.len() > MAX_IMPORT {
            v.add("tickets", format!("must hold 1..={MAX_IMPORT} tickets"));
        }
        let mut tickets = Vec::with_capacity(req.tickets.len());
        let mut seen = std::collections::HashSet::new();
        for (i, t) in req.tickets.iter().enumerate() {
            let field = |name: &str| format!("tickets[{i}].{name}");
            let offline_id = parse_request_id(&mut v, &field("offline_id"), &t.offline_id);
            if t.offline_id.is_empty() {
                v.add(field("offline_id"), "required");
            }
            if let Some(id) = offline_id
                && !seen.insert(id)
            {
                v.add(field("offline_id"), "appears twice in the request");
            }
            let lease = v.check(&field("lease"), OfficeChild::parse(&t.lease, "leases"));
            same_office(&mut v, &field("lease"), office.as_ref(), lease.as_ref());
            if t.number == 0 || t.number > 9999 {
                v.add(field("number"), "must be a ticket number, 1..=9999");
            }
            let issue_time = match &t.issue_time {
                Some(ts) => chrono::DateTime::from_timestamp(
                    ts.seconds,
                    u32::try_from(ts.nanos).unwrap_or(u32::MAX),
                )
                .filter(|t| t.timestamp() > 0),
                None => None,
            };
            if issue_time.is_none() {
                v.add(field("issue_time"), "required, a valid instant after 1970");
            }
            if let (Some(offline_id), Some(lease), Some(issue_time)) =
                (offline_id, lease, issue_time)
            {
                tickets.push(OfflineTicketInput {
                    offline_id,
                    lease,
                    number: t.number,
                    priority: t.priority,
                    issue_time,
                });
            }
        }
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("parent", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        let results = self.store.import_offline(&office, &tickets).await?;
        for result in results.iter().filter(|r| !r.already_imported) {
            if let Some(ticket) = &result.ticket {
                self.metrics
                    .issued(&office.to_string(), &ticket.issue_category, 1);
            }
        }
        Ok(Response::new(pb::ImportOfflineTicketsResponse { results }))
    }

    async fn report_device_health(
        &self,
        request: Request<pb::ReportDeviceHealthRequest>,
    ) -> Result<Response<pb::DeviceHealth>, Status> {
        let principal = authorize(&request, &[Role::Admin, Role::Device])?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let Some(health) = req.health else {
            return Err(ServiceError::invalid("health", "required").into());
        };
        let name = v.check("health.name", OfficeChild::parse(&health.name, "devices"));
        let kind = match pb::DeviceKind::try_from(health.kind) {
            Ok(pb::DeviceKind::Unspecified) | Err(_) => {
                v.add("health.kind", "must be a device kind");
                None
            }
            Ok(kind) => Some(kind),
        };
        if health.last_error.chars().count() > 500
            || health.last_error.chars().any(char::is_control)
        {
            v.add(
                "health.last_error",
                "at most 500 characters, no control characters",
            );
        }
        let observed = health.observe_time.as_ref().and_then(|ts| {
            chrono::DateTime::from_timestamp(
                ts.seconds,
                u32::try_from(ts.nanos).unwrap_or(u32::MAX),
            )
        });
        if observed.is_none() {
            v.add("health.observe_time", "required, a valid instant");
        }
        v.finish()?;
        let (Some(name), Some(kind), Some(observed_at)) = (name, kind, observed) else {
            return Err(ServiceError::invalid("health", "missing").into());
        };
        principal.check_tenant(&name.office.municipality)?;
        let stored = self
            .store
            .report_device_health(DeviceReport {
                name,
                kind,
                connected: health.connected,
                paper_near_end: health.paper_near_end,
                paper_out: health.paper_out,
                cover_open: health.cover_open,
                last_error: health.last_error,
                observed_at,
                gateway: principal.subject.clone(),
            })
            .await?;
        // Logged on a change only: gateways re-send the same report
        // periodically, and one line per fault is what an operator wants.
        let HealthChange {
            was_ok,
            now: stored,
        } = stored;
        if !stored.ok && was_ok != Some(false) {
            tracing::warn!(device = %stored.name, connected = stored.connected, paper_out = stored.paper_out, cover_open = stored.cover_open, "device needs attention");
        } else if stored.ok && was_ok == Some(false) {
            tracing::info!(device = %stored.name, "device working again");
        }
        Ok(Response::new(stored))
    }

    async fn list_device_health(
        &self,
        request: Request<pb::ListDeviceHealthRequest>,
    ) -> Result<Response<pb::ListDeviceHealthResponse>, Status> {
        let principal = authorize(&request, READERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("parent", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        let devices = self.store.list_device_health(&office).await?;
        Ok(Response::new(pb::ListDeviceHealthResponse { devices }))
    }

    type WatchOfficeStream = WatchStream;

    async fn watch_office(
        &self,
        request: Request<pb::WatchOfficeRequest>,
    ) -> Result<Response<Self::WatchOfficeStream>, Status> {
        let principal = authorize(&request, READERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("office", OfficeName::parse(&req.office));
        let after = i64::try_from(req.after_sequence).unwrap_or_else(|_| {
            v.add("after_sequence", "too large");
            0
        });
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("office", "missing").into());
        };
        principal.check_tenant(&office.municipality)?;
        let head = self.store.office(&office).await?;
        if after > head.last_sequence {
            return Err(ServiceError::precondition(
                "SEQUENCE_AHEAD_OF_LOG",
                office.to_string(),
                format!(
                    "after_sequence {after} is ahead of the log (last {}); was the database replaced?",
                    head.last_sequence
                ),
            )
            .into());
        }
        let follower = Follower::new(
            self.store.clone(),
            office.to_string(),
            after,
            self.draining.clone(),
            self.metrics
                .follow(&office.to_string(), &principal.subject, after),
            principal.subject.clone(),
        );
        let stream = futures::stream::unfold(follower, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A `WatchOffice` stream: replays the log after `after`, then follows
/// it. Tracks the last sequence sent, so a wake-up that finds nothing new
/// sends nothing and no event is sent twice.
///
/// The stream is the follower itself, polled by the response's own task:
/// a commit's wake-up reaches the task that writes the response frames
/// directly, not through a follower task and a channel (one cross-thread
/// hand-off fewer on the way to the boards). A client that goes away drops
/// the stream and with it the follower; a slow one is simply polled less
/// often (HTTP/2 flow control), so nothing queues up for it here.
struct Follower {
    store: QueueStore,
    bus: EventBus,
    office: String,
    after: i64,
    wake: watch::Receiver<u64>,
    draining: Draining,
    /// The outside generation of the last log read; none yet.
    mark: Option<Mark>,
    /// Events read but not yet sent.
    pending: VecDeque<LoggedEvent>,
    /// Wait for a wake-up before the next read (the last read was not a
    /// full batch, so the log held nothing more).
    caught_up: bool,
    /// An error or the shutdown notice was sent: the stream ends.
    finished: bool,
    /// Its place in `madoguchi_queue_event_log_lag_events`.
    lag: FollowerMark,
    /// The subject of the stream's credentials.
    follower: String,
}

impl Follower {
    fn new(
        store: QueueStore,
        office: String,
        after: i64,
        draining: Draining,
        lag: FollowerMark,
        follower: String,
    ) -> Self {
        let bus = store.bus().clone();
        let wake = bus.subscribe();
        Self {
            store,
            bus,
            office,
            after,
            wake,
            draining,
            mark: None,
            pending: VecDeque::new(),
            caught_up: false,
            finished: false,
            lag,
            follower,
        }
    }

    /// The next message, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Result<pb::WatchOfficeResponse, Status>> {
        loop {
            if let Some(logged) = self.pending.pop_front() {
                self.after = i64::try_from(logged.sequence()).unwrap_or(self.after);
                self.lag.sent(self.after);
                if let Some(parent) = &logged.trace_parent {
                    // The hand-over to this follower, in the trace of the
                    // write that committed the event (only traced events:
                    // nothing is spent on it otherwise).
                    let span = tracing::info_span!(
                        "event delivery",
                        otel.name = "WatchOffice send",
                        otel.kind = "producer",
                        madoguchi.event.sequence = self.after,
                        madoguchi.follower = self.follower.as_str(),
                    );
                    madoguchi_platform::telemetry::continue_trace(&span, parent);
                    drop(span.enter());
                }
                return Some(Ok(logged.into_response()));
            }
            if self.finished {
                return None;
            }
            if self.caught_up {
                tokio::select! {
                    changed = self.wake.changed() => if changed.is_err() { return None },
                    () = self.draining.wait() => {
                        self.finished = true;
                        return Some(Err(Status::unavailable(
                            "server is shutting down; reconnect with after_sequence",
                        )));
                    }
                    // The safety net reads the log, whatever the bus says.
                    () = tokio::time::sleep(POLL_INTERVAL) => self.mark = None,
                }
            }
            // Mark the current generation seen before reading, so a commit
            // that lands after the read still wakes the wait above.
            self.wake.borrow_and_update();
            // This process's own recent commits when the bus vouches for
            // them (see `notify`), else the log.
            let after = u64::try_from(self.after).unwrap_or_default();
            let recent = self
                .mark
                .and_then(|mark| self.bus.recent_after(&self.office, after, mark));
            let events = match recent {
                Some(events) => events,
                None => {
                    self.mark = Some(self.bus.mark());
                    match self
                        .store
                        .logged_events_after(&self.office, self.after, REPLAY_BATCH)
                        .await
                    {
                        Ok(events) => events,
                        Err(error) => {
                            self.finished = true;
                            return Some(Err(error.into()));
                        }
                    }
                }
            };
            // A full batch: more may wait in the log, read on at once.
            self.caught_up = (events.len() as u64) < REPLAY_BATCH;
            self.pending.extend(events);
        }
    }
}
