//! The POS storage: every money movement in one transaction.
//!
//! Each mutating operation follows the same shape:
//!
//! 1. lock the register it concerns (`UPDATE pos_registers … RETURNING`):
//!    on PostgreSQL the row lock is held until commit, so a register's
//!    writers are serialised and its event sequence equals commit order;
//!    on SQLite the single connection serialises every writer anyway;
//! 2. lock the order (`UPDATE pos_orders SET version = version + 1`), so
//!    payments and refunds of one order are serialised across registers —
//!    always register first, then order, so two transactions never wait
//!    on each other in opposite orders;
//! 3. check the request against what is stored (idempotency record,
//!    states, amounts) and write the rows;
//! 4. append the register's events (and `NOTIFY` on PostgreSQL);
//! 5. commit, then wake in-process watchers.
//!
//! Any error before commit drops the transaction, which rolls back every
//! write: nothing half-written. The partial unique index
//! `pos_payments_one_live` backs step 3's "one live payment per order".

pub mod entities;
pub mod migration;
mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::Site;
use madoguchi_platform::types::{BusinessDay, MunicipalityCode};
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::prost::Message;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use self::entities::{event, office, order, order_line, payment, refund, register, session};
pub use self::records::micros;
use self::records::{Names, payment_pb, receipt_pb, refund_pb, session_pb, timestamp};
use crate::domain::{
    ClosePayment, CloseRefund, CloseTotals, FeeSchedule, LIVE_STATES, Method, OfficeChild,
    OfficeName, Outcome, PaymentState, PricedLine, RefundKind, RefundState, Yen, apply_outcome,
    change_for, terminal_reference,
};
use crate::metrics::{PaymentCounts, PaymentOutcome};
use crate::notify::{CHANNEL, EventBus};

/// How a completed void or refund counts in the payment metrics.
fn refund_outcome(kind: RefundKind) -> PaymentOutcome {
    match kind {
        RefundKind::Void => PaymentOutcome::Voided,
        RefundKind::Refund => PaymentOutcome::Refunded,
    }
}

/// The POS tables, behind the operations the service offers.
#[derive(Debug, Clone)]
pub struct PosStore {
    db: DatabaseConnection,
    clock: SharedClock,
    bus: EventBus,
    /// Each served municipality's receipt name and fee schedule, by
    /// municipality code.
    names: Arc<HashMap<MunicipalityCode, Names>>,
    counts: PaymentCounts,
}

/// An order to create, priced and validated.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The office.
    pub office: OfficeName,
    /// The forms certificate request, if the order charges one.
    pub certificate_request: Option<String>,
    /// The lines.
    pub lines: Vec<PricedLine>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Principal subject.
    pub by: String,
}

/// A payment to take.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// The order's resource name.
    pub order: String,
    /// The register.
    pub register: OfficeChild,
    /// Method.
    pub method: Method,
    /// Idempotency key.
    pub request_id: String,
    /// Cash handed over (0 for terminal methods).
    pub tendered: i64,
    /// Principal subject.
    pub by: String,
}

/// A void or refund to make.
#[derive(Debug, Clone)]
pub struct NewRefund {
    /// The payment's resource name.
    pub payment: String,
    /// `None` for a void (every line in full).
    pub line: Option<(usize, i64)>,
    /// Why.
    pub reason: String,
    /// The register paying back; `None` for the payment's.
    pub register: Option<OfficeChild>,
    /// Idempotency key.
    pub request_id: String,
    /// Supervisor.
    pub by: String,
}

/// What a daily close covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One register.
    Register(OfficeChild),
    /// Every register of an office.
    Office(OfficeName),
}

fn db_unique(error: &DbErr) -> Option<String> {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => Some(message),
        _ => None,
    }
}

fn live_states() -> Vec<i16> {
    LIVE_STATES.iter().map(|s| *s as i16).collect()
}

/// Compares a stored fingerprint (`field=value|…`) with a request's and
/// names the first field that differs.
fn differing_field(stored: &str, new: &str) -> Option<String> {
    let stored: Vec<&str> = stored.split('|').collect();
    let new: Vec<&str> = new.split('|').collect();
    stored
        .iter()
        .zip(&new)
        .find(|(a, b)| a != b)
        .map(|(a, _)| a.split('=').next().unwrap_or_default().to_owned())
        .or_else(|| (stored.len() != new.len()).then(|| "request".to_owned()))
}

fn reused(request_id: &str, field: &str) -> ServiceError {
    ServiceError::AlreadyExists {
        reason: "REQUEST_ID_REUSED",
        message: format!(
            "request_id {request_id} was already used with a different {field}; use a new request_id for a new request"
        ),
    }
}

impl PosStore {
    /// A store on `db` serving the municipalities of `sites`, each with
    /// its own fee schedule (`fees`, in the same order); call
    /// [`PosStore::prepare`] before use.
    pub fn new(
        db: DatabaseConnection,
        clock: SharedClock,
        bus: EventBus,
        sites: &[(&Site, FeeSchedule)],
    ) -> Self {
        Self {
            db,
            clock,
            bus,
            names: Arc::new(
                sites
                    .iter()
                    .map(|(site, fees)| {
                        (
                            site.municipality.code.clone(),
                            Names {
                                municipality_ja: site.municipality.name_ja.clone(),
                                fees: fees.clone(),
                            },
                        )
                    })
                    .collect(),
            ),
            counts: PaymentCounts::default(),
        }
    }

    /// The payment counter this store increments as payments reach their
    /// outcomes.
    pub fn payment_counts(&self) -> &PaymentCounts {
        &self.counts
    }

