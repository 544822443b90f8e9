//! The shipped catalog's life-event rules as tables over the sample
//! registry (`sites/ofunato/residents.csv`): for every life event, the
//! households of the sample — the おくやみ family, a self-employed family,
//! a family that moved in with children, a single elderly woman, a
//! household with a disability certificate, a young single worker — and
//! the answers to the questions no record answers, the checklist the
//! public guides list for that household (`include`) and what they list
//! for other households only (`exclude`, each with the reason). The
//! expectations come from the guides cited in each procedure's `source`,
//! not from the engine's output. The end-to-end tests run the same rules
//! over gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use madoguchi_catalog::Catalog;
use madoguchi_forms::domain::{navigate, unanswered_questions};
use madoguchi_forms::facts::{FactInput, facts};
use madoguchi_platform::site::Site;
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::types::v1::Date;

fn site_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato")
}

fn catalog() -> Catalog {
    let path = site_dir().join("site.toml");
    let site = Site::load(&path).unwrap();
    Catalog::load_beside(&path, &site).unwrap()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .unwrap_or_else(|| text.parse::<WarekiDate>().unwrap().to_gregorian())
}

fn pb_date(d: NaiveDate) -> Date {
    use chrono::Datelike;
    Date {
        year: d.year(),
        month: i32::try_from(d.month()).unwrap(),
        day: i32::try_from(d.day()).unwrap(),
    }
}

fn name(resident_id: &str) -> String {
    format!("municipalities/032034/residents/{resident_id}")
}

/// The sample registry as the identity service serves it (a reader of the
/// sample's plain cells: no quoted commas occur in it).
struct Registry {
    residents: HashMap<String, id::Resident>,
}

impl Registry {
    fn sample() -> Self {
        let text = std::fs::read_to_string(site_dir().join("residents.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let mut residents = HashMap::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let cells: HashMap<&str, &str> = header.iter().copied().zip(line.split(',')).collect();
            let enrolments = cells["enrolments"]
                .split(';')
                .filter(|e| !e.is_empty())
                .map(|item| {
                    let parts: Vec<&str> = item.split(':').collect();
                    let kind = id::EnrolmentKind::from_catalog_name(parts[0]).unwrap();
                    let mut e = id::Enrolment {
                        kind: kind as i32,
                        ..Default::default()
                    };
                    match (kind, parts.as_slice()) {
                        (id::EnrolmentKind::Pension, [_, pension]) => {
                            e.pension_kind = match *pension {
                                "employees" => id::PensionKind::Employees,
                                "mutual-aid" => id::PensionKind::MutualAid,
                                _ => id::PensionKind::National,
                            } as i32;
                        }
                        (id::EnrolmentKind::DisabilityCertificate, [_, disability, grade]) => {
                            e.disability_kind = match *disability {
                                "intellectual" => id::DisabilityKind::Intellectual,
                                "mental" => id::DisabilityKind::Mental,
                                _ => id::DisabilityKind::Physical,
                            } as i32;
                            e.grade = grade.parse().unwrap();
                        }
                        _ => {}
                    }
                    e
                })
                .collect();
            let relationship = match cells["relationship"] {
                "head" => id::Relationship::Head,
                "spouse" => id::Relationship::Spouse,
                "child" => id::Relationship::Child,
                "parent" => id::Relationship::Parent,
                "" => id::Relationship::Unspecified,
                _ => id::Relationship::OtherRelative,
            };
            let deceased = !cells["death_date"].is_empty();
            let resident = id::Resident {
                name: name(cells["resident_id"]),
                resident_id: cells["resident_id"].into(),
                birth_date: Some(pb_date(date(cells["birth_date"]))),
                household: if cells["household_id"].is_empty() {
                    String::new()
                } else {
                    format!("municipalities/032034/households/{}", cells["household_id"])
                },
                relationship: relationship as i32,
                residence_status: if cells["residence_status"] == "resident" {
                    id::ResidenceStatus::Resident
                } else {
                    id::ResidenceStatus::NonResident
                } as i32,
                life_status: if deceased {
                    id::LifeStatus::Deceased
                } else {
                    id::LifeStatus::Living
                } as i32,
                death_date: deceased.then(|| pb_date(date(cells["death_date"]))),
                enrolments,
                relatives: cells["relatives"]
                    .split(';')
                    .filter(|r| !r.is_empty())
                    .map(name)
                    .collect(),
                ..Default::default()
            };
            residents.insert(cells["resident_id"].to_owned(), resident);
        }
        Self { residents }
    }

    fn household(&self, of: &id::Resident) -> Option<id::Household> {
        if of.household.is_empty() {
            return None;
        }
        let mut members: Vec<id::Resident> = self
            .residents
            .values()
            .filter(|r| r.household == of.household)
            .cloned()
            .collect();
        members.sort_by(|a, b| a.resident_id.cmp(&b.resident_id));
        Some(id::Household {
            name: of.household.clone(),
            members,
            ..Default::default()
        })
    }
}

struct Case {
    /// What the case shows.
    what: &'static str,
    event: &'static str,
    subject: &'static str,
    /// Marks the subject deceased on this date (a death the sample does
    /// not record yet).
    dies_on: Option<&'static str>,
    applicant: &'static str,
    event_date: &'static str,
    answers: &'static [(&'static str, &'static str)],
    include: &'static [&'static str],
    exclude: &'static [(&'static str, &'static str)],
    flags: &'static [&'static str],
}

