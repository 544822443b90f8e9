//! Live wake-ups for `WatchRegister` streams (the same mechanism as the
//! queue's `WatchOffice`, on its own PostgreSQL channel).
//!
//! The event log in the database is the truth; a wake-up only says "there
//! may be new rows, read again". Streams therefore never depend on a
//! wake-up's content, and a lost wake-up costs latency, never an event.
//! In one process the writer wakes the bus after commit. Across processes
//! sharing PostgreSQL, writers also `NOTIFY` inside their transaction
//! (delivered at commit) and every process `LISTEN`s and wakes its bus.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;

use madoguchi_platform::server::Draining;

/// The PostgreSQL notification channel of the registers' event logs.
pub const CHANNEL: &str = "madoguchi_pos_events";

/// A generation counter that bumps whenever events may have been committed.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus nobody has woken yet.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(0);
        Self { tx: Arc::new(tx) }
    }

    /// A receiver; call `borrow_and_update` before reading the log and
    /// `changed` to wait, so no wake-up between the two is missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Wakes every subscriber.
    pub fn wake(&self) {
        self.tx
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Follows PostgreSQL notifications until draining starts. The listener
    /// reconnects by itself; after a reconnect the bus is woken anyway,
    /// since notifications sent meanwhile are lost.
    pub fn spawn_postgres_listener(&self, pool: PgPool, mut draining: Draining) {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let mut listener = tokio::select! {
                    () = draining.wait() => return,
                    listener = connect(&pool) => match listener {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::warn!(%error, ?backoff, "cannot LISTEN for pos events");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            continue;
                        }
                    },
                };
                backoff = Duration::from_millis(100);
                bus.wake();
                loop {
                    tokio::select! {
                        () = draining.wait() => return,
                        received = listener.try_recv() => match received {
                            Ok(Some(_)) => bus.wake(),
                            // Connection lost; try_recv reconnects next time.
                            Ok(None) => bus.wake(),
                            Err(error) => {
                                tracing::warn!(%error, "pos event listener failed");
                                break;
                            }
                        },
                    }
                }
            }
        });
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
