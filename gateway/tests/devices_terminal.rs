//! The payment terminal driver against the terminal simulator: over a raw
//! pty for the dialogues, over an in-memory duplex with tokio's paused
//! clock for the T3/T4 timers (a pty's kernel-side delivery is not visible
//! to tokio's idle detection, so paused time would fire timers early).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use madoguchi_gateway::devices::terminal::frame::{SaleRef, Yen};
use std::sync::Mutex;

use async_trait::async_trait;
use madoguchi_gateway::devices::terminal::journal::{
    JournalEntry, JournalError, SaleJournal, SaleState, SqliteJournal,
};
use madoguchi_gateway::devices::terminal::sim::{self, Behaviour, TerminalSimHandle};
use madoguchi_gateway::devices::terminal::{
    SaleOutcome, TerminalConfig, TerminalDriver, TerminalError,
};
use madoguchi_gateway::serial::{Connector, PortConfig, pty_pair, pty_path};

fn yen(n: u64) -> Yen {
    Yen::new(n).unwrap()
}

fn reference(s: &str) -> SaleRef {
    SaleRef::parse(s).unwrap()
}

fn fast() -> TerminalConfig {
    TerminalConfig {
        t2: Duration::from_millis(500),
        t3: Duration::from_secs(1),
        t4: Duration::from_secs(1),
        enquiry_attempts: 3,
        enquiry_interval: Duration::from_millis(50),
        ..TerminalConfig::default()
    }
}

async fn journal(dir: &tempfile::TempDir) -> Arc<SqliteJournal> {
    Arc::new(
        SqliteJournal::open(&dir.path().join("terminal.sqlite"))
            .await
            .unwrap(),
    )
}

/// A simulator on a pty master and a driver on its slave.
async fn on_pty(
    dir: &tempfile::TempDir,
    config: TerminalConfig,
) -> (
    TerminalSimHandle,
    TerminalDriver,
    Arc<SqliteJournal>,
    String,
) {
    let (master, slave) = pty_pair().unwrap();
    let path = pty_path(&slave).unwrap();
    let sim = sim::spawn(master);
    let journal = journal(dir).await;
    let driver = TerminalDriver::with_transport(slave, journal.clone(), config);
    (sim, driver, journal, path)
}

/// The journal contract kept in memory, for the paused-clock tests only:
/// sqlx's pool timers would fire early under tokio's auto-advancing paused
/// clock. The SQLite journal is exercised by every pty test above.
#[derive(Debug, Default)]
struct MemoryJournal(Mutex<Vec<JournalEntry>>);

#[async_trait]
impl SaleJournal for MemoryJournal {
    async fn begin(
        &self,
        reference: &SaleRef,
        amount: Yen,
    ) -> Result<Option<JournalEntry>, JournalError> {
        let mut rows = self.0.lock().unwrap();
        if let Some(e) = rows.iter().find(|e| &e.reference == reference) {
            return Ok(Some(e.clone()));
        }
        rows.push(JournalEntry {
            reference: reference.clone(),
            amount,
            state: SaleState::Pending,
            auth_code: None,
        });
        Ok(None)
    }
    async fn settle(
        &self,
        reference: &SaleRef,
        state: SaleState,
        auth_code: Option<&str>,
    ) -> Result<(), JournalError> {
        let mut rows = self.0.lock().unwrap();
        let e = rows
            .iter_mut()
            .find(|e| &e.reference == reference)
            .ok_or_else(|| JournalError("missing".into()))?;
        e.state = state;
        e.auth_code = auth_code.map(str::to_owned);
        Ok(())
    }
    async fn get(&self, reference: &SaleRef) -> Result<Option<JournalEntry>, JournalError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|e| &e.reference == reference)
            .cloned())
    }
    async fn unsettled(&self) -> Result<Vec<JournalEntry>, JournalError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| !e.state.is_settled())
            .cloned()
            .collect())
    }
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn approve_charges_once_and_journals_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    let r = reference("R1-0001");
    let outcome = within(driver.sale(yen(300), r.clone())).await.unwrap();
    assert_eq!(
        outcome,
        SaleOutcome::Approved {
            auth_code: Some("A1B2C3".into())
        }
    );
    assert_eq!(sim.charges_for(&r), 1);
    let entry = journal.get(&r).await.unwrap().unwrap();
    assert_eq!(entry.state, SaleState::Approved);
    assert_eq!(entry.amount, yen(300));
}

#[tokio::test]
async fn refund_is_paid_back_once_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    let r = reference("RF-0001");
    let outcome = within(driver.refund(yen(450), r.clone())).await.unwrap();
    assert!(
        matches!(outcome, SaleOutcome::Approved { .. }),
        "{outcome:?}"
    );
    // Asked again (a replayed event): the journal answers, nothing is sent.
    let again = within(driver.refund(yen(450), r.clone())).await.unwrap();
    assert_eq!(again, outcome);
    assert_eq!(sim.refunds().len(), 1, "paid back once");
    assert_eq!(sim.refunds()[0].amount, yen(450));
    assert!(sim.ledger().is_empty(), "a refund is not a charge");
    assert_eq!(sim.sales_received(), 0);
    let entry = journal.get(&r).await.unwrap().unwrap();
    assert_eq!(entry.state, SaleState::Approved);
}

