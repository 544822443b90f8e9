//! A 委任状 at the counter, end to end on both backends: the おくやみ
//! daughter brings her mother's letter; staff record it once on the visit
//! and every checklist item and certificate line she asks for her mother
//! is answered per item by the identity service (allowed by the letter,
//! or refused: expired, outside its scope, the delegator deceased). And
//! TransferForItem broken between the queue's transfer and the forms
//! write: the retry completes without moving the ticket twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use madoguchi::cli::Auth;
use madoguchi_e2e::{
    Backend, OFFICE, Spawn, TestServer, counter, issue, on_both_backends, spawn, token,
};
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::queue::v1 as q;
use madoguchi_proto::types::v1::{Date, JapaneseName};
use sea_orm::{ConnectionTrait, Database, DbBackend};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Forms = FormsServiceClient<InterceptedService<Channel, Auth>>;

const M: &str = "municipalities/032034";
const TARO: &str = "municipalities/032034/residents/100001";
const HANAKO: &str = "municipalities/032034/residents/100002";
const TSURUKO: &str = "municipalities/032034/residents/100003";

on_both_backends!(
    daughter_acts_for_her_mother_with_a_letter,
    a_guardian_shows_the_registry_certificate,
    transfer_completes_once_after_a_failed_mark,
    transfer_completes_after_the_queue_failed
);

async fn forms(t: &TestServer) -> Forms {
    let auth = Auth::bearer(&token(Role::Staff, "032034").token).unwrap();
    FormsServiceClient::with_interceptor(t.channel().await, auth)
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn name(family: &str, given: &str) -> Option<JapaneseName> {
    Some(JapaneseName {
        family_name: family.into(),
        given_name: given.into(),
        ..Default::default()
    })
}

fn answer(question: &str, value: &str) -> f::Answer {
    f::Answer {
        question: question.into(),
        value: value.into(),
    }
}

fn item<'a>(visit: &'a f::Visit, procedure: &str) -> &'a f::ChecklistItem {
    visit
        .items
        .iter()
        .find(|i| i.procedure.as_ref().is_some_and(|p| p.id == procedure))
        .unwrap_or_else(|| panic!("{procedure} is not on the checklist"))
}

