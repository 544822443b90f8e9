//! `CallNext`: read what the call depends on, then claim the head of the
//! counter's lines with one conditional write.
//!
//! Every other write takes its office's sequence (and, on PostgreSQL, the
//! office row's lock) first and does its reads under it, one round trip
//! per statement. A call is the floor's hot path — staff press *call next*,
//! the number must be on the board — so it works the other way round:
//!
//! 1. **Read** in one statement: the office's `last_sequence`, the head of
//!    the lines the counter serves (its leg and visit), the ticket the
//!    counter still has open, and an earlier request with the same id.
//! 2. **Decide** in Rust: replay, `COUNTER_BUSY`, nobody waiting, or the
//!    called ticket as it will be stored — with its event, whose payload
//!    needs the ticket and is why the read comes first.
//! 3. **Write** only if the office's sequence is still the one read: bump
//!    it, claim the leg, update the visit, append the event (and remember
//!    the request id). Every write to a leg or visit bumps the office's
//!    sequence first, so an unchanged sequence proves that what was read in
//!    step 1 is still true.
//!
//! On PostgreSQL step 3 is one statement of data-modifying CTEs, run
//! outside a transaction (a statement is atomic): each part depends on the
//! one before, so it writes everything or nothing, and the office row is
//! locked only while that statement runs. Losing the race to another writer
//! of the office writes nothing; the call reads again, and after
//! [`OPTIMISTIC_ATTEMPTS`] losses takes the office's lock first like every
//! other write, so it cannot starve. Two round trips instead of six.
//!
//! SQLite has one connection and no data-modifying CTEs: steps 1 and 3 run
//! in one `BEGIN IMMEDIATE` transaction, step 3 as one multi-statement
//! execution, so the call costs four hand-offs to the connection's thread
//! instead of six and cannot lose a race.

use chrono::{DateTime, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_proto::prost::Message;
use madoguchi_proto::queue::v1 as pb;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Query, SelectStatement, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, IdenStatic, Iterable,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait, Value,
};
use uuid::Uuid;

use super::entities::{leg, office, request, visit};
use super::{QueueStore, is_waiting, load_legs, office_event, open_at_counter, replay_of};
use crate::domain::{OfficeChild, VisitState};
use crate::notify::CHANNEL;
use crate::ticket::{TicketRecord, micros};

/// Optimistic claims a call tries on PostgreSQL before it takes the
/// office's lock. A loss means another writer of the office committed in
/// the call's read-to-write window (well under a millisecond), so a third
/// loss in a row is rare even at peak.
pub(super) const OPTIMISTIC_ATTEMPTS: usize = 3;

/// What a call is for, resolved from the request and the catalog.
#[derive(Debug, Clone)]
pub(super) struct CallTarget {
    /// The office's resource name.
    pub office: String,
    /// The counter's resource name.
    pub counter: String,
    /// The categories called from, sorted and without duplicates.
    pub categories: Vec<String>,
    /// What a request id is remembered with, so a retry must match it.
    pub fingerprint: String,
}

/// What the read of step 1 found.
enum Seen {
    /// The request id was used before: the visit it called.
    Replay(String),
    /// The counter still has this ticket (display number) open.
    Busy(String),
    /// Nobody waits in the counter's lines.
    Nobody,
    /// The head of the lines, as stored, and the office's sequence.
    Head(Box<Head>),
}

struct Head {
    office_sequence: i64,
    record: TicketRecord,
    leg_index: i32,
}

/// How one attempt ended.
enum Attempt {
    /// Nobody waited, or this ticket was called with this event.
    Done(Option<Box<(pb::Ticket, pb::OfficeEvent)>>),
    Replay(String),
    Lost,
}

/// The head of the given categories' lines: priority first, then arrival.
/// Seeks the partial index of waiting legs (one category: an ordered index
/// scan that stops at the first row).
pub(super) fn head_of_lines(categories: &[String]) -> SelectStatement {
    let category_filter = match categories {
        [only] => leg::Column::Category.eq(only.clone()),
        many => leg::Column::Category.is_in(many.iter().cloned()),
    };
    leg::Entity::find()
        .select_only()
        .column(leg::Column::VisitId)
        .column(leg::Column::LegIndex)
        .filter(category_filter)
        .filter(is_waiting())
        .order_by_asc(leg::Column::PriorityRank)
        .order_by_asc(leg::Column::ArrivalSequence)
        .order_by_asc(leg::Column::ArrivalOffset)
        .limit(1)
        .into_query()
}

