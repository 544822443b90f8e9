//! The cluster's split topology end to end (`k8s/overlays/cluster/` on one
//! machine): two queue replicas, identity, forms, POS and signage, each its
//! own `madoguchi serve --service X` process on one PostgreSQL as its own
//! role; an edge routing gRPC by service; the floor gateway with simulated
//! devices. PostgreSQL only: the cluster has no SQLite.
//!
//! Nothing sleeps to wait: each step awaits what it needs under a deadline
//! that only turns a hang into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signage_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use madoguchi::cli::Auth;
use madoguchi_e2e::cluster::{Cluster, caller, transient};
use madoguchi_e2e::floor::{Register, SimulatedFloor, within};
use madoguchi_e2e::okuyami::{self, TARO};
use madoguchi_e2e::{OFFICE, category, token};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::{SharedClock, SystemClock};
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::pos::v1 as p;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::queue::v1 as q;
use sea_orm::{ConnectionTrait, Database};
use signage_support::SseReader;

/// The floor PC's gateway, with a kiosk, the board line and register r1,
/// reaching the cluster through its edge (one endpoint for queue, POS and
/// signage, as through the cluster's Gateway API route).
async fn floor(cluster: &Cluster) -> SimulatedFloor {
    let clock: SharedClock = Arc::new(SystemClock);
    SimulatedFloor::start(
        &format!("http://{}", cluster.edge.addr),
        clock,
        Register::R1,
    )
    .await
}

fn staff_auth() -> Auth {
    Auth::bearer(&token(Role::Staff, "032034").token).unwrap()
}

// ------------------------------------------------------------------ a visit

