//! The 書かない counter from the command line: `madoguchi visit …`. A
//! staff member verifies the visitor (identity service), opens a visit,
//! runs the life-event navigator, works the checklist, fills the unified
//! certificate request, takes the one signature, prints, and completes the
//! visit — all over gRPC like any other client.

use std::path::PathBuf;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use madoguchi_platform::auth::Role;
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::queue::v1 as q;
use madoguchi_proto::queue::v1::queue_service_client::QueueServiceClient;
use madoguchi_proto::types::v1::{Date, JapaneseName};
use secrecy::SecretString;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cli::{Auth, ClientArgs};

/// `madoguchi visit …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum VisitCommand {
    /// Verify the visitor's identity (本人確認) and open a visit.
    Start {
        /// The visitor's resident id in the registry (宛名番号), if any.
        #[arg(long)]
        resident: Option<String>,
        /// Family name as on the documents.
        #[arg(long)]
        family: String,
        /// Given name as on the documents.
        #[arg(long)]
        given: String,
        /// Birth date: 昭和47年10月31日, S47.10.31 or 1972-10-31.
        #[arg(long)]
        birth: String,
        /// Document kinds shown (identity.toml ids), e.g. my-number-card.
        #[arg(long = "document", required = true)]
        documents: Vec<String>,
        /// The visitor's ticket: printed number (B001) or resource name.
        #[arg(long)]
        ticket: Option<String>,
    },
    /// Run the life-event navigator (手続ナビ) for a visit.
    Navigate {
        /// Visit id or resource name.
        visit: String,
        /// Life event id: death, move-out, move-in, relocation, birth, marriage, divorce.
        #[arg(long)]
        event: String,
        /// The person the event is about (resident id).
        #[arg(
            long,
            required_unless_present = "household",
            conflicts_with = "household"
        )]
        subject: Option<String>,
        /// For an event before registration (a 転入, a birth): a TOML file
        /// of the household the visitor declares — `subject` (index),
        /// `[address]` (the 転入先) and `[[members]]` (names, `birth_date`,
        /// `relation`, `insurance`, `school_year`, `source`); see
        /// docs/catalog.md.
        #[arg(long)]
        household: Option<PathBuf>,
        /// Event date (和暦 or ISO); default: the registry's date of death, or today.
        #[arg(long)]
        date: Option<String>,
        /// Interview answers `question=value`; person answers take a resident id.
        #[arg(long = "answer")]
        answers: Vec<String>,
        /// The visitor's relationship to a person: `resident-id=spouse|lineal|other`.
        #[arg(long = "relation")]
        relations: Vec<String>,
    },
    /// Show a visit: checklist, flags, requests, signatures.
    Show {
        /// Visit id or resource name.
        visit: String,
    },
    /// Set a checklist item's status (未/済/対象外/後日).
    Set {
        /// Visit id or resource name.
        visit: String,
        /// Procedure id of the item.
        procedure: String,
        /// pending, done, not-applicable or later.
        #[arg(long)]
        status: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
        /// Counter id of the staff member.
        #[arg(long)]
        counter: Option<String>,
    },
    /// Record the 委任状 the visitor brought (replaces those recorded); the
    /// items and certificate lines for the delegator are decided again.
    Proxy {
        /// Visit id or resource name.
        visit: String,
        /// The delegator (委任者), resident id.
        #[arg(long)]
        from: String,
        /// Procedures and certificate kinds the letter lists, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// The date written on the letter (和暦 or ISO).
        #[arg(long)]
        date: String,
    },
    /// Send the visit's ticket to the item's department.
    Transfer {
        /// Visit id or resource name.
        visit: String,
        /// Procedure id of the item.
        procedure: String,
    },
    /// Fill the unified certificate request and confirm it.
    Certificates {
        /// Visit id or resource name.
        visit: String,
        /// `subject-resident-id:kind:copies:purpose[:option,option]`.
        #[arg(long = "line", required = true)]
        lines: Vec<String>,
        /// The visitor's relationship to the subjects: self, spouse, lineal, other.
        #[arg(long, default_value = "self")]
        relation: String,
    },
    /// Record the resident's one signature (a demo stroke; tablets send theirs).
    Sign {
        /// Visit id or resource name.
        visit: String,
    },
    /// Print a visit's checklist, or with --request its certificate application.
    Print {
        /// Visit id or resource name.
        visit: String,
        /// Certificate request id.
        #[arg(long, conflicts_with = "move_in")]
        request: Option<String>,
        /// The 住民異動届 of a 転入 navigated from a declared household,
        /// instead of the checklist.
        #[arg(long)]
        move_in: bool,
        /// Output PDF file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Complete the visit; print the still-open items.
    Complete {
        /// Visit id or resource name.
        visit: String,
        /// Output PDF of the open items.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// KPIs of one visit.
    Kpis {
        /// Visit id or resource name.
        visit: String,
    },
    /// Export the KPIs of a period as CSV.
    Export {
        /// First business day (YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// Last business day (YYYY-MM-DD).
        #[arg(long)]
        to: String,
        /// Output CSV file.
        #[arg(long, short)]
        out: PathBuf,
    },
}

type Forms = FormsServiceClient<InterceptedService<Channel, Auth>>;

struct Clients {
    forms: Forms,
    identity: IdentityServiceClient<InterceptedService<Channel, Auth>>,
    queue: QueueServiceClient<InterceptedService<Channel, Auth>>,
}

async fn connect(args: &ClientArgs) -> anyhow::Result<Clients> {
    let token = match &args.token {
        Some(token) => SecretString::from(token.clone()),
        None => crate::credentials::token_for(&args.data_dir, Role::Staff, &args.office)?,
    };
    let channel = Channel::from_shared(args.server.clone())
        .context("invalid --server")?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    let auth = Auth::bearer(&token)?;
    Ok(Clients {
        forms: FormsServiceClient::with_interceptor(channel.clone(), auth.clone()),
        identity: IdentityServiceClient::with_interceptor(channel.clone(), auth.clone()),
        queue: QueueServiceClient::with_interceptor(channel, auth),
    })
}

fn municipality(args: &ClientArgs) -> String {
    args.office
        .split("/offices/")
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn resident(args: &ClientArgs, id: &str) -> String {
    if id.starts_with("municipalities/") {
        id.to_owned()
    } else {
        format!("{}/residents/{id}", municipality(args))
    }
}

fn visit_name(args: &ClientArgs, visit: &str) -> String {
    if visit.starts_with("municipalities/") {
        visit.to_owned()
    } else {
        format!("{}/visits/{visit}", args.office)
    }
}

/// A declared household as written in a file (`visit navigate
/// --household`): the same fields as `DeclaredHousehold`, with words for
/// its enums.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HouseholdFile {
    /// Index in `members` of the person the event is about.
    #[serde(default)]
    subject: u32,
    /// The 転入先 (required for a 転入).
    address: Option<AddressFile>,
    members: Vec<MemberFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressFile {
    #[serde(default)]
    postal_code: String,
    /// Default: the municipality of `--office`.
    municipality_code: Option<String>,
    prefecture: String,
    municipality: String,
    street: String,
    #[serde(default)]
    building: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    family_name: String,
    given_name: String,
    #[serde(default)]
    family_name_kana: String,
    #[serde(default)]
    given_name_kana: String,
    /// ISO or 和暦.
    birth_date: String,
    /// head, spouse, child, parent or other.
    relation: String,
    /// national-health-insurance, late-elderly-medical, employee or none.
    #[serde(default)]
    insurance: Option<String>,
    /// 学年 1..=9, 0 when not in compulsory school.
    #[serde(default)]
    school_year: u32,
    /// card (read from the My Number card) or typed (the default).
    #[serde(default)]
    source: Option<String>,
}

/// Reads a declared household file; the server checks every field again.
fn read_household(
    args: &ClientArgs,
    file: &std::path::Path,
) -> anyhow::Result<f::DeclaredHousehold> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed: HouseholdFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let office_code = crate::cli::municipality_code(&args.office).to_owned();
    let mut members = Vec::with_capacity(parsed.members.len());
    for (i, m) in parsed.members.into_iter().enumerate() {
        let at = |field: &str| format!("{}: members[{i}].{field}", file.display());
        let relation = match m.relation.as_str() {
            "head" => f::RelationToHead::Head,
            "spouse" => f::RelationToHead::Spouse,
            "child" => f::RelationToHead::Child,
            "parent" => f::RelationToHead::Parent,
            "other" => f::RelationToHead::Other,
            _ => anyhow::bail!("{}: head, spouse, child, parent or other", at("relation")),
        };
        let insurance = match m.insurance.as_deref().unwrap_or("none") {
            "none" => f::DeclaredInsurance::Unspecified,
            "national-health-insurance" => f::DeclaredInsurance::NationalHealthInsurance,
            "late-elderly-medical" => f::DeclaredInsurance::LateElderlyMedical,
            "employee" => f::DeclaredInsurance::Employee,
            _ => anyhow::bail!(
                "{}: national-health-insurance, late-elderly-medical, employee or none",
                at("insurance")
            ),
        };
        let source = match m.source.as_deref().unwrap_or("typed") {
            "typed" => f::MemberSource::Typed,
            "card" => f::MemberSource::MyNumberCard,
            _ => anyhow::bail!("{}: card or typed", at("source")),
        };
        members.push(f::DeclaredMember {
            person_name: Some(JapaneseName {
                family_name: m.family_name,
                given_name: m.given_name,
                family_name_kana: m.family_name_kana,
                given_name_kana: m.given_name_kana,
            }),
            birth_date: Some(parse_date(&m.birth_date).with_context(|| at("birth_date"))?),
            relation: relation as i32,
            insurance: insurance as i32,
            school_year: m.school_year,
            source: source as i32,
        });
    }
    Ok(f::DeclaredHousehold {
        members,
        subject_index: parsed.subject,
        address: parsed.address.map(|a| madoguchi_proto::types::v1::Address {
            postal_code: a.postal_code,
            municipality_code: a.municipality_code.unwrap_or_else(|| office_code.clone()),
            prefecture: a.prefecture,
            municipality: a.municipality,
            street: a.street,
            building: a.building,
        }),
    })
}

/// An ISO date (2026-04-01) or a 和暦 one (令和8年4月1日, R8.4.1).
fn parse_date(text: &str) -> anyhow::Result<Date> {
    let date = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date,
        Err(_) => text
            .parse::<WarekiDate>()
            .with_context(|| format!("not a date: {text}"))?
            .to_gregorian(),
    };
    Ok(crate::visit_cli::date(date))
}

