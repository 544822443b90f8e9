//! A simulated Epson TM printer on a serial transport (a pty master).
//!
//! It interprets ESC/POS into [`PrintedTicket`]s (text lines decoded from
//! Shift_JIS in Kanji mode, character size, QR payload, cut) and owns a
//! paper/cover/offline state machine that tests drive through
//! [`PrinterSimHandle`]:
//!
//! * real-time requests (`DLE EOT n`) are answered at once in every state,
//!   like a real printer;
//! * other data is buffered and printed only while the printer can print
//!   (paper not out, cover closed, not offline); `GS ( H` fn 48 is answered
//!   when the data before it has printed; `DLE DC4 8` discards the buffer;
//! * paper near-end still prints but is reported by `DLE EOT 4`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use encoding_rs::SHIFT_JIS;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

use super::codec::DeviceCodec;
use super::escpos::{Command, PrinterReply, StatusReport};
use super::receipt::PrintedReceipt;
use crate::serial::Transport;

/// State of the paper roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    /// Plenty.
    #[default]
    Ok,
    /// Near end: prints, reported by the near-end sensor.
    NearEnd,
    /// None: printing stops.
    Out,
}

/// The state tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimState {
    /// Paper roll.
    pub paper: Paper,
    /// Cover open.
    pub cover_open: bool,
    /// Offline for another reason (e.g. an error).
    pub offline: bool,
    /// Do not answer anything (power off with the port still open).
    pub silent: bool,
    /// Lines left on the roll: after that many more printed lines the paper
    /// runs out (mid-ticket if so placed); `None` = endless.
    pub lines_left: Option<u32>,
}

impl SimState {
    fn can_print(&self) -> bool {
        self.paper != Paper::Out && !self.cover_open && !self.offline && !self.silent
    }

    fn report(&self) -> StatusReport {
        StatusReport {
            offline: !self.can_print(),
            cover_open: self.cover_open,
            paper_out: self.paper == Paper::Out,
            paper_near_end: self.paper != Paper::Ok,
            error: false,
        }
    }
}

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedLine {
    /// Decoded text.
    pub text: String,
    /// Width multiplier (1–8).
    pub width: u8,
    /// Height multiplier (1–8).
    pub height: u8,
}

/// One ticket as it came out of the printer (up to a cut).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintedTicket {
    /// Text lines in order.
    pub lines: Vec<PrintedLine>,
    /// Payload of the last QR code printed on it.
    pub qr: Option<String>,
    /// Whether it ended with a cut.
    pub cut: bool,
}

/// One pulse on the cash-drawer connector (`ESC p m t1 t2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawerPulse {
    /// Connector pin: 2 or 5.
    pub pin: u8,
    /// On time in milliseconds.
    pub on_ms: u32,
    /// Off time in milliseconds.
    pub off_ms: u32,
    /// Tickets/receipts cut before the pulse (which one it followed).
    pub after_cuts: usize,
}

impl PrintedTicket {
    /// Whether any line's text contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.text.contains(needle))
    }

    /// The receipt printed on this paper, read back into its fields;
    /// `None` if it is not a receipt (a queue ticket, a damaged layout).
    pub fn receipt(&self) -> Option<PrintedReceipt> {
        PrintedReceipt::parse(self.lines.iter().map(|l| l.text.as_str()))
    }

    /// A plain-text rendering (for `--simulate` and logs): one line per
    /// printed line, enlarged lines marked with their size, the QR payload
    /// and a cut line.
    pub fn render_text(&self) -> String {
        let mut out = String::from("┌──────────────────────────────\n");
        for line in &self.lines {
            if line.width > 1 || line.height > 1 {
                out.push_str(&format!("│ {}   (×{})\n", line.text, line.width));
            } else {
                out.push_str(&format!("│ {}\n", line.text));
            }
        }
        if let Some(qr) = &self.qr {
            out.push_str(&format!("│ [QR] {qr}\n"));
        }
        out.push_str(if self.cut {
            "└──────────── ✂ ───────────────\n"
        } else {
            "└──────────── (no cut) ────────\n"
        });
        out
    }
}