fn run(catalog: &Catalog, registry: &Registry, case: &Case) {
    let event = catalog.life_event(case.event).unwrap();
    let mut subject = registry.residents[case.subject].clone();
    let mut household = registry.household(&subject);
    if let Some(day) = case.dies_on {
        subject.life_status = id::LifeStatus::Deceased as i32;
        subject.death_date = Some(pb_date(date(day)));
        if let Some(h) = household.as_mut() {
            for m in h.members.iter_mut().filter(|m| m.name == subject.name) {
                m.life_status = id::LifeStatus::Deceased as i32;
            }
        }
    }
    let answers: Vec<(String, String)> = case
        .answers
        .iter()
        .map(|(q, v)| {
            let value = if v.chars().all(|c| c.is_ascii_digit()) {
                name(v)
            } else {
                (*v).to_owned()
            };
            ((*q).to_owned(), value)
        })
        .collect();
    let applicant = if case.applicant.is_empty() {
        String::new()
    } else {
        name(case.applicant)
    };
    let applicant_resident = registry
        .residents
        .get(case.applicant)
        .is_some_and(|r| r.residence_status == id::ResidenceStatus::Resident as i32);
    let event_date = date(case.event_date);
    let facts = facts(&FactInput {
        subject: &subject,
        household: household.as_ref(),
        applicant: &applicant,
        applicant_resident,
        photo_id: true,
        event_date,
        today: event_date,
        event,
        answers: &answers,
    });
    let unanswered: Vec<&str> = unanswered_questions(event, &facts)
        .iter()
        .map(|q| q.id.as_str())
        .collect();
    assert!(
        unanswered.is_empty(),
        "{}: unanswered {unanswered:?}",
        case.what
    );
    let navigation = navigate(catalog, event, &facts);
    let got: BTreeSet<&str> = navigation
        .procedures
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    let want: BTreeSet<&str> = case.include.iter().copied().collect();
    assert_eq!(
        got,
        want,
        "{}\n  missing: {:?}\n  unexpected: {:?}\n  facts: {facts:?}",
        case.what,
        want.difference(&got).collect::<Vec<_>>(),
        got.difference(&want).collect::<Vec<_>>()
    );
    for (excluded, why) in case.exclude {
        assert!(
            catalog.procedure(excluded).is_some(),
            "{}: {excluded} is not in the catalog",
            case.what
        );
        assert!(
            !got.contains(excluded),
            "{}: {excluded} listed although {why}",
            case.what
        );
    }
    let flags: BTreeSet<&str> = navigation.flags.iter().map(|f| f.id.as_str()).collect();
    let want_flags: BTreeSet<&str> = case.flags.iter().copied().collect();
    assert_eq!(flags, want_flags, "{}", case.what);
}

