//! The staff CLI: `madoguchi queue …`. It talks to a server over gRPC like
//! any other client, with a bearer token (`--token`, `MADOGUCHI_TOKEN`, or
//! the staff token from the local data directory).

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use madoguchi_platform::auth::Role;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Connection options shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(
        long,
        env = "MADOGUCHI_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token; defaults to the staff token in the data directory.
    #[arg(long, env = "MADOGUCHI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory of a local server, for its generated credentials.
    #[arg(long, env = "MADOGUCHI_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Office resource name.
    #[arg(
        long,
        env = "MADOGUCHI_OFFICE",
        default_value = "municipalities/032034/offices/main"
    )]
    pub office: String,
}

/// The municipality code of a resource name (`municipalities/032034/…`),
/// or the text itself when it is a bare code.
pub fn municipality_code(name: &str) -> &str {
    name.strip_prefix("municipalities/")
        .unwrap_or(name)
        .split('/')
        .next()
        .unwrap_or_default()
}

/// `madoguchi queue …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Issue a ticket (as a kiosk would).
    Issue {
        /// Category id (e.g. `certificates`) or resource name.
        #[arg(long, short)]
        category: String,
        /// Accessibility priority.
        #[arg(long)]
        priority: bool,
    },
    /// Call the next ticket to a counter.
    CallNext {
        /// Counter id (e.g. `1`) or resource name.
        #[arg(long)]
        counter: String,
        /// Categories to call from; default: the counter's own.
        #[arg(long, short)]
        category: Vec<String>,
    },
    /// Call a called ticket again.
    Recall {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// Start service of a called ticket.
    Start {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// Finish service.
    Finish {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// Mark a called ticket as not come.
    NoShow {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// Queue a ticket in another category.
    Transfer {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
        /// Category id or resource name.
        #[arg(long, short)]
        category: String,
    },
    /// Cancel a ticket.
    Cancel {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// Show one ticket with its legs.
    Get {
        /// Ticket: printed number (A001), id or resource name.
        ticket: String,
    },
    /// List today's tickets.
    List,
    /// Show queues and counters.
    Status,
    /// Follow the office's events.
    Watch {
        /// Start after this sequence (0: the whole log).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

type Client = QueueServiceClient<InterceptedService<Channel, Auth>>;

/// Adds the bearer token, and the current span's trace context, to every
/// request.
#[derive(Clone)]
pub struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(…)")
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        // The caller's trace continues on the server (nothing when traces
        // are not exported).
        madoguchi_platform::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

impl Auth {
    /// An interceptor sending `token`.
    pub fn bearer(token: &SecretString) -> anyhow::Result<Self> {
        let value = MetadataValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .context("token is not valid header text")?;
        Ok(Self(value))
    }
}

async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let token = match &args.token {
        Some(token) => SecretString::from(token.clone()),
        None => crate::credentials::token_for(&args.data_dir, Role::Staff, &args.office)?,
    };
    let channel = Channel::from_shared(args.server.clone())
        .context("invalid --server")?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    Ok(QueueServiceClient::with_interceptor(
        channel,
        Auth::bearer(&token)?,
    ))
}

fn child(args: &ClientArgs, collection: &str, id: &str) -> String {
    if id.starts_with("municipalities/") {
        id.to_owned()
    } else {
        format!("{}/{collection}/{id}", args.office)
    }
}

/// Resolves a ticket given as resource name, id or printed number; a
/// printed number means the active ticket of today with that number.
async fn resolve_ticket(
    client: &mut Client,
    args: &ClientArgs,
    ticket: &str,
) -> anyhow::Result<String> {
    if ticket.starts_with("municipalities/") {
        return Ok(ticket.to_owned());
    }
    if uuid::Uuid::parse_str(ticket).is_ok() {
        return Ok(child(args, "tickets", ticket));
    }
    let wanted = ticket.to_ascii_uppercase();
    let mut page_token = String::new();
    let mut found = None;
    loop {
        let page = client
            .list_tickets(pb::ListTicketsRequest {
                parent: args.office.clone(),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for t in page.tickets {
            let active = matches!(
                pb::TicketState::try_from(t.state),
                Ok(pb::TicketState::Waiting | pb::TicketState::Called | pb::TicketState::Serving)
            );
            if t.display_number == wanted && (active || found.is_none()) {
                found = Some(t.name);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    found.with_context(|| format!("no ticket {wanted} today"))
}

/// Runs one queue command and prints its result.
pub async fn run(args: ClientArgs, command: QueueCommand) -> anyhow::Result<()> {
    let mut client = connect(&args).await?;
    let request_id = || uuid::Uuid::new_v4().to_string();
    match command {
        QueueCommand::Issue { category, priority } => {
            let ticket = client
                .issue_ticket(pb::IssueTicketRequest {
                    parent: args.office.clone(),
                    category: child(&args, "categories", &category),
                    priority,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            print_ticket(&ticket);
        }
        QueueCommand::CallNext { counter, category } => {
            let response = client
                .call_next(pb::CallNextRequest {
                    counter: child(&args, "counters", &counter),
                    categories: category
                        .iter()
                        .map(|c| child(&args, "categories", c))
                        .collect(),
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            match response.ticket {
                Some(ticket) => print_ticket(&ticket),
                None => crate::outln!("nobody is waiting"),
            }
        }
        QueueCommand::Recall { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .recall(pb::RecallRequest {
                    name,
                    etag: String::new(),
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::Start { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .start_service(pb::StartServiceRequest {
                    name,
                    etag: String::new(),
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::Finish { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .finish_service(pb::FinishServiceRequest {
                    name,
                    etag: String::new(),
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::NoShow { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .mark_no_show(pb::MarkNoShowRequest {
                    name,
                    etag: String::new(),
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::Transfer { ticket, category } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .transfer(pb::TransferRequest {
                    name,
                    category: child(&args, "categories", &category),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::Cancel { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client
                .cancel_ticket(pb::CancelTicketRequest {
                    name,
                    etag: String::new(),
                    ..Default::default()
                })
                .await?;
            print_ticket(t.get_ref());
        }
        QueueCommand::Get { ticket } => {
            let name = resolve_ticket(&mut client, &args, &ticket).await?;
            let t = client.get_ticket(pb::GetTicketRequest { name }).await?;
            print_ticket(t.get_ref());
            print_legs(t.get_ref());
        }
        QueueCommand::List => {
            let mut table = table(&["番号", "state", "category", "counter", "issued", "offline"]);
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_tickets(pb::ListTicketsRequest {
                        parent: args.office.clone(),
                        page_size: 1000,
                        page_token,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                for t in &page.tickets {
                    table.add_row(vec![
                        t.display_number.clone(),
                        state_name(t.state).to_owned(),
                        last_segment(&t.current_category).to_owned(),
                        last_segment(&t.current_counter).to_owned(),
                        time_of(t.issue_time.as_ref()),
                        offline_mark(t),
                    ]);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            crate::outln!("{table}");
        }
        QueueCommand::Status => {
            let status = client
                .get_office_status(pb::GetOfficeStatusRequest {
                    name: args.office.clone(),
                })
                .await?
                .into_inner();
            crate::outln!("{} — {}", status.display_name, status.name);
            let mut categories = table(&[
                "",
                "category",
                "waiting",
                "issued today",
                "wait (min)",
                "counters",
            ]);
            for c in &status.categories {
                let estimate = c
                    .wait_estimate
                    .as_ref()
                    .map(|e| format!("{}–{}", e.min_minutes, e.max_minutes))
                    .unwrap_or_default();
                let open = c.wait_estimate.as_ref().map_or(0, |e| e.open_counters);
                categories.add_row(vec![
                    c.prefix.clone(),
                    c.display_name_ja.clone(),
                    c.waiting.to_string(),
                    c.issued_today.to_string(),
                    estimate,
                    open.to_string(),
                ]);
            }
            crate::outln!("{categories}");
            let mut counters = table(&["counter", "floor", "serves", "ticket", "state"]);
            for k in &status.counters {
                let (number, state) = k
                    .current_ticket
                    .as_ref()
                    .map(|t| (t.display_number.clone(), state_name(t.state).to_owned()))
                    .unwrap_or_default();
                counters.add_row(vec![
                    k.display_number.clone(),
                    format!("{}F", k.floor),
                    k.categories
                        .iter()
                        .map(|c| last_segment(c))
                        .collect::<Vec<_>>()
                        .join(", "),
                    number,
                    state,
                ]);
            }
            crate::outln!("{counters}");
        }
        QueueCommand::Watch { after } => {
            let mut stream = client
                .watch_office(pb::WatchOfficeRequest {
                    office: args.office.clone(),
                    after_sequence: after,
                })
                .await?
                .into_inner();
            while let Some(message) = stream.message().await? {
                let Some(event) = message.event else { continue };
                let ticket = event.ticket.unwrap_or_default();
                crate::outln!(
                    "{:>6}  {}  {:<18} {:<5} {}",
                    event.sequence,
                    time_of(event.event_time.as_ref()),
                    event_name(event.r#type),
                    ticket.display_number,
                    last_segment(&event.counter),
                );
            }
        }
    }
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn time_of(ts: Option<&madoguchi_proto::prost_types::Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| {
            t.with_timezone(&madoguchi_platform::types::JAPAN_STANDARD_TIME)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn state_name(state: i32) -> &'static str {
    match pb::TicketState::try_from(state) {
        Ok(pb::TicketState::Waiting) => "waiting",
        Ok(pb::TicketState::Called) => "called",
        Ok(pb::TicketState::Serving) => "serving",
        Ok(pb::TicketState::Done) => "done",
        Ok(pb::TicketState::NoShow) => "no-show",
        Ok(pb::TicketState::Cancelled) => "cancelled",
        _ => "?",
    }
}

fn event_name(event_type: i32) -> &'static str {
    match pb::EventType::try_from(event_type) {
        Ok(pb::EventType::TicketIssued) => "issued",
        Ok(pb::EventType::TicketCalled) => "called",
        Ok(pb::EventType::TicketRecalled) => "recalled",
        Ok(pb::EventType::ServiceStarted) => "service started",
        Ok(pb::EventType::ServiceFinished) => "service finished",
        Ok(pb::EventType::TicketTransferred) => "transferred",
        Ok(pb::EventType::TicketNoShow) => "no-show",
        Ok(pb::EventType::TicketCancelled) => "cancelled",
        _ => "?",
    }
}

fn print_ticket(t: &pb::Ticket) {
    let mut table = table(&[
        "番号",
        "state",
        "category",
        "counter",
        "ahead",
        "wait (min)",
        "issued",
    ]);
    let wait = t
        .wait_estimate
        .as_ref()
        .map(|e| format!("{}–{}", e.min_minutes, e.max_minutes))
        .unwrap_or_default();
    table.add_row(vec![
        t.display_number.clone(),
        state_name(t.state).to_owned(),
        last_segment(&t.current_category).to_owned(),
        last_segment(&t.current_counter).to_owned(),
        if t.state == pb::TicketState::Waiting as i32 {
            t.people_ahead.to_string()
        } else {
            String::new()
        },
        wait,
        time_of(t.issue_time.as_ref()),
    ]);
    crate::outln!("{table}");
    if t.issued_offline {
        crate::outln!(
            "printed offline by {} at {}, imported at {}",
            t.issuing_device,
            time_of(t.issue_time.as_ref()),
            time_of(t.import_time.as_ref()),
        );
    }
}

/// The list's mark for a ticket a device printed from a lease while the
/// cluster was unreachable: the printing device; empty for the others.
fn offline_mark(t: &pb::Ticket) -> String {
    if !t.issued_offline {
        return String::new();
    }
    if t.issuing_device.is_empty() {
        "yes".to_owned()
    } else {
        t.issuing_device.clone()
    }
}

fn print_legs(t: &pb::Ticket) {
    let mut table = table(&[
        "leg",
        "category",
        "counter",
        "queued",
        "called",
        "wait (s)",
        "service (s)",
    ]);
    for (i, leg) in t.legs.iter().enumerate() {
        table.add_row(vec![
            (i + 1).to_string(),
            last_segment(&leg.category).to_owned(),
            last_segment(&leg.counter).to_owned(),
            time_of(leg.enqueue_time.as_ref()),
            time_of(leg.call_time.as_ref()),
            leg.wait_duration
                .as_ref()
                .map(|d| d.seconds.to_string())
                .unwrap_or_default(),
            leg.service_duration
                .as_ref()
                .map(|d| d.seconds.to_string())
                .unwrap_or_default(),
        ]);
    }
    crate::outln!("{table}");
}

/// Fails with a readable message for a gRPC error.
pub fn describe(error: &anyhow::Error) -> String {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        use tonic_types::StatusExt;
        let mut text = format!("{:?}: {}", status.code(), status.message());
        if let Some(bad) = status.get_details_bad_request() {
            for v in bad.field_violations {
                text.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
        if let Some(failure) = status.get_details_precondition_failure() {
            for v in failure.violations {
                text.push_str(&format!(
                    "\n  {} {}: {}",
                    v.subject, v.r#type, v.description
                ));
            }
        }
        return text;
    }
    format!("{error:#}")
}
