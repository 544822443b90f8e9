//! The queue's schema migrations, tracked in their own table
//! (`queue_migrations`) so that several services can share one database
//! without sharing a migration history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, boolean, integer, small_integer, text};

use super::entities::{
    category, counter, device, event, lease, leased_number, leg, number_counter, office, request,
    visit,
};

/// Runs the queue's migrations.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002OfflineAndDevices),
            Box::new(M0003EventTraceContext),
        ]
    }

    fn migration_table_name() -> DynIden {
        "queue_migrations".into_iden()
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

fn binary<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).binary().not_null().take()
}

fn big_integer_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).big_integer().null().take()
}

fn text_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).text().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use office::Column as O;
        m.create_table(
            Table::create()
                .table(office::Entity)
                .col(text(O::Name).primary_key())
                .col(text(O::MunicipalityCode))
                .col(text(O::NameJa))
                .col(text(O::NameEn))
                .col(integer(O::RecallLimit))
                .col(integer(O::MaxNumber))
                .col(integer(O::CounterOpenMinutes))
                .col(big_integer(O::LastSequence))
                .take(),
        )
        .await?;

        use category::Column as C;
        m.create_table(
            Table::create()
                .table(category::Entity)
                .col(text(C::Name).primary_key())
                .col(text(C::Office))
                .col(integer(C::Position))
                .col(text(C::Prefix))
                .col(text(C::NameJa))
                .col(text(C::NameEn))
                .col(text(C::Colour))
                .col(integer(C::DailyQuota))
                .col(integer(C::DefaultServiceMinutes))
                .col(boolean(C::Active))
                .take(),
        )
        .await?;

        use counter::Column as K;
        m.create_table(
            Table::create()
                .table(counter::Entity)
                .col(text(K::Name).primary_key())
                .col(text(K::Office))
                .col(integer(K::Position))
                .col(text(K::DisplayNumber))
                .col(integer(K::Floor))
                .col(text(K::Colour))
                .col(text(K::Categories))
                .col(boolean(K::Active))
                .take(),
        )
        .await?;

        use number_counter::Column as N;
        m.create_table(
            Table::create()
                .table(number_counter::Entity)
                .col(text(N::Category))
                .col(integer(N::BusinessDay))
                .col(integer(N::LastNumber))
                .col(integer(N::IssuedCount))
                .primary_key(Index::create().col(N::Category).col(N::BusinessDay))
                .take(),
        )
        .await?;

        use visit::Column as V;
        m.create_table(
            Table::create()
                .table(visit::Entity)
                .col(text(V::Id).primary_key())
                .col(text(V::Office))
                .col(text(V::IssueCategory))
                .col(integer(V::BusinessDay))
                .col(integer(V::Number))
                .col(text(V::DisplayNumber))
                .col(boolean(V::Priority))
                .col(small_integer(V::State))
                .col(big_integer(V::IssuedAt))
                .col(big_integer(V::IssueSequence))
                .col(integer(V::CurrentLeg))
                .col(text(V::CurrentCategory))
                .col(text_null(V::CurrentCounter))
                .col(integer(V::RecallCount))
                .col(big_integer(V::Version))
                .col(big_integer(V::LastSequence))
                .take(),
        )
        .await?;
        for (name, columns, unique) in [
            (
                "queue_visits_by_day",
                vec![V::Office, V::BusinessDay, V::IssueSequence],
                true,
            ),
            (
                "queue_visits_number_in_use",
                vec![V::IssueCategory, V::Number, V::State],
                false,
            ),
            (
                "queue_visits_at_counter",
                vec![V::CurrentCounter, V::State],
                false,
            ),
        ] {
            let mut index = Index::create().name(name).table(visit::Entity).take();
            for column in columns {
                index.col(column);
            }
            if unique {
                index.unique();
            }
            m.create_index(index).await?;
        }

        use leg::Column as L;
        m.create_table(
            Table::create()
                .table(leg::Entity)
                .col(text(L::VisitId))
                .col(integer(L::LegIndex))
                .col(text(L::Category))
                .col(small_integer(L::State))
                .col(small_integer(L::PriorityRank))
                .col(big_integer(L::ArrivalSequence))
                .col(text_null(L::Counter))
                .col(big_integer(L::EnqueuedAt))
                .col(big_integer_null(L::CalledAt))
                .col(big_integer_null(L::StartedAt))
                .col(big_integer_null(L::EndedAt))
                .col(small_integer(L::Outcome))
                .primary_key(Index::create().col(L::VisitId).col(L::LegIndex))
                .take(),
        )
        .await?;
        // CallNext reads the head of one category's waiting line through
        // this partial index: a seek whatever the queue length, and the
        // index holds only waiting legs, so it stays small all day.
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX queue_legs_waiting ON queue_legs \
                 (category, priority_rank, arrival_sequence) WHERE state = 1",
            )
            .await?;
        m.create_index(
            Index::create()
                .name("queue_legs_recent_service")
                .table(leg::Entity)
                .col(L::Category)
                .col(L::EndedAt)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("queue_legs_recent_calls")
                .table(leg::Entity)
                .col(L::Category)
                .col(L::CalledAt)
                .take(),
        )
        .await?;

        use event::Column as E;
        m.create_table(
            Table::create()
                .table(event::Entity)
                .col(text(E::Office))
                .col(big_integer(E::Sequence))
                .col(small_integer(E::EventType))
                .col(text(E::VisitId))
                .col(big_integer(E::CreatedAt))
                .col(binary(E::Payload))
                .primary_key(Index::create().col(E::Office).col(E::Sequence))
                .take(),
        )
        .await?;

        use request::Column as R;
        m.create_table(
            Table::create()
                .table(request::Entity)
                .col(text(R::Office))
                .col(text(R::RequestId))
                .col(text(R::Fingerprint))
                .col(text(R::VisitId))
                .col(big_integer(R::CreatedAt))
                .primary_key(Index::create().col(R::Office).col(R::RequestId))
                .take(),
        )
        .await?;
        Ok(())
    }
}

