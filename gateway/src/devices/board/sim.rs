//! Simulated call boards: one real Modbus RTU slave (`tokio-modbus`
//! server) on a serial port, answering for several unit ids like boards
//! sharing one RS-485 line. Frames for other unit ids go unanswered, as on
//! a real multidrop line; broadcast (unit 0) writes apply to every board
//! and are never answered.
//!
//! Tests drive power: [`BoardSimHandle::power_off`] makes a board silent,
//! [`BoardSimHandle::power_on`] brings it back blank with its `BOOT` counter
//! incremented, as a board that lost power.

use std::collections::BTreeMap;
use std::future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{oneshot, watch};
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::Service;
use tokio_modbus::server::rtu::Server;

use super::UnitId;
use super::registers::{ATTENTION, BLANK, BOOT, BoardDisplay, CHIME, NUMBER, REGISTER_COUNT};
use crate::serial::SerialStream;

/// One simulated board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Board {
    powered: bool,
    words: [u16; REGISTER_COUNT as usize],
    chimes: u64,
    writes: u64,
    written_at: Option<Instant>,
}

impl Board {
    fn new() -> Self {
        let mut words = [0; REGISTER_COUNT as usize];
        words[usize::from(NUMBER)] = BLANK;
        words[usize::from(BOOT)] = 1;
        Self {
            powered: true,
            words,
            chimes: 0,
            writes: 0,
            written_at: None,
        }
    }
}

/// What a board shows, for tests and `--simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardView {
    /// Powered.
    pub powered: bool,
    /// The display.
    pub display: BoardDisplay,
    /// Chimes sounded since start.
    pub chimes: u64,
    /// Register writes received since start.
    pub writes: u64,
    /// Power-up counter.
    pub boot: u16,
    /// When the last register write was applied: the frame's last byte
    /// had been read from the port (what the benchmark measures to).
    pub written_at: Option<Instant>,
}

type Boards = Arc<Mutex<BTreeMap<UnitId, Board>>>;

/// Controls and observes a simulated line.
#[derive(Debug, Clone)]
pub struct BoardSimHandle {
    boards: Boards,
    changed: watch::Receiver<u64>,
    unplug: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl BoardSimHandle {
    /// What board `unit` shows, if it exists.
    pub fn view(&self, unit: UnitId) -> Option<BoardView> {
        let boards = self.boards.lock().ok()?;
        let b = boards.get(&unit)?;
        Some(BoardView {
            powered: b.powered,
            display: BoardDisplay::from_registers(&b.words[..=usize::from(ATTENTION)]),
            chimes: b.chimes,
            writes: b.writes,
            boot: b.words[usize::from(BOOT)],
            written_at: b.written_at,
        })
    }

    /// Cuts power: the board stops answering.
    pub fn power_off(&self, unit: UnitId) {
        self.with(unit, |b| b.powered = false);
    }

    /// Restores power: the board comes back blank, `BOOT` incremented.
    pub fn power_on(&self, unit: UnitId) {
        self.with(unit, |b| {
            let boot = b.words[usize::from(BOOT)].wrapping_add(1);
            // Registers reset; the simulator's own counters do not.
            *b = Board {
                chimes: b.chimes,
                writes: b.writes,
                written_at: b.written_at,
                ..Board::new()
            };
            b.words[usize::from(BOOT)] = boot;
        });
    }

    fn with(&self, unit: UnitId, f: impl FnOnce(&mut Board)) {
        if let Ok(mut boards) = self.boards.lock()
            && let Some(b) = boards.get_mut(&unit)
        {
            f(b);
        }
    }

    /// Unplugs the line: the simulator stops and closes its end of the
    /// port, so the driver's next read or write fails (EIO).
    pub fn unplug(&self) {
        if let Some(tx) = self.unplug.lock().ok().and_then(|mut u| u.take()) {
            let _ = tx.send(());
        }
    }

    /// Waits until some board's registers changed (a write was applied).
    pub async fn changed(&mut self) {
        let _ = self.changed.changed().await;
    }
}

/// The Modbus service answering for every simulated unit id.
#[derive(Debug, Clone)]
struct LineService {
    boards: Boards,
    changed: Arc<watch::Sender<u64>>,
}

impl LineService {
    fn handle(&self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        let unit = req.slave;
        let Ok(mut boards) = self.boards.lock() else {
            return Err(ExceptionCode::ServerDeviceFailure);
        };
        if unit == 0 {
            // Broadcast: apply to every powered board, never answer.
            for board in boards.values_mut().filter(|b| b.powered) {
                let _ = apply(board, &req.request);
            }
            drop(boards);
            self.changed.send_modify(|n| *n += 1);
            return Ok(None);
        }
        let Some(board) = boards.get_mut(&unit) else {
            return Ok(None);
        };
        if !board.powered {
            return Ok(None);
        }
        let response = apply(board, &req.request)?;
        drop(boards);
        if matches!(
            response,
            Response::WriteMultipleRegisters(..) | Response::WriteSingleRegister(..)
        ) {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(Some(response))
    }
}

fn apply(board: &mut Board, request: &Request<'_>) -> Result<Response, ExceptionCode> {
    let range = |addr: u16, count: usize| {
        let start = usize::from(addr);
        let end = start.checked_add(count)?;
        (count > 0 && end <= board.words.len()).then_some(start..end)
    };
    match request {
        Request::ReadHoldingRegisters(addr, count) => {
            let r = range(*addr, usize::from(*count)).ok_or(ExceptionCode::IllegalDataAddress)?;
            Ok(Response::ReadHoldingRegisters(board.words[r].to_vec()))
        }
        Request::WriteSingleRegister(addr, word) => {
            let r = range(*addr, 1).ok_or(ExceptionCode::IllegalDataAddress)?;
            if r.start == usize::from(BOOT) {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            write(board, r.start, &[*word]);
            Ok(Response::WriteSingleRegister(*addr, *word))
        }
        Request::WriteMultipleRegisters(addr, words) => {
            let r = range(*addr, words.len()).ok_or(ExceptionCode::IllegalDataAddress)?;
            if r.contains(&usize::from(BOOT)) {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            write(board, r.start, words);
            Ok(Response::WriteMultipleRegisters(*addr, words.len() as u16))
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

fn write(board: &mut Board, start: usize, words: &[u16]) {
    board.words[start..start + words.len()].copy_from_slice(words);
    board.writes += 1;
    board.written_at = Some(Instant::now());
    let attention = usize::from(ATTENTION);
    if board.words[attention] & CHIME != 0 {
        // Chime once, then clear the bit as a real board does.
        board.chimes += 1;
        board.words[attention] &= !CHIME;
    }
}

impl Service for LineService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.handle(req))
    }
}

/// Starts a line of boards with the given unit ids on `port` (a pty
/// master), all powered and blank.
pub fn spawn(port: SerialStream, units: impl IntoIterator<Item = UnitId>) -> BoardSimHandle {
    let boards: Boards = Arc::new(Mutex::new(
        units.into_iter().map(|u| (u, Board::new())).collect(),
    ));
    let (changed_tx, changed) = watch::channel(0);
    let service = LineService {
        boards: boards.clone(),
        changed: Arc::new(changed_tx),
    };
    let (unplug, unplugged) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let abort = async move {
            let _ = unplugged.await;
        };
        if let Err(error) = Server::new(port).serve_until(service, abort).await {
            tracing::debug!(%error, "board simulator stopped");
        }
    });
    BoardSimHandle {
        boards,
        changed,
        unplug: Arc::new(Mutex::new(Some(unplug))),
    }
}
