//! Call boards: 7-segment displays on one RS-485 line, spoken to as Modbus
//! RTU (master = gateway) with `tokio-modbus`.
//!
//! One driver task owns one line (one serial port) with several boards,
//! each addressed by its unit id (1–247). [`spawn`] returns a
//! [`BoardLineHandle`]:
//!
//! ```ignore
//! let boards = board::spawn(Connector::serial(port), BoardLineConfig::new([1, 2, 3]));
//! boards.show(3, BoardDisplay::ticket("A012")?).await?;   // one function-16 frame
//! let shown = boards.read_back(3).await?;                // one function-03 frame
//! ```
//!
//! The driver remembers the last display requested per board, even when
//! writing it failed. Every `poll_interval` it reads each board back (one
//! board at a time, spread over the period, so a call never waits behind a
//! sweep of the line)
//! (`NUMBER..=BOOT`); it re-sends the remembered display when the board's
//! power-up counter changed (it power-cycled and lost its value), when it
//! shows something else, or when it answers again after being silent; and
//! after the serial port was reopened, to every board. Re-sends never chime.
//! Board health (online, last error, what it shows) is on a watch channel.
//!
//! The register map is in [`registers`].

pub mod registers;
pub mod sim;

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::{Slave, SlaveContext};

use self::registers::{ATTENTION, BoardDisplay, DisplayError, NUMBER, REGISTER_COUNT};
use crate::serial::{Backoff, Connector, connect_with_backoff, is_disconnect};

/// A board's Modbus unit id (1–247).
pub type UnitId = u8;

/// Driver settings.
#[derive(Debug, Clone)]
pub struct BoardLineConfig {
    /// The boards on this line.
    pub units: Vec<UnitId>,
    /// How long a board may take to answer one request.
    pub request_timeout: Duration,
    /// Read-back (health) poll period.
    pub poll_interval: Duration,
    /// Reconnection backoff for the serial port.
    pub backoff: Backoff,
}

impl BoardLineConfig {
    /// Defaults for the given boards: 100 ms answer timeout, 2 s poll.
    pub fn new(units: impl IntoIterator<Item = UnitId>) -> Self {
        Self {
            units: units.into_iter().collect(),
            request_timeout: Duration::from_millis(100),
            poll_interval: Duration::from_secs(2),
            backoff: Backoff::default(),
        }
    }
}

/// Health of one board.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoardHealth {
    /// The board answered its last request.
    pub online: bool,
    /// What the driver wants it to show.
    pub wanted: Option<BoardDisplay>,
    /// Power-ups counted by the board when last read.
    pub boot_count: Option<u16>,
    /// Times the driver re-sent the display after a power cycle or recovery.
    pub resends: u64,
    /// Last error, lowercase text.
    pub last_error: Option<String>,
}

/// Health of the line and its boards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineHealth {
    /// The serial port is open.
    pub connected: bool,
    /// Per board.
    pub boards: BTreeMap<UnitId, BoardHealth>,
    /// Last port-level error.
    pub last_error: Option<String>,
}

/// Why a board request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// The unit id is not configured on this line.
    #[error("no board with unit id {0} on this line")]
    UnknownUnit(UnitId),
    /// The display cannot be shown.
    #[error(transparent)]
    Display(#[from] DisplayError),
    /// The board did not answer in time (it will be re-sent when it does).
    #[error("board {0} does not answer")]
    NotResponding(UnitId),
    /// The board answered with a Modbus exception.
    #[error("board {unit} refused the request: {exception}")]
    Exception {
        /// The board.
        unit: UnitId,
        /// The exception, as text.
        exception: String,
    },
    /// The serial port is gone (reconnecting; the display is re-sent then).
    #[error("board line is disconnected")]
    Disconnected,
    /// The driver task ended.
    #[error("board driver stopped")]
    Stopped,
}

