//! The queue's storage: every state change in one transaction.
//!
//! Each mutating operation follows the same shape:
//!
//! 1. increment the office's `last_sequence` (`UPDATE … RETURNING`). On
//!    PostgreSQL this takes the office row's lock until commit, so an
//!    office's writers are serialised and sequence order equals commit
//!    order; on SQLite the single connection serialises them anyway;
//! 2. check the request against what is stored (idempotency record, state,
//!    etag) and change the visit and leg rows;
//! 3. append one event with that sequence (and `NOTIFY` on PostgreSQL);
//! 4. commit, then wake in-process watchers.
//!
//! Any error before commit drops the transaction, which rolls back every
//! write including the sequence increment: no partial writes, no gaps.
//!
//! `IssueTicket` on PostgreSQL takes steps 1 and 2 up to its number in one
//! statement (`begin_issue_on_postgres`), and writes its rows, notifies and
//! reads its wait estimate in a second (`insert_ticket`).
//!
//! `CallNext` reads first and writes once, conditional on the office's
//! sequence not having moved, and keeps the next heads of the lines it read
//! so that the call after it may only write (`call`). Within a process an office's writers
//! also take turns (`QueueStore::office_turn`) before they touch the
//! database.

mod call;
pub mod entities;
pub use call::CallPaths;
pub mod migration;
pub mod offline;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};
use tracing::Instrument as _;

use chrono::{DateTime, Duration, Utc};
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::Site;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::prost::Message;
use madoguchi_proto::queue::v1 as pb;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use self::entities::{
    category, counter, event, leased_number, leg, number_counter, office, request, visit,
};
use crate::domain::{
    Estimate, EstimateInput, LEG_ENDED, LegOutcome, OfficeChild, OfficeName, TicketAction,
    VisitState, display_number, estimate_wait, successor,
};
use crate::notify::{CHANNEL, EventBus, LoggedEvent};
use crate::ticket::{TicketRecord, micros, timestamp};

/// Finished services an estimate looks back on.
const ESTIMATE_SAMPLES: u64 = 20;

/// The queue's tables, behind the operations the service offers.
#[derive(Debug, Clone)]
pub struct QueueStore {
    db: DatabaseConnection,
    clock: SharedClock,
    bus: EventBus,
    catalog: Arc<RwLock<Catalog>>,
    /// Optimistic claims a `CallNext` tries on PostgreSQL before it takes
    /// the office's lock (see `call`).
    call_attempts: usize,
    /// The heads of the lines that the last calls read beyond the one they
    /// took, and how calls went (see `call`).
    windows: Arc<call::Windows>,
}

/// The active categories and counters as seeded from the site, kept in
/// memory so the hot paths do not read them back: they change only when
/// the site file does, and a new site file takes a restart (replicas of one
/// deployment run the same site file).
#[derive(Debug, Default)]
struct Catalog {
    categories: HashMap<String, CategoryInfo>,
    counters: HashMap<String, CounterInfo>,
    open_minutes: HashMap<String, i64>,
    /// Per office, the turn its writers in this process take (see
    /// [`QueueStore::office_turn`]).
    turns: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// What the hot paths need of a category.
#[derive(Debug, Clone)]
struct CategoryInfo {
    office: String,
    prefix: String,
    daily_quota: i32,
    default_service_minutes: i64,
}

/// What the hot paths need of a counter.
#[derive(Debug, Clone)]
struct CounterInfo {
    office: String,
    categories: Vec<String>,
}

/// A filtered page request of `ListTickets`.
#[derive(Debug, Clone)]
pub struct TicketQuery {
    /// Business day; `None` for today by the service's clock.
    pub day: Option<BusinessDay>,
    /// Only these states (empty: all).
    pub states: Vec<VisitState>,
    /// Only tickets now in this category.
    pub category: Option<String>,
    /// Page size, 1..=1000.
    pub page_size: u64,
    /// Resume after this issue sequence.
    pub after_sequence: i64,
}

impl QueueStore {
    /// A store on `db`; call [`QueueStore::prepare`] before use.
    pub fn new(db: DatabaseConnection, clock: SharedClock, bus: EventBus) -> Self {
        Self {
            db,
            clock,
            bus,
            catalog: Arc::default(),
            call_attempts: call::OPTIMISTIC_ATTEMPTS,
            windows: Arc::default(),
        }
    }

    /// How many optimistic claims a `CallNext` on PostgreSQL tries before
    /// it takes the office's lock; 0 always locks. For tests of both ways.
    pub fn with_call_attempts(mut self, attempts: usize) -> Self {
        self.call_attempts = attempts;
        self
    }

    fn read_catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An active category of `office_key`, or NOT_FOUND.
    fn category(&self, office_key: &str, category_key: &str) -> Result<CategoryInfo, ServiceError> {
        self.read_catalog()
            .categories
            .get(category_key)
            .filter(|c| c.office == office_key)
            .cloned()
            .ok_or_else(|| ServiceError::not_found("category", category_key))
    }

    /// The connection, for the PostgreSQL listener.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The wake-up bus of this store's writers.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// [`QueueStore::prepare_sites`] for one site.
    pub async fn prepare(&self, site: &Site) -> Result<(), ServiceError> {
        self.prepare_sites(std::slice::from_ref(site)).await
    }

