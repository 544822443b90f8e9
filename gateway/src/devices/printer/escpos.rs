//! ESC/POS bytes, without I/O: the ticket layout the gateway prints, the
//! command parser the simulator interprets it with, and the printer's
//! replies classified by their fixed bits.
//!
//! Host → printer: [`encode_ticket`] builds one ticket; [`Command`] is one
//! parsed command ([`parse_command`] / [`Command::encode`]).
//! Printer → host: [`decode_reply`] / [`PrinterReply::encode`]. Replies can
//! interleave (real-time status bytes, automatic status blocks, process-id
//! responses, XON/XOFF), so each is recognised by its fixed-bit pattern
//! instead of by position; an unrecognised byte is skipped (resync).

use encoding_rs::SHIFT_JIS;

/// `ESC`.
pub const ESC: u8 = 0x1B;
/// `GS`.
pub const GS: u8 = 0x1D;
/// `FS`.
pub const FS: u8 = 0x1C;
/// `DLE`.
pub const DLE: u8 = 0x10;
/// `EOT`.
pub const EOT: u8 = 0x04;
/// `DC4`.
pub const DC4: u8 = 0x14;
/// `LF`: print the line buffer and feed one line.
pub const LF: u8 = 0x0A;
/// XON flow-control byte.
pub const XON: u8 = 0x11;
/// XOFF flow-control byte.
pub const XOFF: u8 = 0x13;

/// Largest QR payload the printer stores (model 2, level L, 8-bit bytes).
pub const QR_MAX: usize = 7089;

/// `DLE DC4 fn=8`: clear the receive and print buffers. Sent after a failed
/// print so that a ticket we reported as not printed cannot come out later
/// when paper is refilled.
pub const CLEAR_BUFFERS: [u8; 10] = [DLE, DC4, 0x08, 0x01, 0x03, 0x14, 0x01, 0x06, 0x02, 0x08];

/// The 4-character tag of a print job: `GS ( H` fn 48 makes the printer
/// answer `37 22 d1 d2 d3 d4 00` once everything before it has printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(pub [u8; 4]);

impl JobId {
    /// Job id from a sequence number: four ASCII digits (`n mod 10000`).
    pub fn from_sequence(n: u32) -> Self {
        let n = n % 10_000;
        let digit = |d: u32| b'0' + (d % 10) as u8;
        Self([digit(n / 1000), digit(n / 100), digit(n / 10), digit(n)])
    }

    /// Whether the printer accepts this id (each byte 32–126).
    pub fn is_valid(&self) -> bool {
        self.0.iter().all(|b| (32..=126).contains(b))
    }
}

/// What a ticket says. Text fields are Japanese and printed in Kanji mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketContent {
    /// Heading, e.g. `大船渡市役所 市民課`.
    pub heading: String,
    /// The ticket number as displayed, e.g. `A012`.
    pub number: String,
    /// Category name in Japanese, e.g. `住民票・証明書`.
    pub category: String,
    /// Name of the counter colour the visitor should look for, e.g. `オレンジ`.
    pub counter_colour: String,
    /// Tickets ahead of this one when it was issued.
    pub people_ahead: u32,
    /// Estimated wait in whole minutes.
    pub estimated_wait_minutes: u32,
    /// Issue time as printed, e.g. `2026-11-25 09:12` (Asia/Tokyo).
    pub issued_at: String,
    /// Status-page URL, printed as a QR code.
    pub status_url: String,
}

/// Why a ticket could not be encoded (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A character has no Shift_JIS code.
    #[error("{field} has a character with no shift_jis code")]
    Unmappable {
        /// The offending field.
        field: &'static str,
    },
    /// A control character would be read by the printer as a command.
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The offending field.
        field: &'static str,
    },
    /// QR payload longer than [`QR_MAX`].
    #[error("qr payload of {len} bytes exceeds {QR_MAX}")]
    QrTooLong {
        /// Its length.
        len: usize,
    },
    /// Job id bytes outside 32–126.
    #[error("job id must be printable ascii")]
    InvalidJobId,
}

/// Shift_JIS bytes of `text`, refusing control characters and characters
/// Shift_JIS cannot carry (never print a substitute silently).
pub fn shift_jis(field: &'static str, text: &str) -> Result<Vec<u8>, EncodeError> {
    if text.chars().any(char::is_control) {
        return Err(EncodeError::ControlCharacter { field });
    }
    let (bytes, _, had_errors) = SHIFT_JIS.encode(text);
    if had_errors {
        return Err(EncodeError::Unmappable { field });
    }
    Ok(bytes.into_owned())
}

