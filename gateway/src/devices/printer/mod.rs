//! The ticket and receipt printer (ESC/POS, Epson TM compatible, 8N1),
//! and the cash drawer on its kick connector.
//!
//! [`spawn`] starts the driver task and returns a [`PrinterHandle`]:
//!
//! ```ignore
//! let printer = printer::spawn(Connector::serial(port), PrinterConfig::default());
//! let receipt = printer.print_ticket(&content).await?; // Ok only once printed
//! let health = printer.health(); // watch::Receiver<PrinterHealth>
//! ```
//!
//! `print_ticket` returns `Ok` only after the printer confirmed, with the
//! `GS ( H` fn 48 process-id reply, that everything up to the cut printed.
//! Before sending it reads `DLE EOT 1, 2, 4`; paper out, cover open or
//! offline fail with a typed [`PrintError`] and nothing is sent. While it
//! waits for the confirmation it polls the status again; if the printer
//! stops (paper ran out mid-ticket) or the confirmation does not come in
//! `print_timeout`, it sends `DLE DC4 8` (clear buffers) so the ticket cannot
//! come out later, and fails. A ticket that was not confirmed is never
//! reported as handed out.
//!
//! Between jobs the task polls the status every `status_poll` and publishes
//! a [`PrinterHealth`] snapshot on a watch channel. A transport that fails
//! (EIO, read of 0 bytes) is reopened with backoff; requests made meanwhile
//! fail at once with [`PrintError::Disconnected`].

pub mod codec;
pub mod escpos;
pub mod receipt;
pub mod sim;

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use self::codec::HostCodec;
use self::escpos::{
    CLEAR_BUFFERS, DLE, EOT, EncodeError, JobId, PrinterReply, StatusReport, TicketContent,
    encode_ticket,
};
use self::receipt::{ReceiptContent, encode_drawer_kick, encode_receipt};
use crate::serial::{Backoff, BoxTransport, Connector, connect_with_backoff};

/// Driver timings.
#[derive(Debug, Clone)]
pub struct PrinterConfig {
    /// Status poll while idle (keeps [`PrinterHealth`] current).
    pub status_poll: Duration,
    /// How long the answers to one status query may take.
    pub status_timeout: Duration,
    /// How long a ticket may take to print and be confirmed.
    pub print_timeout: Duration,
    /// Status poll while waiting for a confirmation.
    pub confirm_poll: Duration,
    /// Reconnection backoff.
    pub backoff: Backoff,
}

impl Default for PrinterConfig {
    fn default() -> Self {
        Self {
            status_poll: Duration::from_secs(2),
            status_timeout: Duration::from_millis(500),
            print_timeout: Duration::from_secs(10),
            confirm_poll: Duration::from_millis(250),
            backoff: Backoff::default(),
        }
    }
}

/// What the cluster and metrics are told about a printer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrinterHealth {
    /// The serial port is open and the printer answers status queries.
    pub connected: bool,
    /// Printer reports itself offline.
    pub offline: bool,
    /// Paper roll near its end (still prints).
    pub paper_near_end: bool,
    /// Out of paper (cannot print).
    pub paper_out: bool,
    /// Cover open (cannot print).
    pub cover_open: bool,
    /// The last error seen, lowercase text, if any since the last success.
    pub last_error: Option<String>,
}

/// Why a ticket was not printed. In every case the ticket must not be
/// counted as handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    /// Out of paper.
    #[error("printer is out of paper")]
    PaperOut,
    /// Cover open.
    #[error("printer cover is open")]
    CoverOpen,
    /// Offline for another reason (error state, feeding, …).
    #[error("printer is offline")]
    Offline,
    /// The printer did not confirm printing within the timeout.
    #[error("printer did not confirm printing")]
    NotConfirmed,
    /// The printer did not answer a status query.
    #[error("printer does not answer")]
    NotResponding,
    /// The serial port is gone (reconnecting).
    #[error("printer port is disconnected")]
    Disconnected,
    /// The ticket cannot be encoded.
    #[error("ticket cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// The driver task ended.
    #[error("printer driver stopped")]
    Stopped,
}

impl PrintError {
    /// A stable lowercase name of the error, for span attributes and
    /// logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PaperOut => "paper_out",
            Self::CoverOpen => "cover_open",
            Self::Offline => "offline",
            Self::NotConfirmed => "not_confirmed",
            Self::NotResponding => "not_responding",
            Self::Disconnected => "disconnected",
            Self::Encode(_) => "encode",
            Self::Stopped => "stopped",
        }
    }
}

