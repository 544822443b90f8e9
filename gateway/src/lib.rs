//! The edge gateway.
//!
//! `devices` owns the serial protocols (each a pure frame module, a
//! `tokio_util::codec` codec, a driver task and a simulator that speaks the
//! same bytes on a pseudo-terminal); `serial` owns opening ports, raw pty
//! pairs and the reopen-with-backoff loop.
//!
//! On top of them: `config` (the TOML file), `store` (local SQLite: watch
//! position, number leases, offline outbox), `link` (the cluster client and
//! the call follower that drives the boards), `kiosk` (button → printed
//! ticket, online or from the lease), `kiosk_api` (the local
//! `KioskService`), `register` (payments on the terminal, receipts and the
//! cash drawer for a POS register), `metrics` (Prometheus), `tls`, `app`
//! (wiring) and `floor` (`--simulate`).

pub mod app;
pub mod config;
pub mod devices;
pub mod floor;
pub mod kiosk;
pub mod kiosk_api;
pub mod link;
pub mod metrics;
pub mod register;
pub mod serial;
pub mod store;
pub mod tls;