enum Request {
    Show(
        UnitId,
        BoardDisplay,
        oneshot::Sender<Result<(), BoardError>>,
    ),
    ReadBack(UnitId, oneshot::Sender<Result<BoardDisplay, BoardError>>),
}

/// Handle to a board line's driver task; cheap to clone.
#[derive(Debug, Clone)]
pub struct BoardLineHandle {
    requests: mpsc::Sender<Request>,
    health: watch::Receiver<LineHealth>,
}

impl BoardLineHandle {
    /// Shows `display` on board `unit` and remembers it (also when the
    /// write fails: the display is re-sent once the board answers).
    pub async fn show(&self, unit: UnitId, display: BoardDisplay) -> Result<(), BoardError> {
        display.registers()?;
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Show(unit, display, tx))
            .await
            .map_err(|_| BoardError::Stopped)?;
        rx.await.map_err(|_| BoardError::Stopped)?
    }

    /// Reads what board `unit` shows.
    pub async fn read_back(&self, unit: UnitId) -> Result<BoardDisplay, BoardError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::ReadBack(unit, tx))
            .await
            .map_err(|_| BoardError::Stopped)?;
        rx.await.map_err(|_| BoardError::Stopped)?
    }

    /// Line and board health.
    pub fn health(&self) -> watch::Receiver<LineHealth> {
        self.health.clone()
    }
}

/// Starts the line's driver task.
pub fn spawn(connector: Connector, config: BoardLineConfig) -> BoardLineHandle {
    let (requests, rx) = mpsc::channel(64);
    let boards = config
        .units
        .iter()
        .map(|u| (*u, BoardHealth::default()))
        .collect();
    let (health_tx, health) = watch::channel(LineHealth {
        connected: false,
        boards,
        last_error: None,
    });
    tokio::spawn(run(connector, config, rx, health_tx));
    BoardLineHandle { requests, health }
}

/// A request outcome on the wire: a device answer, or a broken port.
enum Wire<T> {
    Done(Result<T, BoardError>),
    Broken(io::Error),
}

struct Line {
    ctx: Context,
    config: BoardLineConfig,
}

impl Line {
    async fn write(&mut self, unit: UnitId, display: &BoardDisplay) -> Wire<()> {
        let words = match display.registers() {
            Ok(words) => words,
            Err(e) => return Wire::Done(Err(e.into())),
        };
        self.ctx.set_slave(Slave(unit));
        let call = self.ctx.write_multiple_registers(NUMBER, &words);
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Err(_) => Wire::Done(Err(BoardError::NotResponding(unit))),
            Ok(result) => classify(unit, result),
        }
    }

    /// Reads `NUMBER..=BOOT`: the display and the power-up counter.
    async fn read(&mut self, unit: UnitId) -> Wire<(BoardDisplay, u16)> {
        self.ctx.set_slave(Slave(unit));
        let call = self.ctx.read_holding_registers(NUMBER, REGISTER_COUNT);
        match tokio::time::timeout(self.config.request_timeout, call).await {
            Err(_) => Wire::Done(Err(BoardError::NotResponding(unit))),
            Ok(result) => match classify(unit, result) {
                Wire::Done(Ok(words)) if words.len() == usize::from(REGISTER_COUNT) => {
                    let boot = words[usize::from(registers::BOOT)];
                    Wire::Done(Ok((
                        BoardDisplay::from_registers(&words[..=usize::from(ATTENTION)]),
                        boot,
                    )))
                }
                Wire::Done(Ok(_)) => Wire::Done(Err(BoardError::Exception {
                    unit,
                    exception: "short read".to_owned(),
                })),
                Wire::Done(Err(e)) => Wire::Done(Err(e)),
                Wire::Broken(e) => Wire::Broken(e),
            },
        }
    }
}

