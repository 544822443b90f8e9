//! The POS service end to end over gRPC with a real server on port 0 (queue,
//! identity, forms and POS in one process), on SQLite and PostgreSQL: orders
//! from a forms certificate request or by hand, cash and terminal payments
//! with the gateway's side played through `WatchRegister` and
//! `ReportPaymentOutcome`, receipts, voids and refunds, the daily close and
//! the reconciliation CSV. The payment terminal simulator over a pty is
//! driven by the gateway's own end-to-end test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use madoguchi::cli::Auth;
use madoguchi_e2e::okuyami::{self, date};
use madoguchi_e2e::{
    Backend, OFFICE, OTHER_MUNICIPALITY, Spawn, TestServer, counter, issue, on_both_backends,
    spawn, token,
};
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::pos::v1::register_event::Kind;
use madoguchi_proto::queue::v1 as q;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;

type Pos = PosServiceClient<InterceptedService<Channel, Auth>>;

const KOSEKI: &str = "13-01-01-01 戸籍手数料";
const JUKI: &str = "13-01-01-02 住民基本台帳手数料";
const ZEIMU: &str = "13-01-02-01 税務手数料";

on_both_backends!(
    card_payment_from_a_certificate_request,
    cash_with_change,
    decline_abort_and_unknown,
    request_id_reuse,
    raced_payments_charge_once,
    raced_refunds_never_exceed_paid,
    void_and_refund,
    closed_register_and_bad_input,
    random_days_reconcile,
);

async fn pos_as(t: &TestServer, role: Role, municipality: &str) -> Pos {
    // Server logs (internal errors' details) with MADOGUCHI_LOG=error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MADOGUCHI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
    let auth = Auth::bearer(&token(role, municipality).token).unwrap();
    PosServiceClient::with_interceptor(t.channel().await, auth)
}

async fn pos(t: &TestServer, role: Role) -> Pos {
    pos_as(t, role, "032034").await
}

fn register(id: &str) -> String {
    format!("{OFFICE}/registers/{id}")
}

