//! The gateway's configuration file (TOML): which cluster to talk to and
//! as whom, where the local state lives, and which serial devices it owns
//! and what each serves (kiosk K1's printer and button panel, the RS-485
//! line of the call boards).
//!
//! ```toml
//! state = ".data/gateway.db"
//!
//! [cluster]
//! endpoint = "http://127.0.0.1:50051"
//! office = "municipalities/032034/offices/main"
//! token = "…"                       # a `device` token; or token_file (the `device`
//!                                   # token of the office's municipality in it)
//!
//! [[kiosks]]
//! id = "k1"
//! heading = "大船渡市役所"
//! printer = { path = "/dev/ttyUSB0", baud = 19200 }
//! panel = { path = "/dev/ttyUSB1", baud = 9600 }
//! buttons = { 1 = "certificates", 2 = "life-events" }
//!
//! [[board_lines]]
//! id = "rs485-1f"                   # matches `line` in the signage site file
//! port = { path = "/dev/ttyUSB2", baud = 9600 }
//! units = [1, 2, 3, 4, 5]
//!
//! [[registers]]
//! id = "r1"                         # municipalities/…/registers/r1 in the POS service
//! terminal = { path = "/dev/ttyUSB3", baud = 9600, stop_bits = "2" }
//! printer = { path = "/dev/ttyUSB4", baud = 19200 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::serial::PortConfig;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The local SQLite file: watch position, number leases, offline outbox.
    #[serde(default = "default_state")]
    pub state: PathBuf,
    /// The cluster.
    pub cluster: ClusterConfig,
    /// Kiosks this gateway drives.
    #[serde(default)]
    pub kiosks: Vec<KioskConfig>,
    /// RS-485 lines of call boards.
    #[serde(default)]
    pub board_lines: Vec<BoardLineConfig>,
    /// Registers (レジ): a payment terminal and a receipt printer each.
    #[serde(default)]
    pub registers: Vec<RegisterConfig>,
    /// Where the local `KioskService` listens (touch-screen kiosks), e.g.
    /// `127.0.0.1:50061`; unset for none.
    #[serde(default)]
    pub kiosk_listen: Option<std::net::SocketAddr>,
    /// Where `GET /metrics` (Prometheus) and `GET /healthz` are served,
    /// e.g. `127.0.0.1:9461`;
    /// unset for none.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Timers; the defaults suit a floor.
    #[serde(default)]
    pub timing: Timing,
}

fn default_state() -> PathBuf {
    PathBuf::from(".data/gateway.db")
}

/// How to reach the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `http://host:port` (or `https://` with `tls`).
    pub endpoint: String,
    /// Resource name of the office this floor belongs to.
    pub office: String,
    /// A bearer token of role `device`.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Or a `credentials.toml` written by `madoguchi serve`, whose
    /// `device` token is used.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// TLS material for `https://` endpoints.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How long one unary call may take before the gateway treats the
    /// cluster as unreachable (and a kiosk prints offline).
    #[serde(default = "default_call_timeout", with = "millis")]
    pub call_timeout: Duration,
}

fn default_call_timeout() -> Duration {
    Duration::from_millis(1500)
}

/// TLS to the cluster: the CA that signs the server's certificate and,
/// for mutual TLS, this gateway's certificate and key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Client certificate (PEM), for mutual TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM), for mutual TLS.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Server name to verify, when it differs from the endpoint's host.
    #[serde(default)]
    pub domain: Option<String>,
}

/// One ticket kiosk: its printer, its optional button panel, and which
/// category each button issues.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskConfig {
    /// Kiosk id, e.g. `k1`: 1-20 lowercase letters, digits or hyphens.
    pub id: String,
    /// First line printed on tickets.
    #[serde(default = "default_heading")]
    pub heading: String,
    /// The ESC/POS printer.
    pub printer: PortConfig,
    /// The serial button panel, if the kiosk has one.
    #[serde(default)]
    pub panel: Option<PortConfig>,
    /// Button number → category id of the office.
    #[serde(default)]
    pub buttons: BTreeMap<u8, String>,
    /// Numbers leased per category for offline printing.
    #[serde(default = "default_lease_size")]
    pub lease_size: u32,
}

fn default_heading() -> String {
    "整理券".to_owned()
}

