//! The shipped catalog's life-event rules as a table: for each of the seven
//! events, a household as the registry describes it plus interview answers
//! → the procedures and flags the navigator must produce (no I/O; the
//! end-to-end tests run the same rules over gRPC).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::NaiveDate;
use madoguchi_forms::catalog::Catalog;
use madoguchi_forms::domain::navigate;
use madoguchi_forms::facts::{FactInput, facts};
use madoguchi_platform::site::Site;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::types::v1::Date;

fn catalog() -> Catalog {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
    let site = Site::load(&path).unwrap();
    Catalog::load_beside(&path, &site).unwrap()
}

fn enrolment(kind: id::EnrolmentKind) -> id::Enrolment {
    id::Enrolment {
        kind: kind as i32,
        ..Default::default()
    }
}

fn person(
    n: u32,
    relationship: id::Relationship,
    birth: (i32, i32, i32),
    enrolments: Vec<id::Enrolment>,
) -> id::Resident {
    id::Resident {
        name: format!("municipalities/032034/residents/{n}"),
        birth_date: Some(Date {
            year: birth.0,
            month: birth.1,
            day: birth.2,
        }),
        relationship: relationship as i32,
        residence_status: id::ResidenceStatus::Resident as i32,
        life_status: id::LifeStatus::Living as i32,
        enrolments,
        household: "municipalities/032034/households/h".into(),
        ..Default::default()
    }
}

struct Case {
    event: &'static str,
    subject: id::Resident,
    others: Vec<id::Resident>,
    applicant: &'static str,
    resident: bool,
    answers: Vec<(&'static str, String)>,
    procedures: &'static [&'static str],
    flags: &'static [&'static str],
}

fn run(catalog: &Catalog, case: &Case) {
    let event = catalog.life_event(case.event).unwrap();
    let mut members = vec![case.subject.clone()];
    members.extend(case.others.iter().cloned());
    let household = id::Household {
        name: "municipalities/032034/households/h".into(),
        members,
        ..Default::default()
    };
    let answers: Vec<(String, String)> = case
        .answers
        .iter()
        .map(|(q, v)| ((*q).to_owned(), v.clone()))
        .collect();
    let facts = facts(&FactInput {
        subject: &case.subject,
        household: Some(&household),
        applicant: case.applicant,
        applicant_resident: case.resident,
        photo_id: true,
        event_date: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        event,
        answers: &answers,
    });
    let navigation = navigate(catalog, event, &facts);
    let got: Vec<&str> = navigation
        .procedures
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(got, case.procedures, "{}: {facts:?}", case.event);
    let flags: Vec<&str> = navigation.flags.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(flags, case.flags, "{}", case.event);
}

#[test]
fn every_life_event_lists_what_the_facts_imply() {
    use id::EnrolmentKind as E;
    use id::Relationship as R;
    let catalog = catalog();
    let r = |n: u32| format!("municipalities/032034/residents/{n}");
    let mut deceased = person(
        1,
        R::Head,
        (1943, 5, 20),
        vec![
            enrolment(E::NationalHealthInsurance),
            id::Enrolment {
                kind: E::Pension as i32,
                pension_kind: id::PensionKind::National as i32,
                ..Default::default()
            },
        ],
    );
    deceased.life_status = id::LifeStatus::Deceased as i32;
    let wife = person(
        2,
        R::Spouse,
        (1945, 11, 1),
        vec![enrolment(E::NationalHealthInsurance)],
    );
    let son = person(3, R::Child, (1980, 1, 1), vec![]);
    let family = person(
        10,
        R::Head,
        (1990, 4, 12),
        vec![
            enrolment(E::NationalHealthInsurance),
            enrolment(E::ChildAllowance),
        ],
    );
    let child = person(
        11,
        R::Child,
        (2021, 5, 10),
        vec![enrolment(E::MedicalSubsidy)],
    );
    let cases = [
        // 死亡 of a 国保 head with 国民年金, two survivors at home: 世帯主変更
        // is needed, 後期高齢者 and 厚生年金 procedures are not.
        Case {
            event: "death",
            subject: deceased.clone(),
            others: vec![wife.clone(), son.clone()],
            applicant: "municipalities/032034/residents/2",
            resident: true,
            answers: vec![
                ("death_registered", "no".into()),
                ("funeral_held", "yes".into()),
                ("chief_mourner", r(2)),
                ("survivor", r(2)),
                ("medical_costs", "no".into()),
                ("pension_book_found", "yes".into()),
                ("mourner_can_visit", "yes".into()),
            ],
            procedures: &[
                "shibo-todoke",
                "setainushi-henko",
                "kokuho-soshitsu",
                "nenkin-kokumin",
            ],
            flags: &[],
        },
        // 転出 of a family with a small child.
        Case {
            event: "move-out",
            subject: family.clone(),
            others: vec![child.clone()],
            applicant: "municipalities/032034/residents/10",
            resident: true,
            answers: vec![("keeps_my_number_card", "yes".into())],
            procedures: &[
                "tenshutsu-todoke",
                "kokuho-soshitsu",
                "jido-teate-shometsu",
                "iryohi-josei",
            ],
            flags: &["card-continued-use"],
        },
        // 転入 with a child; a photo ID was shown, so the seal can be registered today.
        Case {
            event: "move-in",
            subject: family.clone(),
            others: vec![],
            applicant: "municipalities/032034/residents/10",
            resident: true,
            answers: vec![
                ("has_children", "yes".into()),
                ("national_health_insurance", "no".into()),
                ("wants_seal_registration", "yes".into()),
            ],
            procedures: &[
                "tennyu-todoke",
                "jido-teate-nintei",
                "iryohi-josei",
                "inkan-toroku",
            ],
            flags: &["child-allowance-15-days"],
        },
        Case {
            event: "relocation",
            subject: family.clone(),
            others: vec![child.clone()],
            applicant: "municipalities/032034/residents/10",
            resident: true,
            answers: vec![],
            procedures: &["tenkyo-todoke", "iryohi-josei"],
            flags: &[],
        },
        Case {
            event: "birth",
            subject: family.clone(),
            others: vec![],
            applicant: "municipalities/032034/residents/10",
            resident: true,
            answers: vec![("national_health_insurance", "yes".into())],
            procedures: &[
                "shussei-todoke",
                "kokuho-shutoku",
                "jido-teate-nintei",
                "iryohi-josei",
            ],
            flags: &[],
        },
        Case {
            event: "marriage",
            subject: son.clone(),
            others: vec![],
            applicant: "municipalities/032034/residents/3",
            resident: true,
            answers: vec![("moves", "no".into())],
            procedures: &["kon-in-todoke"],
            flags: &[],
        },
        Case {
            event: "divorce",
            subject: family,
            others: vec![child],
            applicant: "municipalities/032034/residents/10",
            resident: true,
            answers: vec![("has_children", "yes".into()), ("moves", "yes".into())],
            procedures: &[
                "rikon-todoke",
                "tenkyo-todoke",
                "hitorioya",
                "jido-teate-nintei",
            ],
            flags: &[],
        },
    ];
    for case in &cases {
        run(&catalog, case);
    }
}