fn yen(y: &Option<madoguchi_proto::types::v1::Yen>) -> i64 {
    y.as_ref().map_or(0, |y| y.amount)
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn open(pos: &mut Pos, register_id: &str, float_yen: i64) -> pb::RegisterSession {
    pos.open_register_session(pb::OpenRegisterSessionRequest {
        register: register(register_id),
        float_yen,
    })
    .await
    .unwrap()
    .into_inner()
}

fn line(fee_item: &str, copies: u32, exemption: &str) -> pb::OrderLineInput {
    pb::OrderLineInput {
        fee_item: fee_item.into(),
        copies,
        exemption_reason: exemption.into(),
    }
}

async fn hand_order(pos: &mut Pos, lines: Vec<pb::OrderLineInput>) -> pb::Order {
    pos.create_order(pb::CreateOrderRequest {
        parent: OFFICE.into(),
        lines,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

fn pay(
    order: &pb::Order,
    register_id: &str,
    method: pb::PaymentMethod,
    tendered: i64,
) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        order: order.name.clone(),
        register: register(register_id),
        method: method as i32,
        request_id: uuid(),
        tendered_yen: tendered,
    }
}

fn outcome(payment: &str, outcome: pb::PaymentOutcome) -> pb::ReportPaymentOutcomeRequest {
    pb::ReportPaymentOutcomeRequest {
        payment: payment.into(),
        outcome: outcome as i32,
        terminal_result_code: match outcome {
            pb::PaymentOutcome::Approved => "00",
            pb::PaymentOutcome::Declined => "05",
            pb::PaymentOutcome::Aborted => "6C",
            pb::PaymentOutcome::Unknown => "F2",
            _ => "",
        }
        .into(),
        approval_number: if outcome == pb::PaymentOutcome::Approved {
            "A12345".into()
        } else {
            String::new()
        },
        terminal_trace: "T0001".into(),
    }
}

/// The gateway's view: the register's events from `after`.
async fn watch(
    t: &TestServer,
    register_id: &str,
    after: u64,
) -> Streaming<pb::WatchRegisterResponse> {
    pos(t, Role::Device)
        .await
        .watch_register(pb::WatchRegisterRequest {
            register: register(register_id),
            after_sequence: after,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next event; the timeout only turns a missing event into a failure.
async fn next(stream: &mut Streaming<pb::WatchRegisterResponse>) -> pb::RegisterEvent {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("no event within 20 s")
        .expect("stream ended")
        .expect("stream failed")
        .event
        .expect("empty event")
}

async fn close_of(pos: &mut Pos, register_id: &str) -> pb::DailyClose {
    pos.get_daily_close(pb::GetDailyCloseRequest {
        register: register(register_id),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

fn method_total(close: &pb::DailyClose, method: pb::PaymentMethod) -> &pb::MethodTotal {
    close
        .by_method
        .iter()
        .find(|m| m.method == method as i32)
        .unwrap()
}

fn account_total(close: &pb::DailyClose, account: &str) -> Option<(i64, i64)> {
    close
        .by_account
        .iter()
        .find(|a| a.revenue_account == account)
        .map(|a| (yen(&a.received), yen(&a.refunded)))
}

// ------------------------------------------------- a forms certificate request

async fn ticket_at(t: &TestServer, category: &str, counter_id: &str) -> q::Ticket {
    let mut kiosk = t.client(Role::Device).await;
    let mut staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue(category, false))
        .await
        .unwrap()
        .into_inner();
    staff
        .call_next(q::CallNextRequest {
            counter: counter(counter_id),
            ..Default::default()
        })
        .await
        .unwrap();
    staff
        .start_service(q::StartServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The おくやみ daughter's visit with a confirmed certificate request for
/// her late father: 除籍謄本 ×2 (¥750), 住民票の除票 ×1 (¥300, 年金),
/// 評価証明書 ×1 (¥300).
async fn confirmed_certificate_request(t: &TestServer) -> f::CertificateRequest {
    let ticket = ticket_at(t, "life-events", "2").await;
    let request = okuyami::draft_inheritance_request(t, &ticket.name).await;
    // A draft is not charged.
    let status = pos(t, Role::Staff)
        .await
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            certificate_request: request.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(reason(&status), "CERTIFICATE_REQUEST_NOT_CONFIRMED");
    okuyami::confirm_request(t, &request.name).await
}

async fn card_payment_from_a_certificate_request(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let request = confirmed_certificate_request(&t).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut gateway = pos(&t, Role::Device).await;
    let session = open(&mut staff, "r1", 30_000).await;
    assert_eq!(session.state, pb::RegisterSessionState::Open as i32);

    // The 除票 for the pension claim is free (年金請求用).
    let order = staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            certificate_request: request.name.clone(),
            exemptions: vec![pb::LineExemption {
                line_index: 1,
                exemption_reason: "pension".into(),
            }],
            request_id: uuid(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(yen(&order.total), 750 * 2 + 300);
    assert_eq!(order.state, pb::OrderState::Unpaid as i32);
    let summary: Vec<_> = order
        .lines
        .iter()
        .map(|l| {
            (
                l.fee_item.as_str(),
                l.copies,
                yen(&l.amount),
                l.revenue_account.as_str(),
                l.exemption_reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("joseki-tohon", 2, 1500, KOSEKI, ""),
            ("juminhyo-joshi", 1, 0, JUKI, "pension"),
            ("hyoka", 1, 300, ZEIMU, ""),
        ]
    );
    assert!(order.lines.iter().all(|l| l.non_taxable));
    // A request is charged once.
    let status = staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            certificate_request: request.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "CERTIFICATE_REQUEST_ALREADY_ORDERED");

    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payment.state, pb::PaymentState::Pending as i32);
    let reference = payment.terminal_reference.clone();
    assert!(reference.len() <= 20 && reference.is_ascii() && !reference.is_empty());
    let paying = staff
        .get_order(pb::GetOrderRequest {
            name: order.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paying.state, pb::OrderState::PaymentInProgress as i32);

    // The gateway follows the register and drives the terminal.
    let mut events = watch(&t, "r1", 0).await;
    let requested = next(&mut events).await;
    let Some(Kind::PaymentRequested(requested)) = requested.kind else {
        panic!("expected PaymentRequested, got {requested:?}");
    };
    assert_eq!(requested.payment, payment.name);
    assert_eq!(requested.amount_yen, 1800);
    assert_eq!(requested.method, pb::PaymentMethod::Card as i32);
    assert_eq!(requested.terminal_reference, reference);
    let acked = gateway
        .report_payment_outcome(outcome(&payment.name, pb::PaymentOutcome::InProgress))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.state, pb::PaymentState::InProgress as i32);
    let approved = gateway
        .report_payment_outcome(outcome(&payment.name, pb::PaymentOutcome::Approved))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state, pb::PaymentState::Approved as i32);
    assert_eq!(approved.approval_number, "A12345");
    assert!(!approved.receipt_number.is_empty());
    // The same report again (a retry after a lost answer) is fine; a
    // contradicting one is refused.
    let again = gateway
        .report_payment_outcome(outcome(&payment.name, pb::PaymentOutcome::Approved))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.receipt_number, approved.receipt_number);
    let status = gateway
        .report_payment_outcome(outcome(&payment.name, pb::PaymentOutcome::Declined))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "PAYMENT_ALREADY_SETTLED");
    // Staff may not report outcomes; the gateway may not take payments.
    let status = staff
        .report_payment_outcome(outcome(&payment.name, pb::PaymentOutcome::Approved))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // The receipt, fully rendered for the printer.
    let receipt = next(&mut events).await;
    let Some(Kind::ReceiptToPrint(pb::ReceiptToPrint {
        receipt: Some(receipt),
    })) = receipt.kind
    else {
        panic!("expected a receipt, got {receipt:?}");
    };
    assert_eq!(receipt.municipality_name, "大船渡市");
    assert_eq!(receipt.office_name, "大船渡市役所 本庁舎");
    assert_eq!(receipt.receipt_number, approved.receipt_number);
    assert_eq!(yen(&receipt.total), 1800);
    assert_eq!(receipt.method, pb::PaymentMethod::Card as i32);
    assert!(receipt.non_taxable && !receipt.reprint);
    assert_eq!(receipt.approval_number, "A12345");
    assert_eq!(receipt.issue_time_text, "2026年04月01日 09:00");
    let lines: Vec<_> = receipt
        .lines
        .iter()
        .map(|l| {
            (
                l.name_ja.as_str(),
                yen(&l.unit_fee),
                l.copies,
                yen(&l.amount),
            )
        })
        .collect();
    assert_eq!(lines[0].1, 750);
    assert_eq!((lines[0].2, lines[0].3), (2, 1500));
    assert_eq!((lines[1].1, lines[1].3), (300, 0));
    assert!(
        receipt.lines[1].exemption_ja.contains("年金請求用"),
        "{:?}",
        receipt.lines[1]
    );
    assert_eq!(lines[2], ("固定資産評価証明書", 300, 1, 300));

    // Paid once: another payment is refused.
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 2000))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ORDER_ALREADY_PAID");

    // A reprint is marked as such and printed through the register.
    let reprint = staff
        .reprint_receipt(pb::ReprintReceiptRequest {
            payment: payment.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reprint.reprint);
    assert_eq!(reprint.receipt_number, receipt.receipt_number);
    let event = next(&mut events).await;
    assert!(
        matches!(event.kind, Some(Kind::ReceiptToPrint(pb::ReceiptToPrint { receipt: Some(ref r) })) if r.reprint)
    );

    // The daily close matches.
    staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 30_000,
        })
        .await
        .unwrap();
    let close = close_of(&mut staff, "r1").await;
    let card = method_total(&close, pb::PaymentMethod::Card);
    assert_eq!(
        (card.payments, yen(&card.received), yen(&card.net)),
        (1, 1800, 1800)
    );
    assert_eq!(
        yen(&method_total(&close, pb::PaymentMethod::Cash).received),
        0
    );
    assert_eq!(account_total(&close, KOSEKI), Some((1500, 0)));
    assert_eq!(account_total(&close, JUKI), Some((0, 0)));
    assert_eq!(account_total(&close, ZEIMU), Some((300, 0)));
    let joshi = close
        .by_fee_item
        .iter()
        .find(|i| i.fee_item == "juminhyo-joshi")
        .unwrap();
    assert_eq!((joshi.copies, joshi.exempted_copies), (0, 1));
    let cash = close.cash.as_ref().unwrap();
    assert_eq!(
        (
            yen(&cash.expected),
            yen(&cash.counted),
            yen(&cash.difference)
        ),
        (30_000, 30_000, 0)
    );
    let usage = close.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.payments,
            usage.cashless_payments,
            usage.receipts_printed
        ),
        (1, 1, 2)
    );
    let office = staff
        .get_daily_close(pb::GetDailyCloseRequest {
            office: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(office.by_method, close.by_method);
    assert_eq!(office.by_account, close.by_account);

    // The reconciliation export: one row per line.
    let export = staff
        .export_reconciliation(pb::ExportReconciliationRequest {
            office: OFFICE.into(),
            start_day: date(2026, 4, 1),
            end_day: date(2026, 4, 1),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.rows, 3);
    let rows: Vec<&str> = export.csv.lines().collect();
    assert!(
        rows[0].starts_with("business_day,office,register,transaction,payment"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("2026-04-01")
            && rows[1].contains("SALE")
            && rows[1].contains("CARD")
            && rows[1].contains(KOSEKI)
            && rows[1].ends_with("+09:00"),
        "{}",
        rows[1]
    );
    assert!(rows[2].contains("pension"), "{}", rows[2]);
}

async fn cash_with_change(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 10_000).await;
    // 身分証明書 ×2 and five pages of copies: ¥650.
    let order = hand_order(&mut staff, vec![line("mibun", 2, ""), line("copy", 5, "")]).await;
    assert_eq!(yen(&order.total), 650);
    let short = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 600))
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument);
    assert_eq!(fields(&short), ["tendered_yen"]);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payment.state, pb::PaymentState::Approved as i32);
    assert_eq!((yen(&payment.tendered), yen(&payment.change)), (1000, 350));
    let mut events = watch(&t, "r1", 0).await;
    let kick = next(&mut events).await;
    assert_eq!(kick.sequence, 1);
    assert!(matches!(kick.kind, Some(Kind::DrawerKick(ref k)) if k.cause == payment.name));
    let receipt = next(&mut events).await;
    assert_eq!(receipt.sequence, 2);
    let Some(Kind::ReceiptToPrint(pb::ReceiptToPrint {
        receipt: Some(receipt),
    })) = receipt.kind
    else {
        panic!("expected a receipt");
    };
    assert_eq!(
        (
            yen(&receipt.total),
            yen(&receipt.tendered),
            yen(&receipt.change)
        ),
        (650, 1000, 350)
    );
    assert_eq!(receipt.method, pb::PaymentMethod::Cash as i32);
    assert_eq!(receipt.lines[1].name_ja, "公文書の写し（1枚）");
    // Resuming after the receipt gives nothing old, then the next event.
    let mut resumed = watch(&t, "r1", 2).await;
    let order2 = hand_order(&mut staff, vec![line("juminhyo", 1, "")]).await;
    staff
        .create_payment(pay(&order2, "r1", pb::PaymentMethod::Cash, 300))
        .await
        .unwrap();
    assert_eq!(next(&mut resumed).await.sequence, 3);
    // The drawer is ¥10 short at closing.
    let closed = staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 10_000 + 650 + 300 - 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(yen(&closed.expected_cash), 10_950);
    assert_eq!(yen(&closed.cash_difference), -10);
    let close = close_of(&mut staff, "r1").await;
    let cash = close.cash.unwrap();
    assert_eq!(
        (
            yen(&cash.float_yen),
            yen(&cash.net_cash),
            yen(&cash.difference)
        ),
        (10_000, 950, -10)
    );
    assert_eq!(close.usage.unwrap().cashless_payments, 0);
}