const SEED_DEATH: &[(&str, &str)] = &[
    ("funeral_held", "yes"),
    ("chief_mourner", "100002"),
    ("survivor", "100002"),
    ("medical_costs", "yes"),
    ("pension_book_found", "no"),
    ("mourner_can_visit", "no"),
];

#[test]
fn death() {
    let (catalog, registry) = (catalog(), Registry::sample());
    for case in [
        Case {
            what: "おくやみ: 太郎 (後期高齢・要介護・身体障害1級・厚生年金・家屋と土地), his daughter from 仙台市 at the counter",
            event: "death",
            subject: "100001",
            dies_on: None,
            applicant: "100003",
            event_date: "2023-06-16",
            answers: SEED_DEATH,
            include: &[
                "koki-soshitsu",
                "sosaihi",
                "kogaku-ryoyohi",
                "koki-hokenryo-seisan",
                "kaigo-soshitsu",
                "kaigo-hokenryo-seisan",
                "shogai-techo-henkan",
                "inkan-haishi",
                "nenkin-kosei",
                "mishikyu-nenkin",
                "izoku-kosei-nenkin",
                "jumin-zei-sozoku",
                "kotei-shisan-sozokunin",
                "sozoku-toki",
                "sozoku-zei",
                "sozoku-hoki",
                "shomeisho-sozoku",
            ],
            exclude: &[
                (
                    "shibo-todoke",
                    "the registry records the death: the 死亡届 was accepted",
                ),
                (
                    "setainushi-henko",
                    "only 花子 remains and becomes the head without a 届",
                ),
                ("kokuho-soshitsu", "he was in 後期高齢者医療, not 国保"),
                ("kokuho-sosaihi", "葬祭費 comes from 後期高齢者医療"),
                (
                    "nenkin-kokumin",
                    "he drew 厚生年金 (年金事務所), not only 国民年金",
                ),
                ("izoku-kiso-nenkin", "no child under 18 remains"),
                ("kaigo-kogaku-service", "no 要介護認定 is recorded"),
                ("jido-teate-shometsu", "no 児童手当"),
                (
                    "juntei-shinkoku",
                    "no business income: a pension within the limit needs no 準確定申告",
                ),
                ("kei-jidosha-meigi", "no light vehicle in his name"),
            ],
            flags: &[
                "applicant-non-resident",
                "not-chief-mourner",
                "mourner-cannot-visit",
                "pension-book-missing",
                "property-in-deceased-name",
                "survivor-alone",
            ],
        },
        Case {
            what: "a single elderly woman in 市営住宅 (後期高齢・要介護認定・国民年金・市営墓地); a relative from outside the registry",
            event: "death",
            subject: "100031",
            dies_on: Some("2026-03-20"),
            applicant: "",
            event_date: "2026-03-20",
            answers: &[
                ("funeral_held", "yes"),
                ("chief_mourner", "999999"),
                ("survivor", "999999"),
                ("medical_costs", "no"),
                ("pension_book_found", "yes"),
                ("mourner_can_visit", "yes"),
            ],
            include: &[
                "koki-soshitsu",
                "sosaihi",
                "koki-hokenryo-seisan",
                "kaigo-soshitsu",
                "kaigo-hokenryo-seisan",
                "kaigo-kogaku-service",
                "inkan-haishi",
                "nenkin-kokumin",
                "jumin-zei-sozoku",
                "suido-meigi",
                "shiei-jutaku-shokei",
                "bochi-shiyosha",
                "sozoku-hoki",
                "shomeisho-sozoku",
            ],
            exclude: &[
                ("setainushi-henko", "nobody remains in the household"),
                (
                    "mishikyu-nenkin",
                    "国民年金 only: 未支給年金 is claimed with the 国民年金 死亡届 at the city",
                ),
                ("izoku-kiso-nenkin", "no spouse or child"),
                ("kogaku-ryoyohi", "no high medical costs were declared"),
                ("sozoku-toki", "no property in her name"),
            ],
            flags: &["applicant-non-resident", "not-chief-mourner"],
        },
        Case {
            what: "a self-employed 国保 head with a wife and a small child",
            event: "death",
            subject: "100011",
            dies_on: Some("2026-03-10"),
            applicant: "100012",
            event_date: "2026-03-10",
            answers: &[
                ("funeral_held", "yes"),
                ("chief_mourner", "100012"),
                ("survivor", "100012"),
                ("medical_costs", "no"),
                ("pension_book_found", "yes"),
                ("mourner_can_visit", "yes"),
            ],
            include: &[
                "setainushi-henko",
                "kokuho-soshitsu",
                "kokuho-setainushi",
                "kokuho-sosaihi",
                "izoku-kiso-nenkin",
                "jumin-zei-sozoku",
                "juntei-shinkoku",
                "kojin-jigyo-haigyo",
                "kei-jidosha-meigi",
                "kei-zei-haisha",
                "suido-meigi",
                "jido-teate-shometsu",
                "jido-teate-nintei",
                "hitorioya",
                "hitorioya-iryo",
                "sozoku-hoki",
                "shomeisho-sozoku",
            ],
            exclude: &[
                ("koki-soshitsu", "he was 35, in 国保"),
                ("kaigo-soshitsu", "under 65: not a 第1号被保険者"),
                ("nenkin-kokumin", "he drew no pension"),
                ("shibo-ichijikin", "遺族基礎年金 is paid (a child under 18)"),
                (
                    "kafu-nenkin",
                    "遺族基礎年金 comes first while a child is under 18",
                ),
                ("izoku-kosei-nenkin", "no 厚生年金"),
                ("sozoku-toki", "no property recorded"),
            ],
            flags: &[],
        },
    ] {
        run(&catalog, &registry, &case);
    }
}

