//! The sale journal: every transaction reference is written here, durably,
//! *before* the sale is sent to the terminal, and its outcome after. After
//! a lost response or a restart the driver finds the unsettled references
//! here and asks the terminal about them instead of charging again.
//!
//! [`SqliteJournal`] keeps it in SQLite through sea-orm (migration table
//! `gateway_terminal_migrations`), with `synchronous=FULL` so a committed
//! reference survives power loss, not only a crash.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, Database, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use super::frame::{SaleRef, Yen};

/// Where a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    /// Recorded; sent or about to be sent; outcome not known yet.
    Pending,
    /// Charged.
    Approved,
    /// Declined by the card issuer: not charged.
    Declined,
    /// Aborted before charging.
    Aborted,
    /// The terminal never processed it (refused, or unknown to it).
    NotCharged,
    /// 処理未了: the terminal itself does not know; resolved by staff.
    Unknown,
}

impl SaleState {
    fn code(self) -> i16 {
        match self {
            SaleState::Pending => 0,
            SaleState::Approved => 1,
            SaleState::Declined => 2,
            SaleState::Aborted => 3,
            SaleState::NotCharged => 4,
            SaleState::Unknown => 5,
        }
    }

    fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            0 => SaleState::Pending,
            1 => SaleState::Approved,
            2 => SaleState::Declined,
            3 => SaleState::Aborted,
            4 => SaleState::NotCharged,
            5 => SaleState::Unknown,
            _ => return None,
        })
    }

    /// Whether the outcome is final (no enquiry will change it).
    pub fn is_settled(self) -> bool {
        !matches!(self, SaleState::Pending | SaleState::Unknown)
    }
}

/// One journal row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The reference.
    pub reference: SaleRef,
    /// The amount.
    pub amount: Yen,
    /// Where it stands.
    pub state: SaleState,
    /// Authorisation code once approved.
    pub auth_code: Option<String>,
}

/// A journal failure: the driver sends nothing it could not record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sale journal: {0}")]
pub struct JournalError(pub String);

impl From<DbErr> for JournalError {
    fn from(e: DbErr) -> Self {
        Self(e.to_string().to_lowercase())
    }
}

/// Durable record of sales by reference.
#[async_trait]
pub trait SaleJournal: Send + Sync + std::fmt::Debug {
    /// Records a new pending sale and returns `None`; if the reference is
    /// already known, changes nothing and returns the existing entry.
    async fn begin(
        &self,
        reference: &SaleRef,
        amount: Yen,
    ) -> Result<Option<JournalEntry>, JournalError>;
    /// Records an outcome.
    async fn settle(
        &self,
        reference: &SaleRef,
        state: SaleState,
        auth_code: Option<&str>,
    ) -> Result<(), JournalError>;
    /// The entry for `reference`.
    async fn get(&self, reference: &SaleRef) -> Result<Option<JournalEntry>, JournalError>;
    /// Pending and unknown entries, oldest first.
    async fn unsettled(&self) -> Result<Vec<JournalEntry>, JournalError>;
}

/// The journal table's entity.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// Row of `gateway_terminal_sales`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gateway_terminal_sales")]
    pub struct Model {
        /// Transaction reference.
        #[sea_orm(primary_key, auto_increment = false)]
        pub reference: String,
        /// Amount in yen.
        pub amount_yen: i64,
        /// `SaleState` code.
        pub state: i16,
        /// Authorisation code once approved.
        pub auth_code: Option<String>,
        /// Insertion order, microseconds since the epoch.
        pub created_micros: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The journal's migrations, in `gateway_terminal_migrations`.
pub mod migration {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::{big_integer, small_integer, text, text_null};

    use super::entity;

    /// Runs the journal's migrations.
    #[derive(Debug)]
    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(M0001Initial)]
        }

        fn migration_table_name() -> DynIden {
            "gateway_terminal_migrations".into_iden()
        }
    }

    #[derive(Debug)]
    struct M0001Initial;

    impl MigrationName for M0001Initial {
        fn name(&self) -> &str {
            "m0001_terminal_sales"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0001Initial {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            use entity::Column as C;
            m.create_table(
                Table::create()
                    .table(entity::Entity)
                    .col(text(C::Reference).primary_key())
                    .col(big_integer(C::AmountYen))
                    .col(small_integer(C::State))
                    .col(text_null(C::AuthCode))
                    .col(big_integer(C::CreatedMicros))
                    .take(),
            )
            .await
        }
    }
}