/// The answer to a call at a counter that still has a ticket open: one
/// ticket per counter at a time, so service times and the boards stay
/// truthful.
pub(super) fn counter_busy(counter_key: &str, display_number: &str) -> ServiceError {
    ServiceError::precondition(
        "COUNTER_BUSY",
        counter_key,
        format!("counter still has ticket {display_number} open"),
    )
}

impl QueueStore {
    /// Calls the next ticket to a counter; see `CallNext` in the proto.
    pub async fn call_next(
        &self,
        counter_name: &OfficeChild,
        categories: &[OfficeChild],
        request_id: Option<Uuid>,
    ) -> Result<Option<pb::Ticket>, ServiceError> {
        let now = self.now();
        let target = self.call_target(counter_name, categories)?;
        let _turn = self.office_turn(&target.office).await;
        if self.db.get_database_backend() == DbBackend::Postgres {
            for _ in 0..self.call_attempts {
                match self.try_call(&self.db, &target, request_id, now).await? {
                    Attempt::Done(called) => {
                        // The statement has committed.
                        return Ok(called.map(|called| {
                            let (ticket, event) = *called;
                            self.bus.publish([event]);
                            ticket
                        }));
                    }
                    Attempt::Replay(visit) => {
                        return self.ticket_by_id(&target.office, &visit).await.map(Some);
                    }
                    Attempt::Lost => {}
                }
            }
            return self.call_next_locked(&target, request_id, now).await;
        }
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        match self.try_call(&txn, &target, request_id, now).await? {
            Attempt::Done(called) => {
                txn.commit().await?;
                Ok(called.map(|called| {
                    let (ticket, event) = *called;
                    self.bus.publish([event]);
                    ticket
                }))
            }
            Attempt::Replay(visit) => {
                drop(txn);
                self.ticket_by_id(&target.office, &visit).await.map(Some)
            }
            Attempt::Lost => Err(ServiceError::Internal(
                "call lost its claim inside its own transaction".into(),
            )),
        }
    }

    /// The counter's office and the categories it calls from: those asked
    /// for, or all it serves.
    fn call_target(
        &self,
        counter_name: &OfficeChild,
        categories: &[OfficeChild],
    ) -> Result<CallTarget, ServiceError> {
        let office = counter_name.office.to_string();
        let counter = counter_name.to_string();
        let served = self
            .read_catalog()
            .counters
            .get(&counter)
            .filter(|c| c.office == office)
            .map(|c| c.categories.clone())
            .ok_or_else(|| ServiceError::not_found("counter", counter.clone()))?;
        let mut keys: Vec<String> = if categories.is_empty() {
            served
        } else {
            let mut keys = Vec::with_capacity(categories.len());
            for category in categories {
                let key = category.to_string();
                self.category(&office, &key)?;
                keys.push(key);
            }
            keys
        };
        keys.sort();
        keys.dedup();
        let fingerprint = format!("CallNext|{counter}|{}", keys.join(","));
        Ok(CallTarget {
            office,
            counter,
            categories: keys,
            fingerprint,
        })
    }