/// One line in Kanji mode: `FS &` text `FS .` LF.
pub(crate) fn kanji_line(
    out: &mut Vec<u8>,
    field: &'static str,
    text: &str,
) -> Result<(), EncodeError> {
    out.extend_from_slice(&[FS, b'&']);
    out.extend_from_slice(&shift_jis(field, text)?);
    out.extend_from_slice(&[FS, b'.', LF]);
    Ok(())
}

/// `GS ( k` with `fn_code` and `params`.
fn qr_function(out: &mut Vec<u8>, fn_code: u8, params: &[u8]) {
    let len = params.len() + 2;
    out.extend_from_slice(&[
        GS,
        b'(',
        b'k',
        (len & 0xFF) as u8,
        (len >> 8) as u8,
        49,
        fn_code,
    ]);
    out.extend_from_slice(params);
}

/// The bytes of one ticket, ending with feed-and-cut and the `GS ( H`
/// print confirmation request tagged `job`.
///
/// Layout: initialise, Shift_JIS (`FS C 1`), centred; heading; category at
/// double size; the number at 5× size; counter colour, people ahead and
/// estimated wait; issue time; QR (model 2, module 6, level M); feed and
/// partial cut (`GS V 66 3`); `GS ( H` fn 48.
pub fn encode_ticket(t: &TicketContent, job: JobId) -> Result<Vec<u8>, EncodeError> {
    if !job.is_valid() {
        return Err(EncodeError::InvalidJobId);
    }
    if t.status_url.len() > QR_MAX {
        return Err(EncodeError::QrTooLong {
            len: t.status_url.len(),
        });
    }
    let mut out = Vec::with_capacity(256 + t.status_url.len());
    out.extend_from_slice(&[ESC, b'@', FS, b'C', 1, ESC, b'a', 1]);
    out.extend_from_slice(&[GS, b'!', 0x00]);
    kanji_line(&mut out, "heading", &t.heading)?;
    out.extend_from_slice(&[GS, b'!', 0x11]);
    kanji_line(&mut out, "category", &t.category)?;
    out.extend_from_slice(&[GS, b'!', 0x44]);
    out.extend_from_slice(&shift_jis("number", &t.number)?);
    out.push(LF);
    out.extend_from_slice(&[GS, b'!', 0x00]);
    kanji_line(
        &mut out,
        "counter_colour",
        &format!("窓口の色: {}", t.counter_colour),
    )?;
    kanji_line(
        &mut out,
        "people_ahead",
        &format!("お待ちの方: {}人", t.people_ahead),
    )?;
    kanji_line(
        &mut out,
        "estimated_wait",
        &format!("待ち時間の目安: 約{}分", t.estimated_wait_minutes),
    )?;
    kanji_line(&mut out, "issued_at", &format!("発券: {}", t.issued_at))?;
    let url = shift_jis("status_url", &t.status_url)?;
    qr_function(&mut out, 65, &[50, 0]);
    qr_function(&mut out, 67, &[6]);
    qr_function(&mut out, 69, &[49]);
    let mut store = vec![48];
    store.extend_from_slice(&url);
    qr_function(&mut out, 80, &store);
    qr_function(&mut out, 81, &[48]);
    out.push(LF);
    out.extend_from_slice(&[GS, b'V', 66, 3]);
    out.extend_from_slice(&[GS, b'(', b'H', 6, 0, 48, 48]);
    out.extend_from_slice(&job.0);
    Ok(out)
}

