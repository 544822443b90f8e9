//! The reference registry's CSV format (documented in docs/identity.md).
//!
//! One row per person, UTF-8, header row required, columns in any order:
//! `resident_id, household_id, family_name, given_name, family_name_kana,
//! given_name_kana, birth_date, sex, relationship, relationship_label,
//! postal_code, municipality_code, prefecture, municipality, street,
//! building, residence_status, death_date, enrolments, relatives`.
//! Dates are ISO (`1943-05-20`) or 和暦 (`昭和18年5月20日`). Every bad cell
//! is reported as `rows[<line>].<column>` (line 1 is the header); nothing
//! is imported unless every row is valid.

use std::collections::{HashMap, HashSet};

use madoguchi_platform::error::Violation;
use madoguchi_platform::site::is_resource_id;
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_platform::wareki;
use madoguchi_proto::identity::v1 as pb;

use super::{AddressRecord, EnrolmentRecord, Relationship, ResidentRecord, parse_residence};
use crate::domain::person::{PersonName, check_kana, check_sex, check_text};
use crate::domain::proxy::Residence;

/// The columns, in the order the shipped sample uses.
pub const COLUMNS: [&str; 20] = [
    "resident_id",
    "household_id",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "sex",
    "relationship",
    "relationship_label",
    "postal_code",
    "municipality_code",
    "prefecture",
    "municipality",
    "street",
    "building",
    "residence_status",
    "death_date",
    "enrolments",
    "relatives",
];

/// Largest accepted import, in rows.
pub const MAX_ROWS: usize = 200_000;

/// Parses the `enrolments` cell: `;`-separated items, each a kind with
/// optional `:`-separated details — `disability-certificate:physical:1`,
/// `pension:employees`, `property-owner:家屋・土地`.
pub fn parse_enrolments(cell: &str) -> Result<Vec<EnrolmentRecord>, String> {
    cell.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let mut parts = item.split(':');
            let kind_text = parts.next().unwrap_or_default();
            let kind = pb::EnrolmentKind::from_catalog_name(kind_text)
                .ok_or_else(|| format!("unknown enrolment kind {kind_text:?}"))?;
            let details: Vec<&str> = parts.collect();
            let mut record = EnrolmentRecord {
                kind,
                disability_kind: pb::DisabilityKind::Unspecified,
                grade: 0,
                pension_kind: pb::PensionKind::Unspecified,
                note: String::new(),
            };
            match (kind, details.as_slice()) {
                (pb::EnrolmentKind::DisabilityCertificate, [disability, grade]) => {
                    let (disability_kind, grades) = match *disability {
                        "physical" => (pb::DisabilityKind::Physical, 1..=6),
                        "intellectual" => (pb::DisabilityKind::Intellectual, 1..=2),
                        "mental" => (pb::DisabilityKind::Mental, 1..=3),
                        other => return Err(format!("unknown disability kind {other:?}")),
                    };
                    let grade: u32 = grade
                        .parse()
                        .ok()
                        .filter(|g| grades.contains(g))
                        .ok_or_else(|| format!("grade of {disability} must be {grades:?}"))?;
                    record.disability_kind = disability_kind;
                    record.grade = grade;
                }
                (pb::EnrolmentKind::DisabilityCertificate, _) => {
                    return Err(
                        "write disability-certificate:<physical|intellectual|mental>:<grade>"
                            .into(),
                    );
                }
                (pb::EnrolmentKind::Pension, [pension]) => {
                    record.pension_kind = match *pension {
                        "national" => pb::PensionKind::National,
                        "employees" => pb::PensionKind::Employees,
                        "mutual-aid" => pb::PensionKind::MutualAid,
                        other => return Err(format!("unknown pension kind {other:?}")),
                    };
                }
                (pb::EnrolmentKind::Pension, _) => {
                    return Err("write pension:<national|employees|mutual-aid>".into());
                }
                (_, []) => {}
                (_, [note]) => record.note = check_text(note, false)?,
                _ => return Err(format!("too many details in {item:?}")),
            }
            Ok(record)
        })
        .collect()
}

