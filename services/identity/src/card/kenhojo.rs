//! The My Number card's 券面事項入力補助AP (card face input support
//! application): after the 4-digit PIN it yields the number and the four
//! basic facts (name, address, birth date, sex) as text.
//!
//! The command sequence and file layout follow the public
//! implementations `jpki/myna` (Go and Rust) and AokiApp `jsapdu`
//! (`packages/mynacard`): AID `D3 92 10 00 31 00 01 01 04 08`, PIN EF
//! `00 11`, My Number EF `00 01` (`FF 10 0C` + 12 ASCII digits), basic
//! four EF `00 02` (`FF 20` holding `DF 21` offsets, `DF 22` name,
//! `DF 23` address, `DF 24` birth date `YYYYMMDD`, `DF 25` sex), text in
//! UTF-8.
//!
//! The PIN allows 3 tries; the card counts failures (SW `63 Cx`, x tries
//! left) and locks at zero (`69 83`, only the municipality can reset
//! it). The reader asks the card for the remaining tries first (VERIFY
//! without data spends none) and never sends a PIN to a locked card.

use chrono::NaiveDate;
use madoguchi_proto::identity::v1 as pb;

use super::apdu::{Command, Response};
use super::tlv;
use super::{CardTransport, TransportError};
use crate::domain::person::date_to_proto;

/// AID of the 券面事項入力補助AP.
pub const KENHOJO_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// EF of the 券面事項入力補助用 PIN.
pub const EF_PIN: [u8; 2] = [0x00, 0x11];
/// EF of the My Number.
pub const EF_MY_NUMBER: [u8; 2] = [0x00, 0x01];
/// EF of the basic four facts.
pub const EF_BASIC_FOUR: [u8; 2] = [0x00, 0x02];
/// Outer tag of the My Number file.
pub const TAG_MY_NUMBER: u32 = 0xFF10;
/// Outer tag of the basic four file.
pub const TAG_BASIC_FOUR: u32 = 0xFF20;
/// Inner tags of the basic four file.
pub const TAG_OFFSETS: u32 = 0xDF21;
/// Name (氏名).
pub const TAG_NAME: u32 = 0xDF22;
/// Address (住所).
pub const TAG_ADDRESS: u32 = 0xDF23;
/// Birth date (生年月日), `YYYYMMDD`.
pub const TAG_BIRTH: u32 = 0xDF24;
/// Sex (性別): `1` male, `2` female, `3` not specified.
pub const TAG_SEX: u32 = 0xDF25;

const SW_OK: u16 = 0x9000;
const SW_BLOCKED: u16 = 0x6983;

/// What the card face says.
#[derive(Clone, PartialEq, Eq)]
pub struct CardFace {
    /// 氏名 as printed.
    pub name: String,
    /// 住所 as printed.
    pub address: String,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// ISO/IEC 5218 code.
    pub sex: i32,
    /// The 12 digits.
    pub my_number: String,
}

impl std::fmt::Debug for CardFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Personal data; only its shape is shown.
        f.debug_struct("CardFace").finish_non_exhaustive()
    }
}

impl CardFace {
    /// The `CardData` a staff client submits.
    pub fn to_proto(&self) -> pb::CardData {
        pb::CardData {
            full_name: self.name.clone(),
            address: self.address.clone(),
            birth_date: Some(date_to_proto(self.birth_date)),
            sex: self.sex,
            my_number: self.my_number.clone(),
            expiry_date: None,
            licence_number: String::new(),
        }
    }
}

/// The card said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardRefusal {
    /// Not a My Number card (the AP is missing).
    #[error("the card has no 券面事項入力補助AP")]
    NoApplication,
    /// A wrong PIN; `remaining` tries are left before the lock.
    #[error("wrong pin, {remaining} tries left")]
    WrongPin {
        /// Tries left.
        remaining: u8,
    },
    /// The PIN is locked; the resident must have it reset at the counter
    /// for My Number cards.
    #[error("the pin is locked")]
    Locked,
    /// The PIN is not 4 digits; nothing was sent to the card.
    #[error("the pin must be 4 digits")]
    PinFormat,
}

/// Reading failed for another reason than the card's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    /// The link failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered a status the sequence does not expect.
    #[error("unexpected status {sw:04X} after {step}")]
    Status {
        /// Which command.
        step: &'static str,
        /// The status word.
        sw: u16,
    },
    /// The card's data does not have the documented layout.
    #[error("malformed card data: {0}")]
    Malformed(String),
}

/// Reads the 券面事項入力補助AP over a transport.
#[derive(Debug)]
pub struct KenhojoReader<T> {
    transport: T,
}

impl<T: CardTransport> KenhojoReader<T> {
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