    /// Payments of unknown outcome (処理未了) not yet resolved, by office
    /// resource name; every office of the site is present, with zero when
    /// it has none.
    pub async fn unresolved_payments(&self) -> Result<BTreeMap<String, i64>, ServiceError> {
        let mut counts: BTreeMap<String, i64> = office::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|o| (o.name, 0))
            .collect();
        let rows: Vec<(String, i64)> = payment::Entity::find()
            .select_only()
            .column(payment::Column::Office)
            .column_as(payment::Column::Name.count(), "n")
            .filter(payment::Column::State.eq(PaymentState::Unknown as i16))
            .group_by(payment::Column::Office)
            .into_tuple()
            .all(&self.db)
            .await?;
        for (office, n) in rows {
            counts.insert(office, n);
        }
        Ok(counts)
    }

    /// The connection, for the PostgreSQL listener.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The wake-up bus of this store's writers.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// A served municipality's receipt name and fee schedule, or NOT_FOUND
    /// naming `municipalities/{code}`.
    fn names(&self, municipality: &MunicipalityCode) -> Result<&Names, ServiceError> {
        self.names.get(municipality).ok_or_else(|| {
            ServiceError::not_found("municipality", format!("municipalities/{municipality}"))
        })
    }

    /// The names of the municipality a stored office name belongs to.
    fn names_of_office(&self, office: &str) -> Result<&Names, ServiceError> {
        let name = OfficeName::parse(office)
            .map_err(|e| ServiceError::Internal(format!("stored office {office}: {e}")))?;
        self.names(&name.municipality)
    }

    /// The fee schedule of a served municipality (its own catalog's), or
    /// NOT_FOUND naming `municipalities/{code}`.
    pub fn fees(&self, municipality: &MunicipalityCode) -> Result<&FeeSchedule, ServiceError> {
        self.names(municipality).map(|n| &n.fees)
    }

    /// Runs migrations and seeds the offices of every site, in one
    /// transaction (on PostgreSQL under an advisory lock, so replicas that
    /// start together take turns).
    pub async fn prepare(&self, sites: &[&Site]) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Any constant works; this one spells "madoguchi pos".
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7242022)")
                .await?;
        }
        migration::Migrator::up(&txn, None).await?;
        for (site, o) in sites
            .iter()
            .flat_map(|site| site.offices.iter().map(move |o| (site, o)))
        {
            let name = format!("municipalities/{}/offices/{}", site.municipality.code, o.id);
            office::Entity::insert(office::ActiveModel {
                name: Set(name),
                name_ja: Set(o.name_ja.clone()),
                last_receipt: Set(0),
            })
            .on_conflict(
                OnConflict::column(office::Column::Name)
                    .update_column(office::Column::NameJa)
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn office_row<C: ConnectionTrait>(
        &self,
        c: &C,
        office: &OfficeName,
    ) -> Result<office::Model, ServiceError> {
        office::Entity::find_by_id(office.to_string())
            .one(c)
            .await?
            .ok_or_else(|| ServiceError::not_found("office", office.to_string()))
    }

    /// Opens a session; see `OpenRegisterSession`.
    pub async fn open_session(
        &self,
        register_name: &OfficeChild,
        float_yen: i64,
        by: &str,
    ) -> Result<pb::RegisterSession, ServiceError> {
        let now = self.now();
        let key = register_name.to_string();
        let txn = self.db.begin().await?;
        self.office_row(&txn, &register_name.office).await?;
        register::Entity::insert(register::ActiveModel {
            name: Set(key.clone()),
            office: Set(register_name.office.to_string()),
            last_sequence: Set(0),
            open_session: Set(None),
        })
        .on_conflict_do_nothing_on([register::Column::Name])
        .exec(&txn)
        .await?;
        let reg = lock_register(&txn, &key).await?;
        if let Some(open) = reg.open_session {
            return Err(ServiceError::precondition(
                "REGISTER_ALREADY_OPEN",
                key,
                format!("the register already has an open session {open}"),
            ));
        }
        let name = format!("{key}/sessions/{}", Uuid::now_v7().simple());
        let row = session::ActiveModel {
            name: Set(name.clone()),
            register: Set(key.clone()),
            office: Set(register_name.office.to_string()),
            state: Set(1),
            float_yen: Set(float_yen),
            counted_yen: Set(None),
            expected_yen: Set(None),
            business_day: Set(BusinessDay::of(now).ordinal()),
            opened_at: Set(micros(now)),
            closed_at: Set(None),
            opened_by: Set(by.to_owned()),
            closed_by: Set(None),
        }
        .insert(&txn)
        .await?;
        register::Entity::update_many()
            .col_expr(register::Column::OpenSession, Expr::value(name))
            .filter(register::Column::Name.eq(key))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        tracing::info!(register = %register_name, float_yen, by, "register session opened");
        Ok(session_pb(&row, Yen(float_yen)))
    }

    /// Closes the open session; see `CloseRegisterSession`.
    pub async fn close_session(
        &self,
        register_name: &OfficeChild,
        counted_yen: i64,
        by: &str,
    ) -> Result<pb::RegisterSession, ServiceError> {
        let now = self.now();
        let key = register_name.to_string();
        let txn = self.db.begin().await?;
        let reg = lock_register(&txn, &key).await?;
        let open = open_session_of(&reg)?;
        let running = payment::Entity::find()
            .filter(payment::Column::Session.eq(open.clone()))
            .filter(payment::Column::State.is_in([
                PaymentState::Pending as i16,
                PaymentState::InProgress as i16,
            ]))
            .count(&txn)
            .await?;
        if running > 0 {
            return Err(ServiceError::precondition(
                "PAYMENT_UNSETTLED",
                key,
                format!(
                    "{running} terminal payment(s) of the session are still running; wait for the terminal or abort them"
                ),
            ));
        }
        let row = session::Entity::find_by_id(open.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("open session {open} missing")))?;
        let expected = expected_cash(&txn, &row).await?;
        let mut active = row.into_active_model();
        active.state = Set(2);
        active.counted_yen = Set(Some(counted_yen));
        active.expected_yen = Set(Some(expected.0));
        active.closed_at = Set(Some(micros(now)));
        active.closed_by = Set(Some(by.to_owned()));
        let row = active.update(&txn).await?;
        register::Entity::update_many()
            .col_expr(
                register::Column::OpenSession,
                Expr::value(Option::<String>::None),
            )
            .filter(register::Column::Name.eq(key))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        tracing::info!(
            register = %register_name,
            counted_yen,
            expected_yen = expected.0,
            by,
            "register session closed"
        );
        Ok(session_pb(&row, expected))
    }

    /// Creates an order; see `CreateOrder`.
    pub async fn create_order(&self, new: NewOrder) -> Result<pb::Order, ServiceError> {
        let now = self.now();
        let office_key = new.office.to_string();
        let fingerprint = order_fingerprint(&new);
        let txn = self.db.begin().await?;
        self.office_row(&txn, &new.office).await?;
        if let Some(request_id) = &new.request_id {
            let previous = order::Entity::find()
                .filter(order::Column::Office.eq(office_key.clone()))
                .filter(order::Column::RequestId.eq(request_id.clone()))
                .one(&txn)
                .await?;
            if let Some(previous) = previous {
                drop(txn);
                if let Some(field) = differing_field(&previous.fingerprint, &fingerprint) {
                    return Err(reused(request_id, &field));
                }
                return self.order_pb_by_name(&previous.name).await;
            }
        }
        if let Some(request) = &new.certificate_request {
            let existing = order::Entity::find()
                .filter(order::Column::CertificateRequest.eq(request.clone()))
                .one(&txn)
                .await?;
            if let Some(existing) = existing {
                return Err(ServiceError::AlreadyExists {
                    reason: "CERTIFICATE_REQUEST_ALREADY_ORDERED",
                    message: format!(
                        "the certificate request is already charged by order {}",
                        existing.name
                    ),
                });
            }
        }
        let total = new
            .lines
            .iter()
            .try_fold(Yen::ZERO, |sum, line| sum.plus(line.amount))?;
        let name = format!("{office_key}/orders/{}", Uuid::now_v7().simple());
        order::ActiveModel {
            name: Set(name.clone()),
            office: Set(office_key),
            certificate_request: Set(new.certificate_request.clone()),
            total_yen: Set(total.0),
            created_at: Set(micros(now)),
            created_by: Set(new.by.clone()),
            request_id: Set(new.request_id.clone()),
            fingerprint: Set(fingerprint),
            version: Set(0),
        }
        .insert(&txn)
        .await
        .map_err(|e| match db_unique(&e) {
            Some(m) if m.contains("certificate_request") => ServiceError::AlreadyExists {
                reason: "CERTIFICATE_REQUEST_ALREADY_ORDERED",
                message: "the certificate request is already charged by another order".into(),
            },
            Some(_) => ServiceError::Aborted { name: name.clone() },
            None => e.into(),
        })?;
        for (i, line) in new.lines.iter().enumerate() {
            order_line::ActiveModel {
                order_name: Set(name.clone()),
                line_index: Set(i32::try_from(i).unwrap_or(i32::MAX)),
                fee_item: Set(line.item.id.clone()),
                name_ja: Set(line.item.name_ja.clone()),
                unit_fee_yen: Set(line.item.unit_fee.0),
                copies: Set(i32::try_from(line.copies).unwrap_or(i32::MAX)),
                amount_yen: Set(line.amount.0),
                revenue_account: Set(line.item.revenue_account.clone()),
                exemption_reason: Set(line.exemption.as_ref().map(|e| e.id.clone())),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        self.order_pb_by_name(&name).await
    }

    /// An order with its lines and payment state.
    pub async fn order_pb_by_name(&self, name: &str) -> Result<pb::Order, ServiceError> {
        let row = order::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("order", name))?;
        let lines = lines_of(&self.db, name).await?;
        let live = payment::Entity::find()
            .filter(payment::Column::OrderName.eq(name.to_owned()))
            .filter(payment::Column::State.is_in(live_states()))
            .one(&self.db)
            .await?;
        Ok(records::order_pb(
            &row,
            &lines,
            live.as_ref(),
            self.names_of_office(&row.office)?,
        ))
    }

    /// Takes a payment; see `CreatePayment`.
    pub async fn create_payment(&self, new: NewPayment) -> Result<pb::Payment, ServiceError> {
        let now = self.now();
        let register_key = new.register.to_string();
        let office_key = new.register.office.to_string();
        let fingerprint = format!(
            "order={}|register={}|method={}|tendered_yen={}",
            new.order,
            register_key,
            new.method.as_str(),
            new.tendered
        );
        let txn = self.db.begin().await?;
        // Lock order: register, then order (see the module doc).
        let reg = register::Entity::find_by_id(register_key.clone())
            .one(&txn)
            .await?;
        if reg.is_some() {
            lock_register(&txn, &register_key).await?;
        }
        let order_row = lock_order(&txn, &new.order).await?;
        if let Some(previous) = payment::Entity::find()
            .filter(payment::Column::Office.eq(office_key.clone()))
            .filter(payment::Column::RequestId.eq(new.request_id.clone()))
            .one(&txn)
            .await?
        {
            drop(txn);
            if let Some(field) = differing_field(&previous.fingerprint, &fingerprint) {
                return Err(reused(&new.request_id, &field));
            }
            return self.payment_pb(&previous).await;
        }
        let reg = reg.ok_or_else(|| {
            ServiceError::precondition(
                "REGISTER_NOT_OPEN",
                register_key.clone(),
                "the register has never been opened; open a session first",
            )
        })?;
        let session_key = open_session_of(&reg)?;
        if order_row.office != office_key {
            return Err(ServiceError::invalid(
                "register",
                "the register belongs to another office than the order",
            ));
        }
        if let Some(live) = payment::Entity::find()
            .filter(payment::Column::OrderName.eq(new.order.clone()))
            .filter(payment::Column::State.is_in(live_states()))
            .one(&txn)
            .await?
        {
            return Err(already_paying(&new.order, &live));
        }
        let total = Yen(order_row.total_yen);
        let name = format!("{}/payments/{}", new.order, Uuid::now_v7().simple());
        let mut row = payment::ActiveModel {
            name: Set(name.clone()),
            order_name: Set(new.order.clone()),
            office: Set(office_key.clone()),
            register: Set(register_key.clone()),
            session: Set(session_key),
            method: Set(new.method as i16),
            state: Set(PaymentState::Pending as i16),
            amount_yen: Set(total.0),
            tendered_yen: Set(0),
            change_yen: Set(0),
            request_id: Set(new.request_id.clone()),
            fingerprint: Set(fingerprint),
            terminal_reference: Set(None),
            terminal_result_code: Set(String::new()),
            approval_number: Set(String::new()),
            terminal_trace: Set(String::new()),
            receipt_number: Set(None),
            receipt_prints: Set(0),
            business_day: Set(BusinessDay::of(now).ordinal()),
            created_at: Set(micros(now)),
            approved_at: Set(None),
            settled_at: Set(None),
            created_by: Set(new.by.clone()),
            resolved_by: Set(String::new()),
            resolution_note: Set(String::new()),
        };
        let mut events = Vec::new();
        if new.method.uses_terminal() {
            if new.tendered != 0 {
                return Err(ServiceError::invalid(
                    "tendered_yen",
                    "only cash payments have a tendered amount",
                ));
            }
            if total.0 == 0 {
                return Err(ServiceError::invalid(
                    "method",
                    "an order with a zero total is settled as cash (nothing is charged)",
                ));
            }
            let reference = terminal_reference('P');
            row.terminal_reference = Set(Some(reference.clone()));
            events.push(pb::register_event::Kind::PaymentRequested(
                pb::PaymentRequested {
                    payment: name.clone(),
                    order: new.order.clone(),
                    amount_yen: total.0,
                    method: new.method as i32,
                    terminal_reference: reference,
                },
            ));
        } else {
            let change = change_for(total, new.tendered)
                .map_err(|m| ServiceError::invalid("tendered_yen", m))?;
            row.tendered_yen = Set(new.tendered);
            row.change_yen = Set(change.0);
            row.state = Set(PaymentState::Approved as i16);
            row.approved_at = Set(Some(micros(now)));
            row.settled_at = Set(Some(micros(now)));
            row.receipt_number = Set(Some(next_receipt(&txn, &office_key, now).await?));
            row.receipt_prints = Set(1);
            events.push(pb::register_event::Kind::DrawerKick(pb::DrawerKick {
                cause: name.clone(),
            }));
        }
        let row = row.insert(&txn).await.map_err(|e| match db_unique(&e) {
            Some(m) if m.contains("request_id") => reused(&new.request_id, "request"),
            Some(_) => ServiceError::precondition(
                "PAYMENT_IN_PROGRESS",
                new.order.clone(),
                "another payment of the order was taken at the same time",
            ),
            None => e.into(),
        })?;
        if row.state == PaymentState::Approved as i16 {
            let receipt = self.receipt(&txn, &row, false).await?;
            events.push(pb::register_event::Kind::ReceiptToPrint(
                pb::ReceiptToPrint {
                    receipt: Some(receipt),
                },
            ));
        }
        append_events(&txn, &register_key, now, events).await?;
        txn.commit().await?;
        self.bus.wake();
        if row.state == PaymentState::Approved as i16 {
            self.counts
                .count(&office_key, Some(new.method), PaymentOutcome::Approved);
        }
        tracing::info!(
            payment = %row.name,
            method = new.method.as_str(),
            amount_yen = total.0,
            by = %new.by,
            "payment created"
        );
        self.payment_pb(&row).await
    }

    async fn receipt<C: ConnectionTrait>(
        &self,
        c: &C,
        row: &payment::Model,
        reprint: bool,
    ) -> Result<pb::Receipt, ServiceError> {
        let lines = lines_of(c, &row.order_name).await?;
        let office_row = office::Entity::find_by_id(row.office.clone())
            .one(c)
            .await?
            .ok_or_else(|| ServiceError::not_found("office", row.office.clone()))?;
        Ok(receipt_pb(
            row,
            &lines,
            &office_row.name_ja,
            reprint,
            self.names_of_office(&row.office)?,
        ))
    }

    /// A payment with its refunded total.
    async fn payment_pb(&self, row: &payment::Model) -> Result<pb::Payment, ServiceError> {
        let refunds = refund::Entity::find()
            .filter(refund::Column::Payment.eq(row.name.clone()))
            .filter(refund::Column::State.eq(RefundState::Completed as i16))
            .all(&self.db)
            .await?;
        let refunded: i64 = refunds.iter().map(|r| r.amount_yen).sum();
        Ok(payment_pb(row, Yen(refunded)))
    }

    /// A refund with its original payment's terminal reference.
    async fn refund_pb(&self, row: &refund::Model) -> Result<pb::Refund, ServiceError> {
        let original = self.payment_row(&self.db, &row.payment).await?;
        let mut refund = refund_pb(row);
        refund.original_terminal_reference = original.terminal_reference.unwrap_or_default();
        Ok(refund)
    }

    async fn payment_row<C: ConnectionTrait>(
        &self,
        c: &C,
        name: &str,
    ) -> Result<payment::Model, ServiceError> {
        payment::Entity::find_by_id(name.to_owned())
            .one(c)
            .await?
            .ok_or_else(|| ServiceError::not_found("payment", name))
    }

    /// A payment.
    pub async fn get_payment(&self, name: &str) -> Result<pb::Payment, ServiceError> {
        let row = self.payment_row(&self.db, name).await?;
        self.payment_pb(&row).await
    }

    /// Asks the gateway to abort a running terminal payment.
    pub async fn abort_payment(&self, name: &str) -> Result<pb::Payment, ServiceError> {
        let now = self.now();
        let txn = self.db.begin().await?;
        let row = self.payment_row(&txn, name).await?;
        lock_register(&txn, &row.register).await?;
        let row = self.payment_row(&txn, name).await?;
        let state = PaymentState::from_i16(row.state);
        if !matches!(
            state,
            Some(PaymentState::Pending | PaymentState::InProgress)
        ) {
            return Err(ServiceError::precondition(
                "PAYMENT_NOT_RUNNING",
                name,
                "only a pending or in-progress terminal payment can be aborted",
            ));
        }
        append_events(
            &txn,
            &row.register,
            now,
            vec![pb::register_event::Kind::AbortRequested(
                pb::AbortRequested {
                    payment: row.name.clone(),
                    terminal_reference: row.terminal_reference.clone().unwrap_or_default(),
                },
            )],
        )
        .await?;
        txn.commit().await?;
        self.bus.wake();
        self.payment_pb(&row).await
    }

    /// Applies the gateway's report; see `ReportPaymentOutcome`. With
    /// `resolved_by`, a supervisor's resolution of an UNKNOWN payment.
    pub async fn report_outcome(
        &self,
        name: &str,
        outcome: Outcome,
        result_code: &str,
        approval_number: &str,
        trace: &str,
        resolved_by: Option<(&str, &str)>,
    ) -> Result<pb::Payment, ServiceError> {
        let now = self.now();
        let txn = self.db.begin().await?;
        let row = self.payment_row(&txn, name).await?;
        lock_register(&txn, &row.register).await?;
        lock_order(&txn, &row.order_name).await?;
        let row = self.payment_row(&txn, name).await?;
        let state = PaymentState::from_i16(row.state)
            .ok_or_else(|| ServiceError::Internal(format!("payment state {}", row.state)))?;
        if resolved_by.is_some() && state != PaymentState::Unknown {
            return Err(ServiceError::precondition(
                "PAYMENT_NOT_UNKNOWN",
                name,
                "only a payment whose outcome is unknown (処理未了) can be resolved",
            ));
        }
        if Method::from_i32(i32::from(row.method)) == Some(Method::Cash) {
            return Err(ServiceError::precondition(
                "NOT_A_TERMINAL_PAYMENT",
                name,
                "a cash payment has no terminal outcome",
            ));
        }
        let next = apply_outcome(state, outcome).map_err(|reason| {
            ServiceError::precondition(
                reason,
                name,
                format!(
                    "the payment is already {state:?}; the terminal's first definite outcome stands"
                ),
            )
        })?;
        let Some(next) = next else {
            drop(txn);
            return self.payment_pb(&row).await;
        };
        let mut active = row.clone().into_active_model();
        active.state = Set(next as i16);
        if !result_code.is_empty() {
            active.terminal_result_code = Set(result_code.to_owned());
        }
        if !approval_number.is_empty() {
            active.approval_number = Set(approval_number.to_owned());
        }
        if !trace.is_empty() {
            active.terminal_trace = Set(trace.to_owned());
        }
        if next.is_settled() {
            active.settled_at = Set(Some(micros(now)));
        }
        if let Some((by, note)) = resolved_by {
            active.resolved_by = Set(by.to_owned());
            active.resolution_note = Set(note.to_owned());
        }
        let mut events = Vec::new();
        if next == PaymentState::Approved {
            active.approved_at = Set(Some(micros(now)));
            active.receipt_number = Set(Some(next_receipt(&txn, &row.office, now).await?));
            active.receipt_prints = Set(1);
        }
        let row = active.update(&txn).await?;
        if next == PaymentState::Approved {
            let receipt = self.receipt(&txn, &row, false).await?;
            events.push(pb::register_event::Kind::ReceiptToPrint(
                pb::ReceiptToPrint {
                    receipt: Some(receipt),
                },
            ));
        }
        append_events(&txn, &row.register, now, events).await?;
        txn.commit().await?;
        self.bus.wake();
        if let Some(outcome) = PaymentOutcome::of_state(next) {
            self.counts.count(
                &row.office,
                Method::from_i32(i32::from(row.method)),
                outcome,
            );
        }
        match resolved_by {
            Some((by, _)) => {
                tracing::info!(payment = name, state = ?next, by, "audit: payment resolved")
            }
            None => tracing::info!(payment = name, state = ?next, "payment outcome reported"),
        }
        self.payment_pb(&row).await
    }

    /// Voids or refunds; see `VoidPayment` and `RefundPayment`.
    pub async fn refund(&self, new: NewRefund) -> Result<pb::Refund, ServiceError> {
        let now = self.now();
        let kind = if new.line.is_some() {
            RefundKind::Refund
        } else {
            RefundKind::Void
        };
        let txn = self.db.begin().await?;
        let original = self.payment_row(&txn, &new.payment).await?;
        let register_key = new
            .register
            .as_ref()
            .map_or_else(|| original.register.clone(), ToString::to_string);
        let fingerprint = format!(
            "payment={}|kind={}|line_index={}|amount_yen={}|register={}|reason={}",
            new.payment,
            kind.as_str(),
            new.line.map(|l| l.0 as i64).unwrap_or(-1),
            new.line.map(|l| l.1).unwrap_or(-1),
            register_key,
            new.reason,
        );
        if let Some(previous) = refund::Entity::find()
            .filter(refund::Column::Office.eq(original.office.clone()))
            .filter(refund::Column::RequestId.eq(new.request_id.clone()))
            .one(&txn)
            .await?
        {
            drop(txn);
            if let Some(field) = differing_field(&previous.fingerprint, &fingerprint) {
                return Err(reused(&new.request_id, &field));
            }
            return self.refund_pb(&previous).await;
        }
        let reg = register::Entity::find_by_id(register_key.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::not_found("register", register_key.clone()))?;
        if reg.office != original.office {
            return Err(ServiceError::invalid(
                "register",
                "the register belongs to another office than the payment",
            ));
        }
        let reg = lock_register(&txn, &register_key).await?;
        lock_order(&txn, &original.order_name).await?;
        let original = self.payment_row(&txn, &new.payment).await?;
        let session_key = open_session_of(&reg)?;
        if original.state != PaymentState::Approved as i16 {
            return Err(ServiceError::precondition(
                "PAYMENT_NOT_APPROVED",
                new.payment.clone(),
                "only an approved payment can be voided or refunded",
            ));
        }
        let method = Method::from_i32(i32::from(original.method))
            .ok_or_else(|| ServiceError::Internal("stored payment method".into()))?;
        let lines = lines_of(&txn, &original.order_name).await?;
        let earlier = refund::Entity::find()
            .filter(refund::Column::Payment.eq(original.name.clone()))
            .filter(
                refund::Column::State
                    .is_in([RefundState::Requested as i16, RefundState::Completed as i16]),
            )
            .all(&txn)
            .await?;
        let (amount, line_index) = match new.line {
            None => {
                if original.session != session_key
                    || original.business_day != BusinessDay::of(now).ordinal()
                {
                    return Err(ServiceError::precondition(
                        "VOID_NOT_ALLOWED",
                        new.payment.clone(),
                        "a payment can be voided only in its own register session on its own business day; refund it instead",
                    ));
                }
                if !earlier.is_empty() {
                    return Err(ServiceError::precondition(
                        "PAYMENT_PARTLY_REFUNDED",
                        new.payment.clone(),
                        "the payment already has a refund; refund the rest line by line",
                    ));
                }
                (original.amount_yen, None)
            }
            Some((index, amount)) => {
                let line = lines.get(index).ok_or_else(|| {
                    ServiceError::invalid(
                        "line_index",
                        format!("the order has {} line(s)", lines.len()),
                    )
                })?;
                let line_i32 = i32::try_from(index).unwrap_or(i32::MAX);
                let refunded: i64 = earlier
                    .iter()
                    .filter(|r| r.line_index == Some(line_i32))
                    .map(|r| r.amount_yen)
                    .sum();
                let left = line.amount_yen - refunded;
                if amount > left {
                    return Err(ServiceError::precondition(
                        "REFUND_EXCEEDS_PAID",
                        new.payment.clone(),
                        format!(
                            "refund of {amount} yen exceeds the {left} yen paid and not yet refunded on line {index} ({} yen paid, {refunded} yen refunded)",
                            line.amount_yen
                        ),
                    ));
                }
                (amount, Some(line_i32))
            }
        };
        let name = format!("{}/refunds/{}", original.name, Uuid::now_v7().simple());
        let terminal = method.uses_terminal();
        let reference = terminal.then(|| terminal_reference('R'));
        let row = refund::ActiveModel {
            name: Set(name.clone()),
            payment: Set(original.name.clone()),
            order_name: Set(original.order_name.clone()),
            office: Set(original.office.clone()),
            kind: Set(kind as i16),
            state: Set(if terminal {
                RefundState::Requested as i16
            } else {
                RefundState::Completed as i16
            }),
            amount_yen: Set(amount),
            line_index: Set(line_index),
            reason: Set(new.reason.clone()),
            requested_by: Set(new.by.clone()),
            register: Set(register_key.clone()),
            session: Set(session_key),
            method: Set(original.method),
            terminal_reference: Set(reference.clone()),
            business_day: Set(BusinessDay::of(now).ordinal()),
            created_at: Set(micros(now)),
            settled_at: Set((!terminal).then_some(micros(now))),
            request_id: Set(new.request_id.clone()),
            fingerprint: Set(fingerprint),
        }
        .insert(&txn)
        .await
        .map_err(|e| match db_unique(&e) {
            Some(_) => reused(&new.request_id, "request"),
            None => e.into(),
        })?;
        let event = match reference {
            Some(reference) => pb::register_event::Kind::RefundRequested(pb::RefundRequested {
                refund: name.clone(),
                original_terminal_reference: original
                    .terminal_reference
                    .clone()
                    .unwrap_or_default(),
                amount_yen: amount,
                terminal_reference: reference,
                method: method as i32,
            }),
            None => {
                if kind == RefundKind::Void {
                    set_payment_state(&txn, &original.name, PaymentState::Voided, now).await?;
                }
                pb::register_event::Kind::DrawerKick(pb::DrawerKick {
                    cause: name.clone(),
                })
            }
        };
        append_events(&txn, &register_key, now, vec![event]).await?;
        txn.commit().await?;
        self.bus.wake();
        if !terminal {
            self.counts.count(
                &original.office,
                Method::from_i32(i32::from(original.method)),
                refund_outcome(kind),
            );
        }
        tracing::info!(
            refund = %name,
            kind = kind.as_str(),
            amount_yen = amount,
            by = %new.by,
            reason = %new.reason,
            "audit: payment voided or refunded"
        );
        self.refund_pb(&row).await
    }

    /// Applies the gateway's report on a refund; see `ReportRefundOutcome`.
    pub async fn report_refund_outcome(
        &self,
        name: &str,
        outcome: Outcome,
    ) -> Result<pb::Refund, ServiceError> {
        let now = self.now();
        let target = match outcome {
            Outcome::Approved => RefundState::Completed,
            Outcome::Declined => RefundState::Failed,
            _ => {
                return Err(ServiceError::invalid(
                    "outcome",
                    "a refund's outcome is APPROVED or DECLINED",
                ));
            }
        };
        let txn = self.db.begin().await?;
        let find = |c| refund::Entity::find_by_id(name.to_owned()).one(c);
        let row = find(&txn)
            .await?
            .ok_or_else(|| ServiceError::not_found("refund", name))?;
        lock_register(&txn, &row.register).await?;
        lock_order(&txn, &row.order_name).await?;
        let row = find(&txn)
            .await?
            .ok_or_else(|| ServiceError::not_found("refund", name))?;
        if row.state == target as i16 {
            // A retry: answer as before. The transaction ends first: on
            // SQLite the pool's one connection is what refund_pb needs.
            drop(txn);
            return self.refund_pb(&row).await;
        }
        if row.state != RefundState::Requested as i16 {
            return Err(ServiceError::precondition(
                "REFUND_ALREADY_SETTLED",
                name,
                "the refund already has a different outcome",
            ));
        }
        let mut active = row.clone().into_active_model();
        active.state = Set(target as i16);
        active.settled_at = Set(Some(micros(now)));
        let row = active.update(&txn).await?;
        if target == RefundState::Completed && row.kind == RefundKind::Void as i16 {
            set_payment_state(&txn, &row.payment, PaymentState::Voided, now).await?;
        }
        txn.commit().await?;
        if target == RefundState::Completed {
            let kind = if row.kind == RefundKind::Void as i16 {
                RefundKind::Void
            } else {
                RefundKind::Refund
            };
            self.counts.count(
                &row.office,
                Method::from_i32(i32::from(row.method)),
                refund_outcome(kind),
            );
        }
        tracing::info!(refund = name, state = ?target, "refund outcome reported");
        self.refund_pb(&row).await
    }

    /// Prints a receipt again; see `ReprintReceipt`.
    pub async fn reprint(&self, name: &str) -> Result<pb::Receipt, ServiceError> {
        let now = self.now();
        let txn = self.db.begin().await?;
        let row = self.payment_row(&txn, name).await?;
        lock_register(&txn, &row.register).await?;
        let row = self.payment_row(&txn, name).await?;
        if row.receipt_number.is_none() {
            return Err(ServiceError::precondition(
                "PAYMENT_NOT_APPROVED",
                name,
                "only an approved payment has a receipt",
            ));
        }
        payment::Entity::update_many()
            .col_expr(
                payment::Column::ReceiptPrints,
                Expr::col(payment::Column::ReceiptPrints).add(1),
            )
            .filter(payment::Column::Name.eq(name.to_owned()))
            .exec(&txn)
            .await?;
        let receipt = self.receipt(&txn, &row, true).await?;
        append_events(
            &txn,
            &row.register,
            now,
            vec![pb::register_event::Kind::ReceiptToPrint(
                pb::ReceiptToPrint {
                    receipt: Some(receipt.clone()),
                },
            )],
        )
        .await?;
        txn.commit().await?;
        self.bus.wake();
        Ok(receipt)
    }

    /// The daily close; see `GetDailyClose`.
    pub async fn daily_close(
        &self,
        scope: &Scope,
        day: BusinessDay,
    ) -> Result<pb::DailyClose, ServiceError> {
        let (office, register, scope_name) = match scope {
            Scope::Register(r) => (r.office.to_string(), Some(r.to_string()), r.to_string()),
            Scope::Office(o) => (o.to_string(), None, o.to_string()),
        };
        let txn = self.db.begin().await?;
        let mut payments_q = payment::Entity::find()
            .filter(payment::Column::Office.eq(office.clone()))
            .filter(payment::Column::BusinessDay.eq(day.ordinal()));
        let mut refunds_q = refund::Entity::find()
            .filter(refund::Column::Office.eq(office.clone()))
            .filter(refund::Column::BusinessDay.eq(day.ordinal()))
            .filter(refund::Column::State.eq(RefundState::Completed as i16));
        let mut sessions_q = session::Entity::find()
            .filter(session::Column::Office.eq(office.clone()))
            .filter(session::Column::BusinessDay.eq(day.ordinal()));
        if let Some(register) = &register {
            payments_q = payments_q.filter(payment::Column::Register.eq(register.clone()));
            refunds_q = refunds_q.filter(refund::Column::Register.eq(register.clone()));
            sessions_q = sessions_q.filter(session::Column::Register.eq(register.clone()));
        }
        let payments = payments_q.all(&txn).await?;
        let refunds = refunds_q.all(&txn).await?;
        let sessions = sessions_q.all(&txn).await?;
        let orders: HashSet<String> = payments
            .iter()
            .map(|p| p.order_name.clone())
            .chain(refunds.iter().map(|r| r.order_name.clone()))
            .collect();
        let lines = lines_of_many(&txn, orders).await?;
        drop(txn);

        let counted: Vec<&payment::Model> = payments
            .iter()
            .filter(|p| {
                p.state == PaymentState::Approved as i16 || p.state == PaymentState::Voided as i16
            })
            .collect();
        let close_payments: Vec<ClosePayment> = counted
            .iter()
            .map(|p| ClosePayment {
                method: Method::from_i32(i32::from(p.method)).unwrap_or(Method::Cash),
                lines: lines
                    .get(&p.order_name)
                    .map(|ls| ls.iter().map(records::close_line).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let close_refunds: Vec<CloseRefund> = refunds
            .iter()
            .map(|r| {
                records::close_refund(r, lines.get(&r.order_name).map_or(&[][..], Vec::as_slice))
            })
            .collect();
        let totals = CloseTotals::compute(&close_payments, &close_refunds);

        let float: i64 = sessions.iter().map(|s| s.float_yen).sum();
        let cash = totals
            .by_method
            .get(&Method::Cash)
            .cloned()
            .unwrap_or_default();
        let net_cash = cash.received.0 - cash.refunded.0;
        let closed: Vec<&session::Model> = sessions.iter().filter(|s| s.state == 2).collect();
        let count = |f: fn(&payment::Model) -> bool| -> u32 {
            u32::try_from(payments.iter().filter(|p| f(p)).count()).unwrap_or(u32::MAX)
        };
        let usage = pb::UsageCounts {
            payments: u32::try_from(counted.len()).unwrap_or(u32::MAX),
            cashless_payments: u32::try_from(
                counted
                    .iter()
                    .filter(|p| p.method != Method::Cash as i16)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            receipts_printed: u32::try_from(
                payments
                    .iter()
                    .map(|p| i64::from(p.receipt_prints))
                    .sum::<i64>(),
            )
            .unwrap_or(u32::MAX),
            voids: totals.voids,
            refunds: totals.refunds,
            failed_payments: count(|p| {
                p.state == PaymentState::Declined as i16 || p.state == PaymentState::Aborted as i16
            }),
            unresolved_payments: count(|p| p.state == PaymentState::Unknown as i16),
        };
        let yen = |amount: i64| Some(madoguchi_proto::types::v1::Yen { amount });
        Ok(pb::DailyClose {
            scope: scope_name,
            business_day: Some(records::date_pb(day)),
            by_method: totals
                .by_method
                .iter()
                .map(|(method, t)| pb::MethodTotal {
                    method: *method as i32,
                    payments: t.payments,
                    received: yen(t.received.0),
                    refunded: yen(t.refunded.0),
                    net: yen(t.received.0 - t.refunded.0),
                })
                .collect(),
            by_fee_item: totals
                .by_item
                .iter()
                .map(|(id, t)| pb::FeeItemTotal {
                    fee_item: id.clone(),
                    name_ja: t.name_ja.clone(),
                    copies: t.copies,
                    exempted_copies: t.exempted_copies,
                    received: yen(t.received.0),
                    refunded: yen(t.refunded.0),
                    net: yen(t.received.0 - t.refunded.0),
                })
                .collect(),
            by_account: totals
                .by_account
                .iter()
                .map(|(account, t)| pb::AccountTotal {
                    revenue_account: account.clone(),
                    received: yen(t.received.0),
                    refunded: yen(t.refunded.0),
                    net: yen(t.received.0 - t.refunded.0),
                })
                .collect(),
            cash: Some(pb::CashCount {
                float_yen: yen(float),
                net_cash: yen(net_cash),
                expected: yen(float + net_cash),
                counted: yen(closed.iter().filter_map(|s| s.counted_yen).sum()),
                difference: yen(closed
                    .iter()
                    .map(|s| s.counted_yen.unwrap_or(0) - s.expected_yen.unwrap_or(0))
                    .sum()),
                open_sessions: u32::try_from(sessions.len() - closed.len()).unwrap_or(u32::MAX),
            }),
            usage: Some(usage),
            received: yen(totals.received().0),
            refunded: yen(totals.refunded().0),
            net: yen(totals.received().0 - totals.refunded().0),
        })
    }

    /// The reconciliation CSV; see `ExportReconciliation` and docs/pos.md.
    pub async fn export(
        &self,
        office: &OfficeName,
        start: BusinessDay,
        end: BusinessDay,
    ) -> Result<(String, u32), ServiceError> {
        let office_key = office.to_string();
        let txn = self.db.begin().await?;
        let payments = payment::Entity::find()
            .filter(payment::Column::Office.eq(office_key.clone()))
            .filter(payment::Column::BusinessDay.between(start.ordinal(), end.ordinal()))
            .filter(
                payment::Column::State
                    .is_in([PaymentState::Approved as i16, PaymentState::Voided as i16]),
            )
            .order_by_asc(payment::Column::BusinessDay)
            .order_by_asc(payment::Column::ApprovedAt)
            .all(&txn)
            .await?;
        let refunds = refund::Entity::find()
            .filter(refund::Column::Office.eq(office_key.clone()))
            .filter(refund::Column::BusinessDay.between(start.ordinal(), end.ordinal()))
            .filter(refund::Column::State.eq(RefundState::Completed as i16))
            .order_by_asc(refund::Column::BusinessDay)
            .order_by_asc(refund::Column::SettledAt)
            .all(&txn)
            .await?;
        let orders: HashSet<String> = payments
            .iter()
            .map(|p| p.order_name.clone())
            .chain(refunds.iter().map(|r| r.order_name.clone()))
            .collect();
        let lines = lines_of_many(&txn, orders).await?;
        let by_payment: HashMap<String, &payment::Model> =
            payments.iter().map(|p| (p.name.clone(), p)).collect();
        let mut originals = HashMap::new();
        for r in &refunds {
            if !by_payment.contains_key(&r.payment) && !originals.contains_key(&r.payment) {
                let p = self.payment_row(&txn, &r.payment).await?;
                originals.insert(r.payment.clone(), p);
            }
        }
        drop(txn);
        records::reconciliation_csv(&payments, &refunds, &lines, |name| {
            by_payment
                .get(name)
                .copied()
                .or_else(|| originals.get(name))
        })
    }

    /// The head of a register's log, or NOT_FOUND.
    pub async fn register(&self, name: &OfficeChild) -> Result<register::Model, ServiceError> {
        register::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("register", name.to_string()))
    }

    /// Up to `limit` events of a register after `after`, in order.
    pub async fn events_after(
        &self,
        register_key: &str,
        after: i64,
        limit: u64,
    ) -> Result<Vec<pb::RegisterEvent>, ServiceError> {
        let rows = event::Entity::find()
            .filter(event::Column::Register.eq(register_key.to_owned()))
            .filter(event::Column::Sequence.gt(after))
            .order_by_asc(event::Column::Sequence)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                pb::RegisterEvent::decode(row.payload.as_slice()).map_err(|e| {
                    ServiceError::Internal(format!("stored event {}: {e}", row.sequence))
                })
            })
            .collect()
    }
}

fn already_paying(order: &str, live: &payment::Model) -> ServiceError {
    if live.state == PaymentState::Approved as i16 {
        ServiceError::precondition(
            "ORDER_ALREADY_PAID",
            order,
            format!("the order is already paid by {}", live.name),
        )
    } else {
        ServiceError::precondition(
            "PAYMENT_IN_PROGRESS",
            order,
            format!(
                "payment {} of the order is still pending or unknown; wait for its outcome, abort it or resolve it",
                live.name
            ),
        )
    }
}

fn open_session_of(reg: &register::Model) -> Result<String, ServiceError> {
    reg.open_session.clone().ok_or_else(|| {
        ServiceError::precondition(
            "REGISTER_NOT_OPEN",
            reg.name.clone(),
            "the register has no open session; open one first",
        )
    })
}

fn order_fingerprint(new: &NewOrder) -> String {
    let lines: Vec<String> = new
        .lines
        .iter()
        .map(|l| {
            format!(
                "{}x{}{}",
                l.item.id,
                l.copies,
                l.exemption
                    .as_ref()
                    .map(|e| format!("!{}", e.id))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "certificate_request={}|lines={}",
        new.certificate_request.clone().unwrap_or_default(),
        lines.join(",")
    )
}

/// Step 1: the register's row lock (and a check that it exists).
async fn lock_register(
    txn: &DatabaseTransaction,
    key: &str,
) -> Result<register::Model, ServiceError> {
    register::Entity::update_many()
        .col_expr(
            register::Column::LastSequence,
            // `0i64`, not `0`: append_events runs the same SQL text with
            // an i64, and PostgreSQL's cached statement keeps the first
            // parameter type it saw (an i32 here would break it).
            Expr::col(register::Column::LastSequence).add(0i64),
        )
        .filter(register::Column::Name.eq(key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("register", key))
}

/// Step 2: the order's row lock.
async fn lock_order(txn: &DatabaseTransaction, key: &str) -> Result<order::Model, ServiceError> {
    order::Entity::update_many()
        .col_expr(
            order::Column::Version,
            Expr::col(order::Column::Version).add(1),
        )
        .filter(order::Column::Name.eq(key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("order", key))
}

async fn set_payment_state(
    txn: &DatabaseTransaction,
    name: &str,
    state: PaymentState,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    payment::Entity::update_many()
        .col_expr(payment::Column::State, Expr::value(state as i16))
        .col_expr(payment::Column::SettledAt, Expr::value(micros(now)))
        .filter(payment::Column::Name.eq(name.to_owned()))
        .exec(txn)
        .await?;
    Ok(())
}

/// The next receipt number of an office: `{year}-{number:06}`, the number
/// counting up forever per office (the office row's lock serialises it).
async fn next_receipt(
    txn: &DatabaseTransaction,
    office_key: &str,
    now: DateTime<Utc>,
) -> Result<String, ServiceError> {
    let row = office::Entity::update_many()
        .col_expr(
            office::Column::LastReceipt,
            Expr::col(office::Column::LastReceipt).add(1),
        )
        .filter(office::Column::Name.eq(office_key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("office", office_key))?;
    Ok(format!(
        "{}-{:06}",
        BusinessDay::of(now).date().format("%Y"),
        row.last_receipt
    ))
}

/// Step 4: appends events with the register's next sequences.
async fn append_events(
    txn: &DatabaseTransaction,
    register_key: &str,
    now: DateTime<Utc>,
    events: Vec<pb::register_event::Kind>,
) -> Result<(), ServiceError> {
    if events.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let reg = register::Entity::update_many()
        .col_expr(
            register::Column::LastSequence,
            Expr::col(register::Column::LastSequence).add(n),
        )
        .filter(register::Column::Name.eq(register_key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("register", register_key))?;
    let first = reg.last_sequence - n + 1;
    for (i, kind) in events.into_iter().enumerate() {
        let sequence = first + i64::try_from(i).unwrap_or(0);
        let event = pb::RegisterEvent {
            sequence: u64::try_from(sequence).unwrap_or_default(),
            event_time: Some(timestamp(micros(now))),
            kind: Some(kind),
        };
        event::ActiveModel {
            register: Set(register_key.to_owned()),
            sequence: Set(sequence),
            created_at: Set(micros(now)),
            payload: Set(event.encode_to_vec()),
        }
        .insert(txn)
        .await?;
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}

/// Cash the session's drawer should hold: float + cash taken − cash paid
/// back through this session.
async fn expected_cash(
    txn: &DatabaseTransaction,
    row: &session::Model,
) -> Result<Yen, ServiceError> {
    let taken: i64 = payment::Entity::find()
        .filter(payment::Column::Session.eq(row.name.clone()))
        .filter(payment::Column::Method.eq(Method::Cash as i16))
        .filter(
            payment::Column::State
                .is_in([PaymentState::Approved as i16, PaymentState::Voided as i16]),
        )
        .all(txn)
        .await?
        .iter()
        .map(|p| p.amount_yen)
        .sum();
    let paid_back: i64 = refund::Entity::find()
        .filter(refund::Column::Session.eq(row.name.clone()))
        .filter(refund::Column::Method.eq(Method::Cash as i16))
        .filter(refund::Column::State.eq(RefundState::Completed as i16))
        .all(txn)
        .await?
        .iter()
        .map(|r| r.amount_yen)
        .sum();
    Ok(Yen(row.float_yen + taken - paid_back))
}

async fn lines_of<C: ConnectionTrait>(
    c: &C,
    order_name: &str,
) -> Result<Vec<order_line::Model>, ServiceError> {
    Ok(order_line::Entity::find()
        .filter(order_line::Column::OrderName.eq(order_name.to_owned()))
        .order_by_asc(order_line::Column::LineIndex)
        .all(c)
        .await?)
}

async fn lines_of_many<C: ConnectionTrait>(
    c: &C,
    orders: HashSet<String>,
) -> Result<BTreeMap<String, Vec<order_line::Model>>, ServiceError> {
    let mut out: BTreeMap<String, Vec<order_line::Model>> = BTreeMap::new();
    let orders: Vec<String> = orders.into_iter().collect();
    // Bounded IN lists: SQLite limits bound parameters per statement.
    for chunk in orders.chunks(500) {
        let rows = order_line::Entity::find()
            .filter(order_line::Column::OrderName.is_in(chunk.to_vec()))
            .order_by_asc(order_line::Column::OrderName)
            .order_by_asc(order_line::Column::LineIndex)
            .all(c)
            .await?;
        for row in rows {
            out.entry(row.order_name.clone()).or_default().push(row);
        }
    }
    Ok(out)
}
