//! Traces and metrics of the running system.
//!
//! The server runs as a process of its own (`madoguchi serve`, every
//! service) exporting traces over OTLP to a receiver in this test process
//! (`madoguchi_e2e::otlp`); the floor gateway with simulated devices runs
//! in this process and exports to the same receiver, as does the test's
//! staff client (the CLI's interceptor). Checked, on SQLite and PostgreSQL:
//! a kiosk press (IssueTicket and the printed ticket) and a CallNext with
//! its board write each arrive as one trace across the gateway and the
//! queue service; a visit's 本人確認 runs forms → identity in one trace;
//! none of the seed family's personal data is in anything exported; and
//! `/metrics` counts what the floor did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, LazyLock};

use madoguchi::cli::Auth;
use madoguchi_e2e::floor::{Register, SimulatedFloor, within};
use madoguchi_e2e::okuyami::{self, TARO};
use madoguchi_e2e::otlp::{OtlpSink, ReceivedSpan, descends};
use madoguchi_e2e::process::{ServedProcess, http_get, metric_types, sample};
use madoguchi_e2e::{Backend, OFFICE, issue, token};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::{SharedClock, SystemClock};
use madoguchi_platform::telemetry::{Telemetry, TelemetryConfig};
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use tracing::Instrument as _;

/// The receiver, and this process's telemetry exporting to it, on a
/// runtime of their own that outlives every test of the binary (the
/// exporter's client lives on the runtime it was made on).
struct Shared {
    sink: OtlpSink,
    _telemetry: Telemetry,
    _runtime: tokio::runtime::Runtime,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sink = runtime.block_on(OtlpSink::start());
        let endpoint = sink.endpoint();
        let config = TelemetryConfig::from_vars("madoguchi-gateway", |name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("100".into()),
            "MADOGUCHI_LOG" => std::env::var("MADOGUCHI_LOG").ok(),
            _ => None,
        })
        .unwrap();
        let telemetry = {
            let _entered = runtime.enter();
            madoguchi_platform::telemetry::init_with(&config)
        };
        assert!(
            telemetry.exporting(),
            "this process exports to the receiver"
        );
        Shared {
            sink,
            _telemetry: telemetry,
            _runtime: runtime,
        }
    })
    .join()
    .unwrap()
});

/// The service name of the server process of `backend`: the tests of both
/// backends run at once and export to the one receiver.
fn service_of(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "madoguchi-sqlite",
        Backend::Postgres => "madoguchi-postgres",
    }
}

/// The server process, exporting to the receiver every 100 ms.
async fn server(backend: Backend) -> ServedProcess {
    let sink = &SHARED.sink;
    ServedProcess::start(
        backend,
        &[
            ("OTEL_SERVICE_NAME", service_of(backend).into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on".into()),
        ],
    )
    .await
}

fn staff_auth() -> Auth {
    Auth::bearer(&token(Role::Staff, "032034").token).unwrap()
}

fn server_span<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    method: &str,
) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == method && s.kind == 2)
        .collect()
}

/// The seed family's personal values as the registry and the visit hold
/// them: names (kanji and kana), birth dates, addresses.
const PERSONAL: &[&str] = &[
    "おくやみ",
    "オクヤミ",
    "太郎",
    "タロウ",
    "花子",
    "ハナコ",
    "つる子",
    "ツルコ",
    "昭和18年5月20日",
    "昭和20年11月1日",
    "昭和47年10月31日",
    "1972-10-31",
    "year: 1972",
    "盛町字宇津野沢",
    "国分町",
    "仙台市青葉区",
];

