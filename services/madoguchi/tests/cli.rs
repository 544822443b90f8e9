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

/// Starts `madoguchi serve` on port 0 with its data in `dir`; returns the
/// process and the server's URL once it listens.
async fn serve(dir: &std::path::Path) -> (tokio::process::Child, String) {
    let mut server = tokio::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
        .arg(dir)
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
    (server, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_issue_call_and_finish_with_the_cli() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut server, url) = serve(dir.path()).await;
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

/// The `device` token the server generated into the data directory.
fn device_token(data_dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("credentials.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let file: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
    file["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["role"].as_str() == Some("device"))
        .and_then(|t| t["token"].as_str())
        .unwrap_or_else(|| panic!("no device token"))
        .to_owned()
}

/// A ticket a kiosk printed from its lease while offline is marked in
/// `queue list` with the printing device, and `queue get` says which
/// device printed it and when it was imported (issue #23); a ticket issued
/// online carries no mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_tickets_are_marked_in_list_and_get() {
    use madoguchi_proto::queue::v1 as pb;

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_server, url) = serve(dir.path()).await;
    let data = dir.path().to_owned();
    let office = "municipalities/032034/offices/main";

    let online = {
        let (url, data) = (url.clone(), data.clone());
        tokio::task::spawn_blocking(move || {
            queue(&url, &data, &["issue", "--category", "certificates"])
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(online.contains("A001"), "{online}");

    // The kiosk leases numbers and imports a ticket it printed from them,
    // as the gateway does after an outage.
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", device_token(&data))
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut kiosk = pb::queue_service_client::QueueServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        },
    );
    let lease = kiosk
        .lease_numbers(pb::LeaseNumbersRequest {
            category: format!("{office}/categories/certificates"),
            device: "kiosk-k1".into(),
            count: 2,
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"))
        .into_inner();
    let printed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let results = kiosk
        .import_offline_tickets(pb::ImportOfflineTicketsRequest {
            parent: office.into(),
            tickets: vec![pb::OfflineTicket {
                offline_id: uuid::Uuid::new_v4().to_string(),
                lease: lease.name.clone(),
                number: lease.numbers[0],
                priority: false,
                issue_time: Some(madoguchi_proto::prost_types::Timestamp {
                    seconds: i64::try_from(printed.as_secs()).unwrap_or_default(),
                    nanos: 0,
                }),
            }],
        })
        .await
        .unwrap_or_else(|e| panic!("import: {e}"))
        .into_inner()
        .results;
    let imported = results[0]
        .ticket
        .clone()
        .unwrap_or_else(|| panic!("no ticket"));
    assert!(imported.issued_offline);
    let number = imported.display_number.clone();
    assert_ne!(number, "A001");

    let (list, get) = tokio::task::spawn_blocking(move || {
        let q =
            |args: &[&str]| queue(&url, &data, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        (q(&["list"]), q(&["get", &number]))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    assert!(list.contains("offline"), "{list}");
    let row = |number: &str| {
        list.lines()
            .find(|l| l.contains(number))
            .unwrap_or_else(|| panic!("{number} not listed:\n{list}"))
            .to_owned()
    };
    assert!(row(&imported.display_number).contains("kiosk-k1"), "{list}");
    assert!(!row("A001").contains("kiosk-k1"), "{list}");

    assert!(
        get.contains("printed offline by kiosk-k1") && get.contains("imported at"),
        "{get}"
    );
}