/// Controls a running simulator.
#[derive(Debug, Clone)]
pub struct PrinterSimHandle {
    state: Arc<watch::Sender<SimState>>,
    printed: Arc<Mutex<Vec<PrintedTicket>>>,
    tickets: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<PrintedTicket>>>,
    pulses: Arc<Mutex<Vec<DrawerPulse>>>,
}

impl PrinterSimHandle {
    /// Sets the paper state.
    pub fn set_paper(&self, paper: Paper) {
        self.state.send_modify(|s| s.paper = paper);
    }

    /// Opens or closes the cover.
    pub fn set_cover_open(&self, open: bool) {
        self.state.send_modify(|s| s.cover_open = open);
    }

    /// Puts the printer offline or back online.
    pub fn set_offline(&self, offline: bool) {
        self.state.send_modify(|s| s.offline = offline);
    }

    /// Lets the paper run out after `lines` more printed lines.
    pub fn set_lines_left(&self, lines: Option<u32>) {
        self.state.send_modify(|s| s.lines_left = lines);
    }

    /// Makes the printer answer nothing at all (or answer again).
    pub fn set_silent(&self, silent: bool) {
        self.state.send_modify(|s| s.silent = silent);
    }

    /// The current state.
    pub fn state(&self) -> SimState {
        *self.state.borrow()
    }