#[tokio::test]
async fn decline_is_not_charged() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    sim.script(Behaviour::Decline);
    let r = reference("R1-0002");
    assert_eq!(
        within(driver.sale(yen(1200), r.clone())).await.unwrap(),
        SaleOutcome::Declined
    );
    assert!(sim.ledger().is_empty());
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Declined
    );
}

#[tokio::test]
async fn lost_response_is_recovered_by_status_enquiry_with_one_charge() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    sim.script(Behaviour::LoseResult);
    let r = reference("R1-0003");
    let outcome = within(driver.sale(yen(450), r.clone())).await.unwrap();
    assert!(
        matches!(outcome, SaleOutcome::Approved { .. }),
        "{outcome:?}"
    );
    assert_eq!(sim.sales_received(), 1, "the sale was never resent");
    assert!(sim.enquiries() >= 1);
    assert_eq!(sim.charges_for(&r), 1, "exactly one charge");
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Approved
    );
    // Asking again with the same reference returns the journal's answer.
    let again = within(driver.sale(yen(450), r.clone())).await.unwrap();
    assert!(matches!(again, SaleOutcome::Approved { .. }));
    assert_eq!(sim.sales_received(), 1);
}

#[tokio::test]
async fn nak_storm_gives_up_after_the_retry_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    sim.nak_next(1000);
    let r = reference("R1-0004");
    let err = within(driver.sale(yen(500), r.clone())).await.unwrap_err();
    assert_eq!(
        err,
        TerminalError::RetriesExhausted(4),
        "one send and three retries"
    );
    assert_eq!(sim.naks_sent(), 4);
    assert!(sim.ledger().is_empty());
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::NotCharged
    );
    // The storm passes: the next sale goes through.
    sim.nak_next(0);
    let ok = within(driver.sale(yen(500), reference("R1-0005")))
        .await
        .unwrap();
    assert!(matches!(ok, SaleOutcome::Approved { .. }));
}

#[tokio::test]
async fn transient_naks_are_retransmitted() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, _journal, _) = on_pty(&dir, fast()).await;
    sim.nak_next(2);
    let r = reference("R1-0006");
    assert!(matches!(
        within(driver.sale(yen(80), r.clone())).await.unwrap(),
        SaleOutcome::Approved { .. }
    ));
    assert_eq!(sim.naks_sent(), 2);
    assert_eq!(sim.charges_for(&r), 1);
}

#[tokio::test]
async fn restart_mid_sale_asks_instead_of_charging_again() {
    let dir = tempfile::tempdir().unwrap();
    let (master, slave) = pty_pair().unwrap();
    let path = pty_path(&slave).unwrap();
    // Held open so the pty survives between the two drivers' sessions (a
    // pty master reads EIO once no slave fd is open).
    let _keep_pty_open = slave;
    let sim = sim::spawn(master);
    sim.script(Behaviour::LoseResult);
    let r = reference("R1-0007");
    {
        let mut config = fast();
        config.t4 = Duration::from_secs(3600);
        let first = TerminalDriver::new(
            Connector::serial(PortConfig::new(path.clone(), 9600)),
            journal(&dir).await,
            config,
        );
        // The gateway dies while waiting for the (lost) result.
        let sale = first.sale(yen(2000), r.clone());
        tokio::pin!(sale);
        while sim.charges_for(&r) == 0 {
            tokio::select! {
                _ = &mut sale => panic!("sale finished before the restart"),
                () = tokio::task::yield_now() => {}
            }
        }
    }
    let journal = journal(&dir).await;
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Pending
    );
    let second = TerminalDriver::new(
        Connector::serial(PortConfig::new(path, 9600)),
        journal.clone(),
        fast(),
    );
    let recovered = within(second.recover()).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].0, r);
    assert!(
        matches!(recovered[0].1, Ok(SaleOutcome::Approved { .. })),
        "{recovered:?}"
    );
    assert_eq!(sim.sales_received(), 1, "no second sale");
    assert_eq!(sim.charges_for(&r), 1);
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Approved
    );
    assert!(journal.unsettled().await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_sales_with_one_reference_charge_once() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, _journal, _) = on_pty(&dir, fast()).await;
    let driver = Arc::new(driver);
    let r = reference("R1-0008");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let d = driver.clone();
            let r = r.clone();
            tokio::spawn(async move { d.sale(yen(700), r).await })
        })
        .collect();
    for t in tasks {
        let outcome = within(t).await.unwrap().unwrap();
        assert!(matches!(outcome, SaleOutcome::Approved { .. }));
    }
    assert_eq!(sim.sales_received(), 1);
    assert_eq!(sim.charges_for(&r), 1);
}

#[tokio::test]
async fn reusing_a_reference_for_another_amount_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, _journal, _) = on_pty(&dir, fast()).await;
    let r = reference("R1-0009");
    within(driver.sale(yen(100), r.clone())).await.unwrap();
    assert_eq!(
        within(driver.sale(yen(999), r.clone())).await.unwrap_err(),
        TerminalError::ReferenceReused(r)
    );
    assert_eq!(sim.sales_received(), 1);
}

