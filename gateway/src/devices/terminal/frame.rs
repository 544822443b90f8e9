//! ZVT serial transport blocks and the terminal profile's APDUs (no I/O).
//!
//! Transport (ZVT serial): a block is `DLE STX`, the APDU with every `DLE`
//! (0x10) doubled, `DLE ETX`, then CRC-16/XMODEM of the unstuffed APDU
//! bytes followed by `ETX`, low byte first. The receiver answers a single
//! `ACK` (0x06) or `NAK` (0x15).
//!
//! APDU: class, instruction, length (one byte; `FF` then two bytes
//! little-endian for 255 or more), data. Data fields are tagged like ZVT
//! bitmaps (see [`Tag`]).

use crc::{CRC_16_XMODEM, Crc};

/// `DLE`.
pub const DLE: u8 = 0x10;
/// `STX`.
pub const STX: u8 = 0x02;
/// `ETX`.
pub const ETX: u8 = 0x03;
/// `ACK`.
pub const ACK: u8 = 0x06;
/// `NAK`.
pub const NAK: u8 = 0x15;
/// Largest APDU accepted (stuffed bytes are bounded by twice this).
pub const MAX_APDU: usize = 1024;

const CRC: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// CRC-16/XMODEM of `apdu` followed by `ETX`.
pub fn block_crc(apdu: &[u8]) -> u16 {
    let mut digest = CRC.digest();
    digest.update(apdu);
    digest.update(&[ETX]);
    digest.finalize()
}

/// One unit on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A block whose CRC matched; the unstuffed APDU.
    Block(Vec<u8>),
    /// `ACK`.
    Ack,
    /// `NAK`.
    Nak,
    /// A block that ended but was damaged (CRC mismatch, bad escape, too
    /// long): the receiver answers `NAK`.
    Corrupt,
}

impl Frame {
    /// The bytes of this frame (`Corrupt` encodes as a block with a wrong
    /// CRC, for tests).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Ack => out.push(ACK),
            Frame::Nak => out.push(NAK),
            Frame::Block(apdu) => encode_block(apdu, out),
            Frame::Corrupt => {
                let start = out.len();
                encode_block(&[0x80, 0x00, 0x00], out);
                if let Some(last) = out.get_mut(start + 7) {
                    *last ^= 0xFF;
                }
            }
        }
    }
}

