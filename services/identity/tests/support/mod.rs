//! A real identity server on `127.0.0.1:0` for the integration tests, on
//! SQLite or PostgreSQL, with a manual clock and one token per kind of
//! caller. PostgreSQL needs `MADOGUCHI_TEST_POSTGRES_URL` and fails
//! without it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::TimeZone;
use madoguchi_identity::IdentityApp;
use madoguchi_platform::auth::{Role, TokenRegistry};
use madoguchi_platform::clock::{ManualClock, SharedClock};
use madoguchi_platform::config::TokenConfig;
use madoguchi_platform::server::{ServerOptions, ServiceSet, drain_channel, serve};
use madoguchi_platform::types::{JAPAN_STANDARD_TIME, MunicipalityCode};
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use secrecy::{SecretBox, SecretString};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use madoguchi_proto::identity::v1 as pb;
pub use madoguchi_proto::types::v1 as types;

/// Ofunato, the sample site's municipality.
pub const OFUNATO: &str = "municipalities/032034";
/// The daughter of the seed's family (住登外, 仙台市青葉区).
pub const TSURUKO: &str = "municipalities/032034/residents/100003";
/// The deceased father.
pub const TARO: &str = "municipalities/032034/residents/100001";
/// The mother, 喪主.
pub const HANAKO: &str = "municipalities/032034/residents/100002";
/// The visit of the tests.
pub const VISIT: &str = "municipalities/032034/visits/okuyami-1";
/// The designated My Number handler of the sample identity.toml.
pub const HANDLER_TOKEN: &str = "handler-token";
/// Counter staff, not a handler.
pub const STAFF_TOKEN: &str = "staff-token";
/// A kiosk.
pub const DEVICE_TOKEN: &str = "device-token";
/// Staff of another municipality (仙台市青葉区).
pub const SENDAI_TOKEN: &str = "sendai-token";
/// The key of the tests.
pub const KEY: [u8; 32] = [7; 32];

/// Which storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL.
    Postgres,
}

/// The shipped site file.
pub fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml")
}

/// 2023-07-03 10:00 JST: two weeks after the funeral of the seed.
pub fn visit_day() -> chrono::DateTime<chrono::Utc> {
    JAPAN_STANDARD_TIME
        .with_ymd_and_hms(2023, 7, 3, 10, 0, 0)
        .single()
        .expect("valid instant")
        .to_utc()
}

fn token(token: &str, subject: &str, role: Role, municipality: &str) -> TokenConfig {
    TokenConfig {
        token: SecretString::from(token.to_owned()),
        subject: subject.to_owned(),
        role,
        municipality: MunicipalityCode::parse(municipality).expect("valid code"),
    }
}

/// Sends a bearer token.
#[derive(Debug, Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client.
pub type Client = IdentityServiceClient<InterceptedService<Channel, Bearer>>;

/// A running identity server.
pub struct Harness {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its clock.
    pub clock: ManualClock,
    /// The app, for in-process inspection.
    pub app: IdentityApp,
    /// The database URL.
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _dir: TempDir,
}

impl Harness {
    /// Starts a server on `backend`.
    pub async fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("identity.db").display()
            ),
            Backend::Postgres => madoguchi_platform::testing::fresh_postgres_database().await,
        };
        let db = madoguchi_platform::storage::connect(&SecretString::from(database_url.clone()))
            .await
            .expect("database");
        let clock = ManualClock::new(visit_day());
        let shared: SharedClock = Arc::new(clock.clone());
        let key = SecretBox::new(Box::new(KEY));
        let sites = madoguchi_platform::site::load_sites(&[site_file()]).expect("site file");
        let app = IdentityApp::start(db, shared, &sites, &key)
            .await
            .expect("identity starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tokens = TokenRegistry::new(&[
            token(HANDLER_TOKEN, "local-admin", Role::Admin, "032034"),
            token(STAFF_TOKEN, "staff-tanaka", Role::Staff, "032034"),
            token(DEVICE_TOKEN, "kiosk-1f", Role::Device, "032034"),
            token(SENDAI_TOKEN, "staff-sendai", Role::Staff, "041017"),
        ]);
        let (drain, _draining) = drain_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let routes = Routes::new(app.service(1024 * 1024));
        let task = tokio::spawn(serve(
            listener,
            ServiceSet {
                routes,
                health_names: vec![madoguchi_identity::SERVICE_NAME],
            },
            tokens,
            ServerOptions::default(),
            drain,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            clock,
            app,
            database_url,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// A client sending `token`.
    pub async fn client(&self, token: &str) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let value = MetadataValue::try_from(format!("Bearer {token}")).expect("header");
        IdentityServiceClient::with_interceptor(channel, Bearer(value))
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// A date.
pub fn date(year: i32, month: i32, day: i32) -> types::Date {
    types::Date { year, month, day }
}

/// A name.
pub fn name(family: &str, given: &str, family_kana: &str, given_kana: &str) -> types::JapaneseName {
    types::JapaneseName {
        family_name: family.into(),
        given_name: given.into(),
        family_name_kana: family_kana.into(),
        given_name_kana: given_kana.into(),
    }
}

/// The daughter as she introduces herself.
pub fn tsuruko_claim() -> pb::PersonClaim {
    pb::PersonClaim {
        person_name: Some(name("おくやみ", "つる子", "オクヤミ", "ツルコ")),
        birth_date: Some(date(1972, 10, 31)),
        address: None,
    }
}

/// The field violations of a status, as (field, description).
pub fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Runs an async test body on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::support::Backend::Postgres).await;
            }
        }
    )*};
}