#[test]
fn move_in_move_out_relocation() {
    let (catalog, registry) = (catalog(), Registry::sample());
    for case in [
        Case {
            what: "転入: a company employee's family with a 小4 son, a 3-year-old and a dog",
            event: "move-in",
            subject: "100021",
            dies_on: None,
            applicant: "100021",
            event_date: "2026-04-01",
            answers: &[
                ("has_my_number_card", "yes"),
                ("needs_childcare", "yes"),
                ("has_driving_licence", "yes"),
                ("owns_car", "yes"),
                ("wants_seal_registration", "no"),
            ],
            include: &[
                "tennyu-todoke",
                "mynumber-card-tennyu",
                "jido-teate-nintei",
                "iryohi-josei",
                "hoikusho-moshikomi",
                "yobo-sesshu-tennyu",
                "gakko-tennyugaku",
                "inu-jusho",
                "unten-menkyo-henko",
                "jidosha-toroku-henko",
                "suido-kaishi",
            ],
            exclude: &[
                (
                    "kokuho-shutoku",
                    "insured through his employer; his wife and children are dependents",
                ),
                (
                    "kokumin-nenkin-shutoku",
                    "第2号・第3号 through the employer",
                ),
                ("koki-tennyu", "nobody is 75 or older"),
                ("kaigo-shutoku-65", "nobody is 65 or older"),
                ("inkan-toroku", "they do not register a seal"),
                ("kei-zei-jusho", "no light vehicle"),
                ("jido-fuyo-tennyu", "no 児童扶養手当"),
            ],
            flags: &["child-allowance-15-days"],
        },
        Case {
            what: "転出: the self-employed family (国保, 児童手当, 子ども医療費, 軽トラ, 水道)",
            event: "move-out",
            subject: "100011",
            dies_on: None,
            applicant: "100011",
            event_date: "2026-04-01",
            answers: &[("keeps_my_number_card", "yes")],
            include: &[
                "tenshutsu-todoke",
                "kokuho-soshitsu",
                "jido-teate-shometsu",
                "iryohi-josei-henkan",
                "kei-zei-jusho",
                "suido-chushi",
            ],
            exclude: &[
                ("koki-tenshutsu", "nobody is in 後期高齢者医療"),
                ("kaigo-tenshutsu", "nobody is 65 or older"),
                ("inkan-haishi", "no registered seal"),
                ("gakko-tenshutsu", "the child is not at school yet"),
            ],
            flags: &["card-continued-use"],
        },
        Case {
            what: "転居 within the city: the household with a disability certificate",
            event: "relocation",
            subject: "100041",
            dies_on: None,
            applicant: "100041",
            event_date: "2026-04-01",
            answers: &[
                ("has_my_number_card", "no"),
                ("has_driving_licence", "yes"),
                ("owns_car", "no"),
            ],
            include: &[
                "tenkyo-todoke",
                "kokuho-jusho",
                "jukudo-iryo-henko",
                "shogai-techo-jusho",
                "kei-zei-jusho",
                "suido-chushi",
                "suido-kaishi",
                "unten-menkyo-henko",
            ],
            exclude: &[
                ("mynumber-card-kisai", "nobody holds a card"),
                ("kaigo-jusho", "nobody is 65 or older yet"),
                (
                    "gakko-tenko-shinai",
                    "the son is past the municipal schools",
                ),
                ("jidosha-toroku-henko", "no registered car"),
            ],
            flags: &[],
        },
    ] {
        run(&catalog, &registry, &case);
    }
}