/// One host → printer command, as the simulator interprets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A run of printable bytes (≥ 0x20) for the line buffer.
    Text(Vec<u8>),
    /// `LF`: print the line and feed.
    LineFeed,
    /// `CR` (ignored by printers with auto line feed off).
    CarriageReturn,
    /// `ESC @`.
    Initialize,
    /// `ESC a n`.
    Align(u8),
    /// `ESC ! n`.
    PrintMode(u8),
    /// `ESC d n`: print and feed `n` lines.
    FeedLines(u8),
    /// `FS C n`: Kanji code system (1 = Shift_JIS).
    KanjiCode(u8),
    /// `FS &`: Kanji mode on.
    KanjiOn,
    /// `FS .`: Kanji mode off.
    KanjiOff,
    /// `GS ! n`: character size (bits 0–3 height − 1, bits 4–7 width − 1).
    Size(u8),
    /// `GS V m [n]`: cut (`m` 65/66 feed `n` first).
    Cut {
        /// Mode.
        mode: u8,
        /// Feed before the cut, for modes 65/66.
        feed: Option<u8>,
    },
    /// `GS ( k`: a 2D-code function (`cn` 49 = QR) with its parameters.
    Symbol {
        /// Symbol type (49 = QR).
        cn: u8,
        /// Function code (65 model … 81 print).
        fn_code: u8,
        /// Parameters after `fn`.
        params: Vec<u8>,
    },
    /// `GS ( H` fn 48: answer with this job id once printed.
    RequestProcessId(JobId),
    /// `GS a n`: enable Automatic Status Back for the bits in `n`.
    AutoStatusBack(u8),
    /// `DLE EOT n`: real-time status request.
    RealtimeStatus(u8),
    /// `DLE DC4 fn=8`: clear buffers.
    ClearBuffers,
    /// `ESC p m t1 t2`: pulse the cash-drawer kick connector pin `m`
    /// (0 = pin 2, 1 = pin 5) on for `t1` × 2 ms, then off for `t2` × 2 ms.
    DrawerKick {
        /// Connector pin selector (0/48 pin 2, 1/49 pin 5).
        pin: u8,
        /// On time in units of 2 ms.
        on: u8,
        /// Off time in units of 2 ms.
        off: u8,
    },
    /// Any other well-delimited `GS (` function, skipped by its length.
    OtherGsParen {
        /// The letter after `GS (`.
        letter: u8,
        /// Its parameter bytes.
        params: Vec<u8>,
    },
    /// A byte the simulator does not know; skipped alone (resync).
    Unknown(u8),
}

/// Result of parsing the head of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// `T` took this many bytes.
    Item(T, usize),
    /// Not enough bytes yet.
    Incomplete,
}

/// Parses one command at the start of `buf`. Never panics; every buffer
/// either yields an item of at least one byte or needs more bytes.
pub fn parse_command(buf: &[u8]) -> Parsed<Command> {
    use Parsed::{Incomplete, Item};
    let Some(&first) = buf.first() else {
        return Incomplete;
    };
    let at = |i: usize| buf.get(i).copied();
    match first {
        b if b >= 0x20 => {
            let len = buf.iter().take_while(|&&b| b >= 0x20).count();
            Item(Command::Text(buf[..len].to_vec()), len)
        }
        LF => Item(Command::LineFeed, 1),
        0x0D => Item(Command::CarriageReturn, 1),
        ESC => match at(1) {
            None => Incomplete,
            Some(b'@') => Item(Command::Initialize, 2),
            Some(b'p') => match (at(2), at(3), at(4)) {
                (Some(pin), Some(on), Some(off)) => Item(Command::DrawerKick { pin, on, off }, 5),
                _ => Incomplete,
            },
            Some(c @ (b'a' | b'!' | b'd')) => match at(2) {
                None => Incomplete,
                Some(n) => Item(
                    match c {
                        b'a' => Command::Align(n),
                        b'!' => Command::PrintMode(n),
                        _ => Command::FeedLines(n),
                    },
                    3,
                ),
            },
            Some(_) => Item(Command::Unknown(ESC), 1),
        },
        FS => match at(1) {
            None => Incomplete,
            Some(b'&') => Item(Command::KanjiOn, 2),
            Some(b'.') => Item(Command::KanjiOff, 2),
            Some(b'C') => match at(2) {
                None => Incomplete,
                Some(n) => Item(Command::KanjiCode(n), 3),
            },
            Some(_) => Item(Command::Unknown(FS), 1),
        },
        GS => match at(1) {
            None => Incomplete,
            Some(b'!') => at(2).map_or(Incomplete, |n| Item(Command::Size(n), 3)),
            Some(b'a') => at(2).map_or(Incomplete, |n| Item(Command::AutoStatusBack(n), 3)),
            Some(b'V') => match at(2) {
                None => Incomplete,
                Some(mode @ (65 | 66)) => at(3).map_or(Incomplete, |n| {
                    Item(
                        Command::Cut {
                            mode,
                            feed: Some(n),
                        },
                        4,
                    )
                }),
                Some(mode @ (0 | 1 | 48 | 49)) => Item(Command::Cut { mode, feed: None }, 3),
                Some(_) => Item(Command::Unknown(GS), 1),
            },
            Some(b'(') => {
                let (Some(letter), Some(pl), Some(ph)) = (at(2), at(3), at(4)) else {
                    return Incomplete;
                };
                let len = usize::from(pl) | usize::from(ph) << 8;
                let Some(params) = buf.get(5..5 + len) else {
                    return Incomplete;
                };
                let total = 5 + len;
                match (letter, params) {
                    (b'k', [cn, fn_code, rest @ ..]) => Item(
                        Command::Symbol {
                            cn: *cn,
                            fn_code: *fn_code,
                            params: rest.to_vec(),
                        },
                        total,
                    ),
                    (b'H', [48, 48, a, b, c, d]) => {
                        Item(Command::RequestProcessId(JobId([*a, *b, *c, *d])), total)
                    }
                    _ => Item(
                        Command::OtherGsParen {
                            letter,
                            params: params.to_vec(),
                        },
                        total,
                    ),
                }
            }
            Some(_) => Item(Command::Unknown(GS), 1),
        },
        DLE => match at(1) {
            None => Incomplete,
            Some(EOT) => at(2).map_or(Incomplete, |n| Item(Command::RealtimeStatus(n), 3)),
            Some(DC4) => match buf.get(..CLEAR_BUFFERS.len()) {
                None if CLEAR_BUFFERS.starts_with(buf) => Incomplete,
                Some(head) if head == CLEAR_BUFFERS => {
                    Item(Command::ClearBuffers, CLEAR_BUFFERS.len())
                }
                _ => Item(Command::Unknown(DLE), 1),
            },
            Some(_) => Item(Command::Unknown(DLE), 1),
        },
        other => Item(Command::Unknown(other), 1),
    }
}

