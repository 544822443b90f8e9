//! Two `madoguchi serve --service queue` processes on one PostgreSQL: what
//! one replica commits, a stream on the other delivers, live and on resume.

use std::process::Stdio;
use std::time::Duration;

use madoguchi::cli::Auth;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

const OFFICE: &str = "municipalities/032034/offices/main";
const STAFF_TOKEN: &str = "replica-test-staff-token";

async fn start_replica(
    config: &std::path::Path,
    database_url: &str,
    data_dir: &std::path::Path,
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_madoguchi"))
        .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
        .args([
            "serve",
            "--service",
            "queue",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start madoguchi: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.to_owned();
            }
        }
        panic!("replica exited before listening");
    })
    .await
    .unwrap_or_else(|_| panic!("replica did not start within 60 s"));
    (child, addr)
}

async fn client(
    addr: &str,
) -> QueueServiceClient<tonic::service::interceptor::InterceptedService<Channel, Auth>> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let auth =
        Auth::bearer(&SecretString::from(STAFF_TOKEN.to_owned())).unwrap_or_else(|e| panic!("{e}"));
    QueueServiceClient::with_interceptor(channel, auth)
}

fn issue(category: &str) -> pb::IssueTicketRequest {
    pb::IssueTicketRequest {
        parent: OFFICE.into(),
        category: format!("{OFFICE}/categories/{category}"),
        priority: false,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

async fn next(stream: &mut tonic::Streaming<pb::WatchOfficeResponse>) -> pb::OfficeEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap_or_else(|_| panic!("no event within 10 s"))
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|m| m.event)
        .unwrap_or_else(|| panic!("stream ended"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_one_replica_streams_from_the_other() {
    let database_url = madoguchi_platform::testing::fresh_postgres_database().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let site =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
    let config = dir.path().join("madoguchi.toml");
    std::fs::write(
        &config,
        format!(
            "site = \"{}\"\n[[tokens]]\ntoken = \"{STAFF_TOKEN}\"\nsubject = \"replica-test\"\nrole = \"staff\"\nmunicipality = \"032034\"\n",
            site.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Both start at once on an empty database: migrations must take turns.
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = tokio::join!(
        start_replica(&config, &database_url, &dir_a),
        start_replica(&config, &database_url, &dir_b),
    );
    let ((_replica_a, addr_a), (_replica_b, addr_b)) = (a, b);
    let mut on_a = client(&addr_a).await;
    let mut on_b = client(&addr_b).await;

    let mut stream = on_b
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let ticket = on_a
        .issue_ticket(issue("certificates"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let called = on_a
        .call_next(pb::CallNextRequest {
            counter: format!("{OFFICE}/counters/1"),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .ticket
        .unwrap_or_else(|| panic!("A001 waits"));
    assert_eq!(called.name, ticket.name);

    let issued = next(&mut stream).await;
    assert_eq!(
        (issued.sequence, issued.r#type),
        (1, pb::EventType::TicketIssued as i32)
    );
    let call = next(&mut stream).await;
    assert_eq!(
        (call.sequence, call.r#type),
        (2, pb::EventType::TicketCalled as i32)
    );
    assert_eq!(call.counter, format!("{OFFICE}/counters/1"));
    drop(stream);

    // Missed while disconnected, written on A and on B alternately.
    on_a.finish_service(pb::FinishServiceRequest {
        name: ticket.name.clone(),
        etag: String::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    on_b.issue_ticket(issue("children"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    on_a.issue_ticket(issue("life-events"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut resumed = on_b
        .watch_office(pb::WatchOfficeRequest {
            office: OFFICE.into(),
            after_sequence: 2,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(next(&mut resumed).await.sequence);
    }
    assert_eq!(missed, [3, 4, 5]);
    // Then live again, woken across processes by LISTEN/NOTIFY.
    on_a.issue_ticket(issue("children"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let live = next(&mut resumed).await;
    assert_eq!(live.sequence, 6);
    assert_eq!(
        live.ticket.map(|t| t.display_number).as_deref(),
        Some("E002")
    );
}
