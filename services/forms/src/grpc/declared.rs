//! A household the visitor declares (`NavigateLifeEventRequest.declared_household`)
//! for an event the registry does not hold yet: checked field by field, then
//! shaped as the identity service's records so the navigator derives its
//! facts from it exactly as from the registry. The records carry no
//! resource name (`declared/{i}` stands in, never leaves this module's
//! callers' fact computation): nobody is registered yet.

use chrono::NaiveDate;
use madoguchi_platform::error::Violations;
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_proto::forms::v1 as pb;
use madoguchi_proto::identity::v1 as id;

use super::date_from;
use crate::domain::check_text;
use crate::facts::{age, school_year};

/// At most this many declared members.
const MAX_MEMBERS: usize = 10;

/// Checks `household` (field paths under `declared_household`). `event_id`
/// decides whether the address is required (a 転入); `today` bounds birth
/// dates; `event_date`, when known, is the day school years are checked on.
pub(super) fn validate(
    v: &mut Violations,
    household: &pb::DeclaredHousehold,
    event_id: &str,
    municipality: Option<&MunicipalityCode>,
    today: NaiveDate,
    event_date: Option<NaiveDate>,
) {
    const AT: &str = "declared_household";
    if household.members.is_empty() || household.members.len() > MAX_MEMBERS {
        v.add(
            format!("{AT}.members"),
            format!("must list 1..={MAX_MEMBERS} members"),
        );
    }
    let heads = household
        .members
        .iter()
        .filter(|m| m.relation == pb::RelationToHead::Head as i32)
        .count();
    if !household.members.is_empty() && heads != 1 {
        v.add(
            format!("{AT}.members"),
            "exactly one member must be RELATION_TO_HEAD_HEAD",
        );
    }
    if household.subject_index as usize >= household.members.len().max(1) {
        v.add(format!("{AT}.subject_index"), "must index a member");
    }
    for (i, member) in household.members.iter().enumerate() {
        let at = format!("{AT}.members[{i}]");
        match &member.person_name {
            Some(name)
                if !name.family_name.trim().is_empty() && !name.given_name.trim().is_empty() =>
            {
                for (field, text) in [
                    ("family_name", &name.family_name),
                    ("given_name", &name.given_name),
                    ("family_name_kana", &name.family_name_kana),
                    ("given_name_kana", &name.given_name_kana),
                ] {
                    if let Err(why) = check_text(text, 50) {
                        v.add(format!("{at}.person_name.{field}"), why);
                    }
                }
            }
            _ => v.add(
                format!("{at}.person_name"),
                "family and given name are required",
            ),
        }
        let birth = match member.birth_date.as_ref().map(date_from) {
            Some(Some(birth)) if birth > today => {
                v.add(format!("{at}.birth_date"), "is in the future");
                None
            }
            Some(Some(birth)) => Some(birth),
            Some(None) => {
                v.add(format!("{at}.birth_date"), "not a calendar date");
                None
            }
            None => {
                v.add(format!("{at}.birth_date"), "is required");
                None
            }
        };
        match pb::RelationToHead::try_from(member.relation) {
            Ok(pb::RelationToHead::Unspecified) | Err(_) => {
                v.add(format!("{at}.relation"), "must be a RelationToHead");
            }
            Ok(_) => {}
        }
        if pb::DeclaredInsurance::try_from(member.insurance).is_err() {
            v.add(format!("{at}.insurance"), "must be a DeclaredInsurance");
        }
        match pb::MemberSource::try_from(member.source) {
            Ok(pb::MemberSource::Unspecified) | Err(_) => v.add(
                format!("{at}.source"),
                "must be MEMBER_SOURCE_TYPED or MEMBER_SOURCE_MY_NUMBER_CARD",
            ),
            Ok(_) => {}
        }
        if member.school_year > 9 {
            v.add(
                format!("{at}.school_year"),
                "must be 0 (not in compulsory school) or 1..=9",
            );
        } else if let (Some(birth), Some(on)) = (birth, event_date) {
            let cohort = school_year(birth, on);
            let expected = if (1..=9).contains(&cohort) { cohort } else { 0 };
            if i64::from(member.school_year) != i64::from(expected) {
                v.add(
                    format!("{at}.school_year"),
                    format!(
                        "does not agree with the birth date (学年 {expected} on the event date)"
                    ),
                );
            }
        }
    }
    match &household.address {
        Some(address) => {
            if let Some(municipality) = municipality
                && address.municipality_code != municipality.as_str()
            {
                v.add(
                    format!("{AT}.address.municipality_code"),
                    format!("must be this municipality ({municipality})"),
                );
            }
            for (field, text) in [
                ("prefecture", &address.prefecture),
                ("municipality", &address.municipality),
                ("street", &address.street),
                ("building", &address.building),
                ("postal_code", &address.postal_code),
            ] {
                if let Err(why) = check_text(text, 100) {
                    v.add(format!("{AT}.address.{field}"), why);
                }
            }
            if address.street.trim().is_empty() {
                v.add(format!("{AT}.address.street"), "is required");
            }
        }
        None if event_id == "move-in" => {
            v.add(format!("{AT}.address"), "the 転入先 is required for a 転入")
        }
        None => {}
    }
}

