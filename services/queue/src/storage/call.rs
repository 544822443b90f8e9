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
//! **The line's window.** The read returns the first [`WINDOW`] heads of
//! the lines, not one. The first is called; the rest, with the sequence the
//! call's own write gave the office, are kept in memory per office and
//! category set. While nothing else has written to the office, they *are*
//! the head of the lines, so the next call from those categories (at any
//! counter) skips step 1 and goes straight to step 3 — one round trip on
//! PostgreSQL, one hand-off on SQLite. Nothing is trusted that the write
//! does not check again: the write applies only at the window's sequence,
//! and also checks that the counter has no ticket open and, with a request
//! id, that the id is new. A write that does not apply drops the window and
//! the call reads as usual; so a window can only save a read, never call
//! the wrong ticket. A window is dropped unread as soon as this process
//! published an event past its sequence; another replica's write is caught
//! by the sequence check. A write that leaves nothing to follow its call
//! reads the next heads itself (see [`Write::postgres`] and
//! [`Write::sqlite`]), so while nothing else writes to the office, only
//! the first call of the lines reads.
//!
//! SQLite has one connection and no data-modifying CTEs. The call holds
//! that connection and spends two hand-offs to its thread: `BEGIN
//! IMMEDIATE` with the read, then the writes with `COMMIT` (each write
//! conditional on the one before, and a last check that stops the
//! execution before `COMMIT` unless all wrote their row). A sea-orm
//! transaction would cost a hand-off each for `BEGIN` and `COMMIT` and one
//! per statement; each is 100–150 µs under load here, most of a call's
//! time. The transaction is therefore opened in SQL, and `RawTransaction`
//! closes the connection rather than give it back to the pool if a call is
//! dropped with the transaction open.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use tracing::Instrument as _;

use chrono::{DateTime, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_proto::prost::Message;
use madoguchi_proto::queue::v1 as pb;
use sea_orm::sea_query::SelectStatement;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::SqliteArguments;
use sea_orm::sqlx::{self, Sqlite};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, RuntimeErr, Statement,
    Value,
};
use uuid::Uuid;

use super::entities::{leg, visit};
use super::{QueueStore, is_waiting, load_legs, office_event, replay_of};
use crate::domain::{OfficeChild, VisitState};
use crate::notify::CHANNEL;
use crate::ticket::{TicketRecord, micros};

/// Optimistic claims a call tries on PostgreSQL before it takes the
/// office's lock. A loss means another writer of the office committed in
/// the call's read-to-write window (well under a millisecond), so a third
/// loss in a row is rare even at peak.
pub(super) const OPTIMISTIC_ATTEMPTS: usize = 3;

/// How many heads of its lines a call reads: the first is called, the rest
/// become the line's window for the calls after it.
pub(super) const WINDOW: usize = 8;

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

impl CallTarget {
    /// The lines' key: the office and the categories called from.
    fn lines(&self) -> String {
        format!("{}|{}", self.office, self.categories.join(","))
    }

    /// The lines whose next heads a call's write reads for the calls after
    /// it: this call's, when nothing is left to follow it (see
    /// [`Write::postgres`], [`Write::sqlite`] and [`window_after`]).
    fn refill(&self, following: &VecDeque<(TicketRecord, i32)>) -> Option<&[String]> {
        following.is_empty().then_some(self.categories.as_slice())
    }
}

/// The heads of some lines that follow the ones a call just took, as they
/// stand at one office sequence; see the module's documentation.
#[derive(Debug)]
struct Window {
    /// The office's `last_sequence` the heads are true at.
    sequence: i64,
    /// In line order; each a first leg, its visit's only one.
    heads: VecDeque<(TicketRecord, i32)>,
}

/// The windows of a store, by [`CallTarget::lines`], and how its calls
/// went.
#[derive(Debug, Default)]
pub(super) struct Windows {
    windows: Mutex<HashMap<String, Window>>,
    paths: PathCounts,
}

/// How a store's calls found their ticket (since the store was made).
#[derive(Debug, Default)]
struct PathCounts {
    window: AtomicU64,
    read: AtomicU64,
    stale: AtomicU64,
    locked: AtomicU64,
}

/// One of [`PathCounts`]' counters.
type CallPath = fn(&PathCounts) -> &AtomicU64;

/// How many calls of a store found their ticket each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallPaths {
    /// Called from the line's window: the write alone.
    pub window: u64,
    /// Read the head first, then wrote.
    pub read: u64,
    /// Tried a window whose write did not apply (another writer moved the
    /// office, the counter was busy or the request id was used), then read.
    pub stale: u64,
    /// Took the office's lock after optimistic claims kept losing.
    pub locked: u64,
}