    /// One read and, if someone waits, one conditional write. On
    /// PostgreSQL `db` is the pool and the write commits by itself; on
    /// SQLite `db` is the caller's transaction. The caller publishes the
    /// event once it is committed.
    async fn try_call<C: ConnectionTrait>(
        &self,
        db: &C,
        target: &CallTarget,
        request_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ServiceError> {
        let (office_sequence, record, leg_index) = match read(db, target, request_id).await? {
            Seen::Replay(visit) => return Ok(Attempt::Replay(visit)),
            Seen::Busy(number) => return Err(counter_busy(&target.counter, &number)),
            Seen::Nobody => return Ok(Attempt::Done(None)),
            Seen::Head(head) => (head.office_sequence, head.record, head.leg_index),
        };
        let sequence = office_sequence + 1;
        let called = called(record, leg_index, &target.counter, now, sequence);
        let event = office_event(
            &called,
            pb::EventType::TicketCalled,
            &target.counter,
            "",
            now,
        );
        let write = Write {
            target,
            request_id,
            office_sequence,
            called: &called,
            leg_index,
            payload: event.encode_to_vec(),
            now,
        };
        let backend = db.get_database_backend();
        let applied = if backend == DbBackend::Postgres {
            // No row: the sequence moved. (The same request id sent twice
            // at once cannot both pass the sequence check; the loser reads
            // again and replays.)
            db.query_one_raw(write.postgres(self.bus.instance()))
                .await?
                .is_some()
        } else {
            let expected = if request_id.is_some() { 5 } else { 4 };
            db.execute_raw(write.sqlite()).await?.rows_affected() == expected
        };
        if !applied {
            return Ok(Attempt::Lost);
        }
        Ok(Attempt::Done(Some(Box::new((called.to_proto(), event)))))
    }
}

/// Step 1, one statement on either backend.
async fn read<C: ConnectionTrait>(
    db: &C,
    target: &CallTarget,
    request_id: Option<Uuid>,
) -> Result<Seen, ServiceError> {
    let head = Alias::new("head");
    let busy = open_at_counter(&target.counter)
        .select_only()
        .column(visit::Column::DisplayNumber)
        .limit(1)
        .into_query();
    let mut query = Query::select();
    query
        .from(office::Entity)
        .expr_as(
            Expr::col((office::Entity, office::Column::LastSequence)),
            Alias::new("office_sequence"),
        )
        .expr_as(
            SimpleExpr::SubQuery(None, Box::new(busy.into())),
            Alias::new("busy"),
        )
        .join_subquery(
            JoinType::LeftJoin,
            head_of_lines(&target.categories),
            head.clone(),
            Expr::cust("1 = 1"),
        )
        .join(
            JoinType::LeftJoin,
            leg::Entity,
            Expr::col((leg::Entity, leg::Column::VisitId))
                .equals((head.clone(), leg::Column::VisitId))
                .and(
                    Expr::col((leg::Entity, leg::Column::LegIndex))
                        .equals((head, leg::Column::LegIndex)),
                ),
        )
        .join(
            JoinType::LeftJoin,
            visit::Entity,
            Expr::col((visit::Entity, visit::Column::Id))
                .equals((leg::Entity, leg::Column::VisitId)),
        )
        .and_where(Expr::col((office::Entity, office::Column::Name)).eq(target.office.clone()));
    for column in leg::Column::iter() {
        query.expr_as(
            Expr::col((leg::Entity, column)),
            Alias::new(format!("l_{}", column.as_str())),
        );
    }
    for column in visit::Column::iter() {
        query.expr_as(
            Expr::col((visit::Entity, column)),
            Alias::new(format!("v_{}", column.as_str())),
        );
    }
    if let Some(request_id) = request_id {
        query
            .join(
                JoinType::LeftJoin,
                request::Entity,
                Expr::col((request::Entity, request::Column::Office))
                    .equals((office::Entity, office::Column::Name))
                    .and(
                        Expr::col((request::Entity, request::Column::RequestId))
                            .eq(request_id.to_string()),
                    ),
            )
            .expr_as(
                Expr::col((request::Entity, request::Column::VisitId)),
                Alias::new("replay_visit"),
            )
            .expr_as(
                Expr::col((request::Entity, request::Column::Fingerprint)),
                Alias::new("replay_fingerprint"),
            );
    }
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(backend.build(&query))
        .await?
        .ok_or_else(|| ServiceError::not_found("office", target.office.clone()))?;

    if request_id.is_some() {
        let visit: Option<String> = row.try_get("", "replay_visit")?;
        let fingerprint: Option<String> = row.try_get("", "replay_fingerprint")?;
        if let (Some(visit), Some(fingerprint)) = (visit, fingerprint) {
            return replay_of(visit, &fingerprint, &target.fingerprint).map(Seen::Replay);
        }
    }
    if let Some(number) = row.try_get::<Option<String>>("", "busy")? {
        return Ok(Seen::Busy(number));
    }
    let office_sequence: i64 = row.try_get("", "office_sequence")?;
    let (Some(leg), Some(visit)) = (
        leg::Model::from_query_result_optional(&row, "l_")?,
        visit::Model::from_query_result_optional(&row, "v_")?,
    ) else {
        return Ok(Seen::Nobody);
    };
    let leg_index = leg.leg_index;
    // A first leg is the visit's only one (later legs come from transfers),
    // so the common call needs no second read. A later leg's siblings are
    // read apart; if anything changed in between, the office's sequence
    // moved and the write will not apply.
    let record = if leg_index == 0 && visit.current_leg == 0 {
        TicketRecord {
            visit,
            legs: vec![leg],
        }
    } else {
        load_legs(db, visit).await?
    };
    Ok(Seen::Head(Box::new(Head {
        office_sequence,
        record,
        leg_index,
    })))
}

/// The visit as it will be stored once its leg `leg_index` is called.
fn called(
    mut record: TicketRecord,
    leg_index: i32,
    counter: &str,
    now: DateTime<Utc>,
    sequence: i64,
) -> TicketRecord {
    for leg in record.legs.iter_mut().filter(|l| l.leg_index == leg_index) {
        leg.state = VisitState::Called as i16;
        leg.counter = Some(counter.to_owned());
        leg.called_at = Some(micros(now));
    }
    let visit = &mut record.visit;
    visit.state = VisitState::Called as i16;
    visit.current_counter = Some(counter.to_owned());
    visit.recall_count = 0;
    visit.version += 1;
    visit.last_sequence = sequence;
    record
}

/// Step 3's values and its statement for each backend.
struct Write<'a> {
    target: &'a CallTarget,
    request_id: Option<Uuid>,
    office_sequence: i64,
    called: &'a TicketRecord,
    leg_index: i32,
    payload: Vec<u8>,
    now: DateTime<Utc>,
}

