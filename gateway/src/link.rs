//! The link to the cluster: an ordinary gRPC client with the gateway's
//! `device` token, and the call follower that puts called numbers on the
//! boards.
//!
//! The follower reads `WatchOffice` from the position stored locally
//! ([`LocalStore::cursor`]) and stores each event's sequence once it was
//! handled, so a restart or a reconnect neither misses nor repeats a call.
//! On its very first start (no stored position) it does not replay the
//! office's whole history onto the boards: it shows what each counter is
//! serving now (`GetOfficeStatus`) and follows from that snapshot's
//! sequence. Reconnects back off exponentially with jitter.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use madoguchi_proto::signage::v1::GetBoardRoutingRequest;
use madoguchi_proto::signage::v1::signage_service_client::SignageServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use madoguchi_platform::clock::SharedClock;
use tracing::Instrument as _;

use crate::config::ClusterConfig;
use crate::devices::board::registers::BoardDisplay;
use crate::devices::board::{BoardLineHandle, UnitId};
use crate::metrics::Recorder;
use crate::serial::Backoff;
use crate::store::LocalStore;

/// Adds the bearer token and the trace context to every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(…)")
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        // Interceptors run in the caller's span, so the call continues the
        // caller's trace (W3C traceparent).
        madoguchi_platform::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

/// A queue client with the gateway's token.
pub type QueueClient = QueueServiceClient<InterceptedService<Channel, Bearer>>;
/// A signage client with the gateway's token.
pub type SignageClient = SignageServiceClient<InterceptedService<Channel, Bearer>>;
/// A POS client with the gateway's token (registers).
pub type PosClient = PosServiceClient<InterceptedService<Channel, Bearer>>;

/// Why the cluster link cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The endpoint or TLS material is unusable.
    #[error("cluster endpoint: {0}")]
    Endpoint(String),
}

/// The cluster, as the gateway reaches it. Cheap to clone; connects lazily
/// and reconnects by itself (tonic's channel), so a call made while the
/// cluster is down fails fast with `UNAVAILABLE` instead of hanging.
#[derive(Debug, Clone)]
pub struct Cluster {
    channel: Channel,
    bearer: Bearer,
    /// Resource name of the office.
    pub office: String,
    /// Deadline of one unary call.
    pub call_timeout: Duration,
    reachable: watch::Sender<bool>,
}

impl Cluster {
    /// A lazily connecting link from the configuration.
    pub fn new(config: &ClusterConfig, token: &SecretString) -> Result<Self, LinkError> {
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| LinkError::Endpoint(e.to_string()))?
            .connect_timeout(config.call_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &config.tls {
            endpoint = endpoint
                .tls_config(crate::tls::client_config(tls).map_err(LinkError::Endpoint)?)
                .map_err(|e| LinkError::Endpoint(e.to_string()))?;
        }
        let value = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| LinkError::Endpoint("token is not a valid header value".into()))?;
        Ok(Self {
            channel: endpoint.connect_lazy(),
            bearer: Bearer(value),
            office: config.office.clone(),
            call_timeout: config.call_timeout,
            reachable: watch::channel(false).0,
        })
    }

    /// A queue client.
    pub fn queue(&self) -> QueueClient {
        QueueServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A signage client.
    pub fn signage(&self) -> SignageClient {
        SignageServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// A POS client.
    pub fn pos(&self) -> PosClient {
        PosServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Whether the last call reached the cluster.
    pub fn reachable(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    /// Records the outcome of a call: any answer from the cluster (even an
    /// error status of its own) means it is reachable.
    pub fn observe<T>(&self, result: &Result<T, Status>) {
        let up = match result {
            Ok(_) => true,
            Err(status) => !is_unreachable(status),
        };
        self.reachable
            .send_if_modified(|r| std::mem::replace(r, up) != up);
    }

    /// Runs one unary call with the configured deadline, recording
    /// reachability. A deadline overrun is `DEADLINE_EXCEEDED`.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        let result = match tokio::time::timeout(self.call_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("cluster did not answer in time")),
        };
        self.observe(&result);
        result
    }
}

/// Whether a status means "could not reach the cluster" (print offline)
/// rather than "the cluster said no" (report the error).
pub fn is_unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ) || (status.code() == tonic::Code::Unknown && status.message().contains("transport"))
}