async fn traces_cross_the_floor(backend: Backend) {
    let sink = SHARED.sink.clone();
    let service = service_of(backend);
    let server = server(backend).await;
    let clock: SharedClock = Arc::new(SystemClock);
    let floor = SimulatedFloor::start(&server.endpoint(), clock, Register::No).await;
    let channel = server.channel().await;
    let mut staff = QueueServiceClient::with_interceptor(channel.clone(), staff_auth());

    // A kiosk press: the gateway's span, IssueTicket on the queue service
    // under it, and the printed ticket.
    let printed = floor.press(1).await;
    let issued = sink
        .wait_for("IssueTicket under a gateway span", |spans| {
            server_span(
                spans,
                service,
                "madoguchi.queue.v1.QueueService/IssueTicket",
            )
            .into_iter()
            .find(|issue| {
                spans.iter().any(|g| {
                    g.service == "madoguchi-gateway"
                        && g.trace_id == issue.trace_id
                        && descends(spans, issue, g)
                })
            })
            .cloned()
        })
        .await;
    let trace = sink.trace(&issued.trace_id);
    assert_eq!(issued.attribute("rpc.system.name"), Some("grpc"));
    assert_eq!(
        issued.attribute("rpc.method"),
        Some("madoguchi.queue.v1.QueueService/IssueTicket")
    );
    assert_eq!(issued.attribute("rpc.status_code"), Some("OK"));
    let services: std::collections::BTreeSet<&str> =
        trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        [service, "madoguchi-gateway"].into_iter().collect(),
        "{trace:#?}"
    );
    let press = trace
        .iter()
        .find(|s| s.name == "kiosk press")
        .unwrap_or_else(|| panic!("no kiosk press span: {trace:#?}"));
    assert!(
        press.parent_span_id.is_empty(),
        "the press is the trace's root"
    );
    assert!(descends(&trace, &issued, press));
    let job = trace
        .iter()
        .find(|s| s.name == "printer job")
        .unwrap_or_else(|| panic!("no printer job in the press's trace: {trace:#?}"));
    assert!(descends(&trace, job, press));
    assert_eq!(job.attribute("madoguchi.printer.mode"), Some("online"));
    assert!(
        printed.render_text().contains('A'),
        "{}",
        printed.render_text()
    );

    // Staff press call next (the CLI's interceptor carries the context):
    // CallNext, the event stored with its trace context, and the board
    // write in the gateway as a child of the call.
    let (called, root_trace) = async {
        let trace_id = {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            tracing::Span::current()
                .context()
                .span()
                .span_context()
                .trace_id()
                .to_string()
        };
        let ticket = staff
            .call_next(pb::CallNextRequest {
                counter: format!("{OFFICE}/counters/1"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        (ticket, trace_id)
    }
    .instrument(tracing::info_span!("staff presses call next"))
    .await;
    floor.board_shows(1, &called.display_number).await;
    let (call, board) = sink
        .wait_for("a board write under CallNext", |spans| {
            server_span(spans, service, "madoguchi.queue.v1.QueueService/CallNext")
                .into_iter()
                .filter(|call| call.trace_id == root_trace)
                .find_map(|call| {
                    spans
                        .iter()
                        .find(|b| {
                            b.service == "madoguchi-gateway"
                                && b.trace_id == call.trace_id
                                && descends(spans, b, call)
                        })
                        .map(|b| (call.clone(), b.clone()))
                })
        })
        .await;
    let trace = sink.trace(&call.trace_id);
    let root = trace
        .iter()
        .find(|s| s.name == "staff presses call next")
        .expect("the staff client's span is the root");
    assert!(root.parent_span_id.is_empty());
    assert!(descends(&trace, &call, root));
    assert!(
        board.name.contains("board"),
        "the gateway's span under the call is its board write: {board:?}"
    );
    // The call's database operation, named by its statements, and the
    // event's hand-over to the gateway's stream, both under the call.
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    let statement = trace
        .iter()
        .find(|s| s.attribute("db.system.name") == Some(system) && descends(&trace, s, &call))
        .unwrap_or_else(|| panic!("no database span under CallNext: {trace:#?}"));
    assert_eq!(statement.kind, 3, "a client span");
    assert_eq!(statement.attribute("db.operation.name"), Some("UPDATE"));
    assert!(
        trace.iter().any(|s| s.name == "WatchOffice send"
            && s.attribute("madoguchi.follower") == Some("test-device")
            && descends(&trace, s, &call)),
        "the event's delivery to the gateway is in the call's trace: {trace:#?}"
    );

    // A visit: 本人確認 and the request (forms → identity over gRPC), the
    // navigator, one signature.
    staff
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap();
    let visit_ticket = madoguchi_e2e::call_and_start(&mut staff, "2").await;
    let request = okuyami::draft_inheritance_request_on(channel.clone(), &visit_ticket.name)
        .instrument(tracing::info_span!("staff verifies and fills the request"))
        .await;
    let visit_name = request
        .name
        .rsplit_once("/certificateRequests/")
        .map(|(v, _)| v.to_owned())
        .unwrap();
    let mut forms = FormsServiceClient::with_interceptor(channel.clone(), staff_auth());
    forms
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit_name.clone(),
            life_event: "death".into(),
            subject: TARO.into(),
            event_date_wareki: "令和5年6月16日".into(),
            answers: okuyami::okuyami_answers(),
            ..Default::default()
        })
        .instrument(tracing::info_span!("staff runs the navigator"))
        .await
        .unwrap();
    okuyami::confirm_request_on(channel.clone(), &request.name).await;
    forms
        .sign_visit(f::SignVisitRequest {
            visit: visit_name.clone(),
            strokes: vec![f::Stroke {
                points: (0..8)
                    .map(|i| f::StrokePoint {
                        x: 500 + i * 300,
                        y: 5000,
                        t_ms: i * 15,
                    })
                    .collect(),
            }],
        })
        .await
        .unwrap();
    let (forms_span, identity_span) = sink
        .wait_for("an identity call under a forms call", |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.service == service
                        && s.name.starts_with("madoguchi.forms.v1.FormsService/")
                        && s.kind == 2
                })
                .find_map(|forms| {
                    spans
                        .iter()
                        .find(|i| {
                            i.name.starts_with("madoguchi.identity.v1.IdentityService/")
                                && i.kind == 2
                                && descends(spans, i, forms)
                        })
                        .map(|i| (forms.clone(), i.clone()))
                })
        })
        .await;
    assert_eq!(forms_span.trace_id, identity_span.trace_id);

    // Everything has left both processes: stop the server (it flushes on
    // the way out) and read what arrived.
    floor.gateway.shutdown().await;
    let log = server.log();
    server.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let exported = sink.raw();
    assert!(
        exported.contains("madoguchi.forms.v1.FormsService/NavigateLifeEvent"),
        "the navigator's call was exported"
    );
    for value in PERSONAL {
        assert!(
            !exported.contains(value),
            "{value} reached the exported telemetry"
        );
        assert!(!log.contains(value), "{value} reached the server's log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_cross_the_floor_on_sqlite() {
    traces_cross_the_floor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_cross_the_floor_on_postgres() {
    traces_cross_the_floor(Backend::Postgres).await;
}

/// The metric list the dashboard and the alerts are written against
/// (k8s/observability/metrics.txt): name, type, source.
fn documented_metrics() -> Vec<(String, String, String)> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/observability/metrics.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let mut next = || fields.next().unwrap_or_default().to_owned();
            (next(), next(), next())
        })
        .collect()
}