/// The trace context of the write that committed each event, kept beside
/// its payload (see `WatchOfficeResponse.trace_parent`). Earlier events,
/// and events of untraced writes, have none.
#[derive(Debug)]
struct M0003EventTraceContext;

impl MigrationName for M0003EventTraceContext {
    fn name(&self) -> &str {
        "m0003_event_trace_context"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003EventTraceContext {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(event::Entity)
                .add_column(text_null(event::Column::TraceParent))
                .take(),
        )
        .await
    }
}

/// Offline ticketing (number leases, imported tickets placed by issue
/// time) and device health.
#[derive(Debug)]
struct M0002OfflineAndDevices;

impl MigrationName for M0002OfflineAndDevices {
    fn name(&self) -> &str {
        "m0002_offline_and_devices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002OfflineAndDevices {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use visit::Column as V;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(V::IssuedOffline)
                .boolean()
                .not_null()
                .default(false)
                .take(),
            big_integer_null(V::ImportedAt),
            text_null(V::IssuingDevice),
        ] {
            m.alter_table(
                Table::alter()
                    .table(visit::Entity)
                    .add_column(column)
                    .take(),
            )
            .await?;
        }
        use leg::Column as L;
        m.alter_table(
            Table::alter()
                .table(leg::Entity)
                .add_column(
                    ColumnDef::new(L::ArrivalOffset)
                        .big_integer()
                        .not_null()
                        .default(0)
                        .take(),
                )
                .take(),
        )
        .await?;
        // The waiting index gains the tie-break so CallNext's ordering is
        // still one seek.
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX queue_legs_waiting")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX queue_legs_waiting ON queue_legs \
             (category, priority_rank, arrival_sequence, arrival_offset) WHERE state = 1",
        )
        .await?;

        use lease::Column as S;
        m.create_table(
            Table::create()
                .table(lease::Entity)
                .col(text(S::Id).primary_key())
                .col(text(S::Office))
                .col(text(S::Category))
                .col(text(S::Device))
                .col(integer(S::BusinessDay))
                .col(text(S::Numbers))
                .col(big_integer(S::CreatedAt))
                .take(),
        )
        .await?;
        use leased_number::Column as N;
        m.create_table(
            Table::create()
                .table(leased_number::Entity)
                .col(text(N::Category))
                .col(integer(N::BusinessDay))
                .col(integer(N::Number))
                .col(text(N::LeaseId))
                .col(text_null(N::VisitId))
                .primary_key(
                    Index::create()
                        .col(N::Category)
                        .col(N::BusinessDay)
                        .col(N::Number),
                )
                .take(),
        )
        .await?;
        use device::Column as D;
        m.create_table(
            Table::create()
                .table(device::Entity)
                .col(text(D::Name).primary_key())
                .col(text(D::Office))
                .col(small_integer(D::Kind))
                .col(boolean(D::Connected))
                .col(boolean(D::PaperNearEnd))
                .col(boolean(D::PaperOut))
                .col(boolean(D::CoverOpen))
                .col(text(D::LastError))
                .col(big_integer(D::ObservedAt))
                .col(big_integer(D::ReportedAt))
                .col(text(D::Gateway))
                .take(),
        )
        .await?;
        Ok(())
    }
}
