//! 和暦 — Japanese era dates, converted day-exactly to and from the
//! Gregorian calendar.
//!
//! Eras change on a day, not at a year boundary: 平成31年4月30日 is
//! followed by 令和元年5月1日, and 平成31年5月1日 does not exist. The first
//! year of an era is written 元年 and parsed from both "元" and "1".
//! Japan adopted the Gregorian calendar on 明治6年1月1日 (1873-01-01);
//! earlier 明治 dates are lunisolar and are rejected rather than guessed.
//!
//! Accepted spellings (after folding full-width digits and letters):
//! `昭和18年5月20日`, `令和元年5月1日`, `S18.5.20`, `H31/4/30`, `R1-5-1`,
//! `s18.05.20`. [`parse_date`] also accepts ISO `YYYY-MM-DD`, for inputs
//! (CSV columns, forms) that may hold either.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// A Japanese era (元号) of the modern calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Era {
    /// 明治 (M), from 1868; convertible from 明治6年1月1日 (1873-01-01).
    Meiji,
    /// 大正 (T), from 1912-07-30.
    Taisho,
    /// 昭和 (S), from 1926-12-25.
    Showa,
    /// 平成 (H), from 1989-01-08.
    Heisei,
    /// 令和 (R), from 2019-05-01.
    Reiwa,
}

/// Every era, oldest first.
pub const ERAS: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

/// 1873-01-01, the first Gregorian day in Japan (明治6年1月1日).
const GREGORIAN_ADOPTION: (i32, u32, u32) = (1873, 1, 1);

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    // Only called with the constant, valid dates of this module.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

impl Era {
    /// The kanji name, e.g. 昭和.
    pub fn kanji(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The one-letter abbreviation, e.g. `S`.
    pub fn letter(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    /// The Gregorian year of the era's first year (元年).
    fn first_year(self) -> i32 {
        match self {
            Era::Meiji => 1868,
            Era::Taisho => 1912,
            Era::Showa => 1926,
            Era::Heisei => 1989,
            Era::Reiwa => 2019,
        }
    }

    /// The first day of the era that is convertible (for 明治, the day the
    /// Gregorian calendar was adopted).
    pub fn first_day(self) -> NaiveDate {
        match self {
            Era::Meiji => {
                let (y, m, d) = GREGORIAN_ADOPTION;
                ymd(y, m, d)
            }
            Era::Taisho => ymd(1912, 7, 30),
            Era::Showa => ymd(1926, 12, 25),
            Era::Heisei => ymd(1989, 1, 8),
            Era::Reiwa => ymd(2019, 5, 1),
        }
    }

    /// The last day of the era, `None` for the current one.
    pub fn last_day(self) -> Option<NaiveDate> {
        self.next().and_then(|next| next.first_day().pred_opt())
    }

    fn next(self) -> Option<Era> {
        match self {
            Era::Meiji => Some(Era::Taisho),
            Era::Taisho => Some(Era::Showa),
            Era::Showa => Some(Era::Heisei),
            Era::Heisei => Some(Era::Reiwa),
            Era::Reiwa => None,
        }
    }

    fn from_name(name: &str) -> Option<Era> {
        ERAS.into_iter().find(|era| {
            name == era.kanji()
                || (name.chars().count() == 1
                    && name
                        .chars()
                        .next()
                        .is_some_and(|c| c.eq_ignore_ascii_case(&era.letter())))
        })
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kanji())
    }
}

/// Why a 和暦 date was rejected. Messages are lowercase and name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarekiError {
    /// Not a date in any accepted spelling.
    #[error("not a date: expected e.g. 昭和18年5月20日, S18.5.20 or 2023-06-16")]
    Format,
    /// The era name is not 明治, 大正, 昭和, 平成 or 令和 (or M/T/S/H/R).
    #[error("unknown era {0:?}: expected 明治, 大正, 昭和, 平成 or 令和")]
    UnknownEra(String),
    /// Year 0 of an era.
    #[error("an era year starts at 1 (元年)")]
    YearZero,
    /// The month or day does not exist (e.g. 2月30日, 平成31年2月29日).
    #[error("no such day: {year}-{month:02}-{day:02}")]
    NoSuchDay {
        /// Gregorian year.
        year: i32,
        /// Month as given.
        month: u32,
        /// Day as given.
        day: u32,
    },
    /// The day exists but lies outside the era.
    #[error("{given} is not in {era}: that day is {actual}")]
    OutsideEra {
        /// The era named.
        era: Era,
        /// The date as given, in 和暦.
        given: String,
        /// The same day in its real era (or the Gregorian date before 1873).
        actual: String,
    },
    /// Before 1873-01-01 (明治6年1月1日): dates of the lunisolar calendar.
    #[error("dates before 明治6年1月1日 (1873-01-01) use the lunisolar calendar")]
    BeforeGregorian,
}

