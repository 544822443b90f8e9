//! The IC driver's licence (運転免許証) read over a [`CardTransport`]: the
//! sequence of 警察庁「運転免許証及び運転免許証作成システム等仕様書」 as
//! the public implementations read it (byte-level description with hex in
//! `docs/devices/drivers-licence.md`):
//!
//! 1. `SELECT` the MF (`00 A4 00 00`), `SELECT` its EF `2F 01` (共通データ
//!    要素) and `READ BINARY` 17 bytes: spec version, issue and expiry date;
//! 2. `VERIFY` of PIN1 (reference `81`) without data: `63 Cx` tells the
//!    tries left (3 on a fresh card), spending none; a locked PIN is never
//!    sent a guess;
//! 3. `VERIFY` PIN1 with its 4 digits (JIS X 0201, i.e. ASCII);
//! 4. `SELECT` DF1 by its AID `A0 00 00 02 31 01 00 … 00` (16 bytes),
//!    `SELECT` its EF `00 01` (記載事項（本籍除く）, 880 bytes) and
//!    `READ BINARY` it in chunks;
//! 5. parse its elements — one-byte tag, one-byte length — and decode the
//!    text fields from JIS X 0208 (two bytes per character, no escape
//!    sequences on the card) and the dates from `era digit + YYMMDD`.
//!
//! PIN2 (本籍 and the photo) is never asked for: the counter needs the
//! face data only.

use std::borrow::Cow;

use chrono::NaiveDate;
use madoguchi_platform::wareki::{Era, WarekiDate};
use unicode_normalization::UnicodeNormalization;

use super::apdu::{Command, Response};
use super::kenhojo::{CardRefusal, ReaderError};
use super::licence::LicenceFace;
use super::{CardTransport, TransportError};

/// EF of the MF holding the common data (共通データ要素).
pub const EF_COMMON: [u8; 2] = [0x2F, 0x01];
/// Size of the common data file.
pub const COMMON_LEN: u8 = 0x11;
/// VERIFY reference (P2) of PIN1 (暗証番号1).
pub const PIN1: u8 = 0x81;
/// VERIFY reference (P2) of PIN2 (暗証番号2); not used by the reader.
pub const PIN2: u8 = 0x82;
/// AID of DF1 (記載事項).
pub const DF1_AID: [u8; 16] = [
    0xA0, 0x00, 0x00, 0x02, 0x31, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
/// EF of DF1 with the entries on the face (記載事項（本籍除く）).
pub const EF_ENTRIES: [u8; 2] = [0x00, 0x01];
/// Size of the entries file.
pub const ENTRIES_LEN: u16 = 880;

/// JIS X 0208 制定年番号 (which edition the text uses).
pub const TAG_JIS_EDITION: u8 = 0x11;
/// 氏名, JIS X 0208.
pub const TAG_NAME: u8 = 0x12;
/// 呼び名 (reading), JIS X 0208.
pub const TAG_READING: u8 = 0x13;
/// 生年月日, era digit + YYMMDD in JIS X 0201.
pub const TAG_BIRTH: u8 = 0x16;
/// 住所, JIS X 0208.
pub const TAG_ADDRESS: u8 = 0x17;
/// 交付年月日, era digit + YYMMDD.
pub const TAG_ISSUED: u8 = 0x18;
/// 有効期間の末日, era digit + YYMMDD.
pub const TAG_EXPIRY: u8 = 0x1B;
/// 公安委員会名, JIS X 0208.
pub const TAG_COMMISSION: u8 = 0x20;
/// 免許証の番号, 12 digits in JIS X 0201.
pub const TAG_NUMBER: u8 = 0x21;
/// The last tag of the entries file the public implementations know
/// (免許の年月日 of the last licence class); parsing stops after it or
/// at the first byte that is no known tag (the file's unused tail).
pub const TAG_LAST: u8 = 0x33;

const SW_OK: u16 = 0x9000;
const SW_BLOCKED: u16 = 0x6983;
const SW_NOT_FOUND: u16 = 0x6A82;

/// What the licence's IC holds of the face, plus the common data.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenceRead {
    /// The face entries.
    pub face: LicenceFace,
    /// The reading of the name (呼び名), if recorded.
    pub reading: String,
    /// 交付年月日.
    pub issued_on: NaiveDate,
    /// 公安委員会名, e.g. 岩手県公安委員会.
    pub commission: String,
    /// The specification version the card was issued under, e.g. "008".
    pub spec_version: String,
}

