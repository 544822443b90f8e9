//! One queue follower per office, fanned out to every page of the office.
//!
//! The first page of an office starts a follower: it reads the office's
//! status (`GetOfficeStatus`), opens **one** `WatchOffice` stream after the
//! status's `last_sequence` and, for each event, renders the page's view
//! once and publishes it to
//!
//! - a **ring** of the newest events (for pages that resume), and
//! - a `tokio::sync::broadcast` channel every live connection of the office
//!   receives from.
//!
//! Both are updated under one lock, and a connection attaches (copies the
//! ring's events after its resume point and subscribes) under the same
//! lock, so the ring part and the broadcast part of what it receives meet
//! exactly: nothing missed, nothing twice. A page whose resume point is
//! older than the ring is caught up from the queue's own log with a
//! private `WatchOffice` stream (see `feed::catch_up`) until it reaches the
//! ring, then attaches. A connection that falls more than
//! [`FeedLimits::lag`] items behind the broadcast (a slow phone, a stalled
//! TV) is never waited for: the channel drops its oldest items for that
//! receiver only, and the connection resynchronises from its own last
//! sequence through the ring (or the log) as if it had reconnected.
//!
//! Status snapshots (waiting counts, estimates) are read by the follower
//! too, once per burst of events and every [`STATUS_REFRESH`], concurrently
//! with the event stream: a call is never held back behind a status read.
//! Snapshots go to every page through the same broadcast.
//!
//! When the queue stream fails or the server drains, the follower ends,
//! every connection of the office ends (the browsers reconnect with their
//! `Last-Event-ID`) and the next page starts a new follower.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::OptionFuture;
use madoguchi_platform::server::Draining;
use madoguchi_proto::queue::v1 as pb;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tonic::Streaming;

use crate::queue_client::QueueClient;
use crate::views::{EventView, Floor, StatusView};

/// Status snapshots are refreshed at least this often, so estimates age.
pub const STATUS_REFRESH: Duration = Duration::from_secs(30);

/// Sizes of the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLimits {
    /// Newest office events kept per office for pages that resume; older
    /// resume points are caught up from the queue's log.
    pub ring: usize,
    /// Items a connection may fall behind the office broadcast before it
    /// is resynchronised (the broadcast channel's capacity).
    pub lag: usize,
    /// SSE events buffered per connection before it waits for the browser.
    pub buffer: usize,
    /// How long an office's follower keeps its `WatchOffice` stream with
    /// no page open before it stops (a TV that reloads comes back within
    /// it and finds the follower still live).
    pub linger: Duration,
}

impl Default for FeedLimits {
    fn default() -> Self {
        Self {
            ring: 1024,
            lag: 256,
            buffer: 64,
            linger: Duration::from_secs(60),
        }
    }
}

/// Counters of the feeds since the service started, for operators and
/// tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCounts {
    /// `WatchOffice` streams opened by office followers: one per office
    /// (again only after a queue error or a restart), however many pages.
    pub office_streams: u64,
    /// `WatchOffice` streams opened to catch one page up from the log
    /// (its resume point was older than the ring); closed once caught up.
    pub catch_up_streams: u64,
    /// Times a connection fell behind the broadcast and resynchronised.
    pub resyncs: u64,
    /// `GetOfficeStatus` reads by office followers.
    pub status_reads: u64,
    /// Offices with a follower running now (a gauge, not a counter): a
    /// follower stops once no page has been open for the linger period.
    pub live_offices: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    office_streams: AtomicU64,
    pub(crate) catch_up_streams: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    status_reads: AtomicU64,
}

/// An office event rendered once for every page.
#[derive(Debug)]
pub struct Published {
    /// Sequence in the office log (the SSE id).
    pub sequence: u64,
    /// SSE event name: `call` or `change`.
    pub name: &'static str,
    /// The view as JSON.
    pub json: String,
}

impl Published {
    /// Renders `event` of `floor`.
    pub fn of(floor: &Floor, event: &pb::OfficeEvent) -> Self {
        let view = EventView::of(floor, event);
        let (name, json) = match &view {
            EventView::Call(call) => ("call", to_json(call)),
            EventView::Change(change) => ("change", to_json(change)),
        };
        Self {
            sequence: view.sequence(),
            name,
            json,
        }
    }
}

