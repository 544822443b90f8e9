//! The queue service: numbered tickets (番号札), calls to counters and the
//! per-office event log that boards, displays and the gateway follow.
//!
//! - [`domain`]: names, states, numbering and wait-estimate rules (no I/O);
//! - [`storage`]: tables, migrations and the transactional operations;
//! - [`notify`]: live wake-ups (in-process and PostgreSQL LISTEN/NOTIFY);
//! - [`ticket`]: stored rows to API messages;
//! - [`grpc`]: the tonic adapter;
//! - [`metrics`]: what it counts, for Prometheus;
//! - `QueueApp`: wiring.

pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod notify;
pub mod storage;
pub mod ticket;

use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::metrics::Metrics;
use madoguchi_platform::server::Draining;
use madoguchi_platform::site::{LoadedSite, Site};
use madoguchi_proto::queue::v1::queue_service_server::QueueServiceServer;
use sea_orm::{DatabaseConnection, DbBackend};

use crate::grpc::QueueGrpc;
use crate::metrics::QueueMetrics;
use crate::notify::EventBus;
use crate::storage::QueueStore;

/// Health-check name of the queue service.
pub const SERVICE_NAME: &str = "madoguchi.queue.v1.QueueService";

/// A prepared queue service.
#[derive(Debug, Clone)]
pub struct QueueApp {
    store: QueueStore,
    metrics: QueueMetrics,
}

impl QueueApp {
    /// Migrates the database and seeds the offices of every served site
    /// (one per municipality), and on PostgreSQL starts following other
    /// replicas' events.
    ///
    /// One store serves every municipality: its rows are keyed by full
    /// resource names, and every RPC checks the caller's municipality
    /// against the name it reads or writes before it touches the store
    /// (see [`grpc`]), so no municipality sees another's tickets.
    pub async fn start(
        db: DatabaseConnection,
        clock: SharedClock,
        sites: &[LoadedSite],
        draining: Draining,
    ) -> Result<Self, ServiceError> {
        let store = QueueStore::new(db, clock, EventBus::new());
        let sites: Vec<Site> = sites.iter().map(|loaded| loaded.site.clone()).collect();
        store.prepare_sites(&sites).await?;
        if store.connection().get_database_backend() == DbBackend::Postgres {
            let pool = store.connection().get_postgres_connection_pool().clone();
            store.bus().spawn_postgres_listener(pool, draining);
        }
        Ok(Self {
            store,
            metrics: QueueMetrics::default(),
        })
    }

    /// The store, for tests and tools in this workspace.
    pub fn store(&self) -> &QueueStore {
        &self.store
    }

    /// Registers the queue's metrics with the server's.
    pub fn register_metrics(&self, metrics: &Metrics) {
        self.metrics.register(metrics, self.store.clone());
    }

    /// The tonic service, with a request size limit.
    pub fn service(
        &self,
        draining: Draining,
        max_message_bytes: usize,
    ) -> QueueServiceServer<QueueGrpc> {
        QueueServiceServer::new(QueueGrpc::new(
            self.store.clone(),
            draining,
            self.metrics.clone(),
        ))
        .max_decoding_message_size(max_message_bytes)
    }
}
