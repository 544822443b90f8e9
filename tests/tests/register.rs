//! The register on the gateway end to end (issue #5, device side): a real
//! server on port 0 (SQLite and PostgreSQL) with the POS service, the
//! gateway as in production following `WatchRegister`, and its payment
//! terminal and receipt printer replaced by their simulators speaking the
//! real protocols over pseudo-terminals.
//!
//! "One charge" is always read from the terminal simulator's own ledger
//! (what the card network would see), never from the gateway. Waits are
//! for a condition (a state reached, a receipt printed) under a deadline
//! that only turns a hang into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use madoguchi::cli::Auth;
use madoguchi_e2e::okuyami;
use madoguchi_e2e::{
    Backend, OFFICE, Spawn, TestServer, counter, issue, on_both_backends, spawn, token,
};
use madoguchi_gateway::app::{Overrides, RunningGateway, start};
use madoguchi_gateway::config::GatewayConfig;
use madoguchi_gateway::devices::printer::receipt::PrintedReceipt;
use madoguchi_gateway::devices::printer::sim::{self as printer_sim, PrinterSimHandle};
use madoguchi_gateway::devices::terminal::TerminalConfig;
use madoguchi_gateway::devices::terminal::frame::SaleRef;
use madoguchi_gateway::devices::terminal::sim::{
    self as terminal_sim, Behaviour, TerminalSimHandle,
};
use madoguchi_gateway::serial::{Connector, pty_pair};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SharedClock;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::pos::v1::pos_service_client::PosServiceClient;
use madoguchi_proto::queue::v1 as q;
use tempfile::TempDir;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

on_both_backends!(
    card_payment_prints_the_receipt_and_closes_the_day,
    cash_payment_opens_the_drawer,
    decline_is_reported_and_the_order_stays_payable,
    abort_reaches_the_running_sale,
    lost_response_is_recovered_by_enquiry,
    terminal_in_progress_is_unknown_until_a_supervisor_resolves_it,
    gateway_restart_mid_payment_charges_once,
    two_registers_racing_one_order_charge_once,
    void_pays_back_on_the_terminal_once,
);

type Pos = PosServiceClient<InterceptedService<Channel, Auth>>;

/// Deadline that turns a hang into a failure; never a wait by itself.
const DEADLINE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn register(id: &str) -> String {
    format!("{OFFICE}/registers/{id}")
}

fn yen(y: &Option<madoguchi_proto::types::v1::Yen>) -> i64 {
    y.as_ref().map_or(0, |y| y.amount)
}

async fn pos(t: &TestServer, role: Role) -> Pos {
    let auth = Auth::bearer(&token(role, "032034").token).unwrap();
    PosServiceClient::with_interceptor(t.channel().await, auth)
}

// ------------------------------------------------------------ the floor

/// Devices of one register, which outlive a gateway restart.
struct RegisterSims {
    terminal: TerminalSimHandle,
    printer: PrinterSimHandle,
}

struct Floor {
    gateway: Option<RunningGateway>,
    sims: std::collections::HashMap<String, RegisterSims>,
    config: GatewayConfig,
    terminal: TerminalConfig,
    clock: SharedClock,
    _state: TempDir,
}

/// Terminal timers for the tests: T4 (command → completion) as given; a
/// few quick status enquiries.
fn terminal_config(t4: Duration) -> TerminalConfig {
    TerminalConfig {
        t3: Duration::from_secs(5),
        t4,
        enquiry_attempts: 3,
        enquiry_interval: Duration::from_millis(100),
        ..TerminalConfig::default()
    }
}

async fn floor(t: &TestServer, registers: &[&str], terminal: TerminalConfig) -> Floor {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MADOGUCHI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("madoguchi_gateway=info")),
        )
        .with_test_writer()
        .try_init();
    let state = tempfile::tempdir().unwrap();
    let mut text = format!(
        r#"
        state = "{state}"
        [cluster]
        endpoint = "http://{addr}"
        office = "{OFFICE}"
        token = "test-device-032034"
        call_timeout = 5000

        [timing]
        backoff_initial = 20
        backoff_max = 200
        housekeeping = 600000
        "#,
        state = state.path().join("gateway.db").display(),
        addr = t.server.addr,
    );
    for id in registers {
        text.push_str(&format!(
            r#"
            [[registers]]
            id = "{id}"
            terminal = {{ path = "sim-terminal-{id}", stop_bits = "2" }}
            printer = {{ path = "sim-receipt-{id}" }}
            "#
        ));
    }
    let config = GatewayConfig::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut floor = Floor {
        gateway: None,
        sims: Default::default(),
        config,
        terminal,
        clock: Arc::new(t.clock.clone()),
        _state: state,
    };
    floor.start().await;
    floor
}

