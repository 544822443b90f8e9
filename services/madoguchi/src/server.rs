//! Hosting the services: one process, one port, every service (the
//! embedded default), or one service against a shared PostgreSQL.

use std::net::SocketAddr;

use anyhow::Context;
use madoguchi_platform::auth::TokenRegistry;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::config::ServerConfig;
use madoguchi_platform::metrics::Metrics;
use madoguchi_platform::server::{ServerOptions, ServiceSet, drain_channel, serve};
use madoguchi_platform::site::LoadedSite;
use madoguchi_platform::storage;
use madoguchi_queue::QueueApp;
use madoguchi_signage::{SignageApp, SignageOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;

/// Which services a process hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceSelection {
    /// Every service that exists (the embedded default).
    All,
    /// Only the queue service.
    Queue,
    /// Only the signage pages and API, following the queue named by
    /// `signage.queue_url` (no database of its own).
    Signage,
    /// The queue and the signage service together: what a floor's calls,
    /// boards and displays need, without identity and forms (the load
    /// test through the gateway runs this).
    Floor,
    /// Only the forms service, reaching identity and queue at
    /// `forms.identity_url` and `forms.queue_url`.
    Forms,
    /// Only the identity service (residents, 本人確認, proxies, card reads,
    /// the audited My Number).
    Identity,
    /// Only the POS service (orders, registers, payments, receipts, daily
    /// close), reading certificate requests from `pos.forms_url`.
    Pos,
}

impl ServiceSelection {
    /// True for the one-service selections a cluster runs as Deployments:
    /// such a process is one replica among several, so anything replicas
    /// must share (tokens, the My Number key, the status-URL secret) has
    /// to be given, never generated into its own data directory.
    pub fn is_replicated(self) -> bool {
        !matches!(self, Self::All | Self::Floor)
    }
}

/// Reads the site files; a missing one names the settings that point to
/// it (a server started outside the repository finds no `sites/` there).
fn load_sites(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<LoadedSite>> {
    match madoguchi_platform::site::load_sites(files) {
        Err(madoguchi_platform::site::SiteError::Read { source, path })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "?".into());
            anyhow::bail!(
                "site file {path} not found (relative paths are read from {cwd}); set `site` \
                 or `sites` in the configuration file, MADOGUCHI_SITE, MADOGUCHI_SITES or \
                 --site to the site file(s), e.g. sites/ofunato/site.toml of the repository, \
                 or the mounted ConfigMap's site.toml"
            )
        }
        other => Ok(other?),
    }
}

/// A server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The queue service, for in-process inspection by tests; `None` when
    /// the process hosts only signage.
    pub queue: Option<QueueApp>,
    /// The process's metrics, served on the admin port by `madoguchi
    /// serve` (and rendered directly by tests).
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    /// Starts a graceful shutdown and waits for it to complete.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.context("server task")??;
        Ok(())
    }

    /// Serves until `signal` resolves (then shuts down gracefully) or the
    /// server fails.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            result = &mut self.task => {
                result.context("server task")??;
                return Ok(());
            }
            () = signal => {}
        }
        self.shutdown().await
    }
}

