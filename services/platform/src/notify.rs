//! Live wake-ups for services whose streams follow an event log in the
//! database (the queue's `WatchOffice`, the POS's `WatchRegister`).
//!
//! The event log is the truth; a wake-up only says "there may be new rows,
//! read again". Streams therefore never depend on a wake-up's content, and
//! a lost wake-up costs latency, never an event. In one process the writer
//! wakes the bus after commit. Across processes sharing PostgreSQL, writers
//! also `NOTIFY` inside their transaction (delivered at commit) and every
//! process `LISTEN`s ([`spawn_postgres_listener`]).

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::server::Draining;

/// A generation counter that bumps whenever events may have been committed.
#[derive(Debug, Clone)]
pub struct WakeBus {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for WakeBus {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeBus {
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
}

/// Follows PostgreSQL notifications on `channel` until draining starts,
/// calling `on_wake` with each notification's payload, and with `None`
/// after (re)connecting, since notifications sent meanwhile are lost. The
/// listener reconnects by itself with backoff.
pub fn spawn_postgres_listener(
    pool: PgPool,
    channel: &'static str,
    mut draining: Draining,
    on_wake: impl Fn(Option<&str>) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut listener = tokio::select! {
                () = draining.wait() => return,
                listener = connect(&pool, channel) => match listener {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, ?backoff, channel, "cannot LISTEN for events");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(100);
            on_wake(None);
            loop {
                tokio::select! {
                    () = draining.wait() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => on_wake(Some(notification.payload())),
                        // Connection lost; try_recv reconnects next time.
                        Ok(None) => on_wake(None),
                        Err(error) => {
                            tracing::warn!(%error, channel, "event listener failed");
                            break;
                        }
                    },
                }
            }
        }
    });
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