fn enrolment(kind: id::EnrolmentKind) -> id::Enrolment {
    id::Enrolment {
        kind: kind as i32,
        ..Default::default()
    }
}

/// The declared household as identity records: the subject and the
/// household, for [`crate::facts::facts`]. Call after [`validate`].
///
/// The declared insurance is the enrolment; a member on 国民健康保険 aged
/// 20–59 on `on` (the event date) is also a 国民年金 第1号被保険者
/// (`national-pension-insured`): every resident of that age is insured
/// (国民年金法7条), employees (第2号) and their dependent spouses (第3号) are
/// on an employer's insurance, so one on 国保 is 第1号 — which a registered
/// resident's record would say, and a declaration cannot.
pub(super) fn as_records(
    household: &pb::DeclaredHousehold,
    on: NaiveDate,
) -> (id::Resident, id::Household) {
    let members: Vec<id::Resident> = household
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let relationship = match pb::RelationToHead::try_from(m.relation) {
                Ok(pb::RelationToHead::Head) => id::Relationship::Head,
                Ok(pb::RelationToHead::Spouse) => id::Relationship::Spouse,
                Ok(pb::RelationToHead::Child) => id::Relationship::Child,
                Ok(pb::RelationToHead::Parent) => id::Relationship::Parent,
                _ => id::Relationship::Unspecified,
            };
            let enrolments = match pb::DeclaredInsurance::try_from(m.insurance) {
                Ok(pb::DeclaredInsurance::NationalHealthInsurance) => {
                    let first_category = m
                        .birth_date
                        .as_ref()
                        .and_then(date_from)
                        .is_some_and(|birth| (20..60).contains(&age(birth, on)));
                    let mut kinds = vec![enrolment(id::EnrolmentKind::NationalHealthInsurance)];
                    if first_category {
                        kinds.push(enrolment(id::EnrolmentKind::NationalPensionInsured));
                    }
                    kinds
                }
                Ok(pb::DeclaredInsurance::LateElderlyMedical) => {
                    vec![enrolment(id::EnrolmentKind::LateElderlyMedical)]
                }
                Ok(pb::DeclaredInsurance::Employee) => {
                    vec![enrolment(id::EnrolmentKind::EmployeeHealthInsurance)]
                }
                _ => Vec::new(),
            };
            id::Resident {
                name: format!("declared/{i}"),
                person_name: m.person_name.clone(),
                birth_date: m.birth_date,
                relationship: relationship as i32,
                // Not registered here (yet): `subject.resident` stays unset.
                residence_status: id::ResidenceStatus::Unspecified as i32,
                life_status: id::LifeStatus::Living as i32,
                enrolments,
                ..Default::default()
            }
        })
        .collect();
    let subject = members
        .get(household.subject_index as usize)
        .cloned()
        .unwrap_or_default();
    let household = id::Household {
        name: "declared".to_owned(),
        address: household.address.clone(),
        members,
        ..Default::default()
    };
    (subject, household)
}