/// The name a `# TYPE` line gives a metric listed as `name`.
fn family_name(name: &str, kind: &str) -> String {
    match kind {
        "counter" => name.trim_end_matches("_total").to_owned(),
        _ => name.to_owned(),
    }
}

async fn metrics_count_the_floor(backend: Backend) {
    // This process's telemetry before the gateway's log setup could take
    // the global subscriber.
    LazyLock::force(&SHARED);
    let server = ServedProcess::start(backend, &[]).await;
    let (status, body) = http_get(server.admin, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let channel = server.channel().await;
    let mut staff = QueueServiceClient::with_interceptor(channel.clone(), staff_auth());
    for _ in 0..3 {
        staff
            .issue_ticket(issue("certificates", false))
            .await
            .unwrap();
    }
    staff
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap();
    madoguchi_e2e::call_and_start(&mut staff, "1").await;
    madoguchi_e2e::call_and_start(&mut staff, "2").await;
    let refused = staff
        .issue_ticket(pb::IssueTicketRequest {
            parent: "nowhere".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let (status, text) = http_get(server.admin, "/metrics").await;
    assert_eq!(status, 200);
    let office = [("office", OFFICE)];
    let with = |more: &[(&'static str, &'static str)]| {
        let mut labels = office.to_vec();
        labels.extend_from_slice(more);
        labels
    };
    assert_eq!(
        sample(
            &text,
            "madoguchi_queue_tickets_issued_total",
            &with(&[("category", "certificates")])
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "madoguchi_queue_tickets_issued_total",
            &with(&[("category", "life-events")])
        ),
        Some(1.0)
    );
    for counter in ["1", "2"] {
        assert_eq!(
            sample(
                &text,
                "madoguchi_queue_calls_total",
                &with(&[("counter", counter)])
            ),
            Some(1.0)
        );
    }
    // Both counters called certificates first: one of the three waits.
    assert_eq!(
        sample(
            &text,
            "madoguchi_queue_tickets_waiting",
            &with(&[("category", "certificates")])
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "madoguchi_queue_tickets_waiting",
            &with(&[("category", "life-events")])
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "madoguchi_queue_wait_estimate_seconds",
            &with(&[("category", "certificates")])
        )
        .is_some()
    );
    // Four issues, two calls, two starts: the log's sequence.
    assert_eq!(
        sample(&text, "madoguchi_queue_event_log_sequence", &office),
        Some(8.0)
    );
    let issue_method = [
        ("rpc_system_name", "grpc"),
        ("rpc_method", "madoguchi.queue.v1.QueueService/IssueTicket"),
    ];
    let ok: Vec<_> = issue_method
        .iter()
        .copied()
        .chain([("rpc_status_code", "OK")])
        .collect();
    let invalid: Vec<_> = issue_method
        .iter()
        .copied()
        .chain([("rpc_status_code", "INVALID_ARGUMENT")])
        .collect();
    assert_eq!(
        sample(&text, "rpc_server_call_duration_seconds_count", &ok),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "rpc_server_call_duration_seconds_count", &invalid),
        Some(1.0)
    );
    // Every call took more than nothing and lies in a bucket under +Inf.
    let mut le_inf = ok.clone();
    le_inf.push(("le", "+Inf"));
    assert_eq!(
        sample(&text, "rpc_server_call_duration_seconds_bucket", &le_inf),
        Some(4.0)
    );
    let pool = [("db_client_connection_pool_name", "madoguchi")];
    assert!(sample(&text, "db_client_connection_max", &pool).is_some_and(|m| m >= 1.0));

    // A follower's lag: a WatchOffice stream that read nothing yet.
    let mut watcher = QueueServiceClient::with_interceptor(channel.clone(), staff_auth());
    let mut stream = watcher
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = within("the first event", stream.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.event.map(|e| e.sequence), Some(1));
    let (_, text) = http_get(server.admin, "/metrics").await;
    let lag = sample(
        &text,
        "madoguchi_queue_event_log_lag_events",
        &with(&[("follower", "test-staff")]),
    );
    assert!(
        lag.is_some_and(|l| (0.0..=7.0).contains(&l)),
        "lag {lag:?} in\n{text}"
    );

    // Everything the dashboard and the alerts use of this process exists
    // with the documented type.
    // (A family appears once it has a series: the forms and POS counters
    // of visits and payments, which this floor does not make, are checked
    // by tests/tests/service_metrics.rs.)
    let types = metric_types(&text);
    for (name, kind, source) in documented_metrics() {
        let here = match source.as_str() {
            "every" | "queue" | "signage" => true,
            "pos" | "forms" => kind == "gauge",
            "sqlite" => backend == Backend::Sqlite,
            _ => false,
        };
        if !here {
            continue;
        }
        assert_eq!(
            types.get(&family_name(&name, &kind)).map(String::as_str),
            Some(kind.as_str()),
            "{name} ({kind}, from {source}) is not served as documented"
        );
    }

    // The floor gateway's own page: a kiosk press, a call on a board.
    let clock: SharedClock = Arc::new(SystemClock);
    let floor = SimulatedFloor::start(&server.endpoint(), clock, Register::No).await;
    floor.press(2).await;
    let called = staff
        .call_next(pb::CallNextRequest {
            counter: format!("{OFFICE}/counters/3"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    floor.board_shows(3, &called.display_number).await;
    let gateway = floor
        .gateway
        .metrics_addr
        .expect("the gateway serves metrics");
    let (status, body) = http_get(gateway, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (_, text) = http_get(gateway, "/metrics").await;
    assert_eq!(
        sample(
            &text,
            "madoguchi_gateway_tickets_printed_total",
            &[("kiosk", "k1"), ("mode", "online")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "madoguchi_gateway_cluster_reachable", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "madoguchi_gateway_device_up",
            &[("device", "printer-k1"), ("kind", "printer")]
        ),
        Some(1.0),
        "{text}"
    );
    // The call's board write was timed (with every earlier call the
    // gateway replayed when it started following). The board shows the
    // number when the write lands; the gateway records the time when the
    // board's reply reaches it, a moment later, so the page is read again
    // until it does (bounded: a write that is never timed fails).
    let timed = |text: &str| {
        sample(
            text,
            "madoguchi_gateway_call_to_board_seconds_count",
            &[("line", "rs485-1f")],
        )
        .is_some_and(|n| n >= 1.0)
    };
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut text = text;
        while !timed(&text) {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            text = http_get(gateway, "/metrics").await.1;
        }
        text
    })
    .await
    .expect("the board write is timed on the gateway's page");
    let types = metric_types(&text);
    for (name, kind, source) in documented_metrics() {
        if source == "gateway" {
            assert_eq!(
                types.get(&family_name(&name, &kind)).map(String::as_str),
                Some(kind.as_str()),
                "{name} ({kind}, from the gateway) is not served as documented"
            );
        }
    }
    floor.gateway.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_floor_on_sqlite() {
    metrics_count_the_floor(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_floor_on_postgres() {
    metrics_count_the_floor(Backend::Postgres).await;
}