fn date(d: chrono::NaiveDate) -> Date {
    use chrono::Datelike;
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

fn relation(text: &str) -> anyhow::Result<f::Relation> {
    Ok(match text {
        "self" | "" => f::Relation::Unspecified,
        "spouse" => f::Relation::Spouse,
        "lineal" => f::Relation::LinealRelative,
        "other" => f::Relation::Other,
        _ => anyhow::bail!("relation must be self, spouse, lineal or other"),
    })
}

fn status(text: &str) -> anyhow::Result<f::ItemStatus> {
    Ok(match text {
        "pending" | "未" => f::ItemStatus::Pending,
        "done" | "済" => f::ItemStatus::Done,
        "not-applicable" | "対象外" => f::ItemStatus::NotApplicable,
        "later" | "後日" => f::ItemStatus::Later,
        _ => anyhow::bail!("status must be pending, done, not-applicable or later"),
    })
}

fn mark(status: i32) -> &'static str {
    match f::ItemStatus::try_from(status) {
        Ok(f::ItemStatus::Done) => "済",
        Ok(f::ItemStatus::NotApplicable) => "対象外",
        Ok(f::ItemStatus::Later) => "後日",
        _ => "未",
    }
}

fn last(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

async fn resolve_ticket(
    queue: &mut QueueServiceClient<InterceptedService<Channel, Auth>>,
    args: &ClientArgs,
    ticket: &str,
) -> anyhow::Result<String> {
    if ticket.starts_with("municipalities/") {
        return Ok(ticket.to_owned());
    }
    let wanted = ticket.to_ascii_uppercase();
    let page = queue
        .list_tickets(q::ListTicketsRequest {
            parent: args.office.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await?
        .into_inner();
    page.tickets
        .into_iter()
        .rev()
        .find(|t| t.display_number == wanted)
        .map(|t| t.name)
        .with_context(|| format!("no ticket {wanted} today"))
}

fn print_visit(visit: &f::Visit) {
    crate::outln!("visit {}", last(&visit.name));
    if let Some(n) = &visit.applicant_name {
        crate::outln!(
            "visitor {} {}{}",
            n.family_name,
            n.given_name,
            if visit.applicant_resident {
                ""
            } else {
                "（市外在住）"
            }
        );
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "status",
        "procedure",
        "name",
        "department",
        "one-stop",
        "due",
        "note",
    ]);
    for item in &visit.items {
        let p = item.procedure.clone().unwrap_or_default();
        let mut due = item
            .due_date
            .as_ref()
            .map(|d| format!("{}-{:02}-{:02}", d.year, d.month, d.day))
            .unwrap_or_default();
        let lapsed = item.deadline_standing == f::DeadlineStanding::Lapsed as i32;
        if item.deadline_standing == f::DeadlineStanding::Late as i32 {
            due.push_str(" late, still accepted");
        } else if lapsed {
            due.push_str(" lapsed");
        }
        let note = if item.deadline_note.is_empty() {
            item.note.clone()
        } else if item.note.is_empty() {
            item.deadline_note.clone()
        } else {
            format!("{} / {}", item.note, item.deadline_note)
        };
        table.add_row(vec![
            if lapsed { "時効" } else { mark(item.status) }.to_owned(),
            p.id,
            p.name_ja,
            p.department,
            if p.one_stop { "yes" } else { "no" }.to_owned(),
            due,
            note,
        ]);
    }
    if !visit.items.is_empty() {
        crate::outln!("{table}");
    }
    for flag in &visit.flags {
        crate::outln!("! {}", flag.text_ja);
    }
    for request in &visit.certificate_requests {
        crate::outln!(
            "certificate request {} ({} lines, ¥{})",
            last(&request.name),
            request.lines.len(),
            request
                .total_fee
                .as_ref()
                .map(|y| y.amount)
                .unwrap_or_default()
        );
    }
    crate::outln!("signatures {}", visit.signatures.len());
}

/// Runs one visit command and prints its result.
pub async fn run(args: ClientArgs, command: VisitCommand) -> anyhow::Result<()> {
    let mut c = connect(&args).await?;
    match command {
        VisitCommand::Start {
            resident: resident_id,
            family,
            given,
            birth,
            documents,
            ticket,
        } => {
            let ticket = match ticket {
                Some(t) => resolve_ticket(&mut c.queue, &args, &t).await?,
                None => String::new(),
            };
            let verification = c
                .identity
                .verify_identity(id::VerifyIdentityRequest {
                    parent: municipality(&args),
                    visit: if ticket.is_empty() {
                        args.office.clone()
                    } else {
                        ticket.clone()
                    },
                    visitor: Some(id::PersonClaim {
                        person_name: Some(JapaneseName {
                            family_name: family,
                            given_name: given,
                            ..Default::default()
                        }),
                        birth_date: Some(parse_date(&birth)?),
                        address: None,
                    }),
                    resident: resident_id.map(|r| resident(&args, &r)).unwrap_or_default(),
                    documents: documents
                        .into_iter()
                        .map(|kind| id::PresentedDocument {
                            kind,
                            ..Default::default()
                        })
                        .collect(),
                })
                .await?
                .into_inner();
            if !verification.verified {
                anyhow::bail!(
                    "identity not verified: {}",
                    id::VerificationOutcome::try_from(verification.outcome)
                        .map(|o| o.as_str_name())
                        .unwrap_or("unknown")
                );
            }
            let visit = c
                .forms
                .start_visit(f::StartVisitRequest {
                    parent: args.office.clone(),
                    verification: verification.name,
                    ticket,
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await?
                .into_inner();
            print_visit(&visit);
        }
        VisitCommand::Navigate {
            visit,
            event,
            subject,
            household,
            date,
            answers,
            relations,
        } => {
            let catalog = c
                .forms
                .get_catalog(f::GetCatalogRequest {
                    name: municipality(&args),
                })
                .await?
                .into_inner();
            let questions = catalog
                .life_events
                .iter()
                .find(|e| e.id == event)
                .map(|e| e.questions.clone())
                .unwrap_or_default();
            let mut parsed = Vec::new();
            for answer in answers {
                let (question, value) = answer
                    .split_once('=')
                    .context("an answer is question=value")?;
                let person = questions
                    .iter()
                    .any(|q| q.id == question && q.kind == "person");
                parsed.push(f::Answer {
                    question: question.to_owned(),
                    value: if person {
                        resident(&args, value)
                    } else {
                        value.to_owned()
                    },
                });
            }
            let mut people = Vec::new();
            for r in relations {
                let (person, rel) = r.split_once('=').context("a relation is resident=kind")?;
                people.push(f::PersonRelation {
                    person: resident(&args, person),
                    relation: relation(rel)? as i32,
                });
            }
            let (event_date, event_date_wareki) = match date {
                Some(d) if d.contains('-') => (Some(parse_date(&d)?), String::new()),
                Some(d) => (None, d),
                None => (None, String::new()),
            };
            let visit = c
                .forms
                .navigate_life_event(f::NavigateLifeEventRequest {
                    visit: visit_name(&args, &visit),
                    life_event: event,
                    subject: subject.map(|s| resident(&args, &s)).unwrap_or_default(),
                    event_date,
                    event_date_wareki,
                    answers: parsed,
                    relations: people,
                    etag: String::new(),
                    declared_household: match &household {
                        Some(file) => Some(read_household(&args, file)?),
                        None => None,
                    },
                })
                .await?
                .into_inner();
            print_visit(&visit);
        }
        VisitCommand::Show { visit } => {
            let visit = c
                .forms
                .get_visit(f::GetVisitRequest {
                    name: visit_name(&args, &visit),
                })
                .await?
                .into_inner();
            print_visit(&visit);
        }
        VisitCommand::Set {
            visit,
            procedure,
            status: s,
            note,
            counter,
        } => {
            let item = c
                .forms
                .update_checklist_item(f::UpdateChecklistItemRequest {
                    name: format!("{}/items/{procedure}", visit_name(&args, &visit)),
                    status: status(&s)? as i32,
                    note,
                    counter: counter
                        .map(|k| format!("{}/counters/{k}", args.office))
                        .unwrap_or_default(),
                })
                .await?
                .into_inner();
            crate::outln!("{} {}", mark(item.status), procedure);
        }
        VisitCommand::Transfer { visit, procedure } => {
            let moved = c
                .forms
                .transfer_for_item(f::TransferForItemRequest {
                    name: format!("{}/items/{procedure}", visit_name(&args, &visit)),
                })
                .await?
                .into_inner();
            crate::outln!(
                "{} → {}",
                moved.ticket_display_number,
                last(&moved.category)
            );
        }
        VisitCommand::Certificates {
            visit,
            lines,
            relation: rel,
        } => {
            let rel = relation(&rel)?;
            let mut inputs = Vec::new();
            for line in lines {
                let parts: Vec<&str> = line.splitn(5, ':').collect();
                let [subject, kind, copies, purpose, rest @ ..] = parts.as_slice() else {
                    anyhow::bail!("a line is subject:kind:copies:purpose[:options]");
                };
                inputs.push(f::CertificateLineInput {
                    subject: resident(&args, subject),
                    kind: (*kind).to_owned(),
                    copies: copies.parse().context("copies is a number")?,
                    purpose: (*purpose).to_owned(),
                    options: rest
                        .first()
                        .map(|o| o.split(',').map(str::to_owned).collect())
                        .unwrap_or_default(),
                    relation: rel as i32,
                });
            }
            let request = c
                .forms
                .create_certificate_request(f::CreateCertificateRequestRequest {
                    parent: visit_name(&args, &visit),
                    lines: inputs,
                })
                .await?
                .into_inner();
            let request = c
                .forms
                .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
                    name: request.name,
                })
                .await?
                .into_inner();
            crate::outln!(
                "certificate request {} confirmed: {} lines, ¥{}",
                last(&request.name),
                request.lines.len(),
                request.total_fee.map(|y| y.amount).unwrap_or_default()
            );
        }
        VisitCommand::Proxy {
            visit,
            from,
            scope,
            date: written,
        } => {
            let name = visit_name(&args, &visit);
            let current = c
                .forms
                .get_visit(f::GetVisitRequest { name: name.clone() })
                .await?
                .into_inner();
            // The letter names the visitor: name and birth date as verified.
            let verified = c
                .identity
                .get_verification(id::GetVerificationRequest {
                    name: current.verification.clone(),
                })
                .await?
                .into_inner()
                .visitor
                .unwrap_or_default();
            let visit = c
                .forms
                .record_proxy_documents(f::RecordProxyDocumentsRequest {
                    visit: name,
                    powers_of_attorney: vec![f::PowerOfAttorney {
                        delegator: resident(&args, &from),
                        proxy_name: verified.person_name,
                        proxy_birth_date: verified.birth_date,
                        scope,
                        written_on: Some(parse_date(&written)?),
                        written_on_wareki: String::new(),
                    }],
                    legal_representations: Vec::new(),
                    etag: current.etag,
                })
                .await?
                .into_inner();
            print_visit(&visit);
        }
        VisitCommand::Sign { visit } => {
            // A demo stroke: a real tablet client sends the pen's points.
            let points = (0..40u32)
                .map(|i| f::StrokePoint {
                    x: 800 + i * 200,
                    y: 5000 + ((i * 37) % 9) * 300,
                    t_ms: i * 12,
                })
                .collect();
            let signature = c
                .forms
                .sign_visit(f::SignVisitRequest {
                    visit: visit_name(&args, &visit),
                    strokes: vec![f::Stroke { points }],
                })
                .await?
                .into_inner();
            crate::outln!("signed once, covering {} documents", signature.covers.len());
        }
        VisitCommand::Print {
            visit,
            request,
            move_in,
            out,
        } => {
            let (name, kind) = match request {
                Some(r) => (
                    format!("{}/certificateRequests/{r}", visit_name(&args, &visit)),
                    f::DocumentKind::CertificateApplication,
                ),
                None if move_in => (
                    visit_name(&args, &visit),
                    f::DocumentKind::MoveInNotification,
                ),
                None => (visit_name(&args, &visit), f::DocumentKind::Checklist),
            };
            let document = c
                .forms
                .render_document(f::RenderDocumentRequest {
                    name,
                    kind: kind as i32,
                })
                .await?
                .into_inner();
            std::fs::write(&out, document.content)
                .with_context(|| format!("writing {}", out.display()))?;
            crate::outln!("wrote {}", out.display());
        }
        VisitCommand::Complete { visit, out } => {
            let done = c
                .forms
                .complete_visit(f::CompleteVisitRequest {
                    name: visit_name(&args, &visit),
                })
                .await?
                .into_inner();
            for item in &done.open_items {
                let p = item.procedure.clone().unwrap_or_default();
                crate::outln!(
                    "{} {} — {}（{}）",
                    mark(item.status),
                    p.name_ja,
                    p.location,
                    p.documents.join("、")
                );
            }
            if let Some(document) = done.open_items_document {
                std::fs::write(&out, document.content)
                    .with_context(|| format!("writing {}", out.display()))?;
                crate::outln!("wrote {}", out.display());
            }
        }
        VisitCommand::Kpis { visit } => {
            let k = c
                .forms
                .get_visit_kpis(f::GetVisitKpisRequest {
                    visit: visit_name(&args, &visit),
                })
                .await?
                .into_inner();
            crate::outln!(
                "signatures {} · counters {} · staff {} · procedures {} done {} at one-stop {} ({}‰) · late {} · lapsed {} · visit {}s",
                k.signatures,
                k.counters_met,
                k.staff_met,
                k.procedures,
                k.procedures_done,
                k.procedures_done_one_stop,
                k.one_stop_share_permille,
                k.procedures_late,
                k.procedures_lapsed,
                k.visit_duration.map(|d| d.seconds).unwrap_or_default()
            );
        }
        VisitCommand::Export { from, to, out } => {
            let export = c
                .forms
                .export_kpis(f::ExportKpisRequest {
                    parent: args.office.clone(),
                    from_day: Some(parse_date(&from)?),
                    to_day: Some(parse_date(&to)?),
                })
                .await?
                .into_inner();
            std::fs::write(&out, export.csv)
                .with_context(|| format!("writing {}", out.display()))?;
            crate::outln!(
                "wrote {} ({} visits, one-stop share {}‰)",
                out.display(),
                export.visits.len(),
                export.one_stop_share_permille
            );
        }
    }
    Ok(())
}
