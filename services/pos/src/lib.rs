//! The POS service: the cashless register (キャッシュレス決済対応POSレジ).
//!
//! - [`domain`]: names, yen, states and their transitions, the fee
//!   schedule, change, terminal references, daily-close sums (no I/O);
//! - [`storage`]: tables, migrations and the transactional operations;
//! - [`notify`]: live wake-ups for register event streams;
//! - [`peers`]: the forms service, reached over gRPC;
//! - [`grpc`]: the tonic adapter;
//! - [`metrics`]: payments by outcome, unresolved payments (Prometheus);
//! - `PosApp`: wiring.

pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod notify;
pub mod peers;
pub mod storage;

use madoguchi_catalog::Catalog;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::server::Draining;
use madoguchi_platform::site::{LoadedSite, Site};
use madoguchi_proto::pos::v1::pos_service_server::PosServiceServer;
use sea_orm::{DatabaseConnection, DbBackend};

use crate::domain::FeeSchedule;
use crate::grpc::PosGrpc;
use crate::notify::EventBus;
use crate::peers::FormsPeer;
use crate::storage::PosStore;

/// Health-check name of the POS service.
pub const SERVICE_NAME: &str = "madoguchi.pos.v1.PosService";

/// A prepared POS service.
#[derive(Debug, Clone)]
pub struct PosApp {
    grpc: PosGrpc,
    store: PosStore,
}

impl PosApp {
    /// Serves every municipality of `sites`, each with the fee schedule of
    /// its own `catalog.toml` beside its site file; migrates the POS tables,
    /// seeds every site's offices and, on PostgreSQL, starts following
    /// other replicas' events. `forms_url` is the forms service that
    /// certificate requests are read from.
    pub async fn start(
        db: DatabaseConnection,
        clock: SharedClock,
        sites: &[LoadedSite],
        forms_url: &str,
        draining: Draining,
    ) -> Result<Self, ServiceError> {
        let mut schedules = Vec::with_capacity(sites.len());
        for loaded in sites {
            let catalog = Catalog::load_beside(&loaded.file, &loaded.site)
                .map_err(|e| ServiceError::Internal(format!("{}: {e}", loaded.file.display())))?;
            schedules.push((&loaded.site, FeeSchedule::from_catalog(&catalog)));
        }
        let store = PosStore::new(db, clock.clone(), EventBus::new(), &schedules);
        let all: Vec<&Site> = sites.iter().map(|s| &s.site).collect();
        store.prepare(&all).await?;
        if store.connection().get_database_backend() == DbBackend::Postgres {
            let pool = store.connection().get_postgres_connection_pool().clone();
            notify::listen(store.bus(), pool, draining.clone());
        }
        let grpc = PosGrpc::new(store.clone(), FormsPeer::new(forms_url)?, clock, draining);
        Ok(Self { grpc, store })
    }

    /// Registers the POS metrics (payments by outcome, unresolved
    /// payments) into the server's `metrics`.
    pub fn register_metrics(&self, metrics: &madoguchi_platform::metrics::Metrics) {
        metrics::register(metrics, &self.store);
    }

    /// The store, for tests and tools in this workspace.
    pub fn store(&self) -> &PosStore {
        &self.store
    }

    /// The tonic service, with a request size limit.
    pub fn service(&self, max_message_bytes: usize) -> PosServiceServer<PosGrpc> {
        PosServiceServer::new(self.grpc.clone()).max_decoding_message_size(max_message_bytes)
    }
}
