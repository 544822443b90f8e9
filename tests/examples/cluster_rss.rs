//! Memory of each service process of the split topology, idle and under a
//! floor's load: the figures the Kubernetes resource requests and limits
//! come from (docs/deploy.md, "Resources").
//!
//! ```sh
//! scripts/build-release.sh
//! MADOGUCHI_TEST_POSTGRES_URL=$(scripts/postgres.sh) \
//!   cargo run --release -p madoguchi-e2e --example cluster_rss -- 60
//! ```
//!
//! It starts the cluster of `tests/tests/cluster.rs` with the binary of the
//! same profile (so `--release` measures the release binary), reads every
//! process's resident set once idle, then for the given seconds (default
//! 60) drives four counters calling as fast as they can, one 書かない visit
//! after another (本人確認, request, PDF, a cash payment) and eight display
//! feeds, and reads the resident sets again with their peaks.

use std::time::{Duration, Instant};

use madoguchi::cli::Auth;
use madoguchi_e2e::cluster::{Cluster, Process, caller};
use madoguchi_e2e::{OFFICE, counter, okuyami, token};
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::pos::v1 as p;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::queue::v1 as q;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Name, resident set and its peak (KiB), CPU seconds so far.
fn memory(processes: &[&Process]) -> Vec<(String, u64, u64, f64)> {
    processes
        .iter()
        .map(|p| {
            let (rss, peak) = p.memory_kib().unwrap_or((0, 0));
            (p.name.clone(), rss, peak, p.cpu_seconds().unwrap_or(0.0))
        })
        .collect()
}

async fn visits(cluster_channel: tonic::transport::Channel, until: Instant) -> (u64, u64) {
    let auth =
        || Auth::bearer(&token(Role::Staff, "032034").token).unwrap_or_else(|e| panic!("{e}"));
    let mut queue =
        madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient::with_interceptor(
            cluster_channel.clone(),
            auth(),
        );
    let mut forms = FormsServiceClient::with_interceptor(cluster_channel.clone(), auth());
    let mut pos = PosServiceClient::with_interceptor(cluster_channel.clone(), auth());
    let register = format!("{OFFICE}/registers/r1");
    let _ = pos
        .open_register_session(p::OpenRegisterSessionRequest {
            register: register.clone(),
            float_yen: 30_000,
        })
        .await;
    let (mut done, mut failed) = (0, 0);
    while Instant::now() < until {
        let visit = async {
            queue
                .issue_ticket(madoguchi_e2e::issue("life-events", false))
                .await?;
            let ticket = queue
                .call_next(q::CallNextRequest {
                    counter: counter("3"),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .ticket
                .ok_or_else(|| tonic::Status::not_found("no ticket"))?;
            queue
                .start_service(q::StartServiceRequest {
                    name: ticket.name.clone(),
                    etag: String::new(),
                })
                .await?;
            let request =
                okuyami::draft_inheritance_request_on(cluster_channel.clone(), &ticket.name).await;
            let request = okuyami::confirm_request_on(cluster_channel.clone(), &request.name).await;
            forms
                .render_document(f::RenderDocumentRequest {
                    name: request.name.clone(),
                    kind: f::DocumentKind::CertificateApplication as i32,
                })
                .await?;
            let order = pos
                .create_order(p::CreateOrderRequest {
                    parent: OFFICE.into(),
                    certificate_request: request.name.clone(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            pos.create_payment(p::CreatePaymentRequest {
                order: order.name,
                register: register.clone(),
                method: p::PaymentMethod::Cash as i32,
                tendered_yen: 5_000,
                request_id: uuid::Uuid::new_v4().to_string(),
            })
            .await?;
            queue
                .finish_service(q::FinishServiceRequest {
                    name: ticket.name,
                    etag: String::new(),
                })
                .await?;
            Ok::<_, tonic::Status>(())
        };
        match visit.await {
            Ok(()) => done += 1,
            Err(status) => {
                failed += 1;
                eprintln!("visit failed: {status}");
            }
        }
    }
    (done, failed)
}

/// A display page's feed, read and thrown away until `until`.
async fn display(addr: std::net::SocketAddr, until: Instant) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let request = format!(
        "GET /signage/api/offices/main/feed HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut buffer = vec![0u8; 16 * 1024];
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let cluster = Cluster::start().await;
    let channel = cluster.channel().await;
    // Warm: one of everything, then a quiet moment.
    let until = Instant::now();
    let _ = visits(channel.clone(), until + Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = memory(&cluster.processes());

    let until = Instant::now() + Duration::from_secs(seconds);
    let signage = cluster.process("signage").addr;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (cat, at) in [
        ("certificates", "1"),
        ("insurance-pension", "4"),
        ("elderly-care-disability", "5"),
        ("children", "6"),
    ] {
        let staff = cluster.queue_client(Role::Staff).await;
        tasks.push(tokio::spawn(caller(staff, cat, at, stopped.clone())));
    }
    let displays: Vec<_> = (0..8)
        .map(|_| tokio::spawn(display(signage, until)))
        .collect();
    let (done, failed) = visits(channel.clone(), until).await;
    stop.send_replace(true);
    let mut called = 0;
    for t in tasks {
        called += t.await.map_or(0, |c| c.tickets.len());
    }
    for d in displays {
        let _ = d.await;
    }
    let loaded = memory(&cluster.processes());
    println!("{seconds} s: {called} calls, {done} visits ({failed} failed), 8 display feeds");
    println!("process      idle RSS   loaded RSS   peak RSS (MiB)   CPU under load (cores)");
    for ((name, idle_rss, _, cpu_before), (_, rss, peak, cpu_after)) in idle.iter().zip(&loaded) {
        println!(
            "{name:<10} {:>10.1} {:>12.1} {:>10.1} {:>16.2}",
            *idle_rss as f64 / 1024.0,
            *rss as f64 / 1024.0,
            *peak as f64 / 1024.0,
            (cpu_after - cpu_before) / seconds as f64
        );
    }
    cluster.stop().await;
}
