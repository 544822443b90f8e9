//! The identity service's tables behind the operations it needs, on
//! SQLite and PostgreSQL. Every write that belongs together (a card read
//! and its audit event; a whole registry import) is one transaction.

pub mod entities;
pub mod migration;

use chrono::{DateTime, NaiveDate, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::types::{BusinessDay, MunicipalityCode};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use self::entities::{audit_event, card_read, resident, verification};
use crate::domain::person::PersonName;
use crate::registry::csv::{format_enrolments, parse_enrolments};
use crate::registry::{
    AddressRecord, Relationship, ResidentRecord, ResidentRegistry, parse_residence, residence_str,
};

/// Rows per INSERT statement of an import (20 columns each: well under
/// SQLite's and PostgreSQL's bound-parameter limits).
const IMPORT_BATCH: usize = 500;

/// Microseconds since the epoch.
pub fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

fn day_ordinal(date: NaiveDate) -> i32 {
    BusinessDay::from_date(date).ordinal()
}

fn day_from_ordinal(days: i32) -> Result<NaiveDate, ServiceError> {
    BusinessDay::from_ordinal(days)
        .map(BusinessDay::date)
        .ok_or_else(|| ServiceError::Internal("stored date out of range".into()))
}

/// The identity tables.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    db: DatabaseConnection,
}

