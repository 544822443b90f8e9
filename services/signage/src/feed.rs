//! The live feeds of the pages, as server-sent events (SSE), served from
//! the office's fan-out ([`crate::hub`]): however many pages an office has
//! open, the signage service follows the queue with one `WatchOffice`
//! stream per office.
//!
//! **Office feed** (call display). On connect the page gets a `status`
//! snapshot, then every office event after its resume point: `call` for
//! calls and recalls, `change` for the rest, each with the event's
//! sequence as the SSE `id`. The resume point is the `Last-Event-ID` the
//! browser sends by itself when it reconnects (or `?after=` when the page
//! opens a new `EventSource`); a first connection starts at the snapshot's
//! `last_sequence`, sent as the snapshot's `id`. Events after the resume
//! point come from the office's ring and broadcast when the ring still
//! holds them, else first from the queue's log (a private `WatchOffice`
//! after the resume point, closed as soon as the ring is reached). Since
//! the queue's log has per-office gap-free sequences and every path
//! forwards only events newer than the last one sent, a display that
//! reconnects receives every missed call once and none twice. Fresh
//! `status` snapshots (no id: they never move the resume point) follow
//! bursts of events and come at least every 30 s.
//!
//! **Ticket feed** (status page): `ticket` views of one ticket, re-read
//! whenever office events were published (coalesced: one read per burst);
//! it ends when the visit is over.
//!
//! When the office's follower ends (queue error, draining) or the browser
//! goes away, the SSE response ends and the browser reconnects.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use madoguchi_platform::server::Draining;
use madoguchi_proto::queue::v1 as pb;
use serde::Serialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::hub::{Attach, End, Hubs, Item, OfficeHub, Published, Snapshot, watch_office};
use crate::queue_client::QueueClient;
use crate::views::{Floor, StatusView, TicketView};

/// How long a browser waits before reconnecting (SSE `retry`).
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// An SSE response fed by a task through a channel. The task ends when the
/// browser goes away (the channel closes) or the server drains.
pub type FeedResponse = Response;

