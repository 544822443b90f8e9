//! 代理人 — may this verified visitor do this procedure for its subject?
//!
//! The answer, per requested procedure, is one of the allowed bases (self,
//! anyone, household member, family, 委任状, legal representative) or the
//! precise reason it is refused. The checks run in a fixed order so that
//! the reason given is the one the staff can act on first:
//!
//! 1. the visitor must be verified (本人確認), with a photo ID when the
//!    procedure requires one (e.g. 戸籍の広域交付);
//! 2. the subject must be registered here unless the procedure allows
//!    otherwise (a 住登外者 gets no 住民票 from this municipality);
//! 3. the visitor is the subject → allowed;
//! 4. the procedure's policy: anyone / household member / family;
//! 5. a legal representation of the subject, if the policy admits one;
//! 6. a 委任状 from the subject, if the policy admits one: the delegator
//!    must be alive (委任 ends with death, 民法653条), the proxy on the
//!    letter must be the visitor, the letter dated no later than today
//!    and no more than the validity period (3 months by default) ago, and
//!    it must list the procedure.

use chrono::{Months, NaiveDate};

use super::person::age_on;
use super::verification::Claim;

/// How a procedure may be requested by someone other than its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyPolicy {
    /// Anyone may.
    pub allow_anyone: bool,
    /// A member of the subject's household may, without 委任状.
    pub allow_household_member: bool,
    /// Spouse or lineal relative may, without 委任状.
    pub allow_family: bool,
    /// A proxy with a valid 委任状 may.
    pub allow_power_of_attorney: bool,
    /// A legal representative may.
    pub allow_legal_representative: bool,
    /// The visitor must have shown a photo ID.
    pub require_photo_id: bool,
    /// The subject need not be registered in this municipality.
    pub allow_non_resident_subject: bool,
}

/// The visitor's stated relationship to the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Not stated.
    Unstated,
    /// Stated as self.
    Myself,
    /// Spouse.
    Spouse,
    /// Lineal relative.
    LinealRelative,
    /// No family relationship.
    Other,
}

/// Residence of a person relative to this municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    /// Registered here.
    Resident,
    /// Registered elsewhere (住登外).
    NonResident,
    /// Moved out (除票 kept).
    MovedOut,
}

/// The verified visitor.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// Whether 本人確認 succeeded.
    pub verified: bool,
    /// Whether a photo ID counted.
    pub photo_id: bool,
    /// Who they said they are.
    pub claim: Claim,
    /// Their registry id, if they are in the registry.
    pub resident_id: Option<String>,
    /// Their household id, if they live in one here.
    pub household_id: Option<String>,
    /// Their relationship to their household head (for deriving family).
    pub head_relation: Option<HeadRelation>,
}

/// Relationship to the household head, as far as family derivation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRelation {
    /// The head.
    Head,
    /// Spouse of the head.
    Spouse,
    /// Child of the head.
    Child,
    /// Parent of the head.
    Parent,
    /// Anything else.
    Other,
}

/// The subject person of a procedure, from the registry.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Registry id.
    pub resident_id: String,
    /// Name and birth date.
    pub claim: Claim,
    /// Household id, if any.
    pub household_id: Option<String>,
    /// Relationship to the household head.
    pub head_relation: Option<HeadRelation>,
    /// Residence.
    pub residence: Residence,
    /// Date of death, if deceased.
    pub death_date: Option<NaiveDate>,
    /// Registry ids of spouse and lineal relatives outside the household.
    pub relatives: Vec<String>,
}

/// A 委任状.
#[derive(Debug, Clone)]
pub struct PowerOfAttorney {
    /// Registry id of the delegator.
    pub delegator_id: String,
    /// The delegator's date of death, if deceased.
    pub delegator_death_date: Option<NaiveDate>,
    /// The proxy as written on the letter.
    pub proxy: Claim,
    /// Procedure ids delegated.
    pub procedures: Vec<String>,
    /// Date written.
    pub written_on: NaiveDate,
}

/// Kinds of legal representative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalKind {
    /// 親権者 of a minor.
    ParentalAuthority,
    /// 成年後見人.
    AdultGuardian,
}

/// A claimed legal representation.
#[derive(Debug, Clone)]
pub struct LegalRepresentation {
    /// Which kind.
    pub kind: LegalKind,
    /// Registry id of the represented person.
    pub represented_id: String,
    /// Issue date of the evidence (登記事項証明書 / 戸籍), if presented.
    pub evidence_issued_on: Option<NaiveDate>,
}

