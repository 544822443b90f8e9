//! The gRPC adapter: authenticate, parse and validate the request (every
//! violation at once), check the tenant, call the store, map the error.
//! No POS rule lives here.

use std::pin::Pin;
use std::time::Duration;

use chrono::NaiveDate;
use futures::Stream;
use madoguchi_platform::auth::{Principal, Role};
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::{ServiceError, Violations};
use madoguchi_platform::server::Draining;
use madoguchi_platform::types::{BusinessDay, MunicipalityCode};
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::pos::v1::pos_service_server::PosService;
use madoguchi_proto::types::v1::Date;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::domain::{
    FeeSchedule, MAX_COUNTED_YEN, MAX_FLOAT_YEN, MAX_LINES, Method, NestedName, OfficeChild,
    OfficeName, Outcome, PricedLine, is_request_id,
};
use crate::peers::{FormsPeer, Forwarded};
use crate::storage::{NewOrder, NewPayment, NewRefund, PosStore, Scope};

/// Roles that run registers and take payments.
const CASHIERS: &[Role] = &[Role::Admin, Role::Staff, Role::Supervisor];
/// Roles that void, refund and resolve.
const SUPERVISORS: &[Role] = &[Role::Admin, Role::Supervisor];
/// Roles that report what the terminal said (the register's gateway).
const GATEWAYS: &[Role] = &[Role::Admin, Role::Device];
/// Roles that may follow a register's events.
const WATCHERS: &[Role] = &[Role::Admin, Role::Staff, Role::Supervisor, Role::Device];

/// Events read from the log per query while replaying.
const REPLAY_BATCH: u64 = 256;
/// How often a stream re-reads the log without a wake-up: a safety net for
/// a lost notification, not the delivery path.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Longest reason or note.
const MAX_REASON_CHARS: usize = 200;

/// The `PosService` implementation.
#[derive(Debug, Clone)]
pub struct PosGrpc {
    store: PosStore,
    forms: FormsPeer,
    clock: SharedClock,
    draining: Draining,
}

impl PosGrpc {
    /// An adapter over `store`; streams end when `draining` fires.
    pub fn new(store: PosStore, forms: FormsPeer, clock: SharedClock, draining: Draining) -> Self {
        Self {
            store,
            forms,
            clock,
            draining,
        }
    }

    /// Admits `principal` to `municipality`: PERMISSION_DENIED for another
    /// municipality's principal, then NOT_FOUND when this service does not
    /// serve it. Every handler calls it before reading or writing; the
    /// municipality's fee schedule comes with the admission.
    fn admit(
        &self,
        principal: &Principal,
        municipality: &MunicipalityCode,
    ) -> Result<&FeeSchedule, ServiceError> {
        principal.check_tenant(municipality)?;
        self.store.fees(municipality)
    }
}

fn authorize<T>(request: &Request<T>, roles: &[Role]) -> Result<Principal, ServiceError> {
    let principal = Principal::of(request)?.clone();
    principal.require(roles)?;
    Ok(principal)
}

fn register_name(v: &mut Violations, field: &str, value: &str) -> Option<OfficeChild> {
    v.check(field, OfficeChild::parse(value, "registers"))
}

fn request_id(v: &mut Violations, field: &str, value: &str) -> String {
    if !is_request_id(value) {
        v.add(
            field,
            "required: 1-64 of A-Z a-z 0-9 - _ (a UUID fits), the same on every retry",
        );
    }
    value.to_owned()
}

fn text(v: &mut Violations, field: &str, value: &str) -> String {
    let value = value.trim();
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_REASON_CHARS {
        v.add(field, format!("must be 1..={MAX_REASON_CHARS} characters"));
    } else if value.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
    value.to_owned()
}

fn bounded_code(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        v.add(
            field,
            format!("must be at most {max} printable ASCII characters"),
        );
    }
}

fn business_day(v: &mut Violations, field: &str, date: Option<&Date>) -> Option<BusinessDay> {
    let date = date?;
    let parsed = u32::try_from(date.month)
        .ok()
        .zip(u32::try_from(date.day).ok())
        .and_then(|(m, d)| NaiveDate::from_ymd_opt(date.year, m, d));
    match parsed {
        Some(d) => Some(BusinessDay::from_date(d)),
        None => {
            v.add(field, "not a valid calendar date");
            None
        }
    }
}

