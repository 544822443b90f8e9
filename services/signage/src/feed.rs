//! The live feeds of the pages, as server-sent events (SSE).
//!
//! **Office feed** (call display). On connect the page gets a `status`
//! snapshot (`GetOfficeStatus`), then every office event after its resume
//! point from `WatchOffice(after_sequence)`: `call` for calls and recalls,
//! `change` for the rest, each with the event's sequence as the SSE `id`.
//! The resume point is the `Last-Event-ID` the browser sends by itself
//! when it reconnects (or `?after=` when the page opens a new
//! `EventSource`); a first connection starts at the snapshot's
//! `last_sequence`, sent as the snapshot's `id`. Since the queue's log has
//! per-office gap-free sequences and `WatchOffice` replays exactly the
//! events after the given one, a display that reconnects receives every
//! missed call once and none twice. After a burst of events the feed sends
//! a fresh `status` (waiting counts, estimates), coalesced: one snapshot per
//! burst, never one per event.
//!
//! **Ticket feed** (status page): `ticket` views of one ticket, sent
//! whenever an office event changed what the page shows; it ends when the
//! visit is over.
//!
//! Each connection follows the queue with its own `WatchOffice` stream
//! (over one shared HTTP/2 channel). That keeps resume exact and simple; a
//! city hall has a handful of TVs and the phones of the people waiting.
//! When the queue or the signage server goes away the SSE response ends
//! and the browser reconnects.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use madoguchi_platform::server::Draining;
use madoguchi_proto::queue::v1 as pb;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::queue_client::QueueClient;
use crate::views::{EventView, Floor, StatusView, TicketView};

/// How long a browser waits before reconnecting (SSE `retry`).
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// Status snapshots are refreshed at least this often, so estimates age.
const STATUS_REFRESH: Duration = Duration::from_secs(30);
/// Events buffered per connection before the feed waits for the browser.
const BUFFER: usize = 64;

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

/// Why a feed ended; logged, never shown to residents.
#[derive(Debug)]
enum End {
    BrowserGone,
    Draining,
    Queue(tonic::Status),
    StreamEnded,
}

/// Starts the office feed of `floor` after `after` (None: from now).
pub fn office_feed(
    queue: QueueClient,
    floor: Floor,
    after: Option<u64>,
    draining: Draining,
) -> FeedResponse {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let office = floor.office_name.clone();
        let end = follow_office(queue, floor, after, draining, tx).await;
        log_end(&office, &end);
    });
    response(rx)
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

async fn status(queue: &mut QueueClient, floor: &Floor) -> Result<StatusView, End> {
    let status = queue
        .get_office_status(pb::GetOfficeStatusRequest {
            name: floor.office_name.clone(),
        })
        .await
        .map_err(End::Queue)?
        .into_inner();
    Ok(StatusView::of(floor, &status))
}

async fn watch(
    queue: &mut QueueClient,
    office: &str,
    after: u64,
) -> Result<Streaming<pb::WatchOfficeResponse>, End> {
    Ok(queue
        .watch_office(pb::WatchOfficeRequest {
            office: office.to_owned(),
            after_sequence: after,
        })
        .await
        .map_err(End::Queue)?
        .into_inner())
}

async fn follow_office(
    queue: QueueClient,
    floor: Floor,
    after: Option<u64>,
    mut draining: Draining,
    tx: mpsc::Sender<Event>,
) -> End {
    tokio::select! {
        end = run_office(queue, &floor, after, &tx) => match end {
            Ok(never) => match never {},
            Err(end) => end,
        },
        () = draining.wait() => End::Draining,
        () = tx.closed() => End::BrowserGone,
    }
}

