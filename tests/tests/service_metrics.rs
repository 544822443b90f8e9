//! The POS and forms services' Prometheus metrics against what the floor
//! did, with a real server on port 0 (queue, identity, forms and POS in one
//! process), on SQLite and PostgreSQL, driven through the generated clients.
//!
//! `madoguchi_pos_payments_total{office,method,outcome}` must count each
//! outcome a payment reached exactly once, whatever the gateway retried,
//! and `madoguchi_pos_payments_unresolved{office}` the 処理未了 payments
//! still open. The forms counters must add up to the KPIs `GetVisitKpis`
//! reports for the visits completed. The gateway's side of a payment is
//! played through `ReportPaymentOutcome` and `ReportRefundOutcome` as a
//! device, as in `tests/tests/pos.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use madoguchi::cli::Auth;
use madoguchi_e2e::okuyami;
use madoguchi_e2e::process::{metric_types, sample};
use madoguchi_e2e::{Backend, OFFICE, Spawn, TestServer, issue, on_both_backends, spawn, token};
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::queue::v1 as q;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

type Pos = PosServiceClient<InterceptedService<Channel, Auth>>;
type Forms = FormsServiceClient<InterceptedService<Channel, Auth>>;

on_both_backends!(
    payments_count_each_outcome_once,
    completed_visits_count_the_kpis_the_api_reports,
);

const PAYMENTS: &str = "madoguchi_pos_payments_total";
const UNRESOLVED: &str = "madoguchi_pos_payments_unresolved";
const VISITS: &str = "madoguchi_forms_visits_completed_total";
const SIGNATURES: &str = "madoguchi_forms_signatures_total";
const COUNTERS: &str = "madoguchi_forms_counters_visited_total";
const ONESTOP: &str = "madoguchi_forms_onestop_visits_total";

fn auth(role: Role) -> Auth {
    Auth::bearer(&token(role, "032034").token).unwrap()
}

async fn pos(t: &TestServer, role: Role) -> Pos {
    PosServiceClient::with_interceptor(t.channel().await, auth(role))
}

async fn forms(t: &TestServer, role: Role) -> Forms {
    FormsServiceClient::with_interceptor(t.channel().await, auth(role))
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ------------------------------------------------------------ the scrape

/// Every series of the counter family `name` in `text`, by its labels
/// other than `office`, which must be [`OFFICE`]; a line
/// `name{office="…",method="card",outcome="declined"} 1` becomes
/// `"card/declined" → 1`.
fn series_by_labels(text: &str, name: &str) -> BTreeMap<String, u64> {
    let mut series = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        let mut office = None;
        let mut others = Vec::new();
        for pair in labels.split("\",") {
            let (key, value) = pair.split_once('=').unwrap();
            let value = value.trim_matches('"');
            if key == "office" {
                office = Some(value);
            } else {
                others.push(value);
            }
        }
        assert_eq!(office, Some(OFFICE), "{line}");
        let previous = series.insert(others.join("/"), value.parse().unwrap());
        assert!(previous.is_none(), "{line} twice in\n{text}");
    }
    series
}

/// `madoguchi_pos_payments_total` of the office by `method/outcome`.
async fn payments(t: &TestServer) -> BTreeMap<String, u64> {
    series_by_labels(&t.server.metrics.render().await, PAYMENTS)
}

/// `madoguchi_pos_payments_unresolved` of the office; present (zero) before
/// any payment was taken.
async fn unresolved(t: &TestServer) -> f64 {
    let text = t.server.metrics.render().await;
    sample(&text, UNRESOLVED, &[("office", OFFICE)])
        .unwrap_or_else(|| panic!("no {UNRESOLVED} of {OFFICE} in\n{text}"))
}

