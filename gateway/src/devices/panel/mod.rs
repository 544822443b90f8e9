//! The kiosk button panel: one button per category, LEDs, a line protocol
//! ([`protocol`]).
//!
//! [`spawn`] returns a [`PanelHandle`] and the stream of deduplicated
//! [`ButtonPress`]es:
//!
//! ```ignore
//! let (panel, mut presses) = panel::spawn(Connector::serial(port), PanelConfig::default());
//! while let Some(press) = presses.recv().await {
//!     panel.set_led(press.button, Led::Blink).await?; // while the ticket prints
//!     // … issue and print the ticket …
//!     panel.set_led(press.button, Led::On).await?;
//! }
//! ```
//!
//! A press is acknowledged (`A,b,n`) once it is in the channel; the panel
//! resends until then, and a resent press (same button and counter) is
//! acknowledged again but not delivered twice. A hello (panel power-up)
//! forgets the counters.

pub mod codec;
pub mod protocol;
pub mod sim;

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

use self::codec::PanelCodec;
use self::protocol::{Led, MAX_BUTTON, PanelLine};
use crate::serial::{Backoff, BoxTransport, Connector, connect_with_backoff};

/// Driver settings.
#[derive(Debug, Clone, Default)]
pub struct PanelConfig {
    /// Reconnection backoff.
    pub backoff: Backoff,
}

/// A button press, delivered once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonPress {
    /// Button number (1–32); the gateway's config maps it to a category.
    pub button: u8,
    /// The panel's press counter for this button.
    pub counter: u16,
}

/// Panel health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PanelHealth {
    /// The port is open.
    pub connected: bool,
    /// Lines rejected (bad checksum, malformed, too long) since start.
    pub rejected_lines: u64,
    /// Duplicate presses acknowledged but not delivered.
    pub duplicates: u64,
    /// Last error, lowercase text.
    pub last_error: Option<String>,
}

/// Why an LED could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanelError {
    /// Button number out of range.
    #[error("button {0} does not exist")]
    NoSuchButton(u8),
    /// The port is gone.
    #[error("panel port is disconnected")]
    Disconnected,
    /// The driver task ended.
    #[error("panel driver stopped")]
    Stopped,
}

type LedRequest = (u8, Led, oneshot::Sender<Result<(), PanelError>>);

/// Handle to the panel driver; cheap to clone.
#[derive(Debug, Clone)]
pub struct PanelHandle {
    leds: mpsc::Sender<LedRequest>,
    health: watch::Receiver<PanelHealth>,
}

impl PanelHandle {
    /// Sets a button's LED.
    pub async fn set_led(&self, button: u8, led: Led) -> Result<(), PanelError> {
        if !(1..=MAX_BUTTON).contains(&button) {
            return Err(PanelError::NoSuchButton(button));
        }
        let (tx, rx) = oneshot::channel();
        self.leds
            .send((button, led, tx))
            .await
            .map_err(|_| PanelError::Stopped)?;
        rx.await.map_err(|_| PanelError::Stopped)?
    }

    /// Panel health.
    pub fn health(&self) -> watch::Receiver<PanelHealth> {
        self.health.clone()
    }
}

/// Starts the driver; the task ends when the press receiver is dropped.
pub fn spawn(
    connector: Connector,
    config: PanelConfig,
) -> (PanelHandle, mpsc::Receiver<ButtonPress>) {
    let (leds, led_rx) = mpsc::channel(16);
    let (presses, press_rx) = mpsc::channel(64);
    let (health_tx, health) = watch::channel(PanelHealth::default());
    tokio::spawn(run(connector, config, led_rx, presses, health_tx));
    (PanelHandle { leds, health }, press_rx)
}

async fn run(
    mut connector: Connector,
    config: PanelConfig,
    mut leds: mpsc::Receiver<LedRequest>,
    presses: mpsc::Sender<ButtonPress>,
    health: watch::Sender<PanelHealth>,
) {
    // Last counter seen per button; survives reconnects (the panel resends
    // an unacknowledged press after the cable comes back).
    let mut last: HashMap<u8, u16> = HashMap::new();
    loop {
        let mut backoff = config.backoff.clone();
        // Biased: a port that opens at once is used before any queued
        // request is refused.
        let transport = tokio::select! {
            biased;
            t = connect_with_backoff(&mut connector, &mut backoff, |e| {
                let message = format!("open failed: {e}");
                health.send_modify(|h| { h.connected = false; h.last_error = Some(message); });
            }) => t,
            () = presses.closed() => return,
            () = refuse_leds(&mut leds) => return,
        };
        health.send_modify(|h| {
            h.connected = true;
            h.last_error = None;
        });
        let port = Framed::new(transport, PanelCodec::default());
        match session(port, &mut leds, &presses, &health, &mut last).await {
            None => return,
            Some(reason) => {
                tracing::warn!(port = connector.label(), %reason, "button panel disconnected");
                health.send_modify(|h| {
                    h.connected = false;
                    h.last_error = Some(reason);
                });
            }
        }
    }
}

async fn refuse_leds(leds: &mut mpsc::Receiver<LedRequest>) {
    while let Some((_, _, reply)) = leds.recv().await {
        let _ = reply.send(Err(PanelError::Disconnected));
    }
    // No handle left: keep running for the press stream.
    std::future::pending::<()>().await;
}

async fn session(
    mut port: Framed<BoxTransport, PanelCodec>,
    leds: &mut mpsc::Receiver<LedRequest>,
    presses: &mpsc::Sender<ButtonPress>,
    health: &watch::Sender<PanelHealth>,
    last: &mut HashMap<u8, u16>,
) -> Option<String> {
    let mut leds_open = true;
    loop {
        tokio::select! {
            line = port.next() => match line {
                None => return Some("port closed".to_owned()),
                Some(Err(e)) => return Some(format!("read failed: {e}")),
                Some(Ok(Err(error))) => {
                    tracing::debug!(%error, "panel line rejected");
                    health.send_modify(|h| h.rejected_lines += 1);
                }
                Some(Ok(Ok(PanelLine::Press { button, counter }))) => {
                    if last.get(&button) == Some(&counter) {
                        health.send_modify(|h| h.duplicates += 1);
                    } else {
                        if presses.send(ButtonPress { button, counter }).await.is_err() {
                            return None;
                        }
                        last.insert(button, counter);
                    }
                    if let Err(e) = port.send(PanelLine::Ack { button, counter }).await {
                        return Some(format!("write failed: {e}"));
                    }
                }
                Some(Ok(Ok(PanelLine::Hello { .. }))) => last.clear(),
                // Gateway-bound lines only; a panel echoing ours is ignored.
                Some(Ok(Ok(PanelLine::Ack { .. } | PanelLine::SetLed { .. }))) => {}
            },
            request = leds.recv(), if leds_open => match request {
                None => leds_open = false,
                Some((button, led, reply)) => {
                    let result = port.send(PanelLine::SetLed { button, led }).await;
                    match result {
                        Ok(()) => { let _ = reply.send(Ok(())); }
                        Err(e) => {
                            let _ = reply.send(Err(PanelError::Disconnected));
                            return Some(format!("write failed: {e}"));
                        }
                    }
                }
            },
            () = presses.closed() => return None,
        }
    }
}

/// Default interval at which the simulated panel resends an unacknowledged
/// press (a real panel's firmware uses about the same).
pub const RESEND_INTERVAL: Duration = Duration::from_millis(200);
