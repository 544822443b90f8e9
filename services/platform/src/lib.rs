//! The platform every Madoguchi service stands on.
//!
//! It owns what is not specific to one service: configuration
//! ([`config`]), the site file that describes a municipality's floor
//! ([`site`]), storage connections ([`storage`]), domain value types that
//! every service parses at its edge ([`types`]), injected time ([`clock`]),
//! the one mapping from service errors to gRPC statuses ([`error`]), the
//! bearer-token authentication layer ([`auth`]), request ids and tracing
//! ([`trace`]), logs and OpenTelemetry trace export ([`telemetry`]),
//! Prometheus metrics on the admin port ([`metrics`]), and the server plumbing with health, reflection and
//! graceful shutdown ([`server`]) and `404` for plain HTTP outside the
//! public pages ([`plain_http`]), client channels to peer services
//! with client-side balancing ([`channel`]), and 和暦 dates ([`wareki`]).

pub mod auth;
pub mod channel;
pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod notify;
pub mod plain_http;
pub mod server;
pub mod site;
pub mod storage;
pub mod telemetry;
pub mod testing;
pub mod trace;
pub mod types;
pub mod wareki;