impl IdentityStore {
    /// A store on `db`; call [`IdentityStore::migrate`] before use.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs migrations. On PostgreSQL a transaction-scoped advisory lock
    /// makes replicas starting together take turns.
    pub async fn migrate(&self) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Any constant works; this one spells "madoguchi identity".
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7242022)")
                .await?;
        }
        migration::Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Number of registry rows of a municipality.
    pub async fn resident_count(
        &self,
        municipality: &MunicipalityCode,
    ) -> Result<u64, ServiceError> {
        Ok(resident::Entity::find()
            .filter(resident::Column::MunicipalityCode.eq(municipality.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Replaces a municipality's registry with `records`, in one
    /// transaction. With `only_if_empty`, does nothing when rows exist
    /// (the start-up seed; replicas race safely under the advisory lock).
    pub async fn import_residents(
        &self,
        municipality: &MunicipalityCode,
        records: &[ResidentRecord],
        only_if_empty: bool,
    ) -> Result<bool, ServiceError> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7242023)")
                .await?;
        }
        let mine = resident::Column::MunicipalityCode.eq(municipality.as_str());
        if only_if_empty
            && resident::Entity::find()
                .filter(mine.clone())
                .count(&txn)
                .await?
                > 0
        {
            return Ok(false);
        }
        resident::Entity::delete_many()
            .filter(mine)
            .exec(&txn)
            .await?;
        for batch in records.chunks(IMPORT_BATCH) {
            resident::Entity::insert_many(batch.iter().map(to_row))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Stores a verification.
    pub async fn insert_verification(&self, row: verification::Model) -> Result<(), ServiceError> {
        verification::Entity::insert(verification::ActiveModel::from(row))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Reads a verification.
    pub async fn verification(
        &self,
        name: &str,
    ) -> Result<Option<verification::Model>, ServiceError> {
        Ok(verification::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Stores a card read and, if any, its audit event, together.
    pub async fn insert_card_read(
        &self,
        row: card_read::Model,
        audit: Option<audit_event::Model>,
    ) -> Result<(), ServiceError> {
        let txn = self.db.begin().await?;
        card_read::Entity::insert(card_read::ActiveModel::from(row))
            .exec(&txn)
            .await?;
        if let Some(audit) = audit {
            audit_event::Entity::insert(audit_event::ActiveModel::from(audit))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Reads a card read.
    pub async fn card_read(&self, name: &str) -> Result<Option<card_read::Model>, ServiceError> {
        Ok(card_read::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Appends an audit event (committed before the caller goes on).
    pub async fn insert_audit(&self, row: audit_event::Model) -> Result<(), ServiceError> {
        audit_event::Entity::insert(audit_event::ActiveModel::from(row))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A page of audit events, newest first, after the `(time, name)`
    /// position of the previous page's last event.
    pub async fn audit_events(
        &self,
        municipality: &MunicipalityCode,
        visit: Option<&str>,
        after: Option<(i64, String)>,
        limit: u64,
    ) -> Result<Vec<audit_event::Model>, ServiceError> {
        use audit_event::Column as A;
        let mut query =
            audit_event::Entity::find().filter(A::MunicipalityCode.eq(municipality.as_str()));
        if let Some(visit) = visit {
            query = query.filter(A::Visit.eq(visit));
        }
        if let Some((time, name)) = after {
            query = query.filter(
                Condition::any()
                    .add(A::Time.lt(time))
                    .add(Condition::all().add(A::Time.eq(time)).add(A::Name.lt(name))),
            );
        }
        Ok(query
            .order_by_desc(A::Time)
            .order_by_desc(A::Name)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

fn to_row(record: &ResidentRecord) -> resident::ActiveModel {
    resident::ActiveModel {
        municipality_code: Set(record.municipality.to_string()),
        resident_id: Set(record.resident_id.clone()),
        household_id: Set(record.household_id.clone()),
        family_name: Set(record.name.family.clone()),
        given_name: Set(record.name.given.clone()),
        family_name_kana: Set(record.name.family_kana.clone()),
        given_name_kana: Set(record.name.given_kana.clone()),
        birth_date: Set(day_ordinal(record.birth_date)),
        sex: Set(record.sex),
        relationship: Set(record.relationship.map(|r| r.as_str().to_owned())),
        relationship_label: Set(record.relationship_label.clone()),
        postal_code: Set(record.address.postal_code.clone()),
        address_municipality_code: Set(record.address.municipality_code.to_string()),
        prefecture: Set(record.address.prefecture.clone()),
        municipality: Set(record.address.municipality.clone()),
        street: Set(record.address.street.clone()),
        building: Set(record.address.building.clone()),
        residence_status: Set(residence_str(record.residence).to_owned()),
        death_date: Set(record.death_date.map(day_ordinal)),
        enrolments: Set(format_enrolments(&record.enrolments)),
        relatives: Set(record.relatives.join(";")),
    }
}

fn from_row(row: resident::Model) -> Result<ResidentRecord, ServiceError> {
    let corrupt = |what: &str| ServiceError::Internal(format!("stored resident has a bad {what}"));
    Ok(ResidentRecord {
        municipality: MunicipalityCode::parse(&row.municipality_code)
            .map_err(|_| corrupt("municipality"))?,
        household_id: row.household_id,
        name: PersonName {
            family: row.family_name,
            given: row.given_name,
            family_kana: row.family_name_kana,
            given_kana: row.given_name_kana,
        },
        birth_date: day_from_ordinal(row.birth_date)?,
        sex: row.sex,
        relationship: match row.relationship {
            Some(text) => Some(Relationship::parse(&text).ok_or_else(|| corrupt("relationship"))?),
            None => None,
        },
        relationship_label: row.relationship_label,
        address: AddressRecord {
            postal_code: row.postal_code,
            municipality_code: MunicipalityCode::parse(&row.address_municipality_code)
                .map_err(|_| corrupt("address"))?,
            prefecture: row.prefecture,
            municipality: row.municipality,
            street: row.street,
            building: row.building,
        },
        residence: parse_residence(&row.residence_status).ok_or_else(|| corrupt("residence"))?,
        death_date: row.death_date.map(day_from_ordinal).transpose()?,
        enrolments: parse_enrolments(&row.enrolments).map_err(|_| corrupt("enrolment"))?,
        relatives: row
            .relatives
            .split(';')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        resident_id: row.resident_id,
    })
}

/// The reference `ResidentRegistry`: the imported table.
#[derive(Debug, Clone)]
pub struct TableRegistry {
    db: DatabaseConnection,
}

impl TableRegistry {
    /// A registry over the store's table.
    pub fn new(store: &IdentityStore) -> Self {
        Self {
            db: store.db.clone(),
        }
    }
}

#[tonic::async_trait]
impl ResidentRegistry for TableRegistry {
    async fn resident(
        &self,
        municipality: &MunicipalityCode,
        resident_id: &str,
    ) -> Result<Option<ResidentRecord>, ServiceError> {
        resident::Entity::find_by_id((municipality.to_string(), resident_id.to_owned()))
            .one(&self.db)
            .await?
            .map(from_row)
            .transpose()
    }

    async fn born_on(
        &self,
        municipality: &MunicipalityCode,
        birth_date: NaiveDate,
    ) -> Result<Vec<ResidentRecord>, ServiceError> {
        resident::Entity::find()
            .filter(resident::Column::MunicipalityCode.eq(municipality.as_str()))
            .filter(resident::Column::BirthDate.eq(day_ordinal(birth_date)))
            .order_by_asc(resident::Column::ResidentId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    async fn household(
        &self,
        municipality: &MunicipalityCode,
        household_id: &str,
    ) -> Result<Vec<ResidentRecord>, ServiceError> {
        resident::Entity::find()
            .filter(resident::Column::MunicipalityCode.eq(municipality.as_str()))
            .filter(resident::Column::HouseholdId.eq(household_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }
}