/// A date in 和暦: era, era year (1 = 元年), month, day. Always valid:
/// built only by [`WarekiDate::new`], [`WarekiDate::from_gregorian`] or
/// parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WarekiDate {
    era: Era,
    year: u32,
    month: u32,
    day: u32,
}

impl WarekiDate {
    /// Checks an era date: the day must exist and lie inside the era.
    pub fn new(era: Era, year: u32, month: u32, day: u32) -> Result<Self, WarekiError> {
        if year == 0 {
            return Err(WarekiError::YearZero);
        }
        let gregorian_year = i64::from(era.first_year()) + i64::from(year) - 1;
        let gregorian_year = i32::try_from(gregorian_year).map_err(|_| WarekiError::Format)?;
        let date =
            NaiveDate::from_ymd_opt(gregorian_year, month, day).ok_or(WarekiError::NoSuchDay {
                year: gregorian_year,
                month,
                day,
            })?;
        let given = format_parts(era, year, month, day);
        if date < era.first_day() || era.last_day().is_some_and(|last| date > last) {
            if date < ERAS[0].first_day() {
                return Err(WarekiError::BeforeGregorian);
            }
            let actual = Self::from_gregorian(date)
                .map(|w| w.to_string())
                .unwrap_or_else(|_| date.to_string());
            return Err(WarekiError::OutsideEra { era, given, actual });
        }
        Ok(Self {
            era,
            year,
            month,
            day,
        })
    }

    /// The era date of a Gregorian day (1873-01-01 or later).
    pub fn from_gregorian(date: NaiveDate) -> Result<Self, WarekiError> {
        let era = ERAS
            .into_iter()
            .rev()
            .find(|era| date >= era.first_day())
            .ok_or(WarekiError::BeforeGregorian)?;
        let year = u32::try_from(date.year() - era.first_year() + 1)
            .map_err(|_| WarekiError::BeforeGregorian)?;
        Ok(Self {
            era,
            year,
            month: date.month(),
            day: date.day(),
        })
    }

    /// The Gregorian day.
    pub fn to_gregorian(self) -> NaiveDate {
        let year = self.era.first_year() + self.year as i32 - 1;
        // Checked in `new` / derived from a real date.
        NaiveDate::from_ymd_opt(year, self.month, self.day).unwrap_or(NaiveDate::MIN)
    }

    /// The era.
    pub fn era(self) -> Era {
        self.era
    }

    /// The era year, 1 for 元年.
    pub fn year(self) -> u32 {
        self.year
    }

    /// Month, 1..=12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// Day of the month.
    pub fn day(self) -> u32 {
        self.day
    }

    /// The abbreviated form, e.g. `S18.05.20`.
    pub fn abbreviated(self) -> String {
        format!(
            "{}{:02}.{:02}.{:02}",
            self.era.letter(),
            self.year,
            self.month,
            self.day
        )
    }
}

fn format_parts(era: Era, year: u32, month: u32, day: u32) -> String {
    if year == 1 {
        format!("{era}元年{month}月{day}日")
    } else {
        format!("{era}{year}年{month}月{day}日")
    }
}

impl fmt::Display for WarekiDate {
    /// The written form, e.g. `令和元年5月1日`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_parts(self.era, self.year, self.month, self.day))
    }
}

/// Folds full-width digits, letters and punctuation to ASCII and drops
/// spaces, so `昭和１８年５月２０日` and `Ｓ１８．５．２０` parse.
fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn number(text: &str) -> Result<u32, WarekiError> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WarekiError::Format);
    }
    text.parse().map_err(|_| WarekiError::Format)
}