    /// Runs migrations and seeds the offices, categories and counters of
    /// every served site (one per municipality), in one transaction. On
    /// PostgreSQL a transaction-scoped advisory lock makes concurrent
    /// start-ups of several replicas take turns instead of racing to
    /// create the same tables.
    ///
    /// Every row is keyed by its full resource name
    /// (`municipalities/{code}/offices/{office}/…`), so offices of
    /// different municipalities with the same id (`main`) never share a
    /// row, a number sequence, an event log or a writer's turn.
    pub async fn prepare_sites(&self, sites: &[Site]) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Any constant works; this one spells "madoguchi queue".
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7242021)")
                .await?;
        }
        migration::Migrator::up(&txn, None).await?;
        for site in sites {
            seed(&txn, site).await?;
        }
        txn.commit().await?;
        let mut catalog = Catalog::default();
        for site in sites {
            add_to_catalog(&mut catalog, site);
        }
        *self
            .catalog
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = catalog;
        Ok(())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Waits for this process's turn to write to an office's tickets
    /// (`None` for an office the site does not have; the write then fails
    /// on its own). The database serialises an office's writers anyway,
    /// from their sequence increment to their commit; queueing them here
    /// first, in arrival order, means they wait without holding a
    /// connection, and a `CallNext` never loses its optimistic claim to a
    /// writer of the same process — only to another replica's. Take it
    /// before any connection or transaction, never the other way round.
    async fn office_turn(&self, office_key: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let turn = self.read_catalog().turns.get(office_key).cloned()?;
        Some(turn.lock_owned().await)
    }

    /// Reads an office.
    pub async fn office(&self, name: &OfficeName) -> Result<office::Model, ServiceError> {
        office::Entity::find_by_id(name.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("office", name.to_string()))
    }

    /// Issues a ticket; see `IssueTicket` in the proto.
    pub async fn issue_ticket(
        &self,
        office_name: &OfficeName,
        category_name: &OfficeChild,
        priority: bool,
        request_id: Option<Uuid>,
    ) -> Result<pb::Ticket, ServiceError> {
        let span = madoguchi_platform::storage::operation_span(
            &self.db,
            "INSERT queue_visits queue_legs queue_events",
        );
        self.issue_ticket_untraced(office_name, category_name, priority, request_id)
            .instrument(span)
            .await
    }

    /// [`Self::issue_ticket`] inside its database span.
    async fn issue_ticket_untraced(
        &self,
        office_name: &OfficeName,
        category_name: &OfficeChild,
        priority: bool,
        request_id: Option<Uuid>,
    ) -> Result<pb::Ticket, ServiceError> {
        let now = self.now();
        let day = BusinessDay::of(now);
        let office_key = office_name.to_string();
        let category_key = category_name.to_string();
        let fingerprint = format!("IssueTicket|{category_key}|{priority}");

        let turn = self.office_turn(&office_key).await;
        let txn = self.db.begin().await?;
        let known = self.category(&office_key, &category_key);
        // Steps 1 and 2 up to the number: on PostgreSQL one statement
        // (`begin_issue_on_postgres`), elsewhere (or for a category that is
        // not known, whose error must still come after a replay) one at a
        // time.
        let on_postgres = txn.get_database_backend() == DbBackend::Postgres;
        let (category, sequence, max_number, numbers, free) = match known {
            Ok(category) if on_postgres => {
                match begin_issue_on_postgres(&txn, &office_key, &category_key, day, request_id)
                    .await?
                {
                    Begun::Replay {
                        visit,
                        fingerprint: stored,
                    } => {
                        let previous = replay_of(visit, &stored, &fingerprint)?;
                        drop(txn);
                        return self.ticket_by_id(&office_key, &previous).await;
                    }
                    Begun::Fresh {
                        sequence,
                        max_number,
                        numbers,
                        free,
                    } => (category, sequence, max_number, numbers, Some(free)),
                }
            }
            known => {
                let office = bump_sequence(&txn, &office_key).await?;
                if let Some(previous) = replay(&txn, &office_key, request_id, &fingerprint).await? {
                    drop(txn);
                    return self.ticket_by_id(&office_key, &previous).await;
                }
                let category = known?;
                let numbers = advance_number(&txn, &category_key, day, office.max_number).await?;
                (
                    category,
                    office.last_sequence,
                    office.max_number,
                    numbers,
                    None,
                )
            }
        };
        let max_number = Ord::max(max_number, 1);
        if category.daily_quota > 0 && numbers.issued_count > category.daily_quota {
            return Err(ServiceError::ResourceExhausted {
                reason: "DAILY_QUOTA_REACHED",
                subject: category_key,
                message: format!(
                    "the category's daily quota of {} tickets is used up",
                    category.daily_quota
                ),
            });
        }
        // Usually that number is free (one query, or none when the first
        // statement checked); when it is held by a ticket still open or by
        // a device's lease, probe on from it.
        let mut number = numbers.last_number;
        let free = match free {
            Some(free) => free,
            None => number_free(&txn, &category_key, day, number).await?,
        };
        if !free {
            let leased = leased_numbers(&txn, &category_key, day).await?;
            number = free_number(&txn, &category_key, number, max_number, &leased).await?;
            set_last_number(&txn, &category_key, day, number).await?;
        }

        let id = Uuid::now_v7().to_string();
        let visit = visit::Model {
            id: id.clone(),
            office: office_key.clone(),
            issue_category: category_key.clone(),
            business_day: day.ordinal(),
            number,
            display_number: display_number(&category.prefix, number as u32),
            priority,
            state: VisitState::Waiting as i16,
            issued_at: micros(now),
            issue_sequence: sequence,
            current_leg: 0,
            current_category: category_key.clone(),
            current_counter: None,
            recall_count: 0,
            version: 1,
            last_sequence: sequence,
            issued_offline: false,
            imported_at: None,
            issuing_device: None,
        };
        let leg = leg::Model {
            visit_id: id.clone(),
            leg_index: 0,
            category: category_key,
            state: VisitState::Waiting as i16,
            priority_rank: priority_rank(priority),
            arrival_sequence: sequence,
            arrival_offset: 0,
            counter: None,
            enqueued_at: micros(now),
            called_at: None,
            started_at: None,
            ended_at: None,
            outcome: LegOutcome::Open as i16,
        };
        let record = TicketRecord {
            visit,
            legs: vec![leg],
        };
        let event = office_event(&record, pb::EventType::TicketIssued, "", "", now);
        let remembered = request_id.map(|request_id| request::Model {
            office: office_key.clone(),
            request_id: request_id.to_string(),
            fingerprint: fingerprint.clone(),
            visit_id: id.clone(),
            created_at: micros(now),
        });
        // The wait is read inside the transaction, before the commit: on
        // PostgreSQL in the same statement as the rows, on SQLite (whose
        // one connection the transaction holds) in the next execution.
        let basis = on_postgres.then(|| self.estimate_basis(&office_key, &record.legs[0].category));
        let rows = insert_ticket(
            &txn,
            &self.bus,
            &record,
            &event,
            remembered.as_ref(),
            basis.map(|(since, _)| since),
        )
        .await?;
        let ticket = match basis {
            Some((_, default_minutes)) => {
                let mut ticket = record.to_proto();
                set_wait(&mut ticket, read_estimate(&rows, default_minutes)?);
                ticket
            }
            None => self.with_wait_on(&txn, record).await?,
        };
        txn.commit().await?;
        // Published in turn, so this process's followers see its events in
        // order and need not read the log back.
        self.bus.publish([event]);
        drop(turn);
        Ok(ticket)
    }

    /// Calls the next ticket to a counter the way every write did before
    /// the optimistic claim (see `call`): take the office's lock first, then
    /// read and claim under it. The fallback when optimistic claims keep
    /// losing to other writers of the office, so a call always makes
    /// progress.
    async fn call_next_locked(
        &self,
        target: &call::CallTarget,
        request_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Option<pb::Ticket>, ServiceError> {
        let office_key = &target.office;
        let counter_key = &target.counter;
        let txn = self.db.begin().await?;
        let sequence = bump_sequence(&txn, office_key).await?.last_sequence;
        if let Some(previous) = replay(&txn, office_key, request_id, &target.fingerprint).await? {
            drop(txn);
            return self.ticket_by_id(office_key, &previous).await.map(Some);
        }

        // The head of the counter's lines is claimed in one statement: the
        // subquery seeks the partial waiting index (one category: an
        // ordered index scan stopping at the first row) and yields nothing
        // while the counter still has a ticket open. The office row lock
        // taken above serialises this office's writers, so the head cannot
        // be claimed twice.
        let open_here = open_at_counter(counter_key)
            .select_only()
            .expr(Expr::cust("1"))
            .into_query();
        let head = call::head_of_lines(&target.categories)
            .and_where(Expr::exists(open_here).not())
            .to_owned();
        let claimed = leg::Entity::update_many()
            .col_expr(leg::Column::State, Expr::value(VisitState::Called as i16))
            .col_expr(leg::Column::Counter, Expr::value(counter_key.clone()))
            .col_expr(leg::Column::CalledAt, Expr::value(micros(now)))
            .filter(
                Expr::tuple([
                    Expr::col(leg::Column::VisitId),
                    Expr::col(leg::Column::LegIndex),
                ])
                .in_subquery(head),
            )
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        let Some(leg) = claimed else {
            // Nothing claimed: either the counter is busy or nobody waits.
            // Dropping the transaction rolls the sequence increment back.
            if let Some(busy) = open_at_counter(counter_key).one(&txn).await? {
                return Err(call::counter_busy(counter_key, &busy.display_number));
            }
            return Ok(None);
        };

        let visit = visit::Entity::update_many()
            .col_expr(visit::Column::State, Expr::value(VisitState::Called as i16))
            .col_expr(
                visit::Column::CurrentCounter,
                Expr::value(counter_key.clone()),
            )
            .col_expr(visit::Column::RecallCount, Expr::value(0))
            .col_expr(
                visit::Column::Version,
                Expr::col(visit::Column::Version).add(1),
            )
            .col_expr(visit::Column::LastSequence, Expr::value(sequence))
            .filter(visit::Column::Id.eq(leg.visit_id.clone()))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::Internal("waiting leg without visit".into()))?;
        // A first leg is the visit's only one (later legs come from
        // transfers), so the common call needs no second read.
        let record = if leg.leg_index == 0 && visit.current_leg == 0 {
            TicketRecord {
                visit,
                legs: vec![leg],
            }
        } else {
            load_legs(&txn, visit).await?
        };
        let event = append_event(
            &txn,
            &self.bus,
            &record,
            pb::EventType::TicketCalled,
            counter_key,
            "",
            now,
        )
        .await?;
        remember(
            &txn,
            office_key,
            request_id,
            &target.fingerprint,
            &record.visit.id,
            now,
        )
        .await?;
        txn.commit().await?;
        self.bus.publish([event]);
        Ok(Some(record.to_proto()))
    }

    /// Applies an action to a ticket: recall, no-show, start, finish,
    /// transfer or cancel. With a `request_id` the action is remembered in
    /// the same transaction, and a retry returns the ticket as it is now
    /// instead of acting again (the forms service's TransferForItem relies
    /// on this to move a ticket once).
    pub async fn act(
        &self,
        ticket_name: &OfficeChild,
        action: TicketAction,
        etag: Option<&str>,
        transfer_to: Option<&OfficeChild>,
        request_id: Option<Uuid>,
    ) -> Result<pb::Ticket, ServiceError> {
        let span = madoguchi_platform::storage::operation_span(
            &self.db,
            "UPDATE queue_legs queue_visits INSERT queue_events",
        );
        self.act_untraced(ticket_name, action, etag, transfer_to, request_id)
            .instrument(span)
            .await
    }

    /// [`Self::act`] inside its database span.
    async fn act_untraced(
        &self,
        ticket_name: &OfficeChild,
        action: TicketAction,
        etag: Option<&str>,
        transfer_to: Option<&OfficeChild>,
        request_id: Option<Uuid>,
    ) -> Result<pb::Ticket, ServiceError> {
        let now = self.now();
        let now_us = micros(now);
        let office_key = ticket_name.office.to_string();
        let ticket_key = ticket_name.to_string();

        let fingerprint = format!(
            "{action:?}|{ticket_key}|{}",
            transfer_to.map(ToString::to_string).unwrap_or_default()
        );

        let turn = self.office_turn(&office_key).await;
        let txn = self.db.begin().await?;
        let office = bump_sequence(&txn, &office_key).await?;
        let sequence = office.last_sequence;
        if let Some(previous) = replay(&txn, &office_key, request_id, &fingerprint).await? {
            // Rolls back the sequence increment.
            drop(txn);
            return self.ticket_by_id(&office_key, &previous).await;
        }
        let visit_row = visit::Entity::find_by_id(ticket_name.id.clone())
            .one(&txn)
            .await?
            .filter(|v| v.office == office_key)
            .ok_or_else(|| ServiceError::not_found("ticket", ticket_key.clone()))?;
        if let Some(etag) = etag
            && etag != visit_row.version.to_string()
        {
            return Err(ServiceError::Aborted { name: ticket_key });
        }
        let state = VisitState::from_i16(visit_row.state)
            .ok_or_else(|| ServiceError::Internal("unknown stored visit state".into()))?;
        action.check(state, &ticket_key)?;
        let current = leg::Entity::find_by_id((visit_row.id.clone(), visit_row.current_leg))
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::Internal("visit without current leg".into()))?;
        let leg_counter = current.counter.clone().unwrap_or_default();
        let from_category = current.category.clone();

        let target = match (action, transfer_to) {
            (TicketAction::Transfer, Some(target)) => {
                let key = target.to_string();
                self.category(&office_key, &key)?;
                if key == current.category {
                    return Err(ServiceError::invalid(
                        "category",
                        "the ticket is already queued in this category",
                    ));
                }
                Some(key)
            }
            (TicketAction::Transfer, None) => {
                return Err(ServiceError::invalid(
                    "category",
                    "a target category is required",
                ));
            }
            _ => None,
        };

        let recall_exhausted =
            action == TicketAction::Recall && visit_row.recall_count >= office.recall_limit;
        let mut visit = visit_row.clone().into_active_model();
        let mut leg = current.clone().into_active_model();
        let end_leg = |leg: &mut leg::ActiveModel, outcome: LegOutcome| {
            leg.state = Set(LEG_ENDED);
            leg.outcome = Set(outcome as i16);
            leg.ended_at = Set(Some(now_us));
        };
        let (event_type, event_counter) = match action {
            TicketAction::Recall if !recall_exhausted => {
                visit.recall_count = Set(visit_row.recall_count + 1);
                (pb::EventType::TicketRecalled, leg_counter)
            }
            TicketAction::Recall | TicketAction::NoShow => {
                end_leg(&mut leg, LegOutcome::NoShow);
                visit.state = Set(VisitState::NoShow as i16);
                visit.current_counter = Set(None);
                (pb::EventType::TicketNoShow, leg_counter)
            }
            TicketAction::Start => {
                leg.state = Set(VisitState::Serving as i16);
                leg.started_at = Set(Some(now_us));
                visit.state = Set(VisitState::Serving as i16);
                (pb::EventType::ServiceStarted, leg_counter)
            }
            TicketAction::Finish => {
                // Finished without a start: service began at the call.
                leg.started_at = Set(current.started_at.or(current.called_at));
                end_leg(&mut leg, LegOutcome::Finished);
                visit.state = Set(VisitState::Done as i16);
                visit.current_counter = Set(None);
                (pb::EventType::ServiceFinished, leg_counter)
            }
            TicketAction::Void if visit_row.current_leg != 0 => {
                return Err(ServiceError::precondition(
                    "TICKET_ALREADY_CALLED",
                    &ticket_key,
                    "the ticket was transferred, so it was handed out",
                ));
            }
            TicketAction::Void => {
                end_leg(&mut leg, LegOutcome::Cancelled);
                visit.state = Set(VisitState::Cancelled as i16);
                // Never handed out: it leaves the day's issue count (and
                // so the quota) in the same transaction.
                number_counter::Entity::update_many()
                    .col_expr(
                        number_counter::Column::IssuedCount,
                        Expr::col(number_counter::Column::IssuedCount).sub(1),
                    )
                    .filter(number_counter::Column::Category.eq(visit_row.issue_category.clone()))
                    .filter(number_counter::Column::BusinessDay.eq(visit_row.business_day))
                    .exec(&txn)
                    .await?;
                (pb::EventType::TicketCancelled, leg_counter)
            }
            TicketAction::Cancel => {
                end_leg(&mut leg, LegOutcome::Cancelled);
                visit.state = Set(VisitState::Cancelled as i16);
                visit.current_counter = Set(None);
                (pb::EventType::TicketCancelled, leg_counter)
            }
            TicketAction::Transfer => {
                end_leg(&mut leg, LegOutcome::Transferred);
                let target = target.unwrap_or_default();
                leg::ActiveModel {
                    visit_id: Set(visit_row.id.clone()),
                    leg_index: Set(visit_row.current_leg + 1),
                    category: Set(target.clone()),
                    state: Set(VisitState::Waiting as i16),
                    priority_rank: Set(current.priority_rank),
                    // Keeps the visit's place: arrival order, not transfer time.
                    arrival_sequence: Set(current.arrival_sequence),
                    arrival_offset: Set(current.arrival_offset),
                    counter: Set(None),
                    enqueued_at: Set(now_us),
                    called_at: Set(None),
                    started_at: Set(None),
                    ended_at: Set(None),
                    outcome: Set(LegOutcome::Open as i16),
                }
                .insert(&txn)
                .await?;
                visit.state = Set(VisitState::Waiting as i16);
                visit.current_leg = Set(visit_row.current_leg + 1);
                visit.current_category = Set(target);
                visit.current_counter = Set(None);
                visit.recall_count = Set(0);
                (pb::EventType::TicketTransferred, leg_counter)
            }
        };
        if leg.is_changed() {
            leg.update(&txn).await?;
        }
        bump_version(&mut visit, sequence);
        let visit = visit.update(&txn).await?;
        let record = load_legs(&txn, visit).await?;
        let from = if event_type == pb::EventType::TicketTransferred {
            from_category.as_str()
        } else {
            ""
        };
        let event = append_event(
            &txn,
            &self.bus,
            &record,
            event_type,
            &event_counter,
            from,
            now,
        )
        .await?;
        remember(
            &txn,
            &office_key,
            request_id,
            &fingerprint,
            &record.visit.id,
            now,
        )
        .await?;
        txn.commit().await?;
        // Published in turn, so this process's followers see its events in
        // order and need not read the log back.
        self.bus.publish([event]);
        drop(turn);
        self.with_wait(record).await
    }

    /// Reads one ticket.
    pub async fn get_ticket(&self, name: &OfficeChild) -> Result<pb::Ticket, ServiceError> {
        self.ticket_by_id(&name.office.to_string(), &name.id).await
    }

    async fn ticket_by_id(&self, office_key: &str, id: &str) -> Result<pb::Ticket, ServiceError> {
        let visit = visit::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .filter(|v| v.office == office_key)
            .ok_or_else(|| {
                ServiceError::not_found("ticket", format!("{office_key}/tickets/{id}"))
            })?;
        let record = load_legs(&self.db, visit).await?;
        self.with_wait(record).await
    }

    /// Adds people ahead and the wait estimate to a waiting ticket.
    async fn with_wait(&self, record: TicketRecord) -> Result<pb::Ticket, ServiceError> {
        self.with_wait_on(&self.db, record).await
    }

    /// [`QueueStore::with_wait`], read through `db` (a transaction that
    /// has the rows, or the pool).
    async fn with_wait_on<C: ConnectionTrait>(
        &self,
        db: &C,
        record: TicketRecord,
    ) -> Result<pb::Ticket, ServiceError> {
        let mut ticket = record.to_proto();
        if record.visit.state != VisitState::Waiting as i16 {
            return Ok(ticket);
        }
        let Some(current) = record.legs.last() else {
            return Ok(ticket);
        };
        let wait = self
            .estimate(
                db,
                &record.visit.office,
                &current.category,
                WaitFor::Leg(current),
            )
            .await?;
        set_wait(&mut ticket, wait);
        Ok(ticket)
    }

    /// How many wait ahead, and the wait estimate, for `whom` in the
    /// category's line. Its three reads (those ahead, the counters that
    /// called from the category lately, the last finished services) are
    /// one statement: one round trip or hand-off instead of three, on the
    /// path of every ticket a kiosk prints.
    async fn estimate<C: ConnectionTrait>(
        &self,
        db: &C,
        office_key: &str,
        category_key: &str,
        whom: WaitFor<'_>,
    ) -> Result<(u32, Estimate), ServiceError> {
        let (since, default_minutes) = self.estimate_basis(office_key, category_key);
        let mut values = Vec::new();
        let sql = estimate_sql(category_key, since, whom, &mut values);
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                values,
            ))
            .await?;
        read_estimate(&rows, default_minutes)
    }

    /// What an estimate of the category's wait reads from the catalog: the
    /// start of the window in which a counter that called counts as open
    /// (µs), and the service time assumed before any was measured
    /// (minutes).
    fn estimate_basis(&self, office_key: &str, category_key: &str) -> (i64, i64) {
        let now = self.now();
        let catalog = self.read_catalog();
        let open_minutes = catalog.open_minutes.get(office_key).copied().unwrap_or(30);
        let default_minutes = catalog
            .categories
            .get(category_key)
            .map_or(5, |c| c.default_service_minutes);
        (
            micros(now - Duration::minutes(open_minutes)),
            default_minutes,
        )
    }

    /// Lists tickets of a day in issue order, one page at a time.
    pub async fn list_tickets(
        &self,
        office_name: &OfficeName,
        query: &TicketQuery,
    ) -> Result<(Vec<pb::Ticket>, Option<i64>), ServiceError> {
        let office_key = office_name.to_string();
        self.office(office_name).await?;
        let mut select = visit::Entity::find()
            .filter(visit::Column::Office.eq(office_key))
            .filter(
                visit::Column::BusinessDay.eq(query
                    .day
                    .unwrap_or_else(|| BusinessDay::of(self.now()))
                    .ordinal()),
            )
            .filter(visit::Column::IssueSequence.gt(query.after_sequence));
        if !query.states.is_empty() {
            select =
                select.filter(visit::Column::State.is_in(query.states.iter().map(|s| *s as i16)));
        }
        if let Some(category) = &query.category {
            select = select.filter(visit::Column::CurrentCategory.eq(category.clone()));
        }
        let mut visits = select
            .order_by_asc(visit::Column::IssueSequence)
            .limit(query.page_size + 1)
            .all(&self.db)
            .await?;
        let next = if visits.len() as u64 > query.page_size {
            visits.truncate(query.page_size as usize);
            visits.last().map(|v| v.issue_sequence)
        } else {
            None
        };
        let ids: Vec<String> = visits.iter().map(|v| v.id.clone()).collect();
        let mut legs = leg::Entity::find()
            .filter(leg::Column::VisitId.is_in(ids))
            .order_by_asc(leg::Column::VisitId)
            .order_by_asc(leg::Column::LegIndex)
            .all(&self.db)
            .await?;
        let mut tickets = Vec::with_capacity(visits.len());
        for visit in visits {
            let (mine, rest): (Vec<_>, Vec<_>) =
                legs.into_iter().partition(|l| l.visit_id == visit.id);
            legs = rest;
            tickets.push(TicketRecord { visit, legs: mine }.to_proto());
        }
        Ok((tickets, next))
    }

    /// The resource names of every office.
    pub async fn office_names(&self) -> Result<Vec<String>, ServiceError> {
        Ok(office::Entity::find()
            .order_by_asc(office::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    /// A snapshot of an office for boards and the `status` command.
    pub async fn office_status(
        &self,
        office_name: &OfficeName,
    ) -> Result<pb::OfficeStatus, ServiceError> {
        let now = self.now();
        let day = BusinessDay::of(now);
        let office = self.office(office_name).await?;
        let office_key = office.name.clone();
        let categories = category::Entity::find()
            .filter(category::Column::Office.eq(office_key.clone()))
            .filter(category::Column::Active.eq(true))
            .order_by_asc(category::Column::Position)
            .all(&self.db)
            .await?;
        let mut category_status = Vec::with_capacity(categories.len());
        for category in categories {
            let issued = number_counter::Entity::find_by_id((category.name.clone(), day.ordinal()))
                .one(&self.db)
                .await?
                .map_or(0, |n| n.issued_count);
            // A newcomer waits behind everyone waiting.
            let (waiting, estimate) = self
                .estimate(&self.db, &office_key, &category.name, WaitFor::Newcomer)
                .await?;
            category_status.push(pb::CategoryStatus {
                name: category.name,
                prefix: category.prefix,
                display_name_ja: category.name_ja,
                display_name_en: category.name_en,
                colour: category.colour,
                waiting,
                issued_today: u32::try_from(issued).unwrap_or_default(),
                daily_quota: u32::try_from(category.daily_quota).unwrap_or_default(),
                wait_estimate: Some(crate::ticket::wait_estimate(estimate)),
            });
        }
        let counters = counter::Entity::find()
            .filter(counter::Column::Office.eq(office_key.clone()))
            .filter(counter::Column::Active.eq(true))
            .order_by_asc(counter::Column::Position)
            .all(&self.db)
            .await?;
        let mut counter_status = Vec::with_capacity(counters.len());
        for counter in counters {
            let current = visit::Entity::find()
                .filter(visit::Column::CurrentCounter.eq(counter.name.clone()))
                .filter(
                    visit::Column::State
                        .is_in([VisitState::Called as i16, VisitState::Serving as i16]),
                )
                .one(&self.db)
                .await?;
            let current_ticket = match current {
                Some(visit) => Some(load_legs(&self.db, visit).await?.to_proto()),
                None => None,
            };
            counter_status.push(pb::CounterStatus {
                name: counter.name,
                display_number: counter.display_number,
                floor: counter.floor,
                colour: counter.colour,
                categories: counter.categories.lines().map(str::to_owned).collect(),
                current_ticket,
            });
        }
        Ok(pb::OfficeStatus {
            name: office_key,
            display_name: office.name_ja,
            business_day: Some(crate::ticket::date(day)),
            categories: category_status,
            counters: counter_status,
            last_sequence: u64::try_from(office.last_sequence).unwrap_or_default(),
        })
    }

    /// Up to `limit` events of an office after `after`, in order.
    pub async fn events_after(
        &self,
        office_key: &str,
        after: i64,
        limit: u64,
    ) -> Result<Vec<pb::OfficeEvent>, ServiceError> {
        Ok(self
            .logged_events_after(office_key, after, limit)
            .await?
            .into_iter()
            .map(|logged| logged.event)
            .collect())
    }

    /// [`Self::events_after`] with each event's trace context.
    pub async fn logged_events_after(
        &self,
        office_key: &str,
        after: i64,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, ServiceError> {
        let span = madoguchi_platform::storage::operation_span(&self.db, "SELECT queue_events");
        let rows = event::Entity::find()
            .filter(event::Column::Office.eq(office_key.to_owned()))
            .filter(event::Column::Sequence.gt(after))
            .order_by_asc(event::Column::Sequence)
            .limit(limit)
            .all(&self.db)
            .instrument(span)
            .await?;
        rows.into_iter()
            .map(|row| {
                let event = pb::OfficeEvent::decode(row.payload.as_slice()).map_err(|e| {
                    ServiceError::Internal(format!("stored event {}: {e}", row.sequence))
                })?;
                Ok(LoggedEvent {
                    event,
                    trace_parent: row.trace_parent,
                })
            })
            .collect()
    }
}

/// `state = 1` with the 1 written into the SQL text, not bound: SQLite
/// (and PostgreSQL's generic plans) use the partial waiting index only when
/// the query's condition visibly implies the index's `WHERE state = 1`.
/// Whom a wait estimate is for.
#[derive(Debug, Clone, Copy)]
enum WaitFor<'a> {
    /// The ticket waiting at this leg: those before it in its line count.
    Leg(&'a leg::Model),
    /// Someone joining the line now: every waiting ticket counts.
    Newcomer,
}

/// The reads of a wait estimate as one `SELECT`: columns `ahead` and
/// `open_counters` (counters that called from the category since `since`)
/// on every row, and one row per recent finished service (`started_at`,
/// `ended_at`, newest first), or one row with both NULL when there is none
/// — never no row. The order "before" is the line's: priority, then
/// arrival. Its values are appended to `values` and numbered after those
/// already there, so it can end a statement that has its own.
fn estimate_sql(
    category: &str,
    since: i64,
    whom: WaitFor<'_>,
    values: &mut Vec<sea_orm::Value>,
) -> String {
    const _: () = assert!(VisitState::Waiting as i16 == 1);
    let mut param = |value: sea_orm::Value| {
        values.push(value);
        format!("${}", values.len())
    };
    let waiting_category = param(category.to_owned().into());
    let before = match whom {
        WaitFor::Newcomer => String::new(),
        WaitFor::Leg(leg) => format!(
            "AND (priority_rank < {rank} OR (priority_rank = {rank_again} AND \
             (arrival_sequence < {arrival} OR (arrival_sequence = {arrival_again} \
             AND arrival_offset < {offset}))))",
            rank = param(leg.priority_rank.into()),
            rank_again = param(leg.priority_rank.into()),
            arrival = param(leg.arrival_sequence.into()),
            arrival_again = param(leg.arrival_sequence.into()),
            offset = param(leg.arrival_offset.into()),
        ),
    };
    let called_category = param(category.to_owned().into());
    let since = param(since.into());
    let served_category = param(category.to_owned().into());
    format!(
        "SELECT a.ahead, c.open_counters, r.started_at, r.ended_at \
         FROM (SELECT COUNT(*) AS ahead FROM queue_legs \
               WHERE category = {waiting_category} AND state = 1 {before}) AS a \
         CROSS JOIN (SELECT COUNT(DISTINCT counter) AS open_counters FROM queue_legs \
                     WHERE category = {called_category} AND called_at >= {since}) AS c \
         LEFT JOIN (SELECT started_at, ended_at FROM queue_legs \
                    WHERE category = {served_category} AND ended_at IS NOT NULL \
                      AND started_at IS NOT NULL \
                    ORDER BY ended_at DESC LIMIT {ESTIMATE_SAMPLES}) AS r ON TRUE"
    )
}

/// Puts those ahead and the wait estimate on a waiting ticket.
fn set_wait(ticket: &mut pb::Ticket, (ahead, estimate): (u32, Estimate)) {
    ticket.people_ahead = ahead;
    ticket.wait_estimate = Some(crate::ticket::wait_estimate(estimate));
}

/// Those ahead and the estimate, from the rows of [`estimate_sql`].
fn read_estimate(
    rows: &[sea_orm::QueryResult],
    default_minutes: i64,
) -> Result<(u32, Estimate), ServiceError> {
    // The counts repeat on every row; there is always at least one.
    let (ahead, open_counters): (i64, i64) = match rows.first() {
        Some(row) => (row.try_get("", "ahead")?, row.try_get("", "open_counters")?),
        None => (0, 0),
    };
    let mut recent_services = Vec::with_capacity(rows.len());
    for row in rows {
        let started: Option<i64> = row.try_get("", "started_at")?;
        let ended: Option<i64> = row.try_get("", "ended_at")?;
        if let (Some(start), Some(end)) = (started, ended) {
            recent_services.push(Duration::microseconds(end - start));
        }
    }
    let ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
    let estimate = estimate_wait(&EstimateInput {
        ahead,
        open_counters: u32::try_from(open_counters).unwrap_or(u32::MAX),
        recent_services,
        default_service: Duration::minutes(default_minutes),
    });
    Ok((ahead, estimate))
}

fn is_waiting() -> Expr {
    const _: () = assert!(VisitState::Waiting as i16 == 1);
    Expr::col((leg::Entity, leg::Column::State)).eq(Expr::cust("1"))
}

fn priority_rank(priority: bool) -> i16 {
    if priority { 0 } else { 1 }
}

fn bump_version(visit: &mut visit::ActiveModel, sequence: i64) {
    let version = match &visit.version {
        Set(v) | ActiveValue::Unchanged(v) => *v,
        ActiveValue::NotSet => 0,
    };
    visit.version = Set(version + 1);
    visit.last_sequence = Set(sequence);
}

/// Step 1 of every write: take the office's next sequence (and its lock).
async fn bump_sequence(
    txn: &DatabaseTransaction,
    office_key: &str,
) -> Result<office::Model, ServiceError> {
    office::Entity::update_many()
        .col_expr(
            office::Column::LastSequence,
            Expr::col(office::Column::LastSequence).add(1),
        )
        .filter(office::Column::Name.eq(office_key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("office", office_key))
}

/// The category's day counter after one more issue: created on the day's
/// first, otherwise the issue count incremented and the number advanced to
/// the usual next one (1 after `max_number`), in one statement. Over the
/// quota, the caller's error rolls it back with the rest.
async fn advance_number(
    txn: &DatabaseTransaction,
    category_key: &str,
    day: BusinessDay,
    max_number: i32,
) -> Result<number_counter::Model, ServiceError> {
    let max_number = Ord::max(max_number, 1);
    let last = (number_counter::Entity, number_counter::Column::LastNumber);
    Ok(number_counter::Entity::insert(number_counter::ActiveModel {
        category: Set(category_key.to_owned()),
        business_day: Set(day.ordinal()),
        last_number: Set(1),
        issued_count: Set(1),
    })
    .on_conflict(
        OnConflict::columns([
            number_counter::Column::Category,
            number_counter::Column::BusinessDay,
        ])
        .value(
            number_counter::Column::IssuedCount,
            Expr::col((number_counter::Entity, number_counter::Column::IssuedCount)).add(1),
        )
        .value(
            number_counter::Column::LastNumber,
            Expr::case(Expr::col(last).gte(max_number), 1).finally(Expr::col(last).add(1)),
        )
        .to_owned(),
    )
    .exec_with_returning(txn)
    .await?)
}

/// How an issue began on PostgreSQL ([`begin_issue_on_postgres`]).
enum Begun {
    /// The request id was used before, for `visit` by a request with
    /// `fingerprint`; what was written is rolled back with the transaction.
    Replay { visit: String, fingerprint: String },
    /// A new ticket: the office's new sequence and highest number, the
    /// category's day counter after this issue, and whether its number is
    /// free (no open ticket and no unimported lease holds it).
    Fresh {
        sequence: i64,
        max_number: i32,
        numbers: number_counter::Model,
        free: bool,
    },
}

/// An issue's first round trip on PostgreSQL, what [`bump_sequence`],
/// [`replay`], [`advance_number`] and [`number_free`] do one by one
/// elsewhere: data-modifying CTEs take the office's lock and next sequence,
/// then advance the day counter (in that order, as every writer locks);
/// the outer query looks up the request id and probes the new number. Four
/// round trips become one; the transaction stays open for the rows.
async fn begin_issue_on_postgres(
    txn: &DatabaseTransaction,
    office_key: &str,
    category_key: &str,
    day: BusinessDay,
    request_id: Option<Uuid>,
) -> Result<Begun, ServiceError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let holds = HOLDS_NUMBER.map(|s| s.to_string()).join(", ");
        format!(
            "WITH bumped AS (\
               UPDATE queue_offices SET last_sequence = last_sequence + 1 \
               WHERE name = $1 RETURNING last_sequence, max_number), \
             numbers AS (\
               INSERT INTO queue_number_counters AS c \
                 (category, business_day, last_number, issued_count) \
               SELECT $2, $3, 1, 1 FROM bumped \
               ON CONFLICT (category, business_day) DO UPDATE SET \
                 issued_count = c.issued_count + 1, \
                 last_number = CASE \
                   WHEN c.last_number >= (SELECT GREATEST(max_number, 1) FROM bumped) THEN 1 \
                   ELSE c.last_number + 1 END \
               RETURNING last_number, issued_count) \
             SELECT b.last_sequence, b.max_number, n.last_number, n.issued_count, \
               r.visit_id AS prior_visit, r.fingerprint AS prior_fingerprint, \
               NOT EXISTS (SELECT 1 FROM queue_visits v \
                           WHERE v.issue_category = $2 AND v.number = n.last_number \
                             AND v.state IN ({holds})) \
               AND NOT EXISTS (SELECT 1 FROM queue_leased_numbers x \
                               WHERE x.category = $2 AND x.business_day = $3 \
                                 AND x.number = n.last_number AND x.visit_id IS NULL) AS free \
             FROM bumped b CROSS JOIN numbers n \
             LEFT JOIN queue_requests r ON r.office = $1 AND r.request_id = $4"
        )
    });
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL.as_str(),
            [
                office_key.into(),
                category_key.into(),
                day.ordinal().into(),
                request_id.map(|id| id.to_string()).into(),
            ],
        ))
        .await?
        .ok_or_else(|| ServiceError::not_found("office", office_key))?;
    if let Some(visit) = row.try_get::<Option<String>>("", "prior_visit")? {
        return Ok(Begun::Replay {
            visit,
            fingerprint: row.try_get("", "prior_fingerprint")?,
        });
    }
    Ok(Begun::Fresh {
        sequence: row.try_get("", "last_sequence")?,
        max_number: row.try_get("", "max_number")?,
        numbers: number_counter::Model {
            category: category_key.to_owned(),
            business_day: day.ordinal(),
            last_number: row.try_get("", "last_number")?,
            issued_count: row.try_get("", "issued_count")?,
        },
        free: row.try_get("", "free")?,
    })
}