impl Floor {
    /// Starts the gateway on fresh ptys; the terminal simulators of an
    /// earlier start are re-attached (a terminal keeps its transactions).
    async fn start(&mut self) {
        let mut overrides = Overrides {
            terminal_config: Some(self.terminal.clone()),
            ..Overrides::default()
        };
        for r in &self.config.registers {
            let (gateway_end, device_end) = pty_pair().unwrap();
            match self.sims.get(&r.id) {
                Some(sims) => sims.terminal.attach(device_end),
                None => {
                    let terminal = terminal_sim::spawn(device_end);
                    let (printer_gateway, printer_device) = pty_pair().unwrap();
                    let printer = printer_sim::spawn(printer_device);
                    overrides.receipt_printers.insert(
                        r.id.clone(),
                        Connector::once("receipt printer", printer_gateway),
                    );
                    self.sims
                        .insert(r.id.clone(), RegisterSims { terminal, printer });
                }
            }
            overrides
                .terminals
                .insert(r.id.clone(), Connector::once("terminal", gateway_end));
            if !overrides.receipt_printers.contains_key(&r.id) {
                let (printer_gateway, printer_device) = pty_pair().unwrap();
                let printer = printer_sim::spawn(printer_device);
                overrides.receipt_printers.insert(
                    r.id.clone(),
                    Connector::once("receipt printer", printer_gateway),
                );
                if let Some(sims) = self.sims.get_mut(&r.id) {
                    sims.printer = printer;
                }
            }
        }
        let gateway = start(&self.config, self.clock.clone(), overrides)
            .await
            .unwrap_or_else(|e| panic!("gateway: {e:#}"));
        self.gateway = Some(gateway);
    }

    async fn stop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
    }

    fn terminal(&self, id: &str) -> &TerminalSimHandle {
        &self.sims[id].terminal
    }

    fn printer(&self, id: &str) -> &PrinterSimHandle {
        &self.sims[id].printer
    }

    /// The next receipt the register's printer cuts.
    async fn next_receipt(&self, id: &str) -> PrintedReceipt {
        let paper = within("a printed receipt", self.printer(id).next_ticket())
            .await
            .expect("printer simulator stopped");
        println!("{}", paper.render_text());
        paper
            .receipt()
            .unwrap_or_else(|| panic!("not a receipt:\n{}", paper.render_text()))
    }
}

// ------------------------------------------------------------ the POS side

