//! Person data as it arrives at the counter: names (kanji and kana),
//! dates and ISO 5218 sex codes, checked once at the edge; and the name
//! folding that makes "大船渡　太郎" match "大船渡太郎" and ｵｵﾌﾅﾄ match オオフナト.

use chrono::NaiveDate;
use madoguchi_proto::types::v1 as types;
use unicode_normalization::UnicodeNormalization;

/// Longest name part or address line accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 128;

/// True for characters that never belong in a name or address: C0/C1
/// controls, line and paragraph separators, and the bidirectional
/// overrides that can make a record display differently from what it is.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Checks free text (a name part, an address line): no control or
/// direction characters, at most [`MAX_TEXT_CHARS`]. Returns it trimmed.
pub fn check_text(value: &str, required: bool) -> Result<String, String> {
    if let Some(c) = value.chars().find(|c| is_forbidden(*c)) {
        return Err(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    let trimmed = value.trim();
    if required && trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("longer than {MAX_TEXT_CHARS} characters"));
    }
    Ok(trimmed.to_owned())
}

/// Checks a kana reading: full-width katakana (half-width is folded by
/// NFKC), the long vowel mark, middle dot and spaces. Empty is allowed.
pub fn check_kana(value: &str) -> Result<String, String> {
    let text = check_text(value, false)?;
    let folded: String = text.nfkc().collect();
    let ok = folded.chars().all(|c| {
        matches!(
            c,
            '\u{30A1}'..='\u{30FA}' | 'ー' | '・' | 'ヽ' | 'ヾ' | ' ' | '\u{3000}'
        )
    });
    if ok {
        Ok(folded)
    } else {
        Err("must be katakana".to_owned())
    }
}

/// Folds a name for comparison: NFKC (width), whitespace removed, and
/// hiragana mapped to katakana, so that spelling variants of the same
/// reading compare equal. Kanji variants (髙/高) are not folded: the
/// registry's spelling is the legal one.
pub fn fold(name: &str) -> String {
    name.nfkc()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{3041}'..='\u{3096}' => char::from_u32(u32::from(c) + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// A checked name with its reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonName {
    /// 氏.
    pub family: String,
    /// 名.
    pub given: String,
    /// 氏カナ (may be empty).
    pub family_kana: String,
    /// 名カナ (may be empty).
    pub given_kana: String,
}

impl PersonName {
    /// Checks a proto name, reporting violations under `field`.
    pub fn from_proto(
        name: Option<&types::JapaneseName>,
        field: &str,
        violations: &mut Vec<(String, String)>,
    ) -> Option<Self> {
        let Some(name) = name else {
            violations.push((field.to_owned(), "required".to_owned()));
            return None;
        };
        let mut check = |sub: &str, result: Result<String, String>| match result {
            Ok(v) => Some(v),
            Err(e) => {
                violations.push((format!("{field}.{sub}"), e));
                None
            }
        };
        let family = check("family_name", check_text(&name.family_name, true));
        let given = check("given_name", check_text(&name.given_name, false));
        let family_kana = check("family_name_kana", check_kana(&name.family_name_kana));
        let given_kana = check("given_name_kana", check_kana(&name.given_name_kana));
        Some(Self {
            family: family?,
            given: given?,
            family_kana: family_kana?,
            given_kana: given_kana?,
        })
    }

    /// The proto form.
    pub fn to_proto(&self) -> types::JapaneseName {
        types::JapaneseName {
            family_name: self.family.clone(),
            given_name: self.given.clone(),
            family_name_kana: self.family_kana.clone(),
            given_name_kana: self.given_kana.clone(),
        }
    }

    /// Family and given name without separator, e.g. 大船渡太郎.
    pub fn full(&self) -> String {
        format!("{}{}", self.family, self.given)
    }

    /// Whether a full name as printed on a document is this name (kanji or
    /// kana reading, spacing and width ignored).
    pub fn matches_full(&self, printed: &str) -> bool {
        let printed = fold(printed);
        !printed.is_empty()
            && (printed == fold(&self.full())
                || (!self.family_kana.is_empty()
                    && printed == fold(&format!("{}{}", self.family_kana, self.given_kana))))
    }