/// Appends the block carrying `apdu`.
pub fn encode_block(apdu: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[DLE, STX]);
    for &b in apdu {
        out.push(b);
        if b == DLE {
            out.push(DLE);
        }
    }
    out.extend_from_slice(&[DLE, ETX]);
    let crc = block_crc(apdu);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Result of [`decode_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame that took this many bytes.
    Frame(Frame, usize),
    /// This many leading bytes belong to no frame (line noise): drop them.
    Skip(usize),
    /// A block has started but is not complete.
    Incomplete,
}

/// Finds the frame at the start of `buf`. Never panics; always makes
/// progress or asks for more bytes.
pub fn decode_frame(buf: &[u8]) -> Decoded {
    match buf {
        [] => Decoded::Incomplete,
        [ACK, ..] => Decoded::Frame(Frame::Ack, 1),
        [NAK, ..] => Decoded::Frame(Frame::Nak, 1),
        [DLE] => Decoded::Incomplete,
        [DLE, STX, ..] => decode_block(buf),
        _ => {
            // Skip to the next byte that could start a frame.
            let next = buf[1..]
                .iter()
                .position(|b| matches!(*b, ACK | NAK | DLE))
                .map_or(buf.len(), |p| p + 1);
            Decoded::Skip(next)
        }
    }
}

fn decode_block(buf: &[u8]) -> Decoded {
    let mut apdu = Vec::new();
    let mut i = 2;
    loop {
        if apdu.len() > MAX_APDU {
            // Too long to be ours: drop the start and resync.
            return Decoded::Frame(Frame::Corrupt, i);
        }
        let Some(&b) = buf.get(i) else {
            return Decoded::Incomplete;
        };
        if b != DLE {
            apdu.push(b);
            i += 1;
            continue;
        }
        match buf.get(i + 1) {
            None => return Decoded::Incomplete,
            Some(&DLE) => {
                apdu.push(DLE);
                i += 2;
            }
            Some(&ETX) => {
                let Some(crc) = buf.get(i + 2..i + 4) else {
                    return Decoded::Incomplete;
                };
                let len = i + 4;
                let received = u16::from_le_bytes([crc[0], crc[1]]);
                return if received == block_crc(&apdu) {
                    Decoded::Frame(Frame::Block(apdu), len)
                } else {
                    Decoded::Frame(Frame::Corrupt, len)
                };
            }
            // `DLE STX` inside a block: the previous block was cut off;
            // report it damaged and restart at the new one.
            Some(&STX) => return Decoded::Frame(Frame::Corrupt, i),
            Some(_) => return Decoded::Frame(Frame::Corrupt, i + 2),
        }
    }
}

/// An application protocol data unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    /// Control class.
    pub class: u8,
    /// Control instruction.
    pub instr: u8,
    /// Data.
    pub data: Vec<u8>,
}

/// Why an APDU or its fields could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// Shorter than its header or length says.
    #[error("apdu truncated")]
    Truncated,
    /// Bytes after the announced length.
    #[error("apdu longer than its length")]
    TrailingBytes,
    /// A field tag this profile does not know.
    #[error("unknown field tag {0:#04x}")]
    UnknownTag(u8),
    /// A field whose value is not valid.
    #[error("invalid field {0:#04x}")]
    InvalidField(u8),
    /// A required field is missing.
    #[error("missing field {0:#04x}")]
    MissingField(u8),
    /// Not a message of this profile.
    #[error("unexpected apdu {0:02x} {1:02x}")]
    Unexpected(u8, u8),
}

impl Apdu {
    /// The APDU bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.class, self.instr];
        if self.data.len() < 0xFF {
            out.push(self.data.len() as u8);
        } else {
            out.push(0xFF);
            out.extend_from_slice(&(self.data.len().min(0xFFFF) as u16).to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses APDU bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [class, instr, len, rest @ ..] = bytes else {
            return Err(ApduError::Truncated);
        };
        let (len, rest) = if *len == 0xFF {
            let [lo, hi, rest @ ..] = rest else {
                return Err(ApduError::Truncated);
            };
            (usize::from(u16::from_le_bytes([*lo, *hi])), rest)
        } else {
            (usize::from(*len), rest)
        };
        match rest.len().cmp(&len) {
            std::cmp::Ordering::Less => Err(ApduError::Truncated),
            std::cmp::Ordering::Greater => Err(ApduError::TrailingBytes),
            std::cmp::Ordering::Equal => Ok(Self {
                class: *class,
                instr: *instr,
                data: rest.to_vec(),
            }),
        }
    }
}

/// Field tags of the terminal profile (ZVT bitmap numbers where ZVT has
/// one). Fixed-length fields carry no length; `LL` fields one length byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// `04` amount in yen, 6 bytes BCD (12 digits).
    Amount = 0x04,
    /// `22` card number, masked, LL — card data, never logged.
    MaskedPan = 0x22,
    /// `27` result code, 1 byte ([`ResultCode`]).
    ResultCode = 0x27,
    /// `2A` transaction reference, LL ASCII (1–32).
    Reference = 0x2A,
    /// `3B` authorisation code, 8 bytes ASCII.
    AuthCode = 0x3B,
    /// `3C` receipt text, LL — may carry card data, never logged.
    Receipt = 0x3C,
    /// `8A` card brand, 1 byte.
    Brand = 0x8A,
}

impl Tag {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x04 => Tag::Amount,
            0x22 => Tag::MaskedPan,
            0x27 => Tag::ResultCode,
            0x2A => Tag::Reference,
            0x3B => Tag::AuthCode,
            0x3C => Tag::Receipt,
            0x8A => Tag::Brand,
            _ => return None,
        })
    }

    fn fixed_len(self) -> Option<usize> {
        match self {
            Tag::Amount => Some(6),
            Tag::ResultCode | Tag::Brand => Some(1),
            Tag::AuthCode => Some(8),
            Tag::MaskedPan | Tag::Reference | Tag::Receipt => None,
        }
    }
}

/// Splits APDU data into `(tag, value)` fields.
pub fn parse_fields(mut data: &[u8]) -> Result<Vec<(Tag, Vec<u8>)>, ApduError> {
    let mut fields = Vec::new();
    while let [tag, rest @ ..] = data {
        let tag = Tag::from_byte(*tag).ok_or(ApduError::UnknownTag(*tag))?;
        let (len, rest) = match tag.fixed_len() {
            Some(n) => (n, rest),
            None => {
                let [n, rest @ ..] = rest else {
                    return Err(ApduError::Truncated);
                };
                (usize::from(*n), rest)
            }
        };
        let value = rest.get(..len).ok_or(ApduError::Truncated)?;
        fields.push((tag, value.to_vec()));
        data = &rest[len..];
    }
    Ok(fields)
}

/// Appends one field.
pub fn put_field(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    out.push(tag as u8);
    if tag.fixed_len().is_none() {
        out.push(value.len().min(255) as u8);
        out.extend_from_slice(&value[..value.len().min(255)]);
    } else {
        out.extend_from_slice(value);
    }
}

/// Yen as an integer (no minor unit), at most 12 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Yen(u64);

/// Largest amount the 12-digit BCD field carries.
pub const MAX_YEN: u64 = 999_999_999_999;

impl Yen {
    /// A positive amount that fits the field.
    pub fn new(yen: u64) -> Option<Self> {
        (1..=MAX_YEN).contains(&yen).then_some(Self(yen))
    }

    /// The amount.
    pub fn get(self) -> u64 {
        self.0
    }

    /// 6 bytes packed BCD.
    pub fn to_bcd(self) -> [u8; 6] {
        let mut out = [0u8; 6];
        let mut v = self.0;
        for byte in out.iter_mut().rev() {
            let lo = (v % 10) as u8;
            v /= 10;
            let hi = (v % 10) as u8;
            v /= 10;
            *byte = hi << 4 | lo;
        }
        out
    }

    /// Reads 6 bytes packed BCD.
    pub fn from_bcd(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 6 {
            return None;
        }
        let mut v = 0u64;
        for b in bytes {
            let (hi, lo) = (b >> 4, b & 0x0F);
            if hi > 9 || lo > 9 {
                return None;
            }
            v = v * 100 + u64::from(hi) * 10 + u64::from(lo);
        }
        Self::new(v)
    }
}

impl std::fmt::Display for Yen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "¥{}", self.0)
    }
}

/// A transaction reference: 1–32 of `A–Z a–z 0–9 - _`. It is how the
/// gateway asks the terminal about a sale after a lost response, so it is
/// unique per sale and persisted before the sale is sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaleRef(String);

impl SaleRef {
    /// Validates a reference.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SaleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The terminal's verdict on a transaction (field `27`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// `00` approved / processed.
    Approved,
    /// `05` declined.
    Declined,
    /// `6C` aborted (by the ECR or the customer): not charged.
    Aborted,
    /// `F0` still in progress (status enquiry only).
    InProgress,
    /// `F1` no transaction with this reference (status enquiry only).
    NotFound,
    /// `F2` outcome unknown — 処理未了 (e.g. card taken away too early).
    Unknown,
}

impl ResultCode {
    /// Its byte.
    pub fn byte(self) -> u8 {
        match self {
            ResultCode::Approved => 0x00,
            ResultCode::Declined => 0x05,
            ResultCode::Aborted => 0x6C,
            ResultCode::InProgress => 0xF0,
            ResultCode::NotFound => 0xF1,
            ResultCode::Unknown => 0xF2,
        }
    }

    /// From its byte; any other decline code is a decline.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => ResultCode::Approved,
            0x6C => ResultCode::Aborted,
            0xF0 => ResultCode::InProgress,
            0xF1 => ResultCode::NotFound,
            0xF2 => ResultCode::Unknown,
            _ => ResultCode::Declined,
        }
    }
}

/// Card data returned with a result. It never reaches a log: `Debug`
/// prints only that it is redacted, and no code formats its fields.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CardData {
    /// Masked card number (field `22`).
    pub masked_pan: Vec<u8>,
    /// Receipt text (field `3C`).
    pub receipt: Vec<u8>,
    /// Brand code (field `8A`).
    pub brand: Option<u8>,
}

impl std::fmt::Debug for CardData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardData(<redacted>)")
    }
}

/// ECR → terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `06 01` authorisation (sale).
    Sale {
        /// Amount.
        amount: Yen,
        /// Reference.
        reference: SaleRef,
    },
    /// `06 31` refund: pays `amount` back to the card the customer
    /// presents, under the refund's own reference.
    Refund {
        /// Amount.
        amount: Yen,
        /// The refund's reference (journaled like a sale's).
        reference: SaleRef,
    },
    /// `06 1E` abort the running transaction.
    Abort,
    /// `05 01` status enquiry about a reference.
    StatusEnquiry {
        /// Reference.
        reference: SaleRef,
    },
}

/// Terminal → ECR (and the ECR's own `80 00` acknowledgements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `80 00` positive acknowledgement.
    Ok,
    /// `84 xx` negative acknowledgement with an error code.
    Refused(u8),
    /// `04 0F` status information: a transaction's result.
    Result(TransactionResult),
    /// `06 0F` completion: the dialogue is over.
    Completion,
}

/// The content of a `04 0F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// Verdict.
    pub result: ResultCode,
    /// Reference it concerns.
    pub reference: SaleRef,
    /// Amount, when known.
    pub amount: Option<Yen>,
    /// Authorisation code, when approved.
    pub auth_code: Option<String>,
    /// Card data (redacted in `Debug`).
    pub card: CardData,
}

