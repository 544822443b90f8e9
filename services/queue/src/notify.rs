//! Live wake-ups for `WatchOffice` streams: the platform's wake bus
//! (`madoguchi_platform::notify`) on the queue's PostgreSQL channel, plus a
//! fast path.
//!
//! The fast path: a writer in this process that committed events hands
//! them to the bus ([`EventBus::publish`]), which keeps the most recent ones
//! per office. A follower takes events from there instead of reading the
//! log when it can prove nothing is missing ([`EventBus::recent_after`]):
//! the next sequence it needs is held, and no wake-up from outside this
//! process ([`EventBus::wake`]: another replica's `NOTIFY`, an import that
//! did not publish) arrived since its last read of the log. Any doubt — a
//! gap, an evicted event, an outside wake-up — means reading the log, so
//! the fast path can only save a read, never lose or reorder an event.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use madoguchi_proto::queue::v1 as pb;

use sea_orm::sqlx::PgPool;
use tokio::sync::watch;

use madoguchi_platform::notify::{WakeBus, spawn_postgres_listener};
use madoguchi_platform::server::Draining;

/// The PostgreSQL notification channel of the queue's event log.
pub const CHANNEL: &str = "madoguchi_queue_events";

/// How many recent events the bus keeps per office. A follower further
/// behind reads the log.
pub const RECENT_PER_OFFICE: usize = 1024;

/// A generation counter that bumps whenever events may have been committed,
/// with the recent events of this process's own commits.
#[derive(Debug, Clone)]
pub struct EventBus {
    wake: WakeBus,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// This process's tag in `NOTIFY` payloads, so its own notifications,
    /// already published, do not force every follower to read the log.
    instance: String,
    /// Bumped by every wake-up that came without its events.
    outside: AtomicU64,
    /// Per office: recently committed events by sequence.
    recent: Mutex<HashMap<String, Recent>>,
}

#[derive(Debug, Default)]
struct Recent {
    events: BTreeMap<u64, LoggedEvent>,
    /// The highest sequence ever published for the office.
    newest: u64,
}

/// An event as the log holds it: the event, and the trace context of the
/// request that committed it (`WatchOfficeResponse.trace_parent`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// The event.
    pub event: pb::OfficeEvent,
    /// W3C `traceparent` of the committing request, when it was traced.
    pub trace_parent: Option<String>,
}

impl LoggedEvent {
    /// The event's sequence.
    pub fn sequence(&self) -> u64 {
        self.event.sequence
    }

    /// The stream message that carries it.
    pub fn into_response(self) -> pb::WatchOfficeResponse {
        pb::WatchOfficeResponse {
            event: Some(self.event),
            trace_parent: self.trace_parent.unwrap_or_default(),
        }
    }
}

