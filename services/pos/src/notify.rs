//! Live wake-ups for `WatchRegister` streams: the platform's wake bus
//! (`madoguchi_platform::notify`, the same mechanism as the queue's
//! `WatchOffice`) on the POS's own PostgreSQL channel.

use madoguchi_platform::notify::spawn_postgres_listener;
use madoguchi_platform::server::Draining;
use sea_orm::sqlx::PgPool;

/// The wake-up bus of the registers' event logs.
pub use madoguchi_platform::notify::WakeBus as EventBus;

/// The PostgreSQL notification channel of the registers' event logs.
pub const CHANNEL: &str = "madoguchi_pos_events";

/// Wakes `bus` on every notification of [`CHANNEL`] until draining starts.
pub fn listen(bus: &EventBus, pool: PgPool, draining: Draining) {
    let bus = bus.clone();
    spawn_postgres_listener(pool, CHANNEL, draining, move |_| bus.wake());
}
