//! My Number never reaches logs or traces: a full flow runs with every
//! log event at TRACE level (this crate, tonic, hyper, h2, sqlx, sea-orm)
//! captured in a buffer, and the buffer is searched for the number.
//!
//! The test runs on a current-thread runtime so that the server's tasks
//! run on the thread whose default subscriber captures them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use madoguchi_identity::card::SimulatedCard;
use madoguchi_identity::card::kenhojo::{CardFace, KenhojoReader};
use madoguchi_identity::domain::my_number::MyNumber;
use support::*;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn full_flow(backend: Backend, number: &str) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let mut handler = server.client(HANDLER_TOKEN).await;
    let face = CardFace {
        name: "おくやみ つる子".into(),
        address: "宮城県仙台市青葉区国分町3丁目7番1号".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1972, 10, 31).expect("date"),
        sex: 2,
        my_number: number.to_owned(),
    };
    let mut card = SimulatedCard::new(&face, "4729");
    let face = KenhojoReader::new(&mut card)
        .read("4729")
        .expect("transport")
        .expect("read");
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(face.to_proto()),
            procedures: vec!["sosaihi".into()],
        })
        .await
        .expect("read")
        .into_inner();
    // A rejected submission with a wrong check digit: the error path.
    let mut bad = face.to_proto();
    bad.my_number = format!(
        "{}{}",
        &number[..11],
        (number.as_bytes()[11] - b'0' + 1) % 10
    );
    let status = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(bad),
            procedures: vec![],
        })
        .await
        .expect_err("bad check digit");
    tracing::info!(message = %status.message(), "client saw");
    let verification = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            visitor: Some(tsuruko_claim()),
            resident: TSURUKO.into(),
            documents: vec![pb::PresentedDocument {
                kind: "my-number-card".into(),
                card_read: read.name.clone(),
                ..Default::default()
            }],
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(verification.verified);
    let denied = staff
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "sosaihi".into(),
        })
        .await;
    assert!(denied.is_err());
    let reading = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "sosaihi".into(),
        })
        .await
        .expect("handler")
        .into_inner();
    assert_eq!(
        reading.my_number, number,
        "the flow really carried the number"
    );
    let _ = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            ..Default::default()
        })
        .await
        .expect("audit");
    server.stop().await;
}

async fn never_logged(backend: Backend) {
    let number = MyNumber::complete("73018264591")
        .expect("valid")
        .expose()
        .to_owned();
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        full_flow(backend, &number).await;
    }
    let logs =
        String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    // The capture is real: the service's own events are in it.
    assert!(logs.contains("card read submitted"), "capture is empty?");
    assert!(logs.contains("my number read by a handler"));
    assert!(
        logs.lines().count() > 50,
        "expected trace-level noise from the stack"
    );
    // Neither the number nor any 8-digit run of it appears.
    for window in 0..=4 {
        let part = &number[window..window + 8];
        assert!(
            !logs.contains(part),
            "a piece of the number ({window}..) is in the logs"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite() {
    never_logged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres() {
    never_logged(Backend::Postgres).await;
}
