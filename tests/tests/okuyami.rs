//! The seed's おくやみ scenario (section 「2 状況設定」, conditions 1–9) end
//! to end over gRPC with a real server on port 0: queue, identity and forms
//! in one process, on SQLite and PostgreSQL.
//!
//! 太郎 (80, 後期高齢者医療, 介護保険, 身体障害者手帳1級, 印鑑登録, 厚生年金,
//! house and land in his name) died on R5.6.16; 花子 (77, no car) was the
//! 喪主; their daughter つる子 lives in 仙台市, brings her My Number card and
//! driver's licence, and no 委任状. The 死亡届 was filed by a relative.
//!
//! She comes on 令和8年4月1日, almost three years later: the 14-day
//! notifications are late but still accepted, while the 2-year claims
//! (葬祭費, 高額療養費, the premium refunds) and the 3-month 相続放棄 have
//! lapsed — the checklist says so and sends her to no counter for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use madoguchi::cli::Auth;
use madoguchi_e2e::okuyami::{self, HANAKO, M, TARO, TSURUKO, answer, date, okuyami_answers};
use madoguchi_e2e::{
    Backend, OFFICE, Spawn, TestServer, counter, issue, on_both_backends, spawn, token,
};
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::queue::v1 as q;
use madoguchi_proto::types::v1::JapaneseName;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Forms = FormsServiceClient<InterceptedService<Channel, Auth>>;
type Identity = IdentityServiceClient<InterceptedService<Channel, Auth>>;

on_both_backends!(
    okuyami_one_visit,
    move_out_with_a_child,
    move_in_from_a_declared_household,
    birth_in_a_self_employed_household,
    bad_input_saves_nothing,
    one_signature_even_when_raced
);

async fn forms(t: &TestServer, role: Role) -> Forms {
    let auth = Auth::bearer(&token(role, "032034").token).unwrap();
    FormsServiceClient::with_interceptor(t.channel().await, auth)
}

async fn identity(t: &TestServer, role: Role) -> Identity {
    let auth = Auth::bearer(&token(role, "032034").token).unwrap();
    IdentityServiceClient::with_interceptor(t.channel().await, auth)
}

fn name(family: &str, given: &str) -> Option<JapaneseName> {
    Some(JapaneseName {
        family_name: family.into(),
        given_name: given.into(),
        ..Default::default()
    })
}

/// Issues a ticket in `category`, calls it to `counter_id` and starts it.
async fn ticket_at(t: &TestServer, category: &str, counter_id: &str) -> q::Ticket {
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue(category, false))
        .await
        .unwrap()
        .into_inner();
    let started = madoguchi_e2e::call_and_start(&mut staff, counter_id).await;
    assert_eq!(started.name, ticket.name);
    started
}

/// The daughter shows her My Number card (photo ID) and her licence.
async fn verify_daughter(t: &TestServer, ticket: &str) -> id::IdentityVerification {
    let mut identity = identity(t, Role::Staff).await;
    let verification = identity
        .verify_identity(okuyami::daughter_verification(ticket))
        .await
        .unwrap()
        .into_inner();
    assert!(verification.verified, "{verification:?}");
    assert!(verification.photo_id);
    verification
}

fn item<'a>(visit: &'a f::Visit, procedure: &str) -> &'a f::ChecklistItem {
    visit
        .items
        .iter()
        .find(|i| i.procedure.as_ref().is_some_and(|p| p.id == procedure))
        .unwrap_or_else(|| panic!("{procedure} is not on the checklist"))
}

fn procedure_ids(items: &[f::ChecklistItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            i.procedure
                .as_ref()
                .map(|p| p.id.clone())
                .unwrap_or_default()
        })
        .collect()
}

fn pdf_text(pdf: &[u8]) -> String {
    let document = lopdf::Document::load_mem(pdf).unwrap();
    let pages: Vec<u32> = document.get_pages().keys().copied().collect();
    document.extract_text(&pages).unwrap()
}

fn strokes() -> Vec<f::Stroke> {
    vec![
        f::Stroke {
            points: (0..20)
                .map(|i| f::StrokePoint {
                    x: 500 + i * 300,
                    y: 5000 + (i % 5) * 400,
                    t_ms: i * 15,
                })
                .collect(),
        },
        f::Stroke {
            points: vec![f::StrokePoint {
                x: 8000,
                y: 3000,
                t_ms: 400,
            }],
        },
    ]
}

async fn set(
    forms: &mut Forms,
    visit: &f::Visit,
    procedure: &str,
    status: f::ItemStatus,
    counter_id: &str,
) {
    forms
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: item(visit, procedure).name.clone(),
            status: status as i32,
            note: String::new(),
            counter: counter(counter_id),
        })
        .await
        .unwrap_or_else(|e| panic!("{procedure}: {e}"));
}

