//! A simulated button panel on a serial transport (a pty master).
//!
//! [`PanelSimHandle::press`] numbers a press and sends it; the simulator
//! resends it every `resend_interval` (tokio time) until the gateway
//! acknowledges it, like the panel's firmware. Tests can drop the next
//! acknowledgements ([`PanelSimHandle::drop_acks`]) to force resends, power
//! cycle the panel (hello, counters restart) and send raw bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;

use super::codec::PanelCodec;
use super::protocol::{Led, PanelLine};
use crate::serial::Transport;

enum Control {
    Press(u8),
    PowerCycle(u16),
    Raw(Vec<u8>),
}

#[derive(Debug, Default)]
struct Shared {
    counters: HashMap<u8, u16>,
    drop_acks: u32,
}

/// What the panel shows and has sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PanelView {
    /// LED state per button.
    pub leds: BTreeMap<u8, Led>,
    /// Press lines sent, resends included.
    pub press_lines_sent: u64,
    /// Presses still waiting for an acknowledgement.
    pub unacked: usize,
}

/// Controls a simulated panel.
#[derive(Debug, Clone)]
pub struct PanelSimHandle {
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Mutex<Shared>>,
    view: watch::Receiver<PanelView>,
}

impl PanelSimHandle {
    /// Presses button `button`; returns the press counter it was sent with.
    pub fn press(&self, button: u8) -> u16 {
        let counter = self
            .shared
            .lock()
            .map(|mut s| {
                let c = s.counters.entry(button).or_insert(0);
                *c = c.wrapping_add(1);
                *c
            })
            .unwrap_or(0);
        let _ = self.control.send(Control::Press(button));
        counter
    }

    /// Ignores the next `n` acknowledgements (as if lost on the wire).
    pub fn drop_acks(&self, n: u32) {
        if let Ok(mut s) = self.shared.lock() {
            s.drop_acks = n;
        }
    }

    /// Power-cycles the panel: counters restart, a hello is sent.
    pub fn power_cycle(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.counters.clear();
        }
        let _ = self.control.send(Control::PowerCycle(fastrand::u16(..)));
    }

    /// Sends raw bytes (garbage, half lines) to the gateway.
    pub fn send_raw(&self, bytes: &[u8]) {
        let _ = self.control.send(Control::Raw(bytes.to_vec()));
    }

    /// The panel's LEDs and counters.
    pub fn view(&self) -> watch::Receiver<PanelView> {
        self.view.clone()
    }
}

/// Starts a simulated panel that resends unacknowledged presses every
/// `resend_interval`.
pub fn spawn(transport: impl Transport, resend_interval: Duration) -> PanelSimHandle {
    let (control, control_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (view_tx, view) = watch::channel(PanelView::default());
    tokio::spawn(run(
        transport,
        resend_interval,
        control_rx,
        shared.clone(),
        view_tx,
    ));
    PanelSimHandle {
        control,
        shared,
        view,
    }
}

async fn run(
    transport: impl Transport,
    resend_interval: Duration,
    mut control: mpsc::UnboundedReceiver<Control>,
    shared: Arc<Mutex<Shared>>,
    view: watch::Sender<PanelView>,
) {
    let mut port = Framed::new(transport, PanelCodec::default());
    // Unacknowledged presses: button → counter (only the latest per button).
    let mut unacked: BTreeMap<u8, u16> = BTreeMap::new();
    let mut resend = tokio::time::interval(resend_interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent_counters: HashMap<u8, u16> = HashMap::new();
    loop {
        tokio::select! {
            c = control.recv() => {
                let Some(c) = c else { return };
                let result = match c {
                    Control::Press(button) => {
                        let counter = sent_counters.entry(button).or_insert(0);
                        *counter = counter.wrapping_add(1);
                        let line = PanelLine::Press { button, counter: *counter };
                        unacked.insert(button, *counter);
                        resend.reset();
                        view.send_modify(|v| { v.press_lines_sent += 1; v.unacked = unacked.len(); });
                        port.send(line).await
                    }
                    Control::PowerCycle(boot) => {
                        unacked.clear();
                        sent_counters.clear();
                        view.send_modify(|v| { v.leds.clear(); v.unacked = 0; });
                        port.send(PanelLine::Hello { boot }).await
                    }
                    Control::Raw(bytes) => {
                        use tokio::io::AsyncWriteExt;
                        port.get_mut().write_all(&bytes).await
                    }
                };
                if result.is_err() {
                    return;
                }
            }
            _ = resend.tick(), if !unacked.is_empty() => {
                for (button, counter) in unacked.clone() {
                    view.send_modify(|v| v.press_lines_sent += 1);
                    if port.send(PanelLine::Press { button, counter }).await.is_err() {
                        return;
                    }
                }
            }
            line = port.next() => match line {
                None | Some(Err(_)) => return,
                Some(Ok(Ok(PanelLine::Ack { button, counter }))) => {
                    let dropped = shared.lock().map(|mut s| {
                        let drop = s.drop_acks > 0;
                        s.drop_acks = s.drop_acks.saturating_sub(1);
                        drop
                    }).unwrap_or(false);
                    if !dropped && unacked.get(&button) == Some(&counter) {
                        unacked.remove(&button);
                        view.send_modify(|v| v.unacked = unacked.len());
                    }
                }
                Some(Ok(Ok(PanelLine::SetLed { button, led }))) => {
                    view.send_modify(|v| { v.leds.insert(button, led); });
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
