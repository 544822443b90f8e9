//! `madoguchi-loadtest`: open-loop latency of `IssueTicket` and `CallNext`.
//!
//! Starts a real server in this process on 127.0.0.1:0 (SQLite in a
//! temporary directory, or a fresh PostgreSQL database), optionally seeds
//! a backlog of waiting tickets, then sends requests at a fixed rate over
//! loopback gRPC. Open loop: each request has an intended send time on a
//! fixed schedule and runs as a task of its own, so a slow response delays
//! no later request and hides nothing (no coordinated omission). Its
//! latency is measured from the moment its task sends it; how far the
//! generator fell behind the schedule (tokio's timer wakes it on
//! millisecond ticks) is printed with each phase as its worst lag, and a
//! run whose lag grows is void. Percentiles come from an HdrHistogram in
//! microseconds.
//!
//! Example: `cargo run --release -p madoguchi-loadtest -- --backend sqlite --rate 200 --seconds 20`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use madoguchi::cli::Auth;
use madoguchi::server::{ServiceSelection, start};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SystemClock;
use madoguchi_platform::config::{ServerConfig, TokenConfig};
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use secrecy::SecretString;
use tokio::sync::Mutex;
use tonic::transport::Channel;

mod gateway;
mod sink;

const OFFICE: &str = "municipalities/032034/offices/main";
const TOKEN: &str = "loadtest-staff-token";
const DEVICE_TOKEN: &str = "loadtest-device-token";
const DISPLAY_TOKEN: &str = "loadtest-display-token";
/// Boards on the simulated RS-485 line; counter `c` shows on board
/// `(c - 1) % BOARDS + 1`, so each board is written a few times a second.
const BOARDS: u64 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "Open-loop latency of IssueTicket and CallNext")]
struct Args {
    /// Storage backend; postgres needs MADOGUCHI_TEST_POSTGRES_URL.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Requests per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Waiting tickets seeded before the CallNext phase.
    #[arg(long, default_value_t = 10)]
    backlog: u32,
    /// Also measure through the edge gateway: CallNext → the call's frame
    /// applied by a simulated Modbus board on a pseudo-terminal, and a
    /// kiosk button press → the whole ticket received by the simulated
    /// printer.
    #[arg(long)]
    gateway: bool,
    /// Button presses per second of the kiosk phase (one printer prints
    /// one ticket at a time).
    #[arg(long, default_value_t = 10)]
    press_rate: u32,
    /// Export every span (100 % sampling) over OTLP to a receiver in this
    /// process, as a traced cluster would to its collector: the overhead
    /// of tracing on the call path. Without it nothing is exported.
    #[arg(long)]
    trace: bool,
}

fn bench_site(counters: u64) -> String {
    let mut site = String::from(
        "[municipality]\ncode = \"032034\"\nname_ja = \"大船渡市\"\nname_en = \"Ofunato City\"\nprefecture_ja = \"岩手県\"\n\n\
         [[offices]]\nid = \"main\"\nname_ja = \"負荷試験\"\nname_en = \"Load test\"\n\
         [offices.queue]\nmax_number = 999999\n\n\
         [[offices.categories]]\nid = \"issue\"\nprefix = \"A\"\nname_ja = \"発券\"\nname_en = \"Issue\"\ncolour = \"#E8833A\"\ndefault_service_minutes = 5\n\n\
         [[offices.categories]]\nid = \"call\"\nprefix = \"B\"\nname_ja = \"呼出\"\nname_en = \"Call\"\ncolour = \"#2E86C1\"\ndefault_service_minutes = 5\n",
    );
    for id in 1..=counters {
        site.push_str(&format!(
            "\n[[offices.counters]]\nid = \"{id}\"\ndisplay_number = \"{id}\"\nfloor = 1\ncolour = \"#2E86C1\"\ncategories = [\"call\"]\n"
        ));
    }
    site
}

/// The signage file of the bench site: the boards of one RS-485 line.
fn bench_boards(counters: u64) -> String {
    let mut text = String::from("[[offices]]\nid = \"main\"\n");
    for unit in 1..=BOARDS {
        let shown: Vec<String> = (1..=counters)
            .filter(|c| (c - 1) % BOARDS + 1 == unit)
            .map(|c| format!("\"{c}\""))
            .collect();
        text.push_str(&format!(
            "\n[[offices.boards]]\nid = \"board-{unit}\"\nline = \"bench\"\naddress = {unit}\ncounters = [{}]\nlocation_ja = \"負荷試験\"\n",
            shown.join(", ")
        ));
    }
    text
}

type Client = QueueServiceClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

