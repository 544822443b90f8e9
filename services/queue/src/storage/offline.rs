//! Offline ticketing and device health.
//!
//! A kiosk's gateway leases a block of numbers per category while the
//! cluster is reachable. Leased numbers are reserved: `IssueTicket` skips
//! them (see `leased_numbers`) until their ticket is imported or their
//! business day ends. When the cluster is unreachable the kiosk prints from
//! the lease; later `import_offline` queues each printed ticket exactly
//! once, with its printed number and its original issue time, placed in
//! line by that time.
//!
//! "Never numbered twice" rests on the primary key of
//! `queue_leased_numbers (category, business_day, number)`: a number is
//! leased once per day, and an import claims it with
//! `UPDATE … SET visit_id = ? WHERE … AND visit_id IS NULL`, which only one
//! transaction can win. "Imported once" rests on the idempotency record of
//! the ticket's `offline_id`, written in the same transaction.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::queue::v1 as pb;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{device, lease, leased_number, number_counter, office, visit};
use super::{
    QueueStore, append_event, bump_sequence, free_number, leased_numbers, remember, replay,
    set_last_number,
};
use crate::domain::{LegOutcome, OfficeChild, OfficeName, VisitState, display_number};
use crate::storage::entities::leg;
use crate::ticket::{TicketRecord, micros, timestamp};

/// Most numbers one lease may hold.
pub const MAX_LEASE: u32 = 100;
/// How far in the future (by the cluster's clock) an offline ticket's issue
/// time may lie: kiosk clocks drift a little, not by hours.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// One offline ticket, parsed.
#[derive(Debug, Clone)]
pub struct OfflineTicketInput {
    /// Idempotency key chosen by the device.
    pub offline_id: Uuid,
    /// The lease the number came from.
    pub lease: OfficeChild,
    /// The printed number.
    pub number: u32,
    /// Accessibility priority.
    pub priority: bool,
    /// When it was printed.
    pub issue_time: DateTime<Utc>,
}

/// A device health report, parsed.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    /// `…/devices/{id}`.
    pub name: OfficeChild,
    /// `DeviceKind`.
    pub kind: pb::DeviceKind,
    /// Answers on its port.
    pub connected: bool,
    /// Paper low.
    pub paper_near_end: bool,
    /// Paper out.
    pub paper_out: bool,
    /// Cover open.
    pub cover_open: bool,
    /// Last error, possibly empty.
    pub last_error: String,
    /// When the gateway saw it.
    pub observed_at: DateTime<Utc>,
    /// The reporting principal.
    pub gateway: String,
}

