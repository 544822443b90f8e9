//! Harness for the end-to-end tests: a real `madoguchi` server on
//! `127.0.0.1:0`, on SQLite or PostgreSQL, driven by the generated client.
//!
//! PostgreSQL tests need `MADOGUCHI_TEST_POSTGRES_URL`, a URL of a role
//! that may create databases (`scripts/test.sh` starts PostgreSQL and sets
//! it). Without it they fail: a skipped backend would be a silent gap.

use std::path::PathBuf;
use std::sync::Arc;

use madoguchi::cli::Auth;
use madoguchi::server::{RunningServer, ServiceSelection, start};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::{ManualClock, SharedClock};
use madoguchi_platform::config::{ServerConfig, TokenConfig};
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use secrecy::SecretString;
use tempfile::TempDir;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub mod cluster;
pub mod floor;
pub mod okuyami;
pub mod otlp;
pub mod process;

pub use madoguchi_proto::queue::v1 as pb;

/// The office of the sample site.
pub const OFFICE: &str = "municipalities/032034/offices/main";
/// Another municipality (東京都千代田区), for tenancy tests.
pub const OTHER_MUNICIPALITY: &str = "131016";
/// The second sample site's municipality (陸前高田市), served beside
/// 大船渡市 by [`Spawn::sites`].
pub const RIKUZENTAKATA: &str = "032107";
/// The office of the second sample site.
pub const RIKUZENTAKATA_OFFICE: &str = "municipalities/032107/offices/main";

/// A server that was stopped; its database and clock are kept for
/// [`StoppedServer::restart`].
#[derive(Debug)]
pub struct StoppedServer {
    /// The address it listened on (and will again).
    pub addr: std::net::SocketAddr,
    clock: ManualClock,
    database_url: String,
    config: ServerConfig,
    dir: TempDir,
}

impl StoppedServer {
    /// Starts the server again on the same address and database.
    pub async fn restart(self) -> TestServer {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("rebind {}: {e}", self.addr));
        let shared: SharedClock = Arc::new(self.clock.clone());
        let server = start(&self.config, ServiceSelection::All, shared, listener)
            .await
            .unwrap_or_else(|e| panic!("server did not restart: {e:#}"));
        TestServer {
            server,
            clock: self.clock,
            database_url: self.database_url,
            config: self.config,
            _dir: self.dir,
        }
    }
}

/// A generated client with a bearer token.
pub type Client = QueueServiceClient<InterceptedService<Channel, Auth>>;

/// Defines, for each async test body `name(backend)`, a module `name` with
/// one `#[tokio::test]` per storage backend: `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
        }
    )*};
}

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

pub use madoguchi_platform::testing::fresh_postgres_database;

/// A token for `role` in `municipality`; its text is `test-{role}-{code}`.
pub fn token(role: Role, municipality: &str) -> TokenConfig {
    TokenConfig {
        token: SecretString::from(format!("test-{role}-{municipality}")),
        subject: format!("test-{role}"),
        role,
        municipality: MunicipalityCode::parse(municipality).unwrap_or_else(|e| panic!("{e}")),
    }
}

/// Every role in 大船渡市 and in 陸前高田市, plus an admin of another
/// municipality (served by no site).
pub fn test_tokens() -> Vec<TokenConfig> {
    let roles = [
        Role::Admin,
        Role::Staff,
        Role::Supervisor,
        Role::Device,
        Role::Display,
        Role::Integrator,
    ];
    let mut tokens: Vec<_> = ["032034", RIKUZENTAKATA]
        .into_iter()
        .flat_map(|code| roles.into_iter().map(move |role| token(role, code)))
        .collect();
    tokens.push(token(Role::Admin, OTHER_MUNICIPALITY));
    tokens
}

/// A sample site directory of the repository, e.g. `sites/ofunato`.
pub fn sample_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sites")
        .join(name)
}

/// The sample site shipped with the product.
pub fn sample_site() -> String {
    sample_site_named("ofunato")
}

