//! `madoguchi serve` refuses a configuration it cannot run with, and says
//! which setting to set: a site file that is not there (a server started
//! outside the repository, or a ConfigMap not mounted), and, for a
//! one-service process (a replica among several), anything replicas must
//! share that it would otherwise generate for itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_madoguchi");

fn repo_site() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml")
}

/// Runs `madoguchi serve` in `cwd` with only `env` (and PATH), on port 0.
fn serve(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run madoguchi: {e}"))
}

fn refused(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "started although it should not have: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn credentials(dir: &Path) -> PathBuf {
    let path = dir.join("credentials.toml");
    std::fs::write(
        &path,
        "[[tokens]]\ntoken = \"replica-token-staff\"\nsubject = \"s\"\nrole = \"staff\"\nmunicipality = \"032034\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn a_missing_site_names_the_settings_that_point_to_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let stderr = refused(&serve(dir.path(), &[], &[]));
    for needed in [
        "sites/ofunato/site.toml not found",
        "MADOGUCHI_SITE",
        "--site",
    ] {
        assert!(stderr.contains(needed), "{needed} not in: {stderr}");
    }
    assert!(
        stderr.matches("os error").count() <= 1,
        "the OS error twice: {stderr}"
    );
    // The same through the variable, pointing at a ConfigMap not mounted.
    let stderr = refused(&serve(
        dir.path(),
        &[],
        &[("MADOGUCHI_SITE", "/etc/madoguchi/site/site.toml")],
    ));
    assert!(
        stderr.contains("/etc/madoguchi/site/site.toml not found"),
        "{stderr}"
    );
}

#[test]
fn a_replica_without_shared_tokens_refuses_to_make_its_own() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let site = repo_site();
    let site = site.to_str().unwrap_or_default();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap_or_default();
    let stderr = refused(&serve(
        dir.path(),
        &["--service", "queue", "--site", site, "--data-dir", data],
        &[],
    ));
    assert!(stderr.contains("MADOGUCHI_CREDENTIALS_FILE"), "{stderr}");
    assert!(
        !dir.path().join("data/credentials.toml").exists(),
        "it generated tokens no other replica knows"
    );
}

/// A `--service` replica given tokens but not `setting` refuses to start,
/// names the setting, and leaves no `generated` file in its data directory.
fn replica_refuses_without(service: &str, setting: &str, generated: &str) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = credentials(dir.path());
    let site = repo_site();
    let data = dir.path().join("data");
    let stderr = refused(&serve(
        dir.path(),
        &[
            "--service",
            service,
            "--site",
            site.to_str().unwrap_or_default(),
            "--data-dir",
            data.to_str().unwrap_or_default(),
        ],
        &[(
            "MADOGUCHI_CREDENTIALS_FILE",
            file.to_str().unwrap_or_default(),
        )],
    ));
    assert!(stderr.contains(setting), "{setting} not in: {stderr}");
    assert!(
        !data.join(generated).exists(),
        "{service} generated {generated} for itself"
    );
}

#[test]
fn an_identity_replica_without_the_shared_key_refuses_to_make_its_own() {
    replica_refuses_without("identity", "MADOGUCHI_IDENTITY_KEY", "identity.key");
}

#[test]
fn a_signage_replica_without_the_shared_secret_refuses_to_make_its_own() {
    replica_refuses_without("signage", "MADOGUCHI_SIGNAGE_SECRET", "signage-secret");
}