impl std::fmt::Debug for LicenceRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Personal data; only the spec version is shown.
        f.debug_struct("LicenceRead")
            .field("spec_version", &self.spec_version)
            .finish_non_exhaustive()
    }
}

/// Reads an IC driver's licence over a transport.
#[derive(Debug)]
pub struct LicenceReader<T> {
    transport: T,
}

impl<T: CardTransport> LicenceReader<T> {
    /// A reader over `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    fn send(&mut self, command: &Command, step: &'static str) -> Result<Response, ReaderError> {
        let bytes = self.transport.transmit(&command.to_bytes())?;
        Response::parse(&bytes).ok_or(ReaderError::Status { step, sw: 0 })
    }

    fn expect_ok(
        &mut self,
        command: &Command,
        step: &'static str,
    ) -> Result<Response, ReaderError> {
        let response = self.send(command, step)?;
        if response.sw == SW_OK {
            Ok(response)
        } else {
            Err(ReaderError::Status {
                step,
                sw: response.sw,
            })
        }
    }

    /// Selects the MF, reads the common data and asks how many PIN1
    /// tries are left (spending none).
    fn common_and_tries(&mut self) -> Result<Result<(Common, u8), CardRefusal>, ReaderError> {
        let select = self.send(&Command::select_mf(), "select mf")?;
        match select.sw {
            SW_OK => {}
            SW_NOT_FOUND => return Ok(Err(CardRefusal::NoApplication)),
            sw => {
                return Err(ReaderError::Status {
                    step: "select mf",
                    sw,
                });
            }
        }
        match self
            .send(&Command::select_ef(EF_COMMON), "select common data")?
            .sw
        {
            SW_OK => {}
            SW_NOT_FOUND => return Ok(Err(CardRefusal::NoApplication)),
            sw => {
                return Err(ReaderError::Status {
                    step: "select common data",
                    sw,
                });
            }
        }
        let common = self
            .expect_ok(&Command::read_binary(0, COMMON_LEN), "read common data")?
            .data;
        let common = parse_common(&common)?;
        let status = self.send(&Command::verify_reference(PIN1, None), "verify (status)")?;
        let tries = match status.sw {
            sw if sw & 0xFFF0 == 0x63C0 => (sw & 0x000F) as u8,
            SW_BLOCKED => 0,
            // A card that has never seen a wrong PIN may answer 9000.
            SW_OK => 3,
            sw => {
                return Err(ReaderError::Status {
                    step: "verify (status)",
                    sw,
                });
            }
        };
        Ok(if tries == 0 {
            Err(CardRefusal::Locked)
        } else {
            Ok((common, tries))
        })
    }

    /// PIN1 tries left, without spending one.
    pub fn remaining_tries(&mut self) -> Result<Result<u8, CardRefusal>, ReaderError> {
        Ok(self.common_and_tries()?.map(|(_, tries)| tries))
    }

    /// The whole sequence with PIN1 (4 digits).
    pub fn read(&mut self, pin1: &str) -> Result<Result<LicenceRead, CardRefusal>, ReaderError> {
        if pin1.len() != 4 || !pin1.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Err(CardRefusal::PinFormat));
        }
        let common = match self.common_and_tries()? {
            Ok((common, _)) => common,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let verify = self.send(
            &Command::verify_reference(PIN1, Some(pin1.as_bytes())),
            "verify",
        )?;
        match verify.sw {
            SW_OK => {}
            sw if sw & 0xFFF0 == 0x63C0 => {
                let remaining = (sw & 0x000F) as u8;
                return Ok(Err(if remaining == 0 {
                    CardRefusal::Locked
                } else {
                    CardRefusal::WrongPin { remaining }
                }));
            }
            SW_BLOCKED => return Ok(Err(CardRefusal::Locked)),
            sw => return Err(ReaderError::Status { step: "verify", sw }),
        }
        self.expect_ok(&Command::select_df(&DF1_AID), "select df1")?;
        self.expect_ok(&Command::select_ef(EF_ENTRIES), "select entries")?;
        let mut file = Vec::with_capacity(usize::from(ENTRIES_LEN));
        while file.len() < usize::from(ENTRIES_LEN) {
            let offset = u16::try_from(file.len())
                .map_err(|_| ReaderError::Malformed("file too long".into()))?;
            let want = (usize::from(ENTRIES_LEN) - file.len()).min(0xFF) as u8;
            let chunk = self
                .expect_ok(&Command::read_binary(offset, want), "read entries")?
                .data;
            if chunk.is_empty() {
                break;
            }
            file.extend_from_slice(&chunk);
        }
        parse_entries(&file, common).map(Ok)
    }
}

