//! Serial ports: opening them, raw pseudo-terminal pairs, and reopening a
//! port that disappeared.
//!
//! Every driver in [`crate::devices`] talks to a [`Connector`] rather than to
//! a port: the connector opens (or reopens) the transport, and the driver's
//! task calls it again after the transport failed. A USB-serial adapter that
//! is unplugged makes reads fail with `EIO` or return 0 bytes
//! ([`is_disconnect`]); the driver then reconnects through
//! [`connect_with_backoff`], which waits an exponentially growing, jittered
//! delay between attempts ([`Backoff`]) so a missing port never spins a core.
//! Delays use tokio's clock, so tests drive them with `tokio::time::pause`.
//!
//! Ports are always put in raw mode (`cfmakeraw`): a cooked tty turns LF into
//! CRLF, eats control bytes and echoes, which corrupts every binary protocol
//! here. [`SerialStream::pair`] already opens its slave end raw, and the
//! master end of a pty has no line discipline; `tokio_serial`'s `open` also
//! applies `cfmakeraw`. The `devices_serial` test sends all 256 byte values
//! through a pair both ways to prove it.

use std::fmt;
use std::io;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_serial::SerialPortBuilderExt;
pub use tokio_serial::SerialStream;

/// Character size of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum DataBits {
    /// Seven data bits.
    #[serde(rename = "7")]
    Seven,
    /// Eight data bits (every device here).
    #[serde(rename = "8")]
    #[default]
    Eight,
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Stop bits of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum StopBits {
    /// One stop bit.
    #[serde(rename = "1")]
    #[default]
    One,
    /// Two stop bits (ZVT terminals use 8N2).
    #[serde(rename = "2")]
    Two,
}

/// Where and how to open one serial port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortConfig {
    /// Device path, e.g. `/dev/ttyUSB0` or a pty slave such as `/dev/pts/7`.
    pub path: String,
    /// Line speed in baud (has no effect on a pseudo-terminal).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Character size.
    #[serde(default)]
    pub data_bits: DataBits,
    /// Parity.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits.
    #[serde(default)]
    pub stop_bits: StopBits,
}

fn default_baud() -> u32 {
    9600
}

impl PortConfig {
    /// An 8N1 port at `baud`.
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        Self {
            path: path.into(),
            baud,
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
        }
    }

    /// Time one byte occupies on the wire (start bit, data, parity, stop
    /// bits), for reporting serial line time apart from software latency.
    pub fn byte_time(&self) -> Duration {
        let bits =
            1 + match self.data_bits {
                DataBits::Seven => 7,
                DataBits::Eight => 8,
            } + u32::from(self.parity != Parity::None)
                + match self.stop_bits {
                    StopBits::One => 1,
                    StopBits::Two => 2,
                };
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }
}

/// Opens a serial port in raw mode, non-blocking, for tokio.
pub fn open(config: &PortConfig) -> io::Result<SerialStream> {
    let builder = tokio_serial::new(&config.path, config.baud)
        .data_bits(match config.data_bits {
            DataBits::Seven => tokio_serial::DataBits::Seven,
            DataBits::Eight => tokio_serial::DataBits::Eight,
        })
        .parity(match config.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(match config.stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })
        .flow_control(tokio_serial::FlowControl::None);
    builder.open_native_async().map_err(io::Error::from)
}

/// A raw pseudo-terminal pair `(master, slave)`: a simulator holds the
/// master, the driver under test the slave (or opens the slave's path,
/// [`pty_path`], through a [`Connector::serial`]).
///
/// Modem-line calls (RTS, DTR, break) fail on a pty; no driver uses them.
pub fn pty_pair() -> io::Result<(SerialStream, SerialStream)> {
    SerialStream::pair().map_err(io::Error::from)
}

/// The device path of a pty slave (or any port), if it has one.
pub fn pty_path(port: &SerialStream) -> Option<String> {
    tokio_serial::SerialPort::name(port)
}

/// True when an I/O error means the port itself went away (unplugged USB
/// adapter, closed pty master) rather than a transient condition: the
/// driver must drop the transport and reconnect.
pub fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotFound
    ) || error.raw_os_error() == Some(EIO)
        || error.raw_os_error() == Some(ENXIO)
        || error.raw_os_error() == Some(ENODEV)
}

/// `EIO`: what a read on a pty slave returns once its master is closed, and
/// what a tty returns after its USB adapter disappeared.
const EIO: i32 = 5;
/// `ENXIO`: the device node exists but the device does not.
const ENXIO: i32 = 6;
/// `ENODEV`: no such device.
const ENODEV: i32 = 19;

/// Anything a driver can speak its protocol over: a serial port, a pty, or
/// an in-memory duplex in unit tests.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed [`Transport`].
pub type BoxTransport = Box<dyn Transport>;

type ConnectFn = dyn FnMut() -> BoxFuture<'static, io::Result<BoxTransport>> + Send;

/// Opens a driver's transport, again after each failure.
pub struct Connector {
    label: String,
    connect: Box<ConnectFn>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Opens the serial port described by `config` on every attempt (a
    /// USB adapter that comes back under the same path is picked up).
    pub fn serial(config: PortConfig) -> Self {
        let label = config.path.clone();
        Self {
            label,
            connect: Box::new(move || {
                let config = config.clone();
                Box::pin(async move { open(&config).map(|p| Box::new(p) as BoxTransport) })
            }),
        }
    }

    /// Hands out `transport` once; later attempts fail with `NotConnected`
    /// (a test's pty end that cannot be reopened).
    pub fn once(label: impl Into<String>, transport: impl Transport) -> Self {
        let mut slot: Option<BoxTransport> = Some(Box::new(transport));
        Self {
            label: label.into(),
            connect: Box::new(move || {
                let next = slot.take();
                Box::pin(async move {
                    next.ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotConnected, "transport already used")
                    })
                })
            }),
        }
    }

    /// A connector from any function returning a future of a transport.
    pub fn from_fn<F>(label: impl Into<String>, connect: F) -> Self
    where
        F: FnMut() -> BoxFuture<'static, io::Result<BoxTransport>> + Send + 'static,
    {
        Self {
            label: label.into(),
            connect: Box::new(connect),
        }
    }

    /// What this connector opens (a device path), for logs and health.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// One attempt.
    pub async fn connect(&mut self) -> io::Result<BoxTransport> {
        (self.connect)().await
    }
}

/// Exponential backoff with jitter between reconnection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles per failure, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt: `min(max, initial · 2^n)` scaled by
    /// a random factor in `[0.5, 1.0]` ("equal jitter"), so gateways that
    /// lost the same hub do not retry in lockstep, yet the delay never drops
    /// below half the exponential step (no spinning).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        exp.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Calls `connector` until it succeeds, sleeping [`Backoff::next_delay`]
/// (tokio time) after each failure; `on_error` sees every failure (a driver
/// records it as its health's last error). Resets the backoff on success.
/// Runs until it succeeds or the caller drops the future.
pub async fn connect_with_backoff(
    connector: &mut Connector,
    backoff: &mut Backoff,
    mut on_error: impl FnMut(&io::Error),
) -> BoxTransport {
    loop {
        match connector.connect().await {
            Ok(transport) => {
                backoff.reset();
                return transport;
            }
            Err(error) => {
                on_error(&error);
                let delay = backoff.next_delay();
                tracing::debug!(port = connector.label(), %error, ?delay, "serial port open failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
