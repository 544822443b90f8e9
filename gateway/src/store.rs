//! The gateway's local state in SQLite, so that a restart loses nothing:
//!
//! - the position in each office's event log (`after_sequence`), written
//!   after each event was handled, so a restart or reconnect neither
//!   misses nor repeats a call;
//! - number leases, and which of their numbers were used;
//! - the offline outbox: every ticket printed while the cluster was
//!   unreachable, until the cluster confirmed its import.
//!
//! One connection (the platform's SQLite pool has exactly one), so each
//! statement is atomic against the others; taking a number is a single
//! `UPDATE … RETURNING`, so two presses never get the same number.

use chrono::{DateTime, Utc};
use madoguchi_platform::error::ServiceError;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

/// Schema, created on open (idempotent).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS gateway_cursor (
        office TEXT PRIMARY KEY,
        after_sequence INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS gateway_leases (
        name TEXT PRIMARY KEY,
        kiosk TEXT NOT NULL,
        category TEXT NOT NULL,
        business_day TEXT NOT NULL,
        prefix TEXT NOT NULL,
        numbers TEXT NOT NULL,
        size INTEGER NOT NULL,
        next_index INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS gateway_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        offline_id TEXT NOT NULL UNIQUE,
        kiosk TEXT NOT NULL,
        lease TEXT NOT NULL,
        category TEXT NOT NULL,
        number INTEGER NOT NULL,
        display_number TEXT NOT NULL,
        priority INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    )",
];

/// The state of an outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Number taken, printing under way. After a crash it is not known
    /// whether the paper came out, so such entries are imported: a ticket
    /// a resident may hold is never lost (at worst it is called once and
    /// marked no-show).
    Printing,
    /// Printed; waiting for import.
    Printed,
    /// The printer failed: never handed out, never imported.
    Void,
    /// The cluster confirmed the import.
    Imported,
    /// The cluster refused it for good (reason in `note`).
    Rejected,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Printing => "printing",
            Self::Printed => "printed",
            Self::Void => "void",
            Self::Imported => "imported",
            Self::Rejected => "rejected",
        }
    }
}

/// A ticket printed offline, waiting for import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxTicket {
    /// Order of printing.
    pub seq: i64,
    /// Idempotency key of the import.
    pub offline_id: String,
    /// Kiosk that printed it.
    pub kiosk: String,
    /// Lease resource name.
    pub lease: String,
    /// Category resource name.
    pub category: String,
    /// Printed number.
    pub number: u32,
    /// Printed number with prefix.
    pub display_number: String,
    /// Priority.
    pub priority: bool,
    /// When it was printed.
    pub issued_at: DateTime<Utc>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    /// Resource name.
    pub name: String,
    /// Business day, `YYYY-MM-DD`.
    pub business_day: String,
    /// Prefix letter.
    pub prefix: String,
    /// Numbers not yet used.
    pub remaining: u32,
}

/// A number taken from a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenNumber {
    /// Lease resource name.
    pub lease: String,
    /// The number.
    pub number: u32,
    /// With prefix, e.g. `A014`.
    pub display_number: String,
}

/// The local store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    db: DatabaseConnection,
}

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