fn classify<T>(unit: UnitId, result: tokio_modbus::Result<T>) -> Wire<T> {
    match result {
        Ok(Ok(value)) => Wire::Done(Ok(value)),
        Ok(Err(exception)) => Wire::Done(Err(BoardError::Exception {
            unit,
            exception: format!("{exception:?}").to_lowercase(),
        })),
        Err(tokio_modbus::Error::Transport(e)) if is_disconnect(&e) => Wire::Broken(e),
        Err(e) => Wire::Done(Err(BoardError::Exception {
            unit,
            exception: e.to_string().to_lowercase(),
        })),
    }
}

async fn run(
    mut connector: Connector,
    config: BoardLineConfig,
    mut requests: mpsc::Receiver<Request>,
    health: watch::Sender<LineHealth>,
) {
    // The display each board should show; survives reconnects.
    let mut wanted: BTreeMap<UnitId, BoardDisplay> = BTreeMap::new();
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
            () = remember_while_disconnected(&mut requests, &mut wanted, &config, &health) => return,
        };
        health.send_modify(|h| {
            h.connected = true;
            h.last_error = None;
        });
        let mut line = Line {
            ctx: tokio_modbus::client::rtu::attach(transport),
            config: config.clone(),
        };
        match session(&mut line, &mut requests, &mut wanted, &health).await {
            None => return,
            Some(error) => {
                tracing::warn!(port = connector.label(), %error, "board line disconnected");
                health.send_modify(|h| {
                    h.connected = false;
                    h.last_error = Some(format!("port failed: {error}"));
                    for board in h.boards.values_mut() {
                        board.online = false;
                    }
                });
            }
        }
    }
}

/// While the port is closed: remember displays, answer `Disconnected`.
async fn remember_while_disconnected(
    requests: &mut mpsc::Receiver<Request>,
    wanted: &mut BTreeMap<UnitId, BoardDisplay>,
    config: &BoardLineConfig,
    health: &watch::Sender<LineHealth>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Show(unit, display, reply) => {
                if !config.units.contains(&unit) {
                    let _ = reply.send(Err(BoardError::UnknownUnit(unit)));
                    continue;
                }
                wanted.insert(unit, display);
                set_wanted(health, unit, display);
                let _ = reply.send(Err(BoardError::Disconnected));
            }
            Request::ReadBack(_, reply) => {
                let _ = reply.send(Err(BoardError::Disconnected));
            }
        }
    }
}

/// Serves requests and polls until the handles are gone (`None`) or the
/// port broke (`Some(error)`).
async fn session(
    line: &mut Line,
    requests: &mut mpsc::Receiver<Request>,
    wanted: &mut BTreeMap<UnitId, BoardDisplay>,
    health: &watch::Sender<LineHealth>,
) -> Option<io::Error> {
    // The port was (re)opened: whatever the boards show may be stale.
    for (unit, display) in wanted.clone() {
        let resend = BoardDisplay {
            chime: false,
            ..display
        };
        match line.write(unit, &resend).await {
            Wire::Broken(e) => return Some(e),
            Wire::Done(result) => note(health, unit, result.err(), true),
        }
    }
    // One board per tick, spread over the poll period, so a call waits
    // for at most one read-back (about 20 ms at 9600 baud) instead of a
    // sweep of the whole line.
    let units = line.config.units.clone();
    let per_unit = line
        .config
        .poll_interval
        .checked_div(u32::try_from(units.len()).unwrap_or(u32::MAX).max(1))
        .unwrap_or(line.config.poll_interval)
        .max(Duration::from_millis(1));
    let mut poll = tokio::time::interval(per_unit);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.reset();
    let mut next_unit = 0usize;
    loop {
        tokio::select! {
            request = requests.recv() => match request? {
                Request::Show(unit, display, reply) => {
                    if !line.config.units.contains(&unit) {
                        let _ = reply.send(Err(BoardError::UnknownUnit(unit)));
                        continue;
                    }
                    wanted.insert(unit, display);
                    // The wanted display is published with the write's
                    // outcome, not before it: a board that has not been
                    // polled yet is not online, and "wanted, not online, no
                    // error" would be reported as disconnected for the few
                    // milliseconds of the write (issue #23).
                    match line.write(unit, &display).await {
                        Wire::Broken(e) => {
                            set_wanted(health, unit, display);
                            let _ = reply.send(Err(BoardError::Disconnected));
                            return Some(e);
                        }
                        Wire::Done(result) => {
                            health.send_modify(|h| {
                                if let Some(b) = h.boards.get_mut(&unit) {
                                    b.wanted = Some(display);
                                }
                                noted(h, unit, result.clone().err(), false);
                            });
                            let _ = reply.send(result);
                        }
                    }
                }
                Request::ReadBack(unit, reply) => {
                    if !line.config.units.contains(&unit) {
                        let _ = reply.send(Err(BoardError::UnknownUnit(unit)));
                        continue;
                    }
                    match line.read(unit).await {
                        Wire::Broken(e) => {
                            let _ = reply.send(Err(BoardError::Disconnected));
                            return Some(e);
                        }
                        Wire::Done(result) => {
                            note(health, unit, result.as_ref().err().cloned(), false);
                            let _ = reply.send(result.map(|(display, _)| display));
                        }
                    }
                }
            },
            _ = poll.tick() => {
                if let Some(&unit) = units.get(next_unit % units.len().max(1)) {
                    next_unit = next_unit.wrapping_add(1);
                    if let Some(e) = check(line, unit, wanted, health).await {
                        return Some(e);
                    }
                }
            }
        }
    }
}