/// The common data file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Common {
    spec_version: String,
    expiry: Option<NaiveDate>,
}

/// `tag, 0B, version (3 ASCII), issued (4 BCD YYYYMMDD), expiry (4 BCD)`.
fn parse_common(bytes: &[u8]) -> Result<Common, ReaderError> {
    let malformed = || ReaderError::Malformed("common data".into());
    let [_tag, len, rest @ ..] = bytes else {
        return Err(malformed());
    };
    let value = rest.get(..usize::from(*len)).ok_or_else(malformed)?;
    if value.len() < 11 {
        return Err(malformed());
    }
    let spec_version = std::str::from_utf8(&value[..3])
        .map_err(|_| malformed())?
        .to_owned();
    Ok(Common {
        spec_version,
        expiry: bcd_date(&value[7..11]),
    })
}

fn bcd_date(bytes: &[u8]) -> Option<NaiveDate> {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    NaiveDate::parse_from_str(&digits, "%Y%m%d").ok()
}

/// The elements of the entries file: one-byte tag, one-byte length.
pub fn elements(file: &[u8]) -> Result<Vec<(u8, &[u8])>, ReaderError> {
    let mut out = Vec::new();
    let mut rest = file;
    while let [tag, len, tail @ ..] = rest {
        if !(TAG_JIS_EDITION..=TAG_LAST).contains(tag) {
            break;
        }
        let value = tail
            .get(..usize::from(*len))
            .ok_or_else(|| ReaderError::Malformed(format!("element {tag:02X} is truncated")))?;
        out.push((*tag, value));
        rest = &tail[usize::from(*len)..];
        if *tag == TAG_LAST {
            break;
        }
    }
    Ok(out)
}

/// Decodes JIS X 0208 bytes (row and cell, 0x21..=0x7E each) as the card
/// stores them: wrapped in the ISO-2022-JP escapes `ESC $ B … ESC ( B`
/// so that `encoding_rs`'s decoder reads them. NFKC folds the full-width
/// digits, Latin letters and the ideographic space into the forms the
/// registry writes.
pub fn decode_jis_x0208(bytes: &[u8]) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) || !bytes.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err("not jis x 0208 text (an external character, 外字?)".into());
    }
    let mut wrapped = Vec::with_capacity(bytes.len() + 6);
    wrapped.extend_from_slice(b"\x1b$B");
    wrapped.extend_from_slice(bytes);
    wrapped.extend_from_slice(b"\x1b(B");
    let (text, errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&wrapped);
    if errors {
        return Err("a character outside jis x 0208 (外字)".into());
    }
    Ok(text.nfkc().collect::<String>().trim().to_owned())
}

/// Encodes text as JIS X 0208 bytes without escapes (for the simulated
/// licence): ASCII is first widened, as the licence prints it.
pub fn encode_jis_x0208(text: &str) -> Result<Vec<u8>, String> {
    let wide: String = text
        .chars()
        .map(|c| match c {
            ' ' => '\u{3000}',
            '!'..='~' => char::from_u32(u32::from(c) - 0x21 + 0xFF01).unwrap_or(c),
            other => other,
        })
        .collect();
    let (bytes, _, errors) = encoding_rs::ISO_2022_JP.encode(&wide);
    if errors {
        return Err("text outside jis x 0208".into());
    }
    let bytes: Cow<'_, [u8]> = bytes;
    let inner = bytes
        .strip_prefix(b"\x1b$B")
        .and_then(|b| b.strip_suffix(b"\x1b(B"))
        .unwrap_or(&bytes);
    if inner.contains(&0x1b) || !inner.len().is_multiple_of(2) {
        return Err("text outside jis x 0208".into());
    }
    Ok(inner.to_vec())
}

