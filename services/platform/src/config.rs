//! Server configuration: a TOML file, overlaid by `MADOGUCHI_*` variables.
//!
//! Variables are read through the [`Environment`] trait so tests never touch
//! the process environment. Secrets (tokens, database URLs that may carry a
//! password) are [`SecretString`]s: their `Debug` output is redacted, so a
//! logged configuration never shows them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::Role;
use crate::types::MunicipalityCode;

/// Where configuration variables come from.
pub trait Environment {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A bearer token and the principal it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The bearer token. Never logged.
    pub token: SecretString,
    /// Who holds it, e.g. `staff-suzuki` or `kiosk-1f`; appears in logs.
    pub subject: String,
    /// What it may do.
    pub role: Role,
    /// The municipality it belongs to.
    pub municipality: MunicipalityCode,
}

/// The configuration of a Madoguchi server process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on for gRPC.
    pub listen: SocketAddr,
    /// The admin port: Prometheus metrics (`/metrics`) and `/healthz`,
    /// without credentials; `None` (`off`) serves none. Default
    /// `127.0.0.1:9464`; a pod sets `0.0.0.0:9464` for its scraper.
    #[serde(with = "admin_address")]
    pub admin_listen: Option<SocketAddr>,
    /// Directory for the embedded database and generated credentials.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; unset means SQLite in `data_dir`.
    pub database_url: Option<SecretString>,
    /// One site file (municipality, offices, counters, categories), served
    /// alone: `--site` and `MADOGUCHI_SITE` set it. See [`Self::site_files`].
    pub site: Option<PathBuf>,
    /// Several site files, one per municipality, served together (a
    /// shared cluster); `MADOGUCHI_SITES` sets them, comma-separated.
    pub sites: Option<Vec<PathBuf>>,
    /// Deadline for one unary request.
    #[serde(with = "millis")]
    pub request_timeout: Duration,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "millis")]
    pub shutdown_grace: Duration,
    /// How long a server keeps serving after a shutdown signal with its
    /// health already NOT_SERVING, so health-checking clients and probes
    /// move away before it refuses anything. Zero (the embedded default)
    /// drains at once; a replica in a cluster wants a little more than
    /// its clients' health-check interval (1 s) plus a check's timeout.
    #[serde(with = "millis")]
    pub drain_delay: Duration,
    /// Largest accepted request message in bytes.
    pub max_message_bytes: usize,
    /// Bearer tokens. When neither these nor `credentials_file` give any,
    /// `madoguchi serve` generates one token per role into
    /// `data_dir/credentials.toml` (the embedded default only).
    pub tokens: Vec<TokenConfig>,
    /// A file of `[[tokens]]` in the format of `credentials.toml`, read at
    /// start beside `tokens` (a Kubernetes Secret mounted as a file, so
    /// every replica accepts the same tokens).
    pub credentials_file: Option<PathBuf>,
    /// When not zero, a client connection is closed gracefully after this
    /// long (then given as long again to finish its streams), so
    /// long-lived clients reconnect and spread over replicas that started
    /// after them. Zero (the embedded default) keeps connections: one
    /// process has nothing to rebalance.
    #[serde(with = "millis")]
    pub max_connection_age: Duration,
    /// The signage service (`[signage]`).
    pub signage: SignageConfig,
    /// The forms service (`[forms]`).
    pub forms: FormsConfig,
    /// The POS service (`[pos]`).
    pub pos: PosConfig,
    /// TLS on the gRPC port (`[tls]`); unset serves cleartext, for a mesh
    /// or ingress that terminates TLS in front.
    pub tls: Option<TlsFiles>,
}

/// PEM files of the server's TLS (`[tls]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA
    /// (mutual TLS, e.g. the floor gateways).
    pub client_ca: Option<PathBuf>,
}

/// Settings of the POS service; the defaults fit the one-process mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PosConfig {
    /// The forms service certificate requests are read from, e.g.
    /// `http://forms:50051`. Unset means this process. The caller's bearer
    /// token is forwarded to it.
    pub forms_url: Option<String>,
}