fn default_lease_size() -> u32 {
    20
}

/// One RS-485 line with call boards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardLineConfig {
    /// Line id as named by the signage site file's boards (`line`).
    pub id: String,
    /// The serial port.
    pub port: PortConfig,
    /// Modbus unit ids of the boards on the line (the signage routing
    /// says which counter each one shows). Only these are polled: a
    /// missing unit would cost a timeout on every poll of the line.
    pub units: Vec<u8>,
}

/// One register: its payment terminal (ZVT serial) and its receipt
/// printer (ESC/POS, with the cash drawer on the printer's kick connector).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// Register id as in the POS service's resource name
    /// `{office}/registers/{id}`, e.g. `r1`: 1-20 lowercase letters,
    /// digits or hyphens.
    pub id: String,
    /// The payment terminal (ZVT serial framing; usually 9600 8N2).
    pub terminal: PortConfig,
    /// The receipt printer.
    pub printer: PortConfig,
}

/// Timers of the link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// First reconnect delay.
    #[serde(default = "default_backoff_initial", with = "millis")]
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    #[serde(default = "default_backoff_max", with = "millis")]
    pub backoff_max: Duration,
    /// How often leases are topped up and the outbox retried.
    #[serde(default = "default_housekeeping", with = "millis")]
    pub housekeeping: Duration,
    /// How often device health is re-sent when nothing changed.
    #[serde(default = "default_health", with = "millis")]
    pub health_interval: Duration,
}

fn default_backoff_initial() -> Duration {
    Duration::from_millis(200)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(15)
}
fn default_housekeeping() -> Duration {
    Duration::from_secs(5)
}
fn default_health() -> Duration {
    Duration::from_secs(60)
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            housekeeping: default_housekeeping(),
            health_interval: default_health(),
        }
    }
}