impl FromStr for WarekiDate {
    type Err = WarekiError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = fold(text);
        // Era name: the leading non-digit characters.
        let split = text
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '元')
            .map(|(i, _)| i)
            .ok_or(WarekiError::Format)?;
        let (name, rest) = text.split_at(split);
        if name.is_empty() {
            return Err(WarekiError::Format);
        }
        let era = Era::from_name(name).ok_or_else(|| WarekiError::UnknownEra(name.to_owned()))?;
        let (year, rest) = match rest.strip_prefix('元') {
            Some(rest) => (1, rest),
            None => {
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or(WarekiError::Format)?;
                (number(&rest[..end])?, &rest[end..])
            }
        };
        let parts: Vec<&str> = if let Some(rest) = rest.strip_prefix('年') {
            // 5月20日
            let rest = rest.strip_suffix('日').ok_or(WarekiError::Format)?;
            let (month, day) = rest.split_once('月').ok_or(WarekiError::Format)?;
            vec![month, day]
        } else {
            // .5.20, /5/20, -5-20
            let separator = rest.chars().next().ok_or(WarekiError::Format)?;
            if !matches!(separator, '.' | '/' | '-') {
                return Err(WarekiError::Format);
            }
            rest[separator.len_utf8()..].split(separator).collect()
        };
        let [month, day] = parts.as_slice() else {
            return Err(WarekiError::Format);
        };
        Self::new(era, year, number(month)?, number(day)?)
    }
}

/// Parses a 和暦 date to its Gregorian day.
pub fn parse(text: &str) -> Result<NaiveDate, WarekiError> {
    text.parse::<WarekiDate>().map(WarekiDate::to_gregorian)
}

/// Parses either an ISO date (`YYYY-MM-DD`) or a 和暦 date.
pub fn parse_date(text: &str) -> Result<NaiveDate, WarekiError> {
    let folded = fold(text);
    let bytes = folded.as_bytes();
    let iso_shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if iso_shaped {
        let year = number(&folded[..4])? as i32;
        let month = number(&folded[5..7])?;
        let day = number(&folded[8..])?;
        return NaiveDate::from_ymd_opt(year, month, day).ok_or(WarekiError::NoSuchDay {
            year,
            month,
            day,
        });
    }
    parse(&folded)
}

