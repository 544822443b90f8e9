//! ISO/IEC 7816-4 command and response APDUs, short form only (every
//! command of the 券面事項入力補助AP fits: data ≤ 255 bytes, Le ≤ 256).

/// A command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte; 0x00 for interindustry commands.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc is its length).
    pub data: Vec<u8>,
    /// Expected response length; `Some(0)` means 256.
    pub le: Option<u8>,
}

/// INS of SELECT FILE.
pub const INS_SELECT: u8 = 0xA4;
/// INS of VERIFY.
pub const INS_VERIFY: u8 = 0x20;
/// INS of READ BINARY.
pub const INS_READ_BINARY: u8 = 0xB0;

impl Command {
    /// SELECT FILE by DF name (AID), no response data (P1=04, P2=0C).
    pub fn select_df(aid: &[u8]) -> Self {
        Self {
            cla: 0x00,
            ins: INS_SELECT,
            p1: 0x04,
            p2: 0x0C,
            data: aid.to_vec(),
            le: None,
        }
    }

    /// SELECT FILE of an EF under the current DF by file id (P1=02, P2=0C).
    pub fn select_ef(fid: [u8; 2]) -> Self {
        Self {
            cla: 0x00,
            ins: INS_SELECT,
            p1: 0x02,
            p2: 0x0C,
            data: fid.to_vec(),
            le: None,
        }
    }

    /// VERIFY against the currently selected PIN EF (P2=80). Without data
    /// it asks for the remaining tries (answer 63Cx) and spends none.
    pub fn verify(pin: Option<&[u8]>) -> Self {
        Self {
            cla: 0x00,
            ins: INS_VERIFY,
            p1: 0x00,
            p2: 0x80,
            data: pin.map(<[u8]>::to_vec).unwrap_or_default(),
            le: None,
        }
    }

    /// `SELECT` of the MF: `00 A4 00 00`, no data (the driver's licence
    /// starts here).
    pub fn select_mf() -> Self {
        Self {
            cla: 0x00,
            ins: INS_SELECT,
            p1: 0x00,
            p2: 0x00,
            data: Vec::new(),
            le: None,
        }
    }

    /// `VERIFY` of the PIN with reference `reference` (P2, e.g. `81` for
    /// the licence's PIN1); without data it asks for the tries left.
    pub fn verify_reference(reference: u8, pin: Option<&[u8]>) -> Self {
        Self {
            p2: reference,
            ..Self::verify(pin)
        }
    }

    /// READ BINARY of the current EF from `offset` (15 bits), `le` bytes
    /// (0 = 256).
    pub fn read_binary(offset: u16, le: u8) -> Self {
        Self {
            cla: 0x00,
            ins: INS_READ_BINARY,
            p1: ((offset >> 8) & 0x7F) as u8,
            p2: (offset & 0xFF) as u8,
            data: Vec::new(),
            le: Some(le),
        }
    }

    /// The encoded APDU.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![self.cla, self.ins, self.p1, self.p2];
        if !self.data.is_empty() {
            bytes.push(self.data.len() as u8);
            bytes.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            bytes.push(le);
        }
        bytes
    }

    /// Decodes a short-form APDU (the four ISO cases).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let [cla, ins, p1, p2, rest @ ..] = bytes else {
            return None;
        };
        let (data, le) = match rest {
            [] => (Vec::new(), None),
            [le] => (Vec::new(), Some(*le)),
            [lc, body @ ..] if *lc != 0 && body.len() == usize::from(*lc) => (body.to_vec(), None),
            [lc, body @ ..] if *lc != 0 && body.len() == usize::from(*lc) + 1 => {
                let (data, le) = body.split_at(usize::from(*lc));
                (data.to_vec(), le.first().copied())
            }
            _ => return None,
        };
        Some(Self {
            cla: *cla,
            ins: *ins,
            p1: *p1,
            p2: *p2,
            data,
            le,
        })
    }
}

/// A response APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word, SW1 SW2 as one number (0x9000 is success).
    pub sw: u16,
}

impl Response {
    /// Splits data and status word; `None` if shorter than two bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let split = bytes.len().checked_sub(2)?;
        let (data, sw) = bytes.split_at(split);
        Some(Self {
            data: data.to_vec(),
            sw: u16::from_be_bytes([sw[0], sw[1]]),
        })
    }

    /// A response with `sw` only.
    pub fn status(sw: u16) -> Vec<u8> {
        sw.to_be_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_documented_hex() {
        let aid = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
        assert_eq!(
            Command::select_df(&aid).to_bytes(),
            [
                0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04,
                0x08
            ]
        );
        assert_eq!(
            Command::select_ef([0x00, 0x11]).to_bytes(),
            [0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x11]
        );
        assert_eq!(Command::verify(None).to_bytes(), [0x00, 0x20, 0x00, 0x80]);
        assert_eq!(
            Command::verify(Some(b"1234")).to_bytes(),
            [0x00, 0x20, 0x00, 0x80, 0x04, 0x31, 0x32, 0x33, 0x34]
        );
        assert_eq!(
            Command::read_binary(0x0105, 0x20).to_bytes(),
            [0x00, 0xB0, 0x01, 0x05, 0x20]
        );
        for command in [
            Command::select_df(&aid),
            Command::verify(None),
            Command::verify(Some(b"1234")),
            Command::read_binary(7, 0),
        ] {
            assert_eq!(Command::parse(&command.to_bytes()), Some(command));
        }
        assert_eq!(Command::parse(&[0x00, 0xA4, 0x02]), None);
        assert_eq!(Command::parse(&[0x00, 0xA4, 0x02, 0x0C, 0x05, 0x00]), None);
        assert_eq!(Response::parse(&[0x63, 0xC2]).map(|r| r.sw), Some(0x63C2));
        assert_eq!(Response::parse(&[0x90]), None);
    }

    proptest::proptest! {
        /// Any bytes from a reader or a client parse or are refused; a
        /// parsed command encodes back to the same bytes.
        #[test]
        fn arbitrary_apdus(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Some(command) = Command::parse(&bytes) {
                proptest::prop_assert_eq!(command.to_bytes(), bytes.clone());
            }
            let _ = Response::parse(&bytes);
        }
    }
}
