//! 本人確認 — the common municipal rule for verifying who a visitor is.
//!
//! One official photo ID suffices (A書類 1点). Otherwise two documents
//! are needed, at least one of them official (B書類); two supplementary
//! documents (bank book, employee card …) never suffice. A document
//! counts only when it has not expired (the expiry day itself still
//! counts), when its holder matches the visitor's claim, and once per
//! kind. Which kinds exist and their class is site data
//! (`identity.toml`), not code.

use std::collections::HashSet;

use chrono::NaiveDate;

use super::person::PersonName;

/// How much a document proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentClass {
    /// An official photo ID: one suffices.
    PhotoId,
    /// An official document without photo.
    Official,
    /// A supplementary document: only together with an official one.
    Supplementary,
}

/// Who the visitor says they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Their name.
    pub name: PersonName,
    /// Their birth date.
    pub birth_date: NaiveDate,
}

/// One document as presented, its kind already resolved to a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// Kind id.
    pub kind: String,
    /// The kind's class.
    pub class: DocumentClass,
    /// Holder name as printed, if entered or read.
    pub holder_name: Option<String>,
    /// Holder birth date, if entered or read.
    pub holder_birth_date: Option<NaiveDate>,
    /// Expiry date, if any.
    pub expiry_date: Option<NaiveDate>,
}

/// Why a document did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Expired before the day of the visit.
    Expired,
    /// Holder differs from the claim.
    HolderMismatch,
    /// The same kind counted already.
    DuplicateKind,
}

/// The judgement of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentJudgement {
    /// Kind id.
    pub kind: String,
    /// Its class.
    pub class: DocumentClass,
    /// `None` when it counted.
    pub rejection: Option<Rejection>,
}

/// The outcome of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// One photo ID counted.
    VerifiedByPhotoId,
    /// Two documents counted, at least one official.
    VerifiedByTwoDocuments,
    /// Nothing counted.
    NoValidDocument,
    /// One official document counted; a second is needed.
    SecondDocumentNeeded,
    /// Only supplementary documents counted.
    OfficialDocumentNeeded,
}

impl Outcome {
    /// Whether the visitor is verified.
    pub fn verified(self) -> bool {
        matches!(
            self,
            Outcome::VerifiedByPhotoId | Outcome::VerifiedByTwoDocuments
        )
    }
}

/// The rule's full answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Verified or why not.
    pub outcome: Outcome,
    /// Whether a photo ID counted.
    pub photo_id: bool,
    /// Per document, in presentation order.
    pub documents: Vec<DocumentJudgement>,
}

/// Applies the rule on `today` (the local date of the visit).
pub fn evaluate(claim: &Claim, documents: &[Presented], today: NaiveDate) -> Evaluation {
    let mut seen = HashSet::new();
    let judgements: Vec<DocumentJudgement> = documents
        .iter()
        .map(|doc| {
            let rejection = if doc.expiry_date.is_some_and(|expiry| expiry < today) {
                Some(Rejection::Expired)
            } else if doc
                .holder_name
                .as_deref()
                .is_some_and(|printed| !claim.name.matches_full(printed))
                || doc
                    .holder_birth_date
                    .is_some_and(|birth| birth != claim.birth_date)
            {
                Some(Rejection::HolderMismatch)
            } else if !seen.insert(doc.kind.as_str()) {
                Some(Rejection::DuplicateKind)
            } else {
                None
            };
            DocumentJudgement {
                kind: doc.kind.clone(),
                class: doc.class,
                rejection,
            }
        })
        .collect();
    let accepted = || judgements.iter().filter(|j| j.rejection.is_none());
    let count = |class| accepted().filter(|j| j.class == class).count();
    let (photo, official, supplementary) = (
        count(DocumentClass::PhotoId),
        count(DocumentClass::Official),
        count(DocumentClass::Supplementary),
    );
    let outcome = if photo > 0 {
        Outcome::VerifiedByPhotoId
    } else if official >= 1 && official + supplementary >= 2 {
        Outcome::VerifiedByTwoDocuments
    } else if official + supplementary == 0 {
        Outcome::NoValidDocument
    } else if official == 0 {
        Outcome::OfficialDocumentNeeded
    } else {
        Outcome::SecondDocumentNeeded
    };
    Evaluation {
        outcome,
        photo_id: photo > 0,
        documents: judgements,
    }
}

