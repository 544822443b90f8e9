//! `madoguchi-gateway --simulate` stops on SIGTERM and SIGINT while its
//! standard input stays open: the process, not a library call, because
//! what kept it alive was the runtime waiting for a blocked stdin read as
//! it shut down (issue #23).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// An upper bound, not a wait: the gateway drains in well under a second.
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Starts the simulated floor of one kiosk against a cluster that is not
/// there (it runs offline), with stdin a pipe this test keeps open, and
/// returns once it has printed its prompt (its signal handlers are set by
/// then).
fn start_simulated_floor(dir: &tempfile::TempDir) -> Child {
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
state = "{state}"

[cluster]
endpoint = "http://127.0.0.1:1"
office = "municipalities/032034/offices/main"
token = "simulate-signal-test"

[[kiosks]]
id = "k1"
printer = {{ path = "printer", baud = 19200 }}
panel = {{ path = "panel", baud = 9600 }}

[kiosks.buttons]
1 = "certificates"
"#,
            state = dir.path().join("gateway.db").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_madoguchi-gateway"))
        .arg("--config")
        .arg(&config)
        .arg("--simulate")
        .env("MADOGUCHI_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the prompt so the gateway never blocks on a
        // full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("type a button number") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(EXIT_WITHIN)
        .expect("the simulated floor never printed its prompt");
    child
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits for the child to exit, at most [`EXIT_WITHIN`]; kills it and
/// fails otherwise.
fn exit_status_within(mut child: Child) -> std::process::ExitStatus {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    // `Child::wait` closes the child's stdin first: keep our end open
    // until the process is gone, the point of the test.
    let stdin = child.stdin.take();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let outcome = rx.recv_timeout(EXIT_WITHIN);
    drop(stdin);
    match outcome {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("the simulated floor did not stop within {EXIT_WITHIN:?} of the signal");
        }
    }
}

#[test]
fn sigterm_stops_the_simulated_floor_while_stdin_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_simulated_floor(&dir);
    send(&child, "TERM");
    let status = exit_status_within(child);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigint_stops_the_simulated_floor_while_stdin_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_simulated_floor(&dir);
    send(&child, "INT");
    let status = exit_status_within(child);
    assert!(status.success(), "exit status {status:?}");
}
