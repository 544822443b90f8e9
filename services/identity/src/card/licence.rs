//! The driver's-licence data as `SubmitCardRead` takes it: the face
//! entries (name, address, birth date, expiry, licence number), whether
//! read from the IC by [`super::licence_ic::LicenceReader`] after PIN1 or
//! typed by staff from the face when the holder does not know the PIN.
//! Both are checked the same way for every client and turned into the
//! `CardData` of `SubmitCardRead` with source DRIVERS_LICENCE.

use chrono::NaiveDate;
use madoguchi_proto::identity::v1 as pb;

use crate::domain::person::{check_text, date_to_proto};

/// What the licence face shows.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenceFace {
    /// 氏名.
    pub name: String,
    /// 住所.
    pub address: String,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// 有効期限 (…まで有効).
    pub expiry_date: NaiveDate,
    /// 免許証番号, 12 digits.
    pub licence_number: String,
}

impl std::fmt::Debug for LicenceFace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenceFace").finish_non_exhaustive()
    }
}

/// Checks a licence number: 12 ASCII digits (2 issuing prefecture, 2
/// year of first issue, 6 serial, 1 check, 1 reissue count).
pub fn check_licence_number(number: &str) -> Result<(), String> {
    if number.len() == 12 && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("a licence number is 12 digits".to_owned())
    }
}

impl LicenceFace {
    /// Checks the entry and builds the `CardData` to submit.
    pub fn to_proto(&self) -> Result<pb::CardData, String> {
        let name = check_text(&self.name, true).map_err(|e| format!("name: {e}"))?;
        let address = check_text(&self.address, true).map_err(|e| format!("address: {e}"))?;
        check_licence_number(&self.licence_number)?;
        Ok(pb::CardData {
            full_name: name,
            address,
            birth_date: Some(date_to_proto(self.birth_date)),
            sex: 0,
            my_number: String::new(),
            expiry_date: Some(date_to_proto(self.expiry_date)),
            licence_number: self.licence_number.clone(),
        })
    }
}

/// The licence number as shown in responses: all but the last 4 digits
/// masked.
pub fn mask_licence_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let keep = chars.len().saturating_sub(4);
    let tail: String = chars[keep..].iter().collect();
    format!("{}{tail}", "*".repeat(keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licence_entries_are_checked() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let face = LicenceFace {
            name: "大船渡 つる子".into(),
            address: "宮城県仙台市青葉区国分町3丁目7番1号".into(),
            birth_date: day(1972, 10, 31),
            expiry_date: day(2027, 11, 30),
            licence_number: "231234567890".into(),
        };
        let data = face.to_proto().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.sex, 0);
        assert!(data.my_number.is_empty());
        let mut bad = face.clone();
        bad.licence_number = "23-1234".into();
        assert!(bad.to_proto().is_err());
        let mut bad = face;
        bad.name = "大船渡\u{0000}".into();
        assert!(bad.to_proto().is_err());
        assert_eq!(mask_licence_number("231234567890"), "********7890");
    }
}
