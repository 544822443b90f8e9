//! The forms storage: every change of a visit in one transaction.
//!
//! Each write begins by incrementing the visit's `version` with
//! `UPDATE … RETURNING`; on PostgreSQL that takes the visit row's lock until
//! commit, so two staff acting on one visit at once are serialised (the
//! second sees the first's commit), and on SQLite the single pooled
//! connection serialises them anyway. Then it checks the etag and the
//! visit's state, changes rows, records the acting staff member, and
//! commits. Any error drops the transaction: nothing is half-saved.

pub mod entities;
pub mod migration;

use chrono::{DateTime, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::forms::v1 as pb;
use madoguchi_proto::prost::Message;
use madoguchi_proto::prost_types::Timestamp;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use self::entities::{item, request, signature, touch, visit};
use crate::domain::VisitName;

/// Microseconds since the epoch.
pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A protobuf timestamp of µs since the epoch.
pub fn timestamp(us: i64) -> Timestamp {
    Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, ServiceError> {
    M::decode(bytes).map_err(|e| ServiceError::Internal(format!("stored message: {e}")))
}

/// The forms tables.
#[derive(Debug, Clone)]
pub struct FormsStore {
    db: DatabaseConnection,
}

/// A visit locked for a change inside a transaction.
#[derive(Debug)]
pub struct Locked {
    /// The transaction; commit with [`FormsStore::commit`].
    pub txn: DatabaseTransaction,
    /// The visit row after the version increment.
    pub row: visit::Model,
    /// The decoded header.
    pub header: pb::Visit,
}

impl FormsStore {
    /// A store on `db`; call [`FormsStore::prepare`] first.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Runs the migrations (on PostgreSQL under an advisory lock, so
    /// replicas starting together take turns).
    pub async fn prepare(&self) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Any constant; this one spells "madoguchi forms".
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7242022)")
                .await?;
        }
        migration::Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates a visit; a retry with the same request id returns the first.
    pub async fn create_visit(
        &self,
        name: &VisitName,
        header: &pb::Visit,
        request_id: Option<String>,
        staff: &str,
        now: DateTime<Utc>,
    ) -> Result<pb::Visit, ServiceError> {
        let office = name.office.to_string();
        let txn = self.db.begin().await?;
        if let Some(id) = &request_id
            && let Some(existing) = visit::Entity::find()
                .filter(visit::Column::Office.eq(office.clone()))
                .filter(visit::Column::RequestId.eq(id.clone()))
                .one(&txn)
                .await?
        {
            let previous: pb::Visit = decode(&existing.payload)?;
            if previous.verification != header.verification || previous.ticket != header.ticket {
                return Err(ServiceError::invalid(
                    "request_id",
                    "was used before with different fields",
                ));
            }
            drop(txn);
            return self.visit(&existing.name).await;
        }
        visit::Entity::insert(visit::ActiveModel {
            name: Set(name.to_string()),
            office: Set(office),
            business_day: Set(BusinessDay::of(now).ordinal()),
            state: Set(pb::VisitState::Open as i16),
            started_at: Set(micros(now)),
            ended_at: Set(None),
            version: Set(1),
            request_id: Set(request_id),
            payload: Set(header.encode_to_vec()),
        })
        .exec(&txn)
        .await?;
        touch(&txn, &name.to_string(), staff, now).await?;
        txn.commit().await?;
        self.visit(&name.to_string()).await
    }

    /// Locks a visit for a change: increments its version, checks the
    /// etag (when given) and that it is still open.
    pub async fn lock(
        &self,
        name: &str,
        etag: Option<&str>,
        require_open: bool,
    ) -> Result<Locked, ServiceError> {
        let txn = self.db.begin().await?;
        let row = visit::Entity::update_many()
            .col_expr(
                visit::Column::Version,
                Expr::col(visit::Column::Version).add(1),
            )
            .filter(visit::Column::Name.eq(name.to_owned()))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::not_found("visit", name))?;
        if let Some(etag) = etag
            && etag != (row.version - 1).to_string()
        {
            return Err(ServiceError::Aborted {
                name: name.to_owned(),
            });
        }
        if require_open && row.state != pb::VisitState::Open as i16 {
            return Err(ServiceError::precondition(
                "VISIT_COMPLETED",
                name,
                "the visit is already completed",
            ));
        }
        let header = decode(&row.payload)?;
        Ok(Locked { txn, row, header })
    }

    /// Records the staff member and commits.
    pub async fn commit(
        &self,
        locked: Locked,
        staff: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        touch(&locked.txn, &locked.row.name, staff, now).await?;
        locked.txn.commit().await?;
        Ok(())
    }

    /// Stores a changed header.
    pub async fn save_header(locked: &Locked, header: &pb::Visit) -> Result<(), ServiceError> {
        visit::Entity::update_many()
            .col_expr(visit::Column::Payload, Expr::value(header.encode_to_vec()))
            .filter(visit::Column::Name.eq(locked.row.name.clone()))
            .exec(&locked.txn)
            .await?;
        Ok(())
    }

    /// Replaces the checklist items nobody has handled yet with `items`;
    /// handled items stay as they are (and keep their place).
    pub async fn replace_unhandled_items(
        locked: &Locked,
        items: &[pb::ChecklistItem],
    ) -> Result<(), ServiceError> {
        let existing = item::Entity::find()
            .filter(item::Column::Visit.eq(locked.row.name.clone()))
            .all(&locked.txn)
            .await?;
        let mut kept = Vec::new();
        for row in existing {
            let stored: pb::ChecklistItem = decode(&row.payload)?;
            if stored.handled_by.is_empty() && !stored.transferred && stored.signature.is_empty() {
                item::Entity::delete_by_id((row.visit.clone(), row.procedure.clone()))
                    .exec(&locked.txn)
                    .await?;
            } else {
                kept.push(row.procedure);
            }
        }
        for (position, new) in items.iter().enumerate() {
            let procedure = new
                .procedure
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default();
            if kept.contains(&procedure) {
                continue;
            }
            item::Entity::insert(item::ActiveModel {
                visit: Set(locked.row.name.clone()),
                procedure: Set(procedure),
                position: Set(position as i32),
                status: Set(new.status as i16),
                payload: Set(new.encode_to_vec()),
            })
            .exec(&locked.txn)
            .await?;
        }
        Ok(())
    }

    /// Items of a visit in checklist order, inside a transaction.
    pub async fn items_in(
        txn: &impl ConnectionTrait,
        visit: &str,
    ) -> Result<Vec<pb::ChecklistItem>, ServiceError> {
        item::Entity::find()
            .filter(item::Column::Visit.eq(visit.to_owned()))
            .order_by_asc(item::Column::Position)
            .order_by_asc(item::Column::Procedure)
            .all(txn)
            .await?
            .iter()
            .map(|row| decode(&row.payload))
            .collect()
    }

    /// Stores a changed item.
    pub async fn save_item(locked: &Locked, value: &pb::ChecklistItem) -> Result<(), ServiceError> {
        let procedure = value
            .procedure
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_default();
        item::Entity::update_many()
            .col_expr(item::Column::Status, Expr::value(value.status as i16))
            .col_expr(item::Column::Payload, Expr::value(value.encode_to_vec()))
            .filter(item::Column::Visit.eq(locked.row.name.clone()))
            .filter(item::Column::Procedure.eq(procedure))
            .exec(&locked.txn)
            .await?;
        Ok(())
    }

    /// One item, inside the lock.
    pub async fn item_in(
        locked: &Locked,
        procedure: &str,
    ) -> Result<pb::ChecklistItem, ServiceError> {
        let row = item::Entity::find_by_id((locked.row.name.clone(), procedure.to_owned()))
            .one(&locked.txn)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "checklist item",
                    format!("{}/items/{procedure}", locked.row.name),
                )
            })?;
        decode(&row.payload)
    }

    /// Inserts a certificate request.
    pub async fn insert_request(
        locked: &Locked,
        value: &pb::CertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        request::Entity::insert(request::ActiveModel {
            name: Set(value.name.clone()),
            visit: Set(locked.row.name.clone()),
            state: Set(value.state as i16),
            created_at: Set(micros(now)),
            payload: Set(value.encode_to_vec()),
        })
        .exec(&locked.txn)
        .await?;
        Ok(())
    }

    /// Requests of a visit, oldest first.
    pub async fn requests_in(
        txn: &impl ConnectionTrait,
        visit: &str,
    ) -> Result<Vec<pb::CertificateRequest>, ServiceError> {
        request::Entity::find()
            .filter(request::Column::Visit.eq(visit.to_owned()))
            .order_by_asc(request::Column::CreatedAt)
            .order_by_asc(request::Column::Name)
            .all(txn)
            .await?
            .iter()
            .map(|row| decode(&row.payload))
            .collect()
    }

    /// Stores a changed request.
    pub async fn save_request(
        locked: &Locked,
        value: &pb::CertificateRequest,
    ) -> Result<(), ServiceError> {
        request::Entity::update_many()
            .col_expr(request::Column::State, Expr::value(value.state as i16))
            .col_expr(request::Column::Payload, Expr::value(value.encode_to_vec()))
            .filter(request::Column::Name.eq(value.name.clone()))
            .exec(&locked.txn)
            .await?;
        Ok(())
    }

    /// Inserts a signature.
    pub async fn insert_signature(
        locked: &Locked,
        value: &pb::Signature,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        signature::Entity::insert(signature::ActiveModel {
            name: Set(value.name.clone()),
            visit: Set(locked.row.name.clone()),
            created_at: Set(micros(now)),
            payload: Set(value.encode_to_vec()),
        })
        .exec(&locked.txn)
        .await?;
        Ok(())
    }

    /// Signatures of a visit with their strokes, oldest first.
    pub async fn signatures(&self, visit: &str) -> Result<Vec<pb::Signature>, ServiceError> {
        signature::Entity::find()
            .filter(signature::Column::Visit.eq(visit.to_owned()))
            .order_by_asc(signature::Column::CreatedAt)
            .order_by_asc(signature::Column::Name)
            .all(&self.db)
            .await?
            .iter()
            .map(|row| decode(&row.payload))
            .collect()
    }

    /// Marks the visit completed.
    pub async fn complete(locked: &Locked, now: DateTime<Utc>) -> Result<(), ServiceError> {
        visit::Entity::update_many()
            .col_expr(
                visit::Column::State,
                Expr::value(pb::VisitState::Completed as i16),
            )
            .col_expr(visit::Column::EndedAt, Expr::value(micros(now)))
            .filter(visit::Column::Name.eq(locked.row.name.clone()))
            .exec(&locked.txn)
            .await?;
        Ok(())
    }

    /// Distinct staff members who acted on a visit.
    pub async fn staff_count(&self, visit: &str) -> Result<u32, ServiceError> {
        Ok(touch::Entity::find()
            .filter(touch::Column::Visit.eq(visit.to_owned()))
            .all(&self.db)
            .await?
            .len() as u32)
    }

    /// The visit row.
    pub async fn row(&self, name: &str) -> Result<visit::Model, ServiceError> {
        visit::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| ServiceError::not_found("visit", name))
    }

    /// A whole visit as served: header, items, requests, signatures
    /// (without strokes), state, times and etag.
    pub async fn visit(&self, name: &str) -> Result<pb::Visit, ServiceError> {
        let row = self.row(name).await?;
        let mut visit: pb::Visit = decode(&row.payload)?;
        visit.name = row.name.clone();
        visit.state = i32::from(row.state);
        visit.start_time = Some(timestamp(row.started_at));
        visit.end_time = row.ended_at.map(timestamp);
        visit.etag = row.version.to_string();
        visit.items = Self::items_in(&self.db, name).await?;
        visit.certificate_requests = Self::requests_in(&self.db, name).await?;
        visit.signatures = self
            .signatures(name)
            .await?
            .into_iter()
            .map(|mut s| {
                s.strokes.clear();
                s
            })
            .collect();
        Ok(visit)
    }

    /// Visits of an office started on business days `from..=to`.
    pub async fn visits_between(
        &self,
        office: &str,
        from: BusinessDay,
        to: BusinessDay,
    ) -> Result<Vec<String>, ServiceError> {
        Ok(visit::Entity::find()
            .filter(visit::Column::Office.eq(office.to_owned()))
            .filter(visit::Column::BusinessDay.gte(from.ordinal()))
            .filter(visit::Column::BusinessDay.lte(to.ordinal()))
            .order_by_asc(visit::Column::StartedAt)
            .order_by_asc(visit::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect())
    }
}

/// Records that `staff` acted on `visit` (once per staff member).
async fn touch(
    txn: &DatabaseTransaction,
    visit: &str,
    staff: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    touch::Entity::insert(touch::ActiveModel {
        visit: Set(visit.to_owned()),
        staff: Set(staff.to_owned()),
        first_at: Set(micros(now)),
    })
    .on_conflict_do_nothing_on([touch::Column::Visit, touch::Column::Staff])
    .exec(txn)
    .await?;
    Ok(())
}
