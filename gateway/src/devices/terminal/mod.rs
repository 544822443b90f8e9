//! The payment terminal (semi-integrated: card data stays in the
//! terminal), over ZVT's serial framing.
//!
//! Why not the `zvt` crate: it speaks ZVT over TCP/IP, where APDUs travel
//! without the serial layer (`DLE STX … DLE ETX`, CRC, ACK/NAK,
//! retransmission, T1/T2) that this device needs, and its application layer
//! covers the German ZVT command set with BMP/TLV structures we do not use;
//! it would also bring `anyhow`, `log`, `thiserror` 1 and a derive crate.
//! The serial layer here ([`frame`]) is ~200 lines and fuzzed.
//!
//! Protocol layers:
//! * transport ([`frame`], [`codec`]): blocks, ACK/NAK, up to
//!   `max_retries` retransmissions on NAK or T2 expiry, partial blocks
//!   dropped after T1 of silence;
//! * application: [`frame::Request`] (sale `06 01`, refund `06 31`, abort `06 1E`, status
//!   enquiry `05 01`) and [`frame::Reply`] (`80 00`, `84 xx`, result
//!   `04 0F`, completion `06 0F`); T3 bounds command → `80 00`, T4 command
//!   → completion.
//!
//! Never charging twice: [`TerminalDriver::sale`] writes the reference to
//! the [`journal`] before the first byte is sent. If anything after that is
//! lost (timeout, port gone, restart), the driver asks the terminal for the
//! outcome of that reference (status enquiry) — it never resends the sale.
//! A reference already in the journal is never sent as a sale again.
//! [`TerminalDriver::recover`] resolves what a previous run left pending.
//!
//! Logging: only the reference, amount, state and result code are logged;
//! [`frame::CardData`] (masked PAN, receipt, brand) prints as redacted and
//! is never formatted field by field.
//!
//! ```ignore
//! let journal = Arc::new(SqliteJournal::open(path).await?);
//! let terminal = TerminalDriver::new(Connector::serial(port), journal, TerminalConfig::default());
//! terminal.recover().await?;                       // at start-up
//! match terminal.sale(Yen::new(300).unwrap(), SaleRef::parse("R1-0001").unwrap()).await? { … }
//! ```

pub mod codec;
pub mod frame;
pub mod journal;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use futures::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use self::codec::ZvtCodec;
use self::frame::{Apdu, Frame, Reply, Request, ResultCode, SaleRef, TransactionResult, Yen};
use self::journal::{JournalError, SaleJournal, SaleState};
use crate::serial::{BoxTransport, Connector, Transport};

/// Protocol timers and limits.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// T1: longest silence inside a block before it is dropped.
    pub t1: Duration,
    /// T2: block sent → ACK/NAK.
    pub t2: Duration,
    /// T3: command → `80 00`.
    pub t3: Duration,
    /// T4: command → completion (the customer is paying meanwhile).
    pub t4: Duration,
    /// Retransmissions of one block after NAK or T2 (ZVT: 3).
    pub max_retries: u32,
    /// Status enquiries while the terminal says "in progress".
    pub enquiry_attempts: u32,
    /// Pause between those enquiries.
    pub enquiry_interval: Duration,
}

impl Default for TerminalConfig {
    /// Values of a public ZVT implementation at 9600 8N2.
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(200),
            t2: Duration::from_secs(15),
            t3: Duration::from_secs(5),
            t4: Duration::from_secs(180),
            max_retries: 3,
            enquiry_attempts: 5,
            enquiry_interval: Duration::from_secs(2),
        }
    }
}

/// How a sale ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleOutcome {
    /// Charged.
    Approved {
        /// Authorisation code.
        auth_code: Option<String>,
    },
    /// Declined: not charged.
    Declined,
    /// Aborted: not charged.
    Aborted,
    /// The terminal never processed it: not charged.
    NotCharged,
    /// 処理未了: the terminal does not know. Staff resolve it with
    /// [`TerminalDriver::resolve_unknown`] after checking with the brand.
    Unknown,
}

impl SaleOutcome {
    fn state(&self) -> SaleState {
        match self {
            SaleOutcome::Approved { .. } => SaleState::Approved,
            SaleOutcome::Declined => SaleState::Declined,
            SaleOutcome::Aborted => SaleState::Aborted,
            SaleOutcome::NotCharged => SaleState::NotCharged,
            SaleOutcome::Unknown => SaleState::Unknown,
        }
    }