#[cfg(test)]
mod tests {
    use super::DocumentClass::{Official as O, PhotoId as P, Supplementary as S};
    use super::Outcome::*;
    use super::Rejection::*;
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("bad date"))
    }

    fn claim() -> Claim {
        Claim {
            name: PersonName {
                family: "大船渡".into(),
                given: "つる子".into(),
                family_kana: "オオフナト".into(),
                given_kana: "ツルコ".into(),
            },
            birth_date: day(1972, 10, 31),
        }
    }

    fn doc(kind: &str, class: DocumentClass) -> Presented {
        Presented {
            kind: kind.into(),
            class,
            holder_name: None,
            holder_birth_date: None,
            expiry_date: None,
        }
    }

    /// Every combination rule of 本人確認, one row each.
    #[test]
    fn the_rule_as_a_table() {
        let today = day(2023, 7, 3);
        let expired = |mut d: Presented| {
            d.expiry_date = Some(day(2023, 7, 2));
            d
        };
        let expires_today = |mut d: Presented| {
            d.expiry_date = Some(today);
            d
        };
        let other_holder = |mut d: Presented| {
            d.holder_name = Some("大船渡 花子".into());
            d
        };
        let other_birth = |mut d: Presented| {
            d.holder_birth_date = Some(day(1945, 11, 1));
            d
        };
        let same_holder = |mut d: Presented| {
            d.holder_name = Some("オオフナト ツルコ".into());
            d.holder_birth_date = Some(day(1972, 10, 31));
            d
        };
        type Row = (
            &'static str,
            Vec<Presented>,
            Outcome,
            Vec<Option<Rejection>>,
        );
        let table: Vec<Row> = vec![
            (
                "one photo id suffices",
                vec![doc("my-number-card", P)],
                VerifiedByPhotoId,
                vec![None],
            ),
            (
                "photo id with matching holder",
                vec![same_holder(doc("drivers-licence", P))],
                VerifiedByPhotoId,
                vec![None],
            ),
            (
                "photo id expiring today still counts",
                vec![expires_today(doc("passport", P))],
                VerifiedByPhotoId,
                vec![None],
            ),
            (
                "expired photo id alone",
                vec![expired(doc("passport", P))],
                NoValidDocument,
                vec![Some(Expired)],
            ),
            (
                "photo id of someone else",
                vec![other_holder(doc("drivers-licence", P))],
                NoValidDocument,
                vec![Some(HolderMismatch)],
            ),
            (
                "photo id with another birth date",
                vec![other_birth(doc("drivers-licence", P))],
                NoValidDocument,
                vec![Some(HolderMismatch)],
            ),
            (
                "two official documents",
                vec![doc("health-insurance-card", O), doc("pension-book", O)],
                VerifiedByTwoDocuments,
                vec![None, None],
            ),
            (
                "official and supplementary",
                vec![doc("health-insurance-card", O), doc("bank-book", S)],
                VerifiedByTwoDocuments,
                vec![None, None],
            ),
            (
                "supplementary and official, any order",
                vec![doc("cash-card", S), doc("pension-book", O)],
                VerifiedByTwoDocuments,
                vec![None, None],
            ),
            (
                "never two supplementary",
                vec![doc("bank-book", S), doc("employee-id", S)],
                OfficialDocumentNeeded,
                vec![None, None],
            ),
            (
                "three supplementary still not",
                vec![
                    doc("bank-book", S),
                    doc("employee-id", S),
                    doc("cash-card", S),
                ],
                OfficialDocumentNeeded,
                vec![None, None, None],
            ),
            (
                "one supplementary alone",
                vec![doc("bank-book", S)],
                OfficialDocumentNeeded,
                vec![None],
            ),
            (
                "one official alone",
                vec![doc("health-insurance-card", O)],
                SecondDocumentNeeded,
                vec![None],
            ),
            (
                "the same kind twice counts once",
                vec![
                    doc("health-insurance-card", O),
                    doc("health-insurance-card", O),
                ],
                SecondDocumentNeeded,
                vec![None, Some(DuplicateKind)],
            ),
            (
                "an expired second document does not count",
                vec![
                    doc("health-insurance-card", O),
                    expired(doc("pension-book", O)),
                ],
                SecondDocumentNeeded,
                vec![None, Some(Expired)],
            ),
            (
                "a second document of someone else does not count",
                vec![
                    doc("health-insurance-card", O),
                    other_holder(doc("bank-book", S)),
                ],
                SecondDocumentNeeded,
                vec![None, Some(HolderMismatch)],
            ),
            (
                "expired photo id plus two others",
                vec![
                    expired(doc("drivers-licence", P)),
                    doc("health-insurance-card", O),
                    doc("bank-book", S),
                ],
                VerifiedByTwoDocuments,
                vec![Some(Expired), None, None],
            ),
            (
                "photo id plus supplementary",
                vec![doc("cash-card", S), doc("my-number-card", P)],
                VerifiedByPhotoId,
                vec![None, None],
            ),
            ("nothing presented", vec![], NoValidDocument, vec![]),
        ];
        for (case, documents, outcome, rejections) in table {
            let evaluation = evaluate(&claim(), &documents, today);
            assert_eq!(evaluation.outcome, outcome, "{case}");
            assert_eq!(
                evaluation
                    .documents
                    .iter()
                    .map(|d| d.rejection)
                    .collect::<Vec<_>>(),
                rejections,
                "{case}"
            );
            assert_eq!(
                evaluation.outcome.verified(),
                matches!(outcome, VerifiedByPhotoId | VerifiedByTwoDocuments),
                "{case}"
            );
            assert_eq!(evaluation.photo_id, outcome == VerifiedByPhotoId, "{case}");
        }
    }
}
