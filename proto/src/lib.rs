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

            impl EnrolmentKind {
                /// The name the registry CSV and the catalog's conditions
                /// use: the enum name without its prefix, lowercased, `_`
                /// as `-` (`national-health-insurance`). One rule for both
                /// sides, so a kind added here needs no table elsewhere.
                pub fn catalog_name(self) -> Option<String> {
                    let name = self.as_str_name().strip_prefix("ENROLMENT_KIND_")?;
                    (self != Self::Unspecified).then(|| name.to_ascii_lowercase().replace('_', "-"))
                }

                /// The kind a catalog name denotes (inverse of
                /// [`Self::catalog_name`]).
                pub fn from_catalog_name(name: &str) -> Option<Self> {
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    {
                        return None;
                    }
                    let proto = format!(
                        "ENROLMENT_KIND_{}",
                        name.to_ascii_uppercase().replace('-', "_")
                    );
                    Self::from_str_name(&proto).filter(|k| *k != Self::Unspecified)
                }
            }
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