/// Where a follower stands with the bus: the outside generation it last
/// read the log at.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus nobody has woken yet.
    pub fn new() -> Self {
        Self {
            wake: WakeBus::new(),
            shared: Arc::new(Shared {
                instance: uuid::Uuid::now_v7().simple().to_string(),
                outside: AtomicU64::new(0),
                recent: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A receiver; call `borrow_and_update` before reading the log and
    /// `changed` to wait, so no wake-up between the two is missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// The payload this process puts in its `NOTIFY`s.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// Wakes every subscriber without saying what changed: followers read
    /// the log.
    pub fn wake(&self) {
        self.shared.outside.fetch_add(1, Ordering::SeqCst);
        self.wake.wake();
    }

    /// Hands events this process just committed to the followers and wakes
    /// them. Call after the commit, never before, in the span of the
    /// request that wrote them (their trace context is the current one,
    /// as the log's rows have it).
    pub fn publish(&self, events: impl IntoIterator<Item = pb::OfficeEvent>) {
        let trace_parent = madoguchi_platform::telemetry::current_traceparent();
        {
            let mut recent = self
                .shared
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for event in events {
                let office = recent.entry(event.office.clone()).or_default();
                office.newest = office.newest.max(event.sequence);
                office.events.insert(
                    event.sequence,
                    LoggedEvent {
                        event,
                        trace_parent: trace_parent.clone(),
                    },
                );
                while office.events.len() > RECENT_PER_OFFICE {
                    office.events.pop_first();
                }
            }
        }
        self.wake.wake();
    }

    /// The highest sequence this process published for `office` (0 before
    /// the first).
    pub fn newest(&self, office: &str) -> u64 {
        self.shared
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(office)
            .map_or(0, |recent| recent.newest)
    }

    /// Call right before reading the log; pass the mark to
    /// [`recent_after`](Self::recent_after) afterwards.
    pub fn mark(&self) -> Mark {
        Mark(self.shared.outside.load(Ordering::SeqCst))
    }

    /// The events of `office` after `after` when the bus can vouch for
    /// them: `Some(vec![])` when nothing newer was committed, `None` when
    /// the log must be read (a wake-up from outside since `mark`, or a gap).
    pub fn recent_after(&self, office: &str, after: u64, mark: Mark) -> Option<Vec<LoggedEvent>> {
        if self.shared.outside.load(Ordering::SeqCst) != mark.0 {
            return None;
        }
        let recent = self
            .shared
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(office) = recent.get(office) else {
            return Some(Vec::new());
        };
        if office.newest <= after {
            return Some(Vec::new());
        }
        let events: Vec<LoggedEvent> = (after + 1..)
            .zip(office.events.range(after + 1..))
            .take_while(|(next, (sequence, _))| *next == **sequence)
            .map(|(_, (_, event))| event.clone())
            .collect();
        // Something newer was published but the next one is not held (not
        // published yet, or evicted): read the log.
        if events.is_empty() {
            None
        } else {
            Some(events)
        }
    }

    /// Follows PostgreSQL notifications until draining starts; this
    /// process's own notifications (already published) are skipped.
    pub fn spawn_postgres_listener(&self, pool: PgPool, draining: Draining) {
        let bus = self.clone();
        spawn_postgres_listener(pool, CHANNEL, draining, move |payload| {
            if payload != Some(bus.instance()) {
                bus.wake();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(office: &str, sequence: u64) -> pb::OfficeEvent {
        pb::OfficeEvent {
            sequence,
            office: office.to_owned(),
            ..Default::default()
        }
    }

    fn sequences(events: Option<Vec<LoggedEvent>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(LoggedEvent::sequence).collect())
    }

    #[test]
    fn published_events_are_handed_over_in_order() {
        let bus = EventBus::new();
        let mark = bus.mark();
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), Some(vec![]));
        bus.publish([event("a", 2), event("a", 1), event("b", 1)]);
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), Some(vec![1, 2]));
        assert_eq!(sequences(bus.recent_after("a", 1, mark)), Some(vec![2]));
        assert_eq!(sequences(bus.recent_after("a", 2, mark)), Some(vec![]));
        assert_eq!(sequences(bus.recent_after("b", 0, mark)), Some(vec![1]));
    }

    #[test]
    fn a_gap_means_reading_the_log() {
        let bus = EventBus::new();
        let mark = bus.mark();
        // 2 committed by a writer that has not published yet.
        bus.publish([event("a", 1), event("a", 3)]);
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), Some(vec![1]));
        assert_eq!(sequences(bus.recent_after("a", 1, mark)), None);
        bus.publish([event("a", 2)]);
        assert_eq!(sequences(bus.recent_after("a", 1, mark)), Some(vec![2, 3]));
    }

    #[test]
    fn an_outside_wake_means_reading_the_log() {
        let bus = EventBus::new();
        let mark = bus.mark();
        bus.publish([event("a", 1)]);
        bus.wake();
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), None);
        assert_eq!(sequences(bus.recent_after("b", 0, mark)), None);
        let mark = bus.mark();
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), Some(vec![1]));
    }

    #[test]
    fn an_evicted_event_means_reading_the_log() {
        let bus = EventBus::new();
        let mark = bus.mark();
        let last = RECENT_PER_OFFICE as u64 + 10;
        bus.publish((1..=last).map(|s| event("a", s)));
        assert_eq!(sequences(bus.recent_after("a", 0, mark)), None);
        assert_eq!(
            sequences(bus.recent_after("a", last - 1, mark)),
            Some(vec![last])
        );
    }

    #[tokio::test]
    async fn publishing_wakes_subscribers() {
        let bus = EventBus::new();
        let mut wake = bus.subscribe();
        wake.borrow_and_update();
        bus.publish([event("a", 1)]);
        assert!(wake.has_changed().unwrap_or(false));
    }
}