impl QueueStore {
    /// Leases `count` numbers of a category to `device`; see `LeaseNumbers`.
    pub async fn lease_numbers(
        &self,
        category_name: &OfficeChild,
        device: &str,
        count: u32,
        request_id: Option<Uuid>,
    ) -> Result<pb::NumberLease, ServiceError> {
        let now = self.now();
        let day = BusinessDay::of(now);
        let office_key = category_name.office.to_string();
        let category_key = category_name.to_string();
        let fingerprint = format!("LeaseNumbers|{category_key}|{device}|{count}");
        let category = self.category(&office_key, &category_key)?;

        let txn = self.db.begin().await?;
        // A lease appends no event, so it must not take a sequence (the log
        // is gapless); a no-op update takes the same office row lock that
        // serialises it with IssueTicket on PostgreSQL.
        let office = lock_office(&txn, &office_key).await?;
        if let Some(previous) = replay(&txn, &office_key, request_id, &fingerprint).await? {
            drop(txn);
            return self.lease_by_id(&office_key, &previous).await;
        }
        // Today's counter row, created if this is the day's first use; the
        // no-op update makes the upsert return the row either way.
        let counter = number_counter::Entity::insert(number_counter::ActiveModel {
            category: Set(category_key.clone()),
            business_day: Set(day.ordinal()),
            last_number: Set(0),
            issued_count: Set(0),
        })
        .on_conflict(
            OnConflict::columns([
                number_counter::Column::Category,
                number_counter::Column::BusinessDay,
            ])
            .value(
                number_counter::Column::LastNumber,
                Expr::col((number_counter::Entity, number_counter::Column::LastNumber)),
            )
            .to_owned(),
        )
        .exec_with_returning(&txn)
        .await?;

        let mut reserved: HashSet<i32> = leased_numbers(&txn, &category_key, day).await?;
        let mut numbers = Vec::with_capacity(count as usize);
        let mut last = counter.last_number;
        for _ in 0..count {
            let number =
                free_number(&txn, &category_key, last, office.max_number, &reserved).await?;
            reserved.insert(number);
            numbers.push(number);
            last = number;
        }
        set_last_number(&txn, &category_key, day, last).await?;
        let id = Uuid::now_v7().to_string();
        let row = lease::ActiveModel {
            id: Set(id.clone()),
            office: Set(office_key.clone()),
            category: Set(category_key.clone()),
            device: Set(device.to_owned()),
            business_day: Set(day.ordinal()),
            numbers: Set(numbers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")),
            created_at: Set(micros(now)),
        }
        .insert(&txn)
        .await?;
        leased_number::Entity::insert_many(numbers.iter().map(|n| leased_number::ActiveModel {
            category: Set(category_key.clone()),
            business_day: Set(day.ordinal()),
            number: Set(*n),
            lease_id: Set(id.clone()),
            visit_id: Set(None),
        }))
        .exec(&txn)
        .await?;
        remember(&txn, &office_key, request_id, &fingerprint, &id, now).await?;
        txn.commit().await?;
        tracing::info!(category = %category_key, device, count, "numbers leased");
        Ok(lease_to_proto(&row, &category.prefix))
    }

    async fn lease_by_id(
        &self,
        office_key: &str,
        id: &str,
    ) -> Result<pb::NumberLease, ServiceError> {
        let row = lease::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .filter(|l| l.office == office_key)
            .ok_or_else(|| ServiceError::not_found("lease", format!("{office_key}/leases/{id}")))?;
        let prefix = self.category(office_key, &row.category)?.prefix;
        Ok(lease_to_proto(&row, &prefix))
    }

    /// Imports offline tickets in one transaction; see `ImportOfflineTickets`.
    /// Any ticket that cannot be imported fails the whole request (its
    /// field path names it), so nothing is half-imported.
    pub async fn import_offline(
        &self,
        office_name: &OfficeName,
        tickets: &[OfflineTicketInput],
    ) -> Result<Vec<pb::ImportResult>, ServiceError> {
        let now = self.now();
        let today = BusinessDay::of(now);
        let office_key = office_name.to_string();
        let _turn = self.office_turn(&office_key).await;
        let txn = self.db.begin().await?;
        // The office lock first: a concurrent import of the same tickets
        // then waits here and, once it holds the lock, sees the first
        // import's idempotency records instead of racing for the numbers.
        lock_office(&txn, &office_key).await?;
        let mut imported: Vec<(Uuid, String, bool)> = Vec::with_capacity(tickets.len());
        let mut events = Vec::with_capacity(tickets.len());
        for (index, ticket) in tickets.iter().enumerate() {
            let field = |name: &str| format!("tickets[{index}].{name}");
            let fingerprint = format!(
                "ImportOfflineTicket|{}|{}|{}|{}",
                ticket.lease,
                ticket.number,
                ticket.priority,
                micros(ticket.issue_time)
            );
            if let Some(previous) =
                replay(&txn, &office_key, Some(ticket.offline_id), &fingerprint).await?
            {
                imported.push((ticket.offline_id, previous, true));
                continue;
            }
            let sequence = bump_sequence(&txn, &office_key).await?.last_sequence;
            let lease_key = ticket.lease.to_string();
            let lease = lease::Entity::find_by_id(ticket.lease.id.clone())
                .one(&txn)
                .await?
                .filter(|l| l.office == office_key)
                .ok_or_else(|| ServiceError::not_found("lease", lease_key.clone()))?;
            let Some(day) = BusinessDay::from_ordinal(lease.business_day) else {
                return Err(ServiceError::Internal(
                    "stored lease day out of range".into(),
                ));
            };
            if ticket.issue_time > now + CLOCK_SKEW {
                return Err(ServiceError::invalid(
                    field("issue_time"),
                    "lies in the future by the cluster's clock",
                ));
            }
            if BusinessDay::of(ticket.issue_time) != day {
                return Err(ServiceError::invalid(
                    field("issue_time"),
                    "is not on the lease's business day",
                ));
            }
            let number = i32::try_from(ticket.number).unwrap_or(-1);
            if !lease.numbers.split(',').any(|n| n == number.to_string()) {
                return Err(ServiceError::invalid(
                    field("number"),
                    "is not one of the lease's numbers",
                ));
            }
            let prefix = self.category(&office_key, &lease.category)?.prefix;
            let id = Uuid::now_v7().to_string();
            // The claim: only one import can move the number from unused
            // to this visit.
            let claimed = leased_number::Entity::update_many()
                .col_expr(leased_number::Column::VisitId, Expr::value(id.clone()))
                .filter(leased_number::Column::Category.eq(lease.category.clone()))
                .filter(leased_number::Column::BusinessDay.eq(lease.business_day))
                .filter(leased_number::Column::Number.eq(number))
                .filter(leased_number::Column::LeaseId.eq(lease.id.clone()))
                .filter(leased_number::Column::VisitId.is_null())
                .exec(&txn)
                .await?;
            if claimed.rows_affected != 1 {
                return Err(ServiceError::precondition(
                    "NUMBER_ALREADY_IMPORTED",
                    lease_key,
                    format!(
                        "number {} of this lease was imported by another offline ticket",
                        display_number(&prefix, ticket.number)
                    ),
                ));
            }
            number_counter::Entity::insert(number_counter::ActiveModel {
                category: Set(lease.category.clone()),
                business_day: Set(lease.business_day),
                last_number: Set(0),
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
                .to_owned(),
            )
            .exec(&txn)
            .await?;

            // Its place in line: right after the last ticket issued online
            // at or before its issue time (ties broken by issue time).
            let issued_us = micros(ticket.issue_time);
            let before: Option<i64> = visit::Entity::find()
                .select_only()
                .column(visit::Column::IssueSequence)
                .filter(visit::Column::Office.eq(office_key.clone()))
                .filter(visit::Column::BusinessDay.eq(lease.business_day))
                .filter(visit::Column::IssuedOffline.eq(false))
                .filter(visit::Column::IssuedAt.lte(issued_us))
                .order_by_desc(visit::Column::IssueSequence)
                .limit(1)
                .into_tuple()
                .one(&txn)
                .await?;
            let past_day = day < today;
            let state = if past_day {
                VisitState::Cancelled
            } else {
                VisitState::Waiting
            };
            let visit_row = visit::ActiveModel {
                id: Set(id.clone()),
                office: Set(office_key.clone()),
                issue_category: Set(lease.category.clone()),
                business_day: Set(lease.business_day),
                number: Set(number),
                display_number: Set(display_number(&prefix, ticket.number)),
                priority: Set(ticket.priority),
                state: Set(state as i16),
                issued_at: Set(issued_us),
                issue_sequence: Set(sequence),
                current_leg: Set(0),
                current_category: Set(lease.category.clone()),
                current_counter: Set(None),
                recall_count: Set(0),
                version: Set(1),
                last_sequence: Set(sequence),
                issued_offline: Set(true),
                imported_at: Set(Some(micros(now))),
                issuing_device: Set(Some(lease.device.clone())),
            }
            .insert(&txn)
            .await?;
            let leg_row = leg::ActiveModel {
                visit_id: Set(id.clone()),
                leg_index: Set(0),
                category: Set(lease.category.clone()),
                state: Set(if past_day {
                    crate::domain::LEG_ENDED
                } else {
                    VisitState::Waiting as i16
                }),
                priority_rank: Set(super::priority_rank(ticket.priority)),
                arrival_sequence: Set(before.unwrap_or(0)),
                arrival_offset: Set(Ord::max(issued_us, 1)),
                counter: Set(None),
                enqueued_at: Set(issued_us),
                called_at: Set(None),
                started_at: Set(None),
                ended_at: Set(past_day.then_some(micros(now))),
                outcome: Set(if past_day {
                    LegOutcome::Cancelled as i16
                } else {
                    LegOutcome::Open as i16
                }),
            }
            .insert(&txn)
            .await?;
            let record = TicketRecord {
                visit: visit_row,
                legs: vec![leg_row],
            };
            let event_type = if past_day {
                pb::EventType::TicketCancelled
            } else {
                pb::EventType::TicketIssued
            };
            events.push(append_event(&txn, &self.bus, &record, event_type, "", "", now).await?);
            remember(
                &txn,
                &office_key,
                Some(ticket.offline_id),
                &fingerprint,
                &id,
                now,
            )
            .await?;
            imported.push((ticket.offline_id, id, false));
        }
        txn.commit().await?;
        self.bus.publish(events);
        tracing::info!(office = %office_key, count = tickets.len(), "offline tickets imported");

        let mut results = Vec::with_capacity(imported.len());
        for (offline_id, visit_id, already_imported) in imported {
            let ticket = self.ticket_by_id(&office_key, &visit_id).await?;
            results.push(pb::ImportResult {
                offline_id: offline_id.to_string(),
                ticket: Some(ticket),
                already_imported,
            });
        }
        Ok(results)
    }

    /// Stores a device's latest health.
    pub async fn report_device_health(
        &self,
        report: DeviceReport,
    ) -> Result<HealthChange, ServiceError> {
        let now = self.now();
        let office_key = report.name.office.to_string();
        self.office(&report.name.office).await?;
        let name = report.name.to_string();
        let row = device::ActiveModel {
            name: Set(name.clone()),
            office: Set(office_key),
            kind: Set(report.kind as i16),
            connected: Set(report.connected),
            paper_near_end: Set(report.paper_near_end),
            paper_out: Set(report.paper_out),
            cover_open: Set(report.cover_open),
            last_error: Set(report.last_error),
            observed_at: Set(micros(report.observed_at)),
            reported_at: Set(micros(now)),
            gateway: Set(report.gateway),
        };
        let txn = self.db.begin().await?;
        let before = device::Entity::find_by_id(name).one(&txn).await?;
        let stored = device::Entity::insert(row)
            .on_conflict(
                OnConflict::column(device::Column::Name)
                    .update_columns([
                        device::Column::Kind,
                        device::Column::Connected,
                        device::Column::PaperNearEnd,
                        device::Column::PaperOut,
                        device::Column::CoverOpen,
                        device::Column::LastError,
                        device::Column::ObservedAt,
                        device::Column::ReportedAt,
                        device::Column::Gateway,
                    ])
                    .to_owned(),
            )
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(HealthChange {
            was_ok: before.map(|b| device_to_proto(b).ok),
            now: device_to_proto(stored),
        })
    }

    /// Every device of an office with its latest health, by name.
    pub async fn list_device_health(
        &self,
        office_name: &OfficeName,
    ) -> Result<Vec<pb::DeviceHealth>, ServiceError> {
        self.office(office_name).await?;
        let rows = device::Entity::find()
            .filter(device::Column::Office.eq(office_name.to_string()))
            .order_by_asc(device::Column::Name)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(device_to_proto).collect())
    }
}

/// A device's health as stored by a report, with whether it could work
/// before (`None` for a device reported for the first time), so that
/// callers can tell a new fault from a repeated report of a known one.
#[derive(Debug, Clone)]
pub struct HealthChange {
    /// Whether the device could work before this report.
    pub was_ok: Option<bool>,
    /// The health now stored.
    pub now: pb::DeviceHealth,
}

/// Takes the office row's lock without taking a sequence.
async fn lock_office(
    txn: &DatabaseTransaction,
    office_key: &str,
) -> Result<office::Model, ServiceError> {
    office::Entity::update_many()
        .col_expr(
            office::Column::LastSequence,
            Expr::col(office::Column::LastSequence),
        )
        .filter(office::Column::Name.eq(office_key.to_owned()))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::not_found("office", office_key))
}

