//! The identity service: who is at the counter, and what they may ask for.
//!
//! - [`config`]: `identity.toml` (document kinds, procedure rules, My
//!   Number handlers) and the My Number key;
//! - [`domain`]: resource names, person data, 本人確認 and proxy rules
//!   (no I/O);
//! - [`registry`]: the `ResidentRegistry` port and the registry CSV;
//! - [`crypto`]: AES-256-GCM for the My Number at rest;
//! - [`storage`]: tables, migrations and the reference registry adapter;
//! - [`service`]: the operations; [`grpc`]: the tonic adapter;
//! - [`card`]: the My Number card reader (APDU), its simulator, and the
//!   driver's-licence input path, for staff clients;
//! - `IdentityApp`: wiring.

pub mod card;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod registry;
pub mod service;
pub mod storage;

use std::sync::Arc;

use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::LoadedSite;
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::identity::v1::identity_service_server::IdentityServiceServer;
use sea_orm::DatabaseConnection;

use crate::config::{IdentityConfigError, IdentitySite, MyNumberKey};
use crate::crypto::MyNumberCipher;
use crate::grpc::IdentityGrpc;
use crate::registry::ResidentRegistry;
use crate::service::Identity;
use crate::storage::{IdentityStore, TableRegistry};

/// Health-check name of the identity service.
pub const SERVICE_NAME: &str = "madoguchi.identity.v1.IdentityService";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `identity.toml` or the key.
    #[error(transparent)]
    Config(#[from] IdentityConfigError),
    /// The database.
    #[error("identity storage: {0}")]
    Storage(#[from] ServiceError),
    /// The registry CSV of the site folder.
    #[error("registry csv {path}: {message}")]
    Registry {
        /// The file.
        path: String,
        /// Every problem found.
        message: String,
    },
}

/// A prepared identity service.
#[derive(Debug, Clone)]
pub struct IdentityApp {
    identity: Identity,
}

impl IdentityApp {
    /// Serves every municipality of `sites`: loads each one's
    /// `identity.toml` beside its site file, migrates, seeds each
    /// municipality's reference registry from its own CSV when that
    /// municipality has no rows yet (later changes go through
    /// `ImportResidents`), and serves the table-backed registry. Every
    /// file is checked before anything is written.
    pub async fn start(
        db: DatabaseConnection,
        clock: SharedClock,
        sites: &[LoadedSite],
        key: &MyNumberKey,
    ) -> Result<Self, StartError> {
        let mut loaded = Vec::with_capacity(sites.len());
        let mut seeds = Vec::new();
        for site in sites {
            let municipality = site.code();
            let rules = IdentitySite::load(&IdentitySite::beside(&site.file))?;
            if let Some(path) = rules.registry_csv_path() {
                let text = std::fs::read_to_string(&path).map_err(|e| StartError::Registry {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let records = registry::csv::parse(&text, municipality).map_err(|violations| {
                    StartError::Registry {
                        path: path.display().to_string(),
                        message: ServiceError::InvalidArgument(violations).to_string(),
                    }
                })?;
                seeds.push((municipality.clone(), records));
            }
            loaded.push((municipality.clone(), rules));
        }
        let store = IdentityStore::new(db);
        store.migrate().await?;
        for (municipality, records) in &seeds {
            if store.import_residents(municipality, records, true).await? {
                tracing::info!(
                    %municipality,
                    residents = records.len(),
                    "registry seeded from the site folder"
                );
            }
        }
        let registry: Arc<dyn ResidentRegistry> = Arc::new(TableRegistry::new(&store));
        Ok(Self::with_registry(store, registry, clock, key, &loaded))
    }

    /// A service over another `ResidentRegistry` adapter (a city's own
    /// resident-record system) serving the municipalities of `sites`,
    /// each with its own `identity.toml`; `store` must be migrated.
    pub fn with_registry(
        store: IdentityStore,
        registry: Arc<dyn ResidentRegistry>,
        clock: SharedClock,
        key: &MyNumberKey,
        sites: &[(MunicipalityCode, IdentitySite)],
    ) -> Self {
        let identity = service::build(store, registry, clock, MyNumberCipher::new(key), sites);
        Self { identity }
    }

    /// The operations, for tests and tools in this workspace.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The tonic service, with a request size limit.
    pub fn service(&self, max_message_bytes: usize) -> IdentityServiceServer<IdentityGrpc> {
        IdentityServiceServer::new(IdentityGrpc::new(self.identity.clone()))
            .max_decoding_message_size(max_message_bytes)
    }
}