#[tokio::test]
async fn unknown_outcome_is_kept_until_staff_resolve_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, driver, journal, _) = on_pty(&dir, fast()).await;
    sim.script(Behaviour::Unknown);
    let r = reference("R1-0010");
    assert_eq!(
        within(driver.sale(yen(160), r.clone())).await.unwrap(),
        SaleOutcome::Unknown
    );
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Unknown
    );
    assert_eq!(journal.unsettled().await.unwrap().len(), 1);
    driver.resolve_unknown(&r, false).await.unwrap();
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::NotCharged
    );
}

#[tokio::test(start_paused = true)]
async fn t3_expiry_leads_to_an_enquiry_not_a_resend() {
    let (a, b) = tokio::io::duplex(4096);
    let sim = sim::spawn(a);
    sim.script(Behaviour::NoResponse);
    let journal = Arc::new(MemoryJournal::default());
    let config = TerminalConfig {
        t3: Duration::from_secs(5),
        ..TerminalConfig::default()
    };
    let driver = TerminalDriver::with_transport(b, journal.clone(), config);
    let r = reference("R2-0001");
    let start = tokio::time::Instant::now();
    let outcome = driver.sale(yen(300), r.clone()).await.unwrap();
    assert_eq!(
        outcome,
        SaleOutcome::NotCharged,
        "terminal never processed it"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(sim.sales_received(), 1);
    assert_eq!(sim.enquiries(), 1);
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::NotCharged
    );
}

#[tokio::test(start_paused = true)]
async fn t4_expiry_with_a_stalled_terminal_leaves_the_sale_pending() {
    let (a, b) = tokio::io::duplex(4096);
    let sim = sim::spawn(a);
    sim.script(Behaviour::Stall);
    let journal = Arc::new(MemoryJournal::default());
    let config = TerminalConfig {
        t4: Duration::from_secs(180),
        enquiry_attempts: 3,
        enquiry_interval: Duration::from_secs(2),
        ..TerminalConfig::default()
    };
    let driver = TerminalDriver::with_transport(b, journal.clone(), config);
    let r = reference("R2-0002");
    let start = tokio::time::Instant::now();
    let err = driver.sale(yen(300), r.clone()).await.unwrap_err();
    assert_eq!(err, TerminalError::OutcomePending(r.clone()));
    assert!(
        start.elapsed() >= Duration::from_secs(180),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sim.enquiries(), 3);
    assert_eq!(
        journal.get(&r).await.unwrap().unwrap().state,
        SaleState::Pending
    );
    assert!(sim.ledger().is_empty());
}

#[tokio::test(start_paused = true)]
async fn in_progress_is_asked_again_until_it_settles() {
    let (a, b) = tokio::io::duplex(4096);
    let sim = sim::spawn(a);
    sim.script(Behaviour::InProgress(2));
    let config = TerminalConfig {
        t4: Duration::from_secs(30),
        ..TerminalConfig::default()
    };
    let driver = TerminalDriver::with_transport(b, Arc::new(MemoryJournal::default()), config);
    let r = reference("R2-0003");
    let outcome = driver.sale(yen(300), r.clone()).await.unwrap();
    assert!(matches!(outcome, SaleOutcome::Approved { .. }));
    assert_eq!(sim.enquiries(), 3);
    assert_eq!(sim.charges_for(&r), 1);
}

#[tokio::test(start_paused = true)]
async fn abort_stops_a_stalled_sale() {
    let (a, b) = tokio::io::duplex(4096);
    let sim = sim::spawn(a);
    sim.script(Behaviour::Stall);
    let driver = Arc::new(TerminalDriver::with_transport(
        b,
        Arc::new(MemoryJournal::default()),
        TerminalConfig::default(),
    ));
    let r = reference("R2-0004");
    let sale = tokio::spawn({
        let d = driver.clone();
        let r = r.clone();
        async move { d.sale(yen(300), r).await }
    });
    // Give the customer ten (virtual) seconds, then abort.
    tokio::time::sleep(Duration::from_secs(10)).await;
    driver.abort();
    assert_eq!(sale.await.unwrap().unwrap(), SaleOutcome::Aborted);
    assert_eq!(sim.aborts(), 1);
    assert!(sim.ledger().is_empty());
}

#[test]
fn card_data_is_redacted_in_debug_output() {
    use madoguchi_gateway::devices::terminal::frame::{CardData, ResultCode, TransactionResult};
    let result = TransactionResult {
        result: ResultCode::Approved,
        reference: reference("R3-0001"),
        amount: Some(yen(10)),
        auth_code: None,
        card: CardData {
            masked_pan: b"4980********1234".to_vec(),
            receipt: b"VISA 4980********1234".to_vec(),
            brand: Some(1),
        },
    };
    let text = format!("{result:?}");
    assert!(!text.contains("1234") && !text.contains("4980"), "{text}");
    assert!(text.contains("redacted"));
}
