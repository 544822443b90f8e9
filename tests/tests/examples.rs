//! The client examples (`examples/`) run against a real server on port 0
//! with the integrator's test token, as an integrator would run them; each
//! must finish and print what it observed, and the server must agree.
//!
//! Their toolchains come from `scripts/examples-setup.sh` (run by
//! `scripts/test.sh`); without them these tests fail, naming the script.

use std::path::{Path, PathBuf};
use std::time::Duration;

use madoguchi_e2e::*;
use madoguchi_platform::auth::Role;
use tokio::process::Command;

/// An example's whole run, stubs generation included.
const EXAMPLE_DEADLINE: Duration = Duration::from_secs(180);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require(path: &Path) {
    assert!(
        path.exists(),
        "{} is missing: run scripts/examples-setup.sh",
        path.display()
    );
}

/// Runs `command` to completion; its stdout, or a panic with both streams.
async fn output_of(mut command: Command, what: &str) -> String {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(EXAMPLE_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in {EXAMPLE_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// What both examples print for the same scripted run on a fresh server.
fn assert_the_scripted_run(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "watch: 1 TICKET_ISSUED A001",
        "disconnected after sequence 1",
        "issued A002 while disconnected",
        "issued A003 while disconnected",
        "resumed: 2 TICKET_ISSUED A002",
        "resumed: 3 TICKET_ISSUED A003",
        "resume ok: sequences 2..3, none missed or repeated",
        "status: A Certificates: 3 waiting",
        "permission denied: CallNext (ROLE_NOT_ALLOWED): role integrator may not do this",
        "done",
    ] {
        assert!(lines.contains(&expected), "no {expected:?} in:\n{stdout}");
    }
    // Exactly the three events, each once: nothing replayed on resume.
    let events = lines
        .iter()
        .filter(|l| l.starts_with("watch: ") || l.starts_with("resumed: "))
        .count();
    assert_eq!(events, 3, "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("issued A001 (municipalities/032034/offices/main/tickets/")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("invalid argument: category: ")),
        "no field violation of `category` in:\n{stdout}"
    );
}

/// The server's own view after the run: the three tickets wait.
async fn assert_three_waiting(t: &TestServer) {
    let status = t
        .client(Role::Staff)
        .await
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let certificates = status
        .categories
        .iter()
        .find(|c| c.name == category("certificates"))
        .unwrap_or_else(|| panic!("no certificates category"));
    assert_eq!(certificates.waiting, 3);
}

fn integrator_token() -> String {
    use secrecy::ExposeSecret;
    token(Role::Integrator, "032034")
        .token
        .expose_secret()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_runs_against_the_server() {
    let root = repository();
    let python = root.join(".ci/tools/examples-venv/bin/python");
    require(&python);
    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let mut command = Command::new(python);
    command
        .arg(root.join("examples/python/queue_client.py"))
        .args(["--server", &t.server.addr.to_string()])
        .args(["--token", &integrator_token()])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let stdout = output_of(command, "examples/python/queue_client.py").await;
    assert_the_scripted_run(&stdout);
    // grpcio-reflection speaks only v1alpha: the list proves it answers,
    // with exactly the services the all-in-one server serves.
    assert!(
        stdout.lines().any(|l| l
            == "services (reflection v1alpha): grpc.health.v1.Health, \
                grpc.reflection.v1.ServerReflection, grpc.reflection.v1alpha.ServerReflection, \
                madoguchi.forms.v1.FormsService, madoguchi.identity.v1.IdentityService, \
                madoguchi.pos.v1.PosService, madoguchi.queue.v1.QueueService, \
                madoguchi.signage.v1.SignageService"),
        "{stdout}"
    );
    assert_three_waiting(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_example_runs_against_the_server() {
    let dir = repository().join("examples/typescript");
    require(&dir.join("node_modules/.bin/tsc"));
    // Stubs from today's proto/, compiled with the example: a proto change
    // that breaks the example fails here.
    let mut build = Command::new("npm");
    build.args(["run", "--silent", "build"]).current_dir(&dir);
    output_of(build, "npm run build (examples/typescript)").await;

    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let mut command = Command::new("node");
    command
        .arg("dist/src/queue_client.js")
        .args(["--server", &t.server.addr.to_string()])
        .args(["--token", &integrator_token()])
        .current_dir(&dir);
    let stdout = output_of(command, "examples/typescript").await;
    assert_the_scripted_run(&stdout);
    assert_three_waiting(&t).await;
}