/// Settings of the forms service; the defaults fit the one-process mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormsConfig {
    /// The identity service, e.g. `http://identity:50051`. Unset means this
    /// process. The caller's bearer token is forwarded to it.
    pub identity_url: Option<String>,
    /// The queue service, e.g. `http://queue:50051`. Unset means this
    /// process.
    pub queue_url: Option<String>,
    /// The CJK TrueType font for PDFs. Unset means IPAex Gothic from
    /// Debian's `fonts-ipaexfont-gothic` (`scripts/fonts.sh`).
    pub font: Option<PathBuf>,
}

/// Settings of the signage service; every one has a working default for
/// the one-process mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignageConfig {
    /// Base URL residents' phones reach the pages at, printed in ticket QR
    /// codes, e.g. `https://madoguchi.city.ofunato.example`. Unset means
    /// `http://{listen}`.
    pub public_url: Option<String>,
    /// Secret of the ticket status URLs (at least 32 characters); replicas
    /// must share it. Unset means generated into `data_dir/signage-secret`.
    pub status_url_secret: Option<SecretString>,
    /// The queue service to follow, e.g. `http://queue:50051`. Unset means
    /// this process.
    pub queue_url: Option<String>,
    /// A `display`-role bearer token for the queue. Unset means the display
    /// token among this server's own tokens.
    pub queue_token: Option<SecretString>,
    /// The signage file (guide, floor map, boards, ads). Unset means
    /// `signage.toml` beside the site file, if it exists.
    pub file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            data_dir: PathBuf::from(".data"),
            database_url: None,
            site: None,
            sites: None,
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            max_message_bytes: 1024 * 1024,
            tokens: Vec::new(),
            credentials_file: None,
            max_connection_age: Duration::ZERO,
            signage: SignageConfig::default(),
            forms: FormsConfig::default(),
            pos: PosConfig::default(),
            tls: None,
        }
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it quotes no secret values).
        message: String,
    },
    /// A variable has an invalid value.
    #[error("{name}: {message}")]
    Variable {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The sample sites the embedded default serves when no site is
/// configured: two neighbouring cities on one server.
pub const DEFAULT_SITES: [&str; 2] = ["sites/ofunato/site.toml", "sites/rikuzentakata/site.toml"];

impl ServerConfig {
    /// The site files this server serves: `site` first when set, then
    /// `sites`; with neither, the [`DEFAULT_SITES`].
    pub fn site_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.site.iter().cloned().collect();
        for file in self.sites.iter().flatten() {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        if files.is_empty() {
            files = DEFAULT_SITES.iter().map(PathBuf::from).collect();
        }
        files
    }

    /// Loads `file` (if given) over the defaults, then applies variables:
    /// `MADOGUCHI_LISTEN`, `MADOGUCHI_ADMIN_LISTEN` (`host:port` or `off`),
    /// `MADOGUCHI_DATA_DIR`, `MADOGUCHI_DATABASE_URL`,
    /// `MADOGUCHI_SITE`, `MADOGUCHI_SITES`, and for signage `MADOGUCHI_PUBLIC_URL`,
    /// `MADOGUCHI_SIGNAGE_SECRET`, `MADOGUCHI_SIGNAGE_QUEUE_URL`,
    /// `MADOGUCHI_SIGNAGE_QUEUE_TOKEN`, and for forms
    /// `MADOGUCHI_FORMS_IDENTITY_URL`, `MADOGUCHI_FORMS_QUEUE_URL`,
    /// `MADOGUCHI_CJK_FONT`, and for POS `MADOGUCHI_POS_FORMS_URL`, and
    /// `MADOGUCHI_CREDENTIALS_FILE`, `MADOGUCHI_MAX_CONNECTION_AGE_MS`,
    /// `MADOGUCHI_DRAIN_DELAY_MS`.
    pub fn load(file: Option<&Path>, env: &dyn Environment) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: error.message().to_owned(),
                })?
            }
            None => Self::default(),
        };
        if let Some(listen) = env.var("MADOGUCHI_LISTEN") {
            config.listen = listen.parse().map_err(|_| ConfigError::Variable {
                name: "MADOGUCHI_LISTEN",
                message: "expected host:port".into(),
            })?;
        }
        if let Some(admin) = env.var("MADOGUCHI_ADMIN_LISTEN") {
            config.admin_listen =
                admin_address::parse(&admin).map_err(|message| ConfigError::Variable {
                    name: "MADOGUCHI_ADMIN_LISTEN",
                    message,
                })?;
        }
        if let Some(dir) = env.var("MADOGUCHI_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(url) = env.var("MADOGUCHI_DATABASE_URL") {
            config.database_url = Some(SecretString::from(url));
        }
        if let Some(site) = env.var("MADOGUCHI_SITE") {
            config.site = Some(PathBuf::from(site));
        }
        if let Some(sites) = env.var("MADOGUCHI_SITES") {
            let files: Vec<PathBuf> = sites
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            if files.is_empty() {
                return Err(ConfigError::Variable {
                    name: "MADOGUCHI_SITES",
                    message: "expected comma-separated site file paths".into(),
                });
            }
            config.sites = Some(files);
        }
        if let Some(url) = env.var("MADOGUCHI_PUBLIC_URL") {
            config.signage.public_url = Some(url);
        }
        if let Some(secret) = env.var("MADOGUCHI_SIGNAGE_SECRET") {
            config.signage.status_url_secret = Some(SecretString::from(secret));
        }
        if let Some(url) = env.var("MADOGUCHI_SIGNAGE_QUEUE_URL") {
            config.signage.queue_url = Some(url);
        }
        if let Some(token) = env.var("MADOGUCHI_SIGNAGE_QUEUE_TOKEN") {
            config.signage.queue_token = Some(SecretString::from(token));
        }
        if let Some(url) = env.var("MADOGUCHI_FORMS_IDENTITY_URL") {
            config.forms.identity_url = Some(url);
        }
        if let Some(url) = env.var("MADOGUCHI_FORMS_QUEUE_URL") {
            config.forms.queue_url = Some(url);
        }
        if let Some(font) = env.var("MADOGUCHI_CJK_FONT") {
            config.forms.font = Some(PathBuf::from(font));
        }
        if let Some(url) = env.var("MADOGUCHI_POS_FORMS_URL") {
            config.pos.forms_url = Some(url);
        }
        if let Some(file) = env.var("MADOGUCHI_CREDENTIALS_FILE") {
            config.credentials_file = Some(PathBuf::from(file));
        }
        if let Some(delay) = millis_var(env, "MADOGUCHI_DRAIN_DELAY_MS")? {
            config.drain_delay = delay;
        }
        if let Some(age) = millis_var(env, "MADOGUCHI_MAX_CONNECTION_AGE_MS")? {
            config.max_connection_age = age;
        }
        Ok(config)
    }

    /// The database URL in force: the configured one, or SQLite in the
    /// data directory.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("madoguchi.db").display()
            )),
        }
    }

    /// True when the database is the embedded SQLite one.
    pub fn is_sqlite(&self) -> bool {
        self.database_url().expose_secret().starts_with("sqlite:")
    }
}