fn exists<T>(value: Option<T>) -> Result<T, ServiceError> {
    // Every caller records a violation before a `None` and calls
    // `Violations::finish` first, so this is reached only with `Some`.
    value.ok_or_else(|| ServiceError::Internal("validated value missing".into()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRegisterResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PosService for PosGrpc {
    async fn open_register_session(
        &self,
        request: Request<pb::OpenRegisterSessionRequest>,
    ) -> Result<Response<pb::RegisterSession>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let register = register_name(&mut v, "register", &req.register);
        if !(0..=MAX_FLOAT_YEN).contains(&req.float_yen) {
            v.add("float_yen", format!("must be 0..={MAX_FLOAT_YEN}"));
        }
        v.finish()?;
        let register = exists(register)?;
        self.admit(&principal, &register.office.municipality)?;
        Ok(Response::new(
            self.store
                .open_session(&register, req.float_yen, &principal.subject)
                .await?,
        ))
    }

    async fn close_register_session(
        &self,
        request: Request<pb::CloseRegisterSessionRequest>,
    ) -> Result<Response<pb::RegisterSession>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let register = register_name(&mut v, "register", &req.register);
        if !(0..=MAX_COUNTED_YEN).contains(&req.counted_cash_yen) {
            v.add("counted_cash_yen", format!("must be 0..={MAX_COUNTED_YEN}"));
        }
        v.finish()?;
        let register = exists(register)?;
        self.admit(&principal, &register.office.municipality)?;
        Ok(Response::new(
            self.store
                .close_session(&register, req.counted_cash_yen, &principal.subject)
                .await?,
        ))
    }

    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let auth = Forwarded::of(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        let request_id = if req.request_id.is_empty() {
            None
        } else {
            Some(request_id(&mut v, "request_id", &req.request_id))
        };
        let from_request = !req.certificate_request.is_empty();
        if from_request != req.lines.is_empty() {
            v.add(
                "lines",
                "give either certificate_request or lines, not both and not neither",
            );
        }
        if !from_request && !req.exemptions.is_empty() {
            v.add(
                "exemptions",
                "exemptions apply to a certificate request's lines; exempt hand lines on the line",
            );
        }
        if req.lines.len() > MAX_LINES {
            v.add("lines", format!("at most {MAX_LINES} lines"));
        }
        // The office's municipality prices the lines, with its own fees.
        let mut fees = None;
        if let Some(office) = &office {
            fees = Some(self.admit(&principal, &office.municipality)?);
            if from_request
                && !req
                    .certificate_request
                    .starts_with(&format!("{office}/visits/"))
            {
                v.add(
                    "certificate_request",
                    "must be a certificate request of a visit of this office",
                );
            }
        }
        let mut lines: Vec<PricedLine> = Vec::new();
        for (i, line) in req.lines.iter().enumerate() {
            if let Some(fees) = fees
                && let Some(priced) = fees.price(
                    &mut v,
                    &format!("lines[{i}]"),
                    &line.fee_item,
                    line.copies,
                    &line.exemption_reason,
                )
            {
                lines.push(priced);
            }
        }
        v.finish()?;
        let (office, fees) = (exists(office)?, exists(fees)?);
        if from_request {
            let cert = self
                .forms
                .certificate_request(&auth, &req.certificate_request)
                .await?;
            if cert.state == f::CertificateRequestState::Draft as i32 {
                return Err(ServiceError::precondition(
                    "CERTIFICATE_REQUEST_NOT_CONFIRMED",
                    req.certificate_request.clone(),
                    "staff must confirm the certificate request before it is charged",
                )
                .into());
            }
            let mut v = Violations::new();
            for (i, exemption) in req.exemptions.iter().enumerate() {
                let index = exemption.line_index as usize;
                if index >= cert.lines.len()
                    || req.exemptions[..i]
                        .iter()
                        .any(|e| e.line_index == exemption.line_index)
                {
                    v.add(
                        format!("exemptions[{i}].line_index"),
                        format!(
                            "must name a line of the request once (it has {})",
                            cert.lines.len()
                        ),
                    );
                }
            }
            for (i, line) in cert.lines.iter().enumerate() {
                let exemption = req
                    .exemptions
                    .iter()
                    .position(|e| e.line_index as usize == i)
                    .map(|at| (at, req.exemptions[at].exemption_reason.as_str()));
                // Violations name the request's field: the exemption for
                // a bad reason, the line itself for a kind the register
                // cannot charge.
                let field = exemption.map_or_else(
                    || format!("certificate_request.lines[{i}]"),
                    |(at, _)| format!("exemptions[{at}]"),
                );
                if let Some(priced) = fees.price(
                    &mut v,
                    &field,
                    &line.kind,
                    line.copies,
                    exemption.map(|(_, r)| r).unwrap_or_default(),
                ) {
                    lines.push(priced);
                }
            }
            v.finish()?;
        }
        let order = self
            .store
            .create_order(NewOrder {
                office,
                certificate_request: from_request.then(|| req.certificate_request.clone()),
                lines,
                request_id,
                by: principal.subject.clone(),
            })
            .await?;
        Ok(Response::new(order))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let order = OfficeChild::parse(&req.name, "orders")
            .map_err(|e| ServiceError::invalid("name", e))?;
        self.admit(&principal, &order.office.municipality)?;
        Ok(Response::new(
            self.store.order_pb_by_name(&order.to_string()).await?,
        ))
    }

    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let order = v.check("order", OfficeChild::parse(&req.order, "orders"));
        let register = register_name(&mut v, "register", &req.register);
        let method = Method::from_i32(req.method);
        if method.is_none() {
            v.add("method", "must be CASH, CARD, EMONEY or QR");
        }
        let request_id = request_id(&mut v, "request_id", &req.request_id);
        if req.tendered_yen < 0 {
            v.add("tendered_yen", "must not be negative");
        }
        if let (Some(order), Some(register)) = (&order, &register)
            && order.office != register.office
        {
            v.add("register", "must be a register of the order's office");
        }
        v.finish()?;
        let (order, register, method) = (exists(order)?, exists(register)?, exists(method)?);
        self.admit(&principal, &order.office.municipality)?;
        Ok(Response::new(
            self.store
                .create_payment(NewPayment {
                    order: order.to_string(),
                    register,
                    method,
                    request_id,
                    tendered: req.tendered_yen,
                    by: principal.subject.clone(),
                })
                .await?,
        ))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let principal = authorize(&request, WATCHERS)?;
        let name = NestedName::payment(&request.get_ref().name)
            .map_err(|e| ServiceError::invalid("name", e))?;
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(self.store.get_payment(&name.name).await?))
    }

    async fn abort_payment(
        &self,
        request: Request<pb::AbortPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let name = NestedName::payment(&request.get_ref().name)
            .map_err(|e| ServiceError::invalid("name", e))?;
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(self.store.abort_payment(&name.name).await?))
    }

    async fn report_payment_outcome(
        &self,
        request: Request<pb::ReportPaymentOutcomeRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let principal = authorize(&request, GATEWAYS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("payment", NestedName::payment(&req.payment));
        let outcome = Outcome::from_i32(req.outcome);
        if outcome.is_none() {
            v.add(
                "outcome",
                "must be APPROVED, DECLINED, ABORTED, UNKNOWN or IN_PROGRESS",
            );
        }
        bounded_code(&mut v, "terminal_result_code", &req.terminal_result_code, 8);
        bounded_code(&mut v, "approval_number", &req.approval_number, 20);
        bounded_code(&mut v, "terminal_trace", &req.terminal_trace, 32);
        v.finish()?;
        let (name, outcome) = (exists(name)?, exists(outcome)?);
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(
            self.store
                .report_outcome(
                    &name.name,
                    outcome,
                    &req.terminal_result_code,
                    &req.approval_number,
                    &req.terminal_trace,
                    None,
                )
                .await?,
        ))
    }

    async fn resolve_payment(
        &self,
        request: Request<pb::ResolvePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let principal = authorize(&request, SUPERVISORS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", NestedName::payment(&req.name));
        let outcome = match Outcome::from_i32(req.outcome) {
            Some(o @ (Outcome::Approved | Outcome::Declined)) => Some(o),
            _ => {
                v.add("outcome", "must be APPROVED or DECLINED");
                None
            }
        };
        let note = text(&mut v, "note", &req.note);
        bounded_code(&mut v, "approval_number", &req.approval_number, 20);
        v.finish()?;
        let (name, outcome) = (exists(name)?, exists(outcome)?);
        self.admit(&principal, &name.office.municipality)?;
        let code = match outcome {
            Outcome::Approved => "RESOLVED-APPROVED",
            _ => "RESOLVED-DECLINED",
        };
        Ok(Response::new(
            self.store
                .report_outcome(
                    &name.name,
                    outcome,
                    code,
                    &req.approval_number,
                    "",
                    Some((&principal.subject, &note)),
                )
                .await?,
        ))
    }

    async fn void_payment(
        &self,
        request: Request<pb::VoidPaymentRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let principal = authorize(&request, SUPERVISORS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", NestedName::payment(&req.name));
        let reason = text(&mut v, "reason", &req.reason);
        let request_id = request_id(&mut v, "request_id", &req.request_id);
        v.finish()?;
        let name = exists(name)?;
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(
            self.store
                .refund(NewRefund {
                    payment: name.name,
                    line: None,
                    reason,
                    register: None,
                    request_id,
                    by: principal.subject.clone(),
                })
                .await?,
        ))
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let principal = authorize(&request, SUPERVISORS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", NestedName::payment(&req.name));
        let reason = text(&mut v, "reason", &req.reason);
        let request_id = request_id(&mut v, "request_id", &req.request_id);
        if req.amount_yen <= 0 {
            v.add("amount_yen", "must be at least 1 yen");
        }
        let register = if req.register.is_empty() {
            None
        } else {
            register_name(&mut v, "register", &req.register)
        };
        if let (Some(name), Some(register)) = (&name, &register)
            && name.office != register.office
        {
            v.add("register", "must be a register of the payment's office");
        }
        v.finish()?;
        let name = exists(name)?;
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(
            self.store
                .refund(NewRefund {
                    payment: name.name,
                    line: Some((req.line_index as usize, req.amount_yen)),
                    reason,
                    register,
                    request_id,
                    by: principal.subject.clone(),
                })
                .await?,
        ))
    }

    async fn report_refund_outcome(
        &self,
        request: Request<pb::ReportRefundOutcomeRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let principal = authorize(&request, GATEWAYS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("refund", NestedName::refund(&req.refund));
        let outcome = match Outcome::from_i32(req.outcome) {
            Some(o @ (Outcome::Approved | Outcome::Declined)) => Some(o),
            _ => {
                v.add("outcome", "must be APPROVED or DECLINED");
                None
            }
        };
        bounded_code(&mut v, "terminal_result_code", &req.terminal_result_code, 8);
        v.finish()?;
        let (name, outcome) = (exists(name)?, exists(outcome)?);
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(
            self.store
                .report_refund_outcome(&name.name, outcome)
                .await?,
        ))
    }

    async fn reprint_receipt(
        &self,
        request: Request<pb::ReprintReceiptRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let name = NestedName::payment(&request.get_ref().payment)
            .map_err(|e| ServiceError::invalid("payment", e))?;
        self.admit(&principal, &name.office.municipality)?;
        Ok(Response::new(self.store.reprint(&name.name).await?))
    }

    async fn get_daily_close(
        &self,
        request: Request<pb::GetDailyCloseRequest>,
    ) -> Result<Response<pb::DailyClose>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let scope = match (req.register.is_empty(), req.office.is_empty()) {
            (false, true) => register_name(&mut v, "register", &req.register).map(Scope::Register),
            (true, false) => v
                .check("office", OfficeName::parse(&req.office))
                .map(Scope::Office),
            _ => {
                v.add("office", "give either register or office");
                None
            }
        };
        let day = business_day(&mut v, "business_day", req.business_day.as_ref());
        v.finish()?;
        let scope = exists(scope)?;
        let municipality = match &scope {
            Scope::Register(r) => &r.office.municipality,
            Scope::Office(o) => &o.municipality,
        };
        self.admit(&principal, municipality)?;
        let day = day.unwrap_or_else(|| BusinessDay::of(self.clock.now()));
        Ok(Response::new(self.store.daily_close(&scope, day).await?))
    }

    async fn export_reconciliation(
        &self,
        request: Request<pb::ExportReconciliationRequest>,
    ) -> Result<Response<pb::ExportReconciliationResponse>, Status> {
        let principal = authorize(&request, CASHIERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let office = v.check("office", OfficeName::parse(&req.office));
        let start = business_day(&mut v, "start_day", req.start_day.as_ref());
        let end = business_day(&mut v, "end_day", req.end_day.as_ref());
        if req.start_day.is_none() {
            v.add("start_day", "required");
        }
        if req.end_day.is_none() {
            v.add("end_day", "required");
        }
        if let (Some(s), Some(e)) = (start, end) {
            let span = e.ordinal() - s.ordinal();
            if !(0..=366).contains(&span) {
                v.add("end_day", "must be 0..=366 days after start_day");
            }
        }
        v.finish()?;
        let (office, start, end) = (exists(office)?, exists(start)?, exists(end)?);
        self.admit(&principal, &office.municipality)?;
        let (csv, rows) = self.store.export(&office, start, end).await?;
        Ok(Response::new(pb::ExportReconciliationResponse {
            csv,
            rows,
        }))
    }

    type WatchRegisterStream = WatchStream;

    async fn watch_register(
        &self,
        request: Request<pb::WatchRegisterRequest>,
    ) -> Result<Response<Self::WatchRegisterStream>, Status> {
        let principal = authorize(&request, WATCHERS)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let register = register_name(&mut v, "register", &req.register);
        let after = i64::try_from(req.after_sequence).unwrap_or_else(|_| {
            v.add("after_sequence", "too large");
            0
        });
        v.finish()?;
        let register = exists(register)?;
        self.admit(&principal, &register.office.municipality)?;
        // A register that was never opened has an empty log; a gateway may
        // start following it before staff open it.
        let head = match self.store.register(&register).await {
            Ok(head) => head.last_sequence,
            Err(ServiceError::NotFound { .. }) => 0,
            Err(e) => return Err(e.into()),
        };
        if after > head {
            return Err(ServiceError::precondition(
                "SEQUENCE_AHEAD_OF_LOG",
                register.to_string(),
                format!(
                    "after_sequence {after} is ahead of the log (last {head}); was the database replaced?"
                ),
            )
            .into());
        }
        let (tx, rx) = mpsc::channel(REPLAY_BATCH as usize);
        tokio::spawn(follow(
            self.store.clone(),
            register.to_string(),
            after,
            tx,
            self.draining.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Replays the log after `after`, then follows it. Tracks the last sequence
/// sent, so a wake-up that finds nothing new sends nothing and no event is
/// sent twice.
async fn follow(
    store: PosStore,
    register: String,
    mut after: i64,
    tx: mpsc::Sender<Result<pb::WatchRegisterResponse, Status>>,
    mut draining: Draining,
) {
    let mut wake = store.bus().subscribe();
    loop {
        // Mark the current generation seen before reading, so a commit
        // that lands after the read still wakes the wait below.
        wake.borrow_and_update();
        let events = match store.events_after(&register, after, REPLAY_BATCH).await {
            Ok(events) => events,
            Err(error) => {
                let _ = tx.send(Err(error.into())).await;
                return;
            }
        };
        let full = events.len() as u64 == REPLAY_BATCH;
        for event in events {
            after = i64::try_from(event.sequence).unwrap_or(after);
            if tx
                .send(Ok(pb::WatchRegisterResponse { event: Some(event) }))
                .await
                .is_err()
            {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            () = draining.wait() => {
                let _ = tx.send(Err(Status::unavailable("server is shutting down; reconnect with after_sequence"))).await;
                return;
            }
            () = tx.closed() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