/// `era digit + YYMMDD`: 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和.
pub fn decode_date(bytes: &[u8]) -> Result<NaiveDate, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not ascii".to_owned())?;
    if text.len() != 7 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "not an era digit and yymmdd: {} bytes",
            bytes.len()
        ));
    }
    let era = match &text[..1] {
        "1" => Era::Meiji,
        "2" => Era::Taisho,
        "3" => Era::Showa,
        "4" => Era::Heisei,
        "5" => Era::Reiwa,
        _ => return Err("unknown era digit".into()),
    };
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
    WarekiDate::new(era, number(1..3), number(3..5), number(5..7))
        .map(WarekiDate::to_gregorian)
        .map_err(|e| e.to_string())
}

/// The inverse of [`decode_date`] (for the simulated licence).
pub fn encode_date(date: NaiveDate) -> Result<Vec<u8>, String> {
    let wareki = WarekiDate::from_gregorian(date).map_err(|e| e.to_string())?;
    let digit = match wareki.era() {
        Era::Meiji => 1,
        Era::Taisho => 2,
        Era::Showa => 3,
        Era::Heisei => 4,
        Era::Reiwa => 5,
    };
    Ok(format!(
        "{digit}{:02}{:02}{:02}",
        wareki.year(),
        chrono::Datelike::month(&date),
        chrono::Datelike::day(&date)
    )
    .into_bytes())
}

fn parse_entries(file: &[u8], common: Common) -> Result<LicenceRead, ReaderError> {
    let malformed = |what: &str, why: String| ReaderError::Malformed(format!("{what}: {why}"));
    let elements = elements(file)?;
    let get = |tag: u8, what: &str| -> Result<&[u8], ReaderError> {
        elements
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| *v)
            .ok_or_else(|| ReaderError::Malformed(format!("{what} missing")))
    };
    let text = |tag: u8, what: &str| -> Result<String, ReaderError> {
        decode_jis_x0208(get(tag, what)?).map_err(|e| malformed(what, e))
    };
    let date = |tag: u8, what: &str| -> Result<NaiveDate, ReaderError> {
        decode_date(get(tag, what)?).map_err(|e| malformed(what, e))
    };
    let number = std::str::from_utf8(get(TAG_NUMBER, "licence number")?)
        .map_err(|_| ReaderError::Malformed("licence number".into()))?
        .to_owned();
    super::licence::check_licence_number(&number).map_err(|e| malformed("licence number", e))?;
    let expiry_date = date(TAG_EXPIRY, "expiry date")?;
    if common.expiry.is_some_and(|c| c != expiry_date) {
        // The common data's expiry is the IC's own; a mismatch means the
        // entries are not the card's.
        return Err(ReaderError::Malformed(
            "expiry differs between common data and entries".into(),
        ));
    }
    let reading = match elements.iter().find(|(t, _)| *t == TAG_READING) {
        Some((_, v)) if !v.is_empty() => {
            decode_jis_x0208(v).map_err(|e| malformed("reading", e))?
        }
        _ => String::new(),
    };
    Ok(LicenceRead {
        face: LicenceFace {
            name: text(TAG_NAME, "name")?,
            address: text(TAG_ADDRESS, "address")?,
            birth_date: date(TAG_BIRTH, "birth date")?,
            expiry_date,
            licence_number: number,
        },
        reading,
        issued_on: date(TAG_ISSUED, "issue date")?,
        commission: text(TAG_COMMISSION, "commission")?,
        spec_version: common.spec_version,
    })
}

/// A simulated IC licence: MF with the common data and PIN1 (3 tries,
/// then locked), DF1 with the entries file, answering APDUs as the card
/// does. Tests and demos use it as the [`CardTransport`].
#[derive(Debug, Clone)]
pub struct SimulatedLicence {
    pin1: String,
    tries_left: u8,
    verified: bool,
    in_df1: bool,
    current_ef: Option<[u8; 2]>,
    common: Vec<u8>,
    entries: Vec<u8>,
    removed: bool,
    /// Every command received, for tests that check the sequence.
    pub log: Vec<Vec<u8>>,
}