/// Connects storage, prepares the selected services and serves them on
/// `listener` until [`RunningServer::shutdown`].
pub async fn start(
    config: &ServerConfig,
    selection: ServiceSelection,
    clock: SharedClock,
    listener: TcpListener,
) -> anyhow::Result<RunningServer> {
    let sites = load_sites(&config.site_files())?;
    let codes: Vec<_> = sites.iter().map(|s| s.code().clone()).collect();
    let mut tokens = config.tokens.clone();
    if let Some(file) = &config.credentials_file {
        tokens.extend(crate::credentials::load(file).context(
            "reading the credentials file (credentials_file, MADOGUCHI_CREDENTIALS_FILE)",
        )?);
    }
    if tokens.is_empty() {
        if selection.is_replicated() {
            anyhow::bail!(
                "no bearer tokens configured: a single-service process is one replica among \
                 several, which must accept the same tokens, so it does not generate its own; \
                 set MADOGUCHI_CREDENTIALS_FILE (or `credentials_file`, or [[tokens]] in the \
                 configuration file)"
            );
        }
        tokens = crate::credentials::load_or_create(&config.data_dir, &codes)?;
    }
    let (drain, draining) = drain_channel();
    let metrics = Metrics::new();
    // One pool per process: on SQLite its single connection serialises
    // every service's writers, as the queue relies on.
    let db = if selection == ServiceSelection::Signage {
        None
    } else {
        Some(
            storage::connect(&config.database_url())
                .await
                .context("connecting to the database")?,
        )
    };
    if let Some(db) = &db {
        madoguchi_platform::metrics::register_pool(&metrics, db, "madoguchi");
    }
    let queue = match &db {
        Some(db)
            if matches!(
                selection,
                ServiceSelection::All | ServiceSelection::Queue | ServiceSelection::Floor
            ) =>
        {
            Some(
                QueueApp::start(db.clone(), clock.clone(), &sites, draining.clone())
                    .await
                    .context("preparing the queue service")?,
            )
        }
        _ => None,
    };
    let mut health_names = Vec::new();
    let mut routes = Routes::default();
    if let Some(queue) = &queue {
        queue.register_metrics(&metrics);
        health_names.push(madoguchi_queue::SERVICE_NAME);
        routes = routes.add_service(queue.service(draining.clone(), config.max_message_bytes));
    }
    if let Some(db) = db.as_ref().filter(|_| {
        matches!(
            selection,
            ServiceSelection::All | ServiceSelection::Identity
        )
    }) {
        // The My Number key: MADOGUCHI_IDENTITY_KEY, else a generated key
        // kept in the data directory (see madoguchi_identity::config).
        let environment = madoguchi_platform::config::ProcessEnvironment;
        if selection.is_replicated()
            && madoguchi_platform::config::Environment::var(
                &environment,
                madoguchi_identity::config::KEY_VARIABLE,
            )
            .is_none()
        {
            anyhow::bail!(
                "{} is not set: identity replicas must decrypt each other's My Numbers, so a \
                 single-service process never generates its own key",
                madoguchi_identity::config::KEY_VARIABLE
            );
        }
        let key = madoguchi_identity::config::load_key(&environment, &config.data_dir)
            .context("loading the my number key")?;
        let identity =
            madoguchi_identity::IdentityApp::start(db.clone(), clock.clone(), &sites, &key)
                .await
                .context("preparing the identity service")?;
        health_names.push(madoguchi_identity::SERVICE_NAME);
        routes = routes.add_service(identity.service(config.max_message_bytes));
    }
    let addr = listener.local_addr()?;
    if let Some(db) = db
        .as_ref()
        .filter(|_| matches!(selection, ServiceSelection::All | ServiceSelection::Forms))
    {
        let this = format!("http://{addr}");
        let peers = madoguchi_forms::peers::Peers::new(
            config.forms.identity_url.as_deref().unwrap_or(&this),
            config.forms.queue_url.as_deref().unwrap_or(&this),
        )?;
        let forms = madoguchi_forms::FormsApp::start(
            db.clone(),
            clock.clone(),
            &sites,
            peers,
            config.forms.font.as_deref(),
        )
        .await
        .context("preparing the forms service")?;
        forms.register_metrics(&metrics);
        health_names.push(madoguchi_forms::SERVICE_NAME);
        routes = routes.add_service(forms.service(config.max_message_bytes));
    }
    if let Some(db) = db
        .as_ref()
        .filter(|_| matches!(selection, ServiceSelection::All | ServiceSelection::Pos))
    {
        let this = format!("http://{addr}");
        let pos = madoguchi_pos::PosApp::start(
            db.clone(),
            clock.clone(),
            &sites,
            config.pos.forms_url.as_deref().unwrap_or(&this),
            draining.clone(),
        )
        .await
        .context("preparing the pos service")?;
        pos.register_metrics(&metrics);
        health_names.push(madoguchi_pos::SERVICE_NAME);
        routes = routes.add_service(pos.service(config.max_message_bytes));
    }
    let mut public_http_prefixes = Vec::new();
    if matches!(
        selection,
        ServiceSelection::All | ServiceSelection::Signage | ServiceSelection::Floor
    ) {
        if selection.is_replicated() && config.signage.status_url_secret.is_none() {
            anyhow::bail!(
                "MADOGUCHI_SIGNAGE_SECRET (signage.status_url_secret) is not set: a status URL \
                 printed by one signage replica must open on every other, so a single-service \
                 process never generates its own secret"
            );
        }
        let options = SignageOptions::from_config(config, &sites, &tokens, addr)?;
        let signage = SignageApp::new(options, clock.clone(), draining.clone())
            .context("preparing the signage service")?;
        signage.register_metrics(&metrics);
        health_names.push(madoguchi_signage::SERVICE_NAME);
        routes = signage.add_pages(routes.add_service(signage.service()));
        public_http_prefixes.push(madoguchi_signage::PUBLIC_PREFIX);
    }
    let tls = match &config.tls {
        Some(files) => {
            Some(madoguchi_platform::server::tls_config(files).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let options = ServerOptions {
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
        drain_delay: config.drain_delay,
        public_http_prefixes,
        tls,
        max_connection_age: (!config.max_connection_age.is_zero())
            .then_some(config.max_connection_age),
        metrics: Some(metrics.clone()),
        ..ServerOptions::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        ServiceSet {
            routes,
            health_names,
        },
        TokenRegistry::new(&tokens),
        options,
        drain,
        async {
            let _ = stopped.await;
        },
    ));
    tracing::info!(%addr, ?selection, sqlite = config.is_sqlite(), "madoguchi serving");
    Ok(RunningServer {
        addr,
        queue,
        metrics,
        stop: Some(stop),
        task,
    })
}