/// Proof that a ticket printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintReceipt {
    /// The job id the printer confirmed.
    pub job: JobId,
    /// Paper was near its end after printing.
    pub paper_near_end: bool,
    /// Bytes of the job sent to the printer.
    pub bytes: usize,
}

/// What one print job puts on paper (or on the drawer connector).
#[derive(Debug, Clone)]
enum Job {
    Ticket(TicketContent),
    Receipt {
        content: ReceiptContent,
        kick_drawer: bool,
    },
    DrawerKick,
}

impl Job {
    fn encode(&self, job: JobId) -> Result<Vec<u8>, EncodeError> {
        match self {
            Job::Ticket(ticket) => encode_ticket(ticket, job),
            Job::Receipt {
                content,
                kick_drawer,
            } => encode_receipt(content, job, *kick_drawer),
            Job::DrawerKick => encode_drawer_kick(job),
        }
    }
}

enum Request {
    Print(Box<Job>, oneshot::Sender<Result<PrintReceipt, PrintError>>),
    Status(oneshot::Sender<Result<StatusReport, PrintError>>),
}

/// Handle to a printer driver task; cheap to clone. The task stops when the
/// last handle is dropped.
#[derive(Debug, Clone)]
pub struct PrinterHandle {
    requests: mpsc::Sender<Request>,
    health: watch::Receiver<PrinterHealth>,
}

impl PrinterHandle {
    /// Prints one ticket; `Ok` only once the printer confirmed it printed.
    pub async fn print_ticket(&self, ticket: &TicketContent) -> Result<PrintReceipt, PrintError> {
        self.submit(Job::Ticket(ticket.clone())).await
    }

    /// Prints a receipt (領収書), then pulses the cash drawer if
    /// `kick_drawer`; `Ok` only once the printer confirmed both (the
    /// `GS ( H` tag follows the pulse). Same failure contract as
    /// [`Self::print_ticket`]: a receipt that failed was cleared from the
    /// printer's buffer and cannot come out later.
    pub async fn print_receipt(
        &self,
        receipt: &ReceiptContent,
        kick_drawer: bool,
    ) -> Result<PrintReceipt, PrintError> {
        self.submit(Job::Receipt {
            content: receipt.clone(),
            kick_drawer,
        })
        .await
    }

    /// Pulses the cash drawer (`ESC p`); `Ok` once the printer confirmed
    /// it executed the pulse. Like printing, it needs a printer that is
    /// online (the pulse is executed from the print buffer).
    pub async fn kick_drawer(&self) -> Result<PrintReceipt, PrintError> {
        self.submit(Job::DrawerKick).await
    }

    async fn submit(&self, job: Job) -> Result<PrintReceipt, PrintError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Print(Box::new(job), tx))
            .await
            .map_err(|_| PrintError::Stopped)?;
        rx.await.map_err(|_| PrintError::Stopped)?
    }

    /// Queries the real-time status now.
    pub async fn status(&self) -> Result<StatusReport, PrintError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Status(tx))
            .await
            .map_err(|_| PrintError::Stopped)?;
        rx.await.map_err(|_| PrintError::Stopped)?
    }

    /// The health snapshot, updated on every status read and failure.
    pub fn health(&self) -> watch::Receiver<PrinterHealth> {
        self.health.clone()
    }
}

/// Starts the driver task on the current tokio runtime.
pub fn spawn(connector: Connector, config: PrinterConfig) -> PrinterHandle {
    let (requests, rx) = mpsc::channel(16);
    let (health_tx, health) = watch::channel(PrinterHealth::default());
    tokio::spawn(run(connector, config, rx, health_tx));
    PrinterHandle { requests, health }
}

type Port = Framed<BoxTransport, HostCodec>;

/// Why a session with the printer ended.
enum SessionEnd {
    /// All handles dropped.
    Stopped,
    /// The transport failed; reconnect.
    Disconnected(String),
}

async fn run(
    mut connector: Connector,
    mut config: PrinterConfig,
    mut requests: mpsc::Receiver<Request>,
    health: watch::Sender<PrinterHealth>,
) {
    let mut next_job = 0u32;
    loop {
        let mut backoff = config.backoff.clone();
        // Biased: a port that opens at once is used before any queued
        // request is refused.
        let transport = tokio::select! {
            biased;
            t = connect_with_backoff(&mut connector, &mut backoff, |e| {
                let message = format!("open failed: {e}");
                health.send_modify(|h| { h.connected = false; h.last_error = Some(message); });
            }) => t,
            stopped = refuse_while_disconnected(&mut requests) => { let () = stopped; return; }
        };
        config.backoff.reset();
        let mut port = Framed::new(transport, HostCodec::default());
        match session(&mut port, &config, &mut requests, &health, &mut next_job).await {
            SessionEnd::Stopped => return,
            SessionEnd::Disconnected(reason) => {
                tracing::warn!(port = connector.label(), %reason, "printer disconnected");
                health.send_modify(|h| {
                    h.connected = false;
                    h.last_error = Some(reason);
                });
            }
        }
    }
}

