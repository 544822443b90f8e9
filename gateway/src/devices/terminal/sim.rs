//! A simulated payment terminal speaking the same framing and profile.
//!
//! Tests script how the next sales go ([`Behaviour`]): approve, decline,
//! answer nothing, stall in progress, charge but lose the result, stay in
//! progress for a number of enquiries, or end 処理未了. They can also make
//! it NAK the next blocks (a NAK storm). The simulator keeps a ledger of
//! charges — the proof that nothing was charged twice — and answers status
//! enquiries from its transaction table. Like a real terminal it charges
//! again if the same sale is sent again: only the driver prevents that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::codec::ZvtCodec;
use super::frame::{
    Apdu, CardData, Frame, Reply, Request, ResultCode, SaleRef, TransactionResult, Yen,
};
use super::{recv_apdu, send_apdu};
use crate::serial::{BoxTransport, Transport};

/// How the simulator handles the next sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Charge and report approval.
    Approve,
    /// Report a decline.
    Decline,
    /// ACK the block, then answer nothing (not processed): T3 expires.
    NoResponse,
    /// `80 00`, then wait for the customer forever: T4 expires; status
    /// enquiries say "in progress"; an abort aborts it.
    Stall,
    /// Charge, but the result and completion never reach the ECR.
    LoseResult,
    /// `80 00`, then nothing; the next `n` enquiries say "in progress",
    /// then it charges and says approved.
    InProgress(u32),
    /// End 処理未了 (outcome unknown to the terminal).
    Unknown,
}

/// One charge in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Reference.
    pub reference: SaleRef,
    /// Amount.
    pub amount: Yen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    Approved,
    Declined,
    Aborted,
    Stalled,
    InProgress(u32),
    Unknown,
}

#[derive(Debug, Default)]
struct Shared {
    script: VecDeque<Behaviour>,
    nak_next: u32,
    ledger: Vec<Charge>,
    refunds: Vec<Charge>,
    txs: HashMap<SaleRef, (Yen, TxState)>,
    sales_received: u32,
    enquiries: u32,
    aborts: u32,
    naks_sent: u32,
}

/// Controls and observes a simulated terminal.
#[derive(Debug, Clone)]
pub struct TerminalSimHandle {
    shared: Arc<Mutex<Shared>>,
}

impl TerminalSimHandle {
    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> Option<T> {
        self.shared.lock().ok().map(|mut s| f(&mut s))
    }

    /// Queues how the next sale is handled (default: approve).
    pub fn script(&self, behaviour: Behaviour) {
        self.with(|s| s.script.push_back(behaviour));
    }

    /// NAKs the next `n` blocks received.
    pub fn nak_next(&self, n: u32) {
        self.with(|s| s.nak_next = n);
    }

    /// Every charge made.
    pub fn ledger(&self) -> Vec<Charge> {
        self.with(|s| s.ledger.clone()).unwrap_or_default()
    }

    /// Every refund paid back (`06 31`), in order.
    pub fn refunds(&self) -> Vec<Charge> {
        self.with(|s| s.refunds.clone()).unwrap_or_default()
    }

    /// Charges made under `reference`.
    pub fn charges_for(&self, reference: &SaleRef) -> usize {
        self.ledger()
            .iter()
            .filter(|c| &c.reference == reference)
            .count()
    }

    /// Sale commands received (accepted blocks).
    pub fn sales_received(&self) -> u32 {
        self.with(|s| s.sales_received).unwrap_or(0)
    }

    /// Status enquiries received.
    pub fn enquiries(&self) -> u32 {
        self.with(|s| s.enquiries).unwrap_or(0)
    }

    /// Abort commands received.
    pub fn aborts(&self) -> u32 {
        self.with(|s| s.aborts).unwrap_or(0)
    }

    /// NAKs sent.
    pub fn naks_sent(&self) -> u32 {
        self.with(|s| s.naks_sent).unwrap_or(0)
    }
}

impl TerminalSimHandle {
    /// Connects this same terminal (its transaction table and ledger) to
    /// another cable, e.g. a fresh pty after the gateway restarted and the
    /// old one closed. Like a real terminal, it remembers its transactions.
    pub fn attach(&self, transport: impl Transport) {
        let port = Framed::new(Box::new(transport) as BoxTransport, ZvtCodec::default());
        tokio::spawn(run(port, self.shared.clone()));
    }
}

/// Starts a simulator on `transport` (a pty master or an in-memory duplex).
pub fn spawn(transport: impl Transport) -> TerminalSimHandle {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let handle = TerminalSimHandle {
        shared: shared.clone(),
    };
    let port = Framed::new(Box::new(transport) as BoxTransport, ZvtCodec::default());
    tokio::spawn(run(port, shared));
    handle
}

type Port = Framed<BoxTransport, ZvtCodec>;

/// The terminal's own timers: 5 s for an ACK (3 retries), 5 s for the
/// ECR's `80 00`, 200 ms inside a block.
const SIM_T2: Duration = Duration::from_secs(5);
const SIM_T3: Duration = Duration::from_secs(5);
const SIM_T1: Duration = Duration::from_millis(200);