async fn decline_abort_and_unknown(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    let mut gateway = pos(&t, Role::Device).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, vec![line("koseki-tohon", 1, "")]).await;
    let state = |o: pb::Order| o.state;
    let get = |mut c: Pos, name: String| async move {
        c.get_order(pb::GetOrderRequest { name })
            .await
            .unwrap()
            .into_inner()
    };

    // Declined: the order is payable again.
    let declined = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    let declined = gateway
        .report_payment_outcome(outcome(&declined.name, pb::PaymentOutcome::Declined))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declined.state, pb::PaymentState::Declined as i32);
    assert_eq!(
        state(get(staff.clone(), order.name.clone()).await),
        pb::OrderState::Unpaid as i32
    );

    // Aborted at staff's request: the gateway is told, the terminal says so.
    let emoney = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Emoney, 0))
        .await
        .unwrap()
        .into_inner();
    staff
        .abort_payment(pb::AbortPaymentRequest {
            name: emoney.name.clone(),
        })
        .await
        .unwrap();
    let mut events = watch(&t, "r1", 0).await;
    let kinds: Vec<_> = [
        next(&mut events).await,
        next(&mut events).await,
        next(&mut events).await,
    ]
    .into_iter()
    .map(|e| e.kind.unwrap())
    .collect();
    assert!(
        matches!(&kinds[2], Kind::AbortRequested(a) if a.payment == emoney.name && a.terminal_reference == emoney.terminal_reference)
    );
    let aborted = gateway
        .report_payment_outcome(outcome(&emoney.name, pb::PaymentOutcome::Aborted))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(aborted.state, pb::PaymentState::Aborted as i32);
    let status = staff
        .abort_payment(pb::AbortPaymentRequest {
            name: emoney.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_NOT_RUNNING");

    // 処理未了: the order is blocked until a supervisor resolves it.
    let qr = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Qr, 0))
        .await
        .unwrap()
        .into_inner();
    let unknown = gateway
        .report_payment_outcome(outcome(&qr.name, pb::PaymentOutcome::Unknown))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown.state, pb::PaymentState::Unknown as i32);
    assert_eq!(
        state(get(staff.clone(), order.name.clone()).await),
        pb::OrderState::PaymentInProgress as i32
    );
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 450))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_IN_PROGRESS");
    let resolve = |outcome: pb::PaymentOutcome, note: &str| pb::ResolvePaymentRequest {
        name: qr.name.clone(),
        outcome: outcome as i32,
        note: note.into(),
        approval_number: "J-778".into(),
    };
    let status = staff
        .resolve_payment(resolve(
            pb::PaymentOutcome::Approved,
            "端末の取引履歴で承認を確認",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = supervisor
        .resolve_payment(resolve(pb::PaymentOutcome::Aborted, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut got = fields(&status);
    got.sort();
    assert_eq!(got, ["note", "outcome"]);
    let resolved = supervisor
        .resolve_payment(resolve(
            pb::PaymentOutcome::Approved,
            "端末の取引履歴で承認を確認",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, pb::PaymentState::Approved as i32);
    assert_eq!(resolved.resolved_by, "test-supervisor");
    assert!(!resolved.receipt_number.is_empty());
    assert_eq!(
        state(get(staff.clone(), order.name.clone()).await),
        pb::OrderState::Paid as i32
    );
    let status = supervisor
        .resolve_payment(resolve(pb::PaymentOutcome::Declined, "やはり未承認"))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_NOT_UNKNOWN");
    let receipt = next(&mut events).await;
    assert!(
        matches!(receipt.kind, Some(Kind::PaymentRequested(_))),
        "{receipt:?}"
    );
    let receipt = next(&mut events).await;
    assert!(
        matches!(receipt.kind, Some(Kind::ReceiptToPrint(ref r)) if r.receipt.as_ref().unwrap().payment == qr.name),
        "{receipt:?}"
    );

    // Another 処理未了, settled by the gateway's later status enquiry.
    let order2 = hand_order(&mut staff, vec![line("inkan", 1, "")]).await;
    let card = staff
        .create_payment(pay(&order2, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    gateway
        .report_payment_outcome(outcome(&card.name, pb::PaymentOutcome::Unknown))
        .await
        .unwrap();
    let later = gateway
        .report_payment_outcome(outcome(&card.name, pb::PaymentOutcome::Declined))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(later.state, pb::PaymentState::Declined as i32);
    let close = close_of(&mut staff, "r1").await;
    let usage = close.usage.unwrap();
    assert_eq!(
        (
            usage.payments,
            usage.failed_payments,
            usage.unresolved_payments
        ),
        (1, 3, 0)
    );
    assert_eq!(yen(&close.received), 450);
}

async fn request_id_reuse(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, vec![line("juminhyo", 2, "")]).await;
    let other = hand_order(&mut staff, vec![line("juminhyo", 1, "")]).await;
    let first = pay(&order, "r1", pb::PaymentMethod::Card, 0);
    let a = staff
        .create_payment(first.clone())
        .await
        .unwrap()
        .into_inner();
    let b = staff
        .create_payment(first.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.name, b.name);
    assert_eq!(a.terminal_reference, b.terminal_reference);
    for (changed, field) in [
        (
            pb::CreatePaymentRequest {
                method: pb::PaymentMethod::Qr as i32,
                ..first.clone()
            },
            "method",
        ),
        (
            pb::CreatePaymentRequest {
                order: other.name.clone(),
                ..first.clone()
            },
            "order",
        ),
        (
            pb::CreatePaymentRequest {
                method: pb::PaymentMethod::Cash as i32,
                tendered_yen: 1000,
                ..first.clone()
            },
            "method",
        ),
    ] {
        let status = staff.create_payment(changed).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(reason(&status), "REQUEST_ID_REUSED");
        assert!(
            status.message().contains(&format!("different {field}")),
            "{}",
            status.message()
        );
    }
    // One PaymentRequested, whatever was retried.
    let mut events = watch(&t, "r1", 0).await;
    next(&mut events).await;
    let head = staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&head), "PAYMENT_UNSETTLED");
    // Orders are idempotent too.
    let create = pb::CreateOrderRequest {
        parent: OFFICE.into(),
        lines: vec![line("hyoka", 3, "")],
        request_id: uuid(),
        ..Default::default()
    };
    let o1 = staff
        .create_order(create.clone())
        .await
        .unwrap()
        .into_inner();
    let o2 = staff
        .create_order(create.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o1.name, o2.name);
    let status = staff
        .create_order(pb::CreateOrderRequest {
            lines: vec![line("hyoka", 2, "")],
            ..create
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert!(
        status.message().contains("different lines"),
        "{}",
        status.message()
    );
}

async fn raced_payments_charge_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    open(&mut staff, "r2", 0).await;
    let mut orders = Vec::new();
    for _ in 0..6 {
        orders.push(hand_order(&mut staff, vec![line("koseki-tohon", 1, "")]).await);
    }
    let mut expected_received = 0;
    for (i, order) in orders.iter().enumerate() {
        // Two registers, two request ids each, at once; card for half the
        // orders (the loser sees the pending one), cash for the rest.
        let method = if i % 2 == 0 {
            pb::PaymentMethod::Card
        } else {
            pb::PaymentMethod::Cash
        };
        let tendered = if method == pb::PaymentMethod::Cash {
            500
        } else {
            0
        };
        let mut calls = Vec::new();
        for register_id in ["r1", "r2", "r1", "r2"] {
            let mut client = pos(&t, Role::Staff).await;
            let request = pay(order, register_id, method, tendered);
            calls.push(tokio::spawn(
                async move { client.create_payment(request).await },
            ));
        }
        let mut won = Vec::new();
        for call in calls {
            match call.await.unwrap() {
                Ok(p) => won.push(p.into_inner()),
                Err(status) => {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                    assert!(
                        ["ORDER_ALREADY_PAID", "PAYMENT_IN_PROGRESS"]
                            .contains(&reason(&status).as_str()),
                        "{status:?}"
                    );
                }
            }
        }
        assert_eq!(won.len(), 1, "order {i}: {won:?}");
        if method == pb::PaymentMethod::Card {
            pos(&t, Role::Device)
                .await
                .report_payment_outcome(outcome(&won[0].name, pb::PaymentOutcome::Approved))
                .await
                .unwrap();
        }
        expected_received += 450;
    }
    let office = staff
        .get_daily_close(pb::GetDailyCloseRequest {
            office: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(office.usage.unwrap().payments, 6);
    assert_eq!(yen(&office.received), expected_received);
    // The database refuses a second live payment even past the service's
    // own check (the partial unique index).
    let pool = sea_orm::Database::connect(&t.database_url).await.unwrap();
    // A copy of the approved payment row, as a buggy code path might write it.
    let copy = format!(
        "INSERT INTO pos_payments SELECT name || '-copy', order_name, office, register, session, method, state, amount_yen, tendered_yen, change_yen, request_id || '-copy', fingerprint, NULL, terminal_result_code, approval_number, terminal_trace, NULL, receipt_prints, business_day, created_at, approved_at, settled_at, created_by, resolved_by, resolution_note FROM pos_payments WHERE order_name = '{}'",
        orders[0].name
    );
    use sea_orm::ConnectionTrait;
    let err = pool.execute_unprepared(&copy).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
}

/// Six supervisors refund ¥300 of the same ¥1,350 line at once, through
/// two registers: exactly four succeed, and what was paid back is never
/// more than what was paid.
async fn raced_refunds_never_exceed_paid(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 10_000).await;
    open(&mut staff, "r2", 10_000).await;
    let order = hand_order(&mut staff, vec![line("koseki-tohon", 3, "")]).await;
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1350))
        .await
        .unwrap()
        .into_inner();
    let mut calls = Vec::new();
    for i in 0..6 {
        let mut supervisor = pos(&t, Role::Supervisor).await;
        let request = pb::RefundPaymentRequest {
            name: payment.name.clone(),
            line_index: 0,
            amount_yen: 300,
            reason: "交付できず".into(),
            register: register(if i % 2 == 0 { "r1" } else { "r2" }),
            request_id: uuid(),
        };
        calls.push(tokio::spawn(async move {
            supervisor.refund_payment(request).await
        }));
    }
    let mut done = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => done += 1,
            Err(status) => assert_eq!(reason(&status), "REFUND_EXCEEDS_PAID", "{status:?}"),
        }
    }
    assert_eq!(done, 4);
    let payment = staff
        .get_payment(pb::GetPaymentRequest {
            name: payment.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(yen(&payment.refunded), 1200);
    let office = staff
        .get_daily_close(pb::GetDailyCloseRequest {
            office: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((yen(&office.received), yen(&office.refunded)), (1350, 1200));
}

async fn void_and_refund(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    let mut gateway = pos(&t, Role::Device).await;
    open(&mut staff, "r1", 5_000).await;
    // 戸籍謄本 ¥450 + 評価証明書 ×2 ¥600 = ¥1,050.
    let order = hand_order(
        &mut staff,
        vec![line("koseki-tohon", 1, ""), line("hyoka", 2, "")],
    )
    .await;
    let cash = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1050))
        .await
        .unwrap()
        .into_inner();
    let void = |name: &str| pb::VoidPaymentRequest {
        name: name.into(),
        reason: "支払方法の誤り".into(),
        request_id: uuid(),
    };
    let status = staff.void_payment(void(&cash.name)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let voided = supervisor
        .void_payment(void(&cash.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (voided.kind, voided.state, yen(&voided.amount)),
        (
            pb::RefundKind::Void as i32,
            pb::RefundState::Completed as i32,
            1050
        )
    );
    assert_eq!(voided.requested_by, "test-supervisor");
    let cash = staff
        .get_payment(pb::GetPaymentRequest {
            name: cash.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (cash.state, yen(&cash.refunded)),
        (pb::PaymentState::Voided as i32, 1050)
    );
    let status = supervisor.void_payment(void(&cash.name)).await.unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_NOT_APPROVED");

    // Paid again by card, then partly refunded (one 評価証明書 not issued).
    let card = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    gateway
        .report_payment_outcome(outcome(&card.name, pb::PaymentOutcome::Approved))
        .await
        .unwrap();
    let refund = |amount: i64| pb::RefundPaymentRequest {
        name: card.name.clone(),
        line_index: 1,
        amount_yen: amount,
        reason: "証明書1通を交付できず".into(),
        request_id: uuid(),
        ..Default::default()
    };
    let status = staff.refund_payment(refund(300)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = supervisor.refund_payment(refund(700)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "REFUND_EXCEEDS_PAID");
    assert!(
        status.message().contains("exceeds the 600 yen"),
        "{}",
        status.message()
    );
    let requested = supervisor
        .refund_payment(refund(400))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(requested.state, pb::RefundState::Requested as i32);
    assert_eq!(
        requested.original_terminal_reference,
        card.terminal_reference
    );
    // The gateway is asked to pay back through the terminal.
    let mut events = watch(&t, "r1", 0).await;
    let mut refund_event = None;
    for _ in 0..8 {
        if let Some(Kind::RefundRequested(r)) = next(&mut events).await.kind {
            refund_event = Some(r);
            break;
        }
    }
    let refund_event = refund_event.unwrap();
    assert_eq!(refund_event.refund, requested.name);
    assert_eq!(
        refund_event.original_terminal_reference,
        card.terminal_reference
    );
    assert_eq!(refund_event.amount_yen, 400);
    assert!(refund_event.terminal_reference.len() <= 20);
    let done = gateway
        .report_refund_outcome(pb::ReportRefundOutcomeRequest {
            refund: requested.name.clone(),
            outcome: pb::PaymentOutcome::Approved as i32,
            terminal_result_code: "00".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, pb::RefundState::Completed as i32);
    // ¥200 of the line is left: ¥300 more is too much, precisely.
    let status = supervisor.refund_payment(refund(300)).await.unwrap_err();
    assert_eq!(reason(&status), "REFUND_EXCEEDS_PAID");
    assert!(
        status.message().contains("exceeds the 200 yen"),
        "{}",
        status.message()
    );
    // A partly refunded payment is not voided; it is refunded line by line.
    let status = supervisor.void_payment(void(&card.name)).await.unwrap_err();
    assert_eq!(reason(&status), "PAYMENT_PARTLY_REFUNDED");

    let close = close_of(&mut staff, "r1").await;
    let c = method_total(&close, pb::PaymentMethod::Cash);
    assert_eq!(
        (yen(&c.received), yen(&c.refunded), yen(&c.net)),
        (1050, 1050, 0)
    );
    let k = method_total(&close, pb::PaymentMethod::Card);
    assert_eq!(
        (yen(&k.received), yen(&k.refunded), yen(&k.net)),
        (1050, 400, 650)
    );
    assert_eq!(account_total(&close, ZEIMU), Some((1200, 600 + 400)));
    assert_eq!(account_total(&close, KOSEKI), Some((900, 450)));
    let usage = close.usage.unwrap();
    assert_eq!((usage.voids, usage.refunds), (1, 1));
    assert_eq!(yen(&close.cash.unwrap().expected), 5_000);
    let export = staff
        .export_reconciliation(pb::ExportReconciliationRequest {
            office: OFFICE.into(),
            start_day: date(2026, 4, 1),
            end_day: date(2026, 4, 1),
        })
        .await
        .unwrap()
        .into_inner();
    // Two sales of two lines, a void of two lines, a refund of one.
    assert_eq!(export.rows, 7);
    let total: i64 = export
        .csv
        .lines()
        .skip(1)
        .map(|row| row.split(',').nth(15).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, yen(&close.net));
    // Voiding is for the same day: next morning it is a refund.
    t.clock.advance(chrono::Duration::days(1));
    let status = supervisor.void_payment(void(&card.name)).await.unwrap_err();
    assert!(["VOID_NOT_ALLOWED", "PAYMENT_PARTLY_REFUNDED"].contains(&reason(&status).as_str()));
}

async fn closed_register_and_bad_input(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    let order = hand_order(&mut staff, vec![line("juminhyo", 1, "")]).await;
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 300))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "REGISTER_NOT_OPEN");
    open(&mut staff, "r1", 1000).await;
    let status = staff
        .open_register_session(pb::OpenRegisterSessionRequest {
            register: register("r1"),
            float_yen: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "REGISTER_ALREADY_OPEN");
    staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 1000,
        })
        .await
        .unwrap();
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 300))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "REGISTER_NOT_OPEN");
    let status = staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "REGISTER_NOT_OPEN");

    // Absurd amounts and names, every violation at once.
    let status = staff
        .open_register_session(pb::OpenRegisterSessionRequest {
            register: "registers/r1".into(),
            float_yen: -5,
        })
        .await
        .unwrap_err();
    let mut got = fields(&status);
    got.sort();
    assert_eq!(got, ["float_yen", "register"]);
    let status = staff
        .open_register_session(pb::OpenRegisterSessionRequest {
            register: register("r1"),
            float_yen: 1_000_000_000_000,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["float_yen"]);
    let status = staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            lines: vec![
                line("gold-plated-juminhyo", 1, ""),
                line("juminhyo", 0, ""),
                line("mibun", 1, "disaster"),
                line("hyoka", 1, "lottery-win"),
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut got = fields(&status);
    got.sort();
    assert_eq!(
        got,
        [
            "lines[0].fee_item",
            "lines[1].copies",
            "lines[2].exemption_reason",
            "lines[3].exemption_reason"
        ]
    );
    let status = staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["lines"]);
    open(&mut staff, "r1", 0).await;
    let status = staff
        .create_payment(pb::CreatePaymentRequest {
            order: order.name.clone(),
            register: register("r1"),
            method: 9,
            request_id: "not a valid id!".into(),
            tendered_yen: -1,
        })
        .await
        .unwrap_err();
    let mut got = fields(&status);
    got.sort();
    assert_eq!(got, ["method", "request_id", "tendered_yen"]);
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 500))
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["tendered_yen"]);
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 5_000_000))
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["tendered_yen"]);
    let free = hand_order(&mut staff, vec![line("juminhyo", 1, "pension")]).await;
    assert_eq!(yen(&free.total), 0);
    let status = staff
        .create_payment(pay(&free, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap_err();
    assert_eq!(fields(&status), ["method"]);
    // Another municipality's principal, and the gateway taking payments.
    let mut foreign = pos_as(&t, Role::Admin, OTHER_MUNICIPALITY).await;
    let status = foreign
        .get_order(pb::GetOrderRequest {
            name: order.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = pos(&t, Role::Device)
        .await
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 300))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = pos(&t, Role::Supervisor)
        .await
        .refund_payment(pb::RefundPaymentRequest {
            name: format!("{}/payments/none", order.name),
            amount_yen: 0,
            reason: String::new(),
            request_id: uuid(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut got = fields(&status);
    got.sort();
    assert_eq!(got, ["amount_yen", "reason"]);
    // Nothing of it was written.
    let close = close_of(&mut staff, "r1").await;
    assert_eq!(close.usage.unwrap().payments, 0);
    assert_eq!(yen(&close.received), 0);
    let order = staff
        .get_order(pb::GetOrderRequest {
            name: order.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.state, pb::OrderState::Unpaid as i32);
}

// ------------------------------------------------------- random days

/// One step of a random day.
#[derive(Debug, Clone)]
enum Step {
    /// A resident pays an order of up to three lines.
    Pay {
        lines: Vec<(usize, u32, bool)>,
        method: i32,
        /// For terminal methods: 0 approve, 1 decline, 2 unknown → approved
        /// by a supervisor, 3 unknown → declined by a status enquiry.
        fate: u8,
    },
    /// A supervisor voids the newest approved payment.
    Void,
    /// A supervisor refunds part of the first line of the oldest payment.
    Refund { percent: i64 },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    use proptest::prelude::*;
    let pay = (
        proptest::collection::vec((0usize..5, 1u32..4, proptest::bool::weighted(0.15)), 1..4),
        1i32..=4,
        0u8..4,
    )
        .prop_map(|(lines, method, fate)| Step::Pay {
            lines,
            method,
            fate,
        });
    let step = prop_oneof![
        6 => pay,
        1 => Just(Step::Void),
        1 => (1i64..=100).prop_map(|percent| Step::Refund { percent }),
    ];
    proptest::collection::vec(step, 4..12)
}

const ITEMS: [&str; 5] = ["juminhyo", "koseki-tohon", "joseki-tohon", "hyoka", "copy"];

async fn random_days_reconcile(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    let mut gateway = pos(&t, Role::Device).await;
    let mut runner = TestRunner::deterministic();
    let mut after = 0u64;
    for day in 0..3 {
        let plan = steps().new_tree(&mut runner).unwrap().current();
        open(&mut staff, "r1", 20_000).await;
        let mut approved: Vec<pb::Payment> = Vec::new();
        let mut refunds_by_method: BTreeMap<i32, i64> = BTreeMap::new();
        let mut refunds_by_account: BTreeMap<String, i64> = BTreeMap::new();
        let mut lines_of: BTreeMap<String, Vec<pb::OrderLine>> = BTreeMap::new();
        for step in &plan {
            match step {
                Step::Pay {
                    lines,
                    method,
                    fate,
                } => {
                    let order = hand_order(
                        &mut staff,
                        lines
                            .iter()
                            .map(|(i, copies, exempt)| {
                                line(ITEMS[*i], *copies, if *exempt { "pension" } else { "" })
                            })
                            .collect(),
                    )
                    .await;
                    lines_of.insert(order.name.clone(), order.lines.clone());
                    let total = yen(&order.total);
                    let method = if total == 0 {
                        pb::PaymentMethod::Cash as i32
                    } else {
                        *method
                    };
                    let cash = method == pb::PaymentMethod::Cash as i32;
                    let request = pb::CreatePaymentRequest {
                        order: order.name.clone(),
                        register: register("r1"),
                        method,
                        request_id: uuid(),
                        tendered_yen: if cash { total + 1000 } else { 0 },
                    };
                    let payment = staff.create_payment(request).await.unwrap().into_inner();
                    let payment = if cash {
                        payment
                    } else {
                        let name = payment.name.clone();
                        match fate {
                            0 => report(&mut gateway, &name, pb::PaymentOutcome::Approved).await,
                            1 => report(&mut gateway, &name, pb::PaymentOutcome::Declined).await,
                            2 => {
                                report(&mut gateway, &name, pb::PaymentOutcome::Unknown).await;
                                supervisor
                                    .resolve_payment(pb::ResolvePaymentRequest {
                                        name,
                                        outcome: pb::PaymentOutcome::Approved as i32,
                                        note: "端末の取引履歴で確認".into(),
                                        approval_number: String::new(),
                                    })
                                    .await
                                    .unwrap()
                                    .into_inner()
                            }
                            _ => {
                                report(&mut gateway, &name, pb::PaymentOutcome::Unknown).await;
                                report(&mut gateway, &name, pb::PaymentOutcome::Declined).await
                            }
                        }
                    };
                    if payment.state == pb::PaymentState::Approved as i32 {
                        approved.push(payment);
                    }
                }
                Step::Void => {
                    let Some(last) = approved
                        .iter()
                        .rev()
                        .find(|p| {
                            yen(&p.refunded) == 0 && p.state == pb::PaymentState::Approved as i32
                        })
                        .cloned()
                    else {
                        continue;
                    };
                    let refund = supervisor
                        .void_payment(pb::VoidPaymentRequest {
                            name: last.name.clone(),
                            reason: "取消".into(),
                            request_id: uuid(),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    let refund = settle_refund(&mut gateway, refund).await;
                    assert_eq!(refund.state, pb::RefundState::Completed as i32);
                    *refunds_by_method.entry(last.method).or_default() += yen(&refund.amount);
                    for l in &lines_of[&last.order] {
                        *refunds_by_account
                            .entry(l.revenue_account.clone())
                            .or_default() += yen(&l.amount);
                    }
                    let p = approved.iter_mut().find(|p| p.name == last.name).unwrap();
                    p.state = pb::PaymentState::Voided as i32;
                }
                Step::Refund { percent } => {
                    let Some(first) = approved
                        .iter()
                        .find(|p| p.state == pb::PaymentState::Approved as i32)
                        .cloned()
                    else {
                        continue;
                    };
                    let line = &lines_of[&first.order][0];
                    let amount = yen(&line.amount) * percent / 100;
                    let result = supervisor
                        .refund_payment(pb::RefundPaymentRequest {
                            name: first.name.clone(),
                            line_index: 0,
                            amount_yen: amount,
                            reason: "一部還付".into(),
                            request_id: uuid(),
                            ..Default::default()
                        })
                        .await;
                    match result {
                        Ok(refund) => {
                            let refund = settle_refund(&mut gateway, refund.into_inner()).await;
                            *refunds_by_method.entry(first.method).or_default() +=
                                yen(&refund.amount);
                            *refunds_by_account
                                .entry(line.revenue_account.clone())
                                .or_default() += yen(&refund.amount);
                            let p = approved.iter_mut().find(|p| p.name == first.name).unwrap();
                            p.refunded = Some(madoguchi_proto::types::v1::Yen {
                                amount: yen(&p.refunded) + amount,
                            });
                        }
                        Err(status) => {
                            // Zero yen, or more than is left on the line.
                            assert!(
                                status.code() == Code::InvalidArgument
                                    || reason(&status) == "REFUND_EXCEEDS_PAID",
                                "{status:?}"
                            );
                        }
                    }
                }
            }
        }
        // What the register printed today (first prints only).
        let mut events = watch(&t, "r1", after).await;
        let head = staff
            .get_daily_close(pb::GetDailyCloseRequest {
                register: register("r1"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut receipts_by_method: BTreeMap<i32, i64> = BTreeMap::new();
        let mut receipts_by_account: BTreeMap<String, i64> = BTreeMap::new();
        let mut printed = 0;
        while printed < approved.len() {
            let event = next(&mut events).await;
            after = event.sequence;
            if let Some(Kind::ReceiptToPrint(pb::ReceiptToPrint { receipt: Some(r) })) = event.kind
            {
                assert!(!r.reprint);
                printed += 1;
                *receipts_by_method.entry(r.method).or_default() += yen(&r.total);
                let payment = approved.iter().find(|p| p.name == r.payment).unwrap();
                let lines = &lines_of[&payment.order];
                assert_eq!(
                    lines.iter().map(|l| yen(&l.amount)).sum::<i64>(),
                    yen(&r.total)
                );
                for l in lines {
                    *receipts_by_account
                        .entry(l.revenue_account.clone())
                        .or_default() += yen(&l.amount);
                }
            }
        }
        for m in &head.by_method {
            assert_eq!(
                yen(&m.received),
                receipts_by_method.get(&m.method).copied().unwrap_or(0),
                "day {day} method {} received",
                m.method
            );
            assert_eq!(
                yen(&m.refunded),
                refunds_by_method.get(&m.method).copied().unwrap_or(0),
                "day {day} method {} refunded",
                m.method
            );
        }
        for a in &head.by_account {
            assert_eq!(
                yen(&a.received),
                receipts_by_account
                    .get(&a.revenue_account)
                    .copied()
                    .unwrap_or(0),
                "day {day} {}",
                a.revenue_account
            );
            assert_eq!(
                yen(&a.refunded),
                refunds_by_account
                    .get(&a.revenue_account)
                    .copied()
                    .unwrap_or(0),
                "day {day} {}",
                a.revenue_account
            );
        }
        assert_eq!(
            yen(&head.received),
            receipts_by_method.values().sum::<i64>()
        );
        assert_eq!(
            head.usage.as_ref().unwrap().payments as usize,
            approved.len()
        );
        // Cash in the drawer is exactly float + cash net.
        let cash_net = receipts_by_method
            .get(&(pb::PaymentMethod::Cash as i32))
            .copied()
            .unwrap_or(0)
            - refunds_by_method
                .get(&(pb::PaymentMethod::Cash as i32))
                .copied()
                .unwrap_or(0);
        let closed = staff
            .close_register_session(pb::CloseRegisterSessionRequest {
                register: register("r1"),
                counted_cash_yen: 20_000 + cash_net,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(yen(&closed.cash_difference), 0, "day {day}");
        t.clock.advance(chrono::Duration::days(1));
    }
}

/// The gateway pays back a terminal refund; cash refunds are already done.
async fn settle_refund(gateway: &mut Pos, refund: pb::Refund) -> pb::Refund {
    if refund.state == pb::RefundState::Completed as i32 {
        return refund;
    }
    gateway
        .report_refund_outcome(pb::ReportRefundOutcomeRequest {
            refund: refund.name.clone(),
            outcome: pb::PaymentOutcome::Approved as i32,
            terminal_result_code: "00".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn report(gateway: &mut Pos, payment: &str, o: pb::PaymentOutcome) -> pb::Payment {
    gateway
        .report_payment_outcome(outcome(payment, o))
        .await
        .unwrap()
        .into_inner()
}