/// The seed's おくやみ visit, the register and the boards, with every
/// service in its own process: a kiosk ticket, the call on the board and
/// the display feed, 本人確認 (forms → identity), the navigator, one
/// certificate request, one signature, the PDF, and the card payment at
/// the register (POS → forms) with its receipt printed by the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okuyami_visit_and_card_payment_across_the_split_services() {
    let cluster = Cluster::start().await;
    let floor = floor(&cluster).await;
    let channel = cluster.channel().await;
    let mut staff = cluster.queue_client(Role::Staff).await;
    // The display page's feed through the edge, over HTTP/1.1 as a browser
    // on the public entry reads it.
    let mut display = SseReader::open(cluster.edge.addr, FEED, None).await;
    // A first connection resumes after its status snapshot: wait for it,
    // or a call committed before the snapshot comes in it, not as an event.
    let snapshot = within("the display's status", display.next()).await;
    assert_eq!(snapshot.map(|e| e.event).as_deref(), Some("status"));

    // The kiosk's 相談 button; counter 2 calls: board 2 and the display.
    let printed = floor.press(2).await;
    let ticket = madoguchi_e2e::call_and_start(&mut staff, "2").await;
    assert!(
        printed.contains(&ticket.display_number),
        "{}",
        printed.render_text()
    );
    floor.board_shows(2, &ticket.display_number).await;
    let call = within("the display's call event", async {
        loop {
            let event = display.next().await.expect("feed ended");
            if event.event == "call" {
                return event;
            }
        }
    })
    .await;
    let call: serde_json::Value = serde_json::from_str(&call.data).unwrap();
    assert_eq!(call["number"], signage_support::shown(&ticket));
    assert_eq!(call["counter"], "2");

    // 本人確認 at forms' request to identity, then the navigator.
    let request = okuyami::draft_inheritance_request_on(channel.clone(), &ticket.name).await;
    let visit_name = request
        .name
        .rsplit_once("/certificateRequests/")
        .map(|(v, _)| v.to_owned())
        .unwrap();
    let mut forms = FormsServiceClient::with_interceptor(channel.clone(), staff_auth());
    let visit = forms
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit_name.clone(),
            life_event: "death".into(),
            subject: TARO.into(),
            event_date_wareki: "令和5年6月16日".into(),
            answers: okuyami::okuyami_answers(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        visit.items.iter().any(|i| i
            .procedure
            .as_ref()
            .is_some_and(|p| p.id == "koki-soshitsu")),
        "the navigator's checklist: {:?}",
        visit.items.len()
    );
    let request = okuyami::confirm_request_on(channel.clone(), &request.name).await;

    // One signature, then the application as a PDF with the Japanese in it.
    let signature = forms
        .sign_visit(f::SignVisitRequest {
            visit: visit_name.clone(),
            strokes: vec![f::Stroke {
                points: (0..12)
                    .map(|i| f::StrokePoint {
                        x: 500 + i * 300,
                        y: 5000 + (i % 4) * 300,
                        t_ms: i * 15,
                    })
                    .collect(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(signature.covers.contains(&request.name));
    let application = forms
        .render_document(f::RenderDocumentRequest {
            name: request.name.clone(),
            kind: f::DocumentKind::CertificateApplication as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(application.media_type, "application/pdf");
    let document = lopdf::Document::load_mem(&application.content).unwrap();
    let pages: Vec<u32> = document.get_pages().keys().copied().collect();
    let text = document.extract_text(&pages).unwrap();
    for needle in ["証明書交付申請書", "おくやみ つる子", "除籍謄本"] {
        assert!(text.contains(needle), "{needle} not in the PDF:\n{text}");
    }

    // The register: POS reads the request from forms; the gateway's
    // terminal approves the card and its printer cuts the receipt.
    let mut pos = PosServiceClient::with_interceptor(channel.clone(), staff_auth());
    pos.open_register_session(p::OpenRegisterSessionRequest {
        register: format!("{OFFICE}/registers/r1"),
        float_yen: 30_000,
    })
    .await
    .unwrap();
    let order = pos
        .create_order(p::CreateOrderRequest {
            parent: OFFICE.into(),
            certificate_request: request.name.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let total = order.total.as_ref().map_or(0, |y| y.amount);
    assert_eq!(total, 750 * 2 + 300 + 300, "除籍謄本 ×2, 除票, 評価証明書");
    let payment = pos
        .create_payment(p::CreatePaymentRequest {
            order: order.name.clone(),
            register: format!("{OFFICE}/registers/r1"),
            method: p::PaymentMethod::Card as i32,
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let paper = within(
        "the receipt",
        floor.sims.receipt_printers["r1"].next_ticket(),
    )
    .await
    .expect("receipt printer stopped");
    let receipt = paper.receipt().expect("a receipt");
    assert_eq!(i64::try_from(receipt.total_yen).unwrap(), total);
    assert_eq!(receipt.method, "クレジットカード");
    let paid = within("the approved payment", async {
        loop {
            let now = pos
                .get_payment(p::GetPaymentRequest {
                    name: payment.name.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if now.state == p::PaymentState::Approved as i32 {
                return now;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(receipt.receipt_number, paid.receipt_number);
    assert_eq!(floor.sims.terminals["r1"].sales_received(), 1);

    floor.gateway.shutdown().await;
    cluster.stop().await;
}

// ------------------------------------------------------- least privilege

/// Each service's role reaches its own schema only: the queue's role can
/// neither read the identity service's tables (the My Numbers) nor create
/// anything in `public`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_role_owns_only_its_own_schema() {
    let cluster = Cluster::start().await;
    let queue = Database::connect(cluster.database_url("queue"))
        .await
        .unwrap();
    let identity = Database::connect(cluster.database_url("identity"))
        .await
        .unwrap();
    let tables = identity
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables \
             WHERE table_schema = 'identity' ORDER BY 1",
        ))
        .await
        .unwrap();
    let tables: Vec<String> = tables
        .iter()
        .map(|row| row.try_get::<String>("", "t").unwrap())
        .collect();
    assert!(
        tables.iter().any(|t| t.contains("resident")),
        "identity migrated into its schema: {tables:?}"
    );
    for table in &tables {
        let denied = queue
            .execute_unprepared(&format!("SELECT * FROM {table} LIMIT 1"))
            .await
            .unwrap_err();
        assert!(
            denied.to_string().contains("permission denied"),
            "{table}: {denied}"
        );
    }
    let denied = queue
        .execute_unprepared("CREATE TABLE public.intruder (x int)")
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    // Its own tables are where its search_path puts them.
    let own = queue
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM information_schema.tables \
             WHERE table_schema = 'queue'",
        ))
        .await
        .unwrap();
    assert!(own[0].try_get::<i64>("", "n").unwrap() > 3);
    drop((queue, identity));
    cluster.stop().await;
}

// ------------------------------------------------------ a replica drains

const FEED: &str = "/signage/api/offices/main/feed";

/// Reads the display feed the way a browser's EventSource does: events
/// with ids until `newest`; when the server ends the response (its
/// follower of the queue lost a replica), reconnect with `Last-Event-ID`.
/// The ids seen, and how many reconnects it took.
async fn read_feed_through(
    mut feed: SseReader,
    signage: std::net::SocketAddr,
    start: u64,
    newest: u64,
) -> (Vec<u64>, u32) {
    let mut ids: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    while ids.last().copied() != Some(newest) {
        match feed.next_or_end().await {
            Some(event) => {
                if let Some(id) = event.id.and_then(|id| id.parse().ok()) {
                    ids.push(id);
                }
            }
            None => {
                reconnects += 1;
                let last = ids.last().copied().unwrap_or(start);
                feed = SseReader::open(signage, FEED, Some(last)).await;
            }
        }
    }
    (ids, reconnects)
}

/// Waits until the office's log has grown by `events` (calls flow),
/// retrying reads the cluster refused.
async fn flows(probe: &mut madoguchi_e2e::Client, events: u64) {
    let status = q::GetOfficeStatusRequest {
        name: OFFICE.into(),
    };
    within("calls to flow", async {
        let mut from = None;
        loop {
            match probe.get_office_status(status.clone()).await {
                Ok(s) => {
                    let now = s.get_ref().last_sequence;
                    let start = *from.get_or_insert(now);
                    if now >= start + events {
                        return;
                    }
                }
                Err(e) if transient(&e) => {}
                Err(e) => panic!("{e}"),
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A rolling update of the queue while four counters call: each replica
/// in turn gets SIGTERM, drains and is replaced. Every call is answered
/// exactly once (a retry returns the call that happened), the event log
/// holds each call once, the display's feed (signage follows the queue
/// replicas) delivers every event once and in order, and the boards show
/// the last calls — the streams moved to the other replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_replicas_drain_under_load_and_nothing_is_lost_or_doubled() {
    let mut cluster = Cluster::start().await;
    let floor = floor(&cluster).await;
    let signage = cluster.process("signage").addr;
    let mut feed = SseReader::open(signage, FEED, None).await;
    let snapshot = feed.next().await.expect("the feed's status snapshot");
    let start: u64 = snapshot.id.and_then(|id| id.parse().ok()).unwrap_or(0);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut callers = Vec::new();
    for (category_id, counter_id) in [
        ("certificates", "1"),
        ("insurance-pension", "4"),
        ("elderly-care-disability", "5"),
        ("children", "6"),
    ] {
        let staff = cluster.queue_client(Role::Staff).await;
        callers.push(tokio::spawn(caller(
            staff,
            category_id,
            counter_id,
            stopped.clone(),
        )));
    }
    // Under load, a rolling update: each replica in turn is sent SIGTERM,
    // drains and exits while the other carries the floor, and a new one
    // takes its place. Every follower (signage's, the gateway's) has to
    // move at least once.
    let mut probe = cluster.queue_client(Role::Staff).await;
    for index in 0..cluster.queue.len() {
        flows(&mut probe, 40).await;
        cluster.queue[index].terminate().await;
        let exit = cluster.queue[index].exited().await;
        assert!(
            exit.success(),
            "{} drained and exited cleanly: {exit}\n{}",
            cluster.queue[index].name,
            cluster.queue[index].log()
        );
        flows(&mut probe, 40).await;
        cluster.restart_queue(index).await;
    }
    flows(&mut probe, 40).await;
    stop.send_replace(true);
    let mut answered: HashMap<String, u32> = HashMap::new();
    let mut retries = 0;
    for c in callers {
        let called = within("the callers to stop", c).await.unwrap();
        retries += called.retries;
        for (ticket, n) in called.tickets {
            *answered.entry(ticket).or_default() += n;
        }
    }
    assert!(answered.values().all(|n| *n == 1), "a call answered twice");

    // The event log, from the surviving replica: each ticket called once,
    // exactly the calls that were answered.
    let status = q::GetOfficeStatusRequest {
        name: OFFICE.into(),
    };
    let newest = loop {
        match probe.get_office_status(status.clone()).await {
            Ok(s) => break s.into_inner().last_sequence,
            Err(e) if transient(&e) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    let mut survivor = madoguchi_e2e::client_at(cluster.queue[1].addr, Role::Staff, "032034").await;
    let mut watch = survivor
        .watch_office(q::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: start,
        })
        .await
        .unwrap()
        .into_inner();
    let mut calls_in_log: HashMap<String, u32> = HashMap::new();
    let mut expected = start + 1;
    while expected <= newest {
        let event = within("the event log", watch.message())
            .await
            .unwrap()
            .and_then(|r| r.event)
            .expect("an event");
        assert_eq!(event.sequence, expected, "the log is gapless");
        expected += 1;
        if event.r#type == q::EventType::TicketCalled as i32 {
            let ticket = event.ticket.expect("the called ticket");
            *calls_in_log.entry(ticket.name).or_default() += 1;
        }
    }
    assert_eq!(
        calls_in_log.keys().collect::<HashSet<_>>(),
        answered.keys().collect::<HashSet<_>>(),
        "the log's calls are the answered calls"
    );
    assert!(
        calls_in_log.values().all(|n| *n == 1),
        "a ticket called twice"
    );

    // The display's feed moved with signage's follower: every event once,
    // in order, up to the newest — read as the page's EventSource reads it.
    let (ids, reconnects) = within(
        "the display feed to catch up",
        read_feed_through(feed, signage, start, newest),
    )
    .await;
    assert_eq!(
        ids,
        ((start + 1)..=newest).collect::<Vec<_>>(),
        "the feed skipped or repeated an event"
    );
    assert!(
        reconnects >= 1,
        "signage's follower never lost its replica: the test did not test"
    );

    // The gateway's follower moved too: board 1 shows counter 1's last call.
    let tickets = survivor
        .list_tickets(q::ListTicketsRequest {
            parent: OFFICE.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets;
    let last_called_at_1 = tickets
        .iter()
        .filter(|t| t.issue_category == category("certificates"))
        .max_by_key(|t| t.display_number.clone())
        .expect("certificates were called");
    floor.board_shows(1, &last_called_at_1.display_number).await;
    eprintln!(
        "cluster drain: {} calls answered once each, {retries} retried steps, \
         {reconnects} feed reconnects, events {}..={newest}",
        answered.len(),
        start + 1
    );
    floor.gateway.shutdown().await;
    cluster.stop().await;
}