impl Windows {
    /// Takes the window of `lines` if it is still current: nothing past its
    /// sequence was published by this process (`newest`).
    fn take(&self, lines: &str, newest: u64) -> Option<Window> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = windows.remove(lines)?;
        (window.sequence >= 0 && window.sequence as u64 >= newest && !window.heads.is_empty())
            .then_some(window)
    }

    /// Keeps what follows a call that left the office at `sequence`.
    fn keep(&self, lines: String, sequence: i64, heads: VecDeque<(TicketRecord, i32)>) {
        if heads.is_empty() {
            return;
        }
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(lines, Window { sequence, heads });
    }

    fn count(&self, path: CallPath) {
        path(&self.paths).fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(super) fn paths(&self) -> CallPaths {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CallPaths {
            window: load(&self.paths.window),
            read: load(&self.paths.read),
            stale: load(&self.paths.stale),
            locked: load(&self.paths.locked),
        }
    }
}

/// What the read of step 1 found.
enum Seen {
    /// The request id was used before: the visit it called.
    Replay(String),
    /// The counter still has this ticket (display number) open.
    Busy(String),
    /// Nobody waits in the counter's lines.
    Nobody,
    /// The head of the lines, as stored, and the office's sequence, with
    /// the heads that follow it (for the window).
    Head(Box<Head>, VecDeque<(TicketRecord, i32)>),
}

/// The ticket at the head of the counter's lines, as read.
struct Head {
    /// The office's `last_sequence` when it was read.
    office_sequence: i64,
    /// Its visit and legs (only the head leg until `needs_siblings` reads
    /// the others).
    record: TicketRecord,
    /// Which leg waits at the head.
    leg_index: i32,
}