/// Polls the payment until it reaches `state`; the deadline only turns a
/// hang into a failure.
async fn payment_reaches(pos: &mut Pos, name: &str, state: pb::PaymentState) -> pb::Payment {
    within(&format!("payment {name} to be {state:?}"), async {
        loop {
            let payment = pos
                .get_payment(pb::GetPaymentRequest { name: name.into() })
                .await
                .unwrap()
                .into_inner();
            if payment.state == state as i32 {
                return payment;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Waits until the terminal simulator received `n` sales in total.
async fn sales_reach(terminal: &TerminalSimHandle, n: u32) {
    within(&format!("{n} sales at the terminal"), async {
        while terminal.sales_received() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn open(pos: &mut Pos, register_id: &str, float_yen: i64) {
    pos.open_register_session(pb::OpenRegisterSessionRequest {
        register: register(register_id),
        float_yen,
    })
    .await
    .unwrap();
}

async fn hand_order(pos: &mut Pos, fee_item: &str, copies: u32) -> pb::Order {
    pos.create_order(pb::CreateOrderRequest {
        parent: OFFICE.into(),
        lines: vec![pb::OrderLineInput {
            fee_item: fee_item.into(),
            copies,
            exemption_reason: String::new(),
        }],
        request_id: uuid::Uuid::new_v4().to_string(),
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
        request_id: uuid::Uuid::new_v4().to_string(),
        tendered_yen: tendered,
    }
}

/// A confirmed certificate request of the おくやみ visit: 除籍謄本 ×2
/// (¥750), 住民票の除票 ×1 (¥300), 評価証明書 ×1 (¥300).
async fn confirmed_certificate_request(t: &TestServer) -> f::CertificateRequest {
    let mut kiosk = t.client(Role::Device).await;
    let mut queue_staff = t.client(Role::Staff).await;
    let ticket = kiosk
        .issue_ticket(issue("life-events", false))
        .await
        .unwrap()
        .into_inner();
    queue_staff
        .call_next(q::CallNextRequest {
            counter: counter("2"),
            ..Default::default()
        })
        .await
        .unwrap();
    let ticket = queue_staff
        .start_service(q::StartServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let request = okuyami::draft_inheritance_request(t, &ticket.name).await;
    okuyami::confirm_request(t, &request.name).await
}

// ------------------------------------------------------------ the tests

async fn card_payment_prints_the_receipt_and_closes_the_day(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(20))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 30_000).await;
    let request = confirmed_certificate_request(&t).await;
    let order = staff
        .create_order(pb::CreateOrderRequest {
            parent: OFFICE.into(),
            certificate_request: request.name.clone(),
            exemptions: vec![pb::LineExemption {
                line_index: 1,
                exemption_reason: "pension".into(),
            }],
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(yen(&order.total), 750 * 2 + 300);

    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    // The terminal approves; the gateway reports it; the receipt prints.
    let receipt = f.next_receipt("r1").await;
    let paid = payment_reaches(&mut staff, &payment.name, pb::PaymentState::Approved).await;
    assert_eq!(
        paid.approval_number, "A1B2C3",
        "the terminal's approval code"
    );
    assert_eq!(paid.terminal_result_code, "00");
    let reference = SaleRef::parse(&payment.terminal_reference).unwrap();
    assert_eq!(f.terminal("r1").charges_for(&reference), 1);
    assert_eq!(f.terminal("r1").ledger()[0].amount.get(), 1800);

    assert_eq!(receipt.municipality, "大船渡市");
    assert_eq!(receipt.receipt_number, paid.receipt_number);
    assert_eq!(receipt.method, "クレジットカード");
    assert_eq!(receipt.approval_number.as_deref(), Some("A1B2C3"));
    assert_eq!(receipt.total_yen, 1800);
    assert!(receipt.tax_exempt, "非課税 printed");
    assert!(!receipt.reprint);
    assert_eq!((receipt.tendered_yen, receipt.change_yen), (None, None));
    let items: Vec<_> = receipt
        .items
        .iter()
        .map(|i| (i.unit_fee_yen, i.copies, i.amount_yen))
        .collect();
    assert_eq!(items, [(750, 2, 1500), (300, 1, 0), (300, 1, 300)]);
    assert!(
        receipt.items[1]
            .exemption
            .as_deref()
            .is_some_and(|e| e.contains("年金")),
        "{:?}",
        receipt.items[1]
    );
    assert!(
        f.printer("r1").drawer_pulses().is_empty(),
        "no drawer for a card"
    );

    // A reprint comes out marked.
    staff
        .reprint_receipt(pb::ReprintReceiptRequest {
            payment: payment.name.clone(),
        })
        .await
        .unwrap();
    let reprint = f.next_receipt("r1").await;
    assert!(reprint.reprint);
    assert_eq!(reprint.receipt_number, receipt.receipt_number);

    // The daily close adds up to what the terminal charged.
    staff
        .close_register_session(pb::CloseRegisterSessionRequest {
            register: register("r1"),
            counted_cash_yen: 30_000,
        })
        .await
        .unwrap();
    let close = staff
        .get_daily_close(pb::GetDailyCloseRequest {
            register: register("r1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let card = close
        .by_method
        .iter()
        .find(|m| m.method == pb::PaymentMethod::Card as i32)
        .expect("card total");
    let charged: u64 = f
        .terminal("r1")
        .ledger()
        .iter()
        .map(|c| c.amount.get())
        .sum();
    assert_eq!(yen(&card.received), i64::try_from(charged).unwrap());
    assert_eq!(card.payments, 1);
    assert_eq!(yen(&close.net), 1800);
    let cash = close.cash.expect("cash count");
    assert_eq!(yen(&cash.difference), 0);
    f.stop().await;
}

async fn cash_payment_opens_the_drawer(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(20))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 10_000).await;
    let order = hand_order(&mut staff, "juminhyo", 2).await;
    let total = yen(&order.total);
    assert!(total > 0);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1000))
        .await
        .unwrap()
        .into_inner();
    let receipt = f.next_receipt("r1").await;
    assert_eq!(receipt.method, "現金");
    assert_eq!(receipt.tendered_yen, Some(1000));
    assert_eq!(
        receipt.change_yen,
        Some(u64::try_from(1000 - total).unwrap())
    );
    assert_eq!(receipt.receipt_number, payment.receipt_number);
    assert_eq!(
        f.printer("r1").drawer_pulses().len(),
        1,
        "drawer opened once"
    );
    assert_eq!(
        f.terminal("r1").sales_received(),
        0,
        "cash never touches the terminal"
    );
    // Staff see the register's receipt printer as one, working.
    let mut queue_staff = t.client(Role::Staff).await;
    within("the receipt printer's health", async {
        loop {
            let devices = queue_staff
                .list_device_health(q::ListDeviceHealthRequest {
                    parent: OFFICE.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .devices;
            if let Some(d) = devices
                .iter()
                .find(|d| d.name.ends_with("/devices/receipt-printer-r1"))
            {
                assert_eq!(d.kind, q::DeviceKind::ReceiptPrinter as i32);
                if d.ok {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    f.stop().await;
}

async fn decline_is_reported_and_the_order_stays_payable(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(20))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "koseki-tohon", 1).await;
    f.terminal("r1").script(Behaviour::Decline);
    let declined = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    let declined = payment_reaches(&mut staff, &declined.name, pb::PaymentState::Declined).await;
    assert_eq!(declined.terminal_result_code, "05");
    assert!(
        f.terminal("r1").ledger().is_empty(),
        "a decline charges nothing"
    );
    // Paid with another card: approved, one charge in all.
    let second = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Emoney, 0))
        .await
        .unwrap()
        .into_inner();
    payment_reaches(&mut staff, &second.name, pb::PaymentState::Approved).await;
    let receipt = f.next_receipt("r1").await;
    assert_eq!(receipt.method, "電子マネー");
    assert_eq!(f.terminal("r1").ledger().len(), 1);
    assert_eq!(f.terminal("r1").sales_received(), 2);
    f.stop().await;
}

async fn abort_reaches_the_running_sale(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(25))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "juminhyo", 1).await;
    // The customer never taps: the sale waits on the terminal.
    f.terminal("r1").script(Behaviour::Stall);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Qr, 0))
        .await
        .unwrap()
        .into_inner();
    sales_reach(f.terminal("r1"), 1).await;
    staff
        .abort_payment(pb::AbortPaymentRequest {
            name: payment.name.clone(),
        })
        .await
        .unwrap();
    let aborted = payment_reaches(&mut staff, &payment.name, pb::PaymentState::Aborted).await;
    assert_eq!(aborted.terminal_result_code, "6C");
    assert_eq!(
        f.terminal("r1").aborts(),
        1,
        "the abort reached the terminal"
    );
    assert!(f.terminal("r1").ledger().is_empty());
    assert!(
        f.printer("r1").printed().is_empty(),
        "no receipt for an abort"
    );
    f.stop().await;
}

async fn lost_response_is_recovered_by_enquiry(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    // The result never arrives: T4 (1 s here) expires, then the gateway asks.
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(1))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "juminhyo", 1).await;
    f.terminal("r1").script(Behaviour::LoseResult);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    payment_reaches(&mut staff, &payment.name, pb::PaymentState::Approved).await;
    let reference = SaleRef::parse(&payment.terminal_reference).unwrap();
    let terminal = f.terminal("r1");
    assert_eq!(terminal.charges_for(&reference), 1, "one charge");
    assert_eq!(terminal.sales_received(), 1, "the sale was never resent");
    assert!(
        terminal.enquiries() >= 1,
        "the outcome came from a status enquiry"
    );
    f.next_receipt("r1").await;
    f.stop().await;
}

async fn terminal_in_progress_is_unknown_until_a_supervisor_resolves_it(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(1))).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "juminhyo", 1).await;
    // The terminal keeps saying "in progress" to every enquiry.
    f.terminal("r1").script(Behaviour::Stall);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Emoney, 0))
        .await
        .unwrap()
        .into_inner();
    let unknown = payment_reaches(&mut staff, &payment.name, pb::PaymentState::Unknown).await;
    assert_eq!(unknown.terminal_result_code, "PENDING");
    assert_eq!(f.terminal("r1").sales_received(), 1, "no second sale");
    // 処理未了 blocks the order: no other payment until resolved.
    let status = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    // The supervisor checks the terminal's journal: not charged.
    let resolved = supervisor
        .resolve_payment(pb::ResolvePaymentRequest {
            name: payment.name.clone(),
            outcome: pb::PaymentOutcome::Declined as i32,
            note: "端末の取引履歴に記録なし".into(),
            approval_number: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, pb::PaymentState::Declined as i32);
    // Now it can be paid once.
    let cash = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Cash, 1000))
        .await
        .unwrap()
        .into_inner();
    let receipt = f.next_receipt("r1").await;
    assert_eq!(receipt.receipt_number, cash.receipt_number);
    assert!(f.terminal("r1").ledger().is_empty());
    f.stop().await;
}

