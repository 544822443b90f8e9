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
        /// Site file describing the municipality's floor.
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
}

fn main() -> ExitCode {
    madoguchi_platform::telemetry::init();
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
                    config.site = site;
                }
                let listener = tokio::net::TcpListener::bind(config.listen).await?;
                let running =
                    server::start(&config, service, Arc::new(SystemClock), listener).await?;
                // Tests and scripts read the bound port from this line.
                println!("listening on {}", running.addr);
                running
                    .run_until(madoguchi_platform::server::termination_signal())
                    .await
            }
            Command::Edge { listen, routes } => {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                let edge =
                    madoguchi::edge::Edge::start(listener, routes).map_err(anyhow::Error::msg)?;
                println!("listening on {}", edge.addr);
                madoguchi_platform::server::termination_signal().await;
                Ok(())
            }
            Command::Queue { client, command } => cli::run(client, command).await,
            Command::Visit { client, command } => madoguchi::visit_cli::run(client, command).await,
            Command::Identity { client, command } => {
                madoguchi::identity_cli::run(client, command).await
            }
            Command::Catalog { command } => madoguchi::catalog_cli::run(command),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::describe(&error));
            ExitCode::FAILURE
        }
    }
}