impl Command {
    /// The bytes of this command (what [`parse_command`] reads back).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Text(bytes) => out.extend_from_slice(bytes),
            Command::LineFeed => out.push(LF),
            Command::CarriageReturn => out.push(0x0D),
            Command::Initialize => out.extend_from_slice(&[ESC, b'@']),
            Command::Align(n) => out.extend_from_slice(&[ESC, b'a', *n]),
            Command::PrintMode(n) => out.extend_from_slice(&[ESC, b'!', *n]),
            Command::FeedLines(n) => out.extend_from_slice(&[ESC, b'd', *n]),
            Command::KanjiCode(n) => out.extend_from_slice(&[FS, b'C', *n]),
            Command::KanjiOn => out.extend_from_slice(&[FS, b'&']),
            Command::KanjiOff => out.extend_from_slice(&[FS, b'.']),
            Command::Size(n) => out.extend_from_slice(&[GS, b'!', *n]),
            Command::Cut { mode, feed } => {
                out.extend_from_slice(&[GS, b'V', *mode]);
                out.extend(feed);
            }
            Command::Symbol {
                cn,
                fn_code,
                params,
            } => {
                let len = params.len() + 2;
                out.extend_from_slice(&[GS, b'(', b'k', (len & 0xFF) as u8, (len >> 8) as u8]);
                out.extend_from_slice(&[*cn, *fn_code]);
                out.extend_from_slice(params);
            }
            Command::RequestProcessId(job) => {
                out.extend_from_slice(&[GS, b'(', b'H', 6, 0, 48, 48]);
                out.extend_from_slice(&job.0);
            }
            Command::AutoStatusBack(n) => out.extend_from_slice(&[GS, b'a', *n]),
            Command::RealtimeStatus(n) => out.extend_from_slice(&[DLE, EOT, *n]),
            Command::ClearBuffers => out.extend_from_slice(&CLEAR_BUFFERS),
            Command::DrawerKick { pin, on, off } => {
                out.extend_from_slice(&[ESC, b'p', *pin, *on, *off]);
            }
            Command::OtherGsParen { letter, params } => {
                let len = params.len();
                out.extend_from_slice(&[GS, b'(', *letter, (len & 0xFF) as u8, (len >> 8) as u8]);
                out.extend_from_slice(params);
            }
            Command::Unknown(b) => out.push(*b),
        }
    }
}

/// One printer → host reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinterReply {
    /// Answer to `DLE EOT n` (bits 1 and 4 set, bits 0 and 7 clear).
    Status(u8),
    /// `37 22 d1 d2 d3 d4 00`: the data before `GS ( H` with this id printed.
    ProcessId(JobId),
    /// A 4-byte Automatic Status Back block.
    AutoStatus([u8; 4]),
    /// XON (`11`).
    Xon,
    /// XOFF (`13`).
    Xoff,
}

