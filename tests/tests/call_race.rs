//! `CallNext` under contention, at the queue store on both backends: the
//! optimistic claim (read, then write only if the office's sequence has not
//! moved) and the locked fallback each hand every ticket to one counter,
//! in line order, with one event per call and no gap in the log.
//!
//! Writers of one process take turns per office, so on PostgreSQL the race
//! runs on two stores sharing the database, as two replicas do: their calls
//! lose optimistic claims to each other and retry or fall back to the lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use madoguchi_e2e::*;
use madoguchi_platform::clock::ManualClock;
use madoguchi_platform::site::Site;
use madoguchi_platform::storage;
use madoguchi_queue::domain::{OfficeChild, OfficeName};
use madoguchi_queue::notify::EventBus;
use madoguchi_queue::storage::QueueStore;
use secrecy::SecretString;
use tempfile::TempDir;

on_both_backends!(
    racing_calls_take_the_line_in_order,
    racing_calls_take_the_line_in_order_under_the_lock,
    one_request_id_sent_at_once_calls_once,
    cancelled_calls_leave_nothing_half_done,
    calls_after_a_read_take_the_window_in_line_order,
    an_issue_in_between_drops_the_window,
    another_replicas_write_is_caught_by_the_sequence_check,
    a_refilled_window_is_caught_by_another_replicas_write,
    a_window_call_at_a_busy_counter_is_refused,
    a_retried_call_replays_instead_of_calling_from_the_window,
);

/// Twenty counters that serve certificates (ids 10..30).
const COUNTERS: std::ops::Range<u32> = 10..30;

/// One store on SQLite (one process owns the file), two on PostgreSQL.
async fn stores(
    backend: Backend,
    call_attempts: Option<usize>,
) -> (Vec<QueueStore>, Option<TempDir>) {
    let replicas = if backend == Backend::Postgres { 2 } else { 1 };
    stores_on(backend, call_attempts, replicas).await
}