/// Answers every request with `Disconnected` until the handles are gone.
async fn refuse_while_disconnected(requests: &mut mpsc::Receiver<Request>) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Print(_, reply) => {
                let _ = reply.send(Err(PrintError::Disconnected));
            }
            Request::Status(reply) => {
                let _ = reply.send(Err(PrintError::Disconnected));
            }
        }
    }
}

/// A failure inside a session: a device answer (keep the session) or a
/// broken transport (end it).
enum Failure {
    Device(PrintError),
    Transport(String),
}

async fn session(
    port: &mut Port,
    config: &PrinterConfig,
    requests: &mut mpsc::Receiver<Request>,
    health: &watch::Sender<PrinterHealth>,
    next_job: &mut u32,
) -> SessionEnd {
    // First contact: learn the state before anyone asks to print.
    if let Err(Failure::Transport(reason)) = refresh_status(port, config, health).await {
        return SessionEnd::Disconnected(reason);
    }
    let mut poll = tokio::time::interval(config.status_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return SessionEnd::Stopped };
                let outcome = match request {
                    Request::Print(ticket, reply) => {
                        *next_job = next_job.wrapping_add(1);
                        let job = JobId::from_sequence(*next_job);
                        let result = print(port, config, health, &ticket, job).await;
                        split(result, |r| { let _ = reply.send(r); })
                    }
                    Request::Status(reply) => {
                        let result = refresh_status(port, config, health).await;
                        split(result, |r| { let _ = reply.send(r); })
                    }
                };
                if let Some(reason) = outcome {
                    return SessionEnd::Disconnected(reason);
                }
                poll.reset();
            }
            _ = poll.tick() => {
                if let Err(Failure::Transport(reason)) = refresh_status(port, config, health).await {
                    return SessionEnd::Disconnected(reason);
                }
            }
            reply = port.next() => match reply {
                // Unsolicited replies (a late confirmation, XON/XOFF) carry
                // nothing the idle driver needs.
                Some(Ok(_)) => {}
                Some(Err(e)) => return SessionEnd::Disconnected(format!("read failed: {e}")),
                None => return SessionEnd::Disconnected("port closed".to_owned()),
            },
        }
    }
}

/// Sends a device result to the caller; returns the reason if the
/// transport broke (the caller then sees `Disconnected`).
fn split<T>(
    result: Result<T, Failure>,
    reply: impl FnOnce(Result<T, PrintError>),
) -> Option<String> {
    match result {
        Ok(value) => {
            reply(Ok(value));
            None
        }
        Err(Failure::Device(e)) => {
            reply(Err(e));
            None
        }
        Err(Failure::Transport(reason)) => {
            reply(Err(PrintError::Disconnected));
            Some(reason)
        }
    }
}

async fn send(port: &mut Port, bytes: Vec<u8>) -> Result<(), Failure> {
    port.send(Bytes::from(bytes))
        .await
        .map_err(|e| Failure::Transport(format!("write failed: {e}")))
}

