//! Modbus RTU call boards: the driver (tokio-modbus client) against a
//! simulated line of boards (tokio-modbus server) over a raw pty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madoguchi_gateway::devices::board::registers::BoardDisplay;
use madoguchi_gateway::devices::board::sim::{self, BoardSimHandle};
use madoguchi_gateway::devices::board::{self, BoardError, BoardLineConfig, BoardLineHandle};
use madoguchi_gateway::serial::{Backoff, BoxTransport, Connector, pty_pair};

fn line(poll: Duration) -> (BoardSimHandle, BoardLineHandle) {
    let (master, slave) = pty_pair().unwrap();
    let sim = sim::spawn(master, [1, 2, 3]);
    let mut config = BoardLineConfig::new([1, 2, 3]);
    config.poll_interval = poll;
    config.request_timeout = Duration::from_millis(200);
    let boards = board::spawn(Connector::once("pty", slave), config);
    (sim, boards)
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn writes_address_three_of_three_and_reads_back() {
    let (sim, boards) = line(Duration::from_secs(3600));
    let display = BoardDisplay::ticket("A012").unwrap();
    within(boards.show(3, display)).await.unwrap();
    let view = sim.view(3).unwrap();
    assert_eq!(view.display.prefix, Some('A'));
    assert_eq!(view.display.number, Some(12));
    assert_eq!(view.chimes, 1, "a call chimes once");
    // Only the addressed board changed.
    for other in [1, 2] {
        let v = sim.view(other).unwrap();
        assert_eq!(v.writes, 0);
        assert_eq!(v.display.number, None);
    }
    let back = within(boards.read_back(3)).await.unwrap();
    assert!(back.same_picture(&display), "{back:?}");
}

#[tokio::test]
async fn unknown_unit_and_unshowable_values_are_refused() {
    let (_sim, boards) = line(Duration::from_secs(3600));
    assert_eq!(
        within(boards.show(9, BoardDisplay::ticket("A1").unwrap()))
            .await
            .unwrap_err(),
        BoardError::UnknownUnit(9)
    );
    assert!(BoardDisplay::ticket("A12345").is_err());
    assert!(
        BoardDisplay::ticket("K012").is_err(),
        "K has no 7-segment form"
    );
    assert!(BoardDisplay::ticket("").is_err());
}

#[tokio::test]
async fn power_cycled_board_gets_its_number_back() {
    let (sim, boards) = line(Duration::from_millis(100));
    let display = BoardDisplay::ticket("B007").unwrap();
    within(boards.show(3, display)).await.unwrap();
    let mut health = boards.health();
    within(health.wait_for(|h| h.boards[&3].boot_count == Some(1)))
        .await
        .unwrap();

    sim.power_off(3);
    within(health.wait_for(|h| !h.boards[&3].online))
        .await
        .unwrap();
    // A call made while the board is dark is remembered, not lost.
    let later = BoardDisplay::ticket("B008").unwrap();
    assert_eq!(
        within(boards.show(3, later)).await.unwrap_err(),
        BoardError::NotResponding(3)
    );
    sim.power_on(3);
    assert_eq!(
        sim.view(3).unwrap().display.number,
        None,
        "power loss blanks it"
    );
    within(health.wait_for(|h| h.boards[&3].online && h.boards[&3].resends >= 1))
        .await
        .unwrap();
    let view = sim.view(3).unwrap();
    assert_eq!(view.display.number, Some(8));
    assert_eq!(view.display.prefix, Some('B'));
    assert_eq!(view.boot, 2);
    assert_eq!(view.chimes, 1, "re-sending does not chime again");
}

#[tokio::test]
async fn power_cycle_while_reachable_is_detected_by_boot_counter() {
    let (sim, boards) = line(Duration::from_millis(100));
    within(boards.show(2, BoardDisplay::ticket("C100").unwrap()))
        .await
        .unwrap();
    let mut health = boards.health();
    within(health.wait_for(|h| h.boards[&2].boot_count == Some(1)))
        .await
        .unwrap();
    // Off and on between two polls: never seen silent.
    sim.power_off(2);
    sim.power_on(2);
    within(health.wait_for(|h| h.boards[&2].boot_count == Some(2)))
        .await
        .unwrap();
    let mut sim = sim;
    while sim.view(2).unwrap().display.number != Some(100) {
        within(sim.changed()).await;
    }
}

#[tokio::test]
async fn line_recovers_after_the_port_disappears_and_comes_back() {
    // Each connection attempt gets the next pty slave, as a USB adapter
    // that comes back; the first line's master is dropped (unplugged).
    let (master1, slave1) = pty_pair().unwrap();
    let (master2, slave2) = pty_pair().unwrap();
    let slaves = Arc::new(Mutex::new(vec![slave2, slave1]));
    let connector = Connector::from_fn("usb", move || {
        let next = slaves.lock().unwrap().pop();
        Box::pin(async move {
            next.map(|s| Box::new(s) as BoxTransport)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        })
    });
    let first = sim::spawn(master1, [1]);
    let mut config = BoardLineConfig::new([1]);
    config.poll_interval = Duration::from_millis(50);
    config.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
    let boards = board::spawn(connector, config);
    within(boards.show(1, BoardDisplay::ticket("D001").unwrap()))
        .await
        .unwrap();
    assert_eq!(first.view(1).unwrap().display.number, Some(1));

    let mut health = boards.health();
    first.unplug();
    let replacement = sim::spawn(master2, [1]);
    let mut replacement = replacement;
    while replacement.view(1).unwrap().display.number != Some(1) {
        within(replacement.changed()).await;
    }
    within(health.wait_for(|h| h.connected && h.boards[&1].online && h.boards[&1].resends >= 1))
        .await
        .unwrap();
}

/// A board the driver has not heard from yet is not reported down while a
/// call is being written to it: the wanted display is published with the
/// write's outcome. Before issue #23's fix "wanted, not online, no error"
/// was published for the length of the write, and the health reporter
/// turned it into a `connected=false` report (dozens in a load test whose
/// calls reach 32 boards faster than the poll does). A silent board makes
/// that window last the whole answer timeout.
#[tokio::test]
async fn a_board_is_not_reported_down_before_it_was_heard_from() {
    let (sim, boards) = line(Duration::from_secs(3600));
    let mut health = boards.health();
    within(health.wait_for(|h| h.connected)).await.unwrap();
    let display = BoardDisplay::ticket("A012").unwrap();

    // Answers: online with its display, never "wanted but unknown".
    let show = tokio::spawn({
        let boards = boards.clone();
        async move { boards.show(1, display).await }
    });
    let seen = within(health.wait_for(|h| h.boards[&1].wanted.is_some()))
        .await
        .unwrap()
        .boards[&1]
        .clone();
    assert!(seen.online && seen.last_error.is_none(), "{seen:?}");
    within(show).await.unwrap().unwrap();

    // Silent: down with the reason, once the answer timed out.
    sim.power_off(2);
    let show = tokio::spawn({
        let boards = boards.clone();
        async move { boards.show(2, display).await }
    });
    let seen = within(health.wait_for(|h| h.boards[&2].wanted.is_some()))
        .await
        .unwrap()
        .boards[&2]
        .clone();
    assert!(
        !seen.online && seen.last_error.is_some(),
        "a board is reported down only with the reason: {seen:?}"
    );
    assert!(matches!(
        within(show).await.unwrap(),
        Err(BoardError::NotResponding(2))
    ));
}