    fn from_state(state: SaleState, auth_code: Option<String>) -> Option<Self> {
        Some(match state {
            SaleState::Approved => SaleOutcome::Approved { auth_code },
            SaleState::Declined => SaleOutcome::Declined,
            SaleState::Aborted => SaleOutcome::Aborted,
            SaleState::NotCharged => SaleOutcome::NotCharged,
            SaleState::Unknown => SaleOutcome::Unknown,
            SaleState::Pending => return None,
        })
    }
}

/// Why a terminal operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalError {
    /// The journal could not record the sale: nothing was sent.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The port cannot be opened or broke.
    #[error("payment terminal port is disconnected")]
    Disconnected,
    /// Every transmission of a block was refused (NAK storm).
    #[error("terminal refused the block {0} times")]
    RetriesExhausted(u32),
    /// The terminal refused the command (`84 xx`).
    #[error("terminal refused the command with code {0:#04x}")]
    Refused(u8),
    /// The outcome of this sale is not known yet (terminal unreachable or
    /// still in progress); it stays pending in the journal and is resolved
    /// by a later [`TerminalDriver::enquire`] or [`TerminalDriver::recover`].
    #[error("outcome of sale {0} not known yet")]
    OutcomePending(SaleRef),
    /// The terminal answered something this profile does not allow here.
    #[error("terminal protocol error: {0}")]
    Protocol(String),
    /// The reference is in the journal with a different amount.
    #[error("reference {0} was already used for another amount")]
    ReferenceReused(SaleRef),
}

type Port = Framed<BoxTransport, ZvtCodec>;

/// Transport-level failures (before the application decides what they mean).
#[derive(Debug)]
pub(crate) enum LinkError {
    /// Every attempt answered NAK: the peer certainly did not accept it.
    AllRefused(u32),
    /// At least one attempt got no answer: the peer may have it.
    NoAck,
    /// No block before the deadline.
    Timeout,
    /// The port failed.
    Io,
}

/// Sends one APDU as a block; retransmits after NAK or T2.
pub(crate) async fn send_apdu(
    port: &mut Port,
    apdu: &Apdu,
    t2: Duration,
    max_retries: u32,
) -> Result<(), LinkError> {
    let block = apdu.encode();
    let mut naks = 0;
    for _ in 0..=max_retries {
        port.send(Frame::Block(block.clone()))
            .await
            .map_err(|_| LinkError::Io)?;
        let deadline = Instant::now() + t2;
        loop {
            match tokio::time::timeout_at(deadline, port.next()).await {
                Err(_) => break,
                Ok(None | Some(Err(_))) => return Err(LinkError::Io),
                Ok(Some(Ok(Frame::Ack))) => return Ok(()),
                Ok(Some(Ok(Frame::Nak))) => {
                    naks += 1;
                    break;
                }
                // A block from the peer while we wait for our ACK: it will
                // repeat it after its T2; answering now would confuse the
                // exchange, so ignore it.
                Ok(Some(Ok(Frame::Block(_) | Frame::Corrupt))) => {}
            }
        }
    }
    if naks == max_retries + 1 {
        Err(LinkError::AllRefused(naks))
    } else {
        Err(LinkError::NoAck)
    }
}

/// Receives the next APDU before `deadline`: ACKs good blocks, NAKs
/// damaged ones, drops a partial block after `t1` of silence.
pub(crate) async fn recv_apdu(
    port: &mut Port,
    deadline: Instant,
    t1: Duration,
) -> Result<Apdu, LinkError> {
    loop {
        let wake = if port.read_buffer().is_empty() {
            deadline
        } else {
            deadline.min(Instant::now() + t1)
        };
        match tokio::time::timeout_at(wake, port.next()).await {
            Err(_) if Instant::now() >= deadline => return Err(LinkError::Timeout),
            Err(_) => {
                // T1: the rest of this block is not coming.
                port.read_buffer_mut().clear();
            }
            Ok(None | Some(Err(_))) => return Err(LinkError::Io),
            Ok(Some(Ok(Frame::Block(bytes)))) => {
                port.send(Frame::Ack).await.map_err(|_| LinkError::Io)?;
                match Apdu::parse(&bytes) {
                    Ok(apdu) => return Ok(apdu),
                    Err(error) => tracing::warn!(%error, "terminal sent an unreadable apdu"),
                }
            }
            Ok(Some(Ok(Frame::Corrupt))) => {
                port.send(Frame::Nak).await.map_err(|_| LinkError::Io)?;
            }
            Ok(Some(Ok(Frame::Ack | Frame::Nak))) => {}
        }
    }
}