/// `replicas` stores on one database, each with its own bus (as separate
/// processes without the PostgreSQL listener: none hears of the others'
/// writes).
async fn stores_on(
    backend: Backend,
    call_attempts: Option<usize>,
    replicas: usize,
) -> (Vec<QueueStore>, Option<TempDir>) {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("queue.db").display()
            );
            (url, Some(dir))
        }
        Backend::Postgres => (fresh_postgres_database().await, None),
    };
    let mut site = sample_site();
    for id in COUNTERS {
        site.push_str(&format!(
            "\n[[offices.counters]]\nid = \"{id}\"\ndisplay_number = \"{id}\"\nfloor = 2\ncolour = \"#E8833A\"\ncategories = [\"certificates\"]\n"
        ));
    }
    let site = Site::parse(&site).unwrap_or_else(|e| panic!("{e}"));
    let start = chrono::DateTime::parse_from_rfc3339("2026-04-01T09:00:00+09:00")
        .unwrap_or_else(|e| panic!("{e}"))
        .to_utc();
    let clock = Arc::new(ManualClock::new(start));
    let mut stores = Vec::new();
    for _ in 0..replicas {
        let db = storage::connect(&SecretString::from(url.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut store = QueueStore::new(db, clock.clone(), EventBus::new());
        if let Some(attempts) = call_attempts {
            store = store.with_call_attempts(attempts);
        }
        store.prepare(&site).await.unwrap_or_else(|e| panic!("{e}"));
        stores.push(store);
    }
    (stores, dir)
}

/// Issues one certificates ticket.
async fn issue_certificate(store: &QueueStore, priority: bool) -> pb::Ticket {
    let certificates = child(&category("certificates"), "categories");
    store
        .issue_ticket(&office(), &certificates, priority, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn office() -> OfficeName {
    OfficeName::parse(OFFICE).unwrap_or_else(|e| panic!("{e}"))
}

fn child(name: &str, collection: &str) -> OfficeChild {
    OfficeChild::parse(name, collection).unwrap_or_else(|e| panic!("{e}"))
}

async fn racing_calls_take_the_line_in_order(backend: Backend) {
    race(backend, None).await;
}

async fn racing_calls_take_the_line_in_order_under_the_lock(backend: Backend) {
    race(backend, Some(0)).await;
}

/// Thirty waiting (every sixth with priority), then twenty counters call
/// at once while ten more tickets are issued: the calls lose optimistic
/// claims to each other and to the issues, and must still take exactly the
/// twenty at the head of the line.
async fn race(backend: Backend, call_attempts: Option<usize>) {
    let (stores, _dir) = stores(backend, call_attempts).await;
    let store = &stores[0];
    let mut waiting = Vec::new();
    for i in 0..30 {
        waiting.push(issue_certificate(store, i % 6 == 5).await);
    }
    let mut tasks = Vec::new();
    for id in COUNTERS {
        let store = stores[id as usize % stores.len()].clone();
        let counter = child(&counter(&id.to_string()), "counters");
        tasks.push(tokio::spawn(async move {
            store.call_next(&counter, &[], None).await
        }));
    }
    let issuers: Vec<_> = (0..10)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move { issue_certificate(&store, false).await })
        })
        .collect();
    let mut called = HashMap::new();
    for (task, id) in tasks.into_iter().zip(COUNTERS) {
        let ticket = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("counter {id}: {e}"))
            .unwrap_or_else(|| panic!("counter {id} found nobody waiting"));
        assert_eq!(ticket.current_counter, counter(&id.to_string()));
        assert!(
            called.insert(ticket.name.clone(), id).is_none(),
            "{} called to two counters",
            ticket.display_number
        );
    }
    for issuer in issuers {
        issuer.await.unwrap_or_else(|e| panic!("{e}"));
    }

    // The head of the line: the five with priority, then the first fifteen.
    let (priority, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|t| t.priority);
    let head: HashSet<String> = priority
        .into_iter()
        .chain(rest.into_iter().take(15))
        .map(|t| t.name)
        .collect();
    assert_eq!(called.keys().cloned().collect::<HashSet<_>>(), head);

    // The log: 30 + 10 issues and 20 calls, numbered without a gap, one
    // call event per called ticket, each carrying its own sequence.
    let events = store
        .events_after(OFFICE, 0, 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=60).collect::<Vec<u64>>());
    let calls: Vec<&pb::OfficeEvent> = events
        .iter()
        .filter(|e| e.r#type == pb::EventType::TicketCalled as i32)
        .collect();
    assert_eq!(calls.len(), 20);
    for event in calls {
        let ticket = event.ticket.as_ref().unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(ticket.sequence, event.sequence);
        assert_eq!(ticket.state, pb::TicketState::Called as i32);
        let id = called
            .get(&ticket.name)
            .unwrap_or_else(|| panic!("{} was not called", ticket.display_number));
        assert_eq!(event.counter, counter(&id.to_string()));
        assert_eq!(ticket.current_counter, event.counter);
    }
}

/// A client that retries before the first answer arrived: eight copies of
/// one call at once call one ticket, once, and all eight get it back.
async fn one_request_id_sent_at_once_calls_once(backend: Backend) {
    let (stores, _dir) = stores(backend, None).await;
    let store = &stores[0];
    for _ in 0..3 {
        issue_certificate(store, false).await;
    }
    let request_id = uuid::Uuid::new_v4();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let counter = child(&counter("10"), "counters");
            tokio::spawn(async move { store.call_next(&counter, &[], Some(request_id)).await })
        })
        .collect();
    let mut names = HashSet::new();
    for task in tasks {
        let ticket = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("nobody waiting"));
        names.insert(ticket.name);
    }
    assert_eq!(names.len(), 1, "one call, one ticket: {names:?}");
    let events = store
        .events_after(OFFICE, 0, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = events
        .iter()
        .filter(|e| e.r#type == pb::EventType::TicketCalled as i32)
        .count();
    assert_eq!(calls, 1);
    assert_eq!(events.len(), 4);
}

/// A call dropped part-way (the client gave up, the deadline passed) at
/// each of many points: it happened wholly or not at all, and the
/// connection it held is not left inside a transaction — the calls and
/// issues after it work, and the log has one event per call, no gap.
async fn cancelled_calls_leave_nothing_half_done(backend: Backend) {
    let (stores, _dir) = stores(backend, None).await;
    let store = &stores[0];
    for _ in 0..30 {
        issue_certificate(store, false).await;
    }
    // The k-th call is polled k times, 0.1 ms apart (a blocking pause, so
    // the database work in flight moves on meanwhile), then dropped: the
    // early ones stop before or inside the read, later ones inside the
    // write or just after it.
    for (polls, id) in (1..).zip(COUNTERS) {
        let counter = child(&counter(&id.to_string()), "counters");
        let call = store.call_next(&counter, &[], None);
        tokio::pin!(call);
        for _ in 0..polls {
            if futures::poll!(call.as_mut()).is_ready() {
                break;
            }
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(100)))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    // Every counter calls again: a counter whose call went through is busy,
    // one whose call was dropped gets the next ticket.
    let mut busy = 0;
    for id in COUNTERS {
        let counter = child(&counter(&id.to_string()), "counters");
        match store.call_next(&counter, &[], None).await {
            Ok(Some(_)) => {}
            Err(e) if e.reason() == "COUNTER_BUSY" => busy += 1,
            other => panic!("counter {id}: {other:?}"),
        }
    }
    // Twenty counters hold twenty tickets, each called once.
    let events = store
        .events_after(OFFICE, 0, 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=50).collect::<Vec<u64>>(),
        "{busy} were busy"
    );
    let called: HashSet<String> = events
        .iter()
        .filter(|e| e.r#type == pb::EventType::TicketCalled as i32)
        .filter_map(|e| e.ticket.as_ref().map(|t| t.name.clone()))
        .collect();
    assert_eq!(called.len(), 20);
    issue_certificate(store, false).await;
}

/// The office's log, checked to hold exactly the sequences `1..=last`:
/// one event per write, none lost, none twice.
async fn gapless_log(store: &QueueStore, last: u64) -> Vec<pb::OfficeEvent> {
    let events = store
        .events_after(OFFICE, 0, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=last).collect::<Vec<u64>>());
    events
}