/// The cell form of enrolments (inverse of [`parse_enrolments`]).
pub fn format_enrolments(enrolments: &[EnrolmentRecord]) -> String {
    enrolments
        .iter()
        .map(|e| {
            let name = e.kind.catalog_name().unwrap_or_default();
            match e.kind {
                pb::EnrolmentKind::DisabilityCertificate => {
                    let disability = match e.disability_kind {
                        pb::DisabilityKind::Intellectual => "intellectual",
                        pb::DisabilityKind::Mental => "mental",
                        _ => "physical",
                    };
                    format!("{name}:{disability}:{}", e.grade)
                }
                pb::EnrolmentKind::Pension => {
                    let pension = match e.pension_kind {
                        pb::PensionKind::Employees => "employees",
                        pb::PensionKind::MutualAid => "mutual-aid",
                        _ => "national",
                    };
                    format!("{name}:{pension}")
                }
                _ if !e.note.is_empty() => format!("{name}:{}", e.note),
                _ => name.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses a whole CSV document for `municipality`.
pub fn parse(
    text: &str,
    municipality: &MunicipalityCode,
) -> Result<Vec<ResidentRecord>, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![Violation::new(
                "csv",
                format!("unreadable header: {e}"),
            )]);
        }
    };
    let index: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    for column in COLUMNS {
        if !index.contains_key(column) {
            violations.push(Violation::new("csv", format!("missing column {column}")));
        }
    }
    for header in headers.iter() {
        if !COLUMNS.contains(&header) {
            violations.push(Violation::new("csv", format!("unknown column {header}")));
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        if i >= MAX_ROWS {
            violations.push(Violation::new("csv", format!("more than {MAX_ROWS} rows")));
            break;
        }
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                violations.push(Violation::new(
                    format!("rows[{line}]"),
                    format!("unreadable row: {e}"),
                ));
                continue;
            }
        };
        let cell = |column: &str| row.get(index[column]).unwrap_or_default();
        let mut bad = |column: &str, message: String| {
            violations.push(Violation::new(format!("rows[{line}].{column}"), message));
        };
        macro_rules! check {
            ($column:expr, $result:expr) => {
                match $result {
                    Ok(value) => Some(value),
                    Err(message) => {
                        bad($column, message);
                        None
                    }
                }
            };
        }
        let resident_id = check!(
            "resident_id",
            if is_resource_id(cell("resident_id")) {
                Ok(cell("resident_id").to_owned())
            } else {
                Err("must be 1-63 lowercase letters, digits or hyphens".to_owned())
            }
        );
        let household_id = check!(
            "household_id",
            match cell("household_id") {
                "" => Ok(None),
                id if is_resource_id(id) => Ok(Some(id.to_owned())),
                _ => Err("must be empty or 1-63 lowercase letters, digits or hyphens".to_owned()),
            }
        );
        let family = check!("family_name", check_text(cell("family_name"), true));
        let given = check!("given_name", check_text(cell("given_name"), false));
        let family_kana = check!("family_name_kana", check_kana(cell("family_name_kana")));
        let given_kana = check!("given_name_kana", check_kana(cell("given_name_kana")));
        let birth_date = check!(
            "birth_date",
            wareki::parse_date(cell("birth_date")).map_err(|e| e.to_string())
        );
        let sex = check!(
            "sex",
            cell("sex")
                .parse::<i32>()
                .map_err(|_| "must be an ISO 5218 code: 0, 1, 2 or 9".to_owned())
                .and_then(check_sex)
        );
        let residence = check!(
            "residence_status",
            parse_residence(cell("residence_status"))
                .ok_or_else(|| "must be resident, non-resident or moved-out".to_owned())
        );
        let relationship = check!(
            "relationship",
            match cell("relationship") {
                "" => Ok(None),
                text => Relationship::parse(text).map(Some).ok_or_else(|| {
                    "must be head, spouse, child, parent, other-relative or non-relative".to_owned()
                }),
            }
        );
        let relationship_label = check!(
            "relationship_label",
            check_text(cell("relationship_label"), false)
        );
        let postal_code = check!(
            "postal_code",
            match cell("postal_code") {
                code if code.is_empty()
                    || (code.len() == 7 && code.bytes().all(|b| b.is_ascii_digit())) =>
                {
                    Ok(code.to_owned())
                }
                _ => Err("must be 7 digits without hyphen".to_owned()),
            }
        );
        let address_code = check!(
            "municipality_code",
            MunicipalityCode::parse(cell("municipality_code")).map_err(|e| e.to_string())
        );
        let prefecture = check!("prefecture", check_text(cell("prefecture"), true));
        let municipality_name = check!("municipality", check_text(cell("municipality"), true));
        let street = check!("street", check_text(cell("street"), true));
        let building = check!("building", check_text(cell("building"), false));
        let death_date = check!(
            "death_date",
            match cell("death_date") {
                "" => Ok(None),
                text => wareki::parse_date(text)
                    .map(Some)
                    .map_err(|e| e.to_string()),
            }
        );
        let enrolments = check!("enrolments", parse_enrolments(cell("enrolments")));
        let relatives = check!(
            "relatives",
            cell("relatives")
                .split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| {
                    if is_resource_id(r) {
                        Ok(r.to_owned())
                    } else {
                        Err(format!("{r:?} is not a resident id"))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        );
        // Rules across cells of the row.
        if let (Some(residence), Some(code)) = (residence, address_code.as_ref()) {
            match residence {
                Residence::Resident if code != municipality => {
                    bad(
                        "municipality_code",
                        format!(
                            "a resident's address must be in {municipality}; a person registered in {code} is non-resident"
                        ),
                    );
                }
                Residence::NonResident if code == municipality => {
                    bad(
                        "municipality_code",
                        format!("a non-resident's address must be outside {municipality}"),
                    );
                }
                _ => {}
            }
            if residence == Residence::Resident
                && household_id.as_ref().is_some_and(Option::is_none)
            {
                bad(
                    "household_id",
                    "a resident belongs to a household".to_owned(),
                );
            }
            if residence == Residence::Resident
                && relationship.as_ref().is_some_and(Option::is_none)
            {
                bad(
                    "relationship",
                    "a resident has a relationship to the household head".to_owned(),
                );
            }
            if residence == Residence::NonResident
                && household_id.as_ref().is_some_and(Option::is_some)
            {
                bad(
                    "household_id",
                    "a non-resident has no household here".to_owned(),
                );
            }
        }
        if let (Some(Some(death)), Some(birth)) = (death_date, birth_date)
            && death < birth
        {
            bad("death_date", "before the birth date".to_owned());
        }
        let (
            Some(resident_id),
            Some(household_id),
            Some(family),
            Some(given),
            Some(family_kana),
            Some(given_kana),
            Some(birth_date),
            Some(sex),
            Some(residence),
            Some(relationship),
            Some(relationship_label),
            Some(postal_code),
            Some(address_code),
            Some(prefecture),
            Some(municipality_name),
            Some(street),
            Some(building),
            Some(death_date),
            Some(enrolments),
            Some(relatives),
        ) = (
            resident_id,
            household_id,
            family,
            given,
            family_kana,
            given_kana,
            birth_date,
            sex,
            residence,
            relationship,
            relationship_label,
            postal_code,
            address_code,
            prefecture,
            municipality_name,
            street,
            building,
            death_date,
            enrolments,
            relatives,
        )
        else {
            continue;
        };
        records.push((
            line,
            ResidentRecord {
                municipality: municipality.clone(),
                resident_id,
                household_id,
                name: PersonName {
                    family,
                    given,
                    family_kana,
                    given_kana,
                },
                birth_date,
                sex,
                relationship,
                relationship_label,
                address: AddressRecord {
                    postal_code,
                    municipality_code: address_code,
                    prefecture,
                    municipality: municipality_name,
                    street,
                    building,
                },
                residence,
                death_date,
                enrolments,
                relatives,
            },
        ));
    }
    // Rules across rows: unique ids, known relatives, one head per household.
    let mut ids = HashSet::new();
    for (line, record) in &records {
        if !ids.insert(record.resident_id.as_str()) {
            violations.push(Violation::new(
                format!("rows[{line}].resident_id"),
                "duplicate id",
            ));
        }
    }
    for (line, record) in &records {
        for relative in &record.relatives {
            if !ids.contains(relative.as_str()) {
                violations.push(Violation::new(
                    format!("rows[{line}].relatives"),
                    format!("no row has resident_id {relative}"),
                ));
            }
        }
    }
    let mut heads: HashMap<&str, usize> = HashMap::new();
    for (_, record) in &records {
        if let Some(household) = &record.household_id {
            let entry = heads.entry(household.as_str()).or_default();
            if record.relationship == Some(Relationship::Head) {
                *entry += 1;
            }
        }
    }
    for (household, count) in heads {
        if count != 1 {
            violations.push(Violation::new(
                "csv",
                format!("household {household} has {count} heads; it needs exactly one"),
            ));
        }
    }
    if violations.is_empty() {
        Ok(records.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ofunato() -> MunicipalityCode {
        MunicipalityCode::parse("032034").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shipped_sample_imports() {
        let text = include_str!("../../../../sites/ofunato/residents.csv");
        let records = parse(text, &ofunato()).unwrap_or_else(|v| panic!("{v:?}"));
        let taro = records
            .iter()
            .find(|r| r.name.given == "太郎")
            .unwrap_or_else(|| panic!("太郎 is in the sample"));
        assert_eq!(taro.birth_date.to_string(), "1943-05-20");
        assert_eq!(
            taro.death_date.map(|d| d.to_string()).as_deref(),
            Some("2023-06-16")
        );
        let kinds: Vec<_> = taro.enrolments.iter().map(|e| e.kind).collect();
        for kind in [
            pb::EnrolmentKind::LongTermCare,
            pb::EnrolmentKind::LateElderlyMedical,
            pb::EnrolmentKind::DisabilityCertificate,
            pb::EnrolmentKind::SealRegistration,
            pb::EnrolmentKind::Pension,
            pb::EnrolmentKind::PropertyOwner,
        ] {
            assert!(kinds.contains(&kind), "{kind:?}");
        }
        let tsuruko = records
            .iter()
            .find(|r| r.name.given == "つる子")
            .unwrap_or_else(|| panic!("つる子 is in the sample"));
        assert_eq!(tsuruko.residence, Residence::NonResident);
        assert_eq!(tsuruko.address.municipality_code.as_str(), "041017");
        // Enrolments survive a round trip through their cell form.
        assert_eq!(
            parse_enrolments(&format_enrolments(&taro.enrolments)),
            Ok(taro.enrolments.clone())
        );
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_column() {
        let header = COLUMNS.join(",");
        let rows = [
            // line 2: fine (head)
            "p1,h1,大船渡,太郎,オオフナト,タロウ,昭和18年5月20日,1,head,世帯主,0220002,032034,岩手県,大船渡市,盛町字宇津野沢15,,resident,,,",
            // line 3: impossible 和暦 date, bad sex, control char, unknown enrolment
            "p2,h1,大船渡,花\u{0007}子,オオフナト,ハナコ,平成31年5月1日,3,spouse,妻,0220002,032034,岩手県,大船渡市,盛町字宇津野沢15,,resident,,golf-club,",
            // line 4: a resident registered in another municipality
            "p3,h1,大船渡,つる子,オオフナト,ツルコ,1972-10-31,2,child,長女,9800803,041017,宮城県,仙台市青葉区,国分町3丁目7番1号,,resident,,,p9",
            // line 5: duplicate id, kana in kanji
            "p1,h1,大船渡,次郎,大船渡,ジロウ,1975-02-30,1,child,二男,0220002,032034,岩手県,大船渡市,盛町,,resident,,,",
        ];
        let text = format!("{header}\n{}\n", rows.join("\n"));
        let violations = parse(&text, &ofunato()).err().unwrap_or_default();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        for expected in [
            "rows[3].given_name",
            "rows[3].birth_date",
            "rows[3].sex",
            "rows[3].enrolments",
            "rows[4].municipality_code",
            "rows[5].family_name_kana",
            "rows[5].birth_date",
        ] {
            assert!(fields.contains(&expected), "{expected} not in {fields:?}");
        }
        let birth = violations.iter().find(|v| v.field == "rows[3].birth_date");
        assert!(
            birth.is_some_and(|v| v.description.contains("令和元年5月1日")),
            "{birth:?}"
        );
        // A relative that no row has, and the duplicate id, are reported
        // once the rows themselves parse.
        let text = format!(
            "{header}\n{}\n{}\n",
            rows[0],
            rows[0]
                .replace("昭和18年5月20日", "1950-01-01")
                .replace(",,resident,,,", ",,resident,,,p9")
        );
        let violations = parse(&text, &ofunato()).err().unwrap_or_default();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"rows[3].resident_id"), "{fields:?}");
        assert!(fields.contains(&"rows[3].relatives"), "{fields:?}");
        assert!(fields.contains(&"csv"), "two heads in h1: {fields:?}");
        assert!(parse("resident_id\np1\n", &ofunato()).is_err());
    }
}
