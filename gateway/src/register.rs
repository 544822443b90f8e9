//! The register (レジ) on the gateway: follows the POS service's
//! `WatchRegister` stream for one register and acts on its events with the
//! register's devices — the payment terminal ([`TerminalDriver`]) and the
//! receipt printer (with the cash drawer on its kick connector).
//!
//! Promises:
//! * **never a second sale**: a `PaymentRequested` goes through
//!   [`TerminalDriver::sale`], whose journal records the reference before
//!   the first byte is sent; a reference already journaled is never sent
//!   as a sale again (its stored outcome is used, or the terminal is asked
//!   with a status enquiry);
//! * **every outcome reported**: the outcome is reported with
//!   `ReportPaymentOutcome` (idempotent on the server), retried with
//!   backoff until the cluster acknowledges it (or refuses it for good);
//! * **nothing lost, nothing repeated across restarts**: the position in
//!   the stream (`after_sequence`, stored in the gateway's local store
//!   under the register's resource name) only moves past an event once it
//!   was fully handled (outcome acknowledged, receipt printed). A restart
//!   mid-payment therefore receives the `PaymentRequested` again; the
//!   journal turns it into "ask the terminal what happened" and the answer
//!   — or `UNKNOWN` (処理未了) if the terminal cannot tell — is reported;
//! * events are handled by two workers, one per device, so an
//!   `AbortRequested` reaches the terminal while its sale is running, and
//!   receipts print in the order they were requested.
//!
//! The terminal never gives the gateway card data (semi-integrated); what
//! it returns for the receipt (masked number, slip text) is neither
//! reported nor logged: only reference, amount, state, result code and
//! approval number are.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use madoguchi_proto::pos::v1 as pos;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::devices::printer::receipt::{ReceiptContent, ReceiptItem};
use crate::devices::printer::{PrintError, PrinterHandle};
use crate::devices::terminal::frame::{ResultCode, SaleRef, Yen};
use crate::devices::terminal::{SaleOutcome, TerminalDriver, TerminalError};
use crate::link::Cluster;
use crate::serial::Backoff;
use crate::store::LocalStore;

/// What the cluster and metrics are told about a register's terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminalHealth {
    /// The port is open (as of the last use or check).
    pub connected: bool,
    /// The last error, lowercase, if any since the last success.
    pub last_error: Option<String>,
}

/// One register's devices and identity.
#[derive(Debug, Clone)]
pub struct Register {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    name: String,
    cluster: Cluster,
    store: LocalStore,
    terminal: Arc<TerminalDriver>,
    printer: PrinterHandle,
    health: watch::Sender<TerminalHealth>,
    backoff: Backoff,
    /// The payment whose sale is on the terminal now.
    running: Mutex<Option<String>>,
    /// Payments whose abort arrived before their sale started.
    aborted: Mutex<HashSet<String>>,
}

/// How long an abort keeps knocking on a running sale.
const ABORT_PERSISTENCE: Duration = Duration::from_secs(30);

/// One event a worker handles, with its sequence.
#[derive(Debug)]
struct Work {
    sequence: u64,
    kind: pos::register_event::Kind,
}

/// The positions in flight and the last one stored.
#[derive(Debug, Default)]
struct Cursor {
    in_flight: BTreeSet<u64>,
    dispatched: u64,
    stored: u64,
}

impl Cursor {
    /// The position every event up to which was handled.
    fn handled(&self) -> u64 {
        match self.in_flight.first() {
            Some(first) => first.saturating_sub(1).max(self.stored),
            None => self.dispatched,
        }
    }
}

