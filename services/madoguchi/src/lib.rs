//! The `madoguchi` binary as a library: the server that hosts the
//! services ([`server`]), first-run credentials ([`credentials`]) and the
//! staff CLI ([`cli`]). Tests start the same server on port 0.

pub mod cli;
pub mod credentials;
pub mod identity_cli;
pub mod server;
pub mod visit_cli;