/// One request to decide.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Procedure id.
    pub procedure: &'a str,
    /// The subject person.
    pub subject: &'a Subject,
    /// The stated relation.
    pub relation: Relation,
    /// The rule.
    pub policy: ProxyPolicy,
}

/// Allowed bases and refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Allowed: the visitor is the subject.
    Myself,
    /// Allowed: anyone may.
    Anyone,
    /// Allowed: same household.
    HouseholdMember,
    /// Allowed: spouse or lineal relative.
    Family,
    /// Allowed: valid 委任状.
    PowerOfAttorney,
    /// Allowed: legal representative.
    LegalRepresentative,
    /// Refused: not verified.
    VisitorNotVerified,
    /// Refused: photo ID needed.
    PhotoIdRequired,
    /// Refused: no proxies for this procedure.
    ProxyNotAllowed,
    /// Refused: no 委任状 for this subject.
    PowerOfAttorneyMissing,
    /// Refused: 委任状 too old.
    PowerOfAttorneyExpired,
    /// Refused: 委任状 dated after today.
    PowerOfAttorneyFutureDated,
    /// Refused: procedure not delegated.
    OutOfScope,
    /// Refused: 委任状 from someone else than the subject.
    DelegatorMismatch,
    /// Refused: 委任状 names another proxy.
    ProxyMismatch,
    /// Refused: the delegator has died.
    DelegatorDeceased,
    /// Refused: the representation does not hold.
    LegalRepresentationInvalid,
    /// Refused: the subject is not registered here.
    SubjectNotResident,
}

impl Reason {
    /// Whether this reason allows the procedure.
    pub fn allowed(self) -> bool {
        matches!(
            self,
            Reason::Myself
                | Reason::Anyone
                | Reason::HouseholdMember
                | Reason::Family
                | Reason::PowerOfAttorney
                | Reason::LegalRepresentative
        )
    }

    /// A lowercase explanation for staff, without personal data.
    pub fn message(self, validity_months: u32) -> String {
        match self {
            Reason::Myself => "the visitor is the subject".into(),
            Reason::Anyone => "anyone may do this procedure".into(),
            Reason::HouseholdMember => "the visitor belongs to the subject's household".into(),
            Reason::Family => "the visitor is the subject's spouse or lineal relative".into(),
            Reason::PowerOfAttorney => "a valid power of attorney covers this procedure".into(),
            Reason::LegalRepresentative => {
                "the visitor is the subject's legal representative".into()
            }
            Reason::VisitorNotVerified => "the visitor's identity is not verified".into(),
            Reason::PhotoIdRequired => "this procedure requires a photo id".into(),
            Reason::ProxyNotAllowed => {
                "this procedure must be done by the subject in person".into()
            }
            Reason::PowerOfAttorneyMissing => {
                "a power of attorney from the subject is required".into()
            }
            Reason::PowerOfAttorneyExpired => {
                format!("the power of attorney is older than {validity_months} months")
            }
            Reason::PowerOfAttorneyFutureDated => {
                "the power of attorney is dated in the future".into()
            }
            Reason::OutOfScope => "the power of attorney does not list this procedure".into(),
            Reason::DelegatorMismatch => "the power of attorney is not from the subject".into(),
            Reason::ProxyMismatch => "the power of attorney names a different proxy".into(),
            Reason::DelegatorDeceased => {
                "the delegator has died; a power of attorney ends with death".into()
            }
            Reason::LegalRepresentationInvalid => "the legal representation does not hold".into(),
            Reason::SubjectNotResident => {
                "the subject is not registered in this municipality".into()
            }
        }
    }
}

/// Everything a decision depends on besides the request.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The visitor.
    pub visitor: &'a Visitor,
    /// Letters brought.
    pub letters: &'a [PowerOfAttorney],
    /// Representations claimed.
    pub representations: &'a [LegalRepresentation],
    /// The local date of the visit.
    pub today: NaiveDate,
    /// Validity of a 委任状 and of a guardian's evidence, in months.
    pub validity_months: u32,
}

fn same_person(a: &Claim, b: &Claim) -> bool {
    a.birth_date == b.birth_date && a.name.same_as(&b.name)
}