async fn gateway_restart_mid_payment_charges_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    // T4 is long: the gateway is still waiting for the result when it stops.
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(25))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "koseki-tohon", 2).await;
    f.terminal("r1").script(Behaviour::LoseResult);
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    let reference = SaleRef::parse(&payment.terminal_reference).unwrap();
    // The terminal charged; its answer is lost; the gateway goes down.
    within("the charge", async {
        while f.terminal("r1").charges_for(&reference) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    f.stop().await;
    let stopped = staff
        .get_payment(pb::GetPaymentRequest {
            name: payment.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        stopped.state,
        pb::PaymentState::Approved as i32,
        "not reported yet"
    );

    // Back up: the journal has the reference, so the terminal is asked.
    f.start().await;
    let paid = payment_reaches(&mut staff, &payment.name, pb::PaymentState::Approved).await;
    assert_eq!(paid.terminal_result_code, "00");
    let terminal = f.terminal("r1");
    assert_eq!(terminal.sales_received(), 1, "never a second sale");
    assert_eq!(terminal.charges_for(&reference), 1, "exactly one charge");
    assert!(terminal.enquiries() >= 1);
    let receipt = f.next_receipt("r1").await;
    assert_eq!(receipt.receipt_number, paid.receipt_number);
    f.stop().await;
}

async fn two_registers_racing_one_order_charge_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1", "r2"], terminal_config(Duration::from_secs(20))).await;
    let mut staff = pos(&t, Role::Staff).await;
    open(&mut staff, "r1", 0).await;
    open(&mut staff, "r2", 0).await;
    let order = hand_order(&mut staff, "juminhyo", 3).await;
    let mut a = pos(&t, Role::Staff).await;
    let mut b = pos(&t, Role::Staff).await;
    let (first, second) = tokio::join!(
        a.create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0)),
        b.create_payment(pay(&order, "r2", pb::PaymentMethod::Card, 0)),
    );
    let winners: Vec<_> = [first, second].into_iter().filter_map(Result::ok).collect();
    assert_eq!(winners.len(), 1, "one live payment per order");
    let payment = winners[0].get_ref().clone();
    payment_reaches(&mut staff, &payment.name, pb::PaymentState::Approved).await;
    let winner = if payment.register == register("r1") {
        "r1"
    } else {
        "r2"
    };
    f.next_receipt(winner).await;
    let charges = f.terminal("r1").ledger().len() + f.terminal("r2").ledger().len();
    assert_eq!(charges, 1, "one charge across both terminals");
    f.stop().await;
}