impl Request {
    /// As an APDU.
    pub fn to_apdu(&self) -> Apdu {
        let mut data = Vec::new();
        let (class, instr) = match self {
            Request::Sale { amount, reference } => {
                put_field(&mut data, Tag::Amount, &amount.to_bcd());
                put_field(&mut data, Tag::Reference, reference.as_str().as_bytes());
                (0x06, 0x01)
            }
            Request::Refund { amount, reference } => {
                put_field(&mut data, Tag::Amount, &amount.to_bcd());
                put_field(&mut data, Tag::Reference, reference.as_str().as_bytes());
                (0x06, 0x31)
            }
            Request::Abort => (0x06, 0x1E),
            Request::StatusEnquiry { reference } => {
                put_field(&mut data, Tag::Reference, reference.as_str().as_bytes());
                (0x05, 0x01)
            }
        };
        Apdu { class, instr, data }
    }

    /// From an APDU.
    pub fn from_apdu(apdu: &Apdu) -> Result<Self, ApduError> {
        let fields = parse_fields(&apdu.data)?;
        let reference = || {
            let (_, v) = fields
                .iter()
                .find(|(t, _)| *t == Tag::Reference)
                .ok_or(ApduError::MissingField(Tag::Reference as u8))?;
            std::str::from_utf8(v)
                .ok()
                .and_then(SaleRef::parse)
                .ok_or(ApduError::InvalidField(Tag::Reference as u8))
        };
        let amount = || {
            let (_, v) = fields
                .iter()
                .find(|(t, _)| *t == Tag::Amount)
                .ok_or(ApduError::MissingField(Tag::Amount as u8))?;
            Yen::from_bcd(v).ok_or(ApduError::InvalidField(Tag::Amount as u8))
        };
        match (apdu.class, apdu.instr) {
            (0x06, 0x01) => Ok(Request::Sale {
                amount: amount()?,
                reference: reference()?,
            }),
            (0x06, 0x31) => Ok(Request::Refund {
                amount: amount()?,
                reference: reference()?,
            }),
            (0x06, 0x1E) => Ok(Request::Abort),
            (0x05, 0x01) => Ok(Request::StatusEnquiry {
                reference: reference()?,
            }),
            (c, i) => Err(ApduError::Unexpected(c, i)),
        }
    }
}