fn issue(category: &str) -> pb::IssueTicketRequest {
    pb::IssueTicketRequest {
        parent: OFFICE.into(),
        category: format!("{OFFICE}/categories/{category}"),
        priority: false,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// Runs `requests` at `rate`/s, open loop, and returns latencies in µs
/// measured from each request's send time to its completion — the instant
/// the request reports (`Some`) when its outcome was observed by a device
/// before the future could finish, else when the future finished — the
/// count of errors by status,
/// and the generator's worst lag behind its schedule (if that grows, the
/// generator, not the server, was the bottleneck and the run is void).
async fn open_loop<F, Fut>(rate: u32, seconds: u32, request: F) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<Instant>>> + Send + 'static,
{
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let errors = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut worst_lag = Duration::ZERO;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let total = u64::from(rate) * u64::from(seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        worst_lag = worst_lag.max(intended.elapsed());
        let future = request(i);
        let histogram = histogram.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = future.await;
            let done = match &result {
                Ok(Some(observed)) => *observed,
                _ => Instant::now(),
            };
            let micros = done.saturating_duration_since(sent).as_micros() as u64;
            if let Err(error) = result {
                let key = match error.downcast_ref::<tonic::Status>() {
                    Some(status) => format!("{:?}: {}", status.code(), status.message()),
                    None => error.to_string(),
                };
                *errors.lock().await.entry(key).or_default() += 1;
            }
            histogram.lock().await.saturating_record(micros.max(1));
        }));
    }
    for task in tasks {
        task.await?;
    }
    let histogram = histogram.lock().await.clone();
    let errors = errors.lock().await.clone();
    Ok(Run {
        histogram,
        errors,
        worst_lag,
    })
}

/// The outcome of one open-loop phase.
#[derive(Debug)]
struct Run {
    histogram: Histogram<u64>,
    errors: std::collections::BTreeMap<String, u64>,
    worst_lag: Duration,
}