/// The first number after `last` that no active ticket of the category
/// holds, today or left over from an earlier day.
async fn free_number(
    txn: &DatabaseTransaction,
    category_key: &str,
    last: i32,
    max: i32,
    leased: &HashSet<i32>,
) -> Result<i32, ServiceError> {
    let max = Ord::max(u32::try_from(max).unwrap_or(999), 1);
    let exhausted = || ServiceError::ResourceExhausted {
        reason: "NUMBER_RANGE_EXHAUSTED",
        subject: category_key.to_owned(),
        message: format!("all {max} ticket numbers of the category are in use"),
    };
    let mut candidate = u32::try_from(last).unwrap_or(0);
    for attempt in 0..max {
        if attempt == 1 {
            // The usual next number is taken: before probing further, make
            // sure some number is free at all (one count, not `max` probes).
            let in_use = visit::Entity::find()
                .filter(visit::Column::IssueCategory.eq(category_key.to_owned()))
                .filter(visit::Column::State.is_in(HOLDS_NUMBER))
                .count(txn)
                .await?;
            if in_use + leased.len() as u64 >= u64::from(max) {
                return Err(exhausted());
            }
        }
        candidate = successor(candidate, max);
        if leased.contains(&(candidate as i32)) {
            continue;
        }
        let taken = visit::Entity::find()
            .filter(visit::Column::IssueCategory.eq(category_key.to_owned()))
            .filter(visit::Column::Number.eq(candidate as i32))
            .filter(visit::Column::State.is_in(HOLDS_NUMBER))
            .count(txn)
            .await?;
        if taken == 0 {
            return Ok(candidate as i32);
        }
    }
    Err(exhausted())
}