fn within_validity(date: NaiveDate, today: NaiveDate, months: u32) -> Result<(), Reason> {
    if date > today {
        return Err(Reason::PowerOfAttorneyFutureDated);
    }
    match date.checked_add_months(Months::new(months)) {
        Some(until) if today <= until => Ok(()),
        _ => Err(Reason::PowerOfAttorneyExpired),
    }
}

/// Whether two members of one household are spouse or lineal relatives,
/// as far as their relationships to the head show it.
fn family_in_household(a: HeadRelation, b: HeadRelation) -> bool {
    use HeadRelation::*;
    matches!(
        (a, b),
        (Head, Spouse | Child | Parent) | (Spouse | Child | Parent, Head)
    )
}

/// Decides one request.
pub fn decide(context: &Context<'_>, request: &Request<'_>) -> Reason {
    let visitor = context.visitor;
    let subject = request.subject;
    let policy = request.policy;
    if !visitor.verified {
        return Reason::VisitorNotVerified;
    }
    if policy.require_photo_id && !visitor.photo_id {
        return Reason::PhotoIdRequired;
    }
    if subject.residence == Residence::NonResident && !policy.allow_non_resident_subject {
        return Reason::SubjectNotResident;
    }
    let is_self = visitor.resident_id.as_deref() == Some(subject.resident_id.as_str())
        || (visitor.resident_id.is_none() && same_person(&visitor.claim, &subject.claim));
    if is_self {
        return Reason::Myself;
    }
    if policy.allow_anyone {
        return Reason::Anyone;
    }
    let same_household =
        visitor.household_id.is_some() && visitor.household_id == subject.household_id;
    if policy.allow_household_member && same_household {
        return Reason::HouseholdMember;
    }
    let derived_family = visitor
        .resident_id
        .as_ref()
        .is_some_and(|id| subject.relatives.contains(id))
        || (same_household
            && matches!((visitor.head_relation, subject.head_relation), (Some(a), Some(b)) if family_in_household(a, b)));
    let family = derived_family
        || matches!(
            request.relation,
            Relation::Spouse | Relation::LinealRelative
        );
    if policy.allow_family && family {
        return Reason::Family;
    }

    // Legal representation of this subject.
    let mut representation_failed = false;
    for representation in context
        .representations
        .iter()
        .filter(|r| r.represented_id == subject.resident_id)
    {
        let holds = match representation.kind {
            LegalKind::ParentalAuthority => {
                subject.death_date.is_none() && age_on(subject.claim.birth_date, context.today) < 18
            }
            LegalKind::AdultGuardian => representation.evidence_issued_on.is_some_and(|issued| {
                within_validity(issued, context.today, context.validity_months).is_ok()
            }),
        };
        if holds && policy.allow_legal_representative {
            return Reason::LegalRepresentative;
        }
        representation_failed |= !holds;
    }

    let any_proxy_route = policy.allow_power_of_attorney
        || policy.allow_legal_representative
        || policy.allow_household_member
        || policy.allow_family;
    if !any_proxy_route {
        return Reason::ProxyNotAllowed;
    }
    if representation_failed {
        return Reason::LegalRepresentationInvalid;
    }
    if !policy.allow_power_of_attorney {
        // Household or family would have allowed it; neither holds, and a
        // letter cannot stand in for them.
        return Reason::ProxyNotAllowed;
    }

    let letters: Vec<&PowerOfAttorney> = context
        .letters
        .iter()
        .filter(|l| l.delegator_id == subject.resident_id)
        .collect();
    if letters.is_empty() {
        return if context.letters.is_empty() {
            Reason::PowerOfAttorneyMissing
        } else {
            Reason::DelegatorMismatch
        };
    }
    // Report the first problem of the letter that got furthest.
    let mut best: Option<(usize, Reason)> = None;
    for letter in letters {
        let checks: [(usize, Option<Reason>); 4] = [
            (
                0,
                letter
                    .delegator_death_date
                    .or(subject.death_date)
                    .filter(|died| *died <= context.today)
                    .map(|_| Reason::DelegatorDeceased),
            ),
            (
                1,
                (!same_person(&letter.proxy, &visitor.claim)).then_some(Reason::ProxyMismatch),
            ),
            (
                2,
                within_validity(letter.written_on, context.today, context.validity_months).err(),
            ),
            (
                3,
                (!letter.procedures.iter().any(|p| p == request.procedure))
                    .then_some(Reason::OutOfScope),
            ),
        ];
        match checks
            .iter()
            .find_map(|(stage, failure)| failure.map(|f| (*stage, f)))
        {
            None => return Reason::PowerOfAttorney,
            Some((stage, reason)) => {
                if best.is_none_or(|(best_stage, _)| stage > best_stage) {
                    best = Some((stage, reason));
                }
            }
        }
    }
    best.map_or(Reason::PowerOfAttorneyMissing, |(_, reason)| reason)
}

