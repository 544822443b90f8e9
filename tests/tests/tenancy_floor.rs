//! Two municipalities on one server's counter floor (issue 20): 大船渡市
//! (032034) and 陸前高田市 (032107) served from their own site directories,
//! on SQLite and PostgreSQL. Each issues and calls its own tickets with its
//! own prefixes; no queue RPC, list, watch, metric or signage page of one
//! shows or counts the other's tickets, counters or events; a principal of
//! one is refused (PERMISSION_DENIED with ErrorInfo OTHER_MUNICIPALITY) on
//! every name of the other, and a ticket id moved under its own office is
//! an unknown ticket (NOT_FOUND); a status URL of one city's ticket opened
//! under the other's path is 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signage_support;

use madoguchi::cli::Auth;
use madoguchi_e2e::{
    Backend, Client, OFFICE, RIKUZENTAKATA, RIKUZENTAKATA_OFFICE, Spawn, TestServer, client_at,
    on_both_backends, spawn,
};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::Clock;
use madoguchi_proto::prost_types::Timestamp;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::signage::v1 as spb;
use madoguchi_proto::signage::v1::signage_service_client::SignageServiceClient;
use signage_support::{SignageClient, SseReader, chromium, http_get};
use tonic::{Code, Status};
use tonic_types::StatusExt;

on_both_backends!(
    each_city_issues_and_calls_its_own_tickets_and_sees_only_them,
    a_principal_of_one_city_is_refused_on_every_name_of_the_other,
    signage_pages_and_status_urls_are_scoped_by_municipality,
    the_second_city_s_display_follows_its_own_calls_in_a_browser,
);

const OFUNATO: &str = "032034";

async fn two_cities(backend: Backend) -> TestServer {
    spawn(Spawn::new(backend).sites(&["ofunato", "rikuzentakata"])).await
}

async fn queue(t: &TestServer, role: Role, code: &str) -> Client {
    client_at(t.server.addr, role, code).await
}

async fn signage(t: &TestServer, role: Role, code: &str) -> SignageClient {
    let auth = Auth::bearer(&madoguchi_e2e::token(role, code).token).unwrap();
    SignageServiceClient::with_interceptor(t.channel().await, auth)
}

fn child(office: &str, kind: &str, id: &str) -> String {
    format!("{office}/{kind}/{id}")
}