/// Whether `b` has the fixed bits of a real-time status byte.
pub fn is_status_byte(b: u8) -> bool {
    b & 0x93 == 0x12
}

/// Whether `b` has the fixed bits of the first byte of an ASB block.
fn is_asb_header(b: u8) -> bool {
    b & 0x93 == 0x10
}

/// Result of [`decode_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedReply {
    /// A reply that took this many bytes.
    Reply(PrinterReply, usize),
    /// The first byte belongs to no reply: drop it and try again.
    Skip,
    /// Could be a reply once more bytes arrive.
    Incomplete,
}

/// Classifies the reply at the start of `buf` by its fixed bits.
pub fn decode_reply(buf: &[u8]) -> DecodedReply {
    let Some(&first) = buf.first() else {
        return DecodedReply::Incomplete;
    };
    match first {
        0x37 => match buf.get(1) {
            None => DecodedReply::Incomplete,
            Some(0x22) => match buf.get(..7) {
                None => DecodedReply::Incomplete,
                Some([_, _, a, b, c, d, 0]) => {
                    DecodedReply::Reply(PrinterReply::ProcessId(JobId([*a, *b, *c, *d])), 7)
                }
                Some(_) => DecodedReply::Skip,
            },
            Some(_) => DecodedReply::Skip,
        },
        XON => DecodedReply::Reply(PrinterReply::Xon, 1),
        XOFF => DecodedReply::Reply(PrinterReply::Xoff, 1),
        b if is_status_byte(b) => DecodedReply::Reply(PrinterReply::Status(b), 1),
        b if is_asb_header(b) => match buf.get(..4) {
            None => DecodedReply::Incomplete,
            // Bytes 2–4 of an ASB block have bits 4 and 7 clear.
            Some([a, b, c, d]) if [b, c, d].iter().all(|x| *x & 0x90 == 0) => {
                DecodedReply::Reply(PrinterReply::AutoStatus([*a, *b, *c, *d]), 4)
            }
            Some(_) => DecodedReply::Skip,
        },
        _ => DecodedReply::Skip,
    }
}

impl PrinterReply {
    /// The bytes of this reply.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            PrinterReply::Status(b) => out.push(*b),
            PrinterReply::ProcessId(job) => {
                out.extend_from_slice(&[0x37, 0x22]);
                out.extend_from_slice(&job.0);
                out.push(0);
            }
            PrinterReply::AutoStatus(block) => out.extend_from_slice(block),
            PrinterReply::Xon => out.push(XON),
            PrinterReply::Xoff => out.push(XOFF),
        }
    }
}

/// The printer's state as read from the answers to `DLE EOT 1, 2, 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// n=1 bit 3.
    pub offline: bool,
    /// n=2 bit 2.
    pub cover_open: bool,
    /// n=2 bit 5 or n=4 bits 5–6.
    pub paper_out: bool,
    /// n=4 bits 2–3.
    pub paper_near_end: bool,
    /// n=2 bit 6 (an error occurred: cutter, unrecoverable or auto-recoverable).
    pub error: bool,
}

impl StatusReport {
    /// Interprets the status bytes answering `DLE EOT 1`, `2` and `4`.
    pub fn from_bytes(printer: u8, offline_cause: u8, paper: u8) -> Self {
        Self {
            offline: printer & 0x08 != 0,
            cover_open: offline_cause & 0x04 != 0,
            paper_out: offline_cause & 0x20 != 0 || paper & 0x60 != 0,
            paper_near_end: paper & 0x0C != 0,
            error: offline_cause & 0x40 != 0,
        }
    }

    /// The bytes a printer in this state answers to `DLE EOT n` (n = 1..4).
    pub fn status_byte(&self, n: u8) -> u8 {
        let mut b = 0x12;
        match n {
            1 if self.offline => b |= 0x08,
            2 => {
                if self.cover_open {
                    b |= 0x04;
                }
                if self.paper_out {
                    b |= 0x20;
                }
                if self.error {
                    b |= 0x40;
                }
            }
            4 => {
                if self.paper_near_end {
                    b |= 0x0C;
                }
                if self.paper_out {
                    b |= 0x60;
                }
            }
            _ => {}
        }
        b
    }
}
