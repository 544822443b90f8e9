//! The edge gateway end to end: a real server on port 0 (SQLite and
//! PostgreSQL), the gateway as in production, and each device replaced by
//! its simulator speaking the real protocol over a pseudo-terminal.
//!
//! Nothing here sleeps to wait for something: each step awaits the event
//! it needs (a printed ticket, a board write) under a generous deadline
//! that only turns a hang into a failure.

use std::sync::Arc;
use std::time::Duration;

use madoguchi_e2e::floor::{Register, SimulatedFloor, within};
use madoguchi_e2e::*;
use madoguchi_gateway::devices::printer::sim::Paper;
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SharedClock;

on_both_backends!(
    button_to_ticket_to_board,
    out_of_paper_issues_nothing_and_staff_see_it,
    offline_tickets_are_imported_exactly_once,
);

type Floor = SimulatedFloor;

async fn floor(t: &TestServer) -> Floor {
    let clock: SharedClock = Arc::new(t.clock.clone());
    SimulatedFloor::start(&format!("http://{}", t.server.addr), clock, Register::No).await
}

/// `GET /metrics` of the gateway, over plain HTTP/1.1.
async fn scrape(floor: &Floor) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = floor
        .gateway
        .metrics_addr
        .unwrap_or_else(|| panic!("no metrics endpoint"));
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = String::new();
    within("the metrics", stream.read_to_string(&mut response))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
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

async fn issued_today(client: &mut Client, category_id: &str) -> u32 {
    client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .categories
        .iter()
        .find(|c| c.name == category(category_id))
        .map_or(0, |c| c.issued_today)
}

async fn button_to_ticket_to_board(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let floor = floor(&t).await;
    let mut staff = t.client(Role::Staff).await;

    // A resident presses 証明書 on the kiosk's panel.
    let printed = floor.press(1).await;
    let ticket = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .tickets
        .remove(0);
    // Numbers start at A001, or after the block the kiosk leased for
    // offline use if its lease came first.
    assert!(
        ticket.display_number == "A001" || ticket.display_number == "A011",
        "{}",
        ticket.display_number
    );
    assert!(!ticket.issued_offline);
    assert!(
        printed.contains(&ticket.display_number),
        "{}",
        printed.render_text()
    );
    assert!(
        printed.contains("証明書"),
        "category in Kanji: {}",
        printed.render_text()
    );
    assert!(
        printed.contains("オレンジ"),
        "the sign's colour: {}",
        printed.render_text()
    );
    assert!(printed.cut);
    // The QR is the ticket's own status page, as the signage service says.
    let qr = printed.qr.clone().unwrap_or_default();
    let ticket_id = ticket.name.rsplit('/').next().unwrap_or_default();
    assert!(
        qr.starts_with("http") && qr.contains("/signage/") && qr.contains(ticket_id),
        "QR links to the status page: {qr:?}"
    );

    // Counter 1 calls it: the board above counter 1 (unit 1) shows it.
    let called = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("nobody to call"));
    assert_eq!(called.display_number, ticket.display_number);
    floor.board_shows(1, &ticket.display_number).await;
    // Another counter's board was not touched.
    let other = floor.sims.lines["rs485-1f"].view(2);
    assert_eq!(other.and_then(|v| v.display.number), None);

    // A second ticket, a recall: the board follows every call.
    finish(&mut staff, &called.name).await;
    floor.press(1).await;
    let second = call(&mut staff, "1")
        .await
        .unwrap_or_else(|| panic!("nobody to call"));
    assert_ne!(second.display_number, ticket.display_number);
    floor.board_shows(1, &second.display_number).await;
    floor.gateway.shutdown().await;
}