#[test]
fn birth() {
    let (catalog, registry) = (catalog(), Registry::sample());
    for case in [
        Case {
            what: "出生 in the self-employed 国保 family that already receives 児童手当",
            event: "birth",
            subject: "100012",
            dies_on: None,
            applicant: "100012",
            event_date: "2026-04-01",
            answers: &[("low_birth_weight", "no")],
            include: &[
                "shussei-todoke",
                "kokuho-shutoku",
                "shussan-ikuji-kokuho",
                "jido-teate-gakugaku",
                "iryohi-josei",
                "shusseihyo",
                "yobo-sesshu-yoshinhyo",
                "mynumber-card-nyuji",
                "sanzen-sango-nenkin",
                "sanzen-sango-kokuho",
                "kosodate-kyufu",
            ],
            exclude: &[
                ("kodomo-kenpo-kanyu", "nobody has an employer's insurance"),
                (
                    "shussan-teate",
                    "the mother is not insured through an employer",
                ),
                (
                    "jido-teate-nintei",
                    "already a recipient: the amount is revised instead",
                ),
                ("teitaijuji", "2,500 g or more"),
            ],
            flags: &["child-allowance-15-days-birth"],
        },
        Case {
            what: "出生 in the employee's family (妻は第3号)",
            event: "birth",
            subject: "100022",
            dies_on: None,
            applicant: "100022",
            event_date: "2026-04-01",
            answers: &[("low_birth_weight", "yes")],
            include: &[
                "shussei-todoke",
                "kodomo-kenpo-kanyu",
                "shussan-ikuji-kenpo",
                "jido-teate-nintei",
                "iryohi-josei",
                "shusseihyo",
                "teitaijuji",
                "mijukuji-iryo",
                "yobo-sesshu-yoshinhyo",
                "mynumber-card-nyuji",
                "kosodate-kyufu",
            ],
            exclude: &[
                (
                    "kokuho-shutoku",
                    "the child joins the father's health insurance",
                ),
                ("shussan-ikuji-kokuho", "paid by the employer's insurance"),
                ("sanzen-sango-nenkin", "a 第3号被保険者 pays no premium"),
                ("ikuji-kyugyo-kyufu", "the mother is not employed"),
            ],
            flags: &["child-allowance-15-days-birth"],
        },
    ] {
        run(&catalog, &registry, &case);
    }
}

