//! The signage service without a browser: its gRPC API (board routing,
//! status URLs, guide search) with bad input and tenancy, the public HTTP
//! surface beside authenticated gRPC on one port, and the office feed's
//! resume contract at the SSE level — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signage_support;

use madoguchi_e2e::{Backend, OFFICE, OTHER_MUNICIPALITY, on_both_backends};
use madoguchi_platform::auth::Role;
use madoguchi_proto::signage::v1 as spb;
use signage_support::*;
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    grpc_api_answers_and_rejects_precisely,
    pages_are_public_and_grpc_is_not,
    office_feed_resumes_after_last_event_id_without_gaps_or_repeats,
    call_to_sse_event_latency_is_measured,
);

async fn grpc_api_answers_and_rejects_precisely(backend: Backend) {
    let floor = spawn_all(backend).await;
    let mut device = floor.signage(Role::Device, "032034").await;

    // Board routing: every board of the signage file, counters as names.
    let routing = device
        .get_board_routing(spb::GetBoardRoutingRequest {
            office: OFFICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let entrance = routing.boards.iter().find(|b| b.id == "entrance").unwrap();
    assert_eq!(entrance.address, 10);
    assert_eq!(entrance.line, "rs485-1f");
    assert_eq!(entrance.counters.len(), 6);
    assert_eq!(entrance.counters[2], format!("{OFFICE}/counters/3"));
    let board3 = routing.boards.iter().find(|b| b.id == "counter-3").unwrap();
    assert_eq!(board3.counters, [format!("{OFFICE}/counters/3")]);

    // Status URL of a real ticket: stable, absolute, and its page answers.
    let mut staff = floor.queue(Role::Staff).await;
    let ticket = issue_ticket(&mut staff, "certificates").await;
    let url = device
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        url.url.starts_with(
            "https://madoguchi.city.ofunato.example/signage/municipalities/032034/t/main/"
        ),
        "{}",
        url.url
    );
    assert!(url.url.ends_with(&url.path));
    let again = device
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.url, url.url, "a reprint gets the same url");
    let (status, _, _) = http_get(floor.server.addr, &url.path).await;
    assert_eq!(status, 200);
    // The first (here the only) municipality served also answers without
    // its scope, as before several municipalities shared a server.
    let unscoped = url
        .path
        .replacen("/signage/municipalities/032034/", "/signage/", 1);
    assert_eq!(http_get(floor.server.addr, &unscoped).await.0, 200);
    // One character off, or another ticket's id with this token: not found.
    let mut forged = url.path.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(http_get(floor.server.addr, &forged).await.0, 404);
    let other = issue_ticket(&mut staff, "certificates").await;
    let other_id = other.name.rsplit('/').next().unwrap();
    let token = url.path.rsplit('/').next().unwrap();
    assert_eq!(
        http_get(
            floor.server.addr,
            &format!("/signage/municipalities/032034/t/main/{other_id}/{token}")
        )
        .await
        .0,
        404
    );

    // Guide search by kana, in English.
    let found = device
        .search_floor_guide(spb::SearchFloorGuideRequest {
            office: OFFICE.into(),
            query: "ひっこし".into(),
            language: "en".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = &found.matches[0];
    assert_eq!(first.id, "moving");
    assert_eq!(first.counter_display_number, "3");
    assert_eq!(first.colour, "#2E86C1");
    assert_eq!(first.category, format!("{OFFICE}/categories/life-events"));
    assert!(first.title.contains("moved"), "{}", first.title);

    // Bad input: every violation at once, as field violations.
    let error = device
        .search_floor_guide(spb::SearchFloorGuideRequest {
            office: "offices/main".into(),
            query: String::new(),
            language: "fr".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let fields: Vec<String> = error
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["office", "query", "language"]);
    let error = device
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: format!("{OFFICE}/tickets/Not Valid"),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    // Unknown office of our municipality: not found.
    let error = device
        .get_board_routing(spb::GetBoardRoutingRequest {
            office: "municipalities/032034/offices/annex".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // Tenancy and roles.
    let mut foreign = floor.signage(Role::Admin, OTHER_MUNICIPALITY).await;
    let error = foreign
        .get_board_routing(spb::GetBoardRoutingRequest {
            office: OFFICE.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut display = floor.signage(Role::Display, "032034").await;
    let error = display
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: ticket.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    floor.stop().await;
}

async fn pages_are_public_and_grpc_is_not(backend: Backend) {
    let floor = spawn_all(backend).await;
    let addr = floor.server.addr;
    for path in [
        "/signage/",
        "/signage/offices/main/display",
        "/signage/offices/main/guide",
        "/signage/static/display.js",
        "/signage/api/offices/main/guide?lang=ko",
    ] {
        let (status, _, _) = http_get(addr, path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, body) = http_get(addr, "/signage/api/offices/main/guide?lang=en").await;
    assert_eq!(status, 200);
    let guide: serde_json::Value =
        serde_json::from_str(body.trim_matches(|c: char| c != '{' && c != '}'))
            .unwrap_or_else(|e| panic!("{e}: {body}"));
    // The clock stands in April 2026: the railway ad is on air, the
    // expired campaign is not.
    let ads: Vec<&str> = guide["ads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ads, ["sanriku-railway"]);
    assert_eq!(guide["floors"][0]["name"], "1F");
    for (path, code) in [
        ("/signage/offices/annex/display", 404),
        ("/signage/api/offices/main/guide?lang=fr", 400),
        ("/signage/static/site.toml", 404),
        ("/signage/t/main/x/short", 404),
    ] {
        assert_eq!(http_get(addr, path).await.0, code, "{path}");
    }
    // gRPC stays authenticated on the same port; a plain GET of a gRPC
    // method's path is not a page.
    let channel = tonic::transport::Channel::from_shared(floor.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let error = spb::signage_service_client::SignageServiceClient::new(channel)
        .get_board_routing(spb::GetBoardRoutingRequest {
            office: OFFICE.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    let (status, _, _) = http_get(addr, "/madoguchi.queue.v1.QueueService/GetOfficeStatus").await;
    assert_eq!(status, 404);
    floor.stop().await;
}

/// What a browser sends for a page.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// A GET as a browser sends it; returns the status and the response head
/// (read up to the blank line, so it works on a feed that never ends).
async fn browser_head(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {BROWSER_ACCEPT}\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut head = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
        head.push('\n');
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

/// The value of `name` (lowercase) in a lowercased response head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Every public response — pages, assets, JSON, feeds, and the errors
/// among them — carries a strict Content-Security-Policy that forbids
/// framing, `nosniff` and `no-referrer` (issue #23). A browser asking for
/// any other path gets 404, not a gRPC answer, while gRPC keeps its
/// statuses: UNIMPLEMENTED for an unknown method, UNAUTHENTICATED without
/// a token. The browser tests show the pages still work under the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_responses_carry_protective_headers_and_other_paths_are_404() {
    let floor = spawn_all(Backend::Sqlite).await;
    let addr = floor.server.addr;
    let mut staff = floor.queue(Role::Staff).await;
    let ticket = issue_ticket(&mut staff, "certificates").await;
    let status_path = floor
        .signage(Role::Device, "032034")
        .await
        .get_ticket_status_url(spb::GetTicketStatusUrlRequest {
            ticket: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .path;
    let feed_path = status_path.replacen("/t/", "/api/t/", 1) + "/feed";

    let mut routes = vec![
        ("/signage/".to_owned(), 200),
        ("/signage/offices/main/display".to_owned(), 200),
        ("/signage/offices/main/guide".to_owned(), 200),
        (status_path, 200),
        ("/signage/api/offices/main/guide?lang=ja".to_owned(), 200),
        (
            "/signage/api/offices/main/guide/search?q=juminhyo&lang=en".to_owned(),
            200,
        ),
        ("/signage/api/offices/main/feed".to_owned(), 200),
        (feed_path, 200),
        (
            "/signage/municipalities/032034/offices/main/display".to_owned(),
            200,
        ),
        (
            "/signage/municipalities/032034/api/offices/main/feed".to_owned(),
            200,
        ),
        (
            "/signage/municipalities/032107/offices/main/display".to_owned(),
            404,
        ),
        ("/signage/offices/annex/display".to_owned(), 404),
        ("/signage/api/offices/main/guide?lang=fr".to_owned(), 400),
        ("/signage/static/site.toml".to_owned(), 404),
    ];
    for asset in [
        "common.css",
        "display.css",
        "guide.css",
        "ticket.css",
        "common.js",
        "display.js",
        "guide.js",
        "ticket.js",
    ] {
        routes.push((format!("/signage/static/{asset}"), 200));
    }
    for (path, expected) in &routes {
        let (status, head) = browser_head(addr, path).await;
        assert_eq!(status, *expected, "{path}: {head}");
        let csp = header_value(&head, "content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no content-security-policy\n{head}"));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
        assert_eq!(
            header_value(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}: {head}"
        );
        assert_eq!(
            header_value(&head, "referrer-policy"),
            Some("no-referrer"),
            "{path}: {head}"
        );
    }

    // Anything else, asked for by a browser: 404 as plain text.
    for path in [
        "/",
        "/favicon.ico",
        "/admin",
        "/signage/nope",
        "/signage/offices/main/nope",
        "/madoguchi.queue.v1.QueueService/GetOfficeStatus",
    ] {
        let (status, head) = browser_head(addr, path).await;
        assert_eq!(status, 404, "{path}: {head}");
        assert!(
            header_value(&head, "content-type").is_some_and(|t| t.starts_with("text/plain")),
            "{path}: {head}"
        );
        assert!(!head.contains("grpc-status"), "{path}: {head}");
        assert_eq!(
            header_value(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}: {head}"
        );
    }

    // gRPC keeps its statuses: a method this server does not host (the
    // gateway's kiosk API) is UNIMPLEMENTED with a token, UNAUTHENTICATED
    // without one.
    use madoguchi_proto::gateway::v1 as gpb;
    let channel = tonic::transport::Channel::from_shared(floor.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let auth =
        madoguchi::cli::Auth::bearer(&madoguchi_e2e::token(Role::Staff, "032034").token).unwrap();
    let error =
        gpb::kiosk_service_client::KioskServiceClient::with_interceptor(channel.clone(), auth)
            .get_kiosk_status(gpb::GetKioskStatusRequest::default())
            .await
            .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
    let error = gpb::kiosk_service_client::KioskServiceClient::new(channel)
        .get_kiosk_status(gpb::GetKioskStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "{error:?}");
    floor.stop().await;
}

async fn office_feed_resumes_after_last_event_id_without_gaps_or_repeats(backend: Backend) {
    let floor = spawn_all(backend).await;
    let addr = floor.server.addr;
    let mut staff = floor.queue(Role::Staff).await;
    let path = "/signage/api/offices/main/feed";

    // A first connection gets the snapshot with its sequence as the id.
    let mut feed = SseReader::open(addr, path, None).await;
    let status = feed.next().await.unwrap();
    assert_eq!(status.event, "status");
    let start: u64 = status.id.clone().unwrap().parse().unwrap();

    let a = issue_ticket(&mut staff, "certificates").await;
    let b = issue_ticket(&mut staff, "certificates").await;
    let called_a = call_next(&mut staff, "1").await;
    assert_eq!(called_a.name, a.name);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = feed.next().await.unwrap();
        if event.event != "status" {
            seen.push(event);
        }
    }
    let ids: Vec<u64> = seen
        .iter()
        .map(|e| e.id.clone().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, [start + 1, start + 2, start + 3], "{seen:?}");
    assert_eq!(seen[2].event, "call");
    let call: serde_json::Value = serde_json::from_str(&seen[2].data).unwrap();
    assert_eq!(call["number"], shown(&a));
    assert_eq!(call["counter"], "1");
    assert_eq!(call["category_colour"], "#E8833A");
    assert_eq!(
        call["announcement_ja"],
        format!("受付番号 {} 番の方、1 番窓口へお越しください", shown(&a))
    );
    drop(feed);

    // While nobody listens: A is served, B called.
    serve_and_finish(&mut staff, &called_a).await;
    let called_b = call_next(&mut staff, "1").await;
    assert_eq!(called_b.name, b.name);
    let newest = last_sequence(&mut staff).await;

    // Resume from the last id handled: exactly the missed events, in order.
    let mut feed = SseReader::open(addr, path, Some(start + 3)).await;
    let first = feed.next().await.unwrap();
    assert_eq!(first.event, "status");
    assert_eq!(
        first.id, None,
        "a resumed snapshot must not move the resume point"
    );
    let mut resumed = Vec::new();
    while resumed.last().map(|(id, _): &(u64, String)| *id) != Some(newest) {
        let event = feed.next().await.unwrap();
        if let Some(id) = event.id {
            resumed.push((id.parse().unwrap(), event.event));
        }
    }
    let ids: Vec<u64> = resumed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, ((start + 4)..=newest).collect::<Vec<_>>());
    assert_eq!(resumed.last().unwrap().1, "call");

    // A Last-Event-ID that is not a number is refused, not guessed.
    let (status, _, _) = http_get(addr, "/signage/api/offices/main/feed?after=x").await;
    assert_eq!(status, 400);
    floor.stop().await;
}

/// The server's share of the display latency: from sending `CallNext` to
/// the `call` event arriving at an HTTP client of the feed (no browser).
/// Printed, not asserted.
async fn call_to_sse_event_latency_is_measured(backend: Backend) {
    let floor = spawn_all(backend).await;
    let mut staff = floor.queue(Role::Staff).await;
    let mut feed = SseReader::open(floor.server.addr, "/signage/api/offices/main/feed", None).await;
    // The feed's resume point is the snapshot's sequence: a call committed
    // before the snapshot was read would come after it and never be sent.
    assert_eq!(feed.next().await.unwrap().event, "status");
    let mut previous = None;
    let mut latencies = Vec::new();
    for _ in 0..60 {
        if let Some(ticket) = previous.take() {
            serve_and_finish(&mut staff, &ticket).await;
        }
        issue_ticket(&mut staff, "certificates").await;
        let sent = std::time::Instant::now();
        let called = call_next(&mut staff, "1").await;
        loop {
            let event = feed.next().await.unwrap();
            if event.event == "call" && event.data.contains(&shown(&called)) {
                break;
            }
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        previous = Some(called);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "call → SSE event at the client ({backend:?}, {} calls): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
    );
    assert_eq!(latencies.len(), 60);
    floor.stop().await;
}