/// The driver. Operations are serialised (one dialogue at a time), except
/// [`TerminalDriver::abort`], which interrupts the running sale.
#[derive(Debug)]
pub struct TerminalDriver {
    session: Mutex<Session>,
    journal: Arc<dyn SaleJournal>,
    config: TerminalConfig,
    abort: Notify,
}

struct Session {
    connector: Connector,
    port: Option<Port>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connector", &self.connector)
            .field("open", &self.port.is_some())
            .finish()
    }
}

/// What a dialogue step ended with, for the sale logic.
enum Step {
    Result(TransactionResult),
    Refused(u8),
}

impl TerminalDriver {
    /// A driver that opens its port through `connector` when first needed
    /// and again after the port failed.
    pub fn new(
        connector: Connector,
        journal: Arc<dyn SaleJournal>,
        config: TerminalConfig,
    ) -> Self {
        Self {
            session: Mutex::new(Session {
                connector,
                port: None,
            }),
            journal,
            config,
            abort: Notify::new(),
        }
    }

    /// A driver over an already open transport (tests, simulators).
    pub fn with_transport(
        transport: impl Transport,
        journal: Arc<dyn SaleJournal>,
        config: TerminalConfig,
    ) -> Self {
        Self::new(Connector::once("transport", transport), journal, config)
    }

    /// Charges `amount` under `reference`, at most once.
    ///
    /// A reference already in the journal is never sent as a sale again:
    /// its stored outcome is returned, or, if it is still pending, the
    /// terminal is asked about it.
    pub async fn sale(
        &self,
        amount: Yen,
        reference: SaleRef,
    ) -> Result<SaleOutcome, TerminalError> {
        let span = transaction_span("terminal sale", amount);
        let result = self
            .transact(amount, reference, false)
            .instrument(span.clone())
            .await;
        record_outcome(&span, &result);
        result
    }

    /// Pays `amount` back (`06 31`) under the refund's own `reference`, at
    /// most once: journaled before sending like a sale, a lost answer
    /// resolved by status enquiry, never sent twice. `Approved` means the
    /// money went back.
    pub async fn refund(
        &self,
        amount: Yen,
        reference: SaleRef,
    ) -> Result<SaleOutcome, TerminalError> {
        let span = transaction_span("terminal refund", amount);
        let result = self
            .transact(amount, reference, true)
            .instrument(span.clone())
            .await;
        record_outcome(&span, &result);
        result
    }

    async fn transact(
        &self,
        amount: Yen,
        reference: SaleRef,
        refund: bool,
    ) -> Result<SaleOutcome, TerminalError> {
        let mut session = self.session.lock().await;
        if let Some(existing) = self.journal.begin(&reference, amount).await? {
            if existing.amount != amount {
                return Err(TerminalError::ReferenceReused(reference));
            }
            if let Some(outcome) = SaleOutcome::from_state(existing.state, existing.auth_code) {
                return Ok(outcome);
            }
            drop(session);
            return self.enquire(&reference).await;
        }
        tracing::info!(%reference, %amount, "sale recorded, sending to terminal");
        let port = match session.port().await {
            Ok(port) => port,
            Err(e) => {
                // Nothing was sent: certainly not charged.
                self.journal
                    .settle(&reference, SaleState::NotCharged, None)
                    .await?;
                return Err(e);
            }
        };
        let request = if refund {
            Request::Refund {
                amount,
                reference: reference.clone(),
            }
        } else {
            Request::Sale {
                amount,
                reference: reference.clone(),
            }
        }
        .to_apdu();
        tracing::info!("request sent");
        match self.dialogue(port, &request, &reference, true).await {
            Ok(Step::Result(result)) => self.settle(&reference, &result).await,
            Ok(Step::Refused(code)) => {
                self.journal
                    .settle(&reference, SaleState::NotCharged, None)
                    .await?;
                Err(TerminalError::Refused(code))
            }
            Err(LinkError::AllRefused(n)) => {
                // Every copy was NAKed: the terminal never accepted the
                // command, so it cannot have charged.
                self.journal
                    .settle(&reference, SaleState::NotCharged, None)
                    .await?;
                Err(TerminalError::RetriesExhausted(n))
            }
            Err(error) => {
                if matches!(error, LinkError::Io) {
                    session.port = None;
                }
                tracing::warn!(%reference, ?error, "sale response lost, asking the terminal");
                drop(session);
                self.enquire(&reference).await
            }
        }
    }

