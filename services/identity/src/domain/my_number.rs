//! 個人番号 (My Number): a 12-digit number whose last digit is a check
//! digit (行政手続における特定の個人を識別するための番号の利用等に関する法律
//! 施行令 第8条, 総務省令 第5条).
//!
//! The value is 特定個人情報. [`MyNumber`] holds it in a zeroising secret;
//! its `Debug` prints only the mask and it has no `Display`, so a number
//! can reach a log only through a deliberate [`MyNumber::expose`].

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// What every response shows instead of a number.
pub const MASK: &str = "************";

/// A checked My Number.
#[derive(Clone)]
pub struct MyNumber(SecretString);

/// Why a My Number was rejected. Never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MyNumberError {
    /// Not 12 ASCII digits.
    #[error("a my number is 12 digits")]
    Format,
    /// The 12th digit does not match the first 11.
    #[error("check digit does not match")]
    CheckDigit,
}

/// The check digit of the first 11 digits. With P(n) the n-th digit
/// counted from the right (n = 1..=11) and Q(n) = n + 1 for n <= 6,
/// n - 5 for n >= 7: the remainder r of sum(P(n) * Q(n)) by 11 gives
/// 0 when r <= 1, else 11 - r.
pub fn check_digit(first_eleven: &[u8; 11]) -> u8 {
    let sum: u32 = first_eleven
        .iter()
        .rev()
        .enumerate()
        .map(|(i, digit)| {
            let n = i as u32 + 1;
            let q = if n <= 6 { n + 1 } else { n - 5 };
            u32::from(*digit) * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

impl MyNumber {
    /// Parses and checks a number (ASCII digits only; a staff client
    /// strips spaces and hyphens before sending).
    pub fn parse(text: &str) -> Result<Self, MyNumberError> {
        let bytes = text.as_bytes();
        if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(MyNumberError::Format);
        }
        let mut first = [0u8; 11];
        for (slot, byte) in first.iter_mut().zip(bytes) {
            *slot = byte - b'0';
        }
        if check_digit(&first) != bytes[11] - b'0' {
            return Err(MyNumberError::CheckDigit);
        }
        Ok(Self(SecretString::from(text.to_owned())))
    }

    /// The digits. Callers: the cipher, and the audited clear-text read.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// A number with a valid check digit from 11 leading digits; for
    /// simulators and tests.
    pub fn complete(first_eleven: &str) -> Result<Self, MyNumberError> {
        let bytes = first_eleven.as_bytes();
        if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(MyNumberError::Format);
        }
        let mut first = [0u8; 11];
        for (slot, byte) in first.iter_mut().zip(bytes) {
            *slot = byte - b'0';
        }
        Self::parse(&format!("{first_eleven}{}", check_digit(&first)))
    }
}

impl fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MyNumber({MASK})")
    }
}

impl PartialEq for MyNumber {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for MyNumber {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        // 12345678901 → check digit 8, worked by hand: digits from the right 1,0,9,8,7,6,5,4,3,2,1 with weights
        // 2,3,4,5,6,7,2,3,4,5,6 sum to 1*2+0+36+40+42+42+10+12+12+10+6 = 212;
        // 212 mod 11 = 3; 11 - 3 = 8).
        assert_eq!(check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]), 8);
        assert!(MyNumber::parse("123456789018").is_ok());
        assert_eq!(
            MyNumber::parse("123456789019"),
            Err(MyNumberError::CheckDigit)
        );
        for bad in [
            "12345678901",
            "1234567890188",
            "12345678901a",
            "１２３４５６７８９０１８",
        ] {
            assert_eq!(MyNumber::parse(bad), Err(MyNumberError::Format), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let Ok(number) = MyNumber::complete("12345678901") else {
            panic!("valid");
        };
        let shown = format!("{number:?}");
        assert!(!shown.contains("1234"), "{shown}");
    }
}
