//! The queue service end to end: a real server on port 0, the generated
//! client, on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;
use futures::StreamExt;
use madoguchi_e2e::*;
use madoguchi_platform::auth::Role;
use tonic::Code;

on_both_backends!(
    a_visit_through_two_counters,
    concurrent_issues_get_distinct_numbers,
    concurrent_calls_never_share_a_visit,
    calls_are_fifo_within_priority,
    issue_is_idempotent_on_request_id,
    call_next_is_idempotent_on_request_id,
    watch_replays_then_follows_and_resumes_exactly,
    numbers_restart_each_day_and_wrap_past_tickets_in_use,
    daily_quota_is_enforced,
    recall_limit_turns_into_no_show,
    stale_etag_is_aborted,
    wait_estimate_learns_from_service_times,
    people_ahead_follow_the_line_order,
);

fn state(ticket: &pb::Ticket) -> pb::TicketState {
    pb::TicketState::try_from(ticket.state).unwrap_or(pb::TicketState::Unspecified)
}

async fn call(client: &mut Client, counter_id: &str) -> Option<pb::Ticket> {
    client
        .call_next(pb::CallNextRequest {
            counter: counter(counter_id),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("call_next: {e}"))
        .into_inner()
        .ticket
}

async fn finish(client: &mut Client, name: &str) -> pb::Ticket {
    client
        .finish_service(pb::FinishServiceRequest {
            name: name.to_owned(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"))
        .into_inner()
}

async fn office_status(client: &mut Client) -> pb::OfficeStatus {
    client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("get_office_status: {e}"))
        .into_inner()
}

async fn a_visit_through_two_counters(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;

    let first = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(first.display_number, "A001");
    assert_eq!(state(&first), pb::TicketState::Waiting);
    assert_eq!(first.people_ahead, 0);
    let second = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(second.display_number, "A002");
    assert_eq!(second.people_ahead, 1);
    let estimate = second.wait_estimate.unwrap_or_default();
    assert!(estimate.max_minutes >= estimate.min_minutes && estimate.max_minutes > 0);

    t.clock.advance(TimeDelta::minutes(3));
    let called = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("someone waits"));
    assert_eq!(called.name, first.name);
    assert_eq!(state(&called), pb::TicketState::Called);
    assert_eq!(called.current_counter, counter("1"));

    // A counter with an open ticket cannot call another.
    let busy = staff
        .call_next(pb::CallNextRequest {
            counter: counter("1"),
            ..Default::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("busy counter called again"));
    assert_eq!(busy.code(), Code::FailedPrecondition);

    staff
        .start_service(pb::StartServiceRequest {
            name: first.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    t.clock.advance(TimeDelta::minutes(4));
    // The life-event counter sends the resident on to pensions: same
    // ticket, same arrival, a second leg.
    let moved = staff
        .transfer(pb::TransferRequest {
            name: first.name.clone(),
            category: category("insurance-pension"),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(moved.display_number, "A001");
    assert_eq!(moved.issue_time, first.issue_time);
    assert_eq!(state(&moved), pb::TicketState::Waiting);
    assert_eq!(moved.legs.len(), 2);
    assert_eq!(
        moved.legs[0].service_duration.as_ref().map(|d| d.seconds),
        Some(240)
    );
    assert_eq!(
        moved.legs[0].wait_duration.as_ref().map(|d| d.seconds),
        Some(180)
    );

    let again = call(&mut staff, "4")
        .await
        .unwrap_or_else(|| panic!("transferred ticket waits"));
    assert_eq!(again.name, first.name);
    t.clock.advance(TimeDelta::minutes(2));
    let done = finish(&mut staff, &first.name).await;
    assert_eq!(state(&done), pb::TicketState::Done);
    assert_eq!(
        done.legs[1].service_duration.as_ref().map(|d| d.seconds),
        Some(120)
    );

    let events: Vec<_> = kiosk
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .take(7)
        .map(|m| {
            m.unwrap_or_else(|e| panic!("{e}"))
                .event
                .unwrap_or_default()
        })
        .collect()
        .await;
    let kinds: Vec<_> = events.iter().map(|e| (e.sequence, e.r#type)).collect();
    use pb::EventType::*;
    assert_eq!(
        kinds,
        [
            (1, TicketIssued as i32),
            (2, TicketIssued as i32),
            (3, TicketCalled as i32),
            (4, ServiceStarted as i32),
            (5, TicketTransferred as i32),
            (6, TicketCalled as i32),
            (7, ServiceFinished as i32),
        ]
    );
    assert_eq!(events[4].from_category, category("certificates"));
    assert_eq!(events[5].counter, counter("4"));

    let listed = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(listed.tickets.len(), 1);
    let rest = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            page_size: 10,
            page_token: listed.next_page_token.clone(),
            business_day: Some(madoguchi_proto::types::v1::Date {
                year: 2026,
                month: 4,
                day: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(rest.tickets.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let status = office_status(&mut staff).await;
    assert_eq!(status.last_sequence, 7);
    assert_eq!(status.categories[0].waiting, 1);
    assert_eq!(status.categories[0].issued_today, 2);
    t.server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

async fn concurrent_issues_get_distinct_numbers(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let kiosk = t.client(Role::Device).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let mut kiosk = kiosk.clone();
            tokio::spawn(async move { kiosk.issue_ticket(issue("certificates", false)).await })
        })
        .collect();
    let mut numbers = HashSet::new();
    for task in tasks {
        let ticket = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert!(
            numbers.insert(ticket.number),
            "number {} handed out twice",
            ticket.number
        );
    }
    assert_eq!(numbers, (1..=200).collect::<HashSet<u32>>());
}

async fn concurrent_calls_never_share_a_visit(backend: Backend) {
    // Twenty counters that all serve certificates.
    let mut site = sample_site();
    for id in 10..30 {
        site.push_str(&format!(
            "\n[[offices.counters]]\nid = \"{id}\"\ndisplay_number = \"{id}\"\nfloor = 2\ncolour = \"#E8833A\"\ncategories = [\"certificates\"]\n"
        ));
    }
    let t = spawn(Spawn::new(backend).site(site)).await;
    let mut kiosk = t.client(Role::Device).await;
    for _ in 0..30 {
        kiosk
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let staff = t.client(Role::Staff).await;
    let tasks: Vec<_> = (10..30)
        .map(|id| {
            let mut staff = staff.clone();
            tokio::spawn(async move { call(&mut staff, &id.to_string()).await })
        })
        .collect();
    let mut called = HashSet::new();
    for task in tasks {
        let ticket = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("30 wait for 20 counters"));
        assert!(
            called.insert(ticket.name.clone()),
            "{} called to two counters",
            ticket.display_number
        );
    }
    assert_eq!(called.len(), 20);
    // The twenty called are exactly the twenty that came first.
    let numbers: HashSet<String> = staff
        .clone()
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            states: vec![pb::TicketState::Called as i32],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .tickets
        .into_iter()
        .map(|t| t.display_number)
        .collect();
    let expected: HashSet<String> = (1..=20).map(|n| format!("A{n:03}")).collect();
    assert_eq!(numbers, expected);
}

async fn calls_are_fifo_within_priority(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    // Counter 2 serves certificates (A) and life events (B).
    let plan = [
        ("certificates", false),
        ("life-events", false),
        ("certificates", true),
        ("life-events", true),
        ("certificates", false),
    ];
    let mut issued = Vec::new();
    for (category_id, priority) in plan {
        let ticket = kiosk
            .issue_ticket(issue(category_id, priority))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        issued.push(ticket.display_number);
        t.clock.advance(TimeDelta::seconds(10));
    }
    assert_eq!(issued, ["A001", "B001", "A002", "B002", "A003"]);
    let mut order = Vec::new();
    while let Some(ticket) = call(&mut staff, "2").await {
        order.push(ticket.display_number.clone());
        finish(&mut staff, &ticket.name).await;
    }
    // Priority first (in arrival order), then everyone else in arrival order.
    assert_eq!(order, ["A002", "B002", "A001", "B001", "A003"]);
}

async fn issue_is_idempotent_on_request_id(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let request = issue("certificates", false);
    let first = kiosk
        .issue_ticket(request.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let retry = kiosk
        .issue_ticket(request.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(first.name, retry.name);
    assert_eq!(retry.number, 1);
    // Concurrent retries of one request still produce one ticket.
    let racing = issue("life-events", false);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut kiosk = kiosk.clone();
            let racing = racing.clone();
            tokio::spawn(async move { kiosk.issue_ticket(racing).await })
        })
        .collect();
    let mut names = HashSet::new();
    for task in tasks {
        names.insert(
            task.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
                .into_inner()
                .name,
        );
    }
    assert_eq!(names.len(), 1);

    let mut reused = request.clone();
    reused.category = category("children");
    let error = kiosk
        .issue_ticket(reused)
        .await
        .err()
        .unwrap_or_else(|| panic!("reuse accepted"));
    assert_eq!(error.code(), Code::InvalidArgument);
    let status = office_status(&mut t.client(Role::Staff).await).await;
    let issued: u32 = status.categories.iter().map(|c| c.issued_today).sum();
    assert_eq!(issued, 2, "retries must not issue tickets");
}

async fn call_next_is_idempotent_on_request_id(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    for _ in 0..2 {
        kiosk
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let request = pb::CallNextRequest {
        counter: counter("1"),
        categories: vec![],
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let first = staff
        .call_next(request.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .ticket;
    // The response was "lost"; the retry must not call the next resident.
    let retry = staff
        .call_next(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .ticket;
    assert_eq!(first.map(|t| t.name), retry.map(|t| t.name));
    let waiting = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            states: vec![pb::TicketState::Waiting as i32],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .tickets;
    assert_eq!(waiting.len(), 1);
}

async fn watch_replays_then_follows_and_resumes_exactly(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut board = t.client(Role::Display).await;
    kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = board
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(next(&mut stream).await.sequence, 1);
    // Live: an event committed after the replay arrives without polling.
    kiosk
        .issue_ticket(issue("children", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let live = next(&mut stream).await;
    assert_eq!(
        (live.sequence, live.ticket.map(|t| t.display_number)),
        (2, Some("E001".into()))
    );
    drop(stream);

    // While disconnected, three more changes happen.
    for _ in 0..3 {
        kiosk
            .issue_ticket(issue("life-events", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut resumed = board
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 2,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut resumed).await.sequence);
    }
    assert_eq!(seen, [3, 4, 5]);
    kiosk
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        next(&mut resumed).await.sequence,
        6,
        "no duplicates, no gaps"
    );

    let ahead = board
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 99,
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("a sequence ahead of the log was accepted"));
    assert_eq!(ahead.code(), Code::FailedPrecondition);

    // Shutdown ends open streams with UNAVAILABLE so clients reconnect.
    t.server.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let end = tokio::time::timeout(Duration::from_secs(10), resumed.message())
        .await
        .unwrap_or_else(|_| panic!("stream not ended by shutdown"));
    match end {
        Err(status) => assert_eq!(status.code(), Code::Unavailable),
        Ok(None) => {}
        Ok(Some(m)) => panic!("unexpected event after shutdown: {m:?}"),
    }
}

async fn next(stream: &mut tonic::Streaming<pb::WatchOfficeResponse>) -> pb::OfficeEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap_or_else(|_| panic!("no event within 10 s"))
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|m| m.event)
        .unwrap_or_else(|| panic!("stream ended"))
}

fn small_site(max_number: u32, quota: u32) -> String {
    sample_site()
        .replace("max_number = 999", &format!("max_number = {max_number}"))
        .replacen(
            "default_service_minutes = 5",
            &format!("default_service_minutes = 5\ndaily_quota = {quota}"),
            1,
        )
}

async fn numbers_restart_each_day_and_wrap_past_tickets_in_use(backend: Backend) {
    let t = spawn(Spawn::new(backend).site(small_site(3, 0))).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let mut numbers = Vec::new();
    for _ in 0..3 {
        numbers.push(
            kiosk
                .issue_ticket(issue("certificates", false))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_inner()
                .number,
        );
    }
    assert_eq!(numbers, [1, 2, 3]);
    // All three wait: the range is exhausted, nothing is numbered twice.
    let full = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .err()
        .unwrap_or_else(|| panic!("fourth ticket with three numbers"));
    assert_eq!(full.code(), Code::ResourceExhausted);
    // A002 is served and leaves; the wrap skips 1 (still waiting) to reach 2.
    let first = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("A001 waits"));
    assert_eq!(first.number, 1);
    let _ = staff
        .transfer(pb::TransferRequest {
            name: first.name.clone(),
            category: category("life-events"),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("A002 waits"));
    assert_eq!(second.number, 2);
    finish(&mut staff, &second.name).await;
    let wrapped = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        wrapped.display_number, "A002",
        "1 is in use (transferred), 2 is free"
    );

    // Midnight in Tokyo (15:00 UTC) starts a new business day at 1, except
    // that numbers still on the floor are skipped.
    t.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-04-02T00:00:01+09:00")
            .map(|d| d.to_utc())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let next_day = kiosk
        .issue_ticket(issue("children", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(next_day.display_number, "E001");
    assert_eq!(next_day.business_day.map(|d| d.day), Some(2));
    // Yesterday's A001 (transferred, waiting), A002 and A003 are still on
    // the floor: a new day does not hand their numbers out again.
    let full = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .err()
        .unwrap_or_else(|| panic!("duplicate number"));
    assert_eq!(full.code(), Code::ResourceExhausted);
    let a003 = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            business_day: Some(madoguchi_proto::types::v1::Date {
                year: 2026,
                month: 4,
                day: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .tickets
        .into_iter()
        .find(|t| t.display_number == "A003")
        .unwrap_or_else(|| panic!("A003 listed"));
    staff
        .cancel_ticket(pb::CancelTicketRequest {
            name: a003.name,
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cert = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(cert.display_number, "A003", "1 and 2 are still in use");
    let status = office_status(&mut staff).await;
    assert_eq!(status.business_day.map(|d| d.day), Some(2));
    assert_eq!(status.categories[0].issued_today, 1);
}

async fn daily_quota_is_enforced(backend: Backend) {
    let t = spawn(Spawn::new(backend).site(small_site(999, 2))).await;
    let mut kiosk = t.client(Role::Device).await;
    for _ in 0..2 {
        kiosk
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let error = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .err()
        .unwrap_or_else(|| panic!("quota ignored"));
    assert_eq!(error.code(), Code::ResourceExhausted);
    use tonic_types::StatusExt;
    assert_eq!(
        error.get_details_error_info().map(|i| i.reason),
        Some("DAILY_QUOTA_REACHED".to_owned())
    );
    // Other categories are unaffected; the next day the quota is fresh.
    kiosk
        .issue_ticket(issue("children", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    t.clock.advance(TimeDelta::days(1));
    kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn recall_limit_turns_into_no_show(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    call(&mut staff, "1").await;
    for expected in 1..=3 {
        let recalled = staff
            .recall(pb::RecallRequest {
                name: ticket.name.clone(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert_eq!(
            (state(&recalled), recalled.recall_count),
            (pb::TicketState::Called, expected)
        );
    }
    let gone = staff
        .recall(pb::RecallRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(state(&gone), pb::TicketState::NoShow);
    assert!(gone.current_counter.is_empty());
    // A closed ticket cannot be called or served again.
    let error = staff
        .start_service(pb::StartServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("served a no-show"));
    assert_eq!(error.code(), Code::FailedPrecondition);
    // The counter is free again.
    kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(call(&mut staff, "1").await.is_some());
}

async fn stale_etag_is_aborted(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let issued = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let called = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("waiting"));
    let error = staff
        .cancel_ticket(pb::CancelTicketRequest {
            name: issued.name.clone(),
            etag: issued.etag.clone(),
            ..Default::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("stale etag accepted"));
    assert_eq!(error.code(), Code::Aborted);
    let cancelled = staff
        .cancel_ticket(pb::CancelTicketRequest {
            name: issued.name.clone(),
            etag: called.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(state(&cancelled), pb::TicketState::Cancelled);
}

async fn wait_estimate_learns_from_service_times(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    // Four services of 10 minutes each at counter 1.
    for _ in 0..4 {
        kiosk
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ticket = call(&mut staff, "1")
            .await
            .unwrap_or_else(|| panic!("waiting"));
        staff
            .start_service(pb::StartServiceRequest {
                name: ticket.name.clone(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        t.clock.advance(TimeDelta::minutes(10));
        finish(&mut staff, &ticket.name).await;
    }
    for _ in 0..3 {
        kiosk
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let fourth = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let estimate = fourth.wait_estimate.unwrap_or_default();
    assert_eq!(fourth.people_ahead, 3);
    // 3 ahead × 10 min ÷ 1 open counter, measured (not the 5-min default).
    assert_eq!(
        (
            estimate.min_minutes,
            estimate.max_minutes,
            estimate.sample_size,
            estimate.open_counters
        ),
        (30, 30, 4, 1)
    );
}

async fn people_ahead_follow_the_line_order(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut issue_one = async |priority: bool| {
        kiosk
            .issue_ticket(issue("certificates", priority))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner()
    };
    let ahead = [
        issue_one(false).await.people_ahead,
        issue_one(false).await.people_ahead,
        // Priority goes before everyone without it, behind earlier priority.
        issue_one(true).await.people_ahead,
        issue_one(true).await.people_ahead,
        issue_one(false).await.people_ahead,
    ];
    assert_eq!(ahead, [0, 1, 0, 1, 4]);
    // Another category's line is apart.
    let other = kiosk
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(other.people_ahead, 0);
    let status = office_status(&mut t.client(Role::Staff).await).await;
    let waiting = |id: &str| {
        status
            .categories
            .iter()
            .find(|c| c.name == category(id))
            .map(|c| c.waiting)
    };
    assert_eq!(
        (waiting("certificates"), waiting("life-events")),
        (Some(5), Some(1))
    );
}
