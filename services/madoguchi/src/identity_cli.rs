//! `madoguchi identity …`: what counter staff ask the identity service —
//! find a resident, see a record with its household, verify a visitor's
//! identity from the documents shown (本人確認), and check what the visitor
//! may do for whom (with a 委任状 if they brought one). Over gRPC like any
//! other client, with the staff token.

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use madoguchi_platform::auth::Role;
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::types::v1::{Date, JapaneseName};
use secrecy::SecretString;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cli::{Auth, ClientArgs};

/// `madoguchi identity …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum IdentityCommand {
    /// Find residents by name (kanji or kana) and birth date.
    Search {
        /// Family name.
        #[arg(long, default_value = "")]
        family: String,
        /// Given name.
        #[arg(long, default_value = "")]
        given: String,
        /// Birth date: 昭和47年10月31日, S47.10.31 or 1972-10-31.
        #[arg(long)]
        birth: String,
    },
    /// Show a resident's record and household.
    Resident {
        /// Resident id (宛名番号) or resource name.
        resident: String,
    },
    /// Verify a visitor's identity from the documents shown (本人確認).
    Verify {
        /// The visit: a queue ticket's printed number is not resolved
        /// here; give a resource name, or nothing for the office.
        #[arg(long)]
        visit: Option<String>,
        /// The visitor's resident id, if in the registry.
        #[arg(long)]
        resident: Option<String>,
        /// Family name as on the documents.
        #[arg(long)]
        family: String,
        /// Given name as on the documents.
        #[arg(long)]
        given: String,
        /// Birth date (和暦 or ISO).
        #[arg(long)]
        birth: String,
        /// A document shown: `kind` or `kind:expiry-date`, e.g.
        /// `drivers-licence:2028-11-30`. Repeat for each document.
        #[arg(long = "document", required = true)]
        documents: Vec<String>,
    },
    /// Decide, per procedure, whether the verified visitor may do it for
    /// its subject — and why not.
    CheckProxy {
        /// Verification id or resource name (from `identity verify`).
        #[arg(long)]
        verification: String,
        /// `procedure:subject-resident-id[:self|spouse|lineal|other]`.
        #[arg(long = "procedure", required = true)]
        procedures: Vec<String>,
        /// A 委任状's delegator (resident id); the letter names the visitor.
        #[arg(long)]
        letter_from: Option<String>,
        /// Procedures the letter lists, comma-separated.
        #[arg(long, value_delimiter = ',')]
        letter_scope: Vec<String>,
        /// The date written on the letter (和暦 or ISO).
        #[arg(long)]
        letter_date: Option<String>,
    },
}

type Identity = IdentityServiceClient<InterceptedService<Channel, Auth>>;

async fn connect(args: &ClientArgs) -> anyhow::Result<Identity> {
    let token = match &args.token {
        Some(token) => SecretString::from(token.clone()),
        None => crate::credentials::token_for(&args.data_dir, Role::Staff, &args.office)?,
    };
    let channel = Channel::from_shared(args.server.clone())
        .context("invalid --server")?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    Ok(IdentityServiceClient::with_interceptor(
        channel,
        Auth::bearer(&token)?,
    ))
}

/// `municipalities/{code}` of the office.
pub(crate) fn municipality(args: &ClientArgs) -> String {
    args.office
        .split("/offices/")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A resident id or resource name → resource name.
pub(crate) fn resident(args: &ClientArgs, id: &str) -> String {
    if id.starts_with("municipalities/") {
        id.to_owned()
    } else {
        format!("{}/residents/{id}", municipality(args))
    }
}

/// An ISO date (2026-04-01) or a 和暦 one (令和8年4月1日, R8.4.1).
pub(crate) fn parse_date(text: &str) -> anyhow::Result<Date> {
    use chrono::Datelike;
    let date = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date,
        Err(_) => text
            .parse::<WarekiDate>()
            .with_context(|| format!("not a date: {text}"))?
            .to_gregorian(),
    };
    Ok(Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    })
}