/// Sends `DLE EOT 1, 2, 4` and reads the three answers, skipping any other
/// replies that interleave. A confirmation for `waiting_for` seen meanwhile
/// is reported through `confirmed`.
async fn query_status(
    port: &mut Port,
    timeout: Duration,
    waiting_for: Option<JobId>,
    confirmed: &mut bool,
) -> Result<StatusReport, Failure> {
    send(port, vec![DLE, EOT, 1, DLE, EOT, 2, DLE, EOT, 4]).await?;
    let deadline = Instant::now() + timeout;
    let mut bytes = [0u8; 3];
    let mut got = 0;
    while got < bytes.len() {
        match tokio::time::timeout_at(deadline, port.next()).await {
            Err(_) => return Err(Failure::Device(PrintError::NotResponding)),
            Ok(None) => return Err(Failure::Transport("port closed".to_owned())),
            Ok(Some(Err(e))) => return Err(Failure::Transport(format!("read failed: {e}"))),
            Ok(Some(Ok(PrinterReply::Status(b)))) => {
                bytes[got] = b;
                got += 1;
            }
            Ok(Some(Ok(PrinterReply::ProcessId(job)))) if Some(job) == waiting_for => {
                *confirmed = true;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    Ok(StatusReport::from_bytes(bytes[0], bytes[1], bytes[2]))
}

fn publish(health: &watch::Sender<PrinterHealth>, status: &StatusReport) {
    health.send_modify(|h| {
        h.connected = true;
        h.offline = status.offline;
        h.paper_near_end = status.paper_near_end;
        h.paper_out = status.paper_out;
        h.cover_open = status.cover_open;
    });
}

fn record_error(health: &watch::Sender<PrinterHealth>, error: &PrintError) {
    let message = error.to_string();
    health.send_modify(|h| h.last_error = Some(message));
}

async fn refresh_status(
    port: &mut Port,
    config: &PrinterConfig,
    health: &watch::Sender<PrinterHealth>,
) -> Result<StatusReport, Failure> {
    let mut ignored = false;
    match query_status(port, config.status_timeout, None, &mut ignored).await {
        Ok(status) => {
            publish(health, &status);
            Ok(status)
        }
        Err(Failure::Device(e)) => {
            health.send_modify(|h| {
                h.connected = false;
                h.last_error = Some(e.to_string());
            });
            Err(Failure::Device(e))
        }
        Err(e) => Err(e),
    }
}

/// The error that keeps a printer in `status` from printing, if any.
fn blocking_error(status: &StatusReport) -> Option<PrintError> {
    if status.paper_out {
        Some(PrintError::PaperOut)
    } else if status.cover_open {
        Some(PrintError::CoverOpen)
    } else if status.offline {
        Some(PrintError::Offline)
    } else {
        None
    }
}

async fn print(
    port: &mut Port,
    config: &PrinterConfig,
    health: &watch::Sender<PrinterHealth>,
    what: &Job,
    job: JobId,
) -> Result<PrintReceipt, Failure> {
    let bytes = what.encode(job).map_err(|e| Failure::Device(e.into()))?;
    let status = refresh_status(port, config, health).await?;
    if let Some(error) = blocking_error(&status) {
        record_error(health, &error);
        return Err(Failure::Device(error));
    }
    let length = bytes.len();
    send(port, bytes).await?;

    let deadline = Instant::now() + config.print_timeout;
    let mut next_poll = Instant::now() + config.confirm_poll;
    loop {
        let wake = next_poll.min(deadline);
        match tokio::time::timeout_at(wake, port.next()).await {
            Ok(Some(Ok(PrinterReply::ProcessId(id)))) if id == job => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(Failure::Transport(format!("read failed: {e}"))),
            Ok(None) => return Err(Failure::Transport("port closed".to_owned())),
            Err(_) if Instant::now() >= deadline => {
                return Err(abandon(port, config, health, PrintError::NotConfirmed).await);
            }
            Err(_) => {
                next_poll = Instant::now() + config.confirm_poll;
                let mut confirmed = false;
                let status =
                    query_status(port, config.status_timeout, Some(job), &mut confirmed).await;
                if confirmed {
                    break;
                }
                match status {
                    Ok(status) => {
                        publish(health, &status);
                        if let Some(error) = blocking_error(&status) {
                            return Err(abandon(port, config, health, error).await);
                        }
                    }
                    Err(Failure::Device(e)) => return Err(abandon(port, config, health, e).await),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    health.send_modify(|h| h.last_error = None);
    Ok(PrintReceipt {
        job,
        paper_near_end: health.borrow().paper_near_end,
        bytes: length,
    })
}

/// Gives up on a job: clears the printer's buffers so the ticket cannot
/// print later, records and returns the error.
///
/// Real-time commands are executed in the order they arrive, so the answer
/// to a status query sent after `DLE DC4 8` proves the buffers were cleared
/// before we report the failure: a refill right after cannot print it.
async fn abandon(
    port: &mut Port,
    config: &PrinterConfig,
    health: &watch::Sender<PrinterHealth>,
    error: PrintError,
) -> Failure {
    record_error(health, &error);
    if let Err(failure) = send(port, CLEAR_BUFFERS.to_vec()).await {
        return failure;
    }
    let mut ignored = false;
    match query_status(port, config.status_timeout, None, &mut ignored).await {
        Ok(status) => publish(health, &status),
        Err(Failure::Transport(reason)) => return Failure::Transport(reason),
        // A printer that stopped answering cannot print either.
        Err(Failure::Device(_)) => {}
    }
    Failure::Device(error)
}
