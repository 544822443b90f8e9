//! Support for tests that need a real PostgreSQL. Tests use a server named
//! by `MADOGUCHI_TEST_POSTGRES_URL` (a role that may create databases;
//! `scripts/test.sh` starts one) and fail, never skip, without it.

use sea_orm::{ConnectionTrait, Database, DbErr};

/// The variable that names the test PostgreSQL server.
pub const POSTGRES_URL_VARIABLE: &str = "MADOGUCHI_TEST_POSTGRES_URL";

/// Creates an empty database on the test server and returns its URL.
///
/// # Panics
/// When the variable is unset or the server refuses: a test that cannot
/// reach PostgreSQL must fail.
pub async fn fresh_postgres_database() -> String {
    let admin = std::env::var(POSTGRES_URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VARIABLE} is not set: run the suite with scripts/test.sh, \
             which starts PostgreSQL, or point it at a role that may CREATE DATABASE"
        )
    });
    let name = format!("madoguchi_test_{}", uuid::Uuid::new_v4().simple());
    let db = Database::connect(admin.as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let _ = db.close().await;
    let Some(slash) = admin.rfind('/') else {
        panic!("{POSTGRES_URL_VARIABLE} has no database path");
    };
    let (base, rest) = admin.split_at(slash);
    let query = rest.find('?').map_or("", |q| &rest[q..]);
    format!("{base}/{name}{query}")
}

/// Drops a database [`fresh_postgres_database`] made (its URL), closing
/// any connection still open to it. For tools such as the load test that
/// create one per run; the test suite's are dropped by `scripts/test.sh`
/// before the next run.
///
/// # Errors
/// When the variable is unset or the server refuses.
pub async fn drop_postgres_database(url: &str) -> Result<(), DbErr> {
    let admin = std::env::var(POSTGRES_URL_VARIABLE)
        .map_err(|_| DbErr::Custom(format!("{POSTGRES_URL_VARIABLE} is not set")))?;
    let path = url.rsplit('/').next().unwrap_or_default();
    let name = path.split('?').next().unwrap_or_default();
    if !name.starts_with("madoguchi_test_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(DbErr::Custom(format!("not a test database: {name}")));
    }
    let db = Database::connect(admin.as_str()).await?;
    let dropped = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    let _ = db.close().await;
    dropped.map(|_| ())
}