/// One element as the entries file stores it.
fn element(tag: u8, value: &[u8]) -> Result<Vec<u8>, String> {
    let len = u8::try_from(value.len()).map_err(|_| format!("element {tag:02X} too long"))?;
    let mut out = vec![tag, len];
    out.extend_from_slice(value);
    Ok(out)
}

impl SimulatedLicence {
    /// A licence with `read`'s data, PIN1 `pin1`.
    pub fn new(read: &LicenceRead, pin1: &str) -> Result<Self, String> {
        let face = &read.face;
        let bcd = |date: NaiveDate| -> Vec<u8> {
            let digits = date.format("%Y%m%d").to_string().into_bytes();
            digits
                .chunks(2)
                .map(|pair| ((pair[0] - b'0') << 4) | (pair[1] - b'0'))
                .collect()
        };
        let mut value = read.spec_version.as_bytes().to_vec();
        value.resize(3, b'0');
        value.extend(bcd(read.issued_on));
        value.extend(bcd(face.expiry_date));
        // The common data element: its tag byte is not needed by the
        // reader (see the document), 0x45 here.
        let mut common = element(0x45, &value)?;
        common.resize(usize::from(COMMON_LEN), 0x00);
        let mut entries = Vec::new();
        entries.extend(element(TAG_JIS_EDITION, &[0x31, 0x39, 0x39, 0x37])?);
        entries.extend(element(TAG_NAME, &encode_jis_x0208(&face.name)?)?);
        entries.extend(element(TAG_READING, &encode_jis_x0208(&read.reading)?)?);
        entries.extend(element(TAG_BIRTH, &encode_date(face.birth_date)?)?);
        entries.extend(element(TAG_ADDRESS, &encode_jis_x0208(&face.address)?)?);
        entries.extend(element(TAG_ISSUED, &encode_date(read.issued_on)?)?);
        entries.extend(element(0x19, b"12345")?);
        entries.extend(element(0x1A, &encode_jis_x0208("優良")?)?);
        entries.extend(element(TAG_EXPIRY, &encode_date(face.expiry_date)?)?);
        for condition in 0x1C..=0x1F {
            entries.extend(element(condition, &[])?);
        }
        entries.extend(element(
            TAG_COMMISSION,
            &encode_jis_x0208(&read.commission)?,
        )?);
        entries.extend(element(TAG_NUMBER, face.licence_number.as_bytes())?);
        for class in 0x22..=TAG_LAST {
            entries.extend(element(class, b"0000000")?);
        }
        if entries.len() > usize::from(ENTRIES_LEN) {
            return Err("entries longer than the file".into());
        }
        entries.resize(usize::from(ENTRIES_LEN), 0xFF);
        Ok(Self {
            pin1: pin1.to_owned(),
            tries_left: 3,
            verified: false,
            in_df1: false,
            current_ef: None,
            common,
            entries,
            removed: false,
            log: Vec::new(),
        })
    }

    /// PIN1 tries left.
    pub fn tries_left(&self) -> u8 {
        self.tries_left
    }

    /// Pulls the card from the reader: later commands fail in the link.
    pub fn remove(&mut self) {
        self.removed = true;
    }

    fn answer(&mut self, command: &Command) -> Vec<u8> {
        if command.cla != 0x00 {
            return Response::status(0x6E00);
        }
        match command.ins {
            super::apdu::INS_SELECT => self.select(command),
            super::apdu::INS_VERIFY => self.verify(command),
            super::apdu::INS_READ_BINARY => self.read_binary(command),
            _ => Response::status(0x6D00),
        }
    }

