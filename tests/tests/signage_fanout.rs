//! The office feed's fan-out, on SQLite and PostgreSQL: a signage server
//! of its own (small ring and lag limits, so the edges are reached with a
//! few dozen events) follows the queue of a real server; many pages of one
//! office share one `WatchOffice` stream, each page receives every event
//! exactly once and in order whether it joined live, resumed inside the
//! ring or resumed before it (caught up from the queue's log), and a page
//! that stops reading neither blocks the others nor loses an event: it is
//! resynchronised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signage_support;

use std::net::SocketAddr;
use std::sync::Arc;

use madoguchi_e2e::{Backend, on_both_backends, token};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::server::{DrainSignal, drain_channel};
use madoguchi_platform::site::Site;
use madoguchi_signage::guide::Guide;
use madoguchi_signage::hub::FeedLimits;
use madoguchi_signage::status_url::StatusUrlKey;
use madoguchi_signage::{SignageApp, SignageOptions, SiteSignage};
use secrecy::SecretString;
use signage_support::*;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

on_both_backends!(
    pages_of_one_office_share_one_queue_stream_and_get_every_event_once,
    a_page_that_stops_reading_blocks_nobody_and_is_resynchronised,
    a_follower_without_pages_stops_and_the_next_page_starts_one,
);

const FEED: &str = "/signage/api/offices/main/feed";