impl Reply {
    /// As an APDU.
    pub fn to_apdu(&self) -> Apdu {
        match self {
            Reply::Ok => Apdu {
                class: 0x80,
                instr: 0x00,
                data: Vec::new(),
            },
            Reply::Refused(code) => Apdu {
                class: 0x84,
                instr: *code,
                data: Vec::new(),
            },
            Reply::Completion => Apdu {
                class: 0x06,
                instr: 0x0F,
                data: Vec::new(),
            },
            Reply::Result(r) => {
                let mut data = Vec::new();
                put_field(&mut data, Tag::ResultCode, &[r.result.byte()]);
                put_field(&mut data, Tag::Reference, r.reference.as_str().as_bytes());
                if let Some(amount) = r.amount {
                    put_field(&mut data, Tag::Amount, &amount.to_bcd());
                }
                if let Some(code) = &r.auth_code {
                    let mut fixed = [b' '; 8];
                    for (slot, b) in fixed.iter_mut().zip(code.bytes()) {
                        *slot = b;
                    }
                    put_field(&mut data, Tag::AuthCode, &fixed);
                }
                if !r.card.masked_pan.is_empty() {
                    put_field(&mut data, Tag::MaskedPan, &r.card.masked_pan);
                }
                if !r.card.receipt.is_empty() {
                    put_field(&mut data, Tag::Receipt, &r.card.receipt);
                }
                if let Some(brand) = r.card.brand {
                    put_field(&mut data, Tag::Brand, &[brand]);
                }
                Apdu {
                    class: 0x04,
                    instr: 0x0F,
                    data,
                }
            }
        }
    }