/// Health poll of one board: read it back and re-send the wanted display if
/// it power-cycled, shows something else, or came back after silence.
async fn check(
    line: &mut Line,
    unit: UnitId,
    wanted: &BTreeMap<UnitId, BoardDisplay>,
    health: &watch::Sender<LineHealth>,
) -> Option<io::Error> {
    let (was_online, known_boot) = {
        let h = health.borrow();
        h.boards
            .get(&unit)
            .map_or((false, None), |b| (b.online, b.boot_count))
    };
    let (shown, boot) = match line.read(unit).await {
        Wire::Broken(e) => return Some(e),
        Wire::Done(Err(e)) => {
            note(health, unit, Some(e), false);
            return None;
        }
        Wire::Done(Ok(read)) => read,
    };
    health.send_modify(|h| {
        if let Some(b) = h.boards.get_mut(&unit) {
            b.boot_count = Some(boot);
        }
    });
    let Some(display) = wanted.get(&unit) else {
        note(health, unit, None, false);
        return None;
    };
    let power_cycled = known_boot.is_some_and(|k| k != boot);
    if power_cycled || !was_online || !display.same_picture(&shown) {
        tracing::info!(unit, power_cycled, "re-sending board display");
        let resend = BoardDisplay {
            chime: false,
            ..*display
        };
        match line.write(unit, &resend).await {
            Wire::Broken(e) => return Some(e),
            Wire::Done(result) => note(health, unit, result.err(), true),
        }
    } else {
        note(health, unit, None, false);
    }
    None
}

fn set_wanted(health: &watch::Sender<LineHealth>, unit: UnitId, display: BoardDisplay) {
    health.send_modify(|h| {
        if let Some(b) = h.boards.get_mut(&unit) {
            b.wanted = Some(display);
        }
    });
}

fn note(health: &watch::Sender<LineHealth>, unit: UnitId, error: Option<BoardError>, resend: bool) {
    health.send_modify(|h| noted(h, unit, error, resend));
}

/// A request to `unit` ended with `error` (none: it answered).
fn noted(h: &mut LineHealth, unit: UnitId, error: Option<BoardError>, resend: bool) {
    if let Some(b) = h.boards.get_mut(&unit) {
        b.online = !matches!(error, Some(BoardError::NotResponding(_)));
        if resend && error.is_none() {
            b.resends += 1;
        }
        b.last_error = error.map(|e| e.to_string());
    }
}