    /// Asks the terminal about `reference` and records the answer. Retries
    /// while the terminal says "in progress".
    pub async fn enquire(&self, reference: &SaleRef) -> Result<SaleOutcome, TerminalError> {
        let mut session = self.session.lock().await;
        let request = Request::StatusEnquiry {
            reference: reference.clone(),
        }
        .to_apdu();
        for attempt in 0..self.config.enquiry_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.config.enquiry_interval).await;
            }
            let port = match session.port().await {
                Ok(port) => port,
                Err(_) => continue,
            };
            match self.dialogue(port, &request, reference, false).await {
                Ok(Step::Result(result)) if result.result == ResultCode::InProgress => {
                    tracing::info!(%reference, "terminal: still in progress");
                }
                Ok(Step::Result(result)) => return self.settle(reference, &result).await,
                Ok(Step::Refused(code)) => {
                    tracing::warn!(%reference, code, "terminal refused the status enquiry");
                }
                Err(error) => {
                    if matches!(error, LinkError::Io) {
                        session.port = None;
                    }
                    tracing::warn!(%reference, ?error, "status enquiry failed");
                }
            }
        }
        Err(TerminalError::OutcomePending(reference.clone()))
    }

    /// Resolves every sale a previous run left pending or unknown; returns
    /// each reference with what the terminal says now.
    pub async fn recover(
        &self,
    ) -> Result<Vec<(SaleRef, Result<SaleOutcome, TerminalError>)>, TerminalError> {
        let mut out = Vec::new();
        for entry in self.journal.unsettled().await? {
            let outcome = self.enquire(&entry.reference).await;
            out.push((entry.reference, outcome));
        }
        Ok(out)
    }

    /// Records the staff's resolution of a 処理未了 sale.
    pub async fn resolve_unknown(
        &self,
        reference: &SaleRef,
        charged: bool,
    ) -> Result<(), TerminalError> {
        let state = if charged {
            SaleState::Approved
        } else {
            SaleState::NotCharged
        };
        Ok(self.journal.settle(reference, state, None).await?)
    }

    /// Whether the port is open (opening it if needed; nothing is sent).
    /// `Ok(true)` without touching the port while a dialogue holds it.
    pub async fn check_port(&self) -> Result<bool, TerminalError> {
        let Ok(mut session) = self.session.try_lock() else {
            return Ok(true);
        };
        session.port().await.map(|_| true)
    }

    /// The journal entry of `reference`, if it was ever sent (or about to be).
    pub async fn journal_entry(
        &self,
        reference: &SaleRef,
    ) -> Result<Option<journal::JournalEntry>, TerminalError> {
        Ok(self.journal.get(reference).await?)
    }

    /// Asks the running sale to abort (`06 1E`); the terminal's result then
    /// says whether it was aborted or had already completed. No effect when
    /// no sale is running.
    pub fn abort(&self) {
        self.abort.notify_waiters();
    }

    async fn settle(
        &self,
        reference: &SaleRef,
        result: &TransactionResult,
    ) -> Result<SaleOutcome, TerminalError> {
        if &result.reference != reference {
            return Err(TerminalError::Protocol(format!(
                "result for {} while asking about {reference}",
                result.reference
            )));
        }
        let outcome = match result.result {
            ResultCode::Approved => SaleOutcome::Approved {
                auth_code: result.auth_code.clone(),
            },
            ResultCode::Declined => SaleOutcome::Declined,
            ResultCode::Aborted => SaleOutcome::Aborted,
            ResultCode::NotFound => SaleOutcome::NotCharged,
            ResultCode::Unknown => SaleOutcome::Unknown,
            ResultCode::InProgress => return Err(TerminalError::OutcomePending(reference.clone())),
        };
        let auth = match &outcome {
            SaleOutcome::Approved { auth_code } => auth_code.as_deref(),
            _ => None,
        };
        self.journal
            .settle(reference, outcome.state(), auth)
            .await?;
        // Card data is deliberately absent from this line.
        tracing::info!(%reference, state = ?outcome.state(), code = result.result.byte(), "sale settled");
        Ok(outcome)
    }

    /// One command dialogue: send, `80 00` within T3, then result and
    /// completion within T4 (each acknowledged with `80 00`). An abort
    /// request during the wait sends `06 1E` once, if `abortable`.
    async fn dialogue(
        &self,
        port: &mut Port,
        request: &Apdu,
        reference: &SaleRef,
        abortable: bool,
    ) -> Result<Step, LinkError> {
        let c = &self.config;
        let started = Instant::now();
        send_apdu(port, request, c.t2, c.max_retries).await?;
        let first = recv_apdu(port, started + c.t3, c.t1).await?;
        match Reply::from_apdu(&first) {
            Ok(Reply::Ok) => {
                if abortable {
                    // The terminal took the sale: it now waits for the card.
                    tracing::info!("awaiting card");
                }
            }
            Ok(Reply::Refused(code)) => return Ok(Step::Refused(code)),
            Ok(other) => {
                tracing::warn!(reply = ?std::mem::discriminant(&other), "expected 80 00");
                return Err(LinkError::Timeout);
            }
            Err(error) => {
                tracing::warn!(%error, "unreadable reply to command");
                return Err(LinkError::Timeout);
            }
        }
        let deadline = started + c.t4;
        let mut result = None;
        let mut abort_sent = !abortable;
        loop {
            let next = tokio::select! {
                apdu = recv_apdu(port, deadline, c.t1) => apdu?,
                () = self.abort.notified(), if !abort_sent => {
                    abort_sent = true;
                    tracing::info!(%reference, "aborting sale");
                    send_apdu(port, &Request::Abort.to_apdu(), c.t2, c.max_retries).await?;
                    continue;
                }
            };
            match Reply::from_apdu(&next) {
                Ok(Reply::Result(r)) => {
                    send_apdu(port, &Reply::Ok.to_apdu(), c.t2, c.max_retries).await?;
                    result = Some(r);
                }
                Ok(Reply::Completion) => {
                    send_apdu(port, &Reply::Ok.to_apdu(), c.t2, c.max_retries).await?;
                    return result.map(Step::Result).ok_or(LinkError::Timeout);
                }
                // `80 00` to our abort, or anything else: keep waiting.
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "unreadable terminal message"),
            }
        }
    }
}