#[test]
fn marriage_and_divorce() {
    let (catalog, registry) = (catalog(), Registry::sample());
    for case in [
        Case {
            what: "婚姻: a single 国保 worker takes her husband's name and joins his insurance",
            event: "marriage",
            subject: "100051",
            dies_on: None,
            applicant: "100051",
            event_date: "2026-04-01",
            answers: &[
                ("moves", "yes"),
                ("name_changes", "yes"),
                ("joins_spouse_insurance", "yes"),
                ("has_driving_licence", "yes"),
                ("has_passport", "no"),
            ],
            include: &[
                "kon-in-todoke",
                "tenkyo-todoke",
                "mynumber-card-kisai",
                "hoken-hifuyosha",
                "kokuho-soshitsu",
                "nenkin-3go",
                "inkan-toroku",
                "unten-menkyo-henko",
            ],
            exclude: &[
                ("kokuho-jusho", "she leaves 国保 instead of renaming it"),
                ("ryoken-kisai", "no passport"),
                ("jido-fuyo-shometsu", "no 児童扶養手当"),
            ],
            flags: &["seal-name-change"],
        },
        Case {
            what: "離婚 (協議): the mother keeps her son, returns to her maiden name and moves",
            event: "divorce",
            subject: "100012",
            dies_on: None,
            applicant: "100012",
            event_date: "2026-04-01",
            answers: &[
                ("by_court", "no"),
                ("keeps_married_name", "no"),
                ("moves", "yes"),
                ("has_driving_licence", "no"),
            ],
            include: &[
                "rikon-todoke",
                "tenkyo-todoke",
                "mynumber-card-kisai",
                "ko-no-uji",
                "nyuseki-todoke",
                "hitorioya",
                "hitorioya-iryo",
                "jido-teate-jukyusha-henko",
                "yoikuhi-sodan",
                "fukushi-shikin",
            ],
            exclude: &[
                ("rikon-todoke-saiban", "a divorce by agreement"),
                ("rikon-koshou", "she returns to her maiden name"),
                ("kokuho-shutoku", "already in 国保 herself"),
                ("nenkin-bunkatsu", "neither was in 厚生年金"),
                ("inkan-toroku", "no registered seal"),
                ("unten-menkyo-henko", "no driving licence"),
            ],
            flags: &["child-stays-in-register"],
        },
    ] {
        run(&catalog, &registry, &case);
    }
}

