//! The kiosk button panel's line protocol (no I/O).
//!
//! ASCII lines, 9600 8N1, each `BODY*CC\n` where `CC` is the XOR of every
//! byte of `BODY`, as two upper-case hex digits (NMEA style). `BODY` is
//! comma-separated fields:
//!
//! | direction       | body            | meaning                                             |
//! |-----------------|-----------------|-----------------------------------------------------|
//! | panel → gateway | `P,<b>,<n>`     | button `b` (1–32) pressed; `n` = press counter 0–65535 |
//! | panel → gateway | `H,<boot>`      | hello after power-up; `boot` = random 0–65535       |
//! | gateway → panel | `A,<b>,<n>`     | press `n` of button `b` received (stop resending)   |
//! | gateway → panel | `L,<b>,<s>`     | LED of button `b`: `0` off, `1` on, `2` blink       |
//!
//! The panel numbers each press per button and resends a press until it is
//! acknowledged, so the gateway deduplicates by `(button, counter)`; a hello
//! starts a new counter space. Example: `P,2,17*64\n`.

use std::fmt::Write as _;

/// Longest valid line, terminator included; longer input is discarded up to
/// the next newline.
pub const MAX_LINE: usize = 32;
/// Highest button number.
pub const MAX_BUTTON: u8 = 32;

/// An LED state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Led {
    /// Off.
    Off,
    /// On.
    On,
    /// Blinking.
    Blink,
}

/// One line of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelLine {
    /// Button pressed.
    Press {
        /// Button number, 1–32.
        button: u8,
        /// Per-button press counter.
        counter: u16,
    },
    /// The panel powered up.
    Hello {
        /// Random boot id.
        boot: u16,
    },
    /// The gateway received a press.
    Ack {
        /// Button number.
        button: u8,
        /// The press counter acknowledged.
        counter: u16,
    },
    /// Set a button's LED.
    SetLed {
        /// Button number.
        button: u8,
        /// LED state.
        led: Led,
    },
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// No `*CC` checksum or it does not match.
    #[error("bad or missing checksum")]
    Checksum,
    /// Not a known message or a field out of range.
    #[error("malformed line")]
    Malformed,
    /// Longer than [`MAX_LINE`].
    #[error("line too long")]
    TooLong,
}

fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, b| acc ^ b)
}

impl PanelLine {
    /// The line's bytes, newline included.
    pub fn encode(&self) -> String {
        let body = match self {
            PanelLine::Press { button, counter } => format!("P,{button},{counter}"),
            PanelLine::Hello { boot } => format!("H,{boot}"),
            PanelLine::Ack { button, counter } => format!("A,{button},{counter}"),
            PanelLine::SetLed { button, led } => format!(
                "L,{button},{}",
                match led {
                    Led::Off => 0,
                    Led::On => 1,
                    Led::Blink => 2,
                }
            ),
        };
        let mut line = body.clone();
        let _ = writeln!(line, "*{:02X}", checksum(body.as_bytes()));
        line
    }

    /// Parses one line without its newline (a trailing `\r` is allowed).
    pub fn parse(line: &[u8]) -> Result<Self, LineError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() >= MAX_LINE {
            return Err(LineError::TooLong);
        }
        let star = line
            .iter()
            .rposition(|b| *b == b'*')
            .ok_or(LineError::Checksum)?;
        let (body, sum) = (&line[..star], &line[star + 1..]);
        let sum = std::str::from_utf8(sum).map_err(|_| LineError::Checksum)?;
        if sum.len() != 2 || u8::from_str_radix(sum, 16).ok() != Some(checksum(body)) {
            return Err(LineError::Checksum);
        }
        let body = std::str::from_utf8(body).map_err(|_| LineError::Malformed)?;
        let fields: Vec<&str> = body.split(',').collect();
        let button = |s: &str| {
            strict_number::<u8>(s)
                .filter(|b| (1..=MAX_BUTTON).contains(b))
                .ok_or(LineError::Malformed)
        };
        let counter = |s: &str| strict_number::<u16>(s).ok_or(LineError::Malformed);
        match fields.as_slice() {
            ["P", b, n] => Ok(PanelLine::Press {
                button: button(b)?,
                counter: counter(n)?,
            }),
            ["H", boot] => Ok(PanelLine::Hello {
                boot: counter(boot)?,
            }),
            ["A", b, n] => Ok(PanelLine::Ack {
                button: button(b)?,
                counter: counter(n)?,
            }),
            ["L", b, s] => Ok(PanelLine::SetLed {
                button: button(b)?,
                led: match *s {
                    "0" => Led::Off,
                    "1" => Led::On,
                    "2" => Led::Blink,
                    _ => return Err(LineError::Malformed),
                },
            }),
            _ => Err(LineError::Malformed),
        }
    }
}

/// Decimal digits only, no sign, no leading zeros beyond a single `0`
/// (one spelling per value keeps the encoding canonical).
fn strict_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}