/// The span of one sale or refund on the terminal: `terminal sale` or
/// `terminal refund`, with `madoguchi.payment.amount_yen` and, when it
/// ends, `madoguchi.terminal.outcome` (`approved`, `declined`, `aborted`,
/// `not_charged`, `unknown`, or `error`). Its phases are span events:
/// `request sent`, `awaiting card`, `sale settled` (the terminal's
/// verdict), `sale response lost, asking the terminal` when the answer was
/// lost. Never card data: the terminal does not send it and nothing here
/// would record it.
fn transaction_span(name: &'static str, amount: Yen) -> tracing::Span {
    tracing::info_span!(
        "terminal transaction",
        otel.name = name,
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        madoguchi.payment.amount_yen = amount.get(),
        madoguchi.terminal.outcome = tracing::field::Empty,
    )
}

fn record_outcome(span: &tracing::Span, result: &Result<SaleOutcome, TerminalError>) {
    let outcome = match result {
        Ok(SaleOutcome::Approved { .. }) => "approved",
        Ok(SaleOutcome::Declined) => "declined",
        Ok(SaleOutcome::Aborted) => "aborted",
        Ok(SaleOutcome::NotCharged) => "not_charged",
        Ok(SaleOutcome::Unknown) => "unknown",
        Err(_) => "error",
    };
    span.record("madoguchi.terminal.outcome", outcome);
    if result.is_err() {
        span.record("otel.status_code", "error");
    }
}

impl Session {
    async fn port(&mut self) -> Result<&mut Port, TerminalError> {
        if self.port.is_none() {
            let transport = self.connector.connect().await.map_err(|e| {
                tracing::warn!(port = self.connector.label(), error = %e, "terminal port open failed");
                TerminalError::Disconnected
            })?;
            self.port = Some(Framed::new(transport, ZvtCodec::default()));
        }
        self.port.as_mut().ok_or(TerminalError::Disconnected)
    }
}