impl Register {
    /// A register `id` (resource name `name`) with its devices.
    pub fn new(
        id: String,
        name: String,
        cluster: Cluster,
        store: LocalStore,
        terminal: Arc<TerminalDriver>,
        printer: PrinterHandle,
        backoff: Backoff,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                name,
                cluster,
                store,
                terminal,
                printer,
                health: watch::channel(TerminalHealth::default()).0,
                backoff,
                running: Mutex::new(None),
                aborted: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The register id, e.g. `r1`.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The register's resource name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The terminal driver.
    pub fn terminal(&self) -> &Arc<TerminalDriver> {
        &self.inner.terminal
    }

    /// The receipt printer.
    pub fn printer(&self) -> &PrinterHandle {
        &self.inner.printer
    }

    /// The terminal's health.
    pub fn terminal_health(&self) -> watch::Receiver<TerminalHealth> {
        self.inner.health.subscribe()
    }

    /// Checks the terminal's port and publishes the result.
    pub async fn check_terminal(&self) {
        let result = self.inner.terminal.check_port().await;
        self.note_terminal(result.map(|_| ()).map_err(|e| e.to_string()));
    }

    fn note_terminal(&self, result: Result<(), String>) {
        self.inner.health.send_modify(|h| match result {
            Ok(()) => {
                h.connected = true;
                h.last_error = None;
            }
            Err(error) => {
                h.connected = false;
                h.last_error = Some(error);
            }
        });
    }

    /// Follows the register's events until `shutdown` fires. Reconnects
    /// with backoff and jitter; the position survives restarts.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (terminal_tx, terminal_rx) = mpsc::unbounded_channel();
        let (printer_tx, printer_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(
            self.clone()
                .terminal_worker(terminal_rx, done_tx.clone(), shutdown.clone()),
        );
        workers.spawn(
            self.clone()
                .printer_worker(printer_rx, done_tx.clone(), shutdown.clone()),
        );
        self.check_terminal().await;

        let inner = &self.inner;
        let mut cursor = Cursor::default();
        loop {
            match inner.store.cursor(&inner.name).await {
                Ok(stored) => {
                    cursor.stored = stored.unwrap_or(0);
                    cursor.dispatched = cursor.stored;
                    break;
                }
                Err(error) => {
                    tracing::error!(register = %inner.id, %error, "cannot read the register position");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
        let mut backoff = inner.backoff.clone();
        let mut stream: Option<tonic::Streaming<pos::WatchRegisterResponse>> = None;
        let mut reconnect_at = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(sequence) = done_rx.recv() => {
                    cursor.in_flight.remove(&sequence);
                    let handled = cursor.handled();
                    if handled > cursor.stored {
                        match inner.store.set_cursor(&inner.name, handled).await {
                            Ok(()) => cursor.stored = handled,
                            Err(error) => tracing::error!(register = %inner.id, %error, "cannot store the register position"),
                        }
                    }
                }
                () = tokio::time::sleep_until(reconnect_at), if stream.is_none() => {
                    // Resume after what was dispatched (workers still hold
                    // the events in flight), not after what was stored.
                    let request = pos::WatchRegisterRequest {
                        register: inner.name.clone(),
                        after_sequence: cursor.dispatched,
                    };
                    match inner.cluster.pos().watch_register(request).await {
                        Ok(response) => {
                            tracing::info!(register = %inner.id, after = cursor.dispatched, "following register events");
                            backoff.reset();
                            stream = Some(response.into_inner());
                        }
                        Err(status) => {
                            let delay = backoff.next_delay();
                            tracing::warn!(register = %inner.id, error = status.message(), ?delay, "cannot follow register events; retrying");
                            reconnect_at = Instant::now() + delay;
                        }
                    }
                }
                message = next(&mut stream) => {
                    let event = match message {
                        Some(Ok(pos::WatchRegisterResponse { event: Some(event) })) => event,
                        Some(Ok(_)) => continue,
                        other => {
                            let error = match other {
                                Some(Err(status)) => status.message().to_owned(),
                                _ => "stream ended".to_owned(),
                            };
                            let delay = backoff.next_delay();
                            tracing::warn!(register = %inner.id, %error, ?delay, "register stream lost; reconnecting");
                            stream = None;
                            reconnect_at = Instant::now() + delay;
                            continue;
                        }
                    };
                    if event.sequence <= cursor.dispatched {
                        continue;
                    }
                    cursor.dispatched = event.sequence;
                    let Some(kind) = event.kind else {
                        cursor.in_flight.insert(event.sequence);
                        let _ = done_tx.send(event.sequence);
                        continue;
                    };
                    cursor.in_flight.insert(event.sequence);
                    let work = Work { sequence: event.sequence, kind };
                    match &work.kind {
                        pos::register_event::Kind::PaymentRequested(_)
                        | pos::register_event::Kind::RefundRequested(_) => {
                            let _ = terminal_tx.send(work);
                        }
                        pos::register_event::Kind::ReceiptToPrint(_)
                        | pos::register_event::Kind::DrawerKick(_) => {
                            let _ = printer_tx.send(work);
                        }
                        pos::register_event::Kind::AbortRequested(abort) => {
                            self.abort(abort);
                            let _ = done_tx.send(work.sequence);
                        }
                    }
                }
            }
        }
        drop(terminal_tx);
        drop(printer_tx);
        workers.shutdown().await;
    }

    /// Aborts the payment if its sale is running, or before it starts.
    fn abort(&self, abort: &pos::AbortRequested) {
        let running = self
            .inner
            .running
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        if running.as_deref() == Some(abort.payment.as_str()) {
            tracing::info!(register = %self.inner.id, reference = %abort.terminal_reference, "abort requested for the running sale");
            // `abort` wakes a dialogue that is waiting; one that is just
            // starting would miss a single wake-up, so repeat it while the
            // sale runs (the driver sends `06 1E` once per dialogue).
            let register = self.clone();
            let payment = abort.payment.clone();
            tokio::spawn(async move {
                let until = Instant::now() + ABORT_PERSISTENCE;
                while Instant::now() < until && register.is_running(&payment) {
                    register.inner.terminal.abort();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        } else if let Ok(mut aborted) = self.inner.aborted.lock() {
            aborted.insert(abort.payment.clone());
        }
    }

    fn is_running(&self, payment: &str) -> bool {
        self.inner
            .running
            .lock()
            .map(|r| r.as_deref() == Some(payment))
            .unwrap_or(false)
    }

    async fn terminal_worker(
        self,
        mut work: mpsc::UnboundedReceiver<Work>,
        done: mpsc::UnboundedSender<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let item = tokio::select! {
                item = work.recv() => item,
                _ = shutdown.changed() => return,
            };
            let Some(item) = item else { return };
            let handled = match &item.kind {
                pos::register_event::Kind::PaymentRequested(payment) => {
                    self.pay(payment, &mut shutdown).await
                }
                pos::register_event::Kind::RefundRequested(refund) => {
                    self.refund(refund, &mut shutdown).await
                }
                _ => true,
            };
            if !handled {
                // Shutting down: the event stays unhandled and is
                // delivered again after the restart.
                return;
            }
            let _ = done.send(item.sequence);
        }
    }

    /// Runs one payment on the terminal and reports its outcome; `false`
    /// if interrupted by shutdown before the outcome was acknowledged.
    async fn pay(
        &self,
        request: &pos::PaymentRequested,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let inner = &self.inner;
        let report = |outcome: pos::PaymentOutcome, code: String, approval: String| {
            pos::ReportPaymentOutcomeRequest {
                payment: request.payment.clone(),
                outcome: outcome as i32,
                terminal_result_code: code,
                approval_number: approval,
                terminal_trace: request.terminal_reference.clone(),
            }
        };
        let (Some(reference), Some(amount)) = (
            SaleRef::parse(&request.terminal_reference),
            u64::try_from(request.amount_yen).ok().and_then(Yen::new),
        ) else {
            // Nothing can be sent for it: certainly not charged.
            tracing::warn!(register = %inner.id, payment = %request.payment, "payment request with an unusable reference or amount");
            let outcome = report(
                pos::PaymentOutcome::Aborted,
                "INVALID".into(),
                String::new(),
            );
            return self.report_payment(outcome, shutdown).await;
        };
        let aborted_before_start = inner
            .aborted
            .lock()
            .map(|mut a| a.remove(&request.payment))
            .unwrap_or(false);
        // Aborted before its sale started, and never sent in an earlier
        // run (else the terminal is asked, below).
        if aborted_before_start && let Ok(None) = inner.terminal.journal_entry(&reference).await {
            tracing::info!(register = %inner.id, %reference, "aborted before it reached the terminal");
            let outcome = report(
                pos::PaymentOutcome::Aborted,
                "NOTSENT".into(),
                String::new(),
            );
            return self.report_payment(outcome, shutdown).await;
        }
        if let Ok(mut running) = inner.running.lock() {
            *running = Some(request.payment.clone());
        }
        let result = tokio::select! {
            result = inner.terminal.sale(amount, reference.clone()) => Some(result),
            // The journal holds the reference: after the restart the sale
            // is not sent again, the terminal is asked instead.
            _ = shutdown.changed() => None,
        };
        if let Ok(mut running) = inner.running.lock() {
            *running = None;
        }
        let Some(result) = result else { return false };
        let (outcome, code, approval) = match &result {
            Ok(SaleOutcome::Approved { auth_code }) => (
                pos::PaymentOutcome::Approved,
                code(ResultCode::Approved),
                auth_code.clone().unwrap_or_default(),
            ),
            Ok(SaleOutcome::Declined) => (
                pos::PaymentOutcome::Declined,
                code(ResultCode::Declined),
                String::new(),
            ),
            Ok(SaleOutcome::Aborted) => (
                pos::PaymentOutcome::Aborted,
                code(ResultCode::Aborted),
                String::new(),
            ),
            // The terminal has no such transaction: nothing was charged.
            Ok(SaleOutcome::NotCharged) => (
                pos::PaymentOutcome::Aborted,
                code(ResultCode::NotFound),
                String::new(),
            ),
            Ok(SaleOutcome::Unknown) => (
                pos::PaymentOutcome::Unknown,
                code(ResultCode::Unknown),
                String::new(),
            ),
            // Still in progress after the enquiries, or unreachable after
            // the sale was sent: 処理未了 until a later enquiry or a
            // supervisor settles it.
            Err(TerminalError::OutcomePending(_)) => (
                pos::PaymentOutcome::Unknown,
                "PENDING".into(),
                String::new(),
            ),
            // The port never opened: the sale was not sent.
            Err(TerminalError::Disconnected) => (
                pos::PaymentOutcome::Aborted,
                "NOTSENT".into(),
                String::new(),
            ),
            // Every copy was NAKed: the terminal never accepted it.
            Err(TerminalError::RetriesExhausted(_)) => {
                (pos::PaymentOutcome::Aborted, "NAK".into(), String::new())
            }
            Err(TerminalError::Refused(byte)) => (
                pos::PaymentOutcome::Declined,
                format!("84{byte:02X}"),
                String::new(),
            ),
            // The journal failed (possibly after the terminal answered),
            // a reused reference, or a protocol violation: nobody can
            // tell from here whether money moved.
            Err(
                TerminalError::Journal(_)
                | TerminalError::ReferenceReused(_)
                | TerminalError::Protocol(_),
            ) => (pos::PaymentOutcome::Unknown, "ERROR".into(), String::new()),
        };
        match &result {
            Err(TerminalError::Disconnected) => {
                self.note_terminal(Err("payment terminal port is disconnected".into()));
            }
            Err(TerminalError::OutcomePending(_)) => {
                self.note_terminal(Err("terminal did not give an outcome".into()));
            }
            _ => self.note_terminal(Ok(())),
        }
        tracing::info!(register = %inner.id, %reference, %amount, outcome = ?outcome, code = %code, "payment outcome");
        self.report_payment(report(outcome, code, approval), shutdown)
            .await
    }

    /// Reports until acknowledged; `false` if shutdown came first.
    async fn report_payment(
        &self,
        request: pos::ReportPaymentOutcomeRequest,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let inner = &self.inner;
        let mut backoff = inner.backoff.clone();
        loop {
            let result = inner
                .cluster
                .call(inner.cluster.pos().report_payment_outcome(request.clone()))
                .await;
            match result {
                Ok(_) => return true,
                Err(status) if is_final(&status) => {
                    // The cluster holds a settled state (e.g. a supervisor
                    // resolved it meanwhile): retrying cannot change it.
                    tracing::warn!(register = %inner.id, payment = %request.payment, code = ?status.code(), error = status.message(), "outcome refused by the cluster");
                    return true;
                }
                Err(status) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(register = %inner.id, payment = %request.payment, error = status.message(), ?delay, "outcome not reported yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return false,
                    }
                }
            }
        }
    }

    /// Pays a terminal payment back (`06 31`, journaled like a sale) and
    /// reports the outcome; `false` if interrupted by shutdown first.
    async fn refund(
        &self,
        request: &pos::RefundRequested,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let inner = &self.inner;
        let outcome = match (
            SaleRef::parse(&request.terminal_reference),
            u64::try_from(request.amount_yen).ok().and_then(Yen::new),
        ) {
            (Some(reference), Some(amount)) => {
                let result = tokio::select! {
                    result = inner.terminal.refund(amount, reference.clone()) => result,
                    _ = shutdown.changed() => return false,
                };
                tracing::info!(register = %inner.id, %reference, %amount, ok = result.is_ok(), "refund outcome");
                match result {
                    Ok(SaleOutcome::Approved { .. }) => {
                        Some((pos::PaymentOutcome::Approved, code(ResultCode::Approved)))
                    }
                    Ok(SaleOutcome::Declined) => {
                        Some((pos::PaymentOutcome::Declined, code(ResultCode::Declined)))
                    }
                    Ok(SaleOutcome::Aborted) => {
                        Some((pos::PaymentOutcome::Declined, code(ResultCode::Aborted)))
                    }
                    Ok(SaleOutcome::NotCharged) => {
                        Some((pos::PaymentOutcome::Declined, code(ResultCode::NotFound)))
                    }
                    Err(TerminalError::Disconnected) => {
                        Some((pos::PaymentOutcome::Declined, "NOTSENT".into()))
                    }
                    Err(TerminalError::RetriesExhausted(_)) => {
                        Some((pos::PaymentOutcome::Declined, "NAK".into()))
                    }
                    Err(TerminalError::Refused(byte)) => {
                        Some((pos::PaymentOutcome::Declined, format!("84{byte:02X}")))
                    }
                    // Whether money went back is not known: a refund has
                    // only APPROVED or DECLINED, and either could be wrong,
                    // so it stays REQUESTED for staff to check the
                    // terminal's journal.
                    Ok(SaleOutcome::Unknown) | Err(_) => None,
                }
            }
            _ => Some((pos::PaymentOutcome::Declined, "INVALID".into())),
        };
        let Some((outcome, terminal_result_code)) = outcome else {
            tracing::error!(register = %inner.id, refund = %request.refund, "refund outcome unknown; left requested for staff");
            return true;
        };
        let report = pos::ReportRefundOutcomeRequest {
            refund: request.refund.clone(),
            outcome: outcome as i32,
            terminal_result_code,
        };
        let mut backoff = inner.backoff.clone();
        loop {
            let result = inner
                .cluster
                .call(inner.cluster.pos().report_refund_outcome(report.clone()))
                .await;
            match result {
                Ok(_) => return true,
                Err(status) if is_final(&status) => {
                    tracing::warn!(register = %inner.id, refund = %request.refund, error = status.message(), "refund outcome refused by the cluster");
                    return true;
                }
                Err(status) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(register = %inner.id, refund = %request.refund, error = status.message(), ?delay, "refund outcome not reported yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return false,
                    }
                }
            }
        }
    }

    async fn printer_worker(
        self,
        mut work: mpsc::UnboundedReceiver<Work>,
        done: mpsc::UnboundedSender<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let item = tokio::select! {
                item = work.recv() => item,
                _ = shutdown.changed() => return,
            };
            let Some(item) = item else { return };
            let handled = match &item.kind {
                pos::register_event::Kind::ReceiptToPrint(print) => match &print.receipt {
                    Some(receipt) => self.print(receipt, &mut shutdown).await,
                    None => true,
                },
                pos::register_event::Kind::DrawerKick(_) => self.kick(&mut shutdown).await,
                _ => true,
            };
            if !handled {
                return;
            }
            let _ = done.send(item.sequence);
        }
    }

    /// Prints a receipt, retrying while the printer cannot print (paper
    /// out, cover open: staff see it in the device health); `false` if
    /// shutdown came first.
    async fn print(&self, receipt: &pos::Receipt, shutdown: &mut watch::Receiver<bool>) -> bool {
        let content = receipt_content(receipt);
        let inner = &self.inner;
        let mut backoff = inner.backoff.clone();
        loop {
            match inner.printer.print_receipt(&content, false).await {
                Ok(_) => {
                    tracing::info!(register = %inner.id, receipt = %content.receipt_number, reprint = content.reprint, "receipt printed");
                    return true;
                }
                Err(PrintError::Encode(error)) => {
                    tracing::error!(register = %inner.id, receipt = %content.receipt_number, %error, "receipt cannot be printed");
                    return true;
                }
                Err(error) => {
                    let delay = backoff.next_delay().max(Duration::from_millis(500));
                    tracing::warn!(register = %inner.id, receipt = %content.receipt_number, %error, ?delay, "receipt not printed yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return false,
                    }
                }
            }
        }
    }

    /// Opens the cash drawer, retrying while the printer cannot.
    async fn kick(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let inner = &self.inner;
        let mut backoff = inner.backoff.clone();
        loop {
            match inner.printer.kick_drawer().await {
                Ok(_) => return true,
                Err(error) => {
                    let delay = backoff.next_delay().max(Duration::from_millis(500));
                    tracing::warn!(register = %inner.id, %error, ?delay, "drawer not opened yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return false,
                    }
                }
            }
        }
    }
}

/// The next message of the stream, or never while there is none.
async fn next(
    stream: &mut Option<tonic::Streaming<pos::WatchRegisterResponse>>,
) -> Option<Result<pos::WatchRegisterResponse, tonic::Status>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// The result code as reported: the terminal's byte in hex.
fn code(result: ResultCode) -> String {
    format!("{:02X}", result.byte())
}

/// The cluster answered and will answer the same again.
fn is_final(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::FailedPrecondition
            | tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::AlreadyExists
    )
}

