//! The register's receipt (領収書) and cash-drawer kick: the printer driver
//! against the printer simulator over a raw pseudo-terminal, and the
//! golden bytes quoted in `docs/devices/printer.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use madoguchi_gateway::devices::printer::escpos::{Command, JobId, Parsed, parse_command};
use madoguchi_gateway::devices::printer::receipt::{
    DRAWER_KICK, PrintedReceipt, ReceiptContent, ReceiptItem, encode_drawer_kick, encode_receipt,
};
use madoguchi_gateway::devices::printer::sim::{self, DrawerPulse, Paper, PrinterSimHandle};
use madoguchi_gateway::devices::printer::{self, PrintError, PrinterConfig, PrinterHandle};
use madoguchi_gateway::serial::{Connector, pty_pair};

fn card_receipt() -> ReceiptContent {
    ReceiptContent {
        municipality: "大船渡市".into(),
        office: "大船渡市役所 市民課".into(),
        receipt_number: "R1-000123".into(),
        issued_at: "令和8年11月25日 10:15".into(),
        items: vec![
            ReceiptItem {
                name: "住民票の写し".into(),
                unit_fee_yen: 300,
                copies: 2,
                amount_yen: 600,
                exemption: None,
            },
            ReceiptItem {
                name: "戸籍謄本".into(),
                unit_fee_yen: 450,
                copies: 1,
                amount_yen: 450,
                exemption: None,
            },
            ReceiptItem {
                name: "除籍謄本".into(),
                unit_fee_yen: 750,
                copies: 1,
                amount_yen: 0,
                exemption: Some("年金請求用".into()),
            },
        ],
        total_yen: 1050,
        method: "クレジットカード".into(),
        tendered_yen: None,
        change_yen: None,
        approval_number: Some("A1B2C3".into()),
        non_taxable: true,
        reprint: false,
    }
}