/// How one attempt ended.
enum Attempt {
    /// Nobody waited, or this ticket was called (and its event published).
    Done(Option<Box<pb::Ticket>>),
    /// The request id was used before: the visit it called.
    Replay(String),
    /// Another writer moved the office's sequence; nothing was written.
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
        let span = madoguchi_platform::storage::operation_span(
            &self.db,
            "UPDATE queue_offices queue_legs queue_visits INSERT queue_events",
        );
        self.call_next_untraced(counter_name, categories, request_id)
            .instrument(span)
            .await
    }

    /// [`Self::call_next`] inside its database span.
    async fn call_next_untraced(
        &self,
        counter_name: &OfficeChild,
        categories: &[OfficeChild],
        request_id: Option<Uuid>,
    ) -> Result<Option<pb::Ticket>, ServiceError> {
        let now = self.now();
        let target = self.call_target(counter_name, categories)?;
        let _turn = self.office_turn(&target.office).await;
        let window = self
            .windows
            .take(&target.lines(), self.bus.newest(&target.office));
        if self.db.get_database_backend() != DbBackend::Postgres {
            return self.call_on_sqlite(&target, request_id, now, window).await;
        }
        if let Some(mut window) = window
            && self.call_attempts > 0
        {
            let head = window.pop_head();
            let path: CallPath = |p| &p.window;
            match self
                .write_on_postgres(&target, request_id, head, window.heads, now, path)
                .await?
            {
                Attempt::Done(Some(ticket)) => return Ok(Some(*ticket)),
                _ => self.windows.count(|p| &p.stale),
            }
        }
        for _ in 0..self.call_attempts {
            match self.try_call_on_postgres(&target, request_id, now).await? {
                Attempt::Done(None) => return Ok(None),
                Attempt::Done(Some(ticket)) => return Ok(Some(*ticket)),
                Attempt::Replay(visit) => {
                    return self.ticket_by_id(&target.office, &visit).await.map(Some);
                }
                Attempt::Lost => {}
            }
        }
        self.windows.count(|p| &p.locked);
        self.call_next_locked(&target, request_id, now).await
    }

    /// After a call's write committed at `sequence`: `following` becomes
    /// the lines' window, the call is counted as found by `path`, and this
    /// process's followers get its event.
    fn settle(
        &self,
        target: &CallTarget,
        sequence: i64,
        following: VecDeque<(TicketRecord, i32)>,
        path: CallPath,
        event: pb::OfficeEvent,
    ) {
        self.windows.keep(target.lines(), sequence, following);
        self.windows.count(path);
        self.bus.publish([event]);
    }

    /// How this store's calls found their ticket so far.
    pub fn call_paths(&self) -> CallPaths {
        self.windows.paths()
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

    /// One read and, if someone waits, one conditional statement on the
    /// pool, which commits by itself.
    async fn try_call_on_postgres(
        &self,
        target: &CallTarget,
        request_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Attempt, ServiceError> {
        let (sql, values) = read_statement(target, request_id);
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        let (mut head, following) = match decode(&rows, target, request_id)? {
            Seen::Replay(visit) => return Ok(Attempt::Replay(visit)),
            Seen::Busy(number) => return Err(counter_busy(&target.counter, &number)),
            Seen::Nobody => return Ok(Attempt::Done(None)),
            Seen::Head(head, following) => (head, following),
        };
        if head.needs_siblings() {
            // If anything changed since the read, the office's sequence
            // moved and the write will not apply.
            head.record = load_legs(&self.db, head.record.visit).await?;
        }
        self.write_on_postgres(target, request_id, *head, following, now, |p| &p.read)
            .await
    }

    /// Step 3 on PostgreSQL: the one conditional statement, which commits
    /// by itself. If it applied, the call is [`settled`](Self::settle) as
    /// found by `path`.
    async fn write_on_postgres(
        &self,
        target: &CallTarget,
        request_id: Option<Uuid>,
        head: Head,
        following: VecDeque<(TicketRecord, i32)>,
        now: DateTime<Utc>,
        path: CallPath,
    ) -> Result<Attempt, ServiceError> {
        let (write, ticket, event) = Write::new(target, request_id, head, now);
        let sequence = write.sequence;
        // No row: the sequence moved, or (from a window) the counter has a
        // ticket open or the request id was used. (The same request id sent
        // twice at once cannot both pass the sequence check; the loser
        // reads again and replays.)
        let rows = self
            .db
            .query_all_raw(write.postgres(self.bus.instance(), target.refill(&following)))
            .await?;
        if rows.is_empty() {
            return Ok(Attempt::Lost);
        }
        self.settle(
            target,
            sequence,
            window_after(following, &rows),
            path,
            event,
        );
        Ok(Attempt::Done(Some(Box::new(ticket))))
    }

    /// Step 3 on SQLite: the writes and `COMMIT` in one execution on the
    /// call's connection, after `begin` (`BEGIN IMMEDIATE; ` when no read
    /// opened the transaction). If they applied, the call is
    /// [`settled`](Self::settle) as found by `path`; if not, the error is
    /// returned and the caller rolls back.
    #[allow(clippy::too_many_arguments)]
    async fn write_on_sqlite(
        &self,
        txn: &mut RawTransaction,
        begin: &str,
        target: &CallTarget,
        request_id: Option<Uuid>,
        head: Head,
        following: VecDeque<(TicketRecord, i32)>,
        now: DateTime<Utc>,
        path: CallPath,
    ) -> Result<pb::Ticket, ServiceError> {
        let (write, ticket, event) = Write::new(target, request_id, head, now);
        let sequence = write.sequence;
        let (sql, values) = write.sqlite(target.refill(&following));
        let rows = txn.fetch_all(&format!("{begin}{sql}"), values).await?;
        txn.mark_closed();
        // The first row is the write's check (see `Write::sqlite`).
        let heads = rows.get(1..).unwrap_or_default();
        self.settle(
            target,
            sequence,
            window_after(following, heads),
            path,
            event,
        );
        Ok(ticket)
    }

    /// The call on SQLite's one connection, held for the whole call:
    /// `BEGIN IMMEDIATE` and the read in one execution, then the writes and
    /// `COMMIT` in another — two hand-offs to the connection's thread; with
    /// a current window, `BEGIN IMMEDIATE`, the writes and `COMMIT` in one.
    /// The transaction is opened and closed in SQL, not through sea-orm
    /// (whose transactions cost a hand-off each for `BEGIN` and `COMMIT`),
    /// so [`RawTransaction`] makes sure it never outlives the call.
    async fn call_on_sqlite(
        &self,
        target: &CallTarget,
        request_id: Option<Uuid>,
        now: DateTime<Utc>,
        window: Option<Window>,
    ) -> Result<Option<pb::Ticket>, ServiceError> {
        let pool = self.db.get_sqlite_connection_pool();
        let mut txn = RawTransaction::new(pool.acquire().await.map_err(sqlx_error)?);
        if let Some(mut window) = window {
            let head = window.pop_head();
            let written = self
                .write_on_sqlite(
                    &mut txn,
                    "BEGIN IMMEDIATE; ",
                    target,
                    request_id,
                    head,
                    window.heads,
                    now,
                    |p| &p.window,
                )
                .await;
            match written {
                Ok(ticket) => return Ok(Some(ticket)),
                Err(error) => {
                    // Did not apply (or failed): nothing of it stays, and
                    // the call reads as usual. If even the rollback fails,
                    // the connection is closed, not reused.
                    if txn.finish("ROLLBACK").await.is_err() {
                        return Err(error);
                    }
                    self.windows.count(|p| &p.stale);
                }
            }
        }
        let (sql, values) = read_statement(target, request_id);
        let seen = txn
            .fetch_all(&format!("BEGIN IMMEDIATE; {sql}"), values)
            .await
            .and_then(|rows| decode(&rows, target, request_id));
        let (mut head, following) = match seen {
            Ok(Seen::Head(head, following)) => (head, following),
            other => {
                txn.finish("ROLLBACK").await?;
                // The connection goes back first: a replay reads through
                // the pool, which has no other.
                drop(txn);
                return match other? {
                    Seen::Replay(visit) => {
                        self.ticket_by_id(&target.office, &visit).await.map(Some)
                    }
                    Seen::Busy(number) => Err(counter_busy(&target.counter, &number)),
                    Seen::Nobody | Seen::Head(..) => Ok(None),
                };
            }
        };
        if head.needs_siblings() {
            match txn.legs(&head.record.visit.id).await {
                Ok(legs) => head.record.legs = legs,
                Err(e) => {
                    txn.finish("ROLLBACK").await?;
                    return Err(e);
                }
            }
        }
        let written = self
            .write_on_sqlite(
                &mut txn,
                "",
                target,
                request_id,
                *head,
                following,
                now,
                |p| &p.read,
            )
            .await;
        match written {
            Ok(ticket) => Ok(Some(ticket)),
            Err(e) => {
                txn.finish("ROLLBACK").await?;
                Err(e)
            }
        }
    }
}

/// Step 1's statement, the same on both backends (`$n` parameters): the
/// office's sequence; the ticket the counter has open; an earlier request
/// with the same id; and the first [`WINDOW`] heads of the lines, leg and
/// visit, with their columns prefixed `l_` and `v_` — one row per head in
/// line order (the office's columns repeat), or one row without a head.
fn read_statement(target: &CallTarget, request_id: Option<Uuid>) -> (String, Vec<Value>) {
    const _: () = assert!(VisitState::Waiting as i16 == 1);
    const _: () = assert!(VisitState::Called as i16 == 2 && VisitState::Serving as i16 == 3);
    let mut values: Vec<Value> = vec![target.office.clone().into(), target.counter.clone().into()];
    // Without a request id the statement does not mention the requests
    // table at all. A join on a NULL id would make PostgreSQL's generic
    // plan look costlier than the custom one (which drops the join), so it
    // would plan the statement afresh on every call; this way both
    // statements settle on their generic plan after a few calls.
    let (replay_columns, replay) = match request_id {
        Some(id) => {
            values.push(id.to_string().into());
            (
                "r.visit_id AS replay_visit, r.fingerprint AS replay_fingerprint",
                format!(
                    "LEFT JOIN queue_requests r ON r.office = o.name AND r.request_id = ${}",
                    values.len()
                ),
            )
        }
        None => (
            "NULL AS replay_visit, NULL AS replay_fingerprint",
            String::new(),
        ),
    };
    let heads = heads_join(&mut values, &target.categories, "");
    let sql = format!(
        "SELECT o.last_sequence AS office_sequence, \
           (SELECT b.display_number FROM queue_visits b \
            WHERE b.current_counter = $2 AND b.state IN (2, 3) LIMIT 1) AS busy, \
           {replay_columns}, {columns} \
         FROM queue_offices o \
         {replay} \
         {heads} \
         WHERE o.name = $1 \
         ORDER BY l.priority_rank, l.arrival_sequence, l.arrival_offset",
        columns = head_columns(),
    );
    (sql, values)
}

/// The columns of a head's leg and visit, prefixed `l_` and `v_`, as
/// [`head_of`] reads them.
fn head_columns() -> &'static str {
    static COLUMNS: LazyLock<String> = LazyLock::new(|| {
        let legs = leg::Column::iter().map(|c| format!("l.{0} AS l_{0}", c.as_str()));
        let visits = visit::Column::iter().map(|c| format!("v.{0} AS v_{0}", c.as_str()));
        legs.chain(visits).collect::<Vec<_>>().join(", ")
    });
    COLUMNS.as_str()
}

