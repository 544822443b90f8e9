//! The POS schema, tracked in its own migration table (`pos_migrations`)
//! so that it shares a database with the other services without sharing a
//! migration history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, small_integer, text};

use super::entities::{event, office, order, order_line, payment, refund, register, session};

/// Runs the POS migrations.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }

    fn migration_table_name() -> DynIden {
        "pos_migrations".into_iden()
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

fn integer_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).integer().null().take()
}

fn text_null<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column).text().null().take()
}

async fn index<E: IntoIden + Copy, C: IntoIden>(
    m: &SchemaManager<'_>,
    name: &str,
    table: E,
    columns: Vec<C>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create().name(name).table(table).take();
    for column in columns {
        index.col(column);
    }
    if unique {
        index.unique();
    }
    m.create_index(index).await
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use office::Column as O;
        m.create_table(
            Table::create()
                .table(office::Entity)
                .col(text(O::Name).primary_key())
                .col(text(O::NameJa))
                .col(big_integer(O::LastReceipt))
                .take(),
        )
        .await?;

        use register::Column as R;
        m.create_table(
            Table::create()
                .table(register::Entity)
                .col(text(R::Name).primary_key())
                .col(text(R::Office))
                .col(big_integer(R::LastSequence))
                .col(text_null(R::OpenSession))
                .take(),
        )
        .await?;

        use session::Column as S;
        m.create_table(
            Table::create()
                .table(session::Entity)
                .col(text(S::Name).primary_key())
                .col(text(S::Register))
                .col(text(S::Office))
                .col(small_integer(S::State))
                .col(big_integer(S::FloatYen))
                .col(big_integer_null(S::CountedYen))
                .col(big_integer_null(S::ExpectedYen))
                .col(integer(S::BusinessDay))
                .col(big_integer(S::OpenedAt))
                .col(big_integer_null(S::ClosedAt))
                .col(text(S::OpenedBy))
                .col(text_null(S::ClosedBy))
                .take(),
        )
        .await?;
        index(
            m,
            "pos_sessions_by_day",
            session::Entity,
            vec![S::Office, S::BusinessDay],
            false,
        )
        .await?;

        use order::Column as D;
        m.create_table(
            Table::create()
                .table(order::Entity)
                .col(text(D::Name).primary_key())
                .col(text(D::Office))
                .col(text_null(D::CertificateRequest))
                .col(big_integer(D::TotalYen))
                .col(big_integer(D::CreatedAt))
                .col(text(D::CreatedBy))
                .col(text_null(D::RequestId))
                .col(text(D::Fingerprint))
                .col(big_integer(D::Version))
                .take(),
        )
        .await?;
        // NULLs are distinct in unique indexes on both backends: orders
        // without a certificate request or a request id do not collide.
        index(
            m,
            "pos_orders_certificate_request",
            order::Entity,
            vec![D::CertificateRequest],
            true,
        )
        .await?;
        index(
            m,
            "pos_orders_request_id",
            order::Entity,
            vec![D::Office, D::RequestId],
            true,
        )
        .await?;

        use order_line::Column as L;
        m.create_table(
            Table::create()
                .table(order_line::Entity)
                .col(text(L::OrderName))
                .col(integer(L::LineIndex))
                .col(text(L::FeeItem))
                .col(text(L::NameJa))
                .col(big_integer(L::UnitFeeYen))
                .col(integer(L::Copies))
                .col(big_integer(L::AmountYen))
                .col(text(L::RevenueAccount))
                .col(text_null(L::ExemptionReason))
                .primary_key(Index::create().col(L::OrderName).col(L::LineIndex))
                .take(),
        )
        .await?;

        use payment::Column as P;
        m.create_table(
            Table::create()
                .table(payment::Entity)
                .col(text(P::Name).primary_key())
                .col(text(P::OrderName))
                .col(text(P::Office))
                .col(text(P::Register))
                .col(text(P::Session))
                .col(small_integer(P::Method))
                .col(small_integer(P::State))
                .col(big_integer(P::AmountYen))
                .col(big_integer(P::TenderedYen))
                .col(big_integer(P::ChangeYen))
                .col(text(P::RequestId))
                .col(text(P::Fingerprint))
                .col(text_null(P::TerminalReference))
                .col(text(P::TerminalResultCode))
                .col(text(P::ApprovalNumber))
                .col(text(P::TerminalTrace))
                .col(text_null(P::ReceiptNumber))
                .col(integer(P::ReceiptPrints))
                .col(integer(P::BusinessDay))
                .col(big_integer(P::CreatedAt))
                .col(big_integer_null(P::ApprovedAt))
                .col(big_integer_null(P::SettledAt))
                .col(text(P::CreatedBy))
                .col(text(P::ResolvedBy))
                .col(text(P::ResolutionNote))
                .take(),
        )
        .await?;
        index(
            m,
            "pos_payments_request_id",
            payment::Entity,
            vec![P::Office, P::RequestId],
            true,
        )
        .await?;
        index(
            m,
            "pos_payments_terminal_reference",
            payment::Entity,
            vec![P::TerminalReference],
            true,
        )
        .await?;
        index(
            m,
            "pos_payments_by_day",
            payment::Entity,
            vec![P::Office, P::BusinessDay],
            false,
        )
        .await?;
        index(
            m,
            "pos_payments_by_order",
            payment::Entity,
            vec![P::OrderName],
            false,
        )
        .await?;
        // One order can never be paid twice: at most one payment per order
        // may be pending (1), in progress (2), approved (3) or unknown (6).
        // The service checks this under the order's row lock; this index is
        // the database's own guarantee should any code path forget to.
        m.get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX pos_payments_one_live ON pos_payments (order_name) \
                 WHERE state IN (1, 2, 3, 6)",
            )
            .await?;

        use refund::Column as F;
        m.create_table(
            Table::create()
                .table(refund::Entity)
                .col(text(F::Name).primary_key())
                .col(text(F::Payment))
                .col(text(F::OrderName))
                .col(text(F::Office))
                .col(small_integer(F::Kind))
                .col(small_integer(F::State))
                .col(big_integer(F::AmountYen))
                .col(integer_null(F::LineIndex))
                .col(text(F::Reason))
                .col(text(F::RequestedBy))
                .col(text(F::Register))
                .col(text(F::Session))
                .col(small_integer(F::Method))
                .col(text_null(F::TerminalReference))
                .col(integer(F::BusinessDay))
                .col(big_integer(F::CreatedAt))
                .col(big_integer_null(F::SettledAt))
                .col(text(F::RequestId))
                .col(text(F::Fingerprint))
                .take(),
        )
        .await?;
        index(
            m,
            "pos_refunds_request_id",
            refund::Entity,
            vec![F::Office, F::RequestId],
            true,
        )
        .await?;
        index(
            m,
            "pos_refunds_terminal_reference",
            refund::Entity,
            vec![F::TerminalReference],
            true,
        )
        .await?;
        index(
            m,
            "pos_refunds_by_payment",
            refund::Entity,
            vec![F::Payment],
            false,
        )
        .await?;
        index(
            m,
            "pos_refunds_by_day",
            refund::Entity,
            vec![F::Office, F::BusinessDay],
            false,
        )
        .await?;

        use event::Column as E;
        m.create_table(
            Table::create()
                .table(event::Entity)
                .col(text(E::Register))
                .col(big_integer(E::Sequence))
                .col(big_integer(E::CreatedAt))
                .col(binary(E::Payload))
                .primary_key(Index::create().col(E::Register).col(E::Sequence))
                .take(),
        )
        .await?;
        Ok(())
    }
}