/// The daughter at the one-stop counter with her visit navigated for her
/// father's death (her mother was the 喪主).
async fn okuyami_visit(t: &TestServer) -> (q::Ticket, f::Visit) {
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap()
        .into_inner();
    staff
        .call_next(q::CallNextRequest {
            counter: counter("2"),
            ..Default::default()
        })
        .await
        .unwrap();
    let auth = Auth::bearer(&token(Role::Staff, "032034").token).unwrap();
    let mut identity = IdentityServiceClient::with_interceptor(t.channel().await, auth);
    let verification = identity
        .verify_identity(id::VerifyIdentityRequest {
            parent: M.into(),
            visit: ticket.name.clone(),
            visitor: Some(id::PersonClaim {
                person_name: name("おくやみ", "つる子"),
                birth_date: date(1972, 10, 31),
                address: None,
            }),
            resident: TSURUKO.into(),
            documents: vec![id::PresentedDocument {
                kind: "my-number-card".into(),
                expiry_date: date(2030, 10, 31),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verification.verified);
    let mut forms = forms(t).await;
    let visit = forms
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let visit = forms
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "death".into(),
            subject: TARO.into(),
            event_date_wareki: "令和5年6月16日".into(),
            answers: vec![
                answer("funeral_held", "yes"),
                answer("chief_mourner", HANAKO),
                answer("survivor", HANAKO),
                answer("medical_costs", "yes"),
                answer("pension_book_found", "no"),
                answer("mourner_can_visit", "no"),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (ticket, visit)
}

/// The mother's letter: the daughter (as written on it) may claim the
/// unpaid pension and get her income certificate. (The 葬祭費 lapsed by
/// 時効 two years after the death, a year before this visit.)
fn mothers_letter(written_on_wareki: &str, scope: &[&str]) -> f::PowerOfAttorney {
    f::PowerOfAttorney {
        delegator: HANAKO.into(),
        proxy_name: name("おくやみ", "つる子"),
        proxy_birth_date: date(1972, 10, 31),
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
        written_on_wareki: written_on_wareki.into(),
        ..Default::default()
    }
}

fn line(subject: &str, kind: &str) -> f::CertificateLineInput {
    f::CertificateLineInput {
        subject: subject.into(),
        kind: kind.into(),
        copies: 1,
        purpose: "相続手続".into(),
        ..Default::default()
    }
}

/// The PreconditionFailure violations of a status as (subject, type).
fn refused(status: &tonic::Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "NOT_ENTITLED");
    details
        .precondition_failure()
        .unwrap()
        .violations
        .iter()
        .map(|v| (v.subject.clone(), v.r#type.clone()))
        .collect()
}

async fn daughter_acts_for_her_mother_with_a_letter(backend: Backend) {
    // The server's today is 2026-04-01 (令和8年4月1日).
    let t = spawn(Spawn::new(backend)).await;
    let mut forms = forms(&t).await;
    let (_, visit) = okuyami_visit(&t).await;
    let i = item(&visit, "mishikyu-nenkin");
    assert!(!i.visitor_may_do);
    assert!(i.proxy_reason.contains("POWER_OF_ATTORNEY_MISSING"));
    // The lapsed 葬祭費 asks for no letter at all.
    assert_eq!(
        item(&visit, "sosaihi").deadline_standing,
        f::DeadlineStanding::Lapsed as i32
    );
    // Without a letter the unpaid pension cannot be marked done today.
    let early = forms
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: item(&visit, "mishikyu-nenkin").name.clone(),
            status: f::ItemStatus::Done as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(&early),
        [(
            item(&visit, "mishikyu-nenkin").name.clone(),
            "PROXY_DECISION_REASON_POWER_OF_ATTORNEY_MISSING".to_owned()
        )]
    );

    // Bad input is refused field by field and changes nothing.
    let bad = forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![
                f::PowerOfAttorney {
                    delegator: "municipalities/131016/residents/1".into(),
                    ..mothers_letter("令和8年2月30日", &["mishikyu-nenkin", "no-such-thing"])
                },
                f::PowerOfAttorney {
                    proxy_name: name("おくやみ\u{7}", "つる子"),
                    written_on: date(2026, 3, 1),
                    ..mothers_letter("令和8年3月1日", &[])
                },
            ],
            legal_representations: vec![f::LegalRepresentation {
                kind: f::LegalRepresentativeKind::AdultGuardian as i32,
                represented: HANAKO.into(),
                evidence_issued_on: None,
            }],
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = bad
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "legal_representations[0].evidence_issued_on",
            "powers_of_attorney[0].delegator",
            "powers_of_attorney[0].scope[1]",
            "powers_of_attorney[0].written_on_wareki",
            "powers_of_attorney[1].proxy_name.family_name",
            "powers_of_attorney[1].scope",
            "powers_of_attorney[1].written_on_wareki",
        ]
    );
    let unchanged = forms
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unchanged.powers_of_attorney.is_empty());
    assert_eq!(unchanged.etag, visit.etag);

    // A letter written more than 3 months ago: refused as expired.
    let scope = ["mishikyu-nenkin", "shotoku-kazei"];
    let old = forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![mothers_letter("令和7年12月31日", &scope)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.powers_of_attorney[0].written_on, date(2025, 12, 31));
    let i = item(&old, "mishikyu-nenkin");
    assert!(!i.visitor_may_do);
    assert!(
        i.proxy_reason.contains("POWER_OF_ATTORNEY_EXPIRED"),
        "{}",
        i.proxy_reason
    );
    assert_eq!(i.status, f::ItemStatus::Later as i32);
    assert!(i.note.contains("有効期間"), "{}", i.note);

    // The fresh letter (令和8年3月25日) replaces it: the claim may be done
    // today, and the "letter needed" flag is gone.
    let now_allowed = forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![mothers_letter("令和8年3月25日", &scope)],
            etag: old.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now_allowed.powers_of_attorney.len(), 1);
    assert_eq!(
        now_allowed.powers_of_attorney[0].written_on,
        date(2026, 3, 25)
    );
    let i = item(&now_allowed, "mishikyu-nenkin");
    assert!(i.visitor_may_do);
    assert!(
        i.proxy_reason
            .starts_with("PROXY_DECISION_REASON_POWER_OF_ATTORNEY:"),
        "{}",
        i.proxy_reason
    );
    assert_eq!(i.status, f::ItemStatus::Pending as i32);
    assert!(i.note.is_empty());
    // With it, it can.
    forms
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: item(&visit, "mishikyu-nenkin").name.clone(),
            status: f::ItemStatus::Done as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // A letter cannot revive a lapsed right: a letter naming the 葬祭費
    // leaves it 対象外 and refused.
    let revived = forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![mothers_letter(
                "令和8年3月25日",
                &["sosaihi", "mishikyu-nenkin", "shotoku-kazei"],
            )],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let i = item(&revived, "sosaihi");
    assert_eq!(i.status, f::ItemStatus::NotApplicable as i32);
    assert!(!i.visitor_may_do);
    let status = forms
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: i.name.clone(),
            status: f::ItemStatus::Done as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "DEADLINE_LAPSED"
    );
    assert!(
        !now_allowed
            .flags
            .iter()
            .any(|f| f.id == "power-of-attorney-needed"),
        "{:?}",
        now_allowed.flags
    );
    // Items allowed on another basis are untouched.
    assert_eq!(
        item(&now_allowed, "kaigo-soshitsu").proxy_reason,
        item(&visit, "kaigo-soshitsu").proxy_reason
    );
    // A stale etag is refused.
    let stale = forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            etag: old.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    // A letter "from" the late father cannot count: 委任 ends with death.
    forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![
                mothers_letter("令和8年3月25日", &scope),
                f::PowerOfAttorney {
                    delegator: TARO.into(),
                    ..mothers_letter("令和8年3月25日", &["shotoku-kazei"])
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();

    // Each line is answered: her mother's income certificate by the
    // letter; her mother's seal certificate is not on the letter; her
    // father's income certificate needs a letter from a living person.
    let status = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![
                line(HANAKO, "shotoku-kazei"),
                line(HANAKO, "inkan"),
                line(TARO, "shotoku-kazei"),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(&status),
        [
            (
                "lines[1]".to_owned(),
                "PROXY_DECISION_REASON_OUT_OF_SCOPE".to_owned()
            ),
            (
                "lines[2]".to_owned(),
                "PROXY_DECISION_REASON_DELEGATOR_DECEASED".to_owned()
            ),
        ]
    );
    let after = forms
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after.certificate_requests.is_empty(), "nothing half-saved");

    let request = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![line(HANAKO, "shotoku-kazei"), line(TARO, "joseki-tohon")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        request.lines[0].basis,
        "PROXY_DECISION_REASON_POWER_OF_ATTORNEY"
    );
    assert_eq!(request.lines[1].basis, "PROXY_DECISION_REASON_FAMILY");

    // Staff notice they misread the letter: it does not list the income
    // certificate. Confirmation decides every line again and refuses.
    forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![mothers_letter("令和8年3月25日", &["mishikyu-nenkin"])],
            ..Default::default()
        })
        .await
        .unwrap();
    let status = forms
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
            name: request.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(&status),
        [(
            "lines[0]".to_owned(),
            "PROXY_DECISION_REASON_OUT_OF_SCOPE".to_owned()
        )]
    );
    let draft = forms
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        draft.certificate_requests[0].state,
        f::CertificateRequestState::Draft as i32
    );

    // With the letter as it really reads, the request is confirmed.
    forms
        .record_proxy_documents(f::RecordProxyDocumentsRequest {
            visit: visit.name.clone(),
            powers_of_attorney: vec![mothers_letter("令和8年3月25日", &scope)],
            ..Default::default()
        })
        .await
        .unwrap();
    let confirmed = forms
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
            name: request.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        confirmed.state,
        f::CertificateRequestState::Confirmed as i32
    );

    // The letter ages on the server's clock: four months later it no
    // longer counts for a new request.
    t.clock.advance(chrono::Duration::days(120));
    let status = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![line(HANAKO, "shotoku-kazei")],
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(&status),
        [(
            "lines[0]".to_owned(),
            "PROXY_DECISION_REASON_POWER_OF_ATTORNEY_EXPIRED".to_owned()
        )]
    );
}

