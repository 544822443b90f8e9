//! The forms service's rules, without I/O: resource names, the condition
//! language of the catalog, the life-event navigator, checklist statuses
//! and the checks on free text.

use std::fmt;

use madoguchi_platform::types::MunicipalityCode;

use chrono::NaiveDate;

pub use madoguchi_catalog::condition::{Condition, ConditionError, Facts};
use madoguchi_catalog::{Catalog, FlagRule, LateStatus, LifeEvent, Procedure, Question};

/// Why a name or a condition was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Wrong shape.
    #[error("must look like {0}")]
    Shape(&'static str),
    /// Bad municipality code.
    #[error("municipality code: {0}")]
    Municipality(String),
}

/// `municipalities/{m}/offices/{o}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeName {
    /// The municipality.
    pub municipality: MunicipalityCode,
    /// Office id.
    pub office: String,
}

impl OfficeName {
    /// Parses an office name.
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        const SHAPE: &str = "municipalities/{code}/offices/{office}";
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["municipalities", code, "offices", office]
                if madoguchi_platform::site::is_resource_id(office) =>
            {
                let municipality = MunicipalityCode::parse(code)
                    .map_err(|e| ParseError::Municipality(e.to_string()))?;
                Ok(Self {
                    municipality,
                    office: (*office).to_owned(),
                })
            }
            _ => Err(ParseError::Shape(SHAPE)),
        }
    }
}

impl fmt::Display for OfficeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "municipalities/{}/offices/{}",
            self.municipality, self.office
        )
    }
}

/// `municipalities/{m}/offices/{o}/visits/{visit}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitName {
    /// The office.
    pub office: OfficeName,
    /// Visit id (a UUID).
    pub id: String,
}

impl VisitName {
    /// Parses a visit name.
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        const SHAPE: &str = "municipalities/{code}/offices/{office}/visits/{visit}";
        let Some((office, id)) = name.rsplit_once("/visits/") else {
            return Err(ParseError::Shape(SHAPE));
        };
        let office = OfficeName::parse(office).map_err(|_| ParseError::Shape(SHAPE))?;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ParseError::Shape(SHAPE));
        }
        Ok(Self {
            office,
            id: id.to_owned(),
        })
    }

    /// A child resource name of the visit.
    pub fn child(&self, collection: &str, id: &str) -> String {
        format!("{self}/{collection}/{id}")
    }
}

impl fmt::Display for VisitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/visits/{}", self.office, self.id)
    }
}

/// A resource under a visit: `{visit}/{collection}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitChild {
    /// The visit.
    pub visit: VisitName,
    /// Child id.
    pub id: String,
}

impl VisitChild {
    /// Parses `{visit}/{collection}/{id}`.
    pub fn parse(name: &str, collection: &'static str) -> Result<Self, ParseError> {
        let shape = match collection {
            "items" => "…/visits/{visit}/items/{procedure}",
            "certificateRequests" => "…/visits/{visit}/certificateRequests/{id}",
            _ => "…/visits/{visit}/{collection}/{id}",
        };
        let marker = format!("/{collection}/");
        let Some((visit, id)) = name.rsplit_once(&marker) else {
            return Err(ParseError::Shape(shape));
        };
        let visit = VisitName::parse(visit).map_err(|_| ParseError::Shape(shape))?;
        if !madoguchi_platform::site::is_resource_id(id) {
            return Err(ParseError::Shape(shape));
        }
        Ok(Self {
            visit,
            id: id.to_owned(),
        })
    }
}

/// Checklist status: 未 / 済 / 対象外 / 後日.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ItemStatus {
    /// 未.
    Pending = 1,
    /// 済.
    Done = 2,
    /// 対象外.
    NotApplicable = 3,
    /// 後日.
    Later = 4,
}

impl ItemStatus {
    /// From the stored or wire number.
    pub fn from_i32(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Pending),
            2 => Some(Self::Done),
            3 => Some(Self::NotApplicable),
            4 => Some(Self::Later),
            _ => None,
        }
    }

    /// The Japanese mark used on counters and printouts.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Pending => "未",
            Self::Done => "済",
            Self::NotApplicable => "対象外",
            Self::Later => "後日",
        }
    }

    /// Still open at the end of a visit.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Later)
    }
}

/// Where a procedure's deadline stands on the day of the visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineStanding {
    /// The law sets no period.
    None,
    /// Due on the visit's day or later.
    InTime,
    /// Passed, and a late filing is still accepted.
    Late,
    /// Passed, and the right lapsed (時効 or the end of a claim period).
    Lapsed,
}

/// The deadline of `procedure` for an event on `event_date`, seen on
/// `visit_day`: its due date (unset without a period), the standing, and
/// for a passed deadline the catalog's note on what that means. Due on the
/// visit's day is still in time. A period without `after_deadline` (the
/// lint refuses it) is treated as still accepted, so nobody is turned
/// away on a missing entry.
pub fn deadline_standing(
    procedure: &Procedure,
    event_date: NaiveDate,
    visit_day: NaiveDate,
) -> (Option<NaiveDate>, DeadlineStanding, String) {
    let Some(due) = procedure.deadline.due(event_date) else {
        return (None, DeadlineStanding::None, String::new());
    };
    if due >= visit_day {
        return (Some(due), DeadlineStanding::InTime, String::new());
    }
    match &procedure.after_deadline {
        Some(after) if after.status == LateStatus::Lapsed => {
            (Some(due), DeadlineStanding::Lapsed, after.note.clone())
        }
        Some(after) => (Some(due), DeadlineStanding::Late, after.note.clone()),
        None => (Some(due), DeadlineStanding::Late, String::new()),
    }
}