/// The joins that add the first [`WINDOW`] heads of the lines of
/// `categories` (bound as the next parameters in `values`) as `l` (leg)
/// and `v` (visit), one row per head, to a statement's single row; `also`
/// is a further condition on the waiting leg. The heads come from the
/// partial index of waiting legs (`state = 1` must be a literal for either
/// planner to use it), an ordered scan that stops after `WINDOW` rows for
/// one category.
fn heads_join(values: &mut Vec<Value>, categories: &[String], also: &str) -> String {
    let first = values.len() + 1;
    values.extend(categories.iter().cloned().map(Value::from));
    let categories = match categories.len() {
        1 => format!("= ${first}"),
        _ => {
            let list: Vec<String> = (first..=values.len()).map(|n| format!("${n}")).collect();
            format!("IN ({})", list.join(", "))
        }
    };
    format!(
        "LEFT JOIN (SELECT visit_id, leg_index FROM queue_legs \
                    WHERE category {categories} AND state = 1{also} \
                    ORDER BY priority_rank, arrival_sequence, arrival_offset \
                    LIMIT {WINDOW}) AS h ON TRUE \
         LEFT JOIN queue_legs l ON l.visit_id = h.visit_id AND l.leg_index = h.leg_index \
         LEFT JOIN queue_visits v ON v.id = l.visit_id"
    )
}