/// A status snapshot rendered once for every page.
#[derive(Debug)]
pub struct Snapshot {
    /// Sequence of the newest event the snapshot includes.
    pub last_sequence: u64,
    /// The view as JSON.
    pub json: String,
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

/// What a connection receives from its office.
#[derive(Debug, Clone)]
pub enum Item {
    /// An office event, in log order.
    Event(Arc<Published>),
    /// A fresh snapshot.
    Status(Arc<Snapshot>),
    /// The follower ended: connections end and their browsers reconnect.
    End,
}

#[derive(Debug, Clone)]
enum Phase {
    Starting,
    Live(Arc<Snapshot>),
    Ended,
}

/// The result of attaching a connection at a resume point.
#[derive(Debug)]
pub enum Attach {
    /// The ring's events after the resume point, then the live broadcast.
    Live {
        /// Events after the resume point, oldest first.
        backlog: Vec<Arc<Published>>,
        /// Everything published after `backlog`.
        rx: broadcast::Receiver<Item>,
    },
    /// The resume point is older than the ring: catch up from the log.
    Behind,
    /// The follower has ended.
    Ended,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Arc<Published>>,
    /// Sequence of the newest event published (or the start position).
    head: u64,
    ended: bool,
}

impl Ring {
    /// The oldest sequence the ring holds (head + 1 when empty).
    fn start(&self) -> u64 {
        self.events
            .front()
            .map_or(self.head.saturating_add(1), |e| e.sequence)
    }

    /// True when every event after `after` is in the ring or still to
    /// come through the broadcast.
    fn covers(&self, after: u64) -> bool {
        after.saturating_add(1) >= self.start()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The live state of one office.
#[derive(Debug)]
pub struct OfficeHub {
    floor: Floor,
    ring_size: usize,
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Item>,
    phase: watch::Sender<Phase>,
}

impl OfficeHub {
    fn new(floor: Floor, limits: FeedLimits) -> Self {
        let (tx, _) = broadcast::channel(limits.lag.max(1));
        let (phase, _) = watch::channel(Phase::Starting);
        Self {
            floor,
            ring_size: limits.ring.max(1),
            ring: Mutex::new(Ring::default()),
            tx,
            phase,
        }
    }

    /// The office's floor.
    pub fn floor(&self) -> &Floor {
        &self.floor
    }

    /// The newest snapshot, once the follower is live; `None` when it
    /// ended before or while waiting.
    pub async fn snapshot(&self) -> Option<Arc<Snapshot>> {
        let mut rx = self.phase.subscribe();
        let phase = rx
            .wait_for(|p| !matches!(p, Phase::Starting))
            .await
            .ok()?
            .clone();
        match phase {
            Phase::Live(snapshot) => Some(snapshot),
            Phase::Starting | Phase::Ended => None,
        }
    }

    /// The newest snapshot without waiting.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        match &*self.phase.borrow() {
            Phase::Live(snapshot) => Some(snapshot.clone()),
            Phase::Starting | Phase::Ended => None,
        }
    }

    /// Attaches a connection that has handled every event up to `after`.
    pub fn attach(&self, after: u64) -> Attach {
        let ring = lock(&self.ring);
        if ring.ended {
            return Attach::Ended;
        }
        if !ring.covers(after) {
            return Attach::Behind;
        }
        let backlog = ring
            .events
            .iter()
            .filter(|e| e.sequence > after)
            .cloned()
            .collect();
        // Under the ring's lock: the follower publishes under it too, so
        // the backlog and the receiver meet exactly.
        let rx = self.tx.subscribe();
        Attach::Live { backlog, rx }
    }

    /// Sequence of the newest event published.
    pub fn head(&self) -> u64 {
        lock(&self.ring).head
    }

    /// True when a connection at `after` can attach (or the hub ended).
    pub fn covers(&self, after: u64) -> bool {
        let ring = lock(&self.ring);
        ring.ended || ring.covers(after)
    }

    /// A receiver of everything published from now on; `None` once ended.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Item>> {
        let ring = lock(&self.ring);
        (!ring.ended).then(|| self.tx.subscribe())
    }

    fn start_at(&self, sequence: u64) {
        let mut ring = lock(&self.ring);
        ring.head = sequence;
        ring.events.clear();
    }

    /// Publishes the next event; false when it is not newer than the head
    /// (the queue never repeats one; this keeps the promise if it did).
    fn publish_event(&self, event: Published) -> bool {
        let mut ring = lock(&self.ring);
        if event.sequence <= ring.head {
            return false;
        }
        let event = Arc::new(event);
        ring.head = event.sequence;
        ring.events.push_back(event.clone());
        while ring.events.len() > self.ring_size {
            ring.events.pop_front();
        }
        // An error only means nobody is listening right now.
        let _ = self.tx.send(Item::Event(event));
        true
    }

