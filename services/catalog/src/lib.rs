//! The municipality's catalog as shared site data: certificate kinds with
//! their fees and 歳入科目, hand-entered fee items and exemptions, the
//! procedures the counter tracks and the life-event rules, read from
//! `catalog.toml` beside the site file and checked against it. The forms
//! service navigates with it and the POS service charges from it; neither
//! reaches into the other for it (`docs/ARCHITECTURE.md`). The format is
//! `docs/catalog.md`; nothing about a particular city is compiled in.
//!
//! - [`model`]: the types, the loader and the lint;
//! - [`condition`]: the rule language the catalog's conditions are written in.

pub mod condition;
pub mod model;

pub use model::*;