/// What step 1's rows say.
fn decode(
    rows: &[QueryResult],
    target: &CallTarget,
    request_id: Option<Uuid>,
) -> Result<Seen, ServiceError> {
    let row = rows
        .first()
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
    let Some((record, leg_index)) = head_of(row)? else {
        return Ok(Seen::Nobody);
    };
    let following = following_heads(&rows[1..])?;
    Ok(Seen::Head(
        Box::new(Head {
            office_sequence,
            record,
            leg_index,
        }),
        following,
    ))
}

/// The window in `rows` (heads in line order, columns as in
/// [`read_statement`]). It holds only heads whose visit has no other leg,
/// so that it needs no further read, and ends before the first that has.
fn following_heads(rows: &[QueryResult]) -> Result<VecDeque<(TicketRecord, i32)>, ServiceError> {
    let mut following = VecDeque::with_capacity(rows.len());
    for row in rows {
        match head_of(row)? {
            Some((record, leg_index)) if !needs_siblings(&record, leg_index) => {
                following.push_back((record, leg_index));
            }
            _ => break,
        }
    }
    Ok(following)
}

/// The lines' window after a call that was given `following`: those
/// heads, or, if it was given none, the heads its write read for the calls
/// after it ([`CallTarget::refill`]), from `rows`. The call has committed
/// by then, so rows that do not decode cost the next call a read, not this
/// call its answer.
fn window_after(
    following: VecDeque<(TicketRecord, i32)>,
    rows: &[QueryResult],
) -> VecDeque<(TicketRecord, i32)> {
    if !following.is_empty() {
        return following;
    }
    following_heads(rows).unwrap_or_else(|error| {
        tracing::warn!(%error, "call: the refilled window did not decode; the next call reads");
        VecDeque::new()
    })
}

/// The head visit (with only the head leg) and that leg's index, from one
/// row of step 1, if it has one.
fn head_of(row: &QueryResult) -> Result<Option<(TicketRecord, i32)>, ServiceError> {
    let (Some(leg), Some(visit)) = (
        leg::Model::from_query_result_optional(row, "l_")?,
        visit::Model::from_query_result_optional(row, "v_")?,
    ) else {
        return Ok(None);
    };
    let leg_index = leg.leg_index;
    Ok(Some((
        TicketRecord {
            visit,
            legs: vec![leg],
        },
        leg_index,
    )))
}

/// Whether the visit of a head leg has other legs to read before it can be
/// called. A first leg is the visit's only one (later legs come from
/// transfers), so the common call needs no second read.
fn needs_siblings(record: &TicketRecord, leg_index: i32) -> bool {
    leg_index != 0 || record.visit.current_leg != 0
}

impl Window {
    /// The first head, at the window's sequence; the window is never empty.
    fn pop_head(&mut self) -> Head {
        let (record, leg_index) = self
            .heads
            .pop_front()
            .unwrap_or_else(|| unreachable!("windows are kept only with heads"));
        Head {
            office_sequence: self.sequence,
            record,
            leg_index,
        }
    }
}

impl Head {
    /// See [`needs_siblings`]; a later leg's siblings are read apart.
    fn needs_siblings(&self) -> bool {
        needs_siblings(&self.record, self.leg_index)
    }
}