/// A board a counter's numbers go to: its line's id and driver, and its
/// Modbus unit address on that line.
#[derive(Debug, Clone)]
pub struct RoutedBoard {
    /// The line's id in the configuration (`rs485-1f`).
    pub line: String,
    /// The line's driver.
    pub handle: BoardLineHandle,
    /// The board's Modbus unit address.
    pub unit: UnitId,
}

/// Which boards show which counter: counter resource name → boards.
#[derive(Debug, Clone, Default)]
pub struct BoardRoutes {
    routes: HashMap<String, Vec<RoutedBoard>>,
}

impl BoardRoutes {
    /// Routes from the signage service's routing for the lines this
    /// gateway drives (`lines`: line id → driver).
    pub fn from_routing(
        routing: &madoguchi_proto::signage::v1::BoardRouting,
        lines: &HashMap<String, BoardLineHandle>,
    ) -> Self {
        let mut routes: HashMap<String, Vec<RoutedBoard>> = HashMap::new();
        for board in &routing.boards {
            let (Some(line), Ok(unit)) = (lines.get(&board.line), UnitId::try_from(board.address))
            else {
                continue;
            };
            for counter in &board.counters {
                routes
                    .entry(counter.clone())
                    .or_default()
                    .push(RoutedBoard {
                        line: board.line.clone(),
                        handle: line.clone(),
                        unit,
                    });
            }
        }
        Self { routes }
    }

    /// Boards of a counter.
    pub fn of(&self, counter: &str) -> &[RoutedBoard] {
        self.routes.get(counter).map_or(&[], Vec::as_slice)
    }

    /// Whether any board is routed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// What the call follower needs besides the link: the clock it measures
/// call-to-board time with, and where it records it.
#[derive(Debug, Clone)]
pub struct Follower {
    /// The floor PC's clock.
    pub clock: SharedClock,
    /// Where `madoguchi_gateway_call_to_board_seconds` is observed.
    pub recorder: Recorder,
}

/// A call to put on the boards: the event that committed it, when there
/// is one (the first start's snapshot has none).
#[derive(Debug, Clone, Copy)]
struct Call<'a> {
    event: Option<&'a pb::OfficeEvent>,
    /// The W3C traceparent sent beside the event (empty when untraced).
    trace_parent: &'a str,
}

/// Shows `number` on every board of `counter`, each write in a `board
/// write` span; for a call from the event log the span continues the
/// trace of the request that committed it (the event's `trace_parent`)
/// and the time from the event to the board's acknowledgement is
/// observed. A board that does not answer keeps the value as wanted in its
/// driver, which re-sends it when the board is back; the follower does
/// not wait for it.
async fn show(
    routes: &BoardRoutes,
    follower: &Follower,
    counter: &str,
    number: &str,
    chime: bool,
    call: Call<'_>,
) {
    let display = match BoardDisplay::ticket(number) {
        Ok(display) => BoardDisplay { chime, ..display },
        Err(error) => {
            tracing::warn!(%error, "number cannot be shown on a board");
            return;
        }
    };
    for board in routes.of(counter) {
        let span = board_write_span(board, counter);
        madoguchi_platform::telemetry::continue_trace(&span, call.trace_parent);
        let result = board
            .handle
            .show(board.unit, display)
            .instrument(span.clone())
            .await;
        match result {
            Ok(()) => {
                span.record("madoguchi.board.outcome", "shown");
                if let Some(committed) =
                    call.event
                        .and_then(|e| e.event_time.as_ref())
                        .and_then(|t| {
                            chrono::DateTime::from_timestamp(
                                t.seconds,
                                u32::try_from(t.nanos).ok()?,
                            )
                        })
                {
                    let elapsed = follower.clock.now() - committed;
                    let seconds = elapsed.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
                    follower.recorder.call_shown(&board.line, seconds);
                }
            }
            Err(error) => {
                span.record("madoguchi.board.outcome", "failed");
                span.record("otel.status_code", "error");
                let unit = board.unit;
                let _entered = span.enter();
                tracing::warn!(unit, %error, "board write failed; the driver re-sends on recovery");
            }
        }
    }
}