async fn void_pays_back_on_the_terminal_once(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut f = floor(&t, &["r1"], terminal_config(Duration::from_secs(20))).await;
    let mut staff = pos(&t, Role::Staff).await;
    let mut supervisor = pos(&t, Role::Supervisor).await;
    open(&mut staff, "r1", 0).await;
    let order = hand_order(&mut staff, "koseki-tohon", 1).await;
    let payment = staff
        .create_payment(pay(&order, "r1", pb::PaymentMethod::Card, 0))
        .await
        .unwrap()
        .into_inner();
    payment_reaches(&mut staff, &payment.name, pb::PaymentState::Approved).await;
    f.next_receipt("r1").await;
    let void = supervisor
        .void_payment(pb::VoidPaymentRequest {
            name: payment.name.clone(),
            reason: "二重に発行したため".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(void.state, pb::RefundState::Requested as i32);
    payment_reaches(&mut staff, &payment.name, pb::PaymentState::Voided).await;
    let refunds = f.terminal("r1").refunds();
    assert_eq!(refunds.len(), 1, "paid back once");
    assert_eq!(refunds[0].amount.get(), 450);
    assert_eq!(refunds[0].reference.as_str(), void.terminal_reference);
    assert_eq!(
        f.terminal("r1").ledger().len(),
        1,
        "the charge itself stays one"
    );
    f.stop().await;
}