fn lease_to_proto(row: &lease::Model, prefix: &str) -> pb::NumberLease {
    pb::NumberLease {
        name: format!("{}/leases/{}", row.office, row.id),
        category: row.category.clone(),
        device: row.device.clone(),
        business_day: BusinessDay::from_ordinal(row.business_day).map(crate::ticket::date),
        prefix: prefix.to_owned(),
        numbers: row
            .numbers
            .split(',')
            .filter_map(|n| n.parse().ok())
            .collect(),
    }
}

fn device_to_proto(row: device::Model) -> pb::DeviceHealth {
    let kind = pb::DeviceKind::try_from(i32::from(row.kind)).unwrap_or(pb::DeviceKind::Unspecified);
    let ok = row.connected && !row.paper_out && !row.cover_open;
    pb::DeviceHealth {
        name: row.name,
        kind: kind as i32,
        connected: row.connected,
        paper_near_end: row.paper_near_end,
        paper_out: row.paper_out,
        cover_open: row.cover_open,
        last_error: row.last_error,
        observe_time: Some(timestamp(row.observed_at)),
        report_time: Some(timestamp(row.reported_at)),
        gateway: row.gateway,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ok_only_when_the_device_can_work() {
        let row = device::Model {
            name: "municipalities/032034/offices/main/devices/printer-k1".into(),
            office: "municipalities/032034/offices/main".into(),
            kind: pb::DeviceKind::TicketPrinter as i16,
            connected: true,
            paper_near_end: true,
            paper_out: false,
            cover_open: false,
            last_error: String::new(),
            observed_at: 0,
            reported_at: 0,
            gateway: "gw".into(),
        };
        assert!(device_to_proto(row.clone()).ok, "near-end still prints");
        assert!(
            !device_to_proto(device::Model {
                paper_out: true,
                ..row.clone()
            })
            .ok
        );
        assert!(
            !device_to_proto(device::Model {
                connected: false,
                ..row
            })
            .ok
        );
    }
}
