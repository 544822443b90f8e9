//! `madoguchi serve` as a process of its own (every service, the embedded
//! default's shape) on port 0, with the test tokens, the sample site, its
//! admin port on port 0 and whatever environment a test adds (a collector
//! to export traces to, a PostgreSQL database).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Backend;
use crate::cluster::madoguchi_binary;

/// A running `madoguchi serve`.
#[derive(Debug)]
pub struct ServedProcess {
    /// The gRPC port.
    pub addr: SocketAddr,
    /// The admin port (`/metrics`, `/healthz`).
    pub admin: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl ServedProcess {
    /// Starts every service on `backend` with `env` added.
    pub async fn start(backend: Backend, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = String::new();
        for token in crate::test_tokens() {
            config.push_str(&format!(
                "[[tokens]]\ntoken = \"{}\"\nsubject = \"{}\"\nrole = \"{}\"\nmunicipality = \"{}\"\n\n",
                token.token.expose_secret(),
                token.subject,
                token.role,
                token.municipality,
            ));
        }
        let config_path = dir.path().join("madoguchi.toml");
        std::fs::write(&config_path, config).unwrap_or_else(|e| panic!("{e}"));
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("madoguchi.db").display()
            ),
            Backend::Postgres => crate::fresh_postgres_database().await,
        };
        let site = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sites/ofunato/site.toml");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(madoguchi_binary())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MADOGUCHI_LISTEN", "127.0.0.1:0")
            .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
            .env("MADOGUCHI_DATA_DIR", dir.path())
            .env("MADOGUCHI_SITE", &site)
            .env("MADOGUCHI_DATABASE_URL", &database_url)
            .env(
                "MADOGUCHI_LOG",
                std::env::var("MADOGUCHI_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start madoguchi serve: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut lines = BufReader::new(stdout).lines();
        let ports = tokio::time::timeout(Duration::from_secs(60), async {
            let (mut addr, mut admin) = (None, None);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("listening on ") {
                    addr = a.parse::<SocketAddr>().ok();
                }
                if let Some(a) = line.strip_prefix("admin on ") {
                    admin = a.parse::<SocketAddr>().ok();
                }
                if let (Some(addr), Some(admin)) = (addr, admin) {
                    return Some((addr, admin));
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some((addr, admin)) = ports else {
            panic!(
                "madoguchi serve did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            addr,
            admin,
            child,
            log,
            _dir: dir,
        }
    }

    /// `http://addr`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to the gRPC port.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.endpoint())
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect: {e}"))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (the exporter flushes then).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// `GET http://addr/path` over HTTP/1.1; the status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One sample of a Prometheus/OpenMetrics text: its value when a line
/// `name{labels…}` has every label of `labels` (others may be there too).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let present: Vec<(&str, &str)> = rest
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|l| present.contains(l))
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// The metric names (`# TYPE` lines) of an exposition text, with their
/// types.
pub fn metric_types(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.to_owned()))
        })
        .collect()
}