    /// Every ticket printed so far.
    pub fn printed(&self) -> Vec<PrintedTicket> {
        self.printed.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Every receipt printed so far, read back into its fields (queue
    /// tickets are left out).
    pub fn receipts(&self) -> Vec<PrintedReceipt> {
        self.printed()
            .iter()
            .filter_map(PrintedTicket::receipt)
            .collect()
    }

    /// Every cash-drawer pulse given so far.
    pub fn drawer_pulses(&self) -> Vec<DrawerPulse> {
        self.pulses.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Waits for the next ticket printed (in print order); `None` once the
    /// simulator stopped.
    pub async fn next_ticket(&self) -> Option<PrintedTicket> {
        self.tickets.lock().await.recv().await
    }
}

/// Starts a simulator on `transport` (normally a pty master). It runs until
/// the transport closes.
pub fn spawn(transport: impl Transport) -> PrinterSimHandle {
    let state = Arc::new(watch::Sender::new(SimState::default()));
    let state_rx = state.subscribe();
    let printed = Arc::new(Mutex::new(Vec::new()));
    let (ticket_tx, ticket_rx) = mpsc::unbounded_channel();
    let pulses = Arc::new(Mutex::new(Vec::new()));
    let handle = PrinterSimHandle {
        state,
        printed: printed.clone(),
        tickets: Arc::new(tokio::sync::Mutex::new(ticket_rx)),
        pulses: pulses.clone(),
    };
    tokio::spawn(run(
        transport,
        handle.state.clone(),
        state_rx,
        Outputs {
            printed,
            tickets: ticket_tx,
            pulses,
        },
    ));
    handle
}

async fn run(
    transport: impl Transport,
    control: Arc<watch::Sender<SimState>>,
    mut state: watch::Receiver<SimState>,
    outputs: Outputs,
) {
    let mut port = Framed::new(transport, DeviceCodec);
    let mut pending: VecDeque<Command> = VecDeque::new();
    let mut engine = Engine::default();
    loop {
        let _ = state.borrow_and_update();
        while control.borrow().can_print() {
            let Some(command) = pending.pop_front() else {
                break;
            };
            if matches!(command, Command::LineFeed | Command::FeedLines(_)) {
                control.send_modify(|s| {
                    if let Some(left) = &mut s.lines_left {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            s.paper = Paper::Out;
                        }
                    }
                });
            }
            for reply in engine.execute(command, &outputs) {
                if port.send(reply).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            command = port.next() => match command {
                Some(Ok(Command::RealtimeStatus(n))) => {
                    let current = *control.borrow();
                    if current.silent || !(1..=4).contains(&n) {
                        continue;
                    }
                    let byte = current.report().status_byte(n);
                    if port.send(PrinterReply::Status(byte)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Command::ClearBuffers)) => {
                    pending.clear();
                    engine.discard_line();
                }
                Some(Ok(command)) => pending.push_back(command),
                Some(Err(_)) | None => return,
            },
            _ = state.changed() => {}
        }
    }
}

/// Where the mechanism's results go.
struct Outputs {
    printed: Arc<Mutex<Vec<PrintedTicket>>>,
    tickets: mpsc::UnboundedSender<PrintedTicket>,
    pulses: Arc<Mutex<Vec<DrawerPulse>>>,
}

/// The printing mechanism: line buffer, modes, the ticket being printed.
#[derive(Debug, Default)]
struct Engine {
    kanji: bool,
    size: u8,
    line: Vec<(bool, Vec<u8>)>,
    ticket: PrintedTicket,
    qr_data: Option<Vec<u8>>,
}

impl Engine {
    fn discard_line(&mut self) {
        self.line.clear();
        self.ticket = PrintedTicket::default();
    }

    fn execute(&mut self, command: Command, outputs: &Outputs) -> Vec<PrinterReply> {
        match command {
            Command::Text(bytes) => self.line.push((self.kanji, bytes)),
            Command::LineFeed | Command::FeedLines(_) => self.print_line(),
            Command::Initialize => {
                self.kanji = false;
                self.size = 0;
                self.line.clear();
            }
            Command::KanjiOn => self.kanji = true,
            Command::KanjiOff => self.kanji = false,
            Command::Size(n) => self.size = n,
            Command::Symbol {
                cn: 49,
                fn_code,
                params,
            } => match (fn_code, params.split_first()) {
                (80, Some((48, data))) => self.qr_data = Some(data.to_vec()),
                (81, _) => {
                    if let Some(data) = &self.qr_data {
                        self.ticket.qr = Some(String::from_utf8_lossy(data).into_owned());
                    }
                }
                _ => {}
            },
            Command::Cut { .. } => {
                if !self.line.is_empty() {
                    self.print_line();
                }
                let mut ticket = std::mem::take(&mut self.ticket);
                ticket.cut = true;
                if let Ok(mut all) = outputs.printed.lock() {
                    all.push(ticket.clone());
                }
                let _ = outputs.tickets.send(ticket);
            }
            Command::DrawerKick { pin, on, off } => {
                let cuts = outputs.printed.lock().map(|p| p.len()).unwrap_or(0);
                if let Ok(mut pulses) = outputs.pulses.lock() {
                    pulses.push(DrawerPulse {
                        pin: if matches!(pin, 1 | 49) { 5 } else { 2 },
                        on_ms: u32::from(on) * 2,
                        off_ms: u32::from(off) * 2,
                        after_cuts: cuts,
                    });
                }
            }
            Command::RequestProcessId(job) => return vec![PrinterReply::ProcessId(job)],
            _ => {}
        }
        Vec::new()
    }

    fn print_line(&mut self) {
        let mut text = String::new();
        for (kanji, bytes) in self.line.drain(..) {
            if kanji {
                text.push_str(&SHIFT_JIS.decode_without_bom_handling(&bytes).0);
            } else {
                // Outside Kanji mode every byte is one character of the
                // single-byte page: ASCII and half-width katakana.
                for b in bytes {
                    text.push_str(&SHIFT_JIS.decode_without_bom_handling(&[b]).0);
                }
            }
        }
        self.ticket.lines.push(PrintedLine {
            text,
            width: (self.size >> 4) + 1,
            height: (self.size & 0x0F) + 1,
        });
    }
}