#[test]
fn age_65_school_disability_job_loss() {
    let (catalog, registry) = (catalog(), Registry::sample());
    for case in [
        Case {
            what: "65歳到達 of a 国保 farmer without a pension claim yet",
            event: "age-65",
            subject: "100041",
            dies_on: None,
            applicant: "100041",
            event_date: "2026-05-01",
            answers: &[("needs_care", "no"), ("returns_licence", "no")],
            include: &["kaigo-hokenryo-koza", "rorei-nenkin", "haien-kyukin"],
            exclude: &[
                ("kaigo-nintei", "no need for care"),
                ("kaigo-futan-gendo", "not certified"),
                ("koki-shogai-nintei", "no disability certificate"),
            ],
            flags: &[],
        },
        Case {
            what: "介護: the certified single woman plans a short stay",
            event: "age-65",
            subject: "100031",
            dies_on: None,
            applicant: "100031",
            event_date: "2026-04-01",
            answers: &[
                ("enters_facility", "yes"),
                ("home_adaptation", "no"),
                ("returns_licence", "no"),
            ],
            include: &[
                "kaigo-hokenryo-koza",
                "haien-kyukin",
                "kaigo-futan-gendo",
                "shogaisha-kojo-nintei",
            ],
            exclude: &[
                (
                    "kaigo-nintei",
                    "already certified (the question is not asked)",
                ),
                ("rorei-nenkin", "already a pensioner"),
                ("kaigo-jutaku-kaishu", "no adaptation planned"),
            ],
            flags: &["care-premium-from-pension"],
        },
        Case {
            what: "就学 of the self-employed family's son (April 2028)",
            event: "school-entry",
            subject: "100013",
            dies_on: None,
            applicant: "100012",
            event_date: "2028-04-01",
            answers: &[("needs_school_aid", "no")],
            include: &["shugakuji-kenshin", "nyugaku-tsuchi"],
            exclude: &[
                ("shugaku-enjo", "no aid requested and no 児童扶養手当"),
                ("hokago-jido-club", "not in municipal childcare"),
                ("shugaku-sodan", "no disability certificate"),
            ],
            flags: &[],
        },
        Case {
            what: "障がい者手帳: 療育手帳A for a 16-year-old",
            event: "disability-certificate",
            subject: "100043",
            dies_on: None,
            applicant: "100042",
            event_date: "2026-04-01",
            answers: &[
                ("ongoing_treatment", "no"),
                ("needs_equipment", "no"),
                ("needs_services", "yes"),
                ("owns_car", "no"),
            ],
            include: &[
                "techo-kofu",
                "ryoiku-hantei",
                "shogai-fukushi-service",
                "jukudo-iryo",
                "shogaiji-fukushi-teate",
                "tokubetsu-jido-fuyo",
                "kei-zei-genmen",
                "shogaisha-kojo",
                "nhk-menjo",
                "fukushi-taxi",
            ],
            exclude: &[
                ("hosogu", "not a physical disability"),
                (
                    "tokubetsu-shogaisha-teate",
                    "under 20: 障害児福祉手当 instead",
                ),
                ("shogai-nenkin", "under 20"),
                ("jiritsu-shien-iryo", "no ongoing treatment"),
                ("jidosha-zei-genmen", "no registered car"),
            ],
            flags: &[],
        },
        Case {
            what: "離職 (会社都合) of the employee; his wife was a 第3号",
            event: "job-loss",
            subject: "100021",
            dies_on: None,
            applicant: "100021",
            event_date: "2026-04-01",
            answers: &[
                ("continues_employer_insurance", "no"),
                ("seeks_work", "yes"),
                ("involuntary", "yes"),
                ("needs_livelihood_support", "no"),
            ],
            include: &[
                "kokuho-shutoku",
                "kokumin-nenkin-shubetsu",
                "kokuho-keigen-shitsugyo",
                "kokumin-nenkin-menjo",
                "kihon-teate",
                "jumin-zei-futsu",
                "kakutei-shinkoku-taishoku",
            ],
            exclude: &[
                (
                    "nin-i-keizoku",
                    "he does not continue his employer's insurance",
                ),
                ("jiritsu-sodan", "no livelihood support asked"),
            ],
            flags: &[],
        },
    ] {
        run(&catalog, &registry, &case);
    }
}

#[test]
fn questions_follow_the_household() {
    let (catalog, registry) = (catalog(), Registry::sample());
    let event = catalog.life_event("move-in").unwrap();
    let single = registry.residents["100051"].clone();
    let household = registry.household(&single);
    let facts = facts(&FactInput {
        subject: &single,
        household: household.as_ref(),
        applicant: &single.name,
        applicant_resident: true,
        photo_id: true,
        event_date: date("2026-04-01"),
        today: date("2026-04-01"),
        event,
        answers: &[],
    });
    let asked: Vec<&str> = unanswered_questions(event, &facts)
        .iter()
        .map(|q| q.id.as_str())
        .collect();
    // No child under 6: the childcare question is not asked.
    assert!(!asked.contains(&"needs_childcare"), "{asked:?}");
    assert!(asked.contains(&"wants_seal_registration"), "{asked:?}");
    // Every question says why no record answers it.
    for event in &catalog.life_events {
        for q in &event.questions {
            assert!(!q.why_ja.is_empty(), "{}.{}", event.id, q.id);
        }
    }
}