/// The daughter as her mother's 成年後見人: the 登記事項証明書 counts for
/// 3 months from its issue, like a letter.
async fn a_guardian_shows_the_registry_certificate(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut forms = forms(&t).await;
    let (_, visit) = okuyami_visit(&t).await;
    let guardian = |issued: Option<Date>| f::RecordProxyDocumentsRequest {
        visit: visit.name.clone(),
        legal_representations: vec![f::LegalRepresentation {
            kind: f::LegalRepresentativeKind::AdultGuardian as i32,
            represented: HANAKO.into(),
            evidence_issued_on: issued,
        }],
        ..Default::default()
    };
    let stale = forms
        .record_proxy_documents(guardian(date(2025, 11, 1)))
        .await
        .unwrap()
        .into_inner();
    let i = item(&stale, "mishikyu-nenkin");
    assert!(!i.visitor_may_do);
    assert!(
        i.proxy_reason.contains("LEGAL_REPRESENTATION_INVALID"),
        "{}",
        i.proxy_reason
    );
    assert!(i.note.contains("法定代理人"), "{}", i.note);

    let fresh = forms
        .record_proxy_documents(guardian(date(2026, 3, 10)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.legal_representations.len(), 1);
    let i = item(&fresh, "mishikyu-nenkin");
    assert!(i.visitor_may_do);
    assert!(
        i.proxy_reason
            .starts_with("PROXY_DECISION_REASON_LEGAL_REPRESENTATIVE:"),
        "{}",
        i.proxy_reason
    );
    let request = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![line(HANAKO, "shotoku-kazei")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        request.lines[0].basis,
        "PROXY_DECISION_REASON_LEGAL_REPRESENTATIVE"
    );
    // 印鑑登録証明書 admits no legal representative in the catalog (only
    // the household and a letter): refused with the precise reason.
    let status = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![line(HANAKO, "inkan")],
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused(&status),
        [(
            "lines[0]".to_owned(),
            "PROXY_DECISION_REASON_POWER_OF_ATTORNEY_MISSING".to_owned()
        )]
    );
}