/// Formats a Gregorian day in 和暦, e.g. `令和元年5月1日`.
pub fn format(date: NaiveDate) -> Result<String, WarekiError> {
    WarekiDate::from_gregorian(date).map(|w| w.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("bad test date"))
    }

    #[test]
    fn era_boundaries_are_day_exact() {
        let cases = [
            ("明治45年7月29日", date(1912, 7, 29)),
            ("大正元年7月30日", date(1912, 7, 30)),
            ("大正15年12月24日", date(1926, 12, 24)),
            ("昭和元年12月25日", date(1926, 12, 25)),
            ("昭和64年1月7日", date(1989, 1, 7)),
            ("平成元年1月8日", date(1989, 1, 8)),
            ("平成31年4月30日", date(2019, 4, 30)),
            ("令和元年5月1日", date(2019, 5, 1)),
            ("令和1年5月1日", date(2019, 5, 1)),
            ("明治6年1月1日", date(1873, 1, 1)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
            assert_eq!(
                format(expected).as_deref(),
                Ok(text.replace("令和1年", "令和元年").as_str())
            );
        }
        // The day after the last day of 平成 is the first of 令和.
        let last = parse("平成31年4月30日").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            last.succ_opt().map(format),
            Some(Ok("令和元年5月1日".to_owned()))
        );
    }

    #[test]
    fn the_seed_family_dates() {
        assert_eq!(parse("昭和18年5月20日"), Ok(date(1943, 5, 20)));
        assert_eq!(parse("昭和20年11月1日"), Ok(date(1945, 11, 1)));
        assert_eq!(parse("昭和47年10月31日"), Ok(date(1972, 10, 31)));
        assert_eq!(parse("R5.6.16"), Ok(date(2023, 6, 16)));
    }

    #[test]
    fn spellings() {
        for text in [
            "S18.5.20",
            "s18.05.20",
            "S18/5/20",
            "S18-5-20",
            "昭和１８年５月２０日",
            "Ｓ１８．５．２０",
            "昭和 18年 5月 20日",
        ] {
            assert_eq!(parse(text), Ok(date(1943, 5, 20)), "{text}");
        }
        assert_eq!(parse_date("2023-06-16"), Ok(date(2023, 6, 16)));
        assert_eq!(parse_date("令和5年6月16日"), Ok(date(2023, 6, 16)));
    }

    #[test]
    fn impossible_dates_are_rejected_precisely() {
        let outside = |text: &str| match parse(text) {
            Err(WarekiError::OutsideEra { actual, .. }) => actual,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(outside("平成31年5月1日"), "令和元年5月1日");
        assert_eq!(outside("令和元年4月30日"), "平成31年4月30日");
        assert_eq!(outside("昭和64年1月8日"), "平成元年1月8日");
        assert_eq!(outside("平成元年1月7日"), "昭和64年1月7日");
        assert_eq!(outside("大正元年7月29日"), "明治45年7月29日");
        assert_eq!(outside("昭和元年12月24日"), "大正15年12月24日");
        assert_eq!(outside("明治46年1月1日"), "大正2年1月1日");
        assert!(matches!(
            parse("平成31年2月29日"),
            Err(WarekiError::NoSuchDay {
                year: 2019,
                month: 2,
                day: 29
            })
        ));
        assert!(parse("平成4年2月29日").is_ok()); // 1992, a leap year
        assert!(matches!(
            parse("令和5年2月30日"),
            Err(WarekiError::NoSuchDay { .. })
        ));
        assert!(matches!(
            parse("令和5年13月1日"),
            Err(WarekiError::NoSuchDay { .. })
        ));
        assert_eq!(parse("令和0年5月1日"), Err(WarekiError::YearZero));
        assert_eq!(parse("明治5年12月2日"), Err(WarekiError::BeforeGregorian));
        assert!(matches!(
            parse("天保3年1月1日"),
            Err(WarekiError::UnknownEra(_))
        ));
        assert!(matches!(parse("X3.1.1"), Err(WarekiError::UnknownEra(_))));
        for bad in [
            "",
            "昭和",
            "昭和18年5月",
            "S18.5",
            "S18.5.20.1",
            "S.5.20",
            "S18年5月20",
            "18.5.20",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_date("2023-02-29"),
            Err(WarekiError::NoSuchDay {
                year: 2023,
                month: 2,
                day: 29
            })
        );
    }

    fn any_day() -> impl Strategy<Value = NaiveDate> {
        let first = Era::Meiji.first_day();
        (0i64..(365 * 230)).prop_map(move |offset| first + chrono::Duration::days(offset))
    }

    proptest! {
        #[test]
        fn gregorian_round_trips(day in any_day()) {
            let wareki = WarekiDate::from_gregorian(day).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(wareki.to_gregorian(), day);
            prop_assert_eq!(parse(&wareki.to_string()), Ok(day));
            prop_assert_eq!(parse(&wareki.abbreviated()), Ok(day));
            // The era is the latest one that had started.
            prop_assert!(day >= wareki.era().first_day());
            prop_assert!(wareki.era().last_day().is_none_or(|last| day <= last));
        }

        #[test]
        fn consecutive_days_never_go_back(day in any_day()) {
            let next = day.succ_opt().unwrap_or(day);
            let (a, b) = (
                WarekiDate::from_gregorian(day).unwrap_or_else(|e| panic!("{e}")),
                WarekiDate::from_gregorian(next).unwrap_or_else(|e| panic!("{e}")),
            );
            // Either the same era, one day on, or the first day of the next era.
            if a.era() == b.era() {
                prop_assert!(b.to_gregorian() > a.to_gregorian());
            } else {
                prop_assert_eq!(b.year(), 1);
                prop_assert_eq!(b.to_gregorian(), b.era().first_day());
            }
        }

        #[test]
        fn any_era_triple_either_converts_or_says_why(
            era in 0usize..5, year in 0u32..70, month in 0u32..14, day in 0u32..33
        ) {
            match WarekiDate::new(ERAS[era], year, month, day) {
                Ok(w) => {
                    prop_assert_eq!(WarekiDate::from_gregorian(w.to_gregorian()), Ok(w));
                }
                Err(WarekiError::OutsideEra { actual, .. }) => {
                    // The message names the real era date of that day.
                    prop_assert!(parse(&actual).is_ok());
                }
                Err(WarekiError::YearZero | WarekiError::NoSuchDay { .. } | WarekiError::BeforeGregorian) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