    fn publish_status(&self, snapshot: Arc<Snapshot>) {
        self.phase.send_replace(Phase::Live(snapshot.clone()));
        let _ = self.tx.send(Item::Status(snapshot));
    }

    fn end(&self) {
        let mut ring = lock(&self.ring);
        ring.ended = true;
        let _ = self.tx.send(Item::End);
        self.phase.send_replace(Phase::Ended);
    }

    fn is_ended(&self) -> bool {
        lock(&self.ring).ended
    }
}

/// The followers of every office with pages open.
#[derive(Debug)]
pub struct Hubs {
    queue: QueueClient,
    limits: FeedLimits,
    pub(crate) stats: Stats,
    draining: Draining,
    offices: Mutex<HashMap<String, Arc<OfficeHub>>>,
}

/// Why a follower or a connection ended; logged, never shown to residents.
#[derive(Debug)]
pub enum End {
    /// The browser went away.
    BrowserGone,
    /// The server is draining.
    Draining,
    /// The queue answered with an error.
    Queue(tonic::Status),
    /// The queue's stream or the office's follower ended.
    StreamEnded,
    /// No page was open for the office for the linger period.
    Unwatched,
}

impl Hubs {
    /// Followers reading the queue through `queue`; they end when the
    /// server drains.
    pub fn new(queue: QueueClient, limits: FeedLimits, draining: Draining) -> Arc<Self> {
        Arc::new(Self {
            queue,
            limits,
            stats: Stats::default(),
            draining,
            offices: Mutex::new(HashMap::new()),
        })
    }

    /// The queue client (for reads of single tickets).
    pub fn queue(&self) -> QueueClient {
        self.queue.clone()
    }

    /// The fan-out sizes.
    pub fn limits(&self) -> FeedLimits {
        self.limits
    }

    /// The counters so far.
    pub fn counts(&self) -> FeedCounts {
        FeedCounts {
            office_streams: self.stats.office_streams.load(Ordering::Relaxed),
            catch_up_streams: self.stats.catch_up_streams.load(Ordering::Relaxed),
            resyncs: self.stats.resyncs.load(Ordering::Relaxed),
            status_reads: self.stats.status_reads.load(Ordering::Relaxed),
            live_offices: lock(&self.offices).len() as u64,
        }
    }

    /// Pages connected to each office's live feed now (the receivers of
    /// its broadcast), by office resource name; offices without a follower
    /// are absent.
    pub fn displays_connected(&self) -> Vec<(String, u64)> {
        lock(&self.offices)
            .values()
            .map(|hub| {
                (
                    hub.floor.office_name.clone(),
                    hub.tx.receiver_count() as u64,
                )
            })
            .collect()
    }

    /// The hub of `floor`'s office, starting its follower if none runs.
    pub fn office(self: &Arc<Self>, floor: &Floor) -> Arc<OfficeHub> {
        let mut offices = lock(&self.offices);
        if let Some(hub) = offices.get(&floor.office_id)
            && !hub.is_ended()
        {
            return hub.clone();
        }
        let hub = Arc::new(OfficeHub::new(floor.clone(), self.limits));
        offices.insert(floor.office_id.clone(), hub.clone());
        tokio::spawn(follow(self.clone(), hub.clone()));
        hub
    }

    /// Removes `hub` when it is [`unwatched`], under the map's lock, so a
    /// page arriving now gets a new hub instead of this ending one (pages
    /// hold their hub for as long as they are connected).
    fn retire_if_unwatched(&self, hub: &Arc<OfficeHub>) -> bool {
        let mut offices = lock(&self.offices);
        let ours = offices
            .get(&hub.floor.office_id)
            .is_some_and(|h| Arc::ptr_eq(h, hub));
        if ours && unwatched(hub) {
            offices.remove(&hub.floor.office_id);
            true
        } else {
            false
        }
    }

    fn forget(&self, hub: &Arc<OfficeHub>) {
        let mut offices = lock(&self.offices);
        if offices
            .get(&hub.floor.office_id)
            .is_some_and(|h| Arc::ptr_eq(h, hub))
        {
            offices.remove(&hub.floor.office_id);
        }
    }
}

/// No page holds `hub`: only the office map and its follower do (a status
/// read in flight holds one more, which only delays the answer).
fn unwatched(hub: &Arc<OfficeHub>) -> bool {
    Arc::strong_count(hub) <= 2
}