fn response(rx: mpsc::Receiver<Event>) -> FeedResponse {
    let ok: fn(Event) -> Result<Event, Infallible> = Ok;
    Sse::new(futures::StreamExt::map(ReceiverStream::new(rx), ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn json_event(name: &'static str, value: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

fn status_event(snapshot: &Snapshot) -> Event {
    Event::default()
        .event("status")
        .data(snapshot.json.as_str())
}

fn log_end(feed: &str, end: &End) {
    match end {
        End::Queue(status) => tracing::warn!(
            feed,
            code = ?status.code(),
            message = status.message(),
            "feed ended: queue error; the browser will reconnect"
        ),
        other => tracing::debug!(feed, end = ?other, "feed ended"),
    }
}

async fn send(tx: &mpsc::Sender<Event>, event: Event) -> Result<(), End> {
    tx.send(event).await.map_err(|_| End::BrowserGone)
}

/// Sends `event` unless the page already has it; moves `last`.
async fn forward(tx: &mpsc::Sender<Event>, event: &Published, last: &mut u64) -> Result<(), End> {
    if event.sequence <= *last {
        return Ok(());
    }
    *last = event.sequence;
    send(
        tx,
        Event::default()
            .event(event.name)
            .data(event.json.as_str())
            .id(event.sequence.to_string()),
    )
    .await
}

/// Runs `feed` until it ends, the browser goes away or the server drains.
fn spawn_feed<F>(name: &'static str, buffer: usize, mut draining: Draining, feed: F) -> FeedResponse
where
    F: FnOnce(mpsc::Sender<Event>) -> futures::future::BoxFuture<'static, End> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let closed = tx.clone();
    tokio::spawn(async move {
        let end = tokio::select! {
            end = feed(tx) => end,
            () = draining.wait() => End::Draining,
            () = closed.closed() => End::BrowserGone,
        };
        log_end(name, &end);
    });
    response(rx)
}

/// Starts the office feed of `floor` after `after` (None: from now).
pub fn office_feed(
    hubs: Arc<Hubs>,
    floor: &Floor,
    after: Option<u64>,
    draining: Draining,
) -> FeedResponse {
    let hub = hubs.office(floor);
    let buffer = hubs.limits().buffer;
    spawn_feed("office", buffer, draining, move |tx| {
        Box::pin(async move {
            match run_office(&hubs, &hub, after, &tx).await {
                Ok(never) => match never {},
                Err(end) => end,
            }
        })
    })
}

async fn run_office(
    hubs: &Hubs,
    hub: &OfficeHub,
    after: Option<u64>,
    tx: &mpsc::Sender<Event>,
) -> Result<Infallible, End> {
    send(tx, Event::default().retry(RECONNECT_AFTER)).await?;
    let snapshot = hub.snapshot().await.ok_or(End::StreamEnded)?;
    // A first connection resumes from the snapshot: the snapshot's id
    // becomes the browser's Last-Event-ID.
    let mut last = after.unwrap_or(snapshot.last_sequence);
    // A resume point ahead of the log gets a `reset` instead.
    if last <= hub.head() || log_has(hubs, hub, &mut last, tx).await? {
        let mut first = status_event(&snapshot);
        if after.is_none() {
            first = first.id(last.to_string());
        }
        send(tx, first).await?;
    }
    let mut resynced = false;
    loop {
        match hub.attach(last) {
            Attach::Ended => return Err(End::StreamEnded),
            Attach::Behind => catch_up(hubs, hub, &mut last, tx).await?,
            Attach::Live { backlog, mut rx } => {
                for event in &backlog {
                    forward(tx, event, &mut last).await?;
                }
                if resynced {
                    // Snapshots dropped while behind are replaced by the
                    // newest one.
                    if let Some(snapshot) = hub.latest() {
                        send(tx, status_event(&snapshot)).await?;
                    }
                }
                loop {
                    match rx.recv().await {
                        Ok(Item::Event(event)) => forward(tx, &event, &mut last).await?,
                        Ok(Item::Status(snapshot)) => send(tx, status_event(&snapshot)).await?,
                        Ok(Item::End) | Err(RecvError::Closed) => return Err(End::StreamEnded),
                        Err(RecvError::Lagged(_)) => {
                            // Too slow for the broadcast: start again from
                            // the last event this page got.
                            hubs.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                            resynced = true;
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// For a resume point ahead of the office's follower: true when the log
/// has it (another replica's follower was just ahead of this one). When
/// the log does not (its database was replaced by an older one), the page
/// starts over: a `reset` event carries a fresh snapshot whose id becomes
/// its resume point, and `last` moves there. Without this the page would
/// wait silently for sequences it has already passed.
async fn log_has(
    hubs: &Hubs,
    hub: &OfficeHub,
    last: &mut u64,
    tx: &mpsc::Sender<Event>,
) -> Result<bool, End> {
    let status = hubs
        .queue()
        .get_office_status(pb::GetOfficeStatusRequest {
            name: hub.floor().office_name.clone(),
        })
        .await
        .map_err(End::Queue)?
        .into_inner();
    if *last <= status.last_sequence {
        return Ok(true);
    }
    tracing::warn!(
        office = %hub.floor().office_id,
        resume = *last,
        log = status.last_sequence,
        "a page resumed ahead of the office log (database replaced?); it starts over"
    );
    *last = status.last_sequence;
    let view = StatusView::of(hub.floor(), &status);
    send(tx, json_event("reset", &view).id(last.to_string())).await?;
    Ok(false)
}

/// Replays the queue's log after `last` to the page until the office's
/// ring reaches it. The check comes before each read: while the ring does
/// not cover `last`, the log has events after `last` (the ring never runs
/// ahead of the log), so the read never waits for a call that the ring
/// would deliver.
async fn catch_up(
    hubs: &Hubs,
    hub: &OfficeHub,
    last: &mut u64,
    tx: &mpsc::Sender<Event>,
) -> Result<(), End> {
    hubs.stats.catch_up_streams.fetch_add(1, Ordering::Relaxed);
    let mut queue = hubs.queue();
    let mut stream = watch_office(&mut queue, &hub.floor().office_name, *last)
        .await
        .map_err(End::Queue)?;
    while !hub.covers(*last) {
        let Some(message) = stream.message().await.map_err(End::Queue)? else {
            return Err(End::StreamEnded);
        };
        if let Some(event) = message.event {
            forward(tx, &Published::of(hub.floor(), &event), last).await?;
        }
    }
    Ok(())
}

/// Starts the feed of one ticket of `floor`. The caller checked the URL
/// token.
pub fn ticket_feed(
    hubs: Arc<Hubs>,
    floor: &Floor,
    ticket: String,
    draining: Draining,
) -> FeedResponse {
    let hub = hubs.office(floor);
    let buffer = hubs.limits().buffer;
    spawn_feed("ticket", buffer, draining, move |tx| {
        Box::pin(async move {
            match run_ticket(&hubs, &hub, &ticket, &tx).await {
                Ok(never) => match never {},
                Err(end) => end,
            }
        })
    })
}

/// The current view of a ticket.
pub async fn ticket_view(
    queue: &mut QueueClient,
    floor: &Floor,
    ticket: &str,
) -> Result<TicketView, tonic::Status> {
    let ticket = queue
        .get_ticket(pb::GetTicketRequest {
            name: ticket.to_owned(),
        })
        .await?
        .into_inner();
    Ok(TicketView::of(floor, &ticket))
}

async fn run_ticket(
    hubs: &Hubs,
    hub: &OfficeHub,
    ticket: &str,
    tx: &mpsc::Sender<Event>,
) -> Result<Infallible, End> {
    send(tx, Event::default().retry(RECONNECT_AFTER)).await?;
    // Subscribe once the follower is live and before reading the ticket:
    // a change committed after the read is published after it, so it
    // wakes this feed; one before it is already in the first view.
    hub.snapshot().await.ok_or(End::StreamEnded)?;
    let mut rx = hub.subscribe().ok_or(End::StreamEnded)?;
    let mut queue = hubs.queue();
    let mut shown = ticket_view(&mut queue, hub.floor(), ticket)
        .await
        .map_err(End::Queue)?;
    send(tx, json_event("ticket", &shown)).await?;
    if shown.is_final() {
        return Err(End::StreamEnded);
    }
    loop {
        match rx.recv().await {
            // Fallen behind: something changed, read again.
            Ok(Item::Event(_)) | Err(RecvError::Lagged(_)) => {}
            Ok(Item::Status(_)) => continue,
            Ok(Item::End) | Err(RecvError::Closed) => return Err(End::StreamEnded),
        }
        // One read for a whole burst.
        loop {
            match rx.try_recv() {
                Ok(Item::End) | Err(TryRecvError::Closed) => return Err(End::StreamEnded),
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => break,
            }
        }
        let view = ticket_view(&mut queue, hub.floor(), ticket)
            .await
            .map_err(End::Queue)?;
        if view != shown {
            send(tx, json_event("ticket", &view)).await?;
            shown = view;
            if shown.is_final() {
                return Err(End::StreamEnded);
            }
        }
    }
}
