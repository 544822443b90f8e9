//! A simulated My Number card: the 券面事項入力補助AP with its files, a
//! PIN counter of 3 tries and the lock, answering APDUs as the real card
//! does (status words per ISO/IEC 7816-4). Tests and demos use it as the
//! [`CardTransport`].

use super::apdu::{Command, INS_READ_BINARY, INS_SELECT, INS_VERIFY, Response};
use super::kenhojo::{
    CardFace, EF_BASIC_FOUR, EF_MY_NUMBER, EF_PIN, KENHOJO_AID, TAG_ADDRESS, TAG_BASIC_FOUR,
    TAG_BIRTH, TAG_MY_NUMBER, TAG_NAME, TAG_OFFSETS, TAG_SEX,
};
use super::tlv::encode;
use super::{CardTransport, TransportError};

/// PIN tries a fresh card allows.
pub const PIN_TRIES: u8 = 3;

/// The simulated card.
#[derive(Debug, Clone)]
pub struct SimulatedCard {
    pin: String,
    tries_left: u8,
    verified: bool,
    ap_selected: bool,
    current_ef: Option<[u8; 2]>,
    my_number_file: Vec<u8>,
    basic_four_file: Vec<u8>,
    removed: bool,
    /// Every command received, for tests that check the sequence.
    pub log: Vec<Vec<u8>>,
}

impl SimulatedCard {
    /// A card holding `face`, protected by `pin`.
    pub fn new(face: &CardFace, pin: &str) -> Self {
        let sex = match face.sex {
            1 => "1",
            2 => "2",
            _ => "3",
        };
        let fields = [
            encode(TAG_NAME, face.name.as_bytes()),
            encode(TAG_ADDRESS, face.address.as_bytes()),
            encode(
                TAG_BIRTH,
                face.birth_date.format("%Y%m%d").to_string().as_bytes(),
            ),
            encode(TAG_SEX, sex.as_bytes()),
        ];
        // DF21 holds the offset of each field, as on the real card.
        let mut offsets = Vec::new();
        let mut position = 0u16;
        for field in &fields {
            offsets.extend_from_slice(&position.to_be_bytes());
            position = position.saturating_add(field.len() as u16);
        }
        let mut inner = encode(TAG_OFFSETS, &offsets);
        for field in &fields {
            inner.extend_from_slice(field);
        }
        // Files are allocated larger than their content; pad like a card.
        let mut basic_four_file = encode(TAG_BASIC_FOUR, &inner);
        basic_four_file.extend_from_slice(&[0xFF; 16]);
        // FF 10 0C and the 12 digits: the long-form tag as the card has it.
        let mut my_number_file = encode(TAG_MY_NUMBER, face.my_number.as_bytes());
        my_number_file.push(0xFF);
        Self {
            pin: pin.to_owned(),
            tries_left: PIN_TRIES,
            verified: false,
            ap_selected: false,
            current_ef: None,
            my_number_file,
            basic_four_file,
            removed: false,
            log: Vec::new(),
        }
    }

    /// PIN tries left.
    pub fn tries_left(&self) -> u8 {
        self.tries_left
    }

    /// Simulates pulling the card from the reader: later commands fail in
    /// the transport.
    pub fn remove(&mut self) {
        self.removed = true;
    }

    fn answer(&mut self, command: &Command) -> Vec<u8> {
        if command.cla != 0x00 {
            return Response::status(0x6E00);
        }
        match command.ins {
            INS_SELECT => self.select(command),
            INS_VERIFY => self.verify(command),
            INS_READ_BINARY => self.read_binary(command),
            _ => Response::status(0x6D00),
        }
    }

    fn select(&mut self, command: &Command) -> Vec<u8> {
        match (command.p1, command.p2) {
            (0x04, 0x0C) => {
                // Selecting a DF resets its security status.
                self.verified = false;
                self.current_ef = None;
                self.ap_selected = command.data == KENHOJO_AID;
                Response::status(if self.ap_selected { 0x9000 } else { 0x6A82 })
            }
            (0x02, 0x0C) => {
                let Ok(fid) = <[u8; 2]>::try_from(command.data.as_slice()) else {
                    return Response::status(0x6700);
                };
                if !self.ap_selected {
                    return Response::status(0x6A82);
                }
                if [EF_PIN, EF_MY_NUMBER, EF_BASIC_FOUR].contains(&fid) {
                    self.current_ef = Some(fid);
                    Response::status(0x9000)
                } else {
                    Response::status(0x6A82)
                }
            }
            _ => Response::status(0x6A86),
        }
    }

    fn verify(&mut self, command: &Command) -> Vec<u8> {
        if self.current_ef != Some(EF_PIN) || command.p2 != 0x80 {
            return Response::status(0x6986);
        }
        if self.tries_left == 0 {
            return Response::status(0x6983);
        }
        if command.data.is_empty() {
            return Response::status(0x63C0 | u16::from(self.tries_left));
        }
        if command.data.len() != 4 {
            return Response::status(0x6700);
        }
        if command.data == self.pin.as_bytes() {
            self.tries_left = PIN_TRIES;
            self.verified = true;
            Response::status(0x9000)
        } else {
            self.tries_left -= 1;
            self.verified = false;
            Response::status(0x63C0 | u16::from(self.tries_left))
        }
    }

