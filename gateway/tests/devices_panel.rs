//! The button panel driver against the panel simulator over a raw pty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use madoguchi_gateway::devices::panel::protocol::Led;
use madoguchi_gateway::devices::panel::sim::{self, PanelSimHandle};
use madoguchi_gateway::devices::panel::{self, ButtonPress, PanelConfig, PanelHandle};
use madoguchi_gateway::serial::{Connector, pty_pair};
use tokio::sync::mpsc;

fn panel(resend: Duration) -> (PanelSimHandle, PanelHandle, mpsc::Receiver<ButtonPress>) {
    let (master, slave) = pty_pair().unwrap();
    let sim = sim::spawn(master, resend);
    let (handle, presses) = panel::spawn(Connector::once("pty", slave), PanelConfig::default());
    (sim, handle, presses)
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn presses_arrive_in_order_and_leds_follow() {
    let (sim, handle, mut presses) = panel(Duration::from_secs(3600));
    let c1 = sim.press(2);
    let c2 = sim.press(1);
    let c3 = sim.press(2);
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress {
            button: 2,
            counter: c1
        })
    );
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress {
            button: 1,
            counter: c2
        })
    );
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress {
            button: 2,
            counter: c3
        })
    );
    within(handle.set_led(2, Led::Blink)).await.unwrap();
    let mut view = sim.view();
    within(view.wait_for(|v| v.leds.get(&2) == Some(&Led::Blink) && v.unacked == 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn lost_acks_cause_resends_that_are_delivered_once() {
    let (sim, handle, mut presses) = panel(Duration::from_millis(20));
    sim.drop_acks(3);
    let counter = sim.press(4);
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress { button: 4, counter })
    );
    let mut view = sim.view();
    within(view.wait_for(|v| v.unacked == 0)).await.unwrap();
    assert!(
        view.borrow().press_lines_sent >= 4,
        "resent until acknowledged"
    );
    assert!(handle.health().borrow().duplicates >= 3);
    // Nothing else was delivered.
    let next = sim.press(4);
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress {
            button: 4,
            counter: next
        })
    );
}

#[tokio::test]
async fn garbage_is_rejected_and_the_stream_resyncs() {
    let (sim, handle, mut presses) = panel(Duration::from_secs(3600));
    sim.send_raw(b"P,1,1*00\n");
    sim.send_raw(&[0xFF; 100]);
    sim.send_raw(b"\nnonsense\r\nP,99,1*");
    sim.send_raw(b"\n");
    let counter = sim.press(3);
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress { button: 3, counter })
    );
    assert!(handle.health().borrow().rejected_lines >= 3);
}

#[tokio::test]
async fn hello_after_power_cycle_restarts_counters() {
    let (sim, _handle, mut presses) = panel(Duration::from_secs(3600));
    let first = sim.press(1);
    assert_eq!(within(presses.recv()).await.unwrap().counter, first);
    sim.power_cycle();
    let again = sim.press(1);
    assert_eq!(again, first, "counter restarted");
    assert_eq!(
        within(presses.recv()).await,
        Some(ButtonPress {
            button: 1,
            counter: again
        })
    );
}