fn show_date(date: Option<&Date>) -> String {
    date.and_then(|d| {
        chrono::NaiveDate::from_ymd_opt(
            d.year,
            u32::try_from(d.month).ok()?,
            u32::try_from(d.day).ok()?,
        )
    })
    .map(|d| {
        WarekiDate::from_gregorian(d)
            .map(|w| w.to_string())
            .unwrap_or_else(|_| d.to_string())
    })
    .unwrap_or_default()
}

fn full_name(name: Option<&JapaneseName>) -> String {
    name.map(|n| format!("{} {}", n.family_name, n.given_name))
        .unwrap_or_default()
}

fn last(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn residence(status: i32) -> &'static str {
    match id::ResidenceStatus::try_from(status) {
        Ok(id::ResidenceStatus::Resident) => "住民",
        Ok(id::ResidenceStatus::NonResident) => "住登外",
        Ok(id::ResidenceStatus::MovedOut) => "転出",
        _ => "?",
    }
}

fn print_residents(residents: &[id::Resident]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "id",
        "name",
        "kana",
        "born",
        "続柄",
        "residence",
        "died",
    ]);
    for r in residents {
        let kana = r
            .person_name
            .as_ref()
            .map(|n| format!("{} {}", n.family_name_kana, n.given_name_kana))
            .unwrap_or_default();
        table.add_row(vec![
            r.resident_id.clone(),
            full_name(r.person_name.as_ref()),
            kana,
            show_date(r.birth_date.as_ref()),
            r.relationship_label.clone(),
            residence(r.residence_status).to_owned(),
            show_date(r.death_date.as_ref()),
        ]);
    }
    crate::outln!("{table}");
}

fn relation(text: &str) -> anyhow::Result<id::SubjectRelation> {
    Ok(match text {
        "" => id::SubjectRelation::Unspecified,
        "self" => id::SubjectRelation::Self_,
        "spouse" => id::SubjectRelation::Spouse,
        "lineal" => id::SubjectRelation::LinealRelative,
        "other" => id::SubjectRelation::Other,
        _ => anyhow::bail!("relation must be self, spouse, lineal or other"),
    })
}

