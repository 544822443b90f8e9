//! The floor PC's package: the systemd unit, the configuration template and
//! the `.deb` metadata in Cargo.toml must agree with each other and with
//! the binary (its drain deadline, the paths it is given). Checked without
//! building the package: cargo-deb is not part of the build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use madoguchi_gateway::config::GatewayConfig;

fn read(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A systemd unit: section → key → every value given (keys repeat).
fn unit() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in read("packaging/madoguchi-gateway.service").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        sections
            .entry(current.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    sections
}

fn one(unit: &BTreeMap<String, BTreeMap<String, Vec<String>>>, key: &str) -> String {
    let values = &unit["Service"][key];
    assert_eq!(values.len(), 1, "{key} given more than once");
    values[0].clone()
}

fn deb() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// The binary's drain deadline, read from its source (`DRAIN_DEADLINE`).
fn drain_deadline_seconds() -> u64 {
    let main = read("src/main.rs");
    let line = main
        .lines()
        .find(|l| l.contains("const DRAIN_DEADLINE"))
        .expect("DRAIN_DEADLINE in main.rs");
    let digits: String = line
        .split("from_secs(")
        .nth(1)
        .expect("Duration::from_secs")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[test]
fn the_unit_runs_the_packaged_binary_with_the_packaged_config() {
    let unit = unit();
    let deb = deb();
    let assets = deb["assets"].as_array().unwrap();
    let installed = |source: &str| -> String {
        let asset = assets
            .iter()
            .map(|a| a.as_array().unwrap())
            .find(|a| a[0].as_str() == Some(source))
            .unwrap_or_else(|| panic!("{source} is not packaged"));
        let dest = asset[1].as_str().unwrap();
        let file = source.rsplit('/').next().unwrap();
        if dest.ends_with('/') {
            format!("/{dest}{file}")
        } else {
            format!("/{dest}")
        }
    };
    let binary = installed("target/release/madoguchi-gateway");
    let config = installed("packaging/gateway.toml");
    assert_eq!(
        one(&unit, "ExecStart"),
        format!("{binary} --config {config}")
    );
    let conf_files: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        conf_files.contains(&config.as_str()),
        "upgrades would overwrite the edited {config}"
    );
    let units = deb["systemd-units"].as_table().unwrap();
    assert_eq!(units["unit-name"].as_str(), Some("madoguchi-gateway"));
    assert_eq!(
        units["start"].as_bool(),
        Some(false),
        "started before it is configured"
    );
}

#[test]
fn the_config_template_parses_and_points_where_the_unit_puts_things() {
    let unit = unit();
    let config = GatewayConfig::parse(&read("packaging/gateway.toml")).unwrap();
    let state_dir = format!("/var/lib/{}", one(&unit, "StateDirectory"));
    assert!(
        config.state.starts_with(&state_dir),
        "{} is outside the StateDirectory {state_dir}",
        config.state.display()
    );
    // The token file is a credential systemd hands over under its name.
    let credentials = "/run/credentials/madoguchi-gateway.service/";
    let token_file = config.cluster.token_file.clone().expect("token_file");
    let name = token_file
        .to_str()
        .and_then(|p| p.strip_prefix(credentials))
        .unwrap_or_else(|| panic!("{} is not a credential", token_file.display()));
    assert!(
        unit["Service"]["LoadCredential"]
            .iter()
            .any(|c| c.starts_with(&format!("{name}:"))),
        "no LoadCredential={name}:…"
    );
    assert!(
        config.cluster.token.is_none(),
        "a token in the world-readable template"
    );
    assert!(
        config.cluster.endpoint.starts_with("https://") && config.cluster.tls.is_some(),
        "the floor reaches the cluster over mutual TLS"
    );
}

#[test]
fn the_unit_is_confined_and_waits_for_the_drain() {
    let unit = unit();
    let stop: u64 = one(&unit, "TimeoutStopSec").parse().unwrap();
    assert!(
        stop > drain_deadline_seconds(),
        "systemd would kill the gateway ({stop} s) before its drain deadline ({} s)",
        drain_deadline_seconds()
    );
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DevicePolicy", "closed"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "always"),
    ] {
        assert_eq!(one(&unit, key), value, "{key}");
    }
    assert!(one(&unit, "SupplementaryGroups").contains("dialout"));
    assert!(unit["Service"]["DeviceAllow"].contains(&"char-ttyUSB rw".to_owned()));
    assert_eq!(one(&unit, "CapabilityBoundingSet"), "");
}