/// Visit states whose ticket still holds its number.
const HOLDS_NUMBER: [i16; 3] = [
    VisitState::Waiting as i16,
    VisitState::Called as i16,
    VisitState::Serving as i16,
];

/// The ticket a counter has open (called or being served): at most one.
fn open_at_counter(counter_key: &str) -> sea_orm::Select<visit::Entity> {
    visit::Entity::find()
        .filter(visit::Column::CurrentCounter.eq(counter_key.to_owned()))
        .filter(visit::Column::State.is_in([VisitState::Called as i16, VisitState::Serving as i16]))
}

/// Moves a category's day counter to `number`, the last one handed out.
async fn set_last_number(
    txn: &DatabaseTransaction,
    category_key: &str,
    day: BusinessDay,
    number: i32,
) -> Result<(), ServiceError> {
    number_counter::Entity::update_many()
        .col_expr(number_counter::Column::LastNumber, Expr::value(number))
        .filter(number_counter::Column::Category.eq(category_key.to_owned()))
        .filter(number_counter::Column::BusinessDay.eq(day.ordinal()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Whether `number` of a category is neither held by an open ticket (of
/// any day) nor reserved by an unimported lease of `day`: one query.
async fn number_free(
    txn: &DatabaseTransaction,
    category_key: &str,
    day: BusinessDay,
    number: i32,
) -> Result<bool, ServiceError> {
    let held = visit::Entity::find()
        .select_only()
        .expr(Expr::cust("1"))
        .filter(visit::Column::IssueCategory.eq(category_key.to_owned()))
        .filter(visit::Column::Number.eq(number))
        .filter(visit::Column::State.is_in(HOLDS_NUMBER))
        .into_query();
    let reserved = leased_number::Entity::find()
        .select_only()
        .expr(Expr::cust("1"))
        .filter(leased_number::Column::Category.eq(category_key.to_owned()))
        .filter(leased_number::Column::BusinessDay.eq(day.ordinal()))
        .filter(leased_number::Column::Number.eq(number))
        .filter(leased_number::Column::VisitId.is_null())
        .into_query();
    let probe = sea_orm::sea_query::Query::select()
        .expr(Expr::case(Expr::exists(held).or(Expr::exists(reserved)), 1).finally(0))
        .to_owned();
    let taken: i32 = txn
        .query_one(&probe)
        .await?
        .ok_or_else(|| ServiceError::Internal("a SELECT without FROM returned no row".into()))?
        .try_get_by_index(0)?;
    Ok(taken == 0)
}

/// Numbers of a category leased for `day` whose tickets have not been
/// imported yet: reserved for the devices holding them. Leases of earlier
/// days have ended and reserve nothing.
async fn leased_numbers(
    txn: &DatabaseTransaction,
    category_key: &str,
    day: BusinessDay,
) -> Result<HashSet<i32>, ServiceError> {
    let numbers: Vec<i32> = leased_number::Entity::find()
        .select_only()
        .column(leased_number::Column::Number)
        .filter(leased_number::Column::Category.eq(category_key.to_owned()))
        .filter(leased_number::Column::BusinessDay.eq(day.ordinal()))
        .filter(leased_number::Column::VisitId.is_null())
        .into_tuple()
        .all(txn)
        .await?;
    Ok(numbers.into_iter().collect())
}

/// The visit a request id already produced, if the request is a retry.
async fn replay(
    txn: &DatabaseTransaction,
    office_key: &str,
    request_id: Option<Uuid>,
    fingerprint: &str,
) -> Result<Option<String>, ServiceError> {
    let Some(request_id) = request_id else {
        return Ok(None);
    };
    let Some(previous) =
        request::Entity::find_by_id((office_key.to_owned(), request_id.to_string()))
            .one(txn)
            .await?
    else {
        return Ok(None);
    };
    replay_of(previous.visit_id, &previous.fingerprint, fingerprint).map(Some)
}

/// The visit a remembered request produced, if `fingerprint` is the same
/// request again.
fn replay_of(visit_id: String, stored: &str, fingerprint: &str) -> Result<String, ServiceError> {
    if stored != fingerprint {
        return Err(ServiceError::invalid(
            "request_id",
            "this request_id was used for a different request",
        ));
    }
    Ok(visit_id)
}

async fn remember(
    txn: &DatabaseTransaction,
    office_key: &str,
    request_id: Option<Uuid>,
    fingerprint: &str,
    visit_id: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    if let Some(request_id) = request_id {
        request::ActiveModel {
            office: Set(office_key.to_owned()),
            request_id: Set(request_id.to_string()),
            fingerprint: Set(fingerprint.to_owned()),
            visit_id: Set(visit_id.to_owned()),
            created_at: Set(micros(now)),
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}

async fn load_legs<C: ConnectionTrait>(
    db: &C,
    visit: visit::Model,
) -> Result<TicketRecord, ServiceError> {
    let legs = leg::Entity::find()
        .filter(leg::Column::VisitId.eq(visit.id.clone()))
        .order_by_asc(leg::Column::LegIndex)
        .all(db)
        .await?;
    Ok(TicketRecord { visit, legs })
}

/// Rows written in one round trip, with the log's notification: one
/// statement of `INSERT` CTEs and `pg_notify` on PostgreSQL (delivered at
/// commit, like `NOTIFY`; the payload names this process, whose own
/// followers are handed the events by `publish` after commit), one
/// execution of the `INSERT`s on SQLite, its row count checked. `inserts`
/// come from [`insert_sql`] with their values in `params`.
///
/// On PostgreSQL the statement may end in a `select` (its values in
/// `params` too) that is read in the same round trip and whose rows are
/// returned. It sees the database as it was before the inserts (one
/// snapshot for the whole statement) and must return at least one row: the
/// notification is sent once per row, and PostgreSQL delivers identical
/// ones of a transaction once.
async fn insert_rows(
    txn: &DatabaseTransaction,
    bus: &EventBus,
    inserts: &[String],
    mut params: Vec<sea_orm::Value>,
    select: Option<String>,
) -> Result<Vec<sea_orm::QueryResult>, ServiceError> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        params.push(CHANNEL.into());
        params.push(bus.instance().into());
        let notify = format!("pg_notify(${}, ${})", params.len() - 1, params.len());
        let mut ctes: Vec<String> = inserts
            .iter()
            .enumerate()
            .map(|(i, insert)| format!("i{i} AS ({insert} RETURNING 1)"))
            .collect();
        let Some(select) = select else {
            let sql = format!("WITH {} SELECT {notify}", ctes.join(", "));
            txn.execute_raw(Statement::from_sql_and_values(backend, sql, params))
                .await?;
            return Ok(Vec::new());
        };
        ctes.push(format!("selected AS ({select})"));
        let sql = format!(
            "WITH {} SELECT {notify} AS notified, selected.* FROM selected",
            ctes.join(", ")
        );
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(backend, sql, params))
            .await?;
        if rows.is_empty() {
            // Nothing was notified; the error rolls the inserts back.
            return Err(ServiceError::Internal(
                "the statement's read returned no row".into(),
            ));
        }
        return Ok(rows);
    }
    if select.is_some() {
        return Err(ServiceError::Internal(
            "a read after the inserts is for PostgreSQL only".into(),
        ));
    }
    let written = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            inserts.join("; "),
            params,
        ))
        .await?
        .rows_affected();
    let rows = inserts.len() as u64;
    if written != rows {
        return Err(ServiceError::Internal(format!(
            "{written} of {rows} rows written"
        )));
    }
    Ok(Vec::new())
}

/// A new ticket's rows — visit, first leg, event and, with a request id,
/// the request — in one round trip ([`insert_rows`]). Every row is known
/// before it is written, so nothing is read back. On PostgreSQL,
/// `estimate` (the start of the open-counter window, µs) reads the new
/// ticket's wait in the same round trip and returns its rows
/// ([`estimate_sql`]; those ahead of the ticket are the same before and
/// after its rows are written, and the office's lock keeps every other
/// writer of the office out until commit).
async fn insert_ticket(
    txn: &DatabaseTransaction,
    bus: &EventBus,
    record: &TicketRecord,
    event: &pb::OfficeEvent,
    request: Option<&request::Model>,
    estimate: Option<i64>,
) -> Result<Vec<sea_orm::QueryResult>, ServiceError> {
    let mut params = Vec::new();
    let leg = &record.legs[0];
    let mut inserts = vec![
        insert_sql(&record.visit, &mut params),
        insert_sql(leg, &mut params),
        insert_sql(
            &event_row(record, event, record.visit.issued_at),
            &mut params,
        ),
    ];
    if let Some(request) = request {
        inserts.push(insert_sql(request, &mut params));
    }
    let select =
        estimate.map(|since| estimate_sql(&leg.category, since, WaitFor::Leg(leg), &mut params));
    insert_rows(txn, bus, &inserts, params, select).await
}

/// The log's row for `event`, a change to `record` made at `created_at`.
fn event_row(record: &TicketRecord, event: &pb::OfficeEvent, created_at: i64) -> event::Model {
    event::Model {
        office: record.visit.office.clone(),
        sequence: record.visit.last_sequence,
        event_type: i16::try_from(event.r#type).unwrap_or_default(),
        visit_id: record.visit.id.clone(),
        created_at,
        payload: event.encode_to_vec(),
        trace_parent: madoguchi_platform::telemetry::current_traceparent(),
    }
}

/// `INSERT INTO <table> (<every column>) VALUES ($n, …)` for `model`, its
/// values appended to `params` (numbered after those already there).
fn insert_sql<M>(model: &M, params: &mut Vec<sea_orm::Value>) -> String
where
    M: sea_orm::ModelTrait,
{
    use sea_orm::{IdenStatic, Iterable};
    let mut columns = Vec::new();
    let mut placeholders = Vec::new();
    for column in <M::Entity as EntityTrait>::Column::iter() {
        columns.push(column.as_str());
        params.push(model.get(column));
        placeholders.push(format!("${}", params.len()));
    }
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        <M::Entity as sea_orm::EntityName>::table_name(&M::Entity::default()),
        columns.join(", "),
        placeholders.join(", ")
    )
}

/// The event a change to `record` (already at its new sequence) makes.
fn office_event(
    record: &TicketRecord,
    event_type: pb::EventType,
    counter: &str,
    from_category: &str,
    now: DateTime<Utc>,
) -> pb::OfficeEvent {
    pb::OfficeEvent {
        sequence: u64::try_from(record.visit.last_sequence).unwrap_or_default(),
        office: record.visit.office.clone(),
        event_time: Some(timestamp(micros(now))),
        r#type: event_type as i32,
        ticket: Some(record.to_proto()),
        counter: counter.to_owned(),
        from_category: from_category.to_owned(),
    }
}

/// Step 3: the event row, with the sequence taken in step 1.
async fn append_event(
    txn: &DatabaseTransaction,
    bus: &EventBus,
    record: &TicketRecord,
    event_type: pb::EventType,
    counter: &str,
    from_category: &str,
    now: DateTime<Utc>,
) -> Result<pb::OfficeEvent, ServiceError> {
    let event = office_event(record, event_type, counter, from_category, now);
    let mut params = Vec::new();
    let insert = insert_sql(&event_row(record, &event, micros(now)), &mut params);
    insert_rows(txn, bus, &[insert], params, None).await?;
    Ok(event)
}

/// Adds `site`'s offices to `catalog` (keys are full resource names, so
/// sites of different municipalities never collide).
fn add_to_catalog(catalog: &mut Catalog, site: &Site) {
    let code = site.municipality.code.as_str();
    for office in &site.offices {
        let office_key = format!("municipalities/{code}/offices/{}", office.id);
        catalog.open_minutes.insert(
            office_key.clone(),
            i64::from(office.queue.counter_open_minutes),
        );
        catalog.turns.insert(office_key.clone(), Arc::default());
        for c in &office.categories {
            catalog.categories.insert(
                format!("{office_key}/categories/{}", c.id),
                CategoryInfo {
                    office: office_key.clone(),
                    prefix: c.prefix.clone(),
                    daily_quota: i32::try_from(c.daily_quota).unwrap_or(i32::MAX),
                    default_service_minutes: i64::from(c.default_service_minutes),
                },
            );
        }
        for k in &office.counters {
            catalog.counters.insert(
                format!("{office_key}/counters/{}", k.id),
                CounterInfo {
                    office: office_key.clone(),
                    categories: k
                        .categories
                        .iter()
                        .map(|c| format!("{office_key}/categories/{c}"))
                        .collect(),
                },
            );
        }
    }
}

/// Upserts the site's offices, categories and counters; categories and
/// counters no longer in the site are deactivated, never deleted, because
/// tickets refer to them.
async fn seed(txn: &DatabaseTransaction, site: &Site) -> Result<(), ServiceError> {
    let code = site.municipality.code.as_str();
    for office_site in &site.offices {
        let office_key = format!("municipalities/{code}/offices/{}", office_site.id);
        office::Entity::insert(office::ActiveModel {
            name: Set(office_key.clone()),
            municipality_code: Set(code.to_owned()),
            name_ja: Set(office_site.name_ja.clone()),
            name_en: Set(office_site.name_en.clone()),
            recall_limit: Set(office_site.queue.recall_limit as i32),
            max_number: Set(office_site.queue.max_number as i32),
            counter_open_minutes: Set(office_site.queue.counter_open_minutes as i32),
            last_sequence: Set(0),
        })
        .on_conflict(
            OnConflict::column(office::Column::Name)
                .update_columns([
                    office::Column::NameJa,
                    office::Column::NameEn,
                    office::Column::RecallLimit,
                    office::Column::MaxNumber,
                    office::Column::CounterOpenMinutes,
                ])
                .to_owned(),
        )
        .exec(txn)
        .await?;

        category::Entity::update_many()
            .col_expr(category::Column::Active, Expr::value(false))
            .filter(category::Column::Office.eq(office_key.clone()))
            .exec(txn)
            .await?;
        for (position, c) in office_site.categories.iter().enumerate() {
            category::Entity::insert(category::ActiveModel {
                name: Set(format!("{office_key}/categories/{}", c.id)),
                office: Set(office_key.clone()),
                position: Set(position as i32),
                prefix: Set(c.prefix.clone()),
                name_ja: Set(c.name_ja.clone()),
                name_en: Set(c.name_en.clone()),
                colour: Set(c.colour.clone()),
                daily_quota: Set(c.daily_quota as i32),
                default_service_minutes: Set(c.default_service_minutes as i32),
                active: Set(true),
            })
            .on_conflict(
                OnConflict::column(category::Column::Name)
                    .update_columns([
                        category::Column::Position,
                        category::Column::Prefix,
                        category::Column::NameJa,
                        category::Column::NameEn,
                        category::Column::Colour,
                        category::Column::DailyQuota,
                        category::Column::DefaultServiceMinutes,
                        category::Column::Active,
                    ])
                    .to_owned(),
            )
            .exec(txn)
            .await?;
        }

        counter::Entity::update_many()
            .col_expr(counter::Column::Active, Expr::value(false))
            .filter(counter::Column::Office.eq(office_key.clone()))
            .exec(txn)
            .await?;
        for (position, k) in office_site.counters.iter().enumerate() {
            let categories: Vec<String> = k
                .categories
                .iter()
                .map(|c| format!("{office_key}/categories/{c}"))
                .collect();
            counter::Entity::insert(counter::ActiveModel {
                name: Set(format!("{office_key}/counters/{}", k.id)),
                office: Set(office_key.clone()),
                position: Set(position as i32),
                display_number: Set(k.display_number.clone()),
                floor: Set(k.floor),
                colour: Set(k.colour.clone()),
                categories: Set(categories.join("\n")),
                active: Set(true),
            })
            .on_conflict(
                OnConflict::column(counter::Column::Name)
                    .update_columns([
                        counter::Column::Position,
                        counter::Column::DisplayNumber,
                        counter::Column::Floor,
                        counter::Column::Colour,
                        counter::Column::Categories,
                        counter::Column::Active,
                    ])
                    .to_owned(),
            )
            .exec(txn)
            .await?;
        }
    }
    Ok(())
}