/// The `site.toml` of the sample site directory `name`.
pub fn sample_site_named(name: &str) -> String {
    let path = sample_dir(name).join("site.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files the services read beside a site file: the forms catalog, the
/// identity rules and registry sample, the signage data.
const SITE_DATA_FILES: [&str; 4] = [
    "catalog.toml",
    "identity.toml",
    "residents.csv",
    "signage.toml",
];

/// Writes `site` as `dir/site.toml` with the data files of the sample site
/// directory `sample` that exist beside it; the site file's path.
fn write_site_dir(dir: &std::path::Path, site: &str, sample: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let site_path = dir.join("site.toml");
    std::fs::write(&site_path, site).unwrap_or_else(|e| panic!("{e}"));
    let sample = sample_dir(sample);
    for file in SITE_DATA_FILES {
        if sample.join(file).exists() {
            std::fs::copy(sample.join(file), dir.join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    site_path
}

/// A server under test.
#[derive(Debug)]
pub struct TestServer {
    /// The running server.
    pub server: RunningServer,
    /// The clock the server reads.
    pub clock: ManualClock,
    /// The database URL it uses.
    pub database_url: String,
    /// Its configuration, for a restart.
    pub config: ServerConfig,
    _dir: TempDir,
}

/// Options of [`spawn`].
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Backend.
    pub backend: Backend,
    /// Site TOML.
    pub site: String,
    /// Start time of the manual clock.
    pub start: chrono::DateTime<chrono::Utc>,
    /// TLS on the server's port; cleartext when unset.
    pub tls: Option<madoguchi_platform::config::TlsFiles>,
    /// The sample site directory whose data files go beside `site`.
    pub sample: String,
    /// Sample site directories served after the first, each written with
    /// its data files into a directory of its own (see [`Spawn::sites`]).
    pub more_sites: Vec<String>,
    /// The tokens the server accepts; unset means [`test_tokens`].
    pub tokens: Option<Vec<TokenConfig>>,
}

impl Spawn {
    /// The sample site on `backend`, on a weekday morning at 09:00 JST.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            site: sample_site(),
            start: chrono::DateTime::parse_from_rfc3339("2026-04-01T09:00:00+09:00")
                .map(|t| t.to_utc())
                .unwrap_or_else(|e| panic!("{e}")),
            tls: None,
            sample: "ofunato".into(),
            more_sites: Vec::new(),
            tokens: None,
        }
    }

    /// Replaces the tokens the server accepts.
    pub fn tokens(mut self, tokens: Vec<TokenConfig>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Replaces the site.
    pub fn site(mut self, site: impl Into<String>) -> Self {
        self.site = site.into();
        self
    }

    /// Serves the sample sites `names` (directories under `sites/`, e.g.
    /// `["ofunato", "rikuzentakata"]`) in this order, one municipality
    /// each: every site's directory is written with its files into the
    /// server's temporary directory, as a deployment mounts them.
    pub fn sites(mut self, names: &[&str]) -> Self {
        let Some((first, more)) = names.split_first() else {
            panic!("Spawn::sites needs at least one site");
        };
        self.site = sample_site_named(first);
        self.sample = (*first).to_owned();
        self.more_sites = more.iter().map(|name| (*name).to_owned()).collect();
        self
    }
}

/// Starts a server on port 0.
pub async fn spawn(options: Spawn) -> TestServer {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let site_path = write_site_dir(dir.path(), &options.site, &options.sample);
    let more_sites: Vec<PathBuf> = options
        .more_sites
        .iter()
        .map(|name| {
            write_site_dir(
                &dir.path().join("sites").join(name),
                &sample_site_named(name),
                name,
            )
        })
        .collect();
    let database_url = match options.backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        Backend::Postgres => fresh_postgres_database().await,
    };
    let config = ServerConfig {
        data_dir: dir.path().to_owned(),
        database_url: Some(SecretString::from(database_url.clone())),
        site: Some(site_path),
        sites: (!more_sites.is_empty()).then_some(more_sites),
        tokens: options.tokens.clone().unwrap_or_else(test_tokens),
        tls: options.tls.clone(),
        ..ServerConfig::default()
    };
    let clock = ManualClock::new(options.start);
    let shared: SharedClock = Arc::new(clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = start(&config, ServiceSelection::All, shared, listener)
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e:#}"));
    TestServer {
        server,
        clock,
        database_url,
        config,
        _dir: dir,
    }
}

/// A client of the server at `addr` with the token of `role` in `municipality`.
pub async fn client_at(addr: std::net::SocketAddr, role: Role, municipality: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect: {e}"));
    let auth = Auth::bearer(&token(role, municipality).token).unwrap_or_else(|e| panic!("{e}"));
    QueueServiceClient::with_interceptor(channel, auth)
}

impl TestServer {
    /// Stops the server gracefully, keeping its database.
    pub async fn stop(self) -> StoppedServer {
        let addr = self.server.addr;
        self.server
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
        StoppedServer {
            addr,
            clock: self.clock,
            database_url: self.database_url,
            config: self.config,
            dir: self._dir,
        }
    }

    /// A client holding `role` in 大船渡市.
    pub async fn client(&self, role: Role) -> Client {
        client_at(self.server.addr, role, "032034").await
    }

    /// A client of another municipality.
    pub async fn foreign_client(&self) -> Client {
        client_at(self.server.addr, Role::Admin, OTHER_MUNICIPALITY).await
    }

    /// A cleartext channel to the server, for the other services' clients.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.server.addr))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `{OFFICE}/categories/{id}`.
pub fn category(id: &str) -> String {
    format!("{OFFICE}/categories/{id}")
}

/// `{OFFICE}/counters/{id}`.
pub fn counter(id: &str) -> String {
    format!("{OFFICE}/counters/{id}")
}

/// Calls the next ticket to counter `counter_id` and starts its service;
/// the ticket as started.
pub async fn call_and_start(staff: &mut Client, counter_id: &str) -> pb::Ticket {
    let called = staff
        .call_next(pb::CallNextRequest {
            counter: counter(counter_id),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("call next: {e}"))
        .into_inner()
        .ticket
        .unwrap_or_else(|| panic!("nobody waiting at counter {counter_id}"));
    staff
        .start_service(pb::StartServiceRequest {
            name: called.name,
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("start: {e}"))
        .into_inner()
}

/// An `IssueTicketRequest` with a fresh request id.
pub fn issue(category_id: &str, priority: bool) -> pb::IssueTicketRequest {
    pb::IssueTicketRequest {
        parent: OFFICE.to_owned(),
        category: category(category_id),
        priority,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}