    /// Whether two names denote the same person's name (kanji equal after
    /// folding; readings compared only when both have them).
    pub fn same_as(&self, other: &PersonName) -> bool {
        let kanji = fold(&self.full()) == fold(&other.full());
        let kana_known = !self.family_kana.is_empty() && !other.family_kana.is_empty();
        kanji
            && (!kana_known
                || fold(&format!("{}{}", self.family_kana, self.given_kana))
                    == fold(&format!("{}{}", other.family_kana, other.given_kana)))
    }
}

/// Converts a proto date; `None` when unset. Impossible dates (2月30日)
/// and years outside 1..=9999 are errors.
pub fn date_from_proto(date: Option<&types::Date>) -> Result<Option<NaiveDate>, String> {
    let Some(date) = date else {
        return Ok(None);
    };
    let (Ok(month), Ok(day)) = (u32::try_from(date.month), u32::try_from(date.day)) else {
        return Err("no such day".to_owned());
    };
    if !(1..=9999).contains(&date.year) {
        return Err("year must be 1..=9999".to_owned());
    }
    NaiveDate::from_ymd_opt(date.year, month, day)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "no such day: {:04}-{:02}-{:02}",
                date.year, date.month, date.day
            )
        })
}

/// The proto form of a date.
pub fn date_to_proto(date: NaiveDate) -> types::Date {
    use chrono::Datelike;
    types::Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// Checks an ISO/IEC 5218 sex code: 0 not known, 1 male, 2 female,
/// 9 not applicable.
pub fn check_sex(code: i32) -> Result<i32, String> {
    if matches!(code, 0 | 1 | 2 | 9) {
        Ok(code)
    } else {
        Err("must be an ISO 5218 code: 0, 1, 2 or 9".to_owned())
    }
}

/// Age in whole years on `on` (the birthday counts from its own day;
/// 2月29日 birthdays count from 3月1日 in common years, as 年齢計算ニ関スル法律
/// effectively does for legal age).
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_named() {
        assert_eq!(
            check_text("大船渡\u{0007}太郎", true),
            Err("contains the control character U+0007".to_owned())
        );
        assert!(check_text("大船渡\u{202E}太郎", true).is_err());
        assert!(check_text("a\nb", true).is_err());
        assert_eq!(check_text("  大船渡 ", true).as_deref(), Ok("大船渡"));
        assert!(check_text("   ", true).is_err());
        assert!(check_text(&"あ".repeat(129), true).is_err());
    }

    #[test]
    fn kana_is_checked_and_folded() {
        assert_eq!(check_kana("ｵｵﾌﾅﾄ").as_deref(), Ok("オオフナト"));
        assert_eq!(check_kana("タロウ").as_deref(), Ok("タロウ"));
        assert!(check_kana("太郎").is_err());
        assert!(check_kana("taro").is_err());
    }

    #[test]
    fn names_match_across_spacing_width_and_script() {
        let name = PersonName {
            family: "大船渡".into(),
            given: "つる子".into(),
            family_kana: "オオフナト".into(),
            given_kana: "ツルコ".into(),
        };
        for printed in [
            "大船渡 つる子",
            "大船渡　つる子",
            "大船渡つる子",
            "オオフナト ツルコ",
            "おおふなと つるこ",
            "ｵｵﾌﾅﾄ ﾂﾙｺ",
        ] {
            assert!(name.matches_full(printed), "{printed}");
        }
        assert!(!name.matches_full("大船渡 花子"));
        assert!(!name.matches_full(""));
    }

    #[test]
    fn dates_and_ages() {
        let date = |y, m, d| types::Date {
            year: y,
            month: m,
            day: d,
        };
        assert!(date_from_proto(Some(&date(2023, 2, 29))).is_err());
        assert!(date_from_proto(Some(&date(2024, 2, 29))).is_ok());
        assert!(date_from_proto(Some(&date(0, 1, 1))).is_err());
        assert!(date_from_proto(Some(&date(2024, -1, 1))).is_err());
        assert_eq!(date_from_proto(None), Ok(None));
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN);
        assert_eq!(age_on(d(2008, 4, 2), d(2026, 4, 1)), 17);
        assert_eq!(age_on(d(2008, 4, 2), d(2026, 4, 2)), 18);
        assert_eq!(check_sex(9), Ok(9));
        assert!(check_sex(3).is_err());
    }
}
