//! The identity schema, tracked in its own table (`identity_migrations`)
//! so that services can share one database without sharing a migration
//! history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, text};

use super::entities::{audit_event, card_read, resident, verification};

/// Runs the identity migrations.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }

    fn migration_table_name() -> DynIden {
        "identity_migrations".into_iden()
    }
}

/// The first schema.
#[derive(Debug)]
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn text_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).text().null().take()
}

fn integer_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).integer().null().take()
}

fn binary<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).binary().not_null().take()
}

fn binary_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).binary().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use resident::Column as R;
        m.create_table(
            Table::create()
                .table(resident::Entity)
                .col(text(R::MunicipalityCode))
                .col(text(R::ResidentId))
                .col(text_null(R::HouseholdId))
                .col(text(R::FamilyName))
                .col(text(R::GivenName))
                .col(text(R::FamilyNameKana))
                .col(text(R::GivenNameKana))
                .col(integer(R::BirthDate))
                .col(integer(R::Sex))
                .col(text_null(R::Relationship))
                .col(text(R::RelationshipLabel))
                .col(text(R::PostalCode))
                .col(text(R::AddressMunicipalityCode))
                .col(text(R::Prefecture))
                .col(text(R::Municipality))
                .col(text(R::Street))
                .col(text(R::Building))
                .col(text(R::ResidenceStatus))
                .col(integer_null(R::DeathDate))
                .col(text(R::Enrolments))
                .col(text(R::Relatives))
                .primary_key(Index::create().col(R::MunicipalityCode).col(R::ResidentId))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("identity_residents_birth")
                .table(resident::Entity)
                .col(R::MunicipalityCode)
                .col(R::BirthDate)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("identity_residents_household")
                .table(resident::Entity)
                .col(R::MunicipalityCode)
                .col(R::HouseholdId)
                .take(),
        )
        .await?;

        use verification::Column as V;
        m.create_table(
            Table::create()
                .table(verification::Entity)
                .col(text(V::Name).primary_key())
                .col(text(V::MunicipalityCode))
                .col(text(V::Visit))
                .col(binary(V::Payload))
                .col(big_integer(V::CreateTime))
                .take(),
        )
        .await?;

        use card_read::Column as C;
        m.create_table(
            Table::create()
                .table(card_read::Entity)
                .col(text(C::Name).primary_key())
                .col(text(C::MunicipalityCode))
                .col(text(C::Visit))
                .col(binary(C::Payload))
                .col(binary_null(C::MyNumberSealed))
                .col(text(C::MyNumberPurpose))
                .col(big_integer(C::CreateTime))
                .take(),
        )
        .await?;

        use audit_event::Column as A;
        m.create_table(
            Table::create()
                .table(audit_event::Entity)
                .col(text(A::Name).primary_key())
                .col(text(A::MunicipalityCode))
                .col(big_integer(A::Time))
                .col(text(A::Actor))
                .col(text(A::ActorRole))
                .col(integer(A::Action))
                .col(text(A::CardRead))
                .col(text(A::Visit))
                .col(text(A::Purpose))
                .col(text(A::Detail))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("identity_audit_events_time")
                .table(audit_event::Entity)
                .col(A::MunicipalityCode)
                .col(A::Time)
                .col(A::Name)
                .take(),
        )
        .await?;
        Ok(())
    }
}
