//! Generated gRPC code for every Madoguchi service, plus the encoded file
//! descriptor set that servers register for reflection.
//!
//! Modules mirror the protobuf packages: `madoguchi.queue.v1` is
//! [`queue::v1`]. `tonic` and `prost` are re-exported so that every crate
//! uses the exact versions the code was generated for.

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `FileDescriptorSet` of every Madoguchi proto, for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/madoguchi_descriptor.bin"));

/// Generated code, nested as the protobuf packages are so that the
/// cross-package paths prost emits (`super::super::r#type::v1`) resolve.
pub mod madoguchi {
    /// `madoguchi.type.v1`: shared value types.
    pub mod r#type {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.r#type.v1.rs"));
        }
    }

    /// `madoguchi.queue.v1`: tickets, calls and the office event log.
    pub mod queue {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.queue.v1.rs"));
        }
    }

    /// `madoguchi.gateway.v1`: the API an edge gateway serves to kiosks.
    pub mod gateway {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.gateway.v1.rs"));
        }
    }

    /// `madoguchi.signage.v1`: call boards routing, ticket status URLs and
    /// the floor guide.
    pub mod signage {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.signage.v1.rs"));
        }
    }

    /// `madoguchi.forms.v1`: the catalog, unified certificate requests,
    /// the life-event navigator, checklists, signatures and KPIs.
    pub mod forms {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.forms.v1.rs"));
        }
    }

    /// `madoguchi.pos.v1`: orders of fees, registers, payments, receipts,
    /// voids and refunds, the daily close and the register event log.
    pub mod pos {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.pos.v1.rs"));
        }
    }

    /// `madoguchi.identity.v1`: residents, households, 本人確認, proxies,
    /// card reads and the audited My Number.
    pub mod identity {
        /// Version 1.
        pub mod v1 {
            #![allow(
                missing_docs,
                missing_debug_implementations,
                unused_qualifications,
                clippy::all
            )]
            include!(concat!(env!("OUT_DIR"), "/madoguchi.identity.v1.rs"));
        }
    }
}

pub use madoguchi::forms;
pub use madoguchi::gateway;
pub use madoguchi::identity;
pub use madoguchi::pos;
pub use madoguchi::queue;
pub use madoguchi::signage;
pub use madoguchi::r#type as types;