#[cfg(test)]
mod tests {
    use super::Reason::{
        DelegatorDeceased, DelegatorMismatch, Family, HouseholdMember, LegalRepresentationInvalid,
        LegalRepresentative, Myself, OutOfScope, PhotoIdRequired, PowerOfAttorneyExpired,
        PowerOfAttorneyFutureDated, PowerOfAttorneyMissing, ProxyMismatch, ProxyNotAllowed,
        SubjectNotResident, VisitorNotVerified,
    };
    use super::*;
    use crate::domain::person::PersonName;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("bad date"))
    }

    fn claim(family: &str, given: &str, birth: NaiveDate) -> Claim {
        Claim {
            name: PersonName {
                family: family.into(),
                given: given.into(),
                ..PersonName::default()
            },
            birth_date: birth,
        }
    }

    fn daughter() -> Claim {
        claim("大船渡", "つる子", day(1972, 10, 31))
    }

    fn subject(id: &str, who: Claim) -> Subject {
        Subject {
            resident_id: id.into(),
            claim: who,
            household_id: Some("h1".into()),
            head_relation: Some(HeadRelation::Spouse),
            residence: Residence::Resident,
            death_date: None,
            relatives: vec![],
        }
    }

    fn visitor(who: Claim) -> Visitor {
        Visitor {
            verified: true,
            photo_id: true,
            claim: who,
            resident_id: Some("v1".into()),
            household_id: None,
            head_relation: None,
        }
    }

    fn letter(
        delegator: &str,
        proxy: Claim,
        procedures: &[&str],
        written: NaiveDate,
    ) -> PowerOfAttorney {
        PowerOfAttorney {
            delegator_id: delegator.into(),
            delegator_death_date: None,
            proxy,
            procedures: procedures.iter().map(|p| (*p).to_owned()).collect(),
            written_on: written,
        }
    }

    const PROXY_OK: ProxyPolicy = ProxyPolicy {
        allow_anyone: false,
        allow_household_member: true,
        allow_family: false,
        allow_power_of_attorney: true,
        allow_legal_representative: true,
        require_photo_id: false,
        allow_non_resident_subject: false,
    };
    const IN_PERSON_FAMILY: ProxyPolicy = ProxyPolicy {
        allow_anyone: false,
        allow_household_member: false,
        allow_family: true,
        allow_power_of_attorney: false,
        allow_legal_representative: false,
        require_photo_id: true,
        allow_non_resident_subject: true,
    };
    const SELF_ONLY: ProxyPolicy = ProxyPolicy {
        allow_anyone: false,
        allow_household_member: false,
        allow_family: false,
        allow_power_of_attorney: false,
        allow_legal_representative: false,
        require_photo_id: false,
        allow_non_resident_subject: false,
    };
    const ANYONE: ProxyPolicy = ProxyPolicy {
        allow_anyone: true,
        ..SELF_ONLY
    };

    /// Every proxy rule, one row each.
    #[test]
    fn the_rules_as_a_table() {
        let today = day(2023, 7, 3);
        let mother = claim("大船渡", "花子", day(1945, 11, 1));
        let father = claim("大船渡", "太郎", day(1943, 5, 20));
        let stranger = claim("盛", "一郎", day(1980, 1, 1));
        let minor = claim("大船渡", "みらい", day(2010, 4, 1));
        let adult_child = claim("大船渡", "はるか", day(2005, 4, 1));

        let mut dead_father = subject("taro", father.clone());
        dead_father.death_date = Some(day(2023, 6, 16));
        dead_father.head_relation = Some(HeadRelation::Head);
        dead_father.relatives = vec!["v1".into()];
        let living_mother = subject("hanako", mother.clone());
        let mut non_resident = subject("tsuruko", daughter());
        non_resident.residence = Residence::NonResident;
        non_resident.household_id = None;
        let minor_subject = subject("mirai", minor);
        let me_as_subject = subject("v1", daughter());
        let unregistered_me = subject("x", daughter());
        let adult_subject = subject("haruka", adult_child);

        let me = visitor(daughter());
        let mut unverified = visitor(daughter());
        unverified.verified = false;
        let mut no_photo = visitor(daughter());
        no_photo.photo_id = false;
        let mut housemate = visitor(daughter());
        housemate.household_id = Some("h1".into());
        let mut not_in_registry_self = visitor(daughter());
        not_in_registry_self.resident_id = None;

        let good = letter(
            "hanako",
            daughter(),
            &["juminhyo", "sosaihi"],
            day(2023, 6, 20),
        );
        let guardian = |issued| LegalRepresentation {
            kind: LegalKind::AdultGuardian,
            represented_id: "hanako".into(),
            evidence_issued_on: issued,
        };
        let parent = |id: &str| LegalRepresentation {
            kind: LegalKind::ParentalAuthority,
            represented_id: id.into(),
            evidence_issued_on: None,
        };

        struct Row<'a> {
            case: &'a str,
            visitor: &'a Visitor,
            procedure: &'a str,
            subject: &'a Subject,
            relation: Relation,
            policy: ProxyPolicy,
            letters: Vec<PowerOfAttorney>,
            representations: Vec<LegalRepresentation>,
            expected: Reason,
        }
        let row =
            |case, visitor, procedure, subject, policy, letters: Vec<PowerOfAttorney>, expected| {
                Row {
                    case,
                    visitor,
                    procedure,
                    subject,
                    relation: Relation::Unstated,
                    policy,
                    letters,
                    representations: vec![],
                    expected,
                }
            };
        let mut table = vec![
            row(
                "self by registry id",
                &me,
                "juminhyo",
                &me_as_subject,
                PROXY_OK,
                vec![],
                Myself,
            ),
            row(
                "self by name and birth when not in the registry",
                &not_in_registry_self,
                "juminhyo",
                &unregistered_me,
                PROXY_OK,
                vec![],
                Myself,
            ),
            row(
                "unverified visitor",
                &unverified,
                "juminhyo",
                &living_mother,
                PROXY_OK,
                vec![good.clone()],
                VisitorNotVerified,
            ),
            row(
                "photo id required",
                &no_photo,
                "koseki-kouiki",
                &dead_father,
                IN_PERSON_FAMILY,
                vec![],
                PhotoIdRequired,
            ),
            row(
                "anyone may return cards",
                &me,
                "card-return",
                &dead_father,
                ANYONE,
                vec![],
                Reason::Anyone,
            ),
            row(
                "household member",
                &housemate,
                "juminhyo",
                &living_mother,
                PROXY_OK,
                vec![],
                HouseholdMember,
            ),
            row(
                "family derived from the registry's relatives",
                &me,
                "koseki-kouiki",
                &dead_father,
                IN_PERSON_FAMILY,
                vec![],
                Family,
            ),
            row(
                "valid letter",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![good.clone()],
                Reason::PowerOfAttorney,
            ),
            row(
                "no letter",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![],
                PowerOfAttorneyMissing,
            ),
            row(
                "letter out of scope",
                &me,
                "inkan-touroku",
                &living_mother,
                PROXY_OK,
                vec![good.clone()],
                OutOfScope,
            ),
            row(
                "letter from someone else",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![letter(
                    "someone",
                    daughter(),
                    &["sosaihi"],
                    day(2023, 6, 20),
                )],
                DelegatorMismatch,
            ),
            row(
                "letter naming another proxy",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![letter(
                    "hanako",
                    stranger.clone(),
                    &["sosaihi"],
                    day(2023, 6, 20),
                )],
                ProxyMismatch,
            ),
            row(
                "letter written in the future",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![letter("hanako", daughter(), &["sosaihi"], day(2023, 7, 4))],
                PowerOfAttorneyFutureDated,
            ),
            row(
                "letter exactly three months old is valid",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![letter("hanako", daughter(), &["sosaihi"], day(2023, 4, 3))],
                Reason::PowerOfAttorney,
            ),
            row(
                "letter a day older than three months",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![letter("hanako", daughter(), &["sosaihi"], day(2023, 4, 2))],
                PowerOfAttorneyExpired,
            ),
            row(
                "letter from the deceased is void",
                &me,
                "juminhyo",
                &dead_father,
                PROXY_OK,
                vec![letter("taro", daughter(), &["juminhyo"], day(2023, 6, 1))],
                DelegatorDeceased,
            ),
            row(
                "in person only refuses even a valid letter",
                &me,
                "inkan-touroku",
                &living_mother,
                SELF_ONLY,
                vec![letter(
                    "hanako",
                    daughter(),
                    &["inkan-touroku"],
                    day(2023, 6, 20),
                )],
                ProxyNotAllowed,
            ),
            row(
                "non-resident subject",
                &me,
                "juminhyo",
                &non_resident,
                PROXY_OK,
                vec![],
                SubjectNotResident,
            ),
            row(
                "non-resident subject allowed by policy (広域交付)",
                &not_in_registry_self,
                "koseki-kouiki",
                &non_resident,
                IN_PERSON_FAMILY,
                vec![],
                Myself,
            ),
            row(
                "the better of two letters decides",
                &me,
                "sosaihi",
                &living_mother,
                PROXY_OK,
                vec![
                    letter("hanako", stranger.clone(), &["sosaihi"], day(2023, 6, 20)),
                    letter("hanako", daughter(), &["sosaihi"], day(2023, 1, 1)),
                ],
                PowerOfAttorneyExpired,
            ),
        ];
        table.push(Row {
            relation: Relation::LinealRelative,
            ..row(
                "family stated by staff",
                &me,
                "koseki-kouiki",
                &living_mother,
                IN_PERSON_FAMILY,
                vec![],
                Family,
            )
        });
        table.push(Row {
            relation: Relation::Other,
            ..row(
                "no family relation and no proxies",
                &me,
                "koseki-kouiki",
                &living_mother,
                IN_PERSON_FAMILY,
                vec![],
                ProxyNotAllowed,
            )
        });
        table.push(Row {
            representations: vec![guardian(Some(day(2023, 6, 1)))],
            ..row(
                "adult guardian with fresh evidence",
                &me,
                "juminhyo",
                &living_mother,
                PROXY_OK,
                vec![],
                LegalRepresentative,
            )
        });
        table.push(Row {
            representations: vec![guardian(Some(day(2022, 6, 1)))],
            ..row(
                "adult guardian with stale evidence",
                &me,
                "juminhyo",
                &living_mother,
                PROXY_OK,
                vec![],
                LegalRepresentationInvalid,
            )
        });
        table.push(Row {
            representations: vec![guardian(None)],
            ..row(
                "adult guardian without evidence",
                &me,
                "juminhyo",
                &living_mother,
                PROXY_OK,
                vec![],
                LegalRepresentationInvalid,
            )
        });
        table.push(Row {
            representations: vec![parent("mirai")],
            ..row(
                "parent of a minor",
                &me,
                "juminhyo",
                &minor_subject,
                PROXY_OK,
                vec![],
                LegalRepresentative,
            )
        });
        table.push(Row {
            representations: vec![parent("haruka")],
            ..row(
                "parental authority ends at 18",
                &me,
                "juminhyo",
                &adult_subject,
                PROXY_OK,
                vec![],
                LegalRepresentationInvalid,
            )
        });

        for r in table {
            let context = Context {
                visitor: r.visitor,
                letters: &r.letters,
                representations: &r.representations,
                today,
                validity_months: 3,
            };
            let request = Request {
                procedure: r.procedure,
                subject: r.subject,
                relation: r.relation,
                policy: r.policy,
            };
            let reason = decide(&context, &request);
            assert_eq!(reason, r.expected, "{}", r.case);
            assert!(!reason.message(3).is_empty());
        }
    }

    #[test]
    fn validity_is_configurable() {
        let today = day(2023, 7, 3);
        assert_eq!(within_validity(day(2023, 1, 3), today, 6), Ok(()));
        assert_eq!(
            within_validity(day(2023, 1, 2), today, 6),
            Err(PowerOfAttorneyExpired)
        );
        // Month ends: a letter of 11月30日 is valid through 2月28日/29日.
        assert_eq!(
            within_validity(day(2023, 11, 30), day(2024, 2, 29), 3),
            Ok(())
        );
        assert_eq!(
            within_validity(day(2023, 11, 30), day(2024, 3, 1), 3),
            Err(PowerOfAttorneyExpired)
        );
    }
}