    fn read_binary(&mut self, command: &Command) -> Vec<u8> {
        let file = match self.current_ef {
            Some(EF_MY_NUMBER) => &self.my_number_file,
            Some(EF_BASIC_FOUR) => &self.basic_four_file,
            Some(_) => return Response::status(0x6981),
            None => return Response::status(0x6986),
        };
        if !self.verified {
            // Security status not satisfied: the PIN protects both files.
            return Response::status(0x6982);
        }
        let offset = (usize::from(command.p1) << 8) | usize::from(command.p2);
        if offset > file.len() {
            return Response::status(0x6B00);
        }
        let want = match command.le {
            Some(0) | None => 256,
            Some(n) => usize::from(n),
        };
        let end = (offset + want).min(file.len());
        let mut out = file[offset..end].to_vec();
        out.extend_from_slice(&Response::status(0x9000));
        out
    }
}

impl CardTransport for SimulatedCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.removed {
            return Err(TransportError("card removed".into()));
        }
        self.log.push(command.to_vec());
        Ok(match Command::parse(command) {
            Some(command) => self.answer(&command),
            None => Response::status(0x6700),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::card::kenhojo::{CardRefusal, KenhojoReader};

    fn face() -> CardFace {
        CardFace {
            name: "大船渡 つる子".into(),
            address: "宮城県仙台市青葉区国分町三丁目7番1号".into(),
            birth_date: NaiveDate::from_ymd_opt(1972, 10, 31).unwrap_or_default(),
            sex: 2,
            my_number: "123456789018".into(),
        }
    }

    #[test]
    fn reads_the_face_with_the_documented_sequence() {
        let mut card = SimulatedCard::new(&face(), "1234");
        let result = KenhojoReader::new(&mut card).read("1234");
        assert_eq!(result, Ok(Ok(face())));
        let hex: Vec<String> = card
            .log
            .iter()
            .map(|c| {
                c.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            &hex[..7],
            [
                "00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 08",
                "00 A4 02 0C 02 00 11",
                "00 20 00 80",
                "00 20 00 80 04 31 32 33 34",
                "00 A4 02 0C 02 00 01",
                "00 B0 00 00 05",
                "00 B0 00 05 0A",
            ]
        );
        assert!(hex.contains(&"00 A4 02 0C 02 00 02".to_owned()));
    }

    #[test]
    fn three_wrong_pins_lock_the_card_and_a_right_one_resets_the_count() {
        let mut card = SimulatedCard::new(&face(), "1234");
        let mut reader = KenhojoReader::new(&mut card);
        assert_eq!(
            reader.read("0000"),
            Ok(Err(CardRefusal::WrongPin { remaining: 2 }))
        );
        assert_eq!(reader.read("1234").map(|r| r.is_ok()), Ok(true));
        assert_eq!(
            reader.read("0000"),
            Ok(Err(CardRefusal::WrongPin { remaining: 2 }))
        );
        assert_eq!(
            reader.read("0001"),
            Ok(Err(CardRefusal::WrongPin { remaining: 1 }))
        );
        assert_eq!(reader.read("0002"), Ok(Err(CardRefusal::Locked)));
        // Locked: even the right PIN is refused, and the reader does not
        // send it (the card's log ends with the status query).
        assert_eq!(reader.read("1234"), Ok(Err(CardRefusal::Locked)));
        let card = reader.into_inner();
        assert_eq!(card.tries_left(), 0);
        assert_eq!(
            card.log.last().map(Vec::as_slice),
            Some(&[0x00, 0x20, 0x00, 0x80][..])
        );
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let mut card = SimulatedCard::new(&face(), "1234");
        assert_eq!(
            KenhojoReader::new(&mut card).read("12a4"),
            Ok(Err(CardRefusal::PinFormat))
        );
        assert!(card.log.is_empty(), "a malformed pin is never sent");
        // Reading without VERIFY is refused by the card itself.
        let mut raw = SimulatedCard::new(&face(), "1234");
        for command in [
            Command::select_df(&KENHOJO_AID),
            Command::select_ef(EF_MY_NUMBER),
        ] {
            let _ = raw.transmit(&command.to_bytes());
        }
        assert_eq!(
            raw.transmit(&Command::read_binary(0, 5).to_bytes()),
            Ok(vec![0x69, 0x82])
        );
        card.remove();
        assert!(matches!(
            KenhojoReader::new(&mut card).read("1234"),
            Err(crate::card::ReaderError::Transport(_))
        ));
    }

    /// A card that answers garbage: the reader reports an error, never
    /// panics and never returns a face.
    struct Garbage(Vec<Vec<u8>>);

    impl CardTransport for Garbage {
        fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.pop().unwrap_or_default())
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_answers_are_errors_not_panics(
            answers in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..12)
        ) {
            let mut reader = KenhojoReader::new(Garbage(answers));
            let _ = reader.read("1234");
        }

        /// Any PIN other than the right one costs exactly one try.
        #[test]
        fn wrong_pins_cost_one_try(pin in "[0-9]{4}") {
            let mut card = SimulatedCard::new(&face(), "1234");
            let result = KenhojoReader::new(&mut card).read(&pin);
            if pin == "1234" {
                proptest::prop_assert!(matches!(result, Ok(Ok(_))));
                proptest::prop_assert_eq!(card.tries_left(), 3);
            } else {
                proptest::prop_assert_eq!(result, Ok(Err(CardRefusal::WrongPin { remaining: 2 })));
                proptest::prop_assert_eq!(card.tries_left(), 2);
            }
        }
    }
}