/// 1-20 lowercase letters, digits or hyphens.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 20
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl GatewayConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.cluster.token.is_none() && self.cluster.token_file.is_none() {
            return Err(ConfigError::Invalid(
                "cluster: set token or token_file".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for kiosk in &self.kiosks {
            if !valid_id(&kiosk.id) {
                return Err(ConfigError::Invalid(format!(
                    "kiosk id {:?}: 1-20 lowercase letters, digits or hyphens",
                    kiosk.id
                )));
            }
            if !ids.insert(kiosk.id.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "kiosk id {:?} appears twice",
                    kiosk.id
                )));
            }
            if !(1..=100).contains(&kiosk.lease_size) {
                return Err(ConfigError::Invalid(format!(
                    "kiosk {}: lease_size must be 1..=100",
                    kiosk.id
                )));
            }
        }
        let mut registers = std::collections::HashSet::new();
        for register in &self.registers {
            if !valid_id(&register.id) {
                return Err(ConfigError::Invalid(format!(
                    "register id {:?}: 1-20 lowercase letters, digits or hyphens",
                    register.id
                )));
            }
            if !registers.insert(register.id.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "register id {:?} appears twice",
                    register.id
                )));
            }
            if register.terminal.path == register.printer.path {
                return Err(ConfigError::Invalid(format!(
                    "register {}: terminal and printer cannot share a port",
                    register.id
                )));
            }
        }
        for line in &self.board_lines {
            if line.units.is_empty() || line.units.iter().any(|u| !(1..=247).contains(u)) {
                return Err(ConfigError::Invalid(format!(
                    "board line {}: units must list Modbus ids 1..=247",
                    line.id
                )));
            }
        }
        Ok(())
    }

    /// The resource name of a register of this office.
    pub fn register_name(&self, id: &str) -> String {
        format!("{}/registers/{id}", self.cluster.office)
    }

    /// The bearer token: inline, or the `device` token of a credentials file.
    /// A server serving several municipalities writes one `device` token
    /// per municipality into the file; the gateway takes the one of its
    /// office's municipality (an entry without `municipality` matches any).
    pub fn token(&self) -> Result<SecretString, ConfigError> {
        if let Some(token) = &self.cluster.token {
            return Ok(token.clone());
        }
        let Some(path) = &self.cluster.token_file else {
            return Err(ConfigError::Invalid("no token configured".into()));
        };
        #[derive(Deserialize)]
        struct Credentials {
            tokens: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            token: SecretString,
            role: String,
            #[serde(default)]
            municipality: Option<String>,
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let credentials: Credentials = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let municipality = self.municipality();
        credentials
            .tokens
            .into_iter()
            .find(|t| {
                t.role == "device"
                    && t.municipality
                        .as_deref()
                        .is_none_or(|m| Some(m) == municipality)
            })
            .map(|t| t.token)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "{}: no token of role device for municipality {}",
                    path.display(),
                    municipality.unwrap_or("?")
                ))
            })
    }

    /// The municipality code of `cluster.office`
    /// (`municipalities/{code}/offices/{office}`).
    pub fn municipality(&self) -> Option<&str> {
        self.cluster
            .office
            .strip_prefix("municipalities/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(code, _)| code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_floor_and_refuses_mistakes() {
        let text = r#"
            [cluster]
            endpoint = "http://127.0.0.1:50051"
            office = "municipalities/032034/offices/main"
            token = "secret"

            [[kiosks]]
            id = "k1"
            printer = { path = "/dev/ttyUSB0", baud = 19200 }
            buttons = { 1 = "certificates", 2 = "life-events" }

            [[board_lines]]
            id = "rs485-1f"
            port = { path = "/dev/ttyUSB2" }
            units = [1, 2, 3]

            [[registers]]
            id = "r1"
            terminal = { path = "/dev/ttyUSB3", stop_bits = "2" }
            printer = { path = "/dev/ttyUSB4", baud = 19200 }
        "#;
        let config = GatewayConfig::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.kiosks[0].buttons.get(&2).map(String::as_str),
            Some("life-events")
        );
        assert_eq!(config.kiosks[0].lease_size, 20);
        assert_eq!(config.board_lines[0].port.baud, 9600);
        assert!(
            !format!("{config:?}").contains("secret"),
            "tokens never print"
        );

        let no_token = text.replace("token = \"secret\"", "");
        assert!(GatewayConfig::parse(&no_token).is_err());
        let bad_id = text.replace("id = \"k1\"", "id = \"K 1\"");
        assert!(GatewayConfig::parse(&bad_id).is_err());
        let typo = text.replace("buttons", "buttonz");
        assert!(GatewayConfig::parse(&typo).is_err());

        assert_eq!(config.registers[0].terminal.baud, 9600);
        assert_eq!(config.registers[0].printer.baud, 19200);
        assert_eq!(
            config.register_name("r1"),
            "municipalities/032034/offices/main/registers/r1"
        );
        let bad_register = text.replace("id = \"r1\"", "id = \"R1\"");
        assert!(GatewayConfig::parse(&bad_register).is_err());
        let shared_port = text.replace("/dev/ttyUSB4", "/dev/ttyUSB3");
        assert!(GatewayConfig::parse(&shared_port).is_err());
    }

    #[test]
    fn the_shipped_configurations_load() {
        let sites = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sites");
        for (site, code) in [("ofunato", "032034"), ("rikuzentakata", "032107")] {
            let config = GatewayConfig::load(&sites.join(site).join("gateway.toml"))
                .unwrap_or_else(|e| panic!("{site}: {e}"));
            assert_eq!(config.municipality(), Some(code), "{site}");
        }
    }

    #[test]
    fn a_credentials_file_of_several_municipalities_gives_the_office_s_device_token() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("credentials.toml");
        std::fs::write(
            &file,
            r#"
            [[tokens]]
            token = "staff-032034"
            subject = "s"
            role = "staff"
            municipality = "032034"
            [[tokens]]
            token = "device-032034"
            subject = "d"
            role = "device"
            municipality = "032034"
            [[tokens]]
            token = "device-032107"
            subject = "d"
            role = "device"
            municipality = "032107"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let config_for = |office: &str| {
            GatewayConfig::parse(&format!(
                "[cluster]\nendpoint = \"http://127.0.0.1:50051\"\noffice = \"{office}\"\n\
                 token_file = {:?}\n",
                file.display().to_string()
            ))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        for code in ["032034", "032107"] {
            let token = config_for(&format!("municipalities/{code}/offices/main"))
                .token()
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(token.expose_secret(), format!("device-{code}"));
        }
        let error = config_for("municipalities/131016/offices/main")
            .token()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("no token of role device for municipality 131016"),
            "{error}"
        );
    }
}