async fn run(mut port: Port, shared: Arc<Mutex<Shared>>) {
    let mut running: Option<SaleRef> = None;
    while let Some(frame) = port.next().await {
        let Ok(frame) = frame else { return };
        let apdu = match frame {
            Frame::Block(bytes) => {
                let nak = shared.lock().map(|mut s| {
                    let nak = s.nak_next > 0;
                    if nak {
                        s.nak_next -= 1;
                        s.naks_sent += 1;
                    }
                    nak
                });
                if nak.unwrap_or(false) {
                    if port.send(Frame::Nak).await.is_err() {
                        return;
                    }
                    continue;
                }
                if port.send(Frame::Ack).await.is_err() {
                    return;
                }
                match Apdu::parse(&bytes) {
                    Ok(apdu) => apdu,
                    Err(_) => continue,
                }
            }
            Frame::Corrupt => {
                if port.send(Frame::Nak).await.is_err() {
                    return;
                }
                continue;
            }
            Frame::Ack | Frame::Nak => continue,
        };
        let Ok(request) = Request::from_apdu(&apdu) else {
            // The ECR's `80 00` acknowledgements and anything unknown.
            continue;
        };
        let replies = match shared.lock() {
            Ok(mut s) => handle(&mut s, request, &mut running),
            Err(_) => return,
        };
        for reply in replies {
            if send_apdu(&mut port, &reply.to_apdu(), SIM_T2, 3)
                .await
                .is_err()
            {
                break;
            }
            // Half duplex: after a result or the completion the terminal
            // waits for the ECR's `80 00` before it says anything else.
            if matches!(reply, Reply::Result(_) | Reply::Completion) {
                let deadline = Instant::now() + SIM_T3;
                if recv_apdu(&mut port, deadline, SIM_T1).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn card() -> CardData {
    CardData {
        masked_pan: b"4980********1234".to_vec(),
        receipt: "ご利用ありがとうございました VISA 4980********1234"
            .as_bytes()
            .to_vec(),
        brand: Some(0x0A),
    }
}

fn result(code: ResultCode, reference: &SaleRef, amount: Option<Yen>) -> Reply {
    let approved = code == ResultCode::Approved;
    Reply::Result(TransactionResult {
        result: code,
        reference: reference.clone(),
        amount,
        auth_code: approved.then(|| "A1B2C3".to_owned()),
        card: if approved {
            card()
        } else {
            CardData::default()
        },
    })
}

fn handle(s: &mut Shared, request: Request, running: &mut Option<SaleRef>) -> Vec<Reply> {
    match request {
        Request::Sale { amount, reference } => {
            s.sales_received += 1;
            let behaviour = s.script.pop_front().unwrap_or(Behaviour::Approve);
            let charge = |s: &mut Shared| {
                s.ledger.push(Charge {
                    reference: reference.clone(),
                    amount,
                });
            };
            match behaviour {
                Behaviour::Approve => {
                    charge(s);
                    s.txs.insert(reference.clone(), (amount, TxState::Approved));
                    vec![
                        Reply::Ok,
                        result(ResultCode::Approved, &reference, Some(amount)),
                        Reply::Completion,
                    ]
                }
                Behaviour::Decline => {
                    s.txs.insert(reference.clone(), (amount, TxState::Declined));
                    vec![
                        Reply::Ok,
                        result(ResultCode::Declined, &reference, Some(amount)),
                        Reply::Completion,
                    ]
                }
                Behaviour::NoResponse => Vec::new(),
                Behaviour::Stall => {
                    s.txs.insert(reference.clone(), (amount, TxState::Stalled));
                    *running = Some(reference);
                    vec![Reply::Ok]
                }
                Behaviour::LoseResult => {
                    charge(s);
                    s.txs.insert(reference, (amount, TxState::Approved));
                    vec![Reply::Ok]
                }
                Behaviour::InProgress(n) => {
                    s.txs.insert(reference, (amount, TxState::InProgress(n)));
                    vec![Reply::Ok]
                }
                Behaviour::Unknown => {
                    s.txs.insert(reference.clone(), (amount, TxState::Unknown));
                    vec![
                        Reply::Ok,
                        result(ResultCode::Unknown, &reference, Some(amount)),
                        Reply::Completion,
                    ]
                }
            }
        }
        Request::Refund { amount, reference } => {
            // Like a sale, a refund sent twice is paid twice: only the
            // driver's journal prevents it.
            s.refunds.push(Charge {
                reference: reference.clone(),
                amount,
            });
            s.txs.insert(reference.clone(), (amount, TxState::Approved));
            vec![
                Reply::Ok,
                result(ResultCode::Approved, &reference, Some(amount)),
                Reply::Completion,
            ]
        }
        Request::Abort => {
            s.aborts += 1;
            let mut replies = vec![Reply::Ok];
            if let Some(reference) = running.take()
                && let Some((amount, state)) = s.txs.get_mut(&reference)
                && *state == TxState::Stalled
            {
                *state = TxState::Aborted;
                replies.push(result(ResultCode::Aborted, &reference, Some(*amount)));
                replies.push(Reply::Completion);
            }
            replies
        }
        Request::StatusEnquiry { reference } => {
            s.enquiries += 1;
            let (code, amount) = match s.txs.get(&reference).copied() {
                None => (ResultCode::NotFound, None),
                Some((amount, TxState::InProgress(0))) => {
                    s.ledger.push(Charge {
                        reference: reference.clone(),
                        amount,
                    });
                    s.txs.insert(reference.clone(), (amount, TxState::Approved));
                    (ResultCode::Approved, Some(amount))
                }
                Some((amount, TxState::InProgress(n))) => {
                    s.txs
                        .insert(reference.clone(), (amount, TxState::InProgress(n - 1)));
                    (ResultCode::InProgress, Some(amount))
                }
                Some((amount, state)) => (
                    match state {
                        TxState::Approved => ResultCode::Approved,
                        TxState::Declined => ResultCode::Declined,
                        TxState::Aborted => ResultCode::Aborted,
                        TxState::Stalled => ResultCode::InProgress,
                        TxState::Unknown => ResultCode::Unknown,
                        TxState::InProgress(_) => ResultCode::InProgress,
                    },
                    Some(amount),
                ),
            };
            vec![
                Reply::Ok,
                result(code, &reference, amount),
                Reply::Completion,
            ]
        }
    }
}