async fn out_of_paper_issues_nothing_and_staff_see_it(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let floor = floor(&t).await;
    let mut staff = t.client(Role::Staff).await;
    let printer = &floor.sims.printers["k1"];
    let kiosk = &floor.gateway.kiosks["k1"];

    // A first ticket prints.
    floor.press(1).await;
    assert_eq!(issued_today(&mut staff, "certificates").await, 1);

    // The roll runs out: the next press must not count as issued.
    printer.set_paper(Paper::Out);
    let result = within("the kiosk's answer", kiosk.issue("certificates", false)).await;
    assert!(result.is_err(), "a ticket was reported without paper");
    assert_eq!(printer.printed().len(), 1);
    assert_eq!(
        issued_today(&mut staff, "certificates").await,
        1,
        "the unprinted ticket is not counted"
    );
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
    assert_eq!(waiting.len(), 1, "only the printed ticket waits");

    // Staff see the fault.
    within("the fault to reach the cluster", async {
        loop {
            let devices = staff
                .list_device_health(pb::ListDeviceHealthRequest {
                    parent: OFFICE.into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_inner()
                .devices;
            if devices
                .iter()
                .any(|d| d.name.ends_with("/devices/printer-k1") && d.paper_out && !d.ok)
            {
                return;
            }
            let mut health = kiosk.printer().health();
            let _ = tokio::time::timeout(Duration::from_millis(200), health.changed()).await;
        }
    })
    .await;

    // And so does the gateway's Prometheus endpoint.
    let metrics = scrape(&floor).await;
    assert!(
        metrics.contains(
            "madoguchi_gateway_printer_condition{device=\"printer-k1\",condition=\"paper_out\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("madoguchi_gateway_cluster_reachable 1"),
        "{metrics}"
    );

    // Paper back: printing resumes.
    printer.set_paper(Paper::Ok);
    within("printer health", async {
        let mut health = kiosk.printer().health();
        while health.borrow_and_update().paper_out {
            let _ = health.changed().await;
        }
    })
    .await;
    let printed = floor.press(1).await;
    assert_eq!(printer.printed().len(), 2, "{}", printed.render_text());
    assert_eq!(issued_today(&mut staff, "certificates").await, 2);
    floor.gateway.shutdown().await;
}

async fn offline_tickets_are_imported_exactly_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let floor = floor(&t).await;
    let kiosk = floor.gateway.kiosks["k1"].clone();
    let category_name = category("certificates");

    // While the link is up the kiosk leases numbers.
    kiosk
        .top_up()
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"));
    let day = "2026-04-01";
    assert_eq!(
        kiosk
            .store()
            .remaining("k1", &category_name, day)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        10
    );
    // Online issuing goes past the leased block.
    let online = floor.press(1).await;
    assert!(online.contains("A011"), "{}", online.render_text());

    // The cluster goes away; the kiosk keeps printing from its lease.
    let clock = t.clock.clone();
    let stopped = t.stop().await;
    clock.advance(chrono::TimeDelta::minutes(1));
    let first = floor.press(1).await;
    clock.advance(chrono::TimeDelta::minutes(1));
    let second = floor.press(1).await;
    assert!(first.contains("A001"), "{}", first.render_text());
    assert!(second.contains("A002"), "{}", second.render_text());
    // Both wait in the outbox (the second may still be awaiting its print
    // confirmation, which is recorded just after the paper came out).
    let pending = kiosk
        .store()
        .outbox_pending(100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pending.len(), 2);

    // The cluster is back: each is imported once, however often the
    // gateway retries.
    let t = stopped.restart().await;
    floor.gateway.housekeep().await;
    floor.gateway.housekeep().await;
    assert_eq!(
        kiosk.sync().await.unwrap_or_else(|e| panic!("{e}")),
        0,
        "nothing left to import"
    );
    let mut staff = t.client(Role::Staff).await;
    let tickets = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .tickets;
    let numbers: Vec<(&str, bool)> = tickets
        .iter()
        .map(|t| (t.display_number.as_str(), t.issued_offline))
        .collect();
    assert_eq!(
        numbers,
        [("A011", false), ("A001", true), ("A002", true)],
        "each offline ticket exactly once, marked as offline"
    );
    // They are called in the order they were printed, after the online one.
    let mut order = Vec::new();
    while let Some(ticket) = call(&mut staff, "1").await {
        order.push(ticket.display_number.clone());
        finish(&mut staff, &ticket.name).await;
    }
    assert_eq!(order, ["A011", "A001", "A002"]);
    // The follower found the cluster again and shows the last call.
    floor.board_shows(1, "A002").await;
    floor.gateway.shutdown().await;
}
