//! Offline ticketing and device health through the queue's API: number
//! leases, imports that keep the printed number, issue time and place in
//! line, exactly once under retries and races; voiding a ticket the kiosk
//! could not print; device health visible to staff.

use chrono::{DateTime, TimeDelta, Utc};
use madoguchi_e2e::*;
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::Clock;
use madoguchi_proto::prost_types::Timestamp;
use tonic::Code;

on_both_backends!(
    leased_numbers_are_skipped_and_imports_keep_their_place,
    imports_are_exactly_once_under_retry_and_race,
    a_number_is_never_imported_twice,
    tickets_of_an_earlier_day_are_recorded_closed,
    an_unprinted_ticket_does_not_count_as_issued,
    device_health_is_visible_to_staff,
);

fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

async fn lease(client: &mut Client, category_id: &str, count: u32) -> pb::NumberLease {
    client
        .lease_numbers(pb::LeaseNumbersRequest {
            category: category(category_id),
            device: "kiosk-k1".into(),
            count,
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"))
        .into_inner()
}

fn offline(lease: &pb::NumberLease, number: u32, at: DateTime<Utc>) -> pb::OfflineTicket {
    pb::OfflineTicket {
        offline_id: uuid::Uuid::new_v4().to_string(),
        lease: lease.name.clone(),
        number,
        priority: false,
        issue_time: Some(ts(at)),
    }
}

async fn import(
    client: &mut Client,
    tickets: Vec<pb::OfflineTicket>,
) -> Result<Vec<pb::ImportResult>, tonic::Status> {
    client
        .import_offline_tickets(pb::ImportOfflineTicketsRequest {
            parent: OFFICE.into(),
            tickets,
        })
        .await
        .map(|r| r.into_inner().results)
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

async fn finish(client: &mut Client, name: &str) {
    client
        .finish_service(pb::FinishServiceRequest {
            name: name.to_owned(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
}

async fn status(client: &mut Client) -> pb::OfficeStatus {
    client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("status: {e}"))
        .into_inner()
}

fn issued_today(status: &pb::OfficeStatus, category_id: &str) -> u32 {
    status
        .categories
        .iter()
        .find(|c| c.name == category(category_id))
        .map_or(0, |c| c.issued_today)
}

async fn leased_numbers_are_skipped_and_imports_keep_their_place(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let start = t.clock.now();

    let first = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(first.display_number, "A001");
    let lease = lease(&mut kiosk, "certificates", 5).await;
    assert_eq!(lease.numbers, vec![2, 3, 4, 5, 6]);
    assert_eq!(lease.prefix, "A");

    // Online issuing goes past the leased block.
    t.clock.advance(TimeDelta::minutes(5));
    let online = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(online.display_number, "A007");

    // Printed offline at 09:02 and 09:03, imported at 09:10.
    t.clock.advance(TimeDelta::minutes(5));
    let results = import(
        &mut kiosk,
        vec![
            offline(&lease, 2, start + TimeDelta::minutes(2)),
            offline(&lease, 3, start + TimeDelta::minutes(3)),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("import: {e}"));
    assert_eq!(results.len(), 2);
    for (result, number) in results.iter().zip(["A002", "A003"]) {
        let ticket = result.ticket.as_ref().unwrap_or_else(|| panic!("ticket"));
        assert!(!result.already_imported);
        assert_eq!(ticket.display_number, number);
        assert!(ticket.issued_offline, "staff can see it came in offline");
        assert_eq!(ticket.issuing_device, "kiosk-k1");
        assert!(ticket.import_time.is_some());
        assert_eq!(ticket.state, pb::TicketState::Waiting as i32);
    }
    let a002 = results[0].ticket.clone().unwrap_or_default();
    assert_eq!(
        a002.issue_time.as_ref().map(|t| t.seconds),
        Some((start + TimeDelta::minutes(2)).timestamp()),
        "the original issue time is kept"
    );
    assert_eq!(a002.people_ahead, 1, "only A001 was issued before it");

    // Called in issue-time order, whatever the import order.
    let mut order = Vec::new();
    while let Some(ticket) = call(&mut staff, "1").await {
        order.push(ticket.display_number.clone());
        finish(&mut staff, &ticket.name).await;
    }
    assert_eq!(order, ["A001", "A002", "A003", "A007"]);
    assert_eq!(issued_today(&status(&mut staff).await, "certificates"), 4);
}

async fn imports_are_exactly_once_under_retry_and_race(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let lease = lease(&mut kiosk, "life-events", 10).await;
    let at = t.clock.now();
    let batch: Vec<pb::OfflineTicket> = lease
        .numbers
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, n)| offline(&lease, *n, at + TimeDelta::seconds(i as i64)))
        .collect();

    // Four gateways' worth of retries at once: the link came back and
    // every attempt raced.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = t.client(Role::Device).await;
        let batch = batch.clone();
        tasks.push(tokio::spawn(
            async move { import(&mut client, batch).await },
        ));
    }
    let mut fresh = 0;
    let mut names = std::collections::HashSet::new();
    for task in tasks {
        let results = task
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("import: {e}"));
        for r in results {
            fresh += usize::from(!r.already_imported);
            names.insert(r.ticket.unwrap_or_default().name);
        }
    }
    assert_eq!(fresh, 6, "each ticket imported once");
    assert_eq!(names.len(), 6, "every retry answers with the same tickets");

    let list = kiosk
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(list.tickets.len(), 6);

    // A retry later is still answered, not queued again.
    let again = import(&mut kiosk, batch.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.iter().all(|r| r.already_imported));
    // The same offline id with other contents is refused.
    let mut changed = batch[0].clone();
    changed.priority = true;
    let err = import(&mut kiosk, vec![changed])
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::InvalidArgument);
}

async fn a_number_is_never_imported_twice(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let lease = lease(&mut kiosk, "certificates", 2).await;
    let at = t.clock.now();
    import(&mut kiosk, vec![offline(&lease, lease.numbers[0], at)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Another offline id claiming the same printed number.
    let err = import(
        &mut kiosk,
        vec![
            offline(&lease, lease.numbers[1], at),
            offline(&lease, lease.numbers[0], at),
        ],
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("number imported twice"));
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Nothing of the failed batch was written: the second number is free.
    let ok = import(&mut kiosk, vec![offline(&lease, lease.numbers[1], at)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!ok[0].already_imported);

    // Numbers outside the lease and bad fields.
    let err = import(&mut kiosk, vec![offline(&lease, 900, at)])
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::InvalidArgument);
    let future = offline(&lease, lease.numbers[1], at + TimeDelta::hours(3));
    let err = import(&mut kiosk, vec![future])
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = kiosk
        .lease_numbers(pb::LeaseNumbersRequest {
            category: category("certificates"),
            device: "Kiosk K1".into(),
            count: 0,
            request_id: String::new(),
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::InvalidArgument);
    // Another municipality cannot import into this office.
    let mut foreign = t.foreign_client().await;
    let err = import(&mut foreign, vec![offline(&lease, lease.numbers[1], at)])
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn tickets_of_an_earlier_day_are_recorded_closed(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let lease = lease(&mut kiosk, "certificates", 3).await;
    let printed = t.clock.now() + TimeDelta::hours(7);
    // The link came back only the next morning.
    t.clock.advance(TimeDelta::hours(24));
    let results = import(&mut kiosk, vec![offline(&lease, lease.numbers[0], printed)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ticket = results[0].ticket.clone().unwrap_or_default();
    assert_eq!(ticket.state, pb::TicketState::Cancelled as i32);
    assert!(ticket.issued_offline);
    assert!(call(&mut staff, "1").await.is_none(), "nobody to call");
    // Yesterday's lease reserves nothing today.
    let today = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(today.display_number, "A001");
}

async fn an_unprinted_ticket_does_not_count_as_issued(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(issued_today(&status(&mut staff).await, "certificates"), 1);
    let voided = kiosk
        .cancel_ticket(pb::CancelTicketRequest {
            name: ticket.name.clone(),
            etag: String::new(),
            reason: pb::CancelReason::NotPrinted as i32,
        })
        .await
        .unwrap_or_else(|e| panic!("void: {e}"))
        .into_inner();
    assert_eq!(voided.state, pb::TicketState::Cancelled as i32);
    assert_eq!(issued_today(&status(&mut staff).await, "certificates"), 0);
    assert!(call(&mut staff, "1").await.is_none());

    // A device may not cancel for other reasons, nor void a called ticket.
    let other = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let err = kiosk
        .cancel_ticket(pb::CancelTicketRequest {
            name: other.name.clone(),
            etag: String::new(),
            reason: pb::CancelReason::ResidentLeft as i32,
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::PermissionDenied);
    call(&mut staff, "1").await;
    let err = kiosk
        .cancel_ticket(pb::CancelTicketRequest {
            name: other.name,
            etag: String::new(),
            reason: pb::CancelReason::NotPrinted as i32,
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(issued_today(&status(&mut staff).await, "certificates"), 1);
}

async fn device_health_is_visible_to_staff(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut gateway = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let report = |paper_out: bool| pb::ReportDeviceHealthRequest {
        health: Some(pb::DeviceHealth {
            name: format!("{OFFICE}/devices/printer-k1"),
            kind: pb::DeviceKind::TicketPrinter as i32,
            connected: true,
            paper_out,
            last_error: if paper_out {
                "paper out".into()
            } else {
                String::new()
            },
            observe_time: Some(ts(t.clock.now())),
            ..Default::default()
        }),
    };
    let stored = gateway
        .report_device_health(report(true))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(!stored.ok);
    assert_eq!(stored.gateway, "test-device");
    let list = staff
        .list_device_health(pb::ListDeviceHealthRequest {
            parent: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(list.devices.len(), 1);
    assert!(list.devices[0].paper_out);
    gateway
        .report_device_health(report(false))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let list = staff
        .list_device_health(pb::ListDeviceHealthRequest {
            parent: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(
        list.devices[0].ok,
        "the latest report replaces the previous"
    );

    // Staff cannot report, and a report without a kind is refused.
    let err = staff
        .report_device_health(report(false))
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut bad = report(false);
    if let Some(h) = bad.health.as_mut() {
        h.kind = 0;
        h.last_error = "line\nbreak".into();
    }
    let err = gateway
        .report_device_health(bad)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_details_bad_request(&err)
        .unwrap_or_else(|| panic!("no field violations"));
    let fields: Vec<_> = details
        .field_violations
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(fields, ["health.kind", "health.last_error"]);
}
