//! Registry records and interview answers → the navigator's facts. The
//! fact keys are the vocabulary of the catalog's conditions and are listed
//! in `docs/catalog.md`.

use chrono::{Datelike, NaiveDate};
use madoguchi_proto::identity::v1 as id;

use crate::catalog::{LifeEvent, QuestionKind};
use crate::domain::{Facts, person_role};

/// The catalog's name of an enrolment kind.
pub fn enrolment_key(kind: i32) -> Option<&'static str> {
    Some(match id::EnrolmentKind::try_from(kind).ok()? {
        id::EnrolmentKind::NationalHealthInsurance => "national-health-insurance",
        id::EnrolmentKind::LateElderlyMedical => "late-elderly-medical",
        id::EnrolmentKind::LongTermCare => "long-term-care",
        id::EnrolmentKind::DisabilityCertificate => "disability-certificate",
        id::EnrolmentKind::ChildAllowance => "child-allowance",
        id::EnrolmentKind::SealRegistration => "seal-registration",
        id::EnrolmentKind::Pension => "pension",
        id::EnrolmentKind::PropertyOwner => "property-owner",
        id::EnrolmentKind::NationalPensionInsured => "national-pension-insured",
        id::EnrolmentKind::MedicalSubsidy => "medical-subsidy",
        id::EnrolmentKind::Unspecified => return None,
    })
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
    /// The event.
    pub event: &'a LifeEvent,
    /// Answers by question id.
    pub answers: &'a [(String, String)],
}

fn is_living(person: &id::Resident) -> bool {
    person.life_status != id::LifeStatus::Deceased as i32
        && person.residence_status != id::ResidenceStatus::MovedOut as i32
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
    if let Some(household) = input.household {
        let living: Vec<&id::Resident> = household
            .members
            .iter()
            .filter(|m| m.name != subject.name && is_living(m))
            .collect();
        facts.set("household.living_members", living.len().to_string());
        let minors = living
            .iter()
            .filter_map(|m| date_of(m.birth_date.as_ref()))
            .filter(|birth| age(*birth, input.event_date) < 18)
            .count();
        facts.set("household.children_under_18", minors.to_string());
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
        members = household.members.iter().map(|m| m.name.clone()).collect();
    } else {
        facts.set("household.living_members", "0");
    }
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
