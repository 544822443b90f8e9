//! `madoguchi`: run the server, or talk to one as counter staff.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use madoguchi::cli::{self, ClientArgs, QueueCommand};
use madoguchi::server::{self, ServiceSelection};
use madoguchi_platform::clock::SystemClock;
use madoguchi_platform::config::{ProcessEnvironment, ServerConfig};
use secrecy::SecretString;
use tracing::Instrument as _;

#[derive(Debug, Parser)]
#[command(
    name = "madoguchi",
    version,
    about = "Madoguchi — the city hall counter floor"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (every service on one port by default).
    Serve {
        /// Configuration file (TOML); variables MADOGUCHI_* override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Which services to host.
        #[arg(long, value_enum, default_value = "all")]
        service: ServiceSelection,
        /// Database URL (sqlite://… or postgres://…).
        #[arg(long, hide_env_values = true)]
        database_url: Option<String>,
        /// Listen address, e.g. 127.0.0.1:50051 (port 0 picks a free one).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory for the embedded database and credentials.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Site file describing the municipality's floor: served alone,
        /// instead of the configured sites (the embedded default serves
        /// both sample municipalities).
        #[arg(long)]
        site: Option<PathBuf>,
    },
    /// A stand-in for the cluster's edge proxy on one machine (for
    /// scripts/cluster-local.sh; a cluster uses its Gateway API routes).
    Edge {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// PREFIX=TARGET, e.g. /madoguchi.queue.v1.QueueService/=ipv4:127.0.0.1:50061,127.0.0.1:50062
        /// (repeat; the first matching prefix wins).
        #[arg(long = "route", required = true, value_parser = madoguchi::edge::parse_route)]
        routes: Vec<(String, String)>,
    },
    /// Queue commands for counter staff and demos.
    Queue {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Identity for counter staff: find a resident, verify a visitor, check a proxy.
    Identity {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: madoguchi::identity_cli::IdentityCommand,
    },
    /// The 書かない counter: verify, navigate, checklist, certificates, sign, print.
    Visit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: madoguchi::visit_cli::VisitCommand,
    },
    /// The site's procedure catalog, read locally: `catalog explain EVENT
    /// --resident ID` shows why each procedure is on the checklist or not.
    Catalog {
        #[command(subcommand)]
        command: madoguchi::catalog_cli::CatalogCommand,
    },
    /// A site directory, read locally: `site check DIR` checks every file
    /// and every reference between them, as a server and a floor gateway
    /// would read them.
    Site {
        #[command(subcommand)]
        command: madoguchi::site_check::SiteCommand,
    },
    /// Prints a generated bearer token of the embedded default
    /// (`data_dir/credentials.toml`), for grpcurl and scripts: one per
    /// role and municipality.
    Token {
        /// admin, staff, supervisor, device, display or integrator.
        #[arg(value_parser = parse_role)]
        role: madoguchi_platform::auth::Role,
        /// The municipality code (default 大船渡市, 032034) or a resource
        /// name under it.
        #[arg(long, short, default_value = "032034")]
        municipality: String,
        /// Data directory of the local server.
        #[arg(long, env = "MADOGUCHI_DATA_DIR", default_value = ".data")]
        data_dir: PathBuf,
    },
}

/// A role as written in `credentials.toml` (`staff`, `device`, …).
fn parse_role(text: &str) -> Result<madoguchi_platform::auth::Role, String> {
    #[derive(serde::Deserialize)]
    struct Wrapped {
        role: madoguchi_platform::auth::Role,
    }
    toml::from_str::<Wrapped>(&format!("role = {text:?}"))
        .map(|w| w.role)
        .map_err(|_| "expected admin, staff, supervisor, device, display or integrator".to_owned())
}

/// The service name traces carry when `OTEL_SERVICE_NAME` is not set.
fn service_name(command: &Command) -> String {
    match command {
        Command::Serve { service, .. } => match service {
            ServiceSelection::All => "madoguchi".to_owned(),
            other => format!(
                "madoguchi-{}",
                clap::ValueEnum::to_possible_value(other)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            ),
        },
        Command::Edge { .. } => "madoguchi-edge".to_owned(),
        _ => "madoguchi-cli".to_owned(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP client runs on the runtime; the handle flushes on drop.
    let telemetry = {
        let _runtime = runtime.enter();
        madoguchi_platform::telemetry::init(&service_name(&args.command))
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve {
                config,
                service,
                database_url,
                listen,
                data_dir,
                site,
            } => {
                let mut config = ServerConfig::load(config.as_deref(), &ProcessEnvironment)?;
                if let Some(url) = database_url {
                    config.database_url = Some(SecretString::from(url));
                }
                if let Some(listen) = listen {
                    config.listen = listen;
                }
                if let Some(dir) = data_dir {
                    config.data_dir = dir;
                }
                if let Some(site) = site {
                    config.site = Some(site);
                    config.sites = None;
                }
                let listener = tokio::net::TcpListener::bind(config.listen).await?;
                let admin = match config.admin_listen {
                    Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                        anyhow::anyhow!(
                            "admin port {addr}: {e} (set MADOGUCHI_ADMIN_LISTEN to another \
                             host:port, or off)"
                        )
                    })?),
                    None => None,
                };
                let running =
                    server::start(&config, service, Arc::new(SystemClock), listener).await?;
                // Tests and scripts read the bound ports from these lines,
                // the gRPC port's last: a reader may stop there and close
                // the pipe, which must not take the server down.
                let say = |line: String| {
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                };
                let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
                if let Some(admin) = admin {
                    say(format!("admin on {}", admin.local_addr()?));
                    let metrics = running.metrics.clone();
                    tokio::spawn(async move {
                        let stopped = async {
                            let _ = admin_stopped.await;
                        };
                        if let Err(error) = metrics.serve(admin, stopped).await {
                            tracing::error!(%error, "admin port failed");
                        }
                    });
                }
                say(format!("listening on {}", running.addr));
                let result = running
                    .run_until(madoguchi_platform::server::termination_signal())
                    .await;
                let _ = admin_stop.send(());
                result
            }
            Command::Edge { listen, routes } => {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                let edge =
                    madoguchi::edge::Edge::start(listener, routes).map_err(anyhow::Error::msg)?;
                println!("listening on {}", edge.addr);
                madoguchi_platform::server::termination_signal().await;
                Ok(())
            }
            // Each command is the root of its trace: the servers' spans
            // hang under it when traces are exported.
            Command::Queue { client, command } => {
                cli::run(client, command)
                    .instrument(tracing::info_span!("madoguchi queue", otel.kind = "client"))
                    .await
            }
            Command::Visit { client, command } => {
                madoguchi::visit_cli::run(client, command)
                    .instrument(tracing::info_span!("madoguchi visit", otel.kind = "client"))
                    .await
            }
            Command::Identity { client, command } => {
                madoguchi::identity_cli::run(client, command)
                    .instrument(tracing::info_span!(
                        "madoguchi identity",
                        otel.kind = "client"
                    ))
                    .await
            }
            Command::Catalog { command } => madoguchi::catalog_cli::run(command),
            Command::Site { command } => madoguchi::site_check::run(command),
            Command::Token {
                role,
                municipality,
                data_dir,
            } => {
                let token = madoguchi::credentials::token_for(&data_dir, role, &municipality)?;
                madoguchi::outln!("{}", secrecy::ExposeSecret::expose_secret(&token));
                Ok(())
            }
        }
    });
    {
        let _runtime = runtime.enter();
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::describe(&error));
            ExitCode::FAILURE
        }
    }
}
