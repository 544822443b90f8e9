//! Registry records and interview answers → the navigator's facts. The
//! fact keys are the vocabulary of the catalog's conditions and are listed
//! in `docs/catalog.md`.

use chrono::{Datelike, NaiveDate};
use madoguchi_proto::identity::v1 as id;

use crate::domain::{Facts, person_role};
use madoguchi_catalog::{LifeEvent, QuestionKind};

/// The catalog's name of an enrolment kind (`national-health-insurance`).
pub fn enrolment_key(kind: i32) -> Option<String> {
    id::EnrolmentKind::try_from(kind).ok()?.catalog_name()
}

/// Fact keys the navigator sets without a parameter; see `docs/catalog.md`.
pub const PLAIN_FACTS: [&str; 19] = [
    "subject.deceased",
    "subject.resident",
    "subject.head",
    "subject.age",
    "subject.pension",
    "subject.disability",
    "subject.disability_grade",
    "subject.insurance",
    "household.living_members",
    "household.children_under_18",
    "household.children_under_6",
    "household.school_children",
    "household.spouse",
    "applicant.resident",
    "applicant.photo_id",
    "applicant.self",
    "applicant.household_member",
    "applicant.relation",
    "event.days_since",
];

/// Whether the navigator can set `key` (an `answer.` fact is checked
/// against its event's questions instead): a plain fact, or
/// `subject.enrolment.<kind>`, `household.enrolment.<kind>`,
/// `others.enrolment.<kind>` with a kind the registry knows.
pub fn is_known_fact(key: &str) -> bool {
    if PLAIN_FACTS.contains(&key) {
        return true;
    }
    [
        "subject.enrolment.",
        "household.enrolment.",
        "others.enrolment.",
    ]
    .iter()
    .filter_map(|prefix| key.strip_prefix(prefix))
    .any(|kind| id::EnrolmentKind::from_catalog_name(kind).is_some())
}

/// School year (学年) on `on` of a child born on `birth`: 1 for the first
/// year of elementary school … 9 for the third year of junior high.
/// Children born from 4月2日 to the next 4月1日 form one school year
/// (学校教育法17条: school starts in the April after the sixth birthday,
/// and a birthday on 4月1日 is reached the day before, 年齢計算ニ関スル法律).
pub fn school_year(birth: NaiveDate, on: NaiveDate) -> i32 {
    let cohort = birth.pred_opt().map_or(birth.year(), |day_before| {
        if day_before.month() >= 4 {
            day_before.year()
        } else {
            day_before.year() - 1
        }
    });
    let fiscal = if on.month() >= 4 {
        on.year()
    } else {
        on.year() - 1
    };
    fiscal - cohort - 6
}

fn date_of(date: Option<&madoguchi_proto::types::v1::Date>) -> Option<NaiveDate> {
    let date = date?;
    NaiveDate::from_ymd_opt(
        date.year,
        u32::try_from(date.month).ok()?,
        u32::try_from(date.day).ok()?,
    )
}

/// Age in whole years on `on`.
pub fn age(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// Everything the navigator is told about a visit.
#[derive(Debug)]
pub struct FactInput<'a> {
    /// The event's subject.
    pub subject: &'a id::Resident,
    /// The subject's household, if any.
    pub household: Option<&'a id::Household>,
    /// The visitor's resident record name (may be empty).
    pub applicant: &'a str,
    /// Whether the visitor is registered here.
    pub applicant_resident: bool,
    /// Whether the visitor showed a photo ID.
    pub photo_id: bool,
    /// The event date.
    pub event_date: NaiveDate,
    /// The visit's date (Asia/Tokyo), for the time since the event.
    pub today: NaiveDate,
    /// The event.
    pub event: &'a LifeEvent,
    /// Answers by question id.
    pub answers: &'a [(String, String)],
}

fn is_living(person: &id::Resident) -> bool {
    person.life_status != id::LifeStatus::Deceased as i32
        && person.residence_status != id::ResidenceStatus::MovedOut as i32
}