/// Runs one identity command and prints its result.
pub async fn run(args: ClientArgs, command: IdentityCommand) -> anyhow::Result<()> {
    let mut client = connect(&args).await?;
    match command {
        IdentityCommand::Search {
            family,
            given,
            birth,
        } => {
            let found = client
                .search_residents(id::SearchResidentsRequest {
                    parent: municipality(&args),
                    family_name: family,
                    given_name: given,
                    birth_date: Some(parse_date(&birth)?),
                    birth_date_wareki: String::new(),
                })
                .await?
                .into_inner();
            if found.residents.is_empty() {
                crate::outln!("no resident found");
            } else {
                print_residents(&found.residents);
            }
        }
        IdentityCommand::Resident { resident: who } => {
            let record = client
                .get_resident(id::GetResidentRequest {
                    name: resident(&args, &who),
                })
                .await?
                .into_inner();
            print_residents(std::slice::from_ref(&record));
            if let Some(address) = &record.address {
                crate::outln!(
                    "住所 {}{}{} ({})",
                    address.prefecture,
                    address.municipality,
                    address.street,
                    address.municipality_code
                );
            }
            let enrolments: Vec<&str> = record
                .enrolments
                .iter()
                .filter_map(|e| id::EnrolmentKind::try_from(e.kind).ok())
                .map(|k| k.as_str_name().trim_start_matches("ENROLMENT_KIND_"))
                .collect();
            if !enrolments.is_empty() {
                crate::outln!("enrolments {}", enrolments.join(", "));
            }
            if !record.household.is_empty() {
                let household = client
                    .get_household(id::GetHouseholdRequest {
                        name: record.household.clone(),
                    })
                    .await?
                    .into_inner();
                crate::outln!("household {}", household.household_id);
                print_residents(&household.members);
            }
        }
        IdentityCommand::Verify {
            visit,
            resident: resident_id,
            family,
            given,
            birth,
            documents,
        } => {
            let mut shown = Vec::new();
            for document in documents {
                let (kind, expiry) = match document.split_once(':') {
                    Some((kind, expiry)) => (kind.to_owned(), Some(parse_date(expiry)?)),
                    None => (document, None),
                };
                shown.push(id::PresentedDocument {
                    kind,
                    expiry_date: expiry,
                    ..Default::default()
                });
            }
            let verification = client
                .verify_identity(id::VerifyIdentityRequest {
                    parent: municipality(&args),
                    visit: visit.unwrap_or_else(|| args.office.clone()),
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
                    documents: shown,
                })
                .await?
                .into_inner();
            let outcome = id::VerificationOutcome::try_from(verification.outcome)
                .map(|o| o.as_str_name())
                .unwrap_or("?");
            crate::outln!(
                "verification {} {} ({outcome}{})",
                last(&verification.name),
                if verification.verified {
                    "verified"
                } else {
                    "NOT verified"
                },
                if verification.photo_id {
                    ", photo id"
                } else {
                    ""
                }
            );
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_header(vec!["document", "class", "counted", "why not"]);
            for d in &verification.documents {
                table.add_row(vec![
                    d.kind.clone(),
                    id::DocumentClass::try_from(d.class)
                        .map(|c| c.as_str_name().trim_start_matches("DOCUMENT_CLASS_"))
                        .unwrap_or("?")
                        .to_owned(),
                    if d.accepted { "yes" } else { "no" }.to_owned(),
                    id::DocumentRejection::try_from(d.rejection)
                        .ok()
                        .filter(|r| *r != id::DocumentRejection::Unspecified)
                        .map(|r| r.as_str_name().trim_start_matches("DOCUMENT_REJECTION_"))
                        .unwrap_or("")
                        .to_owned(),
                ]);
            }
            crate::outln!("{table}");
        }
        IdentityCommand::CheckProxy {
            verification,
            procedures,
            letter_from,
            letter_scope,
            letter_date,
        } => {
            let verification = if verification.starts_with("municipalities/") {
                verification
            } else {
                format!("{}/verifications/{verification}", municipality(&args))
            };
            let mut requested = Vec::new();
            for p in &procedures {
                let parts: Vec<&str> = p.split(':').collect();
                let (procedure, subject, rel) = match parts.as_slice() {
                    [procedure, subject] => (*procedure, *subject, ""),
                    [procedure, subject, rel] => (*procedure, *subject, *rel),
                    _ => anyhow::bail!("a procedure is procedure:subject[:relation]"),
                };
                requested.push(id::RequestedProcedure {
                    procedure: procedure.to_owned(),
                    subject: resident(&args, subject),
                    relation: relation(rel)? as i32,
                    policy: None,
                });
            }
            let mut letters = Vec::new();
            if let Some(from) = letter_from {
                // The letter names the visitor: the claim they were
                // verified with.
                let verified = client
                    .get_verification(id::GetVerificationRequest {
                        name: verification.clone(),
                    })
                    .await?
                    .into_inner();
                letters.push(id::PowerOfAttorney {
                    delegator: resident(&args, &from),
                    proxy: verified.visitor,
                    procedures: letter_scope,
                    written_on: Some(parse_date(
                        letter_date
                            .as_deref()
                            .context("--letter-date is required with --letter-from")?,
                    )?),
                });
            }
            let decisions = client
                .check_proxy(id::CheckProxyRequest {
                    parent: municipality(&args),
                    verification,
                    procedures: requested,
                    powers_of_attorney: letters,
                    legal_representations: Vec::new(),
                })
                .await?
                .into_inner()
                .decisions;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
                "procedure",
                "subject",
                "may do",
                "basis / reason",
                "why",
            ]);
            for d in decisions {
                table.add_row(vec![
                    d.procedure,
                    last(&d.subject).to_owned(),
                    if d.allowed { "yes" } else { "no" }.to_owned(),
                    id::ProxyDecisionReason::try_from(d.reason)
                        .map(|r| r.as_str_name().trim_start_matches("PROXY_DECISION_REASON_"))
                        .unwrap_or("?")
                        .to_owned(),
                    d.message,
                ]);
            }
            crate::outln!("{table}");
        }
    }
    Ok(())
}