/// One phase's results, as the lines to print.
fn report(name: &str, run: &Run) -> Vec<String> {
    let histogram = &run.histogram;
    let errors: u64 = run.errors.values().sum();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let mut lines = vec![format!(
        "{name:<12} n={:<6} errors={errors:<4} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms (generator lag ≤ {:.1?})",
        histogram.len(),
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0,
        run.worst_lag,
    )];
    for (error, count) in &run.errors {
        lines.push(format!("    {count} × {error}"));
    }
    lines
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let received = if args.trace {
        let (endpoint, received) = sink::start().await?;
        Some((endpoint, received))
    } else {
        None
    };
    let endpoint = received.as_ref().map(|(e, _)| e.clone());
    let telemetry_config =
        madoguchi_platform::telemetry::TelemetryConfig::from_vars("madoguchi-loadtest", |name| {
            match name {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => endpoint.clone(),
                "OTEL_TRACES_SAMPLER" => Some("always_on".into()),
                other => std::env::var(other).ok(),
            }
        })
        .map_err(anyhow::Error::msg)?;
    let telemetry = madoguchi_platform::telemetry::init_with(&telemetry_config);
    let dir = tempfile::tempdir()?;
    let site = dir.path().join("site.toml");
    // One counter per call of the CallNext phase: no counter is reused, so
    // the phase is pure CallNext load (no FinishService in between).
    let calls = u64::from(args.rate) * u64::from(args.seconds);
    // One more counter (the last) warms the gateway's call follower up.
    std::fs::write(&site, bench_site(calls + 1))?;
    std::fs::write(dir.path().join("signage.toml"), bench_boards(calls + 1))?;
    let database_url = match args.backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        Backend::Postgres => madoguchi_platform::testing::fresh_postgres_database().await,
    };
    let config = ServerConfig {
        data_dir: dir.path().to_owned(),
        database_url: Some(SecretString::from(database_url.clone())),
        site: Some(site),
        tokens: [
            (TOKEN, Role::Staff),
            (DEVICE_TOKEN, Role::Device),
            (DISPLAY_TOKEN, Role::Display),
        ]
        .into_iter()
        .map(|(token, role)| {
            Ok(TokenConfig {
                token: SecretString::from(token.to_owned()),
                subject: format!("loadtest-{role}"),
                role,
                municipality: MunicipalityCode::parse("032034")?,
            })
        })
        .collect::<anyhow::Result<_>>()?,
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = start(
        &config,
        ServiceSelection::Floor,
        Arc::new(SystemClock),
        listener,
    )
    .await?;
    let channel = Channel::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let channel_for_health = channel.clone();
    let client: Client = QueueServiceClient::with_interceptor(
        channel,
        Auth::bearer(&SecretString::from(TOKEN.to_owned()))?,
    );

    println!(
        "backend={:?} rate={}/s seconds={} backlog={} tracing={}",
        args.backend,
        args.rate,
        args.seconds,
        args.backlog,
        if telemetry.exporting() {
            "exported at 100 %"
        } else {
            "off"
        }
    );

    // Backlog: waiting tickets in the category the counters call from, plus
    // one for each call of the phase, so the line never runs dry and ends
    // the phase at the requested size.
    let seed_start = Instant::now();
    let seeders: Vec<_> = (0..8)
        .map(|worker| {
            let mut client = client.clone();
            let total = u64::from(args.backlog) + calls + 1;
            let count = total / 8 + u64::from(worker < total % 8);
            tokio::spawn(async move {
                for _ in 0..count {
                    client.issue_ticket(issue("call")).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for seeder in seeders {
        seeder.await??;
    }
    println!(
        "seeded {} waiting tickets in {:.1?}",
        u64::from(args.backlog) + calls,
        seed_start.elapsed()
    );

    // The transport's floor: a health check through the same server stack
    // (HTTP/2, trace and auth layers), no storage.
    let health = tonic_health::pb::health_client::HealthClient::new(channel_for_health);
    let floor_run = open_loop(args.rate, args.seconds.min(5), |_| {
        let mut health = health.clone();
        async move {
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(None)
        }
    })
    .await?;
    // Printed once the floor and the server have stopped, so the results
    // are the last lines of the run, after anything they log.
    let mut results = report("Health", &floor_run);

    let issues = open_loop(args.rate, args.seconds, |_| {
        let mut client = client.clone();
        async move {
            client.issue_ticket(issue("issue")).await?;
            Ok(None)
        }
    })
    .await?;

    let floor = if args.gateway {
        let floor = gateway::Floor::start(server.addr, dir.path(), BOARDS).await?;
        // The follower is live once a call reaches its board.
        let mut warm = client.clone();
        let ticket = warm
            .call_next(pb::CallNextRequest {
                counter: format!("{OFFICE}/counters/{}", calls + 1),
                ..Default::default()
            })
            .await?
            .into_inner()
            .ticket
            .context("no ticket to warm up with")?;
        floor
            .boards
            .wait_for((calls % BOARDS + 1) as u8, &ticket.display_number)
            .await?;
        Some(floor)
    } else {
        None
    };

    let calls = open_loop(args.rate, args.seconds, |i| {
        let mut client = client.clone();
        let counter = format!("{OFFICE}/counters/{}", i + 1);
        let board = floor
            .as_ref()
            .map(|f| (f.boards.clone(), (i % BOARDS + 1) as u8));
        async move {
            let ticket = client
                .call_next(pb::CallNextRequest {
                    counter,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .ticket
                .context("backlog ran dry")?;
            // Through the gateway: done when the board simulator applied
            // the frame with the number, which may be before the call's
            // response reached this client (the metric is send → board;
            // the response's way back is not part of it).
            match board {
                Some((boards, unit)) => {
                    Ok(Some(boards.wait_for(unit, &ticket.display_number).await?))
                }
                None => Ok(None),
            }
        }
    })
    .await?;

    results.extend(report("IssueTicket", &issues));
    let label = if floor.is_some() {
        "CallNext→board"
    } else {
        "CallNext"
    };
    results.extend(report(label, &calls));
    if let Some(queue) = &server.queue {
        // How the calls found their ticket: from the line's window (the
        // write alone), by reading first, after a stale window, or under
        // the office's lock.
        let paths = queue.store().call_paths();
        results.push(format!(
            "{:<12} window={} read={} stale={} locked={}",
            "  paths", paths.window, paths.read, paths.stale, paths.locked
        ));
    }
    if let Some(floor) = floor {
        let presses = floor.press_phase(args.press_rate, args.seconds).await?;
        results.extend(report("button→ticket", &presses));
        floor.shutdown().await;
    }
    server.shutdown().await?;
    telemetry.shutdown();
    if let Some((_, received)) = &received {
        results.push(format!(
            "{:<12} exported={} dropped={} received={}",
            "  spans",
            madoguchi_platform::telemetry::spans_exported(),
            madoguchi_platform::telemetry::spans_dropped(),
            received.count()
        ));
    }
    if matches!(args.backend, Backend::Postgres) {
        madoguchi_platform::testing::drop_postgres_database(&database_url).await?;
    }
    for line in results {
        println!("{line}");
    }
    Ok(())
}