fn insurance(person: &id::Resident) -> Option<&'static str> {
    let has = |kind: id::EnrolmentKind| person.enrolments.iter().any(|e| e.kind == kind as i32);
    if has(id::EnrolmentKind::LateElderlyMedical) {
        Some("late-elderly-medical")
    } else if has(id::EnrolmentKind::NationalHealthInsurance) {
        Some("national-health-insurance")
    } else if has(id::EnrolmentKind::EmployeeHealthInsurance) {
        Some("employee")
    } else {
        None
    }
}

/// How `other` relates to `subject` when both are in one household, from
/// their relationships to its head: `spouse`, `child`, `parent`, or
/// `household` when the registry's classes do not say more.
fn relation_in_household(subject: &id::Resident, other: &id::Resident) -> &'static str {
    use id::Relationship as R;
    let of = |r: &id::Resident| R::try_from(r.relationship).unwrap_or(R::Unspecified);
    match (of(subject), of(other)) {
        (R::Head, R::Spouse) | (R::Spouse, R::Head) => "spouse",
        (R::Head | R::Spouse, R::Child) => "child",
        (R::Child, R::Head | R::Spouse) | (R::Head, R::Parent) => "parent",
        _ => "household",
    }
}

/// Builds the facts.
pub fn facts(input: &FactInput<'_>) -> Facts {
    let mut facts = Facts::default();
    let subject = input.subject;
    facts.flag(
        "subject.deceased",
        subject.life_status == id::LifeStatus::Deceased as i32,
    );
    facts.flag(
        "subject.resident",
        subject.residence_status == id::ResidenceStatus::Resident as i32,
    );
    facts.flag(
        "subject.head",
        subject.relationship == id::Relationship::Head as i32,
    );
    if let Some(birth) = date_of(subject.birth_date.as_ref()) {
        facts.set("subject.age", age(birth, input.event_date).to_string());
    }
    if let Some(insurance) = insurance(subject) {
        facts.set("subject.insurance", insurance);
    }
    let days_since = (input.today - input.event_date).num_days();
    facts.set("event.days_since", days_since.max(0).to_string());
    for enrolment in &subject.enrolments {
        if let Some(key) = enrolment_key(enrolment.kind) {
            facts.flag(format!("subject.enrolment.{key}"), true);
        }
        if let Ok(kind) = id::PensionKind::try_from(enrolment.pension_kind) {
            let value = match kind {
                id::PensionKind::National => Some("national"),
                id::PensionKind::Employees => Some("employees"),
                id::PensionKind::MutualAid => Some("mutual-aid"),
                id::PensionKind::Unspecified => None,
            };
            if let Some(value) = value {
                facts.set("subject.pension", value);
            }
        }
        if let Ok(kind) = id::DisabilityKind::try_from(enrolment.disability_kind) {
            let value = match kind {
                id::DisabilityKind::Physical => Some("physical"),
                id::DisabilityKind::Intellectual => Some("intellectual"),
                id::DisabilityKind::Mental => Some("mental"),
                id::DisabilityKind::Unspecified => None,
            };
            if let Some(value) = value {
                facts.set("subject.disability", value);
                facts.set("subject.disability_grade", enrolment.grade.to_string());
            }
        }
    }
    let mut members = Vec::new();
    let mut applicant_relation = None;
    if let Some(household) = input.household {
        // Who remains after the event: the living members besides the subject.
        let others: Vec<&id::Resident> = household
            .members
            .iter()
            .filter(|m| m.name != subject.name && is_living(m))
            .collect();
        facts.set("household.living_members", others.len().to_string());
        let births: Vec<NaiveDate> = others
            .iter()
            .filter_map(|m| date_of(m.birth_date.as_ref()))
            .collect();
        let count = |keep: &dyn Fn(&NaiveDate) -> bool| births.iter().filter(|b| keep(b)).count();
        let on = input.event_date;
        facts.set(
            "household.children_under_18",
            count(&|b| age(*b, on) < 18).to_string(),
        );
        facts.set(
            "household.children_under_6",
            count(&|b| age(*b, on) < 6).to_string(),
        );
        facts.set(
            "household.school_children",
            count(&|b| (1..=9).contains(&school_year(*b, on))).to_string(),
        );
        facts.flag(
            "household.spouse",
            others
                .iter()
                .any(|m| relation_in_household(subject, m) == "spouse"),
        );
        for member in household
            .members
            .iter()
            .filter(|m| is_living(m) || m.name == subject.name)
        {
            for enrolment in &member.enrolments {
                if let Some(key) = enrolment_key(enrolment.kind) {
                    facts.flag(format!("household.enrolment.{key}"), true);
                }
            }
        }
        for member in &others {
            for enrolment in &member.enrolments {
                if let Some(key) = enrolment_key(enrolment.kind) {
                    facts.flag(format!("others.enrolment.{key}"), true);
                }
            }
        }
        applicant_relation = household
            .members
            .iter()
            .find(|m| {
                !input.applicant.is_empty() && m.name == input.applicant && m.name != subject.name
            })
            .map(|m| relation_in_household(subject, m));
        members = household.members.iter().map(|m| m.name.clone()).collect();
    } else {
        facts.set("household.living_members", "0");
        facts.set("household.children_under_18", "0");
        facts.set("household.children_under_6", "0");
        facts.set("household.school_children", "0");
    }
    let relation = if input.applicant.is_empty() {
        "other"
    } else if input.applicant == subject.name {
        "self"
    } else if let Some(relation) = applicant_relation {
        relation
    } else if subject.relatives.iter().any(|r| r == input.applicant) {
        "relative"
    } else {
        "other"
    };
    facts.set("applicant.relation", relation);
    facts.flag("applicant.resident", input.applicant_resident);
    facts.flag("applicant.photo_id", input.photo_id);
    facts.flag(
        "applicant.self",
        !input.applicant.is_empty() && input.applicant == subject.name,
    );
    facts.flag(
        "applicant.household_member",
        !input.applicant.is_empty() && members.iter().any(|m| m == input.applicant),
    );
    for (question, value) in input.answers {
        let kind = input
            .event
            .questions
            .iter()
            .find(|q| &q.id == question)
            .map(|q| q.kind);
        let value = match kind {
            Some(QuestionKind::Person) => {
                person_role(value, input.applicant, &subject.name, &members).to_owned()
            }
            _ => value.clone(),
        };
        facts.set(format!("answer.{question}"), value);
    }
    facts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn school_years_follow_the_april_cohorts() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        // Born 2019-04-02 … 2020-04-01: first year of elementary in April 2026.
        assert_eq!(school_year(d(2019, 4, 2), d(2026, 4, 10)), 1);
        assert_eq!(school_year(d(2020, 4, 1), d(2026, 4, 10)), 1);
        assert_eq!(school_year(d(2020, 4, 2), d(2026, 4, 10)), 0);
        // The school year starts on 4月1日.
        assert_eq!(school_year(d(2019, 4, 2), d(2026, 3, 31)), 0);
        assert_eq!(school_year(d(2019, 4, 2), d(2026, 4, 1)), 1);
        assert_eq!(school_year(d(2011, 4, 2), d(2026, 4, 10)), 9);
        assert_eq!(school_year(d(2011, 4, 1), d(2026, 4, 10)), 10);
    }

    #[test]
    fn age_turns_on_the_birthday() {
        let birth = NaiveDate::from_ymd_opt(1943, 5, 20).unwrap();
        assert_eq!(
            age(birth, NaiveDate::from_ymd_opt(2023, 5, 19).unwrap()),
            79
        );
        assert_eq!(
            age(birth, NaiveDate::from_ymd_opt(2023, 5, 20).unwrap()),
            80
        );
        assert_eq!(
            age(birth, NaiveDate::from_ymd_opt(2023, 6, 16).unwrap()),
            80
        );
    }
}