async fn run_office(
    mut queue: QueueClient,
    floor: &Floor,
    after: Option<u64>,
    tx: &mpsc::Sender<Event>,
) -> Result<Infallible, End> {
    send(tx, Event::default().retry(RECONNECT_AFTER)).await?;
    let snapshot = status(&mut queue, floor).await?;
    // A first connection resumes from the snapshot: the snapshot's id
    // becomes the browser's Last-Event-ID.
    let mut last = after.unwrap_or(snapshot.last_sequence);
    let mut first = json_event("status", &snapshot);
    if after.is_none() {
        first = first.id(last.to_string());
    }
    send(tx, first).await?;
    let mut stream = watch(&mut queue, &floor.office_name, last).await?;
    let mut stale = false;
    let mut refresh = tokio::time::interval(STATUS_REFRESH);
    refresh.tick().await;
    loop {
        // Events first; a snapshot only once no event is waiting, so a
        // burst of calls reaches the page without snapshots in between.
        tokio::select! {
            biased;
            message = stream.message() => {
                let Some(message) = message.map_err(End::Queue)? else {
                    return Err(End::StreamEnded);
                };
                let Some(event) = message.event else { continue };
                if event.sequence <= last {
                    // The queue never repeats an event; this guard keeps
                    // the page's promise even if a replica ever did.
                    continue;
                }
                last = event.sequence;
                let view = EventView::of(floor, &event);
                let sse = match &view {
                    EventView::Call(call) => json_event("call", call),
                    EventView::Change(change) => json_event("change", change),
                };
                send(tx, sse.id(view.sequence().to_string())).await?;
                stale = true;
            }
            () = async {}, if stale => {
                stale = false;
                send(tx, json_event("status", &status(&mut queue, floor).await?)).await?;
            }
            _ = refresh.tick() => {
                send(tx, json_event("status", &status(&mut queue, floor).await?)).await?;
            }
        }
    }
}

/// Starts the feed of one ticket of `floor`. The caller checked the URL
/// token.
pub fn ticket_feed(
    queue: QueueClient,
    floor: Floor,
    ticket: String,
    draining: Draining,
) -> FeedResponse {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let end = follow_ticket(queue, floor, ticket, draining, tx).await;
        log_end("ticket", &end);
    });
    response(rx)
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

async fn follow_ticket(
    queue: QueueClient,
    floor: Floor,
    ticket: String,
    mut draining: Draining,
    tx: mpsc::Sender<Event>,
) -> End {
    tokio::select! {
        end = run_ticket(queue, &floor, &ticket, &tx) => match end {
            Ok(never) => match never {},
            Err(end) => end,
        },
        () = draining.wait() => End::Draining,
        () = tx.closed() => End::BrowserGone,
    }
}

async fn run_ticket(
    mut queue: QueueClient,
    floor: &Floor,
    ticket: &str,
    tx: &mpsc::Sender<Event>,
) -> Result<Infallible, End> {
    send(tx, Event::default().retry(RECONNECT_AFTER)).await?;
    // The office position first, the ticket second: every change after
    // the position is then seen by the stream, and one before it is
    // already in the first view.
    let position = status(&mut queue, floor).await?.last_sequence;
    let mut shown = ticket_view(&mut queue, floor, ticket)
        .await
        .map_err(End::Queue)?;
    send(tx, json_event("ticket", &shown)).await?;
    if shown.is_final() {
        return Err(End::StreamEnded);
    }
    let mut stream = watch(&mut queue, &floor.office_name, position).await?;
    let mut stale = false;
    loop {
        tokio::select! {
            biased;
            message = stream.message() => {
                if message.map_err(End::Queue)?.is_none() {
                    return Err(End::StreamEnded);
                }
                stale = true;
            }
            () = async {}, if stale => {
                stale = false;
                let view = ticket_view(&mut queue, floor, ticket).await.map_err(End::Queue)?;
                if view != shown {
                    send(tx, json_event("ticket", &view)).await?;
                    shown = view;
                    if shown.is_final() {
                        return Err(End::StreamEnded);
                    }
                }
            }
        }
    }
}