    fn select(&mut self, command: &Command) -> Vec<u8> {
        match (command.p1, command.p2) {
            (0x00, 0x00) if command.data.is_empty() => {
                self.in_df1 = false;
                self.current_ef = None;
                Response::status(SW_OK)
            }
            (0x04, 0x0C) => {
                if command.data == DF1_AID {
                    self.in_df1 = true;
                    self.current_ef = None;
                    Response::status(SW_OK)
                } else {
                    Response::status(SW_NOT_FOUND)
                }
            }
            (0x02, 0x0C) => {
                let Ok(fid) = <[u8; 2]>::try_from(command.data.as_slice()) else {
                    return Response::status(0x6700);
                };
                let exists = if self.in_df1 {
                    fid == EF_ENTRIES
                } else {
                    fid == EF_COMMON
                };
                if exists {
                    self.current_ef = Some(fid);
                    Response::status(SW_OK)
                } else {
                    Response::status(SW_NOT_FOUND)
                }
            }
            _ => Response::status(0x6A86),
        }
    }

    fn verify(&mut self, command: &Command) -> Vec<u8> {
        if self.in_df1 || command.p2 != PIN1 {
            // PIN2 and verifying inside DF1 are outside this simulation.
            return Response::status(0x6A88);
        }
        if self.tries_left == 0 {
            return Response::status(SW_BLOCKED);
        }
        if command.data.is_empty() {
            return Response::status(0x63C0 | u16::from(self.tries_left));
        }
        if command.data.len() != 4 {
            return Response::status(0x6700);
        }
        if command.data == self.pin1.as_bytes() {
            self.tries_left = 3;
            self.verified = true;
            Response::status(SW_OK)
        } else {
            self.tries_left -= 1;
            self.verified = false;
            Response::status(0x63C0 | u16::from(self.tries_left))
        }
    }

    fn read_binary(&mut self, command: &Command) -> Vec<u8> {
        let file = match self.current_ef {
            Some(EF_COMMON) if !self.in_df1 => &self.common,
            Some(EF_ENTRIES) if self.in_df1 => {
                if !self.verified {
                    // Security status not satisfied.
                    return Response::status(0x6982);
                }
                &self.entries
            }
            _ => return Response::status(0x6986),
        };
        let offset = (usize::from(command.p1 & 0x7F) << 8) | usize::from(command.p2);
        if offset > file.len() {
            return Response::status(0x6B00);
        }
        let want = match command.le {
            Some(0) | None => 256,
            Some(n) => usize::from(n),
        };
        let end = (offset + want).min(file.len());
        let mut out = file[offset..end].to_vec();
        out.extend(Response::status(SW_OK));
        out
    }
}

impl CardTransport for SimulatedLicence {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.removed {
            return Err(TransportError("card removed".into()));
        }
        self.log.push(command.to_vec());
        match Command::parse(command) {
            Some(parsed) => Ok(self.answer(&parsed)),
            None => Ok(Response::status(0x6700)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("date"))
    }

    fn tsuruko() -> LicenceRead {
        LicenceRead {
            face: LicenceFace {
                name: "おくやみ つる子".into(),
                address: "宮城県仙台市青葉区国分町3丁目7番1号".into(),
                birth_date: day(1972, 10, 31),
                expiry_date: day(2028, 11, 30),
                licence_number: "221234567890".into(),
            },
            reading: String::new(),
            issued_on: day(2023, 10, 2),
            commission: "宮城県公安委員会".into(),
            spec_version: "008".into(),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn reads_the_face_with_the_documented_commands() {
        let mut card = SimulatedLicence::new(&tsuruko(), "1357").unwrap_or_else(|e| panic!("{e}"));
        let read = LicenceReader::new(&mut card)
            .read("1357")
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.face, tsuruko().face);
        assert_eq!(read.commission, "宮城県公安委員会");
        assert_eq!(read.issued_on, day(2023, 10, 2));
        assert_eq!(read.spec_version, "008");
        // The hex in docs/devices/drivers-licence.md.
        let log: Vec<String> = card.log.iter().map(|c| hex(c)).collect();
        assert_eq!(
            log,
            [
                "00 A4 00 00",
                "00 A4 02 0C 02 2F 01",
                "00 B0 00 00 11",
                "00 20 00 81",
                "00 20 00 81 04 31 33 35 37",
                "00 A4 04 0C 10 A0 00 00 02 31 01 00 00 00 00 00 00 00 00 00 00",
                "00 A4 02 0C 02 00 01",
                "00 B0 00 00 FF",
                "00 B0 00 FF FF",
                "00 B0 01 FE FF",
                "00 B0 02 FD 73",
            ]
        );
        assert_eq!(card.tries_left(), 3);
        let data = read.face.to_proto().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.full_name, "おくやみ つる子");
        assert_eq!(data.address, "宮城県仙台市青葉区国分町3丁目7番1号");
    }

