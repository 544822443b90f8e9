//! The forms schema, tracked in its own migration table
//! (`forms_migrations`) so services can share one database without sharing
//! a migration history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, small_integer, text};

use super::entities::{item, request, signature, touch, visit};

/// Runs the forms migrations.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }

    fn migration_table_name() -> DynIden {
        "forms_migrations".into_iden()
    }
}

#[derive(Debug)]
struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn binary<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).binary().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use visit::Column as V;
        m.create_table(
            Table::create()
                .table(visit::Entity)
                .col(text(V::Name).primary_key())
                .col(text(V::Office))
                .col(integer(V::BusinessDay))
                .col(small_integer(V::State))
                .col(big_integer(V::StartedAt))
                .col(ColumnDef::new(V::EndedAt).big_integer().null().take())
                .col(big_integer(V::Version))
                .col(ColumnDef::new(V::RequestId).text().null().take())
                .col(binary(V::Payload))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("forms_visits_by_day")
                .table(visit::Entity)
                .col(V::Office)
                .col(V::BusinessDay)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("forms_visits_request_id")
                .table(visit::Entity)
                .col(V::Office)
                .col(V::RequestId)
                .unique()
                .take(),
        )
        .await?;

        use item::Column as I;
        m.create_table(
            Table::create()
                .table(item::Entity)
                .col(text(I::Visit))
                .col(text(I::Procedure))
                .col(integer(I::Position))
                .col(small_integer(I::Status))
                .col(binary(I::Payload))
                .primary_key(Index::create().col(I::Visit).col(I::Procedure))
                .take(),
        )
        .await?;

        use request::Column as R;
        m.create_table(
            Table::create()
                .table(request::Entity)
                .col(text(R::Name).primary_key())
                .col(text(R::Visit))
                .col(small_integer(R::State))
                .col(big_integer(R::CreatedAt))
                .col(binary(R::Payload))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("forms_requests_by_visit")
                .table(request::Entity)
                .col(R::Visit)
                .take(),
        )
        .await?;

        use signature::Column as S;
        m.create_table(
            Table::create()
                .table(signature::Entity)
                .col(text(S::Name).primary_key())
                .col(text(S::Visit))
                .col(big_integer(S::CreatedAt))
                .col(binary(S::Payload))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("forms_signatures_by_visit")
                .table(signature::Entity)
                .col(S::Visit)
                .take(),
        )
        .await?;

        use touch::Column as T;
        m.create_table(
            Table::create()
                .table(touch::Entity)
                .col(text(T::Visit))
                .col(text(T::Staff))
                .col(big_integer(T::FirstAt))
                .primary_key(Index::create().col(T::Visit).col(T::Staff))
                .take(),
        )
        .await?;
        Ok(())
    }
}
