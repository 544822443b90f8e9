//! The call board's Modbus register map and 7-segment glyphs (no I/O).
//!
//! Holding registers of one board (function 03 read, 06/16 write):
//!
//! | addr   | name       | meaning                                                       |
//! |--------|------------|---------------------------------------------------------------|
//! | 0x0000 | `NUMBER`   | displayed number 0–9999; `0xFFFF` = blank                    |
//! | 0x0001 | `PREFIX`   | segment pattern of the prefix letter (low byte, 0 = none)     |
//! | 0x0002 | `ATTENTION`| bit 0 blink, bit 1 chime (the board clears bit 1 once chimed) |
//! | 0x0003 | `BOOT`     | read-only power-up counter, incremented by the board at boot  |
//!
//! The four are contiguous so a call is one function-16 frame
//! (`NUMBER..=ATTENTION`) and the health poll one function-03 frame
//! (`NUMBER..=BOOT`): a changed `BOOT` (power cycle) or a displayed value
//! that differs from the cached one makes the driver re-send.
//!
//! Segment bits follow the usual `gfedcba` order (bit 0 = a … bit 6 = g).

/// Displayed number register.
pub const NUMBER: u16 = 0x0000;
/// Prefix-letter segment register.
pub const PREFIX: u16 = 0x0001;
/// Blink / chime register.
pub const ATTENTION: u16 = 0x0002;
/// Power-up counter register (read-only).
pub const BOOT: u16 = 0x0003;
/// Registers the board implements.
pub const REGISTER_COUNT: u16 = 4;
/// `NUMBER` value that blanks the digits.
pub const BLANK: u16 = 0xFFFF;
/// `ATTENTION` bit: blink the display.
pub const BLINK: u16 = 0x0001;
/// `ATTENTION` bit: sound the chime once.
pub const CHIME: u16 = 0x0002;
/// Largest number the four digits show.
pub const MAX_NUMBER: u16 = 9999;

/// The 7-segment pattern (`gfedcba`) of a prefix letter; `None` for a
/// character a 7-segment digit cannot show recognisably.
pub fn segments(letter: char) -> Option<u8> {
    Some(match letter.to_ascii_uppercase() {
        'A' => 0x77,
        'B' => 0x7C, // b
        'C' => 0x39,
        'D' => 0x5E, // d
        'E' => 0x79,
        'F' => 0x71,
        'G' => 0x3D,
        'H' => 0x76,
        'J' => 0x1E,
        'L' => 0x38,
        'P' => 0x73,
        'U' => 0x3E,
        'Y' => 0x6E,
        _ => return None,
    })
}

/// The letter a segment pattern shows (inverse of [`segments`]).
pub fn letter(pattern: u8) -> Option<char> {
    "ABCDEFGHJLPUY"
        .chars()
        .find(|c| segments(*c) == Some(pattern))
}

/// What one board shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoardDisplay {
    /// Prefix letter, if any.
    pub prefix: Option<char>,
    /// The number, or `None` for blank digits.
    pub number: Option<u16>,
    /// Blink the display.
    pub blink: bool,
    /// Sound the chime when shown.
    pub chime: bool,
}

/// Why a display cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayError {
    /// More than four digits.
    #[error("number {0} exceeds the four digits of a board")]
    NumberTooLarge(u16),
    /// Not a letter a 7-segment digit shows.
    #[error("prefix {0:?} cannot be shown on seven segments")]
    UnshowablePrefix(char),
    /// A ticket number that is not a prefix letter followed by digits.
    #[error("ticket number {0:?} is not a letter followed by up to four digits")]
    BadTicketNumber(String),
}

impl BoardDisplay {
    /// The display for a ticket number as the queue formats it (`A012`):
    /// an optional prefix letter then up to four digits; chimes.
    pub fn ticket(number: &str) -> Result<Self, DisplayError> {
        let bad = || DisplayError::BadTicketNumber(number.to_owned());
        let mut chars = number.chars();
        let (prefix, digits) = match chars.next() {
            Some(c) if c.is_ascii_alphabetic() => (Some(c.to_ascii_uppercase()), chars.as_str()),
            Some(_) => (None, number),
            None => return Err(bad()),
        };
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let value = digits.parse::<u16>().map_err(|_| bad())?;
        let display = Self {
            prefix,
            number: Some(value),
            blink: false,
            chime: true,
        };
        display.registers()?;
        Ok(display)
    }

    /// The values of `NUMBER..=ATTENTION`.
    pub fn registers(&self) -> Result<[u16; 3], DisplayError> {
        let number = match self.number {
            None => BLANK,
            Some(n) if n > MAX_NUMBER => return Err(DisplayError::NumberTooLarge(n)),
            Some(n) => n,
        };
        let prefix = match self.prefix {
            None => 0,
            Some(c) => u16::from(segments(c).ok_or(DisplayError::UnshowablePrefix(c))?),
        };
        let attention = if self.blink { BLINK } else { 0 } | if self.chime { CHIME } else { 0 };
        Ok([number, prefix, attention])
    }

    /// Reads a display back from `NUMBER..=ATTENTION` (the chime bit is
    /// transient and not compared).
    pub fn from_registers(words: &[u16]) -> Self {
        let get = |i: usize| words.get(i).copied().unwrap_or(0);
        let number = match get(0) {
            BLANK => None,
            n => Some(n),
        };
        Self {
            prefix: letter((get(1) & 0xFF) as u8),
            number,
            blink: get(2) & BLINK != 0,
            chime: get(2) & CHIME != 0,
        }
    }

    /// Whether the board shows the same thing (ignoring the chime bit).
    pub fn same_picture(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.number == other.number && self.blink == other.blink
    }
}