/// The span of one write to one board. Attributes: `madoguchi.board.line`
/// (the line's id), `madoguchi.board.unit` (the Modbus unit address),
/// `madoguchi.counter` (the counter's resource name) and
/// `madoguchi.board.outcome` (`shown`, `failed`).
fn board_write_span(board: &RoutedBoard, counter: &str) -> tracing::Span {
    tracing::info_span!(
        "board write",
        otel.name = "board write",
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        madoguchi.board.line = board.line.as_str(),
        madoguchi.board.unit = u64::from(board.unit),
        madoguchi.counter = counter,
        madoguchi.board.outcome = tracing::field::Empty,
    )
}

/// Follows the office's calls onto the boards until `shutdown` fires.
pub async fn follow_calls(
    cluster: Cluster,
    store: LocalStore,
    lines: HashMap<String, BoardLineHandle>,
    follower: Follower,
    mut backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
) {
    let office = cluster.office.clone();
    let mut routes = BoardRoutes::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempt = follow_once(
            &cluster,
            &store,
            &lines,
            &follower,
            &mut routes,
            &mut backoff,
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = shutdown.changed() => return,
        };
        if let Err(error) = outcome {
            let delay = backoff.next_delay();
            tracing::warn!(%office, %error, ?delay, "call follower lost the cluster; reconnecting");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// One connection: fetch routing, resume the stream, handle events until
/// it ends. Returns `Err` on any failure (the caller backs off).
async fn follow_once(
    cluster: &Cluster,
    store: &LocalStore,
    lines: &HashMap<String, BoardLineHandle>,
    follower: &Follower,
    routes: &mut BoardRoutes,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let office = cluster.office.clone();
    let routing = cluster
        .call(cluster.signage().get_board_routing(GetBoardRoutingRequest {
            office: office.clone(),
        }))
        .await
        .map_err(|s| format!("board routing: {}", s.message()))?;
    *routes = BoardRoutes::from_routing(&routing, lines);

    let after = match store.cursor(&office).await.map_err(|e| e.to_string())? {
        Some(after) => after,
        None => {
            // First start: show the present, follow from here.
            let status = cluster
                .call(
                    cluster
                        .queue()
                        .get_office_status(pb::GetOfficeStatusRequest {
                            name: office.clone(),
                        }),
                )
                .await
                .map_err(|s| format!("office status: {}", s.message()))?;
            for counter in &status.counters {
                if let Some(ticket) = &counter.current_ticket {
                    show(
                        routes,
                        follower,
                        &counter.name,
                        &ticket.display_number,
                        false,
                        Call {
                            event: None,
                            trace_parent: "",
                        },
                    )
                    .await;
                }
            }
            store
                .set_cursor(&office, status.last_sequence)
                .await
                .map_err(|e| e.to_string())?;
            status.last_sequence
        }
    };
    let mut stream = cluster
        .queue()
        .watch_office(pb::WatchOfficeRequest {
            office: office.clone(),
            after_sequence: after,
        })
        .await
        .map_err(|s| format!("watch: {}", s.message()))?
        .into_inner();
    backoff.reset();
    tracing::info!(%office, after, "following calls");
    while let Some(message) = stream.next().await {
        let message = message.map_err(|s| format!("stream: {}", s.message()))?;
        let event = message.event.ok_or("stream: empty message")?;
        handle_event(routes, follower, &event, &message.trace_parent).await;
        store
            .set_cursor(&office, event.sequence)
            .await
            .map_err(|e| e.to_string())?;
    }
    Err("stream ended".into())
}

/// Puts a call or recall from the office's event log on its counter's
/// boards. `trace_parent` is the W3C traceparent the queue sent beside the
/// event (that of the request that committed it; empty when untraced):
/// each board write becomes a child span of it, so the call's trace
/// reaches the board. Other events change nothing on the boards.
pub async fn handle_event(
    routes: &BoardRoutes,
    follower: &Follower,
    event: &pb::OfficeEvent,
    trace_parent: &str,
) {
    let Some(ticket) = &event.ticket else {
        return;
    };
    if let Ok(pb::EventType::TicketCalled | pb::EventType::TicketRecalled) =
        pb::EventType::try_from(event.r#type)
    {
        let call = Call {
            event: Some(event),
            trace_parent,
        };
        show(
            routes,
            follower,
            &event.counter,
            &ticket.display_number,
            true,
            call,
        )
        .await;
    }
}