impl Write<'_> {
    /// The parameters both spellings of step 3 share: `$1` office, `$2`
    /// new sequence, `$3` sequence read, `$4` called state, `$5` counter,
    /// `$6` now, `$7` visit id, `$8` leg index, `$9` waiting state, `$10`
    /// new version, `$11` event type, `$12` payload; with a request id,
    /// `$13` the id and `$14` its fingerprint.
    fn values(&self) -> Vec<Value> {
        let visit = &self.called.visit;
        let mut values: Vec<Value> = vec![
            self.target.office.clone().into(),
            visit.last_sequence.into(),
            self.office_sequence.into(),
            (VisitState::Called as i16).into(),
            self.target.counter.clone().into(),
            micros(self.now).into(),
            visit.id.clone().into(),
            self.leg_index.into(),
            (VisitState::Waiting as i16).into(),
            visit.version.into(),
            (pb::EventType::TicketCalled as i16).into(),
            self.payload.clone().into(),
        ];
        if let Some(request_id) = self.request_id {
            values.push(request_id.to_string().into());
            values.push(self.target.fingerprint.clone().into());
        }
        values
    }

    /// One statement: each part runs only on the previous part's rows, so
    /// a moved sequence writes nothing, and the notification goes out only
    /// with the event (delivered at commit, the statement's end).
    fn postgres(&self, instance: &str) -> Statement {
        let mut values = self.values();
        let remember = if self.request_id.is_some() {
            ", remembered AS (\
               INSERT INTO queue_requests (office, request_id, fingerprint, visit_id, created_at) \
               SELECT $1, $13, $14, visit_id, $6 FROM logged)"
        } else {
            ""
        };
        let (channel, tag) = if self.request_id.is_some() {
            (15, 16)
        } else {
            (13, 14)
        };
        values.push(CHANNEL.into());
        values.push(instance.to_owned().into());
        let sql = format!(
            "WITH bumped AS (\
               UPDATE queue_offices SET last_sequence = $2 \
               WHERE name = $1 AND last_sequence = $3 RETURNING last_sequence), \
             claimed AS (\
               UPDATE queue_legs SET state = $4, counter = $5, called_at = $6 \
               WHERE visit_id = $7 AND leg_index = $8 AND state = $9 \
               AND EXISTS (SELECT 1 FROM bumped) RETURNING visit_id), \
             visited AS (\
               UPDATE queue_visits SET state = $4, current_counter = $5, recall_count = 0, \
               version = $10, last_sequence = $2 \
               WHERE id IN (SELECT visit_id FROM claimed) RETURNING id), \
             logged AS (\
               INSERT INTO queue_events \
               (office, sequence, event_type, visit_id, created_at, payload) \
               SELECT $1, $2, $11, id, $6, $12 FROM visited RETURNING sequence, visit_id)\
             {remember} \
             SELECT logged.sequence FROM logged \
             CROSS JOIN LATERAL (SELECT pg_notify(${channel}, ${tag}) \
               WHERE logged.sequence IS NOT NULL) AS notified"
        );
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    /// Several statements in one execution, inside the caller's
    /// transaction; the caller checks that every one wrote its row.
    fn sqlite(&self) -> Statement {
        let remember = if self.request_id.is_some() {
            "INSERT INTO queue_requests (office, request_id, fingerprint, visit_id, created_at) \
             VALUES ($1, $13, $14, $7, $6);"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE queue_offices SET last_sequence = $2 WHERE name = $1 AND last_sequence = $3; \
             UPDATE queue_legs SET state = $4, counter = $5, called_at = $6 \
             WHERE visit_id = $7 AND leg_index = $8 AND state = $9; \
             UPDATE queue_visits SET state = $4, current_counter = $5, recall_count = 0, \
             version = $10, last_sequence = $2 WHERE id = $7; \
             INSERT INTO queue_events (office, sequence, event_type, visit_id, created_at, payload) \
             VALUES ($1, $2, $11, $7, $6, $12); {remember}"
        );
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, self.values())
    }
}