    /// From an APDU.
    pub fn from_apdu(apdu: &Apdu) -> Result<Self, ApduError> {
        match (apdu.class, apdu.instr) {
            (0x80, 0x00) => Ok(Reply::Ok),
            (0x84, code) => Ok(Reply::Refused(code)),
            (0x06, 0x0F) => Ok(Reply::Completion),
            (0x04, 0x0F) => {
                let mut result = None;
                let mut reference = None;
                let mut amount = None;
                let mut auth_code = None;
                let mut card = CardData::default();
                for (tag, value) in parse_fields(&apdu.data)? {
                    let invalid = ApduError::InvalidField(tag as u8);
                    match tag {
                        Tag::ResultCode => {
                            result = value.first().map(|b| ResultCode::from_byte(*b))
                        }
                        Tag::Reference => {
                            reference = Some(
                                std::str::from_utf8(&value)
                                    .ok()
                                    .and_then(SaleRef::parse)
                                    .ok_or(invalid)?,
                            );
                        }
                        Tag::Amount => amount = Some(Yen::from_bcd(&value).ok_or(invalid)?),
                        Tag::AuthCode => {
                            let text = std::str::from_utf8(&value).map_err(|_| invalid)?;
                            auth_code = Some(text.trim_end().to_owned());
                        }
                        Tag::MaskedPan => card.masked_pan = value,
                        Tag::Receipt => card.receipt = value,
                        Tag::Brand => card.brand = value.first().copied(),
                    }
                }
                Ok(Reply::Result(TransactionResult {
                    result: result.ok_or(ApduError::MissingField(Tag::ResultCode as u8))?,
                    reference: reference.ok_or(ApduError::MissingField(Tag::Reference as u8))?,
                    amount,
                    auth_code,
                    card,
                }))
            }
            (c, i) => Err(ApduError::Unexpected(c, i)),
        }
    }
}
