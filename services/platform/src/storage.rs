//! Database connections for both storage backends.
//!
//! SQLite is the embedded default: one file in the data directory, WAL
//! journal, and a pool of exactly one connection. SQLite serialises writers
//! anyway; one connection makes that explicit, so no transaction ever fails
//! with `SQLITE_BUSY` and the serialisation the queue relies on holds by
//! construction. PostgreSQL is the cluster backend, with a small pool per
//! process. Statement logging is off on both: statements carry personal data.
//!
//! SQLite checkpoints (copying the WAL back into the database file, with an
//! fsync) mostly run outside commits: a checkpointer task on a connection of
//! its own runs passive checkpoints twice a second, which never block a
//! writer. With SQLite's default (a checkpoint inside the commit that
//! crosses 1000 WAL pages) a commit stalled every request queued behind the
//! one connection several times a second. A passive checkpoint cannot
//! rewind the WAL while writes keep coming, so the commit path keeps a
//! backstop (`wal_autocheckpoint` at [`WAL_BACKSTOP_PAGES`]): under sustained
//! load the WAL stays bounded, and the checkpoint that commit runs finds
//! most pages already copied.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
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
    let mut checkpointed = None;
    if url.starts_with("sqlite:") {
        if let Some(dir) = sqlite_parent_dir(url) {
            std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(e.to_string()))?;
        }
        let file = sqlite_file(url);
        let own_checkpoints = file.is_some();
        checkpointed = file.map(|f| (f, url.to_owned()));
        // The one connection is a local file, never a dropped socket: a ping
        // before each use would only add a round trip to the connection's
        // thread on every transaction.
        options
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None::<Duration>)
            .max_lifetime(None::<Duration>)
            .map_sqlx_sqlite_opts(move |opts| {
                let opts = opts
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    .create_if_missing(true);
                if own_checkpoints {
                    opts.pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string())
                } else {
                    opts
                }
            });
    } else {
        // A connection in steady use is not pinged before each transaction
        // (a full round trip to the server, on the call path); one idle
        // for a second or more is, so after a quiet spell a server restart
        // is found by the ping, not by a request.
        //
        // A small pool: sqlx hands out idle connections oldest first, so
        // every connection a burst opened stays in rotation, and each
        // request then wakes a server process that last ran many requests
        // ago (its caches cold, its statements still on custom plans). The
        // queue's writers of an office take turns in the process anyway.
        // With 16, CallNext→board on the 2-core VM measured p50 1.16–1.18
        // and p99 2.9–3.9 ms; with 3, p50 1.02–1.09 and p99 2.1–2.4 ms
        // (three runs each, alternating); with 4, p50 0.95–1.01 and p99
        // 1.9–2.8 ms (four runs).
        options
            .max_connections(POSTGRES_POOL)
            .min_connections(1)
            .test_before_acquire_if_idle_for(Duration::from_secs(1));
    }
    let db = Database::connect(options).await?;
    if let Some((file, url)) = checkpointed {
        spawn_checkpointer(file, url);
    }
    Ok(db)
}

/// Files with a running checkpointer in this process: one is enough per
/// file, however many services open it.
static CHECKPOINTED: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// Removes its file from [`CHECKPOINTED`] when the task ends (or its
/// runtime is dropped).
struct Registered(PathBuf);

impl Drop for Registered {
    fn drop(&mut self) {
        CHECKPOINTED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Connections a process keeps to PostgreSQL at most, all its services
/// together; see [`connect`]. Each event-log listener (the queue's and the
/// POS's `LISTEN`) holds one of them for good, so the floor in one process
/// answers requests on two. Small pools are also what a shared cluster
/// needs: replicas × services × pool must stay under the server's
/// `max_connections` (100 by default).
pub const POSTGRES_POOL: u32 = 4;

/// WAL pages (4 KiB each) after which a commit checkpoints by itself.
pub const WAL_BACKSTOP_PAGES: u32 = 8000;

/// How often the checkpointer copies the WAL back.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

fn spawn_checkpointer(file: PathBuf, url: String) {
    if !CHECKPOINTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(file.clone())
    {
        return;
    }
    let registered = Registered(file);
    tokio::spawn(async move {
        let registered = registered;
        let options = match url.parse::<SqliteConnectOptions>() {
            Ok(options) => options
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                // Checkpoints copy pages file to file; keep this
                // connection's page cache small (64 KiB).
                .pragma("cache_size", "-64")
                .disable_statement_logging(),
            Err(error) => {
                tracing::warn!(%error, "sqlite checkpointer: bad url; commits checkpoint instead");
                return;
            }
        };
        let mut connection = match SqliteConnection::connect_with(&options).await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "sqlite checkpointer cannot connect");
                return;
            }
        };
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !registered.0.exists() {
                // The database was removed (a test's temporary directory).
                break;
            }
            let started = std::time::Instant::now();
            match sea_orm::sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut connection)
                .await
            {
                Ok(_) => CHECKPOINTS.observe(started.elapsed().as_secs_f64()),
                Err(error) => tracing::warn!(%error, "sqlite checkpoint failed; retrying"),
            }
        }
        let _ = connection.close().await;
    });
}