async fn follow(hubs: Arc<Hubs>, hub: Arc<OfficeHub>) {
    let mut draining = hubs.draining.clone();
    let end = tokio::select! {
        end = run(&hubs, &hub) => end,
        () = draining.wait() => End::Draining,
    };
    match &end {
        End::Queue(status) => tracing::warn!(
            office = %hub.floor.office_id,
            code = ?status.code(),
            message = status.message(),
            "office follower ended: queue error; pages reconnect"
        ),
        other => {
            tracing::debug!(office = %hub.floor.office_id, end = ?other, "office follower ended")
        }
    }
    hub.end();
    hubs.forget(&hub);
}

type StatusRead = Pin<Box<dyn Future<Output = Result<Arc<Snapshot>, tonic::Status>> + Send>>;

fn read_status(hubs: &Hubs, hub: &Arc<OfficeHub>) -> StatusRead {
    hubs.stats.status_reads.fetch_add(1, Ordering::Relaxed);
    let mut queue = hubs.queue.clone();
    let hub = hub.clone();
    Box::pin(async move {
        let status = queue
            .get_office_status(pb::GetOfficeStatusRequest {
                name: hub.floor.office_name.clone(),
            })
            .await?
            .into_inner();
        let view = StatusView::of(&hub.floor, &status);
        Ok(Arc::new(Snapshot {
            last_sequence: view.last_sequence,
            json: to_json(&view),
        }))
    })
}

/// Opens `WatchOffice` for `office` after `after`.
pub async fn watch_office(
    queue: &mut QueueClient,
    office: &str,
    after: u64,
) -> Result<Streaming<pb::WatchOfficeResponse>, tonic::Status> {
    Ok(queue
        .watch_office(pb::WatchOfficeRequest {
            office: office.to_owned(),
            after_sequence: after,
        })
        .await?
        .into_inner())
}

async fn run(hubs: &Hubs, hub: &Arc<OfficeHub>) -> End {
    let first = match read_status(hubs, hub).await {
        Ok(snapshot) => snapshot,
        Err(status) => return End::Queue(status),
    };
    let mut queue = hubs.queue.clone();
    hubs.stats.office_streams.fetch_add(1, Ordering::Relaxed);
    let mut stream =
        match watch_office(&mut queue, &hub.floor.office_name, first.last_sequence).await {
            Ok(stream) => stream,
            Err(status) => return End::Queue(status),
        };
    hub.start_at(first.last_sequence);
    hub.publish_status(first);

    let mut refresh = tokio::time::interval(STATUS_REFRESH);
    refresh.tick().await;
    // Checked every linger period: a follower ends after one to two of
    // them without pages.
    let mut idle_check = tokio::time::interval(hubs.limits.linger.max(Duration::from_millis(10)));
    idle_check.tick().await;
    let mut unwatched_since_check = false;
    let mut stale = false;
    let mut reading: Option<StatusRead> = None;
    loop {
        // One status read at a time, started as soon as something changed
        // and none is in flight; events keep flowing while it runs.
        if stale && reading.is_none() {
            stale = false;
            reading = Some(read_status(hubs, hub));
        }
        tokio::select! {
            biased;
            message = stream.message() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => return End::StreamEnded,
                    Err(status) => return End::Queue(status),
                };
                let Some(event) = message.event else { continue };
                // One span per event, however many pages it goes to, in
                // the trace of the request that committed it.
                let span = tracing::info_span!(
                    "display push",
                    otel.name = "display push",
                    otel.kind = "internal",
                    madoguchi.office = hub.floor.office_name.as_str(),
                    madoguchi.event.sequence = event.sequence,
                    madoguchi.signage.displays = hub.tx.receiver_count() as u64,
                );
                madoguchi_platform::telemetry::continue_trace(&span, &message.trace_parent);
                let _entered = span.enter();
                if hub.publish_event(Published::of(&hub.floor, &event)) {
                    stale = true;
                }
            }
            Some(result) = OptionFuture::from(reading.as_mut()), if reading.is_some() => {
                reading = None;
                match result {
                    Ok(snapshot) => hub.publish_status(snapshot),
                    Err(status) => return End::Queue(status),
                }
            }
            _ = refresh.tick() => stale = true,
            _ = idle_check.tick() => {
                let idle = unwatched(hub);
                if idle && unwatched_since_check && hubs.retire_if_unwatched(hub) {
                    return End::Unwatched;
                }
                unwatched_since_check = idle;
            }
        }
    }
}
