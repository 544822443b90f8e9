//! Device drivers and their simulators.
//!
//! Each device follows the same layering: a pure frame module (bytes in,
//! values out, no I/O, fuzzed), a `tokio_util::codec` codec over it, a
//! driver task behind a cloneable handle that reconnects through a
//! [`crate::serial::Connector`], and a simulator that speaks the same
//! protocol on a pseudo-terminal for tests and `--simulate`.
//!
//! * [`printer`] — ESC/POS ticket printer;
//! * [`board`] — Modbus RTU 7-segment call boards on one RS-485 line;
//! * [`panel`] — the kiosk button panel's line protocol;
//! * [`terminal`] — payment terminal, ZVT serial framing.

pub mod board;
pub mod panel;
pub mod printer;
pub mod terminal;