/// A transaction opened in SQL on a connection held out of the pool. If it
/// is dropped while the transaction may be open (an error, or the request
/// cancelled mid-statement), the connection is closed instead of going
/// back to the pool, and SQLite rolls the transaction back.
struct RawTransaction {
    connection: Option<PoolConnection<Sqlite>>,
    open: bool,
}

impl RawTransaction {
    fn new(connection: PoolConnection<Sqlite>) -> Self {
        Self {
            connection: Some(connection),
            open: false,
        }
    }

    fn connection(&mut self) -> Result<&mut PoolConnection<Sqlite>, ServiceError> {
        self.connection.as_mut().ok_or_else(|| {
            ServiceError::Internal("sqlite call: connection already given back".into())
        })
    }

    /// Runs `sql`, which may open the transaction, and returns its rows.
    async fn fetch_all(
        &mut self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, ServiceError> {
        self.open = true;
        let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), values)?;
        let rows = query
            .fetch_all(&mut **self.connection()?)
            .await
            .map_err(sqlx_error)?;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    /// The legs of a visit, in order.
    async fn legs(&mut self, visit_id: &str) -> Result<Vec<leg::Model>, ServiceError> {
        let rows = sqlx::query("SELECT * FROM queue_legs WHERE visit_id = $1 ORDER BY leg_index")
            .bind(visit_id.to_owned())
            .fetch_all(&mut **self.connection()?)
            .await
            .map_err(sqlx_error)?;
        rows.into_iter()
            .map(|row| Ok(leg::Model::from_query_result(&QueryResult::from(row), "")?))
            .collect()
    }

    /// Ends the transaction with `ROLLBACK` (or `COMMIT`).
    async fn finish(&mut self, statement: &'static str) -> Result<(), ServiceError> {
        sqlx::query(statement)
            .execute(&mut **self.connection()?)
            .await
            .map_err(sqlx_error)?;
        self.open = false;
        Ok(())
    }

    /// The last statement run ended the transaction.
    fn mark_closed(&mut self) {
        self.open = false;
    }
}

impl Drop for RawTransaction {
    fn drop(&mut self) {
        if let Some(mut connection) = self.connection.take()
            && self.open
        {
            connection.close_on_drop();
        }
    }
}

fn bind(
    mut query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
    values: Vec<Value>,
) -> Result<sqlx::query::Query<'_, Sqlite, SqliteArguments>, ServiceError> {
    for value in values {
        query = match value {
            Value::String(v) => query.bind(v),
            Value::BigInt(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::SmallInt(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
            other => {
                return Err(ServiceError::Internal(format!(
                    "sqlite call: no binding for {other:?}"
                )));
            }
        };
    }
    Ok(query)
}

fn sqlx_error(error: sqlx::Error) -> ServiceError {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            ServiceError::Unavailable(error.to_string())
        }
        error => DbErr::Query(RuntimeErr::SqlxError(Arc::new(error))).into(),
    }
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
struct Write {
    /// `$1` office, `$2` new sequence, `$3` sequence read, `$4` called
    /// state, `$5` counter, `$6` now, `$7` visit id, `$8` leg index, `$9`
    /// waiting state, `$10` new version, `$11` event type, `$12` payload;
    /// with a request id, `$13` the id and `$14` its fingerprint.
    values: Vec<Value>,
    remembers: bool,
    /// The office's sequence once written.
    sequence: i64,
    /// The calling request's trace context, stored beside the event.
    trace_parent: Option<String>,
}

impl Write {
    /// The write that calls `head`, the ticket as the call leaves it and
    /// the call's event.
    fn new(
        target: &CallTarget,
        request_id: Option<Uuid>,
        head: Head,
        now: DateTime<Utc>,
    ) -> (Self, pb::Ticket, pb::OfficeEvent) {
        let sequence = head.office_sequence + 1;
        let called = called(head.record, head.leg_index, &target.counter, now, sequence);
        let event = office_event(
            &called,
            pb::EventType::TicketCalled,
            &target.counter,
            "",
            now,
        );
        let visit = &called.visit;
        let mut values: Vec<Value> = vec![
            target.office.clone().into(),
            sequence.into(),
            head.office_sequence.into(),
            (VisitState::Called as i16).into(),
            target.counter.clone().into(),
            micros(now).into(),
            visit.id.clone().into(),
            head.leg_index.into(),
            (VisitState::Waiting as i16).into(),
            visit.version.into(),
            (pb::EventType::TicketCalled as i16).into(),
            event.encode_to_vec().into(),
        ];
        if let Some(request_id) = request_id {
            values.push(request_id.to_string().into());
            values.push(target.fingerprint.clone().into());
        }
        let write = Self {
            values,
            remembers: request_id.is_some(),
            sequence,
            trace_parent: madoguchi_platform::telemetry::current_traceparent(),
        };
        (write, called.to_proto(), event)
    }