    #[test]
    fn wrong_pins_count_down_to_the_lock() {
        let mut card = SimulatedLicence::new(&tsuruko(), "1357").unwrap_or_else(|e| panic!("{e}"));
        for remaining in [2, 1] {
            let refusal = LicenceReader::new(&mut card)
                .read("0000")
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(refusal, Err(CardRefusal::WrongPin { remaining }));
        }
        assert_eq!(
            LicenceReader::new(&mut card).read("0000"),
            Ok(Err(CardRefusal::Locked))
        );
        let sent = card.log.len();
        // Locked: even the right PIN is not sent any more.
        assert_eq!(
            LicenceReader::new(&mut card).read("1357"),
            Ok(Err(CardRefusal::Locked))
        );
        assert!(
            card.log[sent..]
                .iter()
                .all(|c| !(c.len() > 4 && c[1] == 0x20)),
            "no guess is sent to a locked pin"
        );
        assert_eq!(
            LicenceReader::new(&mut card).read("12a4"),
            Ok(Err(CardRefusal::PinFormat))
        );
    }

    #[test]
    fn a_right_pin_resets_the_counter_and_a_removed_card_is_a_transport_error() {
        let mut card = SimulatedLicence::new(&tsuruko(), "1357").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            LicenceReader::new(&mut card)
                .read("9999")
                .map(|r| r.is_err()),
            Ok(true)
        );
        assert_eq!(LicenceReader::new(&mut card).remaining_tries(), Ok(Ok(2)));
        assert!(matches!(
            LicenceReader::new(&mut card).read("1357"),
            Ok(Ok(_))
        ));
        assert_eq!(card.tries_left(), 3);
        card.remove();
        assert!(matches!(
            LicenceReader::new(&mut card).read("1357"),
            Err(ReaderError::Transport(_))
        ));
    }

    #[test]
    fn jis_x0208_and_era_dates() {
        // 大 is row 0x42 cell 0x67 in JIS X 0208; the ideographic space is
        // 21 21; full-width digits fold to ASCII.
        assert_eq!(decode_jis_x0208(&[0x42, 0x67]), Ok("大".to_owned()));
        let bytes = encode_jis_x0208("盛 健太 3番").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&bytes[2..4], &[0x21, 0x21]);
        assert_eq!(decode_jis_x0208(&bytes), Ok("盛 健太 3番".to_owned()));
        assert!(decode_jis_x0208(&[0x42]).is_err(), "odd length");
        assert!(
            decode_jis_x0208(&[0x1B, 0x28]).is_err(),
            "no escapes inside"
        );
        assert!(encode_jis_x0208("😀").is_err());
        assert_eq!(decode_date(b"3471031"), Ok(day(1972, 10, 31)));
        assert_eq!(decode_date(b"5010501"), Ok(day(2019, 5, 1)));
        assert_eq!(decode_date(b"4310430"), Ok(day(2019, 4, 30)));
        assert!(
            decode_date(b"4310501").is_err(),
            "平成31年5月1日 does not exist"
        );
        assert!(decode_date(b"0000000").is_err(), "a class not held");
        assert!(decode_date(b"347103").is_err());
        assert_eq!(encode_date(day(1972, 10, 31)), Ok(b"3471031".to_vec()));
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let mut card = SimulatedLicence::new(&tsuruko(), "1357").unwrap_or_else(|e| panic!("{e}"));
        // Truncate the name element's value.
        card.entries[7] = 0xF0;
        assert!(matches!(
            LicenceReader::new(&mut card).read("1357"),
            Err(ReaderError::Malformed(_))
        ));
        for garbage in [&[][..], &[0x12], &[0x12, 0x05, 0x42]] {
            assert!(elements(garbage).map(|e| e.len() <= 1).unwrap_or(true));
        }
    }
}