async fn okuyami_one_visit(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut queue = t.client(Role::Staff).await;
    let mut one_stop = forms(&t, Role::Staff).await;
    // The department's staff member is another principal.
    let mut department = forms(&t, Role::Admin).await;
    let mut department_queue = t.client(Role::Admin).await;

    // 条件2: she came alone from 仙台市 and wants everything in one visit.
    let ticket = ticket_at(&t, "life-events", "2").await;
    let verification = verify_daughter(&t, &ticket.name).await;
    let visit = one_stop
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name.clone(),
            ticket: ticket.name.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(visit.applicant, TSURUKO);
    assert!(!visit.applicant_resident, "she lives in 仙台市");
    assert_eq!(visit.applicant_name.as_ref().unwrap().given_name, "つる子");

    let visit = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "death".into(),
            subject: TARO.into(),
            event_date_wareki: "令和5年6月16日".into(),
            answers: okuyami_answers(),
            relations: vec![
                f::PersonRelation {
                    person: TARO.into(),
                    relation: f::Relation::LinealRelative as i32,
                },
                f::PersonRelation {
                    person: HANAKO.into(),
                    relation: f::Relation::LinealRelative as i32,
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // The checklist the facts imply, and nothing the facts rule out: no
    // 死亡届 (the registry records the death, so it was filed), no 世帯主変更
    // (the mother remains alone), no 国保 (he was in 後期高齢者医療), no 国民年金
    // (he drew 厚生年金), no 児童手当. The 遺族厚生年金 is listed because his
    // wife remains; the inheritance items (相続放棄の検討, 相続税, 証明書) for
    // every death with property.
    assert_eq!(
        procedure_ids(&visit.items),
        [
            "koki-soshitsu",
            "sosaihi",
            "kogaku-ryoyohi",
            "koki-hokenryo-seisan",
            "kaigo-soshitsu",
            "kaigo-hokenryo-seisan",
            "shogai-techo-henkan",
            "inkan-haishi",
            "nenkin-kosei",
            "mishikyu-nenkin",
            "izoku-kosei-nenkin",
            "jumin-zei-sozoku",
            "kotei-shisan-sozokunin",
            "sozoku-toki",
            "sozoku-zei",
            "sozoku-hoki",
            "shomeisho-sozoku",
        ]
    );
    // The pension goes to the pension office, not the one-stop counter.
    let pension = item(&visit, "nenkin-kosei").procedure.clone().unwrap();
    assert!(!pension.one_stop && pension.category.is_empty());
    assert!(pension.location.contains("年金事務所"));
    assert_eq!(
        item(&visit, "koki-soshitsu").due_date,
        date(2023, 6, 30),
        "14 days after the death"
    );
    // Late but still accepted: the 14-day notifications, the pension
    // office's 10-day notice and the 10-month 相続税 return stay open, with
    // what a late filing means.
    for late in [
        "koki-soshitsu",
        "kaigo-soshitsu",
        "nenkin-kosei",
        "sozoku-zei",
    ] {
        let i = item(&visit, late);
        assert_eq!(
            i.deadline_standing,
            f::DeadlineStanding::Late as i32,
            "{late}"
        );
        assert!(!i.deadline_note.is_empty(), "{late}");
        assert_ne!(i.status, f::ItemStatus::NotApplicable as i32, "{late}");
    }
    assert!(item(&visit, "nenkin-kosei").deadline_note.contains("返還"));
    // Lapsed: the 2-year claims (葬祭費 due 令和7年6月16日) and the 3-month
    // 熟慮期間 of 相続放棄. 対象外, nobody is asked for a 委任状 for them.
    for lapsed in [
        "sosaihi",
        "kogaku-ryoyohi",
        "koki-hokenryo-seisan",
        "kaigo-hokenryo-seisan",
        "sozoku-hoki",
    ] {
        let i = item(&visit, lapsed);
        assert_eq!(
            i.deadline_standing,
            f::DeadlineStanding::Lapsed as i32,
            "{lapsed}"
        );
        assert_eq!(i.status, f::ItemStatus::NotApplicable as i32, "{lapsed}");
        assert!(i.proxy_reason.is_empty(), "{lapsed}: {}", i.proxy_reason);
    }
    assert_eq!(item(&visit, "sosaihi").due_date, date(2025, 6, 16));
    assert!(item(&visit, "sosaihi").deadline_note.contains("時効"));
    for in_time in ["mishikyu-nenkin", "izoku-kosei-nenkin", "sozoku-toki"] {
        assert_eq!(
            item(&visit, in_time).deadline_standing,
            f::DeadlineStanding::InTime as i32,
            "{in_time}"
        );
    }
    assert_eq!(
        item(&visit, "inkan-haishi").deadline_standing,
        f::DeadlineStanding::None as i32
    );
    // 未支給年金 (5 years) is claimed by the mother: without a 委任状 the
    // daughter cannot do it today.
    let i = item(&visit, "mishikyu-nenkin");
    assert_eq!(i.acts_for, HANAKO);
    assert!(!i.visitor_may_do);
    assert!(
        i.proxy_reason.contains("POWER_OF_ATTORNEY_MISSING"),
        "{}",
        i.proxy_reason
    );
    assert_eq!(i.status, f::ItemStatus::Later as i32);
    assert!(i.note.contains("花子"), "{}", i.note);
    // Returning the father's cards: anyone may.
    for open in [
        "kaigo-soshitsu",
        "koki-soshitsu",
        "shogai-techo-henkan",
        "inkan-haishi",
    ] {
        assert!(item(&visit, open).visitor_may_do, "{open}");
        assert_eq!(item(&visit, open).status, f::ItemStatus::Pending as i32);
    }
    let flags: HashSet<&str> = visit.flags.iter().map(|f| f.id.as_str()).collect();
    for expected in [
        "applicant-non-resident",
        "mourner-cannot-visit",
        "pension-book-missing",
        "property-in-deceased-name",
        "power-of-attorney-needed",
    ] {
        assert!(flags.contains(expected), "{expected} missing: {flags:?}");
    }
    // "Only the 喪主 can claim the 葬祭費" concerns a lapsed right only.
    assert!(!flags.contains("not-chief-mourner"), "{flags:?}");
    let poa = visit
        .flags
        .iter()
        .find(|f| f.id == "power-of-attorney-needed")
        .unwrap();
    assert!(
        poa.text_ja.contains("花子") && poa.text_ja.contains("未支給年金"),
        "{}",
        poa.text_ja
    );
    assert!(!poa.text_ja.contains("葬祭費"), "{}", poa.text_ja);

    // The unified certificate request for the inheritance: one form, three lines.
    let request = one_stop
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: okuyami::inheritance_lines(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        request.total_fee.as_ref().unwrap().amount,
        750 * 2 + 300 + 300
    );
    assert_eq!(
        request.lines[0].subject_name.as_ref().unwrap().given_name,
        "太郎"
    );
    assert_eq!(request.lines[0].revenue_account, "13-01-01-01 戸籍手数料");
    // Printing before staff confirmed is refused.
    let early = one_stop
        .render_document(f::RenderDocumentRequest {
            name: request.name.clone(),
            kind: f::DocumentKind::CertificateApplication as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    one_stop
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
            name: request.name.clone(),
        })
        .await
        .unwrap();

    // 介護保険 and 障害者手帳 go to the 高齢・介護・障がい counter: the ticket is
    // transferred, the department's staff call it and come to her.
    let moved = one_stop
        .transfer_for_item(f::TransferForItemRequest {
            name: item(&visit, "kaigo-soshitsu").name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.ticket_display_number, ticket.display_number);
    assert!(moved.item.unwrap().transferred);
    let called = department_queue
        .call_next(q::CallNextRequest {
            counter: counter("5"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(called.name, ticket.name);
    set(
        &mut department,
        &visit,
        "kaigo-soshitsu",
        f::ItemStatus::Done,
        "5",
    )
    .await;
    set(
        &mut department,
        &visit,
        "shogai-techo-henkan",
        f::ItemStatus::Done,
        "5",
    )
    .await;
    department_queue
        .transfer(q::TransferRequest {
            name: ticket.name.clone(),
            category: format!("{OFFICE}/categories/life-events"),
            etag: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let back = queue
        .call_next(q::CallNextRequest {
            counter: counter("2"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(back.name, ticket.name);

    // The rest at the one-stop counter.
    for done in [
        "koki-soshitsu",
        "inkan-haishi",
        "jumin-zei-sozoku",
        "kotei-shisan-sozokunin",
        "shomeisho-sozoku",
    ] {
        set(&mut one_stop, &visit, done, f::ItemStatus::Done, "2").await;
    }
    // A lapsed right is not put off to another day, nor sent to a counter.
    let lapsed = one_stop
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: item(&visit, "kogaku-ryoyohi").name.clone(),
            status: f::ItemStatus::Later as i32,
            note: "領収書を揃えて後日申請".into(),
            counter: counter("2"),
        })
        .await
        .unwrap_err();
    assert_eq!(lapsed.code(), Code::FailedPrecondition);
    assert_eq!(
        lapsed.get_error_details().error_info().unwrap().reason,
        "DEADLINE_LAPSED"
    );
    let lapsed = one_stop
        .transfer_for_item(f::TransferForItemRequest {
            name: item(&visit, "koki-hokenryo-seisan").name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        lapsed.get_error_details().error_info().unwrap().reason,
        "DEADLINE_LAPSED"
    );

    // One signature for everything she may sign today.
    let signature = one_stop
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: strokes(),
        })
        .await
        .unwrap()
        .into_inner();
    let covers: HashSet<&str> = signature.covers.iter().map(String::as_str).collect();
    assert!(covers.contains(request.name.as_str()));
    for signed in [
        "koki-soshitsu",
        "kaigo-soshitsu",
        "inkan-haishi",
        "kotei-shisan-sozokunin",
    ] {
        assert!(
            covers.contains(item(&visit, signed).name.as_str()),
            "{signed}"
        );
    }
    for unsigned in ["sosaihi", "mishikyu-nenkin", "sozoku-toki"] {
        assert!(
            !covers.contains(item(&visit, unsigned).name.as_str()),
            "{unsigned}"
        );
    }
    let again = one_stop
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: strokes(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(
        again.get_error_details().error_info().unwrap().reason,
        "NOTHING_TO_SIGN"
    );

    // The application, printable, with the Japanese really in it.
    let application = one_stop
        .render_document(f::RenderDocumentRequest {
            name: request.name.clone(),
            kind: f::DocumentKind::CertificateApplication as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(application.media_type, "application/pdf");
    let text = pdf_text(&application.content);
    for needle in [
        "証明書交付申請書",
        "おくやみ つる子",
        "おくやみ 太郎",
        "除籍謄本",
        "相続手続",
        "合計 2100円",
        "大船渡市長",
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }

    // The end: what is still open, where to go, what to bring.
    let done = one_stop
        .complete_visit(f::CompleteVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        procedure_ids(&done.open_items),
        [
            "nenkin-kosei",
            "mishikyu-nenkin",
            "izoku-kosei-nenkin",
            "sozoku-toki",
            "sozoku-zei",
        ]
    );
    let open = pdf_text(&done.open_items_document.unwrap().content);
    for needle in [
        "まだ済んでいない手続の一覧",
        "大船渡年金事務所",
        "年金証書",
        "法務局",
        "令和5年6月16日",
        // 相続税: late, still accepted, and what that costs.
        "期限を過ぎています",
        "無申告加算税",
        // The lapsed ones, apart, with the article.
        "時効により手続できなくなったもの",
        "葬祭費の支給申請",
        "令和7年6月16日",
        "相続放棄",
    ] {
        assert!(open.contains(needle), "{needle} missing in {open}");
    }
    let (to_do, lapsed_part) = open.split_once("時効により手続できなくなったもの").unwrap();
    assert!(!to_do.contains("葬祭費"), "lapsed items are not to do");
    assert!(lapsed_part.contains("高額療養費"), "{lapsed_part}");
    assert!(
        !open.contains("介護保険 資格喪失"),
        "done items are not open"
    );
    let late = one_stop
        .update_checklist_item(f::UpdateChecklistItemRequest {
            name: item(&visit, "sosaihi").name.clone(),
            status: f::ItemStatus::Done as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);

    // KPIs from the data: wrote once, two counters, two staff members.
    queue
        .finish_service(q::FinishServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    let kpis = one_stop
        .get_visit_kpis(f::GetVisitKpisRequest {
            visit: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kpis.signatures, 1);
    assert_eq!(kpis.counters_met, 2);
    assert_eq!(kpis.staff_met, 2);
    // 17 on the list, 5 lapsed: 12 apply, 4 of them late.
    assert_eq!(kpis.procedures, 12);
    assert_eq!(kpis.procedures_late, 4);
    assert_eq!(kpis.procedures_lapsed, 5);
    assert_eq!(kpis.procedures_done, 7);
    assert_eq!(kpis.procedures_done_one_stop, 5);
    assert_eq!(kpis.one_stop_share_permille, 416);
    assert_eq!(kpis.certificates, 4);
    let export = one_stop
        .export_kpis(f::ExportKpisRequest {
            parent: OFFICE.into(),
            from_day: date(2026, 4, 1),
            to_day: date(2026, 4, 1),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.visits.len(), 1);
    assert_eq!(export.one_stop_share_permille, 416);
    let rows: Vec<&str> = export.csv.lines().collect();
    assert_eq!(rows.len(), 2, "{}", export.csv);
    assert!(
        rows[1].starts_with(&format!("{},1,2,2,12,7,5,416,", visit.name)),
        "{}",
        rows[1]
    );
    assert!(rows[1].ends_with(",4,4,5"), "{}", rows[1]);
}

/// 転出 of the 盛 household: the wife moves the family out; the navigator
/// reads the household's enrolments (国保, 児童手当, 子ども医療費助成).
async fn move_out_with_a_child(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut one_stop = forms(&t, Role::Staff).await;
    let ticket = ticket_at(&t, "life-events", "3").await;
    let mut identity = identity(&t, Role::Staff).await;
    let verification = identity
        .verify_identity(id::VerifyIdentityRequest {
            parent: M.into(),
            visit: ticket.name.clone(),
            visitor: Some(id::PersonClaim {
                person_name: name("盛", "美咲"),
                birth_date: date(1992, 8, 3),
                address: None,
            }),
            resident: "municipalities/032034/residents/100012".into(),
            documents: vec![id::PresentedDocument {
                kind: "drivers-licence".into(),
                expiry_date: date(2029, 9, 3),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let visit = one_stop
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(visit.applicant_resident);
    let visit = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "move-out".into(),
            subject: "municipalities/032034/residents/100011".into(),
            event_date: date(2026, 3, 28),
            answers: vec![answer("keeps_my_number_card", "yes")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        procedure_ids(&visit.items),
        [
            "tenshutsu-todoke",
            "kokuho-soshitsu",
            "jido-teate-shometsu",
            "iryohi-josei-henkan",
            "kei-zei-jusho",
            "suido-chushi",
        ]
    );
    assert!(
        visit.items.iter().all(|i| i.visitor_may_do),
        "a household member may"
    );
    assert!(visit.flags.iter().any(|f| f.id == "card-continued-use"));
    // Navigating again with the same facts keeps handled items as they are.
    set(
        &mut one_stop,
        &visit,
        "tenshutsu-todoke",
        f::ItemStatus::Done,
        "3",
    )
    .await;
    let again = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "move-out".into(),
            subject: "municipalities/032034/residents/100011".into(),
            event_date: date(2026, 3, 28),
            answers: vec![answer("keeps_my_number_card", "no")],
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        item(&again, "tenshutsu-todoke").status,
        f::ItemStatus::Done as i32
    );
    assert!(!again.flags.iter().any(|f| f.id == "card-continued-use"));
    let signature = one_stop
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: strokes(),
        })
        .await
        .unwrap()
        .into_inner();
    // Everything signed here; the water service (上下水道課, another
    // building) has its own form.
    assert_eq!(signature.covers.len(), 5);
    let checklist = one_stop
        .render_document(f::RenderDocumentRequest {
            name: visit.name.clone(),
            kind: f::DocumentKind::Checklist as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let text = pdf_text(&checklist.content);
    assert!(text.contains("手続チェックリスト（転出）"), "{text}");
    assert!(text.contains("［済］転出届"), "{text}");
    assert!(text.contains("児童手当"), "{text}");
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

async fn open_okuyami_visit(t: &TestServer) -> f::Visit {
    let ticket = ticket_at(t, "life-events", "2").await;
    let verification = verify_daughter(t, &ticket.name).await;
    forms(t, Role::Staff)
        .await
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn bad_input_saves_nothing(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let visit = open_okuyami_visit(&t).await;
    let mut forms = forms(&t, Role::Staff).await;
    let navigate = |wareki: &str, answers: Vec<f::Answer>| f::NavigateLifeEventRequest {
        visit: visit.name.clone(),
        life_event: "death".into(),
        subject: TARO.into(),
        event_date_wareki: wareki.into(),
        answers,
        ..Default::default()
    };
    // 和暦 that does not exist: 令和 began on 5月1日, and April has 30 days.
    for (wareki, field) in [
        ("令和元年4月30日", "event_date_wareki"),
        ("平成31年4月31日", "event_date_wareki"),
        ("令和9年1月1日", "event_date"),
    ] {
        let status = forms
            .navigate_life_event(navigate(wareki, okuyami_answers()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{wareki}");
        assert_eq!(fields(&status), [field], "{wareki}");
    }
    // Every wrong field at once.
    let mut answers = okuyami_answers();
    answers[0].value = "maybe".into();
    answers[2].value = "municipalities/131016/residents/1".into();
    answers.push(answer("favourite_colour", "blue"));
    answers.remove(1);
    let mut request = navigate("平成31年4月30日", answers);
    request.life_event = "death".into();
    let status = forms.navigate_life_event(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let got = fields(&status);
    for expected in [
        "answers[0].value",
        "answers[1].value",
        "answers[5].question",
        "answers",
    ] {
        assert!(
            got.iter().any(|f| f == expected),
            "{expected} not in {got:?}"
        );
    }
    let status = forms
        .navigate_life_event(f::NavigateLifeEventRequest {
            life_event: "funeral".into(),
            ..navigate("", okuyami_answers())
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["life_event"]);
    // A living person has no 死亡 procedures.
    let status = forms
        .navigate_life_event(f::NavigateLifeEventRequest {
            subject: HANAKO.into(),
            ..navigate("", okuyami_answers())
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // Certificate lines: unknown kind, no copies, a name-breaking control
    // character in the purpose, an option of another kind.
    let status = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![
                f::CertificateLineInput {
                    subject: TARO.into(),
                    kind: "juminhyo-copy-deluxe".into(),
                    copies: 1,
                    purpose: "相続".into(),
                    ..Default::default()
                },
                f::CertificateLineInput {
                    subject: TARO.into(),
                    kind: "joseki-tohon".into(),
                    copies: 0,
                    purpose: "相続\u{7}手続".into(),
                    options: vec!["household-all".into()],
                    ..Default::default()
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let got = fields(&status);
    for expected in [
        "lines[0].kind",
        "lines[1].copies",
        "lines[1].purpose",
        "lines[1].options[0]",
    ] {
        assert!(
            got.iter().any(|f| f == expected),
            "{expected} not in {got:?}"
        );
    }
    // Her own 住民票: she is registered in 仙台市, not here.
    let status = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![f::CertificateLineInput {
                subject: TSURUKO.into(),
                kind: "juminhyo".into(),
                copies: 1,
                purpose: "勤務先提出".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("SUBJECT_NOT_RESIDENT"),
        "{}",
        status.message()
    );

    // Nothing was saved by any of it.
    let stored = forms
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stored.items.is_empty() && stored.certificate_requests.is_empty());
    assert!(stored.life_event.is_empty());
    assert_eq!(stored.etag, visit.etag);

    // Strokes outside the pad; a visit of another municipality.
    let status = forms
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: vec![f::Stroke {
                points: vec![f::StrokePoint {
                    x: 10_001,
                    y: 0,
                    t_ms: 0,
                }],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["strokes[0].points[0]"]);
    let foreign = visit.name.replace("032034", "131016");
    let status = forms
        .get_visit(f::GetVisitRequest { name: foreign })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// Two tablets submit the signature at the same moment: exactly one
/// signature covers the documents; the other is told there is nothing left.
async fn one_signature_even_when_raced(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let visit = open_okuyami_visit(&t).await;
    let mut staff = forms(&t, Role::Staff).await;
    let request = staff
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines: vec![f::CertificateLineInput {
                subject: TARO.into(),
                kind: "koseki-tohon".into(),
                copies: 1,
                purpose: "相続手続".into(),
                relation: f::Relation::LinealRelative as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    staff
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
            name: request.name.clone(),
        })
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for _ in 0..6 {
        let mut client = forms(&t, Role::Staff).await;
        let visit = visit.name.clone();
        attempts.push(tokio::spawn(async move {
            client
                .sign_visit(f::SignVisitRequest {
                    visit,
                    strokes: strokes(),
                })
                .await
        }));
    }
    let mut signed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => signed += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(signed, 1);
    let stored = staff
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.signatures.len(), 1);
    assert_eq!(
        stored.certificate_requests[0].state,
        f::CertificateRequestState::Signed as i32
    );
}

fn member(
    family: &str,
    given: &str,
    birth: (i32, i32, i32),
    relation: f::RelationToHead,
    insurance: f::DeclaredInsurance,
    school_year: u32,
) -> f::DeclaredMember {
    f::DeclaredMember {
        person_name: name(family, given),
        birth_date: date(birth.0, birth.1, birth.2),
        relation: relation as i32,
        insurance: insurance as i32,
        school_year,
        source: f::MemberSource::MyNumberCard as i32,
    }
}

/// The 新来 family moves in from 仙台市 on 令和8年3月28日: nobody is in the
/// registry yet. The father declares the household from the family's My
/// Number cards (two parents on an employer's insurance, a boy in 小2, a
/// girl of four), and the navigator runs from it.
fn shinrai_family() -> f::DeclaredHousehold {
    use f::{DeclaredInsurance as I, RelationToHead as R};
    f::DeclaredHousehold {
        members: vec![
            member("新来", "健", (1988, 5, 10), R::Head, I::Employee, 0),
            member("新来", "舞", (1990, 7, 1), R::Spouse, I::Employee, 0),
            member("新来", "陽", (2017, 9, 15), R::Child, I::Employee, 2),
            member("新来", "結", (2022, 2, 10), R::Child, I::Employee, 0),
        ],
        subject_index: 0,
        address: Some(madoguchi_proto::types::v1::Address {
            municipality_code: "032034".into(),
            prefecture: "岩手県".into(),
            municipality: "大船渡市".into(),
            street: "盛町字下舘下18番地1".into(),
            ..Default::default()
        }),
    }
}

async fn move_in_from_a_declared_household(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut one_stop = forms(&t, Role::Staff).await;
    let ticket = ticket_at(&t, "life-events", "3").await;
    let verification = identity(&t, Role::Staff)
        .await
        .verify_identity(id::VerifyIdentityRequest {
            parent: M.into(),
            visit: ticket.name.clone(),
            visitor: Some(id::PersonClaim {
                person_name: name("新来", "健"),
                birth_date: date(1988, 5, 10),
                address: None,
            }),
            resident: String::new(),
            documents: vec![id::PresentedDocument {
                kind: "my-number-card".into(),
                expiry_date: date(2031, 5, 10),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let visit = one_stop
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(visit.applicant.is_empty(), "not in the registry yet");
    let navigate = |household: f::DeclaredHousehold| f::NavigateLifeEventRequest {
        visit: visit.name.clone(),
        life_event: "move-in".into(),
        declared_household: Some(household),
        event_date: date(2026, 3, 28),
        answers: vec![
            answer("has_my_number_card", "yes"),
            answer("needs_childcare", "yes"),
            answer("has_driving_licence", "yes"),
            answer("owns_car", "no"),
            answer("wants_seal_registration", "no"),
        ],
        ..Default::default()
    };

    // Every wrong field of the declaration at once, and nothing saved.
    let mut bad = shinrai_family();
    bad.members[1].relation = f::RelationToHead::Head as i32;
    bad.members[2].school_year = 3;
    bad.members[3].birth_date = date(2026, 4, 2);
    bad.members[3].person_name = name("新来", "");
    bad.members[0].source = f::MemberSource::Unspecified as i32;
    bad.subject_index = 4;
    bad.address.as_mut().unwrap().municipality_code = "041017".into();
    let status = one_stop
        .navigate_life_event(navigate(bad))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut got = fields(&status);
    got.sort();
    assert_eq!(
        got,
        [
            "declared_household.address.municipality_code",
            "declared_household.members",
            "declared_household.members[0].source",
            "declared_household.members[2].school_year",
            "declared_household.members[3].birth_date",
            "declared_household.members[3].person_name",
            "declared_household.subject_index",
        ]
    );
    // Not both a registered subject and a declaration; a death needs the
    // registry's record.
    let status = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            subject: TARO.into(),
            ..navigate(shinrai_family())
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["declared_household"]);
    let status = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            life_event: "death".into(),
            answers: okuyami_answers(),
            ..navigate(shinrai_family())
        })
        .await
        .unwrap_err();
    assert!(
        fields(&status).contains(&"declared_household".to_owned()),
        "{status:?}"
    );
    let untouched = one_stop
        .get_visit(f::GetVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(untouched.items.is_empty() && untouched.declared_household.is_none());

    // From the declaration: the 転入届 and the card, the children's
    // allowance, medical subsidy, nursery (asked: a child under 6),
    // vaccinations, the boy's school; no 国保 or 国民年金 (the parents are on
    // an employer's insurance), nothing for a car or a seal.
    let visit = one_stop
        .navigate_life_event(navigate(shinrai_family()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        procedure_ids(&visit.items),
        [
            "tennyu-todoke",
            "mynumber-card-tennyu",
            "jido-teate-nintei",
            "iryohi-josei",
            "hoikusho-moshikomi",
            "yobo-sesshu-tennyu",
            "gakko-tennyugaku",
            "unten-menkyo-henko",
            "suido-kaishi",
        ]
    );
    assert!(visit.subject.is_empty());
    assert_eq!(visit.declared_household, Some(shinrai_family()));
    assert!(
        visit
            .items
            .iter()
            .all(|i| i.visitor_may_do && i.acts_for.is_empty()),
        "nobody to check a proxy against"
    );
    // The printed checklist takes the household from the same data.
    let checklist = one_stop
        .render_document(f::RenderDocumentRequest {
            name: visit.name.clone(),
            kind: f::DocumentKind::Checklist as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let text = pdf_text(&checklist.content);
    for needle in [
        "手続チェックリスト（転入）",
        "届出の世帯",
        "盛町字下舘下18番地1",
        "新来 陽",
        "平成29年9月15日",
        "転入届",
    ] {
        assert!(text.contains(needle), "{needle} missing in {text}");
    }

    // The 住民異動届 is filled from the same declaration and signed once
    // with everything else.
    one_stop
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: strokes(),
        })
        .await
        .unwrap();
    let notification = one_stop
        .render_document(f::RenderDocumentRequest {
            name: visit.name.clone(),
            kind: f::DocumentKind::MoveInNotification as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(notification.media_type, "application/pdf");
    let text = pdf_text(&notification.content);
    let household = shinrai_family();
    let mut needles = vec![
        "住民異動届（転入届）".to_owned(),
        "大船渡市長 あて".to_owned(),
        "異動日（住み始めた日）: 令和8年3月28日".to_owned(),
        "盛町字下舘下18番地1".to_owned(),
        format!("異動した人（{}人）", household.members.len()),
    ];
    for member in &household.members {
        let n = member.person_name.as_ref().unwrap();
        needles.push(format!("{} {}", n.family_name, n.given_name));
    }
    for needle in &needles {
        assert!(text.contains(needle.as_str()), "{needle} missing in {text}");
    }
    assert!(
        !text.contains("（未署名）"),
        "the visit's signature is on it"
    );

    // A visit without a declared move-in has nothing to fill it from.
    let okuyami = open_okuyami_visit(&t).await;
    let status = one_stop
        .render_document(f::RenderDocumentRequest {
            name: okuyami.name.clone(),
            kind: f::DocumentKind::MoveInNotification as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.get_details_error_info().map(|i| i.reason),
        Some("NO_DECLARED_MOVE_IN".to_owned())
    );
}

/// A girl born on 令和8年3月20日 to a fisherman's family on 国民健康保険
/// (both parents self-employed, 30-something): before her 出生届 she is in
/// no record, so the father declares the household with her in it. The
/// expected checklist is what municipal 出生 guides list for a 国保
/// household's first child, written from them: the 出生届; her 国保 加入
/// and the 出産育児一時金 from 国保; the 児童手当 認定請求 (no allowance
/// yet); the child medical subsidy; the 出生連絡票 and the vaccination
/// forms; her My Number card; the mother's 産前産後 exemptions from 国民年金
/// (第1号: a 国保 member aged 20–59) and from the 国保 premium; the 出産・
/// 子育て給付. Not: an employer's insurance, its 出産手当金 or 育児休業給付,
/// the 児童手当 額改定, or the low-birth-weight procedures (she weighed
/// over 2,500 g).
async fn birth_in_a_self_employed_household(backend: Backend) {
    use f::{DeclaredInsurance as I, RelationToHead as R};
    let t = spawn(Spawn::new(backend)).await;
    let mut one_stop = forms(&t, Role::Staff).await;
    let ticket = ticket_at(&t, "life-events", "3").await;
    let verification = identity(&t, Role::Staff)
        .await
        .verify_identity(id::VerifyIdentityRequest {
            parent: M.into(),
            visit: ticket.name.clone(),
            visitor: Some(id::PersonClaim {
                person_name: name("浜田", "海斗"),
                birth_date: date(1991, 6, 2),
                address: None,
            }),
            resident: String::new(),
            documents: vec![id::PresentedDocument {
                kind: "my-number-card".into(),
                expiry_date: date(2031, 6, 2),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let visit = one_stop
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let household = f::DeclaredHousehold {
        members: vec![
            member(
                "浜田",
                "海斗",
                (1991, 6, 2),
                R::Head,
                I::NationalHealthInsurance,
                0,
            ),
            member(
                "浜田",
                "渚",
                (1994, 1, 25),
                R::Spouse,
                I::NationalHealthInsurance,
                0,
            ),
            f::DeclaredMember {
                source: f::MemberSource::Typed as i32,
                ..member(
                    "浜田",
                    "凪",
                    (2026, 3, 20),
                    R::Child,
                    I::NationalHealthInsurance,
                    0,
                )
            },
        ],
        subject_index: 2,
        address: None,
    };
    let visit = one_stop
        .navigate_life_event(f::NavigateLifeEventRequest {
            visit: visit.name.clone(),
            life_event: "birth".into(),
            declared_household: Some(household.clone()),
            event_date: date(2026, 3, 20),
            answers: vec![answer("low_birth_weight", "no")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = procedure_ids(&visit.items);
    got.sort();
    let mut expected = vec![
        "shussei-todoke",
        "kokuho-shutoku",
        "shussan-ikuji-kokuho",
        "jido-teate-nintei",
        "iryohi-josei",
        "shusseihyo",
        "yobo-sesshu-yoshinhyo",
        "mynumber-card-nyuji",
        "sanzen-sango-nenkin",
        "sanzen-sango-kokuho",
        "kosodate-kyufu",
    ];
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert!(visit.subject.is_empty(), "she is in no record yet");
    assert_eq!(visit.declared_household, Some(household));
    // The 出生届 is due 14 days from the birth, the day itself counted
    // (戸籍法49条, 43条): 令和8年4月2日, not yet passed on the 1st.
    let todoke = item(&visit, "shussei-todoke");
    assert_eq!(todoke.due_date, date(2026, 4, 2));
    assert_eq!(todoke.deadline_standing, f::DeadlineStanding::InTime as i32);
    // Without an address this is no 転入: there is no 住民異動届 to print.
    let status = one_stop
        .render_document(f::RenderDocumentRequest {
            name: visit.name.clone(),
            kind: f::DocumentKind::MoveInNotification as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}
