//! The README's tour, through the real binaries: `madoguchi serve` on the
//! embedded default with generated credentials, and `madoguchi queue …`.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_madoguchi");

fn site() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml")
}

/// Runs `madoguchi queue <args>` against `server`, returning stdout.
fn queue(server: &str, data_dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(BIN)
        .arg("queue")
        .args(["--server", server])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("MADOGUCHI_TOKEN")
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_issue_call_and_finish_with_the_cli() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut server = tokio::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--site")
        .arg(site())
        .env_remove("MADOGUCHI_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = server.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("server exited");
    })
    .await
    .unwrap_or_else(|_| panic!("server did not start"));
    let url = format!("http://{addr}");
    let data = dir.path().to_owned();

    // Credentials were generated privately and the CLI finds them.
    let credentials = dir.path().join("credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    let out = tokio::task::spawn_blocking(move || {
        let q =
            |args: &[&str]| queue(&url, &data, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let issued = q(&["issue", "--category", "certificates"]);
        assert!(issued.contains("A001"), "{issued}");
        let priority = q(&["issue", "--category", "life-events", "--priority"]);
        assert!(priority.contains("B001"), "{priority}");
        let called = q(&["call-next", "--counter", "2"]);
        assert!(
            called.contains("B001") && called.contains("called"),
            "{called}"
        );
        q(&["start", "B001"]);
        let moved = q(&["transfer", "B001", "--category", "insurance-pension"]);
        assert!(
            moved.contains("insurance-pension") && moved.contains("waiting"),
            "{moved}"
        );
        q(&["call-next", "--counter", "4"]);
        let done = q(&["finish", "b001"]);
        assert!(done.contains("done"), "{done}");
        let legs = q(&["get", "B001"]);
        assert!(
            legs.contains("life-events") && legs.contains("insurance-pension"),
            "{legs}"
        );
        let status = q(&["status"]);
        assert!(
            status.contains("証明書") && status.contains("子ども・子育て"),
            "{status}"
        );
        let error = queue(&url, &data, &["issue", "--category", "Certificates!"])
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("InvalidArgument") && error.contains("category"),
            "{error}"
        );
        let unknown = queue(&url, &data, &["finish", "Z999"])
            .err()
            .unwrap_or_default();
        assert!(unknown.contains("no ticket Z999"), "{unknown}");
        q(&["list"])
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("A001") && out.contains("B001"), "{out}");

    // SIGTERM drains and exits cleanly.
    let pid = server.id().unwrap_or_else(|| panic!("pid"));
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(killed.map(|s| s.success()).unwrap_or(false));
    let status = tokio::time::timeout(Duration::from_secs(20), server.wait())
        .await
        .unwrap_or_else(|_| panic!("server did not stop on SIGTERM"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status:?}");
}