/// Checks free text typed by staff: no control characters (a newline in a
/// name would break every printed form and CSV), at most `max` characters.
pub fn check_text(text: &str, max: usize) -> Result<(), &'static str> {
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if text.chars().count() > max {
        return Err("is too long");
    }
    Ok(())
}

/// What the navigator decided for one event.
#[derive(Debug, Clone)]
pub struct Navigation<'a> {
    /// Procedures on the checklist, in rule order, each once.
    pub procedures: Vec<&'a Procedure>,
    /// Flags raised.
    pub flags: Vec<&'a FlagRule>,
}

/// Evaluates a life event's rules on the facts.
pub fn navigate<'a>(catalog: &'a Catalog, event: &'a LifeEvent, facts: &Facts) -> Navigation<'a> {
    let mut procedures: Vec<&Procedure> = Vec::new();
    for rule in &event.rules {
        if facts.all(&rule.when)
            && !procedures.iter().any(|p| p.id == rule.procedure)
            && let Some(procedure) = catalog.procedure(&rule.procedure)
        {
            procedures.push(procedure);
        }
    }
    let flags = event.flags.iter().filter(|f| facts.all(&f.when)).collect();
    Navigation { procedures, flags }
}

/// The questions of `event` that apply to this household (their `when`
/// holds on `facts`) and have no answer among the facts.
pub fn unanswered_questions<'a>(event: &'a LifeEvent, facts: &Facts) -> Vec<&'a Question> {
    event
        .questions
        .iter()
        .filter(|q| facts.all(&q.when))
        .filter(|q| !facts.0.contains_key(&format!("answer.{}", q.id)))
        .collect()
}

/// Value of a person answer as the conditions see it: `applicant` when it
/// names the visitor, `subject` when it names the event's subject,
/// `household` for another member of the subject's household, else `other`.
pub fn person_role(
    person: &str,
    applicant: &str,
    subject: &str,
    household_members: &[String],
) -> &'static str {
    if !applicant.is_empty() && person == applicant {
        "applicant"
    } else if person == subject {
        "subject"
    } else if household_members.iter().any(|m| m == person) {
        "household"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_round_trip_and_reject_garbage() {
        let visit =
            "municipalities/032034/offices/main/visits/0192f0c4-7b1a-7c3e-9d2f-0123456789ab";
        let parsed = VisitName::parse(visit).unwrap();
        assert_eq!(parsed.to_string(), visit);
        let item = VisitChild::parse(&format!("{visit}/items/sosaihi"), "items").unwrap();
        assert_eq!(item.id, "sosaihi");
        for bad in [
            "municipalities/032035/offices/main/visits/0192f0c4-7b1a-7c3e-9d2f-0123456789ab",
            "municipalities/032034/offices/main/visits/not-a-uuid",
            "municipalities/032034/visits/0192f0c4-7b1a-7c3e-9d2f-0123456789ab",
        ] {
            assert!(VisitName::parse(bad).is_err(), "{bad}");
        }
        assert!(VisitChild::parse(&format!("{visit}/items/Bad Id"), "items").is_err());
    }

    #[test]
    fn deadlines_in_time_late_and_lapsed() {
        let site_path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        let site = madoguchi_platform::site::Site::load(&site_path).unwrap();
        let catalog = Catalog::load_beside(&site_path, &site).unwrap();
        let p = |id: &str| catalog.procedure(id).unwrap();
        let death = NaiveDate::from_ymd_opt(2023, 6, 16).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // 14 days (民法140条): due 6.30; the due day itself is in time.
        let (due, standing, note) = deadline_standing(p("koki-soshitsu"), death, day(2023, 6, 30));
        assert_eq!(
            (due, standing, note.as_str()),
            (Some(day(2023, 6, 30)), DeadlineStanding::InTime, "")
        );
        let (_, standing, note) = deadline_standing(p("koki-soshitsu"), death, day(2023, 7, 1));
        assert_eq!(standing, DeadlineStanding::Late);
        assert!(note.contains("期間後も受け付ける"), "{note}");
        // 葬祭費: 2 years, lapsed by 令和8年.
        let (due, standing, note) = deadline_standing(p("sosaihi"), death, day(2026, 4, 1));
        assert_eq!(
            due,
            Some(day(2025, 6, 16)),
            "民法143条: the day before 6.17"
        );
        assert_eq!(standing, DeadlineStanding::Lapsed);
        assert!(note.contains("時効"), "{note}");
        // 未支給年金: 5 years, still open.
        let (_, standing, _) = deadline_standing(p("mishikyu-nenkin"), death, day(2026, 4, 1));
        assert_eq!(standing, DeadlineStanding::InTime);
        let (due, standing, _) = deadline_standing(p("inkan-haishi"), death, day(2026, 4, 1));
        assert_eq!((due, standing), (None, DeadlineStanding::None));
    }

    #[test]
    fn text_checks() {
        assert!(check_text("相続手続", 100).is_ok());
        assert!(check_text("太郎\u{0}", 100).is_err());
        assert!(check_text("a\nb", 100).is_err());
        assert!(check_text(&"あ".repeat(101), 100).is_err());
    }

    #[test]
    fn person_roles() {
        let members = vec!["r/hanako".to_owned()];
        assert_eq!(
            person_role("r/tsuruko", "r/tsuruko", "r/taro", &members),
            "applicant"
        );
        assert_eq!(
            person_role("r/taro", "r/tsuruko", "r/taro", &members),
            "subject"
        );
        assert_eq!(
            person_role("r/hanako", "r/tsuruko", "r/taro", &members),
            "household"
        );
        assert_eq!(person_role("r/x", "", "r/taro", &members), "other");
    }
}