impl LocalStore {
    /// Opens (creating) the SQLite file at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, ServiceError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| ServiceError::Internal(format!("state dir: {e}")))?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = madoguchi_platform::storage::connect(&secrecy::SecretString::from(url)).await?;
        for sql in SCHEMA {
            db.execute_unprepared(sql).await?;
        }
        Ok(Self { db })
    }

    /// The underlying connection (the payment terminal's sale journal
    /// lives in the same file, in its own tables).
    pub fn connection(&self) -> DatabaseConnection {
        self.db.clone()
    }

    /// The last event sequence handled for `office`, if any.
    pub async fn cursor(&self, office: &str) -> Result<Option<u64>, ServiceError> {
        let row = self
            .db
            .query_one_raw(stmt(
                "SELECT after_sequence FROM gateway_cursor WHERE office = ?",
                [office.into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => {
                Some(u64::try_from(row.try_get::<i64>("", "after_sequence")?).unwrap_or(0))
            }
            None => None,
        })
    }

    /// Records that every event up to `sequence` was handled.
    pub async fn set_cursor(&self, office: &str, sequence: u64) -> Result<(), ServiceError> {
        self.db
            .execute_raw(stmt(
                "INSERT INTO gateway_cursor (office, after_sequence) VALUES (?, ?)
                 ON CONFLICT (office) DO UPDATE SET after_sequence = excluded.after_sequence",
                [
                    office.into(),
                    i64::try_from(sequence).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Stores a lease the cluster granted (once; a repeat is ignored).
    pub async fn add_lease(
        &self,
        kiosk: &str,
        lease: &madoguchi_proto::queue::v1::NumberLease,
        business_day: &str,
    ) -> Result<(), ServiceError> {
        let numbers: Vec<String> = lease.numbers.iter().map(ToString::to_string).collect();
        self.db
            .execute_raw(stmt(
                "INSERT INTO gateway_leases (name, kiosk, category, business_day, prefix, numbers, size)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [
                    lease.name.clone().into(),
                    kiosk.into(),
                    lease.category.clone().into(),
                    business_day.into(),
                    lease.prefix.clone().into(),
                    numbers.join(",").into(),
                    i64::try_from(lease.numbers.len()).unwrap_or(0).into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Unused numbers of `kiosk`'s leases for `category` on `business_day`.
    pub async fn remaining(
        &self,
        kiosk: &str,
        category: &str,
        business_day: &str,
    ) -> Result<u32, ServiceError> {
        let row = self
            .db
            .query_one_raw(stmt(
                "SELECT COALESCE(SUM(size - next_index), 0) AS left FROM gateway_leases
                 WHERE kiosk = ? AND category = ? AND business_day = ?",
                [kiosk.into(), category.into(), business_day.into()],
            ))
            .await?;
        let left = match row {
            Some(row) => row.try_get::<i64>("", "left")?,
            None => 0,
        };
        Ok(u32::try_from(left).unwrap_or(0))
    }

    /// Takes the next unused number of `kiosk`'s oldest lease for
    /// `category` on `business_day`: one atomic statement.
    pub async fn take_number(
        &self,
        kiosk: &str,
        category: &str,
        business_day: &str,
    ) -> Result<Option<TakenNumber>, ServiceError> {
        let row = self
            .db
            .query_one_raw(stmt(
                "UPDATE gateway_leases SET next_index = next_index + 1
                 WHERE name = (SELECT name FROM gateway_leases
                               WHERE kiosk = ? AND category = ? AND business_day = ?
                                 AND next_index < size
                               ORDER BY rowid LIMIT 1)
                 RETURNING name, prefix, numbers, next_index",
                [kiosk.into(), category.into(), business_day.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let name: String = row.try_get("", "name")?;
        let prefix: String = row.try_get("", "prefix")?;
        let numbers: String = row.try_get("", "numbers")?;
        let index: i64 = row.try_get("", "next_index")?;
        let number = numbers
            .split(',')
            .nth(usize::try_from(index - 1).unwrap_or(usize::MAX))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| ServiceError::Internal("stored lease is malformed".into()))?;
        Ok(Some(TakenNumber {
            lease: name,
            display_number: format!("{prefix}{number:03}"),
            number,
        }))
    }

    /// Drops leases of days other than `business_day`: the cluster
    /// released their numbers when the day ended.
    pub async fn drop_old_leases(&self, business_day: &str) -> Result<(), ServiceError> {
        self.db
            .execute_raw(stmt(
                "DELETE FROM gateway_leases WHERE business_day <> ?",
                [business_day.into()],
            ))
            .await?;
        Ok(())
    }

    /// Records a ticket about to be printed offline — before printing, so
    /// its number is never reused even if the gateway dies mid-print.
    pub async fn outbox_add(&self, ticket: &OutboxTicket) -> Result<(), ServiceError> {
        self.db
            .execute_raw(stmt(
                "INSERT INTO gateway_outbox (offline_id, kiosk, lease, category, number,
                     display_number, priority, issued_at, state)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    ticket.offline_id.clone().into(),
                    ticket.kiosk.clone().into(),
                    ticket.lease.clone().into(),
                    ticket.category.clone().into(),
                    i64::from(ticket.number).into(),
                    ticket.display_number.clone().into(),
                    i64::from(ticket.priority).into(),
                    ticket.issued_at.timestamp_micros().into(),
                    OutboxState::Printing.as_str().into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Moves an outbox entry to `state`.
    pub async fn outbox_mark(
        &self,
        offline_id: &str,
        state: OutboxState,
        note: &str,
    ) -> Result<(), ServiceError> {
        self.db
            .execute_raw(stmt(
                "UPDATE gateway_outbox SET state = ?, note = ? WHERE offline_id = ?",
                [state.as_str().into(), note.into(), offline_id.into()],
            ))
            .await?;
        Ok(())
    }

    /// Tickets to import (printed, or interrupted while printing), in
    /// printing order, at most `limit`.
    pub async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxTicket>, ServiceError> {
        let rows = self
            .db
            .query_all_raw(stmt(
                "SELECT seq, offline_id, kiosk, lease, category, number, display_number,
                        priority, issued_at
                 FROM gateway_outbox WHERE state IN ('printed', 'printing')
                 ORDER BY seq LIMIT ?",
                [i64::from(limit).into()],
            ))
            .await?;
        rows.into_iter()
            .map(|row| {
                let issued: i64 = row.try_get("", "issued_at")?;
                Ok(OutboxTicket {
                    seq: row.try_get("", "seq")?,
                    offline_id: row.try_get("", "offline_id")?,
                    kiosk: row.try_get("", "kiosk")?,
                    lease: row.try_get("", "lease")?,
                    category: row.try_get("", "category")?,
                    number: u32::try_from(row.try_get::<i64>("", "number")?).unwrap_or(0),
                    display_number: row.try_get("", "display_number")?,
                    priority: row.try_get::<i64>("", "priority")? != 0,
                    issued_at: DateTime::from_timestamp_micros(issued).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// How many outbox entries are in `state`.
    pub async fn outbox_count(&self, state: OutboxState) -> Result<u64, ServiceError> {
        let row = self
            .db
            .query_one_raw(stmt(
                "SELECT COUNT(*) AS n FROM gateway_outbox WHERE state = ?",
                [state.as_str().into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use madoguchi_proto::queue::v1::NumberLease;

    #[tokio::test]
    async fn numbers_are_taken_once_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("gw.db");
        let store = LocalStore::open(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lease = NumberLease {
            name: "municipalities/032034/offices/main/leases/x".into(),
            category: "c".into(),
            prefix: "A".into(),
            numbers: vec![5, 6],
            ..Default::default()
        };
        store
            .add_lease("k1", &lease, "2026-04-01")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .add_lease("k1", &lease, "2026-04-01")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.remaining("k1", "c", "2026-04-01").await.ok(), Some(2));

        // Racing presses never share a number.
        let a = store.clone();
        let b = store.clone();
        let (x, y) = tokio::join!(
            a.take_number("k1", "c", "2026-04-01"),
            b.take_number("k1", "c", "2026-04-01")
        );
        let mut got: Vec<u32> = [x, y]
            .into_iter()
            .filter_map(|r| r.ok().flatten().map(|t| t.number))
            .collect();
        got.sort_unstable();
        assert_eq!(got, [5, 6]);
        assert_eq!(
            store.take_number("k1", "c", "2026-04-01").await.ok(),
            Some(None),
            "an exhausted lease gives nothing"
        );

        store
            .set_cursor("office", 41)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let reopened = LocalStore::open(&path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.cursor("office").await.ok(), Some(Some(41)));
        assert_eq!(
            reopened.remaining("k1", "c", "2026-04-01").await.ok(),
            Some(0)
        );
        reopened
            .drop_old_leases("2026-04-02")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reopened.remaining("k1", "c", "2026-04-01").await.ok(),
            Some(0)
        );
    }
}
