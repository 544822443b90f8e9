//! The gateway's spans as OpenTelemetry sees them: the spans go through
//! `tracing-opentelemetry` into an SDK tracer whose span processor keeps
//! every finished span, and the test reads their trace ids and parents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madoguchi_gateway::devices::board::sim;
use madoguchi_gateway::devices::board::{self, BoardLineConfig};
use madoguchi_gateway::link::{BoardRoutes, Follower, handle_event};
use madoguchi_gateway::metrics::Recorder;
use madoguchi_gateway::serial::{Connector, pty_pair};
use madoguchi_platform::clock::{ManualClock, SharedClock};
use madoguchi_proto::prost_types::Timestamp;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::signage::v1::{Board, BoardRouting};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps every finished span.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Kept {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

const OFFICE: &str = "municipalities/032034/offices/main";
const COUNTER: &str = "municipalities/032034/offices/main/counters/c1";

#[tokio::test(flavor = "current_thread")]
async fn a_board_write_continues_the_trace_of_the_call() {
    let kept = Kept::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(kept.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // This thread only: the runtime is current-thread, so the driver's
    // tasks run under it too.
    let _default = tracing::subscriber::set_default(subscriber);

    let (master, slave) = pty_pair().unwrap();
    let sims = sim::spawn(master, [3]);
    let line = board::spawn(Connector::once("pty", slave), BoardLineConfig::new([3]));
    let routing = BoardRouting {
        office: OFFICE.into(),
        boards: vec![Board {
            id: "b3".into(),
            line: "rs485-1f".into(),
            address: 3,
            counters: vec![COUNTER.into()],
            location_ja: String::new(),
        }],
    };
    let routes = BoardRoutes::from_routing(
        &routing,
        &HashMap::from([("rs485-1f".to_owned(), line.clone())]),
    );
    let committed = chrono::DateTime::parse_from_rfc3339("2026-04-01T09:00:00+09:00")
        .unwrap()
        .to_utc();
    let clock = ManualClock::new(committed);
    let recorder = Recorder::default();
    let follower = Follower {
        clock: Arc::new(clock) as SharedClock,
        recorder: recorder.clone(),
    };
    let event = pb::OfficeEvent {
        sequence: 7,
        office: OFFICE.into(),
        event_time: Some(Timestamp {
            seconds: committed.timestamp(),
            nanos: 0,
        }),
        r#type: pb::EventType::TicketCalled as i32,
        ticket: Some(pb::Ticket {
            display_number: "A012".into(),
            ..Default::default()
        }),
        counter: COUNTER.into(),
        from_category: String::new(),
    };
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    tokio::time::timeout(
        Duration::from_secs(10),
        handle_event(
            &routes,
            &follower,
            &event,
            &format!("00-{trace_id}-{parent}-01"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(sims.view(3).unwrap().display.number, Some(12));

    // An untraced event (no trace_parent) gets a trace of its own.
    let untraced = pb::OfficeEvent {
        sequence: 8,
        ..event.clone()
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        handle_event(&routes, &follower, &untraced, ""),
    )
    .await
    .unwrap();

    let spans = kept.0.lock().unwrap().clone();
    let writes: Vec<&SpanData> = spans.iter().filter(|s| s.name == "board write").collect();
    assert_eq!(writes.len(), 2, "{spans:#?}");
    let traced = writes[0];
    assert_eq!(traced.span_context.trace_id().to_string(), trace_id);
    assert_eq!(traced.parent_span_id.to_string(), parent);
    assert!(traced.parent_span_is_remote);
    let attribute = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attribute(traced, "madoguchi.board.unit").as_deref(),
        Some("3")
    );
    assert_eq!(
        attribute(traced, "madoguchi.board.line").as_deref(),
        Some("rs485-1f")
    );
    assert_eq!(
        attribute(traced, "madoguchi.counter").as_deref(),
        Some(COUNTER)
    );
    assert_eq!(
        attribute(traced, "madoguchi.board.outcome").as_deref(),
        Some("shown")
    );
    let own = writes[1];
    assert_ne!(own.span_context.trace_id().to_string(), trace_id);
    assert_eq!(own.parent_span_id, opentelemetry::trace::SpanId::INVALID);
}