fn cash_receipt() -> ReceiptContent {
    ReceiptContent {
        method: "現金".into(),
        tendered_yen: Some(2000),
        change_yen: Some(950),
        approval_number: None,
        ..card_receipt()
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

fn expected(content: &ReceiptContent) -> PrintedReceipt {
    PrintedReceipt {
        reprint: content.reprint,
        municipality: content.municipality.clone(),
        office: content.office.clone(),
        receipt_number: content.receipt_number.clone(),
        issued_at: content.issued_at.clone(),
        items: content.items.clone(),
        total_yen: content.total_yen,
        method: content.method.clone(),
        tendered_yen: content.tendered_yen,
        change_yen: content.change_yen,
        approval_number: content.approval_number.clone(),
        tax_exempt: content.non_taxable,
    }
}

#[tokio::test]
async fn card_receipt_is_read_back_field_by_field() {
    let (sim, printer) = floor();
    within(printer.print_receipt(&card_receipt(), false))
        .await
        .unwrap();
    let paper = within(sim.next_ticket()).await.unwrap();
    println!("{}", paper.render_text());
    assert!(paper.cut);
    let title = paper
        .lines
        .iter()
        .find(|l| l.text.trim() == "領収書")
        .unwrap();
    assert_eq!((title.width, title.height), (2, 2), "title printed large");
    assert_eq!(paper.receipt(), Some(expected(&card_receipt())));
    assert!(paper.contains("非課税"));
    assert!(!paper.contains("再発行"), "an original is not marked");
    assert!(sim.drawer_pulses().is_empty(), "no drawer for a card");
}

#[tokio::test]
async fn cash_receipt_shows_change_and_kicks_the_drawer_after_the_cut() {
    let (sim, printer) = floor();
    within(printer.print_receipt(&cash_receipt(), true))
        .await
        .unwrap();
    let paper = within(sim.next_ticket()).await.unwrap();
    println!("{}", paper.render_text());
    let read = paper.receipt().unwrap();
    assert_eq!(read, expected(&cash_receipt()));
    assert_eq!(
        (read.tendered_yen, read.change_yen),
        (Some(2000), Some(950))
    );
    assert!(paper.contains("￥2,000"), "thousands grouped");
    // The confirmation came after the pulse: it is recorded already.
    assert_eq!(
        sim.drawer_pulses(),
        vec![DrawerPulse {
            pin: 2,
            on_ms: 50,
            off_ms: 500,
            after_cuts: 1
        }]
    );
    // A kick on its own (e.g. a count at close).
    within(printer.kick_drawer()).await.unwrap();
    assert_eq!(sim.drawer_pulses().len(), 2);
    assert_eq!(sim.printed().len(), 1, "a lone kick prints nothing");
}

#[tokio::test]
async fn reprint_is_marked_at_top_and_bottom() {
    let (sim, printer) = floor();
    let reprint = ReceiptContent {
        reprint: true,
        ..card_receipt()
    };
    within(printer.print_receipt(&reprint, false))
        .await
        .unwrap();
    let paper = within(sim.next_ticket()).await.unwrap();
    println!("{}", paper.render_text());
    let first = &paper.lines[0];
    assert_eq!(first.text.trim(), "【再発行】");
    assert_eq!((first.width, first.height), (2, 2));
    assert!(paper.contains("この領収書は再発行です。"));
    let read = paper.receipt().unwrap();
    assert!(read.reprint);
    assert_eq!(read, expected(&reprint));
}

#[tokio::test]
async fn no_paper_no_receipt_and_no_drawer() {
    let (sim, printer) = floor();
    sim.set_paper(Paper::Out);
    let error = within(printer.print_receipt(&cash_receipt(), true))
        .await
        .unwrap_err();
    assert_eq!(error, PrintError::PaperOut);
    sim.set_paper(Paper::Ok);
    // Whatever was refused never comes out after the refill.
    within(printer.status()).await.unwrap();
    assert!(sim.printed().is_empty());
    assert!(sim.drawer_pulses().is_empty());
}

#[tokio::test]
async fn unprintable_text_is_refused_before_sending() {
    let (sim, printer) = floor();
    let bad = ReceiptContent {
        items: vec![ReceiptItem {
            name: "住民票\u{1F600}".into(),
            unit_fee_yen: 300,
            copies: 1,
            amount_yen: 300,
            exemption: None,
        }],
        ..card_receipt()
    };
    let error = within(printer.print_receipt(&bad, false))
        .await
        .unwrap_err();
    assert!(matches!(error, PrintError::Encode(_)), "{error:?}");
    within(printer.status()).await.unwrap();
    assert!(sim.printed().is_empty());
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn golden_bytes_quoted_in_the_docs() {
    assert_eq!(hex(&DRAWER_KICK), "1B 70 00 19 FA");
    assert_eq!(
        hex(&encode_drawer_kick(JobId(*b"0007")).unwrap()),
        "1B 70 00 19 FA 1D 28 48 06 00 30 30 30 30 30 37"
    );
    let bytes = encode_receipt(
        &ReceiptContent {
            reprint: true,
            ..cash_receipt()
        },
        JobId(*b"0001"),
        true,
    )
    .unwrap();
    let text = hex(&bytes);
    // Head: init, Shift_JIS, centre, 2×2 「【再発行】」, 2×2 「領収書」.
    assert!(
        text.starts_with(
            "1B 40 1C 43 01 1B 61 01 1D 21 11 1C 26 81 79 8D C4 94 AD 8D 73 81 7A 1C 2E 0A \
             1D 21 11 1C 26 97 CC 8E FB 8F 91 1C 2E 0A"
        ),
        "{text}"
    );
    // 「非課税」 as its own Kanji line.
    assert!(text.contains("1C 26 94 F1 89 DB 90 C5 1C 2E 0A"), "{text}");
    // Tail: feed-and-cut, drawer pulse, confirmation tag.
    assert!(
        text.ends_with("1D 56 42 03 1B 70 00 19 FA 1D 28 48 06 00 30 30 30 30 30 31"),
        "{text}"
    );
    // The simulator's parser sees the pulse as one command.
    assert_eq!(
        parse_command(&DRAWER_KICK),
        Parsed::Item(
            Command::DrawerKick {
                pin: 0,
                on: 25,
                off: 250
            },
            5
        )
    );
    assert_eq!(parse_command(&DRAWER_KICK[..4]), Parsed::Incomplete);
}