/// A duration variable in milliseconds, if set.
fn millis_var(env: &dyn Environment, name: &'static str) -> Result<Option<Duration>, ConfigError> {
    env.var(name)
        .map(|ms| {
            ms.parse()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::Variable {
                    name,
                    message: "expected milliseconds".into(),
                })
        })
        .transpose()
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `admin_listen`: an address, or `"off"`.
mod admin_address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer};

    pub(super) fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
        match text.trim() {
            "off" | "" => Ok(None),
            address => address
                .parse()
                .map(Some)
                .map_err(|_| format!("expected host:port or off, not {address:?}")),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_the_file_and_secrets_stay_hidden()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("madoguchi.toml");
        std::fs::write(
            &path,
            r#"
listen = "0.0.0.0:7000"
request_timeout = 2500
[[tokens]]
token = "s3cret-token"
subject = "kiosk-1f"
role = "device"
municipality = "032034"
"#,
        )?;
        let env = HashMap::from([(
            "MADOGUCHI_DATABASE_URL".to_owned(),
            "postgres://u:pw@localhost/db".to_owned(),
        )]);
        let config = ServerConfig::load(Some(&path), &env)?;
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.request_timeout, Duration::from_millis(2500));
        assert!(!config.is_sqlite());
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-token"), "{debug}");
        assert!(!debug.contains("pw@"), "{debug}");
        Ok(())
    }

    #[test]
    fn unknown_keys_are_rejected() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("madoguchi.toml");
        std::fs::write(&path, "lisen = \"0.0.0.0:7000\"\n")?;
        let error = ServerConfig::load(Some(&path), &HashMap::new());
        assert!(matches!(error, Err(ConfigError::Parse { .. })));
        Ok(())
    }
}