/// Calls `counter` `id` on `store` and returns the ticket called.
async fn call_at(store: &QueueStore, id: u32) -> pb::Ticket {
    let counter = child(&counter(&id.to_string()), "counters");
    store
        .call_next(&counter, &[], None)
        .await
        .unwrap_or_else(|e| panic!("counter {id}: {e}"))
        .unwrap_or_else(|| panic!("counter {id} found nobody waiting"))
}

/// Twelve waiting, every fourth with priority, called one after another at
/// twelve counters: the line order (priority first, then arrival), with
/// one read — the first call's read brings the next seven heads, and the
/// eighth call's write, which empties that window, reads the last four
/// itself — and every other call made by its write alone.
async fn calls_after_a_read_take_the_window_in_line_order(backend: Backend) {
    let (stores, _dir) = stores_on(backend, None, 1).await;
    let store = &stores[0];
    let mut waiting = Vec::new();
    for i in 0..12 {
        waiting.push(issue_certificate(store, i % 4 == 3).await);
    }
    let (priority, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|t| t.priority);
    let line: Vec<String> = priority.into_iter().chain(rest).map(|t| t.name).collect();
    let mut called = Vec::new();
    for id in COUNTERS.take(12) {
        let ticket = call_at(store, id).await;
        assert_eq!(ticket.current_counter, counter(&id.to_string()));
        assert_eq!(ticket.state, pb::TicketState::Called as i32);
        called.push(ticket.name);
    }
    assert_eq!(called, line);
    let paths = store.call_paths();
    assert_eq!((paths.read, paths.window, paths.stale), (1, 11, 0));
    // What the window's calls stored and logged is what a read's call
    // would have: each ticket called, one event each, no gap.
    let events = gapless_log(store, 24).await;
    for (event, name) in events[12..].iter().zip(&called) {
        let ticket = event.ticket.as_ref().unwrap_or_else(|| panic!("no ticket"));
        assert_eq!(&ticket.name, name);
        assert_eq!(ticket.sequence, event.sequence);
        let stored = store
            .get_ticket(&child(name, "tickets"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored.state, pb::TicketState::Called as i32);
        assert_eq!(stored.current_counter, event.counter);
    }
    assert!(
        store
            .call_next(&child(&counter("29"), "counters"), &[], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "the line is empty"
    );
}

/// A priority ticket issued by the same process after a call: the window
/// that call kept no longer heads the line, so the next call reads (and
/// does not even try the window) and takes the priority ticket.
async fn an_issue_in_between_drops_the_window(backend: Backend) {
    let (stores, _dir) = stores_on(backend, None, 1).await;
    let store = &stores[0];
    for _ in 0..5 {
        issue_certificate(store, false).await;
    }
    call_at(store, 10).await;
    let urgent = issue_certificate(store, true).await;
    assert_eq!(call_at(store, 11).await.name, urgent.name);
    let paths = store.call_paths();
    assert_eq!((paths.read, paths.window, paths.stale), (2, 0, 0));
}

/// The same, but the priority ticket comes from another replica whose
/// write this process never hears of: the window looks current, its write
/// finds the office's sequence moved and applies nothing, and the call
/// reads and takes the priority ticket. The log stays gapless.
async fn another_replicas_write_is_caught_by_the_sequence_check(backend: Backend) {
    let paths = a_replica_issues_between_calls(backend, 5, 1).await;
    assert_eq!((paths.read, paths.window, paths.stale), (2, 4, 1));
}

/// A window a call's write read for the calls after it (the window before
/// ran dry) is as current as one a read brought: another replica's
/// priority ticket, issued after it, is caught by the sequence check and
/// called first, and the line goes on in order. One read brings eight
/// heads, seven calls take them from its window and the last of those
/// reads the three heads left.
async fn a_refilled_window_is_caught_by_another_replicas_write(backend: Backend) {
    let paths = a_replica_issues_between_calls(backend, 11, 8).await;
    assert_eq!((paths.read, paths.window, paths.stale), (2, 10, 1));
}

/// `waiting` tickets issued here; `before` of them called here, then a
/// priority ticket issued by another replica, then every ticket called
/// here: the priority ticket first, then the rest in line, with a gapless
/// log. Returns how this replica's calls went.
async fn a_replica_issues_between_calls(
    backend: Backend,
    waiting: usize,
    before: usize,
) -> madoguchi_queue::storage::CallPaths {
    let (stores, _dir) = stores_on(backend, None, 2).await;
    let (here, there) = (&stores[0], &stores[1]);
    let mut line = Vec::new();
    for _ in 0..waiting {
        line.push(issue_certificate(here, false).await.name);
    }
    let mut counters = COUNTERS;
    for i in 0..=waiting {
        if i == before {
            assert_eq!(here.call_paths().stale, 0);
            line.insert(before, issue_certificate(there, true).await.name);
        }
        let id = counters
            .next()
            .unwrap_or_else(|| panic!("too few counters"));
        assert_eq!(call_at(here, id).await.name, line[i], "call {i}");
    }
    gapless_log(here, 2 * waiting as u64 + 2).await;
    here.call_paths()
}

/// A counter that still has its ticket open calls again while a window is
/// current: the window's write checks the counter too, so the call is
/// refused with COUNTER_BUSY, and the ticket at the window's head is still
/// waiting for the next counter.
async fn a_window_call_at_a_busy_counter_is_refused(backend: Backend) {
    let (stores, _dir) = stores_on(backend, None, 1).await;
    let store = &stores[0];
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(issue_certificate(store, false).await);
    }
    assert_eq!(call_at(store, 10).await.name, waiting[0].name);
    let again = store
        .call_next(&child(&counter("10"), "counters"), &[], None)
        .await;
    match again {
        Err(e) => assert_eq!(e.reason(), "COUNTER_BUSY", "{e:?}"),
        Ok(ticket) => panic!("a busy counter called {ticket:?}"),
    }
    assert_eq!(call_at(store, 11).await.name, waiting[1].name);
    let paths = store.call_paths();
    assert_eq!(paths.stale, 1);
    let events = store
        .events_after(OFFICE, 0, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 5, "three issues and two calls");
}

/// A client retries its call (same request id) after the answer was lost,
/// while the window the first attempt kept is current: the retry gets the
/// same ticket back, and nothing more is called or logged.
async fn a_retried_call_replays_instead_of_calling_from_the_window(backend: Backend) {
    let (stores, _dir) = stores_on(backend, None, 1).await;
    let store = &stores[0];
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(issue_certificate(store, false).await);
    }
    let request_id = Some(uuid::Uuid::new_v4());
    let counter_10 = child(&counter("10"), "counters");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let ticket = store
            .call_next(&counter_10, &[], request_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("nobody waiting"));
        answers.push(ticket.name);
    }
    assert_eq!(answers, [waiting[0].name.clone(), waiting[0].name.clone()]);
    // A new request id at another counter takes the next in line.
    let next = store
        .call_next(
            &child(&counter("11"), "counters"),
            &[],
            Some(uuid::Uuid::new_v4()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("nobody waiting"));
    assert_eq!(next.name, waiting[1].name);
    let events = store
        .events_after(OFFICE, 0, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 5, "three issues and two calls");
}