/// The journal in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteJournal {
    db: DatabaseConnection,
}

impl SqliteJournal {
    /// Opens (creating) the SQLite file at `path` with `synchronous=FULL`
    /// and runs the migrations.
    pub async fn open(path: &std::path::Path) -> Result<Self, JournalError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .max_connections(1)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    .create_if_missing(true)
            });
        let db = Database::connect(options).await?;
        Self::new(db).await
    }

    /// Uses an open connection (e.g. the gateway's local store) and runs
    /// the migrations.
    pub async fn new(db: DatabaseConnection) -> Result<Self, JournalError> {
        migration::Migrator::up(&db, None).await?;
        Ok(Self { db })
    }
}

fn entry(model: entity::Model) -> Result<JournalEntry, JournalError> {
    let bad = || JournalError(format!("corrupt journal row {:?}", model.reference));
    Ok(JournalEntry {
        reference: SaleRef::parse(&model.reference).ok_or_else(bad)?,
        amount: u64::try_from(model.amount_yen)
            .ok()
            .and_then(Yen::new)
            .ok_or_else(bad)?,
        state: SaleState::from_code(model.state).ok_or_else(bad)?,
        auth_code: model.auth_code.clone(),
    })
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[async_trait]
impl SaleJournal for SqliteJournal {
    async fn begin(
        &self,
        reference: &SaleRef,
        amount: Yen,
    ) -> Result<Option<JournalEntry>, JournalError> {
        let txn = self.db.begin().await?;
        let existing = entity::Entity::find_by_id(reference.as_str().to_owned())
            .one(&txn)
            .await?;
        if let Some(model) = existing {
            return entry(model).map(Some);
        }
        let amount_yen =
            i64::try_from(amount.get()).map_err(|_| JournalError("amount out of range".into()))?;
        entity::Entity::insert(entity::ActiveModel {
            reference: Set(reference.as_str().to_owned()),
            amount_yen: Set(amount_yen),
            state: Set(SaleState::Pending.code()),
            auth_code: Set(None),
            created_micros: Set(now_micros()),
        })
        .on_conflict(
            OnConflict::column(entity::Column::Reference)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(None)
    }

    async fn settle(
        &self,
        reference: &SaleRef,
        state: SaleState,
        auth_code: Option<&str>,
    ) -> Result<(), JournalError> {
        let result = entity::Entity::update_many()
            .col_expr(entity::Column::State, state.code().into())
            .col_expr(
                entity::Column::AuthCode,
                auth_code.map(str::to_owned).into(),
            )
            .filter(entity::Column::Reference.eq(reference.as_str()))
            .exec(&self.db)
            .await?;
        if result.rows_affected == 0 {
            return Err(JournalError(format!("no sale {reference} in the journal")));
        }
        Ok(())
    }

    async fn get(&self, reference: &SaleRef) -> Result<Option<JournalEntry>, JournalError> {
        entity::Entity::find_by_id(reference.as_str().to_owned())
            .one(&self.db)
            .await?
            .map(entry)
            .transpose()
    }

    async fn unsettled(&self) -> Result<Vec<JournalEntry>, JournalError> {
        entity::Entity::find()
            .filter(
                entity::Column::State.is_in([SaleState::Pending.code(), SaleState::Unknown.code()]),
            )
            .order_by_asc(entity::Column::CreatedMicros)
            .all(&self.db)
            .await?
            .into_iter()
            .map(entry)
            .collect()
    }
}
