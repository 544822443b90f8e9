//! The identity service: who is at the counter, and what they may ask for.
//!
//! - [`config`]: `identity.toml` (document kinds, procedure rules, My
//!   Number handlers) and the My Number key;
//! - [`domain`]: resource names, person data, 本人確認 and proxy rules
//!   (no I/O);
//! - [`registry`]: the `ResidentRegistry` port and the registry CSV;
//! - [`crypto`]: AES-256-GCM for the My Number at rest;
//! - [`card`]: the My Number card reader (APDU), its simulator, and the
//!   driver's-licence input path, for staff clients.

pub mod card;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod registry;
