//! Value types that carry their invariants, parsed once at the edge.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// 地方公共団体コード — a municipality code: five digits (JIS X 0401
/// prefecture + JIS X 0402 municipality) and a check digit, e.g. `032034`
/// for 大船渡市.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MunicipalityCode(String);

/// Why a municipality code was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MunicipalityCodeError {
    /// Not exactly six ASCII digits.
    #[error("a municipality code is six digits")]
    Format,
    /// The sixth digit does not match the first five.
    #[error("check digit should be {expected}")]
    CheckDigit {
        /// The digit the first five digits call for.
        expected: u32,
    },
}

impl MunicipalityCode {
    /// Parses and checks a six-digit code.
    pub fn parse(code: &str) -> Result<Self, MunicipalityCodeError> {
        let digits: Vec<u32> = code.chars().filter_map(|c| c.to_digit(10)).collect();
        if code.len() != 6 || digits.len() != 6 || !code.is_ascii() {
            return Err(MunicipalityCodeError::Format);
        }
        let expected = check_digit(&digits[..5]);
        if digits[5] != expected {
            return Err(MunicipalityCodeError::CheckDigit { expected });
        }
        Ok(Self(code.to_owned()))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The check digit of the 全国地方公共団体コード: weights 6,5,4,3,2 over
/// the five digits; the digit is the last digit of `11 - (sum mod 11)`.
fn check_digit(first_five: &[u32]) -> u32 {
    let sum: u32 = first_five
        .iter()
        .zip([6, 5, 4, 3, 2])
        .map(|(digit, weight)| digit * weight)
        .sum();
    (11 - sum % 11) % 10
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MunicipalityCode {
    type Err = MunicipalityCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MunicipalityCode {
    type Error = MunicipalityCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MunicipalityCode> for String {
    fn from(code: MunicipalityCode) -> Self {
        code.0
    }
}

/// Japan Standard Time. Japan has observed no daylight saving time since
/// 1951, so a fixed +09:00 offset is exact and needs no zone database.
pub const JAPAN_STANDARD_TIME: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};

/// 業務日 — the local calendar day (Asia/Tokyo) that ticket numbers,
/// quotas and daily totals belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusinessDay(NaiveDate);

impl BusinessDay {
    /// The business day an instant falls on.
    pub fn of(instant: DateTime<Utc>) -> Self {
        Self(instant.with_timezone(&JAPAN_STANDARD_TIME).date_naive())
    }

    /// A business day from a calendar date.
    pub fn from_date(date: NaiveDate) -> Self {
        Self(date)
    }

    /// The calendar date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// Days since 0001-01-01 (CE), the compact form stored in databases.
    pub fn ordinal(self) -> i32 {
        self.0.num_days_from_ce()
    }

    /// Inverse of [`BusinessDay::ordinal`].
    pub fn from_ordinal(days: i32) -> Option<Self> {
        NaiveDate::from_num_days_from_ce_opt(days).map(Self)
    }
}

impl fmt::Display for BusinessDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ofunato_code_checks() {
        assert!(MunicipalityCode::parse("032034").is_ok());
        // 盛岡市 032018, 東京都千代田区 131016, 札幌市 011002.
        for code in ["032018", "131016", "011002"] {
            assert!(MunicipalityCode::parse(code).is_ok(), "{code}");
        }
        assert_eq!(
            MunicipalityCode::parse("032035"),
            Err(MunicipalityCodeError::CheckDigit { expected: 4 })
        );
        for bad in ["03203", "0320344", "03203a", "０３２０３４", ""] {
            assert_eq!(
                MunicipalityCode::parse(bad),
                Err(MunicipalityCodeError::Format),
                "{bad}"
            );
        }
    }

    #[test]
    fn business_day_turns_at_midnight_in_tokyo() {
        let before = Utc.with_ymd_and_hms(2026, 4, 1, 14, 59, 59).single();
        let after = Utc.with_ymd_and_hms(2026, 4, 1, 15, 0, 0).single();
        let (Some(before), Some(after)) = (before, after) else {
            panic!("valid instants");
        };
        assert_eq!(BusinessDay::of(before).to_string(), "2026-04-01");
        assert_eq!(BusinessDay::of(after).to_string(), "2026-04-02");
        let day = BusinessDay::of(after);
        assert_eq!(BusinessDay::from_ordinal(day.ordinal()), Some(day));
    }
}
