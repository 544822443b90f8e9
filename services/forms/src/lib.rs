//! The forms service: the 書かない×ワンストップ counter.
//!
//! - [`domain`]: names, the navigator, deadlines (no I/O); the catalog it
//!   navigates is site data of `madoguchi_catalog`;
//! - [`facts`]: registry records → navigator facts;
//! - [`explain`]: why each procedure is on a checklist or not;
//! - [`peers`]: the identity and queue services, reached over gRPC;
//! - [`storage`]: visits, checklists, requests, signatures (one transaction each);
//! - [`pdf`]: printable applications and checklists with embedded CJK fonts;
//! - [`kpi`]: counter KPIs and their CSV export;
//! - [`grpc`]: the tonic adapter;
//! - `FormsApp`: wiring.

pub mod domain;
pub mod explain;
pub mod facts;
pub mod grpc;
pub mod kpi;
pub mod pdf;
pub mod peers;
pub mod storage;

use std::path::Path;

use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::LoadedSite;
use madoguchi_proto::forms::v1::forms_service_server::FormsServiceServer;
use sea_orm::DatabaseConnection;

use crate::grpc::{FormsGrpc, Municipality};
use crate::pdf::CjkFont;
use crate::peers::Peers;
use crate::storage::FormsStore;
use madoguchi_catalog::Catalog;

/// Health-check name of the forms service.
pub const SERVICE_NAME: &str = "madoguchi.forms.v1.FormsService";

/// A prepared forms service.
#[derive(Debug, Clone)]
pub struct FormsApp {
    grpc: FormsGrpc,
    store: FormsStore,
}

impl FormsApp {
    /// Serves every municipality of `sites`, each from its own
    /// `catalog.toml` beside its site file (checked against that site);
    /// migrates the forms tables and loads the CJK font (`font` or the
    /// packaged one). A missing font is not fatal: everything but PDFs
    /// works, and rendering answers FAILED_PRECONDITION PDF_FONT_MISSING.
    pub async fn start(
        db: DatabaseConnection,
        clock: SharedClock,
        sites: &[LoadedSite],
        peers: Peers,
        font: Option<&Path>,
    ) -> Result<Self, ServiceError> {
        let mut municipalities = Vec::with_capacity(sites.len());
        for loaded in sites {
            let catalog = Catalog::load_beside(&loaded.file, &loaded.site)
                .map_err(|e| ServiceError::Internal(format!("{}: {e}", loaded.file.display())))?;
            municipalities.push(Municipality {
                code: loaded.code().clone(),
                name_ja: loaded.site.municipality.name_ja.clone(),
                catalog,
            });
        }
        let store = FormsStore::new(db);
        store.prepare().await?;
        let font = match CjkFont::find(font) {
            Ok(font) => Some(font),
            Err(error) => {
                tracing::warn!(%error, "printable documents are disabled");
                None
            }
        };
        let grpc = FormsGrpc::new(store.clone(), municipalities, peers, clock, font);
        Ok(Self { grpc, store })
    }

    /// Registers the forms KPI counters (counted as visits complete) into
    /// the server's `metrics`.
    pub fn register_metrics(&self, metrics: &madoguchi_platform::metrics::Metrics) {
        self.grpc.kpi_counters().register(metrics);
    }

    /// The store, for tests and tools in this workspace.
    pub fn store(&self) -> &FormsStore {
        &self.store
    }

    /// The tonic service, with a request size limit.
    pub fn service(&self, max_message_bytes: usize) -> FormsServiceServer<FormsGrpc> {
        FormsServiceServer::new(self.grpc.clone()).max_decoding_message_size(max_message_bytes)
    }
}
