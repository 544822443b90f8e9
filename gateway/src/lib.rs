//! The edge gateway.
//!
//! `devices` owns the serial protocols (each a pure frame module, a
//! `tokio_util::codec` codec, a driver task and a simulator that speaks the
//! same bytes on a pseudo-terminal); `serial` owns opening ports, raw pty
//! pairs and the reopen-with-backoff loop.

pub mod devices;
pub mod serial;