    /// Selects the AP and the PIN EF and asks how many tries are left.
    pub fn remaining_tries(&mut self) -> Result<Result<u8, CardRefusal>, ReaderError> {
        let select = self.send(&Command::select_df(&KENHOJO_AID), "select ap")?;
        match select.sw {
            SW_OK => {}
            0x6A82 => return Ok(Err(CardRefusal::NoApplication)),
            sw => {
                return Err(ReaderError::Status {
                    step: "select ap",
                    sw,
                });
            }
        }
        self.expect_ok(&Command::select_ef(EF_PIN), "select pin ef")?;
        let status = self.send(&Command::verify(None), "verify (status)")?;
        match status.sw {
            sw if sw & 0xFFF0 == 0x63C0 => {
                let remaining = (sw & 0x000F) as u8;
                Ok(if remaining == 0 {
                    Err(CardRefusal::Locked)
                } else {
                    Ok(remaining)
                })
            }
            SW_BLOCKED => Ok(Err(CardRefusal::Locked)),
            // Some cards answer 9000 when no try has failed yet.
            SW_OK => Ok(Ok(3)),
            sw => Err(ReaderError::Status {
                step: "verify (status)",
                sw,
            }),
        }
    }

    /// The whole sequence: select, check tries, verify the PIN, read the
    /// number and the basic four.
    pub fn read(&mut self, pin: &str) -> Result<Result<CardFace, CardRefusal>, ReaderError> {
        if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Err(CardRefusal::PinFormat));
        }
        if let Err(refusal) = self.remaining_tries()? {
            return Ok(Err(refusal));
        }
        let verify = self.send(&Command::verify(Some(pin.as_bytes())), "verify")?;
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

        self.expect_ok(&Command::select_ef(EF_MY_NUMBER), "select my number ef")?;
        let file = self.read_element()?;
        let (element, _) = tlv::parse(&file).map_err(|e| ReaderError::Malformed(e.to_string()))?;
        if element.tag != TAG_MY_NUMBER {
            return Err(ReaderError::Malformed("my number file tag".into()));
        }
        let my_number = std::str::from_utf8(element.value)
            .ok()
            .filter(|n| n.len() == 12 && n.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ReaderError::Malformed("my number is not 12 digits".into()))?
            .to_owned();

        self.expect_ok(&Command::select_ef(EF_BASIC_FOUR), "select basic four ef")?;
        let file = self.read_element()?;
        let face = parse_basic_four(&file, my_number)?;
        Ok(Ok(face))
    }

    /// Reads the TLV element that fills the current EF: first five bytes
    /// (the longest header this AP uses), then the rest in chunks of at
    /// most 255 bytes.
    fn read_element(&mut self) -> Result<Vec<u8>, ReaderError> {
        let mut bytes = self
            .expect_ok(&Command::read_binary(0, 5), "read binary")?
            .data;
        let (_, header_len, length) =
            tlv::header(&bytes).map_err(|e| ReaderError::Malformed(e.to_string()))?;
        let total = header_len + length;
        while bytes.len() < total {
            let offset = u16::try_from(bytes.len())
                .map_err(|_| ReaderError::Malformed("file too long".into()))?;
            let want = (total - bytes.len()).min(0xFF) as u8;
            let chunk = self
                .expect_ok(&Command::read_binary(offset, want), "read binary")?
                .data;
            if chunk.is_empty() {
                return Err(ReaderError::Malformed("file ends early".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        bytes.truncate(total);
        Ok(bytes)
    }
}

fn parse_basic_four(file: &[u8], my_number: String) -> Result<CardFace, ReaderError> {
    let malformed = |what: &str| ReaderError::Malformed(what.to_owned());
    let (outer, _) = tlv::parse(file).map_err(|e| ReaderError::Malformed(e.to_string()))?;
    if outer.tag != TAG_BASIC_FOUR {
        return Err(malformed("basic four file tag"));
    }
    let children =
        tlv::parse_all(outer.value).map_err(|e| ReaderError::Malformed(e.to_string()))?;
    let text = |tag: u32, what: &str| -> Result<String, ReaderError> {
        let element = children
            .iter()
            .find(|c| c.tag == tag)
            .ok_or_else(|| malformed(what))?;
        String::from_utf8(element.value.to_vec()).map_err(|_| malformed(what))
    };
    let birth = text(TAG_BIRTH, "birth date")?;
    let birth_date =
        NaiveDate::parse_from_str(birth.trim(), "%Y%m%d").map_err(|_| malformed("birth date"))?;
    let sex = match text(TAG_SEX, "sex")?.trim() {
        "1" => 1,
        "2" => 2,
        _ => 0,
    };
    Ok(CardFace {
        name: text(TAG_NAME, "name")?.trim().to_owned(),
        address: text(TAG_ADDRESS, "address")?.trim().to_owned(),
        birth_date,
        sex,
        my_number,
    })
}
