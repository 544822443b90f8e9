//! Two municipalities in one deployment, at the counter (issue 20): one
//! real server on port 0 serves 大船渡市 (032034) and 陸前高田市 (032107)
//! from the two sample site directories, on SQLite and PostgreSQL.
//!
//! - each city's residents, visits, KPIs, orders, payments, daily close
//!   and reconciliation export are invisible to the other through every
//!   get/list/export RPC of identity, forms and POS;
//! - a visit and a certificate payment in each city use that city's own
//!   catalog (procedures, certificate fees, revenue accounts) and receipt
//!   name, and each city's My Number handlers are its own;
//! - a principal of one city naming the other's resources is refused
//!   PERMISSION_DENIED (OTHER_MUNICIPALITY) and nothing changes; a
//!   municipality the server does not serve is NOT_FOUND with its name in
//!   the `ResourceInfo` detail.
//!
//! The server is the harness's, on both sample sites, with this file's
//! own tokens (a My Number handler subject in each city); the floor side
//! (tickets, signage) of the same isolation is tests/tests/tenancy_floor.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use madoguchi::cli::Auth;
use madoguchi_e2e::{Backend, Spawn, TestServer, on_both_backends, spawn, token};
use madoguchi_platform::auth::Role;
use madoguchi_platform::config::TokenConfig;
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::types::v1::{Date, JapaneseName};
use secrecy::SecretString;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Identity = IdentityServiceClient<InterceptedService<Channel, Auth>>;
type Forms = FormsServiceClient<InterceptedService<Channel, Auth>>;
type Pos = PosServiceClient<InterceptedService<Channel, Auth>>;

on_both_backends!(
    registry_and_identity_records_stay_in_their_city,
    visits_checklists_and_kpis_stay_in_their_city,
    certificate_payments_use_each_citys_fees,
);

/// 大船渡市.
const OFUNATO: &str = "032034";
/// 陸前高田市.
const TAKATA: &str = "032107";
/// A municipality with valid tokens that this server does not serve.
const UNSERVED: &str = "131016";
/// The subject `sites/rikuzentakata/identity.toml` names as a My Number
/// handler; `sites/ofunato/identity.toml` does not.
const TAKATA_HANDLER: &str = "takata-shimin-kojinbango";

// ------------------------------------------------------------------ harness

/// A server serving both sample sites.
struct Cities {
    server: TestServer,
}

/// Every role of the two served cities and an admin of an unserved one,
/// plus the 陸前高田市 handler subject as an admin of each city.
fn tokens() -> Vec<TokenConfig> {
    let mut tokens = Vec::new();
    for code in [OFUNATO, TAKATA] {
        for role in [Role::Admin, Role::Staff, Role::Device, Role::Display] {
            tokens.push(token(role, code));
        }
        tokens.push(handler_token(code));
    }
    tokens.push(token(Role::Admin, UNSERVED));
    tokens
}

fn handler_token(code: &str) -> TokenConfig {
    TokenConfig {
        token: SecretString::from(format!("handler-{code}")),
        subject: TAKATA_HANDLER.into(),
        role: Role::Admin,
        municipality: MunicipalityCode::parse(code).unwrap(),
    }
}

async fn spawn_cities(backend: Backend) -> Cities {
    let server = spawn(
        Spawn::new(backend)
            .sites(&["ofunato", "rikuzentakata"])
            .tokens(tokens()),
    )
    .await;
    Cities { server }
}

impl Cities {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.server.server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn auth_channel(&self, bearer: &SecretString) -> (Channel, Auth) {
        (self.channel().await, Auth::bearer(bearer).unwrap())
    }

    async fn identity(&self, role: Role, code: &str) -> Identity {
        let (channel, auth) = self.auth_channel(&token(role, code).token).await;
        IdentityServiceClient::with_interceptor(channel, auth)
    }

