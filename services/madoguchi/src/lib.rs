//! The `madoguchi` binary as a library: the server that hosts the
//! services ([`server`]), first-run credentials ([`credentials`]) and the
//! staff CLI ([`cli`]), and a stand-in for the cluster's edge proxy for
//! one machine ([`edge`]), and the check of a site directory
//! ([`site_check`]). Tests start the same server on port 0.

pub mod catalog_cli;
pub mod cli;
pub mod credentials;
pub mod edge;
pub mod identity_cli;
pub mod server;
pub mod site_check;
pub mod visit_cli;