    /// What the office's update checks besides its sequence, for a write
    /// from a window (which read neither): the counter has no ticket open,
    /// and the request id is new. Redundant after a read, which saw both at
    /// the same sequence.
    fn guards(&self) -> &'static str {
        if self.remembers {
            " AND NOT EXISTS (SELECT 1 FROM queue_visits b \
               WHERE b.current_counter = $5 AND b.state IN (2, 3)) \
             AND NOT EXISTS (SELECT 1 FROM queue_requests r \
               WHERE r.office = $1 AND r.request_id = $13)"
        } else {
            " AND NOT EXISTS (SELECT 1 FROM queue_visits b \
               WHERE b.current_counter = $5 AND b.state IN (2, 3))"
        }
    }

    /// One statement: each part runs only on the previous part's rows, so
    /// a moved sequence writes nothing, and the notification goes out only
    /// with the event (delivered at commit, the statement's end). It
    /// returns no row if it wrote nothing, else one.
    ///
    /// With `refill` (the lines' categories), the row also carries the
    /// first heads of those lines after the one called — one row per head,
    /// columns as in [`read_statement`] — to become the lines' next window.
    /// They are read from the statement's snapshot, taken before its
    /// writes: the called leg still waits there and is left out by its
    /// visit. The snapshot shows the office exactly at the sequence the
    /// write checked: a writer that committed after it was taken moved the
    /// office's sequence, which the update re-checks on the newest row
    /// version (READ COMMITTED), so then nothing is written and the heads
    /// are never used.
    fn postgres(self, instance: &str, refill: Option<&[String]>) -> Statement {
        let guards = self.guards();
        let mut values = self.values;
        let remember = if self.remembers {
            ", remembered AS (\
               INSERT INTO queue_requests (office, request_id, fingerprint, visit_id, created_at) \
               SELECT $1, $13, $14, visit_id, $6 FROM logged)"
        } else {
            ""
        };
        values.push(self.trace_parent.into());
        let trace = values.len();
        values.push(CHANNEL.into());
        values.push(instance.to_owned().into());
        let (channel, tag) = (values.len() - 1, values.len());
        let (columns, heads, order) = match refill {
            Some(categories) => (
                format!(", {}", head_columns()),
                heads_join(&mut values, categories, " AND visit_id <> $7"),
                "ORDER BY l.priority_rank, l.arrival_sequence, l.arrival_offset",
            ),
            None => (String::new(), String::new(), ""),
        };
        let sql = format!(
            "WITH bumped AS (\
               UPDATE queue_offices SET last_sequence = $2 \
               WHERE name = $1 AND last_sequence = $3{guards} RETURNING last_sequence), \
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
               (office, sequence, event_type, visit_id, created_at, payload, trace_parent) \
               SELECT $1, $2, $11, id, $6, $12, ${trace} FROM visited \
               RETURNING sequence, visit_id)\
             {remember} \
             SELECT logged.sequence AS written{columns} FROM logged \
             CROSS JOIN LATERAL (SELECT pg_notify(${channel}, ${tag}) \
               WHERE logged.sequence IS NOT NULL) AS notified \
             {heads} {order}"
        );
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    /// The writes and `COMMIT` in one execution, inside the transaction the
    /// read opened. Each write runs only if the one before wrote its row
    /// (`changes() = 1`: rows written by the previous statement), and the
    /// last check raises an error (`json` of text that is not JSON) unless
    /// the last write did — so `COMMIT`
    /// is reached only when every row was written; otherwise the execution
    /// stops at the error and the caller rolls back. The check returns one
    /// row.
    ///
    /// With `refill` (the lines' categories), the transaction then reads
    /// the first heads of those lines, as they stand after the call, before
    /// it commits: after the check's row, one row per head, columns as in
    /// [`read_statement`] — the lines' next window.
    fn sqlite(self, refill: Option<&[String]>) -> (String, Vec<Value>) {
        let guards = self.guards();
        let mut values = self.values;
        values.push(self.trace_parent.into());
        let trace = values.len();
        let heads = match refill {
            Some(categories) => format!(
                "SELECT {} FROM queue_offices o {} WHERE o.name = $1 \
                 ORDER BY l.priority_rank, l.arrival_sequence, l.arrival_offset; ",
                head_columns(),
                heads_join(&mut values, categories, ""),
            ),
            None => String::new(),
        };
        let remember = if self.remembers {
            "INSERT INTO queue_requests (office, request_id, fingerprint, visit_id, created_at) \
             SELECT $1, $13, $14, $7, $6 WHERE changes() = 1; "
        } else {
            ""
        };
        let sql = format!(
            "UPDATE queue_offices SET last_sequence = $2 \
             WHERE name = $1 AND last_sequence = $3{guards}; \
             UPDATE queue_legs SET state = $4, counter = $5, called_at = $6 \
             WHERE visit_id = $7 AND leg_index = $8 AND state = $9 AND changes() = 1; \
             UPDATE queue_visits SET state = $4, current_counter = $5, recall_count = 0, \
             version = $10, last_sequence = $2 WHERE id = $7 AND changes() = 1; \
             INSERT INTO queue_events \
             (office, sequence, event_type, visit_id, created_at, payload, trace_parent) \
             SELECT $1, $2, $11, $7, $6, $12, ${trace} WHERE changes() = 1; {remember}\
             SELECT json(CASE WHEN changes() = 1 THEN '1' ELSE 'a write did not apply' END); \
             {heads}COMMIT"
        );
        (sql, values)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use madoguchi_platform::clock::ManualClock;
    use madoguchi_platform::site::Site;
    use secrecy::SecretString;

    use super::*;
    use crate::domain::OfficeName;
    use crate::notify::EventBus;
    use crate::storage::entities::{event, office};
    use sea_orm::PaginatorTrait;

    const OFFICE: &str = "municipalities/032034/offices/main";

    /// A write prepared from a stale read (the office's sequence moved)
    /// stops at its first conditional statement: the execution fails before
    /// `COMMIT`, and after the rollback nothing of it is stored.
    #[tokio::test]
    async fn a_sqlite_write_that_does_not_apply_stops_before_commit() {
        let db = madoguchi_platform::storage::connect(&SecretString::from("sqlite::memory:"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let site = Site::parse(include_str!("../../../../sites/ofunato/site.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let start = DateTime::parse_from_rfc3339("2026-04-01T09:00:00+09:00")
            .unwrap_or_else(|e| panic!("{e}"))
            .to_utc();
        let store = QueueStore::new(db, Arc::new(ManualClock::new(start)), EventBus::new());
        store.prepare(&site).await.unwrap_or_else(|e| panic!("{e}"));
        let office_name = OfficeName::parse(OFFICE).unwrap_or_else(|e| panic!("{e}"));
        let category =
            OfficeChild::parse(&format!("{OFFICE}/categories/certificates"), "categories")
                .unwrap_or_else(|e| panic!("{e}"));
        store
            .issue_ticket(&office_name, &category, false, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let counter = OfficeChild::parse(&format!("{OFFICE}/counters/1"), "counters")
            .unwrap_or_else(|e| panic!("{e}"));
        let target = store
            .call_target(&counter, &[])
            .unwrap_or_else(|e| panic!("{e}"));

        let pool = store.connection().get_sqlite_connection_pool();
        let mut txn = RawTransaction::new(pool.acquire().await.unwrap_or_else(|e| panic!("{e}")));
        let (sql, values) = read_statement(&target, None);
        let rows = txn
            .fetch_all(&format!("BEGIN IMMEDIATE; {sql}"), values)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Ok(Seen::Head(mut head, _)) = decode(&rows, &target, None) else {
            panic!("the ticket should head the line");
        };
        assert_eq!(head.office_sequence, 1);
        head.office_sequence = 0; // as if read before the issue
        let (write, _, _) = Write::new(&target, None, *head, start);
        let (sql, values) = write.sqlite(None);
        let Err(error) = txn.fetch_all(&sql, values).await else {
            panic!("a write that did not apply must not commit");
        };
        // Stopped by the last check, not by some other error.
        assert!(format!("{error:?}").contains("malformed JSON"), "{error:?}");
        txn.finish("ROLLBACK")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(txn);

        let office = office::Entity::find_by_id(OFFICE.to_owned())
            .one(store.connection())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no office"));
        assert_eq!(office.last_sequence, 1);
        let events = event::Entity::find()
            .all(store.connection())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events.len(), 1, "only the issue's event");
        let waiting = leg::Entity::find()
            .filter(is_waiting())
            .count(store.connection())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(waiting, 1);

        // The connection is usable and the call itself still works.
        let ticket = store
            .call_next(&counter, &[], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("nobody called"));
        assert_eq!(ticket.sequence, 2);
    }
}