    async fn handler(&self, code: &str) -> Identity {
        let (channel, auth) = self.auth_channel(&handler_token(code).token).await;
        IdentityServiceClient::with_interceptor(channel, auth)
    }

    async fn forms(&self, role: Role, code: &str) -> Forms {
        let (channel, auth) = self.auth_channel(&token(role, code).token).await;
        FormsServiceClient::with_interceptor(channel, auth)
    }

    async fn pos(&self, role: Role, code: &str) -> Pos {
        let (channel, auth) = self.auth_channel(&token(role, code).token).await;
        PosServiceClient::with_interceptor(channel, auth)
    }
}

// ------------------------------------------------------------------ helpers

fn municipality(code: &str) -> String {
    format!("municipalities/{code}")
}

fn office(code: &str) -> String {
    format!("municipalities/{code}/offices/main")
}

fn resident(code: &str, id: &str) -> String {
    format!("municipalities/{code}/residents/{id}")
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// A resident who comes to the counter for themself, in each city.
struct Visitor {
    code: &'static str,
    resident_id: &'static str,
    family: &'static str,
    given: &'static str,
    birth: (i32, i32, i32),
    name_ja: &'static str,
    /// A procedure of the city's identity.toml that uses My Number.
    my_number_procedure: &'static str,
}

/// 盛 健太 of 大船渡市's sample registry.
const KENTA: Visitor = Visitor {
    code: OFUNATO,
    resident_id: "100011",
    family: "盛",
    given: "健太",
    birth: (1990, 4, 12),
    name_ja: "大船渡市",
    my_number_procedure: "sosaihi",
};

/// 矢作 大輔 of 陸前高田市's sample registry.
const DAISUKE: Visitor = Visitor {
    code: TAKATA,
    resident_id: "200011",
    family: "矢作",
    given: "大輔",
    birth: (1985, 10, 4),
    name_ja: "陸前高田市",
    my_number_procedure: "kokuho-soshitsu",
};

impl Visitor {
    fn name(&self) -> String {
        resident(self.code, self.resident_id)
    }

    fn birth_date(&self) -> Option<Date> {
        date(self.birth.0, self.birth.1, self.birth.2)
    }

    fn verification(&self, visit: &str) -> id::VerifyIdentityRequest {
        id::VerifyIdentityRequest {
            parent: municipality(self.code),
            visit: visit.into(),
            visitor: Some(id::PersonClaim {
                person_name: Some(JapaneseName {
                    family_name: self.family.into(),
                    given_name: self.given.into(),
                    ..Default::default()
                }),
                birth_date: self.birth_date(),
                address: None,
            }),
            resident: self.name(),
            documents: vec![id::PresentedDocument {
                kind: "my-number-card".into(),
                expiry_date: date(2031, 1, 1),
                ..Default::default()
            }],
        }
    }

    fn card_read(&self, visit: &str) -> id::SubmitCardReadRequest {
        id::SubmitCardReadRequest {
            parent: municipality(self.code),
            visit: visit.into(),
            source: id::CardSource::MyNumberCard as i32,
            data: Some(id::CardData {
                full_name: format!("{} {}", self.family, self.given),
                address: "岩手県".into(),
                birth_date: self.birth_date(),
                sex: 1,
                // A made-up number with a valid check digit.
                my_number: "123456789018".into(),
                expiry_date: None,
                licence_number: String::new(),
            }),
            procedures: vec![self.my_number_procedure.into()],
        }
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Asserts a cross-city refusal.
#[track_caller]
fn assert_other_city<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) {
    let status = result.expect_err("a principal of the other city must be refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), "OTHER_MUNICIPALITY", "{status:?}");
}

/// Asserts the refusal of a municipality the server does not serve.
#[track_caller]
fn assert_unserved<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) {
    let status = result.expect_err("an unserved municipality must be refused");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let info = status
        .get_error_details()
        .resource_info()
        .cloned()
        .expect("resource info");
    assert_eq!(info.resource_type, "municipality");
    assert_eq!(info.resource_name, municipality(UNSERVED));
}

fn yen(y: &Option<madoguchi_proto::types::v1::Yen>) -> i64 {
    y.as_ref().map_or(0, |y| y.amount)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Verifies `visitor` and starts a visit at their city's office.
async fn start_visit(t: &Cities, visitor: &Visitor) -> f::Visit {
    let mut identity = t.identity(Role::Staff, visitor.code).await;
    let verification = identity
        .verify_identity(
            visitor.verification(&format!("{}/visits/walk-in", municipality(visitor.code))),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(verification.verified, "{verification:?}");
    t.forms(Role::Staff, visitor.code)
        .await
        .start_visit(f::StartVisitRequest {
            parent: office(visitor.code),
            verification: verification.name,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The visitor's own move-out: the checklist from their city's catalog.
async fn navigate_move_out(t: &Cities, visitor: &Visitor, visit: &f::Visit) -> f::Visit {
    t.forms(Role::Staff, visitor.code)
        .await
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "move-out".into(),
            subject: visitor.name(),
            event_date: date(2026, 3, 28),
            answers: vec![f::Answer {
                question: "keeps_my_number_card".into(),
                value: "yes".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The visitor's own certificates: 住民票の写し ×2, 戸籍謄本 ×1, 所得・課税証明書 ×1.
fn own_certificates(visitor: &Visitor) -> Vec<f::CertificateLineInput> {
    [("juminhyo", 2), ("koseki-tohon", 1), ("shotoku-kazei", 1)]
        .into_iter()
        .map(|(kind, copies)| f::CertificateLineInput {
            subject: visitor.name(),
            kind: kind.into(),
            copies,
            purpose: "勤務先への提出".into(),
            ..Default::default()
        })
        .collect()
}

async fn catalog(t: &Cities, code: &str) -> f::Catalog {
    t.forms(Role::Staff, code)
        .await
        .get_catalog(f::GetCatalogRequest {
            name: municipality(code),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn audit_count(t: &Cities, code: &str) -> usize {
    t.identity(Role::Admin, code)
        .await
        .list_audit_events(id::ListAuditEventsRequest {
            parent: municipality(code),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .audit_events
        .len()
}

// ------------------------------------------------------------------ identity

async fn registry_and_identity_records_stay_in_their_city(backend: Backend) {
    let t = spawn_cities(backend).await;
    let mut ofunato = t.identity(Role::Staff, OFUNATO).await;
    let mut takata = t.identity(Role::Staff, TAKATA).await;

    // Each registry was seeded from its own site's CSV.
    let search = |code: &str, visitor: &Visitor| id::SearchResidentsRequest {
        parent: municipality(code),
        family_name: visitor.family.into(),
        given_name: visitor.given.into(),
        birth_date: visitor.birth_date(),
        birth_date_wareki: String::new(),
    };
    for (client, code, own, other) in [
        (&mut ofunato, OFUNATO, &KENTA, &DAISUKE),
        (&mut takata, TAKATA, &DAISUKE, &KENTA),
    ] {
        let found = client
            .search_residents(search(code, own))
            .await
            .unwrap()
            .into_inner()
            .residents;
        assert_eq!(
            found.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            [own.name()]
        );
        let none = client
            .search_residents(search(code, other))
            .await
            .unwrap()
            .into_inner()
            .residents;
        assert!(none.is_empty(), "{code} found the other city's {none:?}");
        let household = client
            .get_resident(id::GetResidentRequest { name: own.name() })
            .await
            .unwrap()
            .into_inner()
            .household;
        client
            .get_household(id::GetHouseholdRequest {
                name: household.clone(),
            })
            .await
            .unwrap();
    }
    assert_eq!(
        takata
            .get_household(id::GetHouseholdRequest {
                name: format!("{}/households/h-2001", municipality(TAKATA)),
            })
            .await
            .unwrap()
            .into_inner()
            .members
            .len(),
        2,
        "陸前高田市's own sample household"
    );

    // Every read of the other city's records is refused.
    assert_other_city(
        ofunato
            .get_resident(id::GetResidentRequest {
                name: DAISUKE.name(),
            })
            .await,
    );
    assert_other_city(takata.search_residents(search(OFUNATO, &KENTA)).await);
    assert_other_city(
        ofunato
            .get_household(id::GetHouseholdRequest {
                name: format!("{}/households/h-2001", municipality(TAKATA)),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .list_document_kinds(id::ListDocumentKindsRequest {
                parent: municipality(TAKATA),
            })
            .await,
    );

    // Verifications and card reads live in their own city.
    let visit = |code: &str| format!("{}/visits/v1", municipality(code));
    let verification = takata
        .verify_identity(DAISUKE.verification(&visit(TAKATA)))
        .await
        .unwrap()
        .into_inner();
    assert!(verification.verified);
    assert_other_city(
        ofunato
            .get_verification(id::GetVerificationRequest {
                name: verification.name.clone(),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .verify_identity(DAISUKE.verification(&visit(TAKATA)))
            .await,
    );
    let takata_read = takata
        .submit_card_read(DAISUKE.card_read(&visit(TAKATA)))
        .await
        .unwrap()
        .into_inner();
    assert!(takata_read.my_number_retained);
    assert_eq!(takata_read.resident, DAISUKE.name());
    let ofunato_read = ofunato
        .submit_card_read(KENTA.card_read(&visit(OFUNATO)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ofunato_read.resident, KENTA.name());
    assert_other_city(
        ofunato
            .submit_card_read(DAISUKE.card_read(&visit(TAKATA)))
            .await,
    );
    assert_other_city(
        ofunato
            .get_card_read(id::GetCardReadRequest {
                name: takata_read.name.clone(),
            })
            .await,
    );

    // My Number handlers are each city's own: the subject 陸前高田市 names
    // reads there, is no handler in 大船渡市, and never reads across.
    let takata_audit = audit_count(&t, TAKATA).await;
    let read = |card: &id::CardRead, visitor: &Visitor| id::ReadMyNumberRequest {
        card_read: card.name.clone(),
        visit: visit(visitor.code),
        purpose: visitor.my_number_procedure.into(),
    };
    let mut takata_handler = t.handler(TAKATA).await;
    let mut ofunato_namesake = t.handler(OFUNATO).await;
    assert_other_city(
        ofunato_namesake
            .read_my_number(read(&takata_read, &DAISUKE))
            .await,
    );
    assert_other_city(
        t.identity(Role::Admin, OFUNATO)
            .await
            .list_audit_events(id::ListAuditEventsRequest {
                parent: municipality(TAKATA),
                page_size: 10,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(
        audit_count(&t, TAKATA).await,
        takata_audit,
        "a refused cross-city read leaves no trace in the other city"
    );
    let status = ofunato_namesake
        .read_my_number(read(&ofunato_read, &KENTA))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "NOT_A_MY_NUMBER_HANDLER");
    let reading = takata_handler
        .read_my_number(read(&takata_read, &DAISUKE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reading.my_number, "123456789018");
    assert!(
        reading
            .audit_event
            .starts_with(&format!("{}/auditEvents/", municipality(TAKATA)))
    );

    // Imports are the city's own, and refused across.
    assert_other_city(
        t.identity(Role::Admin, OFUNATO)
            .await
            .import_residents(id::ImportResidentsRequest {
                parent: municipality(TAKATA),
                csv: String::new(),
            })
            .await,
    );
    assert_eq!(
        takata
            .search_residents(search(TAKATA, &DAISUKE))
            .await
            .unwrap()
            .into_inner()
            .residents
            .len(),
        1
    );

    // A municipality the server does not serve: NOT_FOUND, named.
    let mut unserved = t.identity(Role::Admin, UNSERVED).await;
    assert_unserved(
        unserved
            .get_resident(id::GetResidentRequest {
                name: resident(UNSERVED, "1"),
            })
            .await,
    );
    assert_unserved(
        unserved
            .list_document_kinds(id::ListDocumentKindsRequest {
                parent: municipality(UNSERVED),
            })
            .await,
    );
    assert_unserved(
        unserved
            .list_audit_events(id::ListAuditEventsRequest {
                parent: municipality(UNSERVED),
                page_size: 10,
                ..Default::default()
            })
            .await,
    );
    t.server.stop().await;
}

// ------------------------------------------------------------------ forms

async fn visits_checklists_and_kpis_stay_in_their_city(backend: Backend) {
    let t = spawn_cities(backend).await;
    let catalogs = [catalog(&t, OFUNATO).await, catalog(&t, TAKATA).await];
    assert_eq!(catalogs[0].name, municipality(OFUNATO));
    assert_eq!(catalogs[1].name, municipality(TAKATA));
    assert_ne!(
        catalogs[0].life_events.len(),
        catalogs[1].life_events.len(),
        "each city reads its own catalog"
    );

    let mut visits = Vec::new();
    for (visitor, catalog) in [(&KENTA, &catalogs[0]), (&DAISUKE, &catalogs[1])] {
        let visit = start_visit(&t, visitor).await;
        assert!(visit.name.starts_with(&office(visitor.code)));
        let visit = navigate_move_out(&t, visitor, &visit).await;
        assert!(!visit.items.is_empty());
        // Every item is the city's own catalog entry, word for word.
        for item in &visit.items {
            let procedure = item.procedure.as_ref().unwrap();
            let own = catalog
                .procedures
                .iter()
                .find(|p| p.id == procedure.id)
                .unwrap_or_else(|| panic!("{} is not in {}", procedure.id, catalog.name));
            assert_eq!(procedure, own);
        }
        visits.push(visit);
    }
    // The same procedure is found at each city's own counter.
    let location = |visit: &f::Visit, procedure: &str| {
        visit
            .items
            .iter()
            .filter_map(|i| i.procedure.as_ref())
            .find(|p| p.id == procedure)
            .map(|p| p.location.clone())
            .unwrap()
    };
    assert_ne!(
        location(&visits[0], "tenshutsu-todoke"),
        location(&visits[1], "tenshutsu-todoke")
    );
    assert!(location(&visits[1], "tenshutsu-todoke").contains("2番窓口"));

    let takata_visit = visits[1].clone();
    let mut ofunato = t.forms(Role::Staff, OFUNATO).await;
    let mut ofunato_admin = t.forms(Role::Admin, OFUNATO).await;

    // Every read, list and export of the other city's visits is refused …
    assert_other_city(
        ofunato
            .get_visit(f::GetVisitRequest {
                name: takata_visit.name.clone(),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .get_catalog(f::GetCatalogRequest {
                name: municipality(TAKATA),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .get_visit_kpis(f::GetVisitKpisRequest {
                visit: takata_visit.name.clone(),
            })
            .await,
    );
    assert_other_city(
        ofunato_admin
            .export_kpis(f::ExportKpisRequest {
                parent: office(TAKATA),
                from_day: date(2026, 4, 1),
                to_day: date(2026, 4, 1),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .render_document(f::RenderDocumentRequest {
                name: takata_visit.name.clone(),
                kind: f::DocumentKind::Checklist as i32,
            })
            .await,
    );
    // … and so is every change, which leaves the visit as it was.
    let item = takata_visit.items[0].name.clone();
    assert_other_city(
        ofunato
            .update_checklist_item(f::UpdateChecklistItemRequest {
                name: item,
                status: f::ItemStatus::Done as i32,
                ..Default::default()
            })
            .await,
    );
    assert_other_city(
        ofunato
            .navigate_life_event(f::NavigateLifeEventRequest {
                visit: takata_visit.name.clone(),
                life_event: "move-out".into(),
                subject: DAISUKE.name(),
                event_date: date(2026, 3, 28),
                answers: vec![f::Answer {
                    question: "keeps_my_number_card".into(),
                    value: "no".into(),
                }],
                ..Default::default()
            })
            .await,
    );
    assert_other_city(
        ofunato
            .create_certificate_request(f::CreateCertificateRequestRequest {
                parent: takata_visit.name.clone(),
                lines: own_certificates(&DAISUKE),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .sign_visit(f::SignVisitRequest {
                visit: takata_visit.name.clone(),
                strokes: vec![f::Stroke {
                    points: vec![
                        f::StrokePoint {
                            x: 1,
                            y: 1,
                            t_ms: 0,
                        },
                        f::StrokePoint {
                            x: 2,
                            y: 2,
                            t_ms: 10,
                        },
                    ],
                }],
            })
            .await,
    );
    assert_other_city(
        ofunato
            .complete_visit(f::CompleteVisitRequest {
                name: takata_visit.name.clone(),
            })
            .await,
    );
    let mut takata = t.forms(Role::Staff, TAKATA).await;
    let unchanged = takata
        .get_visit(f::GetVisitRequest {
            name: takata_visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.etag, takata_visit.etag);
    assert_eq!(unchanged.state, f::VisitState::Open as i32);
    assert_eq!(unchanged.items, takata_visit.items);
    assert!(unchanged.signatures.is_empty() && unchanged.certificate_requests.is_empty());

    // Each city's KPI export holds its own visits only.
    for (code, visit) in [(OFUNATO, &visits[0]), (TAKATA, &visits[1])] {
        let export = t
            .forms(Role::Admin, code)
            .await
            .export_kpis(f::ExportKpisRequest {
                parent: office(code),
                from_day: date(2026, 4, 1),
                to_day: date(2026, 4, 1),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            export
                .visits
                .iter()
                .map(|v| v.visit.as_str())
                .collect::<Vec<_>>(),
            [visit.name.as_str()],
            "{code}"
        );
        let other = if code == OFUNATO { TAKATA } else { OFUNATO };
        assert!(!export.csv.contains(&municipality(other)), "{}", export.csv);
    }
    let completed = takata
        .complete_visit(f::CompleteVisitRequest {
            name: takata_visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        completed.visit.unwrap().state,
        f::VisitState::Completed as i32
    );

    let mut unserved = t.forms(Role::Admin, UNSERVED).await;
    assert_unserved(
        unserved
            .get_catalog(f::GetCatalogRequest {
                name: municipality(UNSERVED),
            })
            .await,
    );
    assert_unserved(
        unserved
            .export_kpis(f::ExportKpisRequest {
                parent: office(UNSERVED),
                from_day: date(2026, 4, 1),
                to_day: date(2026, 4, 1),
            })
            .await,
    );
    t.server.stop().await;
}

// ------------------------------------------------------------------ pos

/// A confirmed certificate request of `visitor`'s own certificates.
async fn confirmed_request(t: &Cities, visitor: &Visitor) -> f::CertificateRequest {
    let visit = start_visit(t, visitor).await;
    let mut forms = t.forms(Role::Staff, visitor.code).await;
    let request = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name,
            lines: own_certificates(visitor),
        })
        .await
        .unwrap()
        .into_inner();
    forms
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest { name: request.name })
        .await
        .unwrap()
        .into_inner()
}

async fn certificate_payments_use_each_citys_fees(backend: Backend) {
    let t = spawn_cities(backend).await;
    let register = |code: &str| format!("{}/registers/r1", office(code));
    let mut orders = Vec::new();
    let mut payments = Vec::new();
    for visitor in [&KENTA, &DAISUKE] {
        let code = visitor.code;
        let other = if code == OFUNATO { TAKATA } else { OFUNATO };
        let catalog = catalog(&t, code).await;
        let request = confirmed_request(&t, visitor).await;
        let mut pos = t.pos(Role::Staff, code).await;
        let mut intruder = t.pos(Role::Staff, other).await;

        // The other city may not charge this city's request, neither at
        // this city's office nor at its own.
        assert_other_city(
            intruder
                .create_order(pb::CreateOrderRequest {
                    parent: office(code),
                    certificate_request: request.name.clone(),
                    request_id: uuid(),
                    ..Default::default()
                })
                .await,
        );
        let status = intruder
            .create_order(pb::CreateOrderRequest {
                parent: office(other),
                certificate_request: request.name.clone(),
                request_id: uuid(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

        pos.open_register_session(pb::OpenRegisterSessionRequest {
            register: register(code),
            float_yen: 10_000,
        })
        .await
        .unwrap();
        // Not ordered before: the refused attempts left nothing behind.
        let order = pos
            .create_order(pb::CreateOrderRequest {
                parent: office(code),
                certificate_request: request.name.clone(),
                request_id: uuid(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        // Priced by this city's catalog: fee, copies and revenue account.
        let mut total = 0;
        for (line, asked) in order.lines.iter().zip(own_certificates(visitor)) {
            let kind = catalog
                .certificate_kinds
                .iter()
                .find(|k| k.id == asked.kind)
                .unwrap();
            assert_eq!(line.fee_item, asked.kind);
            assert_eq!(yen(&line.amount), yen(&kind.fee) * i64::from(asked.copies));
            assert_eq!(line.revenue_account, kind.revenue_account);
            total += yen(&line.amount);
        }
        assert_eq!(order.lines.len(), 3);
        assert_eq!(yen(&order.total), total);
        assert_eq!(yen(&order.total), yen(&request.total_fee));

        assert_other_city(
            intruder
                .get_order(pb::GetOrderRequest {
                    name: order.name.clone(),
                })
                .await,
        );
        assert_other_city(
            intruder
                .create_payment(pb::CreatePaymentRequest {
                    order: order.name.clone(),
                    register: register(code),
                    method: pb::PaymentMethod::Cash as i32,
                    request_id: uuid(),
                    tendered_yen: total,
                })
                .await,
        );
        let payment = pos
            .create_payment(pb::CreatePaymentRequest {
                order: order.name.clone(),
                register: register(code),
                method: pb::PaymentMethod::Cash as i32,
                request_id: uuid(),
                tendered_yen: 5_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(payment.state, pb::PaymentState::Approved as i32);
        assert_eq!(yen(&payment.change), 5_000 - total);
        let receipt = pos
            .reprint_receipt(pb::ReprintReceiptRequest {
                payment: payment.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(receipt.municipality_name, visitor.name_ja);
        orders.push((order, catalog));
        payments.push(payment);
    }
    // The cities' accounts differ, so the exports below tell them apart.
    let account = |i: usize| orders[i].0.lines[0].revenue_account.clone();
    assert_ne!(account(0), account(1));

    // Each city's hand-entered fees are its own schedule: 大船渡市 keeps
    // 「その他の税務証明」, 陸前高田市's catalog has no such item.
    let hand = |code: &str| pb::CreateOrderRequest {
        parent: office(code),
        lines: vec![pb::OrderLineInput {
            fee_item: "zeimu-shomei".into(),
            copies: 1,
            exemption_reason: String::new(),
        }],
        request_id: uuid(),
        ..Default::default()
    };
    t.pos(Role::Staff, OFUNATO)
        .await
        .create_order(hand(OFUNATO))
        .await
        .unwrap();
    let status = t
        .pos(Role::Staff, TAKATA)
        .await
        .create_order(hand(TAKATA))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Payments, voids, registers, closes and exports are refused across,
    // with no effect on the city's books.
    let mut ofunato = t.pos(Role::Staff, OFUNATO).await;
    let mut takata = t.pos(Role::Staff, TAKATA).await;
    let close_request = |code: &str| pb::GetDailyCloseRequest {
        office: office(code),
        ..Default::default()
    };
    let export_request = |code: &str| pb::ExportReconciliationRequest {
        office: office(code),
        start_day: date(2026, 4, 1),
        end_day: date(2026, 4, 1),
    };
    let close_before = takata
        .get_daily_close(close_request(TAKATA))
        .await
        .unwrap()
        .into_inner();
    let takata_payment = payments[1].clone();
    assert_other_city(
        ofunato
            .get_payment(pb::GetPaymentRequest {
                name: takata_payment.name.clone(),
            })
            .await,
    );
    // Voids and refunds take a supervisor; an admin of the other city is
    // refused all the same.
    let mut ofunato_admin = t.pos(Role::Admin, OFUNATO).await;
    assert_other_city(
        ofunato_admin
            .void_payment(pb::VoidPaymentRequest {
                name: takata_payment.name.clone(),
                reason: "取消".into(),
                request_id: uuid(),
            })
            .await,
    );
    assert_other_city(
        ofunato_admin
            .refund_payment(pb::RefundPaymentRequest {
                name: takata_payment.name.clone(),
                line_index: 0,
                amount_yen: 100,
                reason: "返金".into(),
                register: register(TAKATA),
                request_id: uuid(),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .reprint_receipt(pb::ReprintReceiptRequest {
                payment: takata_payment.name.clone(),
            })
            .await,
    );
    assert_other_city(
        ofunato
            .close_register_session(pb::CloseRegisterSessionRequest {
                register: register(TAKATA),
                counted_cash_yen: 0,
            })
            .await,
    );
    assert_other_city(ofunato.get_daily_close(close_request(TAKATA)).await);
    assert_other_city(
        ofunato
            .get_daily_close(pb::GetDailyCloseRequest {
                register: register(TAKATA),
                ..Default::default()
            })
            .await,
    );
    assert_other_city(ofunato.export_reconciliation(export_request(TAKATA)).await);
    assert_other_city(
        t.pos(Role::Device, OFUNATO)
            .await
            .watch_register(pb::WatchRegisterRequest {
                register: register(TAKATA),
                after_sequence: 0,
            })
            .await,
    );
    let still = takata
        .get_payment(pb::GetPaymentRequest {
            name: takata_payment.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still, takata_payment);
    let close_after = takata
        .get_daily_close(close_request(TAKATA))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(close_after, close_before);

    // Each city's close and reconciliation hold its own receipts only.
    for (i, (code, client)) in [(OFUNATO, &mut ofunato), (TAKATA, &mut takata)]
        .into_iter()
        .enumerate()
    {
        let (order, catalog) = &orders[i];
        let close = client
            .get_daily_close(close_request(code))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(yen(&close.received), yen(&order.total), "{code}");
        let own_accounts: Vec<&str> = catalog
            .certificate_kinds
            .iter()
            .map(|k| k.revenue_account.as_str())
            .collect();
        for total in &close.by_account {
            assert!(
                own_accounts.contains(&total.revenue_account.as_str()),
                "{code}: {}",
                total.revenue_account
            );
        }
        let export = client
            .export_reconciliation(export_request(code))
            .await
            .unwrap()
            .into_inner();
        assert!(export.rows > 0);
        assert!(export.csv.contains(&account(i)), "{}", export.csv);
        assert!(!export.csv.contains(&account(1 - i)), "{}", export.csv);
    }

    let mut unserved = t.pos(Role::Admin, UNSERVED).await;
    assert_unserved(unserved.create_order(hand(UNSERVED)).await);
    assert_unserved(
        unserved
            .export_reconciliation(export_request(UNSERVED))
            .await,
    );
    t.server.stop().await;
}
