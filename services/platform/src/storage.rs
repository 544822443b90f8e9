//! Database connections for both storage backends.
//!
//! SQLite is the embedded default: one file in the data directory, WAL
//! journal, and a pool of exactly one connection. SQLite serialises writers
//! anyway; one connection makes that explicit, so no transaction ever fails
//! with `SQLITE_BUSY` and the serialisation the queue relies on holds by
//! construction. PostgreSQL is the cluster backend, with a small pool per
//! process. Statement logging is off on both: statements carry personal data.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use secrecy::{ExposeSecret, SecretString};

/// Connects to `url` (`sqlite://…` or `postgres://…`), creating the SQLite
/// file and its directory if needed.
pub async fn connect(url: &SecretString) -> Result<DatabaseConnection, DbErr> {
    let url = url.expose_secret();
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        if let Some(dir) = sqlite_parent_dir(url) {
            std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    .create_if_missing(true)
            });
    } else {
        options.max_connections(16).min_connections(1);
    }
    Database::connect(options).await
}

fn sqlite_parent_dir(url: &str) -> Option<&std::path::Path> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
}

/// Which backend a connection talks to, for the few statements that differ.
pub fn backend(db: &DatabaseConnection) -> DbBackend {
    db.get_database_backend()
}