async fn issue(client: &mut Client, office: &str, category: &str, request_id: &str) -> pb::Ticket {
    client
        .issue_ticket(pb::IssueTicketRequest {
            parent: office.into(),
            category: child(office, "categories", category),
            priority: false,
            request_id: request_id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("issue in {office}: {e:?}"))
        .into_inner()
}

async fn call(client: &mut Client, office: &str, counter: &str) -> pb::Ticket {
    client
        .call_next(pb::CallNextRequest {
            counter: child(office, "counters", counter),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("call in {office}: {e:?}"))
        .into_inner()
        .ticket
        .unwrap_or_else(|| panic!("nobody waiting at {office} counter {counter}"))
}

async fn list(client: &mut Client, office: &str) -> Vec<pb::Ticket> {
    client
        .list_tickets(pb::ListTicketsRequest {
            parent: office.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets
}

async fn status(client: &mut Client, office: &str) -> pb::OfficeStatus {
    client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: office.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The value of `madoguchi_queue_tickets_issued_total` for the office and
/// category, from the server's metrics text.
fn issued_metric(text: &str, office: &str, category: &str) -> Option<u64> {
    text.lines()
        .filter(|line| line.starts_with("madoguchi_queue_tickets_issued_total{"))
        .find(|line| {
            line.contains(&format!("office=\"{office}\""))
                && line.contains(&format!("category=\"{category}\""))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn each_city_issues_and_calls_its_own_tickets_and_sees_only_them(backend: Backend) {
    let t = two_cities(backend).await;
    let mut ofunato = queue(&t, Role::Staff, OFUNATO).await;
    let mut takata = queue(&t, Role::Staff, RIKUZENTAKATA).await;

    // One request id in both cities: idempotency is per office, so each
    // city gets its own ticket, not the other's replayed.
    let shared_request = uuid::Uuid::new_v4().to_string();
    let a1 = issue(&mut ofunato, OFFICE, "certificates", &shared_request).await;
    let s1 = issue(
        &mut takata,
        RIKUZENTAKATA_OFFICE,
        "certificates",
        &shared_request,
    )
    .await;
    let a2 = issue(&mut ofunato, OFFICE, "certificates", "").await;
    let w1 = issue(&mut takata, RIKUZENTAKATA_OFFICE, "welfare", "").await;
    let l1 = issue(&mut takata, RIKUZENTAKATA_OFFICE, "life-events", "").await;
    assert_ne!(a1.name, s1.name);
    // Each city numbers its own categories with its own prefixes, from 1.
    assert_eq!(a1.display_number, "A001");
    assert_eq!(a2.display_number, "A002");
    assert_eq!(s1.display_number, "S001");
    assert_eq!(w1.display_number, "W001");
    assert_eq!(l1.display_number, "L001");
    for ticket in [&a1, &a2] {
        assert!(ticket.name.starts_with(&format!("{OFFICE}/tickets/")));
    }
    for ticket in [&s1, &w1, &l1] {
        assert!(
            ticket
                .name
                .starts_with(&format!("{RIKUZENTAKATA_OFFICE}/tickets/"))
        );
    }
    // Waiting counts only the city's own line: S001 is first in its line
    // although two 大船渡市 certificates tickets were issued before it.
    assert_eq!(s1.people_ahead, 0);
    assert_eq!(a2.people_ahead, 1);

    // Both call, each from its own counters.
    let called_a = call(&mut ofunato, OFFICE, "1").await;
    assert_eq!(called_a.name, a1.name);
    let called_s = call(&mut takata, RIKUZENTAKATA_OFFICE, "1").await;
    assert_eq!(called_s.name, s1.name);
    assert_eq!(called_s.display_number, "S001");
    // Counter 4 of 陸前高田市 calls welfare (its own category, which
    // 大船渡市 does not have).
    let called_w = call(&mut takata, RIKUZENTAKATA_OFFICE, "4").await;
    assert_eq!(called_w.name, w1.name);

    // Lists: only the city's own tickets.
    let ofunato_list = list(&mut ofunato, OFFICE).await;
    let takata_list = list(&mut takata, RIKUZENTAKATA_OFFICE).await;
    let names = |tickets: &[pb::Ticket]| {
        let mut names: Vec<String> = tickets.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names
    };
    let mut expected = vec![a1.name.clone(), a2.name.clone()];
    expected.sort();
    assert_eq!(names(&ofunato_list), expected);
    let mut expected = vec![s1.name.clone(), w1.name.clone(), l1.name.clone()];
    expected.sort();
    assert_eq!(names(&takata_list), expected);

    // Office status: its own categories, counters, waiting and calls.
    let takata_status = status(&mut takata, RIKUZENTAKATA_OFFICE).await;
    let prefixes: Vec<&str> = takata_status
        .categories
        .iter()
        .map(|c| c.prefix.as_str())
        .collect();
    assert_eq!(prefixes, ["S", "L", "H", "W"]);
    assert_eq!(takata_status.counters.len(), 4);
    let certificates = &takata_status.categories[0];
    assert_eq!((certificates.issued_today, certificates.waiting), (1, 0));
    let life_events = &takata_status.categories[1];
    assert_eq!((life_events.issued_today, life_events.waiting), (1, 1));
    let at_counter_1 = takata_status.counters[0].current_ticket.as_ref().unwrap();
    assert_eq!(at_counter_1.name, s1.name);
    let ofunato_status = status(&mut ofunato, OFFICE).await;
    assert_eq!(ofunato_status.counters.len(), 6);
    assert_eq!(
        ofunato_status.counters[0]
            .current_ticket
            .as_ref()
            .unwrap()
            .name,
        a1.name
    );
    // Each log holds its own events only: 3 issues + 2 calls, 2 + 1.
    assert_eq!(takata_status.last_sequence, 5);
    assert_eq!(ofunato_status.last_sequence, 3);

    // Watch: the replay is the city's own log, and live it receives its
    // own next event, never the other city's that committed before it.
    let mut watch = takata
        .watch_office(pb::WatchOfficeRequest {
            office: RIKUZENTAKATA_OFFICE.into(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut replayed = Vec::new();
    while replayed.len() < 5 {
        let event = watch.message().await.unwrap().unwrap().event.unwrap();
        replayed.push(event);
    }
    assert_eq!(
        replayed.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    for event in &replayed {
        assert_eq!(event.office, RIKUZENTAKATA_OFFICE);
        let ticket = event.ticket.as_ref().unwrap();
        assert!(
            [&s1.name, &w1.name, &l1.name].contains(&&ticket.name),
            "{event:?}"
        );
    }
    let a3 = issue(&mut ofunato, OFFICE, "children", "").await;
    assert_eq!(a3.display_number, "E001");
    let h1 = issue(&mut takata, RIKUZENTAKATA_OFFICE, "insurance-pension", "").await;
    assert_eq!(h1.display_number, "H001");
    let live = watch.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(live.sequence, 6);
    assert_eq!(live.ticket.unwrap().name, h1.name);

    // Metrics: every series carries the office's full name, so the two
    // `main` offices never share one.
    let metrics = t.server.metrics.render().await;
    assert_eq!(
        issued_metric(&metrics, OFFICE, "certificates"),
        Some(2),
        "{metrics}"
    );
    assert_eq!(
        issued_metric(&metrics, RIKUZENTAKATA_OFFICE, "certificates"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        issued_metric(&metrics, RIKUZENTAKATA_OFFICE, "welfare"),
        Some(1)
    );
    assert!(metrics.contains(&format!(
        "madoguchi_queue_event_log_sequence{{office=\"{RIKUZENTAKATA_OFFICE}\"}} 6"
    )));
    assert!(metrics.contains(&format!(
        "madoguchi_queue_event_log_sequence{{office=\"{OFFICE}\"}} 4"
    )));
    drop(watch);
    t.server.shutdown().await.unwrap();
}

/// Asserts PERMISSION_DENIED with the ErrorInfo reason OTHER_MUNICIPALITY.
fn assert_other_municipality<T: std::fmt::Debug>(what: &str, result: Result<T, Status>) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "OTHER_MUNICIPALITY", "{what}");
}

async fn a_principal_of_one_city_is_refused_on_every_name_of_the_other(backend: Backend) {
    let t = two_cities(backend).await;
    let mut ofunato = queue(&t, Role::Staff, OFUNATO).await;
    let first = issue(&mut ofunato, OFFICE, "certificates", "").await;
    issue(&mut ofunato, OFFICE, "certificates", "").await;
    let called = call(&mut ofunato, OFFICE, "1").await;
    assert_eq!(called.name, first.name);

    // 陸前高田市's staff, admin, device and display tokens on 大船渡市's names.
    let mut staff = queue(&t, Role::Staff, RIKUZENTAKATA).await;
    let mut admin = queue(&t, Role::Admin, RIKUZENTAKATA).await;
    let mut device = queue(&t, Role::Device, RIKUZENTAKATA).await;
    let mut display = queue(&t, Role::Display, RIKUZENTAKATA).await;
    let category = child(OFFICE, "categories", "certificates");
    assert_other_municipality(
        "IssueTicket",
        staff
            .issue_ticket(pb::IssueTicketRequest {
                parent: OFFICE.into(),
                category: category.clone(),
                ..Default::default()
            })
            .await,
    );
    for client in [&mut staff, &mut admin, &mut display] {
        assert_other_municipality(
            "GetTicket",
            client
                .get_ticket(pb::GetTicketRequest {
                    name: called.name.clone(),
                })
                .await,
        );
        assert_other_municipality(
            "ListTickets",
            client
                .list_tickets(pb::ListTicketsRequest {
                    parent: OFFICE.into(),
                    ..Default::default()
                })
                .await,
        );
        assert_other_municipality(
            "GetOfficeStatus",
            client
                .get_office_status(pb::GetOfficeStatusRequest {
                    name: OFFICE.into(),
                })
                .await,
        );
        assert_other_municipality(
            "WatchOffice",
            client
                .watch_office(pb::WatchOfficeRequest {
                    office: OFFICE.into(),
                    after_sequence: 0,
                })
                .await,
        );
        assert_other_municipality(
            "ListDeviceHealth",
            client
                .list_device_health(pb::ListDeviceHealthRequest {
                    parent: OFFICE.into(),
                })
                .await,
        );
    }
    assert_other_municipality(
        "CallNext",
        staff
            .call_next(pb::CallNextRequest {
                counter: child(OFFICE, "counters", "1"),
                ..Default::default()
            })
            .await,
    );
    assert_other_municipality(
        "Recall",
        staff
            .recall(pb::RecallRequest {
                name: called.name.clone(),
                etag: String::new(),
            })
            .await,
    );
    assert_other_municipality(
        "MarkNoShow",
        staff
            .mark_no_show(pb::MarkNoShowRequest {
                name: called.name.clone(),
                etag: String::new(),
            })
            .await,
    );
    assert_other_municipality(
        "StartService",
        staff
            .start_service(pb::StartServiceRequest {
                name: called.name.clone(),
                etag: String::new(),
            })
            .await,
    );
    assert_other_municipality(
        "FinishService",
        staff
            .finish_service(pb::FinishServiceRequest {
                name: called.name.clone(),
                etag: String::new(),
            })
            .await,
    );
    assert_other_municipality(
        "Transfer",
        staff
            .transfer(pb::TransferRequest {
                name: called.name.clone(),
                category: child(OFFICE, "categories", "children"),
                ..Default::default()
            })
            .await,
    );
    assert_other_municipality(
        "CancelTicket",
        staff
            .cancel_ticket(pb::CancelTicketRequest {
                name: called.name.clone(),
                reason: pb::CancelReason::ResidentLeft as i32,
                ..Default::default()
            })
            .await,
    );
    assert_other_municipality(
        "LeaseNumbers",
        device
            .lease_numbers(pb::LeaseNumbersRequest {
                category: category.clone(),
                device: "kiosk-k1".into(),
                count: 5,
                request_id: String::new(),
            })
            .await,
    );
    assert_other_municipality(
        "ReportDeviceHealth",
        device
            .report_device_health(pb::ReportDeviceHealthRequest {
                health: Some(pb::DeviceHealth {
                    name: child(OFFICE, "devices", "printer-k1"),
                    kind: pb::DeviceKind::TicketPrinter as i32,
                    connected: true,
                    observe_time: Some(Timestamp {
                        seconds: t.clock.now().timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
            })
            .await,
    );

    // 大船渡市's ticket id under 陸前高田市's own office is no ticket of it.
    let id = called.name.rsplit('/').next().unwrap();
    let moved = child(RIKUZENTAKATA_OFFICE, "tickets", id);
    let error = staff
        .get_ticket(pb::GetTicketRequest {
            name: moved.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    let error = staff
        .start_service(pb::StartServiceRequest {
            name: moved,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error:?}");

    // Nothing of the above changed 大船渡市's floor: the ticket is still
    // called, the log still holds 2 issues and 1 call.
    let now = ofunato
        .get_ticket(pb::GetTicketRequest {
            name: called.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.state, pb::TicketState::Called as i32);
    assert_eq!(status(&mut ofunato, OFFICE).await.last_sequence, 3);
    assert_eq!(
        status(&mut staff, RIKUZENTAKATA_OFFICE).await.last_sequence,
        0
    );

    // Signage's gRPC API: the same refusal.
    let mut takata_device = signage(&t, Role::Device, RIKUZENTAKATA).await;
    assert_other_municipality(
        "GetBoardRouting",
        takata_device
            .get_board_routing(spb::GetBoardRoutingRequest {
                office: OFFICE.into(),
            })
            .await,
    );
    assert_other_municipality(
        "GetTicketStatusUrl",
        takata_device
            .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
                ticket: called.name.clone(),
            })
            .await,
    );
    assert_other_municipality(
        "SearchFloorGuide",
        takata_device
            .search_floor_guide(spb::SearchFloorGuideRequest {
                office: OFFICE.into(),
                query: "じゅうみんひょう".into(),
                language: "ja".into(),
            })
            .await,
    );
    t.server.shutdown().await.unwrap();
}

async fn signage_pages_and_status_urls_are_scoped_by_municipality(backend: Backend) {
    let t = two_cities(backend).await;
    let addr = t.server.addr;
    let mut ofunato = queue(&t, Role::Staff, OFUNATO).await;
    let mut takata = queue(&t, Role::Staff, RIKUZENTAKATA).await;
    let mut ofunato_device = signage(&t, Role::Device, OFUNATO).await;
    let mut takata_device = signage(&t, Role::Device, RIKUZENTAKATA).await;

    // Each city's board routing and guide come from its own signage.toml.
    let routing = takata_device
        .get_board_routing(spb::GetBoardRoutingRequest {
            office: RIKUZENTAKATA_OFFICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let entrance = routing.boards.iter().find(|b| b.id == "entrance").unwrap();
    assert_eq!(entrance.counters.len(), 4);
    assert_eq!(
        entrance.counters[3],
        child(RIKUZENTAKATA_OFFICE, "counters", "4")
    );
    let found = takata_device
        .search_floor_guide(spb::SearchFloorGuideRequest {
            office: RIKUZENTAKATA_OFFICE.into(),
            query: "ぜいきん".into(),
            language: "en".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.matches[0].id, "tax");
    assert_eq!(
        found.matches[0].category,
        child(RIKUZENTAKATA_OFFICE, "categories", "insurance-pension")
    );
    assert_eq!(found.matches[0].counter_display_number, "3");

    // The office feed of 陸前高田市: its own snapshot, then its own call
    // only, though 大船渡市 called first.
    let scope = |code: &str| format!("/signage/municipalities/{code}");
    let mut feed = SseReader::open(
        addr,
        &format!("{}/api/offices/main/feed", scope(RIKUZENTAKATA)),
        None,
    )
    .await;
    let snapshot = feed.next().await.unwrap();
    assert_eq!(snapshot.event, "status");
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot.data).unwrap();
    assert_eq!(snapshot["office_ja"], "陸前高田市役所");
    let prefixes: Vec<&str> = snapshot["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, ["S", "L", "H", "W"]);

    let a = issue(&mut ofunato, OFFICE, "certificates", "").await;
    assert_eq!(call(&mut ofunato, OFFICE, "1").await.name, a.name);
    let s = issue(&mut takata, RIKUZENTAKATA_OFFICE, "certificates", "").await;
    assert_eq!(
        call(&mut takata, RIKUZENTAKATA_OFFICE, "1").await.name,
        s.name
    );
    let mut events = Vec::new();
    while events.len() < 2 {
        let event = feed.next().await.unwrap();
        if event.event != "status" {
            events.push(event);
        }
    }
    assert_eq!(
        events
            .iter()
            .map(|e| e.id.clone().unwrap())
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(events[1].event, "call");
    let shown_call: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(shown_call["number"], "S-001");
    assert_eq!(shown_call["category_colour"], "#1B7F79");
    drop(feed);

    // Status URLs: each under its own municipality's scope.
    let url_of = |ticket: &pb::Ticket| spb::GetTicketStatusUrlRequest {
        ticket: ticket.name.clone(),
    };
    let a_path = ofunato_device
        .get_ticket_status_url(url_of(&a))
        .await
        .unwrap()
        .into_inner()
        .path;
    let s_path = takata_device
        .get_ticket_status_url(url_of(&s))
        .await
        .unwrap()
        .into_inner()
        .path;
    assert!(
        a_path.starts_with(&format!("{}/t/main/", scope(OFUNATO))),
        "{a_path}"
    );
    assert!(
        s_path.starts_with(&format!("{}/t/main/", scope(RIKUZENTAKATA))),
        "{s_path}"
    );
    let feed_of = |path: &str| path.replacen("/t/", "/api/t/", 1) + "/feed";
    for path in [&a_path, &s_path] {
        assert_eq!(http_get(addr, path).await.0, 200, "{path}");
    }
    // Its feed: the resident's own ticket, number and all.
    let mut ticket_feed = SseReader::open(addr, &feed_of(&s_path), None).await;
    let shown_ticket = ticket_feed.next().await.unwrap();
    assert_eq!(shown_ticket.event, "ticket");
    let shown_ticket: serde_json::Value = serde_json::from_str(&shown_ticket.data).unwrap();
    assert_eq!(shown_ticket["number"], "S-001");
    assert_eq!(shown_ticket["state"], "called");
    drop(ticket_feed);

    // One city's URL under the other's scope, or under the unscoped paths
    // that belong to the first city served (大船渡市): unknown ticket, no data.
    let swapped = s_path.replacen(&scope(RIKUZENTAKATA), &scope(OFUNATO), 1);
    let unscoped = s_path.replacen(&scope(RIKUZENTAKATA), "/signage", 1);
    let swapped_back = a_path.replacen(&scope(OFUNATO), &scope(RIKUZENTAKATA), 1);
    for path in [&swapped, &unscoped, &swapped_back] {
        for path in [path.clone(), feed_of(path)] {
            let (code, _, body) = http_get(addr, &path).await;
            assert_eq!(code, 404, "{path}");
            assert!(!body.contains("001"), "{path}: {body}");
        }
    }
    // The first city's URL without its scope still opens (tickets printed
    // before the server served several cities).
    let a_unscoped = a_path.replacen(&scope(OFUNATO), "/signage", 1);
    assert_eq!(http_get(addr, &a_unscoped).await.0, 200);

    // Pages and guide data per municipality; an unserved one is 404.
    for (code, office_ja, counters) in [
        (RIKUZENTAKATA, "陸前高田市役所", 4),
        (OFUNATO, "大船渡市役所 本庁舎", 6),
    ] {
        for page in ["display", "guide"] {
            let path = format!("{}/offices/main/{page}", scope(code));
            assert_eq!(http_get(addr, &path).await.0, 200, "{path}");
        }
        let (code_200, _, body) = http_get(
            addr,
            &format!("{}/api/offices/main/guide?lang=ja", scope(code)),
        )
        .await;
        assert_eq!(code_200, 200);
        let guide: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(guide["office_ja"], office_ja);
        assert_eq!(guide["counters"].as_array().unwrap().len(), counters);
    }
    assert_eq!(
        http_get(addr, "/signage/municipalities/131016/offices/main/display")
            .await
            .0,
        404
    );
    let (code, _, index) = http_get(addr, "/signage/").await;
    assert_eq!(code, 200);
    assert!(index.contains("陸前高田市") && index.contains("大船渡市"));
    assert!(index.contains(&format!("{}/offices/main/display", scope(RIKUZENTAKATA))));
    t.server.shutdown().await.unwrap();
}

/// The display page under the second city's scope, in Chromium: its
/// scripts find their feed under the same scope (the first city's display
/// runs unscoped in tests/tests/signage_browser.rs), and it shows its own
/// call, not the call 大船渡市 made just before.
async fn the_second_city_s_display_follows_its_own_calls_in_a_browser(backend: Backend) {
    let t = two_cities(backend).await;
    let mut ofunato = queue(&t, Role::Staff, OFUNATO).await;
    let mut takata = queue(&t, Role::Staff, RIKUZENTAKATA).await;
    let page = chromium(1920, 1080).await;
    page.browser
        .goto(&format!(
            "http://{}/signage/municipalities/{RIKUZENTAKATA}/offices/main/display",
            t.server.addr
        ))
        .await
        .unwrap();
    page.wait_for_text("#office", "陸前高田市役所").await;
    let a = issue(&mut ofunato, OFFICE, "certificates", "").await;
    assert_eq!(call(&mut ofunato, OFFICE, "1").await.name, a.name);
    let s = issue(&mut takata, RIKUZENTAKATA_OFFICE, "certificates", "").await;
    assert_eq!(
        call(&mut takata, RIKUZENTAKATA_OFFICE, "1").await.name,
        s.name
    );
    page.wait_for_text("#calling", "S-001").await;
    let calling = page
        .browser
        .execute(
            "return [...document.querySelectorAll('#calling .call')].map((c) => c.dataset.number);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(calling, serde_json::json!(["S-001"]));
    page.close().await;
    t.server.shutdown().await.unwrap();
}