fn expected(counts: &[(&str, u64)]) -> BTreeMap<String, u64> {
    counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

// ------------------------------------------------------------------ POS

fn register() -> String {
    format!("{OFFICE}/registers/r1")
}

fn line(fee_item: &str, copies: u32) -> pb::OrderLineInput {
    pb::OrderLineInput {
        fee_item: fee_item.into(),
        copies,
        exemption_reason: String::new(),
    }
}

async fn order(staff: &mut Pos, lines: Vec<pb::OrderLineInput>) -> pb::Order {
    staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            lines,
            request_id: uuid(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn take(
    staff: &mut Pos,
    order: &pb::Order,
    method: pb::PaymentMethod,
    tendered_yen: i64,
) -> pb::Payment {
    staff
        .create_payment(pb::CreatePaymentRequest {
            order: order.name.clone(),
            register: register(),
            method: method as i32,
            request_id: uuid(),
            tendered_yen,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The gateway reports the terminal's word on `payment`.
async fn report(gateway: &mut Pos, payment: &pb::Payment, o: pb::PaymentOutcome) -> pb::Payment {
    gateway
        .report_payment_outcome(pb::ReportPaymentOutcomeRequest {
            payment: payment.name.clone(),
            outcome: o as i32,
            terminal_result_code: match o {
                pb::PaymentOutcome::Approved => "00",
                pb::PaymentOutcome::Declined => "05",
                pb::PaymentOutcome::Aborted => "6C",
                pb::PaymentOutcome::Unknown => "F2",
                _ => "",
            }
            .into(),
            approval_number: if o == pb::PaymentOutcome::Approved {
                "A12345".into()
            } else {
                String::new()
            },
            terminal_trace: "T0001".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The gateway reports the terminal's word on a refund.
async fn report_refund(
    gateway: &mut Pos,
    refund: &pb::Refund,
    o: pb::PaymentOutcome,
) -> pb::Refund {
    gateway
        .report_refund_outcome(pb::ReportRefundOutcomeRequest {
            refund: refund.name.clone(),
            outcome: o as i32,
            terminal_result_code: if o == pb::PaymentOutcome::Approved {
                "00"
            } else {
                "05"
            }
            .into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn refund_of(payment: &pb::Payment, amount_yen: i64) -> pb::RefundPaymentRequest {
    pb::RefundPaymentRequest {
        name: payment.name.clone(),
        line_index: 0,
        amount_yen,
        reason: "一部還付".into(),
        register: String::new(),
        request_id: uuid(),
    }
}

/// A day at register r1 with every outcome a payment can reach, each
/// checked against the counter as it happens: cash taken, voided and
/// refunded; a card declined, then approved, then voided on the terminal;
/// a card whose outcome was unknown (処理未了) until a supervisor resolved
/// it, then refunded; an electronic-money payment aborted, then unknown
/// and declined by the gateway's later enquiry; a QR payment approved.
/// Retried reports and voids count nothing twice.
async fn payments_count_each_outcome_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    let mut gateway = pos(&t, Role::Device).await;
    staff
        .open_register_session(pb::OpenRegisterSessionRequest {
            register: register(),
            float_yen: 10_000,
        })
        .await
        .unwrap();
    assert_eq!(payments(&t).await, expected(&[]));
    assert_eq!(unresolved(&t).await, 0.0);

    // Cash: approved when taken.
    let juminhyo = order(&mut staff, vec![line("juminhyo", 1)]).await;
    let cash = take(&mut staff, &juminhyo, pb::PaymentMethod::Cash, 1000).await;
    assert_eq!(cash.state, pb::PaymentState::Approved as i32);
    assert_eq!(payments(&t).await, expected(&[("cash/approved", 1)]));

    // A card declined (reported twice: the gateway retries after a lost
    // answer), then the same order paid by card.
    let koseki = order(&mut staff, vec![line("koseki-tohon", 1)]).await;
    let declined = take(&mut staff, &koseki, pb::PaymentMethod::Card, 0).await;
    assert_eq!(declined.state, pb::PaymentState::Pending as i32);
    assert_eq!(payments(&t).await, expected(&[("cash/approved", 1)]));
    report(&mut gateway, &declined, pb::PaymentOutcome::InProgress).await;
    for _ in 0..2 {
        let reported = report(&mut gateway, &declined, pb::PaymentOutcome::Declined).await;
        assert_eq!(reported.state, pb::PaymentState::Declined as i32);
    }
    assert_eq!(
        payments(&t).await,
        expected(&[("cash/approved", 1), ("card/declined", 1)])
    );
    let card = take(&mut staff, &koseki, pb::PaymentMethod::Card, 0).await;
    for _ in 0..2 {
        let reported = report(&mut gateway, &card, pb::PaymentOutcome::Approved).await;
        assert_eq!(reported.state, pb::PaymentState::Approved as i32);
    }
    // A contradicting report is refused and counts nothing.
    let status = gateway
        .report_payment_outcome(pb::ReportPaymentOutcomeRequest {
            payment: card.name.clone(),
            outcome: pb::PaymentOutcome::Declined as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_ALREADY_SETTLED");
    assert_eq!(
        payments(&t).await,
        expected(&[
            ("cash/approved", 1),
            ("card/declined", 1),
            ("card/approved", 1)
        ])
    );

    // 処理未了 on a card: counted once as unresolved, however often the
    // terminal says so, and open until resolved.
    let hyoka = order(&mut staff, vec![line("hyoka", 1)]).await;
    let unknown_card = take(&mut staff, &hyoka, pb::PaymentMethod::Card, 0).await;
    for _ in 0..2 {
        let reported = report(&mut gateway, &unknown_card, pb::PaymentOutcome::Unknown).await;
        assert_eq!(reported.state, pb::PaymentState::Unknown as i32);
    }
    assert_eq!(unresolved(&t).await, 1.0);

    // Electronic money: aborted at staff's request, then 処理未了 (two open
    // at once), then declined by the gateway's status enquiry.
    let inkan = order(&mut staff, vec![line("inkan", 1)]).await;
    let aborted = take(&mut staff, &inkan, pb::PaymentMethod::Emoney, 0).await;
    staff
        .abort_payment(pb::AbortPaymentRequest {
            name: aborted.name.clone(),
        })
        .await
        .unwrap();
    let reported = report(&mut gateway, &aborted, pb::PaymentOutcome::Aborted).await;
    assert_eq!(reported.state, pb::PaymentState::Aborted as i32);
    let emoney = take(&mut staff, &inkan, pb::PaymentMethod::Emoney, 0).await;
    report(&mut gateway, &emoney, pb::PaymentOutcome::Unknown).await;
    assert_eq!(unresolved(&t).await, 2.0);
    assert_eq!(
        payments(&t).await,
        expected(&[
            ("cash/approved", 1),
            ("card/declined", 1),
            ("card/approved", 1),
            ("card/unresolved", 1),
            ("emoney/cancelled", 1),
            ("emoney/unresolved", 1),
        ])
    );
    let reported = report(&mut gateway, &emoney, pb::PaymentOutcome::Declined).await;
    assert_eq!(reported.state, pb::PaymentState::Declined as i32);
    assert_eq!(unresolved(&t).await, 1.0);

    // The supervisor resolves the card from the terminal's journal: the
    // payment counts again, as approved, and nothing is open any more.
    // Staff may not resolve, and the refusal counts nothing.
    let resolve = pb::ResolvePaymentRequest {
        name: unknown_card.name.clone(),
        outcome: pb::PaymentOutcome::Approved as i32,
        note: "端末の取引履歴で承認を確認".into(),
        approval_number: "J-778".into(),
    };
    let status = staff.resolve_payment(resolve.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(unresolved(&t).await, 1.0);
    let resolved = supervisor
        .resolve_payment(resolve.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, pb::PaymentState::Approved as i32);
    assert_eq!(unresolved(&t).await, 0.0);
    let status = supervisor.resolve_payment(resolve).await.unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_NOT_UNKNOWN");

    // The rest of the electronic-money order by QR.
    let qr = take(&mut staff, &inkan, pb::PaymentMethod::Qr, 0).await;
    report(&mut gateway, &qr, pb::PaymentOutcome::Approved).await;
    let before_refunds = expected(&[
        ("cash/approved", 1),
        ("card/declined", 1),
        ("card/approved", 2),
        ("card/unresolved", 1),
        ("emoney/cancelled", 1),
        ("emoney/unresolved", 1),
        ("emoney/declined", 1),
        ("qr/approved", 1),
    ]);
    assert_eq!(payments(&t).await, before_refunds);

    // A cash void is done when asked (the drawer opens); asked again with
    // the same request id, it is the same void.
    let void_cash = pb::VoidPaymentRequest {
        name: cash.name.clone(),
        reason: "取消".into(),
        request_id: uuid(),
    };
    let voided = supervisor
        .void_payment(void_cash.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.state, pb::RefundState::Completed as i32);
    let again = supervisor
        .void_payment(void_cash)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.name, voided.name);

    // A card void counts when the terminal has paid the money back.
    let card_void = supervisor
        .void_payment(pb::VoidPaymentRequest {
            name: card.name.clone(),
            reason: "取消".into(),
            request_id: uuid(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(card_void.state, pb::RefundState::Requested as i32);
    let mut after_cash_void = before_refunds.clone();
    after_cash_void.insert("cash/voided".into(), 1);
    assert_eq!(payments(&t).await, after_cash_void);
    let settled = report_refund(&mut gateway, &card_void, pb::PaymentOutcome::Approved).await;
    assert_eq!(settled.state, pb::RefundState::Completed as i32);
    // The gateway's retry of the same report answers as before and counts
    // nothing more.
    let again = report_refund(&mut gateway, &card_void, pb::PaymentOutcome::Approved).await;
    assert_eq!(again.state, pb::RefundState::Completed as i32);

    // Refunds: cash at once; on the resolved card, one the terminal
    // declined (nothing went back, nothing counts) and one it approved.
    let mibun = order(&mut staff, vec![line("mibun", 2), line("copy", 5)]).await;
    let cash2 = take(&mut staff, &mibun, pb::PaymentMethod::Cash, 1000).await;
    let cash_refund = supervisor
        .refund_payment(refund_of(&cash2, 300))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cash_refund.state, pb::RefundState::Completed as i32);
    let refused = supervisor
        .refund_payment(refund_of(&resolved, 100))
        .await
        .unwrap()
        .into_inner();
    let failed = report_refund(&mut gateway, &refused, pb::PaymentOutcome::Declined).await;
    assert_eq!(failed.state, pb::RefundState::Failed as i32);
    let card_refund = supervisor
        .refund_payment(refund_of(&resolved, 100))
        .await
        .unwrap()
        .into_inner();
    report_refund(&mut gateway, &card_refund, pb::PaymentOutcome::Approved).await;

    assert_eq!(
        payments(&t).await,
        expected(&[
            ("cash/approved", 2),
            ("cash/voided", 1),
            ("cash/refunded", 1),
            ("card/declined", 1),
            ("card/approved", 2),
            ("card/unresolved", 1),
            ("card/voided", 1),
            ("card/refunded", 1),
            ("emoney/cancelled", 1),
            ("emoney/unresolved", 1),
            ("emoney/declined", 1),
            ("qr/approved", 1),
        ])
    );
    assert_eq!(unresolved(&t).await, 0.0);

    // The register's own day agrees: five payments approved, three that
    // failed, none open.
    let close = staff
        .get_daily_close(pb::GetDailyCloseRequest {
            register: register(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let usage = close.usage.unwrap();
    assert_eq!(
        (
            usage.payments,
            usage.failed_payments,
            usage.unresolved_payments
        ),
        (5, 3, 0),
        "{usage:?}"
    );

    let types = metric_types(&t.server.metrics.render().await);
    assert_eq!(
        types.get("madoguchi_pos_payments").map(String::as_str),
        Some("counter")
    );
    assert_eq!(types.get(UNRESOLVED).map(String::as_str), Some("gauge"));
}

// ---------------------------------------------------------------- forms

/// Issues a ticket in life-events and starts it at counter 2; the ticket.
async fn ticket_at_counter_2(t: &TestServer, staff: &mut madoguchi_e2e::Client) -> q::Ticket {
    let ticket = t
        .client(Role::Device)
        .await
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap()
        .into_inner();
    let started = madoguchi_e2e::call_and_start(staff, "2").await;
    assert_eq!(started.name, ticket.name);
    started
}

/// つる子 verified and her visit started for `ticket`.
async fn start_visit(t: &TestServer, forms: &mut Forms, ticket: &q::Ticket) -> f::Visit {
    let verification =
        IdentityServiceClient::with_interceptor(t.channel().await, auth(Role::Staff))
            .verify_identity(okuyami::daughter_verification(&ticket.name))
            .await
            .unwrap()
            .into_inner();
    assert!(verification.verified, "{verification:?}");
    forms
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.name.clone(),
            request_id: uuid(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// A confirmed certificate request of `lines` on `visit`, signed.
async fn request_and_sign(
    forms: &mut Forms,
    visit: &f::Visit,
    lines: Vec<f::CertificateLineInput>,
) {
    let request = forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name.clone(),
            lines,
        })
        .await
        .unwrap()
        .into_inner();
    forms
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest {
            name: request.name.clone(),
        })
        .await
        .unwrap();
    let signature = forms
        .sign_visit(f::SignVisitRequest {
            visit: visit.name.clone(),
            strokes: vec![f::Stroke {
                points: (0..20)
                    .map(|i| f::StrokePoint {
                        x: 500 + i * 300,
                        y: 5000 + (i % 5) * 400,
                        t_ms: i * 15,
                    })
                    .collect(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signature.covers, [request.name]);
}

async fn complete(forms: &mut Forms, visit: &f::Visit) {
    forms
        .complete_visit(f::CompleteVisitRequest {
            name: visit.name.clone(),
        })
        .await
        .unwrap();
}

async fn finish(queue: &mut madoguchi_e2e::Client, ticket: &q::Ticket) {
    queue
        .finish_service(q::FinishServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
}

/// The four forms counters of the office, zero where no series exists yet.
async fn forms_counters(t: &TestServer) -> [u64; 4] {
    let text = t.server.metrics.render().await;
    [VISITS, SIGNATURES, COUNTERS, ONESTOP]
        .map(|name| sample(&text, name, &[("office", OFFICE)]).map_or(0, |v| v as u64))
}

/// Two visits of つる子 completed: one at the one-stop counter alone with
/// one signature; one whose ticket was transferred to the care counter,
/// with two signatures, completed there. The counters are the sums of the
/// KPIs `GetVisitKpis` and `ExportKpis` report for them; completing a
/// visit again is refused and counts nothing.
async fn completed_visits_count_the_kpis_the_api_reports(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut one_stop = forms(&t, Role::Staff).await;
    let mut queue = t.client(Role::Staff).await;
    // The care department's staff member is another principal.
    let mut department_queue = t.client(Role::Admin).await;
    assert_eq!(forms_counters(&t).await, [0; 4]);

    // At the one-stop counter only, one signature.
    let first_ticket = ticket_at_counter_2(&t, &mut queue).await;
    let first = start_visit(&t, &mut one_stop, &first_ticket).await;
    request_and_sign(&mut one_stop, &first, okuyami::inheritance_lines()).await;
    complete(&mut one_stop, &first).await;
    finish(&mut queue, &first_ticket).await;
    assert_eq!(forms_counters(&t).await, [1, 1, 1, 1]);
    let status = one_stop
        .complete_visit(f::CompleteVisitRequest {
            name: first.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "VISIT_COMPLETED");
    assert_eq!(forms_counters(&t).await, [1, 1, 1, 1]);

    // Two signatures at the one-stop counter, then the ticket goes to the
    // care counter (5), where the visit is completed.
    let second_ticket = ticket_at_counter_2(&t, &mut queue).await;
    let second = start_visit(&t, &mut one_stop, &second_ticket).await;
    let lines = okuyami::inheritance_lines();
    request_and_sign(&mut one_stop, &second, lines[..1].to_vec()).await;
    request_and_sign(&mut one_stop, &second, lines[2..].to_vec()).await;
    queue
        .transfer(q::TransferRequest {
            name: second_ticket.name.clone(),
            category: format!("{OFFICE}/categories/elderly-care-disability"),
            etag: String::new(),
            request_id: uuid(),
        })
        .await
        .unwrap();
    let called = madoguchi_e2e::call_and_start(&mut department_queue, "5").await;
    assert_eq!(called.name, second_ticket.name);
    complete(&mut forms(&t, Role::Admin).await, &second).await;
    finish(&mut department_queue, &second_ticket).await;

    let mut kpis = Vec::new();
    for visit in [&first, &second] {
        kpis.push(
            one_stop
                .get_visit_kpis(f::GetVisitKpisRequest {
                    visit: visit.name.clone(),
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let summary: Vec<(u32, u32)> = kpis
        .iter()
        .map(|k| (k.signatures, k.counters_met))
        .collect();
    assert_eq!(summary, [(1, 1), (2, 2)]);
    let from_api = [
        kpis.len() as u64,
        kpis.iter().map(|k| u64::from(k.signatures)).sum(),
        kpis.iter().map(|k| u64::from(k.counters_met)).sum(),
        kpis.iter().filter(|k| k.counters_met == 1).count() as u64,
    ];
    assert_eq!(forms_counters(&t).await, from_api);
    assert_eq!(from_api, [2, 3, 3, 1]);

    // The day's export holds the same visits.
    let export = one_stop
        .export_kpis(f::ExportKpisRequest {
            parent: OFFICE.into(),
            from_day: okuyami::date(2026, 4, 1),
            to_day: okuyami::date(2026, 4, 1),
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported: Vec<(String, u32, u32)> = export
        .visits
        .iter()
        .map(|k| (k.visit.clone(), k.signatures, k.counters_met))
        .collect();
    exported.sort();
    let mut reported: Vec<(String, u32, u32)> = kpis
        .iter()
        .map(|k| (k.visit.clone(), k.signatures, k.counters_met))
        .collect();
    reported.sort();
    assert_eq!(exported, reported);

    let types = metric_types(&t.server.metrics.render().await);
    for family in [
        "madoguchi_forms_visits_completed",
        "madoguchi_forms_signatures",
        "madoguchi_forms_counters_visited",
        "madoguchi_forms_onestop_visits",
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some("counter"),
            "{family}"
        );
    }
}
