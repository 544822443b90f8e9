//! The ESC/POS printer driver against the printer simulator over a raw
//! pseudo-terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use madoguchi_gateway::devices::printer::escpos::TicketContent;
use madoguchi_gateway::devices::printer::sim::{self, Paper, PrinterSimHandle};
use madoguchi_gateway::devices::printer::{self, PrintError, PrinterConfig, PrinterHandle};
use madoguchi_gateway::serial::{Connector, pty_pair};

const URL: &str = "https://madoguchi.example/t/2026-11-25/A012?k=9f3a";

fn content() -> TicketContent {
    TicketContent {
        heading: "大船渡市役所 市民課".into(),
        number: "A012".into(),
        category: "住民票・証明書".into(),
        counter_colour: "オレンジ".into(),
        people_ahead: 3,
        estimated_wait_minutes: 15,
        issued_at: "2026-11-25 09:12".into(),
        status_url: URL.into(),
    }
}

fn config() -> PrinterConfig {
    PrinterConfig {
        status_poll: Duration::from_millis(200),
        status_timeout: Duration::from_millis(500),
        print_timeout: Duration::from_secs(3),
        confirm_poll: Duration::from_millis(50),
        ..PrinterConfig::default()
    }
}

fn floor() -> (PrinterSimHandle, PrinterHandle) {
    let (master, slave) = pty_pair().unwrap();
    let sim = sim::spawn(master);
    let printer = printer::spawn(Connector::once("pty", slave), config());
    (sim, printer)
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn ticket_content_is_decoded_by_the_simulator() {
    let (sim, printer) = floor();
    let receipt = within(printer.print_ticket(&content())).await.unwrap();
    assert!(!receipt.paper_near_end);
    let ticket = within(sim.next_ticket()).await.unwrap();
    println!("{}", ticket.render_text());
    let number = ticket
        .lines
        .iter()
        .find(|l| l.text == "A012")
        .expect("number line");
    assert_eq!(
        (number.width, number.height),
        (5, 5),
        "number printed large"
    );
    let category = ticket
        .lines
        .iter()
        .find(|l| l.text == "住民票・証明書")
        .expect("kanji category decoded from shift_jis");
    assert_eq!(category.width, 2);
    assert!(ticket.contains("大船渡市役所 市民課"));
    assert!(ticket.contains("窓口の色: オレンジ"));
    assert!(ticket.contains("お待ちの方: 3人"));
    assert!(ticket.contains("約15分"));
    assert!(ticket.contains("2026-11-25 09:12"));
    assert_eq!(ticket.qr.as_deref(), Some(URL));
    assert!(ticket.cut);
    let health = printer.health().borrow().clone();
    assert!(health.connected && !health.paper_out && health.last_error.is_none());
}

#[tokio::test]
async fn paper_out_fails_and_health_shows_it() {
    let (sim, printer) = floor();
    sim.set_paper(Paper::Out);
    let err = within(printer.print_ticket(&content())).await.unwrap_err();
    assert_eq!(err, PrintError::PaperOut);
    let health = printer.health().borrow().clone();
    assert!(health.paper_out, "{health:?}");
    assert_eq!(
        health.last_error.as_deref(),
        Some("printer is out of paper")
    );
    // Refilled: prints, and only the new ticket ever came out.
    sim.set_paper(Paper::Ok);
    within(printer.print_ticket(&content())).await.unwrap();
    within(sim.next_ticket()).await.unwrap();
    assert_eq!(sim.printed().len(), 1);
    let mut health = printer.health();
    within(health.wait_for(|h| !h.paper_out)).await.unwrap();
}

#[tokio::test]
async fn cover_open_fails_then_recovers() {
    let (sim, printer) = floor();
    sim.set_cover_open(true);
    assert_eq!(
        within(printer.print_ticket(&content())).await.unwrap_err(),
        PrintError::CoverOpen
    );
    assert!(printer.health().borrow().cover_open);
    sim.set_cover_open(false);
    within(printer.print_ticket(&content())).await.unwrap();
    assert_eq!(sim.printed().len(), 1);
}

#[tokio::test]
async fn near_end_still_prints_and_health_says_so() {
    let (sim, printer) = floor();
    sim.set_paper(Paper::NearEnd);
    let receipt = within(printer.print_ticket(&content())).await.unwrap();
    assert!(receipt.paper_near_end);
    assert_eq!(sim.printed().len(), 1);
    let health = printer.health().borrow().clone();
    assert!(health.paper_near_end && !health.paper_out);
}

#[tokio::test]
async fn paper_running_out_mid_ticket_fails_and_never_prints_later() {
    let (sim, printer) = floor();
    sim.set_lines_left(Some(3));
    let err = within(printer.print_ticket(&content())).await.unwrap_err();
    assert_eq!(err, PrintError::PaperOut);
    assert!(sim.printed().is_empty(), "no cut ticket");
    // Refill: the abandoned ticket was cleared from the printer's buffer.
    sim.set_lines_left(None);
    sim.set_paper(Paper::Ok);
    let mut health = printer.health();
    within(health.wait_for(|h| !h.paper_out)).await.unwrap();
    within(printer.print_ticket(&content())).await.unwrap();
    let ticket = within(sim.next_ticket()).await.unwrap();
    assert!(ticket.contains("A012"));
    assert_eq!(
        sim.printed().len(),
        1,
        "the abandoned ticket never came out"
    );
}

#[tokio::test]
async fn silent_printer_is_not_responding() {
    let (sim, printer) = floor();
    // Wait for the first contact so the driver knows the printer.
    let mut health = printer.health();
    within(health.wait_for(|h| h.connected)).await.unwrap();
    sim.set_silent(true);
    assert_eq!(
        within(printer.print_ticket(&content())).await.unwrap_err(),
        PrintError::NotResponding
    );
    assert!(!printer.health().borrow().connected);
    assert!(sim.printed().is_empty());
}

#[tokio::test]
async fn unplugged_printer_reports_disconnected() {
    let (master, slave) = pty_pair().unwrap();
    let printer = printer::spawn(Connector::once("pty", slave), config());
    let mut health = printer.health();
    drop(master);
    within(health.wait_for(|h| !h.connected && h.last_error.is_some()))
        .await
        .unwrap();
    assert_eq!(
        within(printer.print_ticket(&content())).await.unwrap_err(),
        PrintError::Disconnected
    );
}

#[tokio::test]
async fn unencodable_text_is_refused_before_sending() {
    let (sim, printer) = floor();
    let mut bad = content();
    bad.category = "住民票\u{1F600}".into();
    assert!(matches!(
        within(printer.print_ticket(&bad)).await.unwrap_err(),
        PrintError::Encode(_)
    ));
    bad.category = "line\nbreak".into();
    assert!(matches!(
        within(printer.print_ticket(&bad)).await.unwrap_err(),
        PrintError::Encode(_)
    ));
    assert!(sim.printed().is_empty());
}