/// Installs a trigger that fails every update of the visit row to
/// `version`: the forms write after the queue's transfer.
async fn break_visit_update(t: &TestServer, version: i64) {
    let db = Database::connect(t.database_url.as_str()).await.unwrap();
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            db.execute_unprepared(&format!(
                "CREATE TRIGGER break_mark BEFORE UPDATE ON forms_visits \
                 WHEN NEW.version = {version} \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ))
            .await
            .unwrap();
        }
        _ => {
            db.execute_unprepared(
                "CREATE FUNCTION break_mark() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
            )
            .await
            .unwrap();
            db.execute_unprepared(&format!(
                "CREATE TRIGGER break_mark BEFORE UPDATE ON forms_visits FOR EACH ROW \
                 WHEN (NEW.version = {version}) EXECUTE FUNCTION break_mark()"
            ))
            .await
            .unwrap();
        }
    }
    db.close().await.unwrap();
}

async fn repair_visit_update(t: &TestServer) {
    let db = Database::connect(t.database_url.as_str()).await.unwrap();
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "DROP TRIGGER break_mark",
        _ => "DROP TRIGGER break_mark ON forms_visits",
    };
    db.execute_unprepared(sql).await.unwrap();
    db.close().await.unwrap();
}

async fn transfer_completes_once_after_a_failed_mark(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut forms = forms(&t).await;
    let mut queue = t.client(Role::Staff).await;
    let (ticket, visit) = okuyami_visit(&t).await;
    let kaigo = item(&visit, "kaigo-soshitsu").name.clone();
    let target = format!(
        "{OFFICE}/categories/{}",
        item(&visit, "kaigo-soshitsu")
            .procedure
            .as_ref()
            .unwrap()
            .category
    );

    // The intent is written at version etag+1, the mark at etag+2: break
    // the mark, after the queue has moved the ticket.
    let version: i64 = visit.etag.parse().unwrap();
    break_visit_update(&t, version + 2).await;
    let failed = forms
        .transfer_for_item(f::TransferForItemRequest {
            name: kaigo.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    let moved = queue
        .get_ticket(q::GetTicketRequest {
            name: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.current_category, target, "the queue committed");
    let legs = moved.legs.len();
    let pending = forms
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let pending_item = item(&pending, "kaigo-soshitsu");
    assert!(!pending_item.transferred);
    assert!(!pending_item.transfer_request_id.is_empty(), "intent kept");
    let key = pending_item.transfer_request_id.clone();

    // The database recovers; the retry completes the mark and the queue
    // replays the transfer instead of moving the ticket again.
    repair_visit_update(&t).await;
    let done = forms
        .transfer_for_item(f::TransferForItemRequest {
            name: kaigo.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.category, target);
    assert_eq!(done.ticket_display_number, ticket.display_number);
    let marked = done.item.unwrap();
    assert!(marked.transferred);
    assert!(marked.transfer_request_id.is_empty());
    let after = queue
        .get_ticket(q::GetTicketRequest {
            name: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.legs.len(), legs, "transferred once");
    assert_eq!(after.current_category, target);

    // The queue's side on its own: the same key replays, a different
    // category under the same key is refused.
    let replay = queue
        .transfer(q::TransferRequest {
            name: ticket.name.clone(),
            category: target.clone(),
            etag: String::new(),
            request_id: key.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.legs.len(), legs);
    let misuse = queue
        .transfer(q::TransferRequest {
            name: ticket.name.clone(),
            category: format!("{OFFICE}/categories/life-events"),
            etag: String::new(),
            request_id: key,
        })
        .await
        .unwrap_err();
    assert_eq!(misuse.code(), Code::InvalidArgument);
    // Once marked, asking again is the plain precondition.
    let again = forms
        .transfer_for_item(f::TransferForItemRequest { name: kaigo })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

/// Breaks the queue instead: its transfer transaction fails (the insert of
/// the idempotency record raises), so nothing moved. Meanwhile a colleague
/// sends the ticket to the department by hand; the retry finds it there
/// and only completes the mark.
async fn transfer_completes_after_the_queue_failed(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut forms = forms(&t).await;
    let mut queue = t.client(Role::Staff).await;
    let (ticket, visit) = okuyami_visit(&t).await;
    let kaigo = item(&visit, "kaigo-soshitsu").name.clone();
    let target = format!(
        "{OFFICE}/categories/{}",
        item(&visit, "kaigo-soshitsu")
            .procedure
            .as_ref()
            .unwrap()
            .category
    );
    let db = Database::connect(t.database_url.as_str()).await.unwrap();
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    if postgres {
        db.execute_unprepared(
            "CREATE FUNCTION break_queue() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
        )
        .await
        .unwrap();
        db.execute_unprepared(
            "CREATE TRIGGER break_queue BEFORE INSERT ON queue_requests \
             FOR EACH ROW EXECUTE FUNCTION break_queue()",
        )
        .await
        .unwrap();
    } else {
        db.execute_unprepared(
            "CREATE TRIGGER break_queue BEFORE INSERT ON queue_requests \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .await
        .unwrap();
    }
    let failed = forms
        .transfer_for_item(f::TransferForItemRequest {
            name: kaigo.clone(),
        })
        .await
        .unwrap_err();
    assert_ne!(failed.code(), Code::Ok);
    let still = queue
        .get_ticket(q::GetTicketRequest {
            name: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(still.current_category, target, "the queue rolled back");
    let legs = still.legs.len();

    // By hand (no request id, so the broken table is not touched).
    queue
        .transfer(q::TransferRequest {
            name: ticket.name.clone(),
            category: target.clone(),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    db.execute_unprepared(if postgres {
        "DROP TRIGGER break_queue ON queue_requests"
    } else {
        "DROP TRIGGER break_queue"
    })
    .await
    .unwrap();
    db.close().await.unwrap();

    let done = forms
        .transfer_for_item(f::TransferForItemRequest { name: kaigo })
        .await
        .unwrap()
        .into_inner();
    assert!(done.item.unwrap().transferred);
    let after = queue
        .get_ticket(q::GetTicketRequest {
            name: ticket.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.current_category, target);
    assert_eq!(after.legs.len(), legs + 1, "moved once, by hand");
}