fn yen_of(y: Option<&madoguchi_proto::types::v1::Yen>) -> u64 {
    y.map_or(0, |y| u64::try_from(y.amount).unwrap_or(0))
}

/// How a method is printed.
pub fn method_ja(method: pos::PaymentMethod) -> &'static str {
    match method {
        pos::PaymentMethod::Cash => "現金",
        pos::PaymentMethod::Card => "クレジットカード",
        pos::PaymentMethod::Emoney => "電子マネー",
        pos::PaymentMethod::Qr => "QRコード決済",
        pos::PaymentMethod::Unspecified => "その他",
    }
}

/// The printed receipt of a POS `Receipt`: figures as the service computed
/// them; the issue time as the service formatted it (Asia/Tokyo).
pub fn receipt_content(r: &pos::Receipt) -> ReceiptContent {
    let method = pos::PaymentMethod::try_from(r.method).unwrap_or(pos::PaymentMethod::Unspecified);
    let cash = method == pos::PaymentMethod::Cash;
    ReceiptContent {
        municipality: r.municipality_name.clone(),
        office: r.office_name.clone(),
        receipt_number: r.receipt_number.clone(),
        issued_at: r.issue_time_text.clone(),
        items: r
            .lines
            .iter()
            .map(|l| ReceiptItem {
                name: l.name_ja.clone(),
                unit_fee_yen: yen_of(l.unit_fee.as_ref()),
                copies: l.copies,
                amount_yen: yen_of(l.amount.as_ref()),
                exemption: (!l.exemption_ja.is_empty()).then(|| l.exemption_ja.clone()),
            })
            .collect(),
        total_yen: yen_of(r.total.as_ref()),
        method: method_ja(method).to_owned(),
        tendered_yen: cash.then(|| yen_of(r.tendered.as_ref())),
        change_yen: cash.then(|| yen_of(r.change.as_ref())),
        approval_number: (!r.approval_number.is_empty()).then(|| r.approval_number.clone()),
        non_taxable: r.non_taxable,
        reprint: r.reprint,
    }
}