/// Durations of this process's passive checkpoints (one checkpointer per
/// file, whichever server started it).
static CHECKPOINTS: LazyLock<prometheus_client::metrics::histogram::Histogram> =
    LazyLock::new(crate::metrics::latency_histogram);

/// The checkpoint duration histogram, once a checkpointer ran in this
/// process.
pub fn checkpoint_histogram() -> Option<&'static prometheus_client::metrics::histogram::Histogram> {
    (!CHECKPOINTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty())
    .then(|| &*CHECKPOINTS)
}

/// The pool of `db`: connections open, idle among them, and the most it
/// opens.
pub fn pool_usage(db: &DatabaseConnection) -> (i64, i64, i64) {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    };
    (i64::from(size), i64::from(idle), i64::from(max))
}

/// The database file of a file-backed SQLite url.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
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

/// The span of one database operation (a statement, or the few statements
/// of one transaction), after OpenTelemetry's database conventions: named
/// by `summary` (`db.query.summary`, e.g. `SELECT queue_events`: the
/// operations and tables, never values), of kind client, with
/// `db.system.name` and `db.operation.name` (the summary's first word).
/// Debug level under the target `madoguchi::db`: exported by default
/// (`MADOGUCHI_TRACE`), never logged, and nearly free when not exported.
pub fn operation_span(db: &DatabaseConnection, summary: &'static str) -> tracing::Span {
    let system = match db.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    let operation = summary.split(' ').next().unwrap_or(summary);
    tracing::debug_span!(
        target: "madoguchi::db",
        "db",
        otel.name = summary,
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = operation,
        db.query.summary = summary,
    )
}

/// Which backend a connection talks to, for the few statements that differ.
pub fn backend(db: &DatabaseConnection) -> DbBackend {
    db.get_database_backend()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sea_orm::{ConnectionTrait, Statement};

    async fn autocheckpoint(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_autocheckpoint",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// `.cargo/config.toml` builds SQLite with its query planner stability
    /// guarantee; without it, every statement with a bound LIMIT (every
    /// sea-orm `.one()`) is compiled again on each execution.
    #[tokio::test]
    async fn sqlite_keeps_query_plans_stable() {
        let db = connect(&SecretString::from("sqlite::memory:".to_owned()))
            .await
            .unwrap();
        let options: Vec<String> = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "ENABLE_QPSG"),
            "SQLite built without SQLITE_ENABLE_QPSG (LIBSQLITE3_FLAGS in .cargo/config.toml): {options:?}"
        );
    }

    #[tokio::test]
    async fn commits_leave_checkpoints_to_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db");
        let url = SecretString::from(format!("sqlite://{}?mode=rwc", file.display()));
        let db = connect(&url).await.unwrap();
        assert_eq!(
            autocheckpoint(&db).await,
            i64::from(WAL_BACKSTOP_PAGES),
            "commits checkpoint only as a backstop"
        );
        db.execute_unprepared("CREATE TABLE t (v BLOB)")
            .await
            .unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        for _ in 0..300 {
            db.execute_unprepared("INSERT INTO t VALUES (randomblob(4000))")
                .await
                .unwrap();
        }
        // The checkpointer copies the pages into the database file; wait
        // for it (bounded), never a fixed sleep.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&file).unwrap().len() < before + 300 * 4000 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the checkpointer never copied the WAL back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A second connection to the same file does not start a second
        // checkpointer, and in-memory databases checkpoint as SQLite does.
        let again = connect(&url).await.unwrap();
        assert_eq!(autocheckpoint(&again).await, i64::from(WAL_BACKSTOP_PAGES));
        let memory = connect(&SecretString::from("sqlite::memory:".to_owned()))
            .await
            .unwrap();
        assert_eq!(autocheckpoint(&memory).await, 1000);
        assert_eq!(
            CHECKPOINTED
                .lock()
                .unwrap()
                .iter()
                .filter(|f| **f == file)
                .count(),
            1
        );
    }
}