/// A signage service with `limits` following the queue of `queue`. With
/// `send_buffer`, its sockets have a fixed send buffer of about that many
/// bytes (as on a slow link) instead of one the kernel grows to megabytes,
/// so a page that stops reading is felt after a few dozen events.
struct Signage {
    app: SignageApp,
    addr: SocketAddr,
    drain: DrainSignal,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

async fn signage(queue: &Floor, limits: FeedLimits, send_buffer: Option<u32>) -> Signage {
    let site = Site::load(&repo().join("sites/ofunato/site.toml")).unwrap();
    let options = SignageOptions {
        queue_url: format!("http://{}", queue.server.addr),
        public_url: "https://madoguchi.city.ofunato.example".into(),
        key: StatusUrlKey::new(SecretString::from("x".repeat(32))).unwrap(),
        feed: limits,
        sites: vec![SiteSignage {
            site,
            queue_token: token(Role::Display, "032034").token,
            guide: Guide::default(),
        }],
    };
    let (drain, draining) = drain_channel();
    let clock: SharedClock = Arc::new(queue.clock.clone());
    let app = SignageApp::new(options, clock, draining).unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = send_buffer {
        // Accepted sockets inherit it.
        socket.set_send_buffer_size(bytes).unwrap();
    }
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = socket.listen(64).unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = app.add_pages(Routes::new(app.service()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Signage {
        app,
        addr,
        drain,
        stop,
        served,
    }
}

impl Signage {
    async fn shutdown(self) {
        self.drain.drain();
        let _ = self.stop.send(());
        let _ = self.served.await;
    }
}

/// A page that joins now: its first event is the snapshot, whose id is
/// its resume point.
async fn join(addr: SocketAddr) -> (SseReader, u64) {
    let mut feed = SseReader::open(addr, FEED, None).await;
    let status = feed.next().await.unwrap();
    assert_eq!(status.event, "status");
    let start = status.id.unwrap().parse().unwrap();
    (feed, start)
}

/// Issues a ticket, calls it to counter 1 and finishes it: four events.
/// Returns the number called.
async fn one_visit(staff: &mut madoguchi_e2e::Client) -> String {
    issue_ticket(staff, "certificates").await;
    let called = call_next(staff, "1").await;
    serve_and_finish(staff, &called).await;
    shown(&called)
}

fn assert_every_event_once(
    page: &str,
    events: &[(u64, String, String)],
    after: u64,
    newest: u64,
    calls: &[String],
) {
    let ids: Vec<u64> = events.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        ids,
        ((after + 1)..=newest).collect::<Vec<_>>(),
        "{page}: every event after {after} once, in order"
    );
    let called: Vec<String> = events
        .iter()
        .filter(|(_, name, _)| name == "call")
        .map(|(_, _, data)| {
            let call: serde_json::Value = serde_json::from_str(data).unwrap();
            call["number"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(called, calls, "{page}: every call once");
}

async fn pages_of_one_office_share_one_queue_stream_and_get_every_event_once(backend: Backend) {
    let queue = spawn_all(backend).await;
    let mut staff = queue.queue(Role::Staff).await;
    let ring = 8;
    let signage = signage(
        &queue,
        FeedLimits {
            ring,
            ..FeedLimits::default()
        },
        None,
    )
    .await;

    // Six pages open; then calls go on while they follow.
    let mut live = Vec::new();
    for _ in 0..6 {
        live.push(join(signage.addr).await);
    }
    let start = live[0].1;
    assert!(live.iter().all(|(_, s)| *s == start), "one snapshot");
    let readers: Vec<_> = live
        .into_iter()
        .enumerate()
        .map(|(i, (mut feed, after))| {
            tokio::spawn(async move {
                // Reads until told the newest id, then checks it all.
                let mut events = Vec::new();
                while events.len() < 4 * 6 {
                    let event = feed.next().await.unwrap();
                    if let Some(id) = event.id {
                        events.push((id.parse::<u64>().unwrap(), event.event, event.data));
                    }
                }
                (format!("live page {i}"), after, events)
            })
        })
        .collect();
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.push(one_visit(&mut staff).await);
    }
    let newest = last_sequence(&mut staff).await;
    assert_eq!(newest, start + 4 * 6);
    for reader in readers {
        let (page, after, events) = reader.await.unwrap();
        assert_every_event_once(&page, &events, after, newest, &calls);
    }

    // Pages that come back: one inside the ring, two from before it (the
    // ring holds only the newest 8 of the 24 events).
    let inside = newest - 3;
    let mut feed = SseReader::open(signage.addr, FEED, Some(inside)).await;
    let events = feed.events_through(newest).await;
    assert_every_event_once("resumed in the ring", &events, inside, newest, &calls[5..]);
    assert_eq!(signage.app.feed_counts().catch_up_streams, 0);
    let mut behind = Vec::new();
    for after in [start, start + 5] {
        behind.push((
            after,
            SseReader::open(signage.addr, FEED, Some(after)).await,
        ));
    }
    // More calls while they catch up.
    for _ in 0..2 {
        calls.push(one_visit(&mut staff).await);
    }
    let newest = last_sequence(&mut staff).await;
    for (after, mut feed) in behind {
        let events = feed.events_through(newest).await;
        let expected: Vec<String> = calls[((after - start) / 4) as usize..].to_vec();
        assert_every_event_once("resumed before the ring", &events, after, newest, &expected);
    }

    // A page whose resume point is not in the log (a database restored
    // from an older backup) starts over instead of waiting in silence.
    let mut feed = SseReader::open(signage.addr, FEED, Some(newest + 100)).await;
    let reset = feed.next().await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.id, Some(newest.to_string()));
    calls.push(one_visit(&mut staff).await);
    let events = feed.events_through(newest + 4).await;
    assert_every_event_once("reset page", &events, newest, newest + 4, &calls[8..]);

    // Ten pages, one follower stream; two catch-ups from the log.
    let counts = signage.app.feed_counts();
    println!("{backend:?}: {counts:?}");
    assert_eq!(counts.office_streams, 1, "{counts:?}");
    assert_eq!(counts.catch_up_streams, 2, "{counts:?}");
    assert_eq!(counts.resyncs, 0, "{counts:?}");
    signage.shutdown().await;
    queue.stop().await;
}

async fn a_page_that_stops_reading_blocks_nobody_and_is_resynchronised(backend: Backend) {
    let queue = spawn_all(backend).await;
    let mut staff = queue.queue(Role::Staff).await;
    // A connection may fall 2 items behind the broadcast and buffers one
    // event before waiting for its browser.
    let signage = signage(
        &queue,
        FeedLimits {
            ring: 1024,
            lag: 2,
            buffer: 1,
            ..FeedLimits::default()
        },
        Some(4096),
    )
    .await;
    let (mut reading, start) = join(signage.addr).await;
    // The other page reads all the time; what it got so far is published
    // through a watch channel.
    let (got_tx, mut got) = tokio::sync::watch::channel(Vec::<(u64, String, String)>::new());
    let reader = tokio::spawn(async move {
        while let Some(event) = reading.next().await {
            if let Some(id) = event.id {
                got_tx.send_modify(|got| got.push((id.parse().unwrap(), event.event, event.data)));
            }
        }
    });
    let mut stalled = SseReader::open_slow(signage.addr, FEED, 2048).await;
    let first = stalled.next().await.unwrap();
    assert_eq!(first.id, Some(start.to_string()));

    // The stalled page reads nothing during 40 visits (160 events; its
    // socket buffers, the server's write queue, its connection's buffer
    // and its 2 items of broadcast lag hold a few dozen); the other page
    // gets every event meanwhile.
    let mut calls = Vec::new();
    for _ in 0..40 {
        calls.push(one_visit(&mut staff).await);
    }
    let newest = last_sequence(&mut staff).await;
    let events = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        got.wait_for(|got| got.last().is_some_and(|(id, _, _)| *id >= newest)),
    )
    .await
    .expect("the reading page is not held back by the stalled one")
    .unwrap()
    .clone();
    assert_every_event_once("reading page", &events, start, newest, &calls);

    // Once it reads again it has everything, once, in order.
    let events = stalled.events_through(newest).await;
    assert_every_event_once("stalled page", &events, start, newest, &calls);
    let counts = signage.app.feed_counts();
    assert!(
        counts.resyncs >= 1,
        "the stalled page never fell behind; the test proves nothing: {counts:?}"
    );
    println!("{backend:?}: {counts:?}");
    assert_eq!(counts.office_streams, 1, "{counts:?}");
    reader.abort();
    signage.shutdown().await;
    queue.stop().await;
}

async fn a_follower_without_pages_stops_and_the_next_page_starts_one(backend: Backend) {
    let queue = spawn_all(backend).await;
    let mut staff = queue.queue(Role::Staff).await;
    let linger = std::time::Duration::from_millis(50);
    let signage = signage(
        &queue,
        FeedLimits {
            linger,
            ..FeedLimits::default()
        },
        None,
    )
    .await;

    // A page open through many linger periods keeps its follower: its
    // calls arrive on the first and only follower stream.
    let (mut page, start) = join(signage.addr).await;
    tokio::time::sleep(linger * 6).await;
    let calls = vec![one_visit(&mut staff).await];
    let newest = last_sequence(&mut staff).await;
    let events = page.events_through(newest).await;
    assert_every_event_once("open page", &events, start, newest, &calls);
    let counts = signage.app.feed_counts();
    assert_eq!(
        (counts.office_streams, counts.live_offices),
        (1, 1),
        "{counts:?}"
    );

    // The last page closes: the follower stops and lets go of its
    // WatchOffice stream.
    drop(page);
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while signage.app.feed_counts().live_offices != 0 {
            tokio::time::sleep(linger).await;
        }
    })
    .await
    .expect("the follower of an office without pages never stopped");

    // The next page starts a follower of its own and misses nothing.
    let (mut page, start) = join(signage.addr).await;
    let calls = vec![one_visit(&mut staff).await];
    let newest = last_sequence(&mut staff).await;
    let events = page.events_through(newest).await;
    assert_every_event_once("next page", &events, start, newest, &calls);
    let counts = signage.app.feed_counts();
    assert_eq!(
        (counts.office_streams, counts.live_offices),
        (2, 1),
        "{counts:?}"
    );
    signage.shutdown().await;
    queue.stop().await;
}
