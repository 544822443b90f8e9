//! The catalog's model and loader: certificate kinds, fee items,
//! exemptions, procedures and life-event rules as read from `catalog.toml`,
//! and the checks that refuse an inconsistent file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{Datelike, Days, Months, NaiveDate};

use madoguchi_platform::error::Violations;
use madoguchi_platform::site::{Site, is_resource_id};
use serde::Deserialize;

use crate::condition::Condition;

/// A whole catalog file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Queue category id of the one-stop counter: items done while the
    /// ticket is in this category count as done at the one-stop counter.
    pub one_stop_category: String,
    /// Certificate kinds (証明書).
    #[serde(default)]
    pub certificates: Vec<CertificateKind>,
    /// Procedures (手続).
    #[serde(default)]
    pub procedures: Vec<Procedure>,
    /// Life events (ライフイベント) and their rules.
    #[serde(default)]
    pub life_events: Vec<LifeEvent>,
    /// Other fees the register charges by hand (read by the POS service).
    #[serde(default)]
    pub fee_items: Vec<FeeItem>,
    /// Legal reasons a fee may be exempted for (read by the POS service).
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
}

/// A fee the register charges by hand, beside the certificate kinds (e.g.
/// a copy of a public document, a certificate of another department).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeItem {
    /// Fee item id, e.g. `koshu-copy`; unique across certificates too.
    pub id: String,
    /// Name in Japanese as printed on the receipt.
    pub name_ja: String,
    /// 手数料 per copy in yen.
    pub fee_yen: i64,
    /// 歳入科目: the revenue account the fee is booked to.
    pub revenue_account: String,
}

/// A legal reason for exempting a fee (手数料の免除).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Reason code, e.g. `pension`.
    pub id: String,
    /// Name in Japanese as printed on the receipt, e.g. `年金請求用`.
    pub name_ja: String,
    /// The legal basis (条例・法令), e.g. the clause of the fee ordinance.
    pub legal_basis: String,
    /// Fee item ids it may be applied to; empty means every item.
    #[serde(default)]
    pub applies_to: Vec<String>,
}

/// Who may request something for its subject person; mirrors the identity
/// service's `ProxyPolicy`. The subject may always act for themself.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Requesters {
    /// Anyone.
    pub anyone: bool,
    /// A member of the subject's household.
    pub household_member: bool,
    /// Spouse or lineal relative.
    pub family: bool,
    /// A proxy with a valid 委任状.
    pub power_of_attorney: bool,
    /// A legal representative.
    pub legal_representative: bool,
    /// The visitor must have shown a photo ID.
    pub photo_id_required: bool,
}

/// A selectable option of a certificate kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateOption {
    /// Option id.
    pub id: String,
    /// Name in Japanese.
    pub name_ja: String,
}

/// A certificate kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateKind {
    /// Kind id, e.g. `juminhyo`.
    pub id: String,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// 手数料 per copy in yen.
    pub fee_yen: i64,
    /// 歳入科目: the revenue account the fee is booked to.
    pub revenue_account: String,
    /// Issuing department.
    pub department: String,
    /// Whether a purpose (使用目的) must be stated.
    #[serde(default)]
    pub purpose_required: bool,
    /// In person only (no proxy, no mail).
    #[serde(default)]
    pub in_person_only: bool,
    /// Who may request it.
    #[serde(default)]
    pub requesters: Requesters,
    /// Options.
    #[serde(default)]
    pub options: Vec<CertificateOption>,
}

/// A procedure (手続).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    /// Procedure id.
    pub id: String,
    /// Name in Japanese.
    pub name_ja: String,
    /// Department or outside office.
    pub department: String,
    /// Queue category id; empty when done outside this office.
    #[serde(default)]
    pub category: String,
    /// Where to go, for the open-items list.
    pub location: String,
    /// Documents to bring.
    #[serde(default)]
    pub documents: Vec<String>,
    /// Estimated minutes.
    pub minutes: u32,
    /// 期限: when it is due, counted as its law counts; `"none"` when the
    /// law sets no period. A catalog must state one or the other.
    #[serde(default)]
    pub deadline: Deadline,
    /// What a filing after the deadline means: still accepted (and what
    /// it then needs) or lapsed by 時効. Required with a period.
    #[serde(default)]
    pub after_deadline: Option<AfterDeadline>,
    /// 根拠法令: the law, ordinance or rule (with its article) the
    /// procedure rests on.
    #[serde(default)]
    pub legal_basis: String,
    /// Who may apply, in the catalog's closed vocabulary (see
    /// [`APPLICANT_LABELS`]): 本人, 世帯員, 相続人, 代理人（委任状） …
    #[serde(default)]
    pub applicants: Vec<String>,
    /// URL of the public page the entry was checked against.
    #[serde(default)]
    pub source: String,
    /// Whether the one-stop counter can take it.
    pub one_stop: bool,
    /// Whether it needs the resident's signature.
    #[serde(default)]
    pub signature: bool,
    /// For whom it is done: `subject` (default), `applicant`, or
    /// `answer:<person question id>`.
    #[serde(default = "subject")]
    pub acts_for: String,
    /// Who may do it for that person.
    #[serde(default)]
    pub requesters: Requesters,
}

fn subject() -> String {
    "subject".to_owned()
}

/// The words a procedure's `applicants` may use: who may file it.
pub const APPLICANT_LABELS: [&str; 10] = [
    "本人",
    "世帯主",
    "世帯員",
    "親族",
    "届出義務者",
    "相続人",
    "喪主",
    "法定代理人",
    "代理人（委任状）",
    "どなたでも",
];

/// 期限 — a procedure's deadline as its law counts it.
///
/// A period runs from the event date. Unless `counts_first_day` is set,
/// the event day itself is not counted (民法140条, the general rule: a
/// 14-day period from 6月16日 ends on 6月30日); 戸籍法43条 counts it (the
/// 7 days of a 死亡届 from 6月16日 end on 6月22日). A period in months or
/// years ends on the day before the day that corresponds to its first
/// counted day, or on the last day of the month when there is no such day
/// (民法143条). A period ending on a holiday is extended by law (民法142条);
/// the navigator does not know the holiday calendar and shows the
/// unextended day, which is never later than the true one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DeadlineToml")]
pub enum Deadline {
    /// The catalog says nothing (a lint error in a shipped catalog).
    #[default]
    Unstated,
    /// The law sets no period (`deadline = "none"`).
    None,
    /// A period from the event.
    Period(Period),
}

/// A period of days, months or years (exactly one is non-zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Period {
    /// Days.
    pub days: u32,
    /// Months.
    pub months: u32,
    /// Years.
    pub years: u32,
    /// The event day is day one (初日算入, 戸籍法43条).
    pub counts_first_day: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DeadlineToml {
    Word(String),
    Period(Period),
}

impl TryFrom<DeadlineToml> for Deadline {
    type Error = String;

    fn try_from(value: DeadlineToml) -> Result<Self, Self::Error> {
        match value {
            DeadlineToml::Word(word) if word == "none" => Ok(Self::None),
            DeadlineToml::Word(word) => Err(format!(
                "deadline {word:?}: write \"none\" or a table such as {{ days = 14 }}"
            )),
            DeadlineToml::Period(period) => {
                let set = [period.days, period.months, period.years]
                    .iter()
                    .filter(|n| **n > 0)
                    .count();
                if set != 1 {
                    return Err("deadline: set exactly one of days, months, years".into());
                }
                Ok(Self::Period(period))
            }
        }
    }
}

impl Period {
    /// The last day of the period that starts with the event on `event`.
    pub fn due(&self, event: NaiveDate) -> NaiveDate {
        let first = if self.counts_first_day {
            event
        } else {
            event.succ_opt().unwrap_or(event)
        };
        if self.days > 0 {
            return first + Days::new(u64::from(self.days) - 1);
        }
        let months = self.months + 12 * self.years;
        match first.checked_add_months(Months::new(months)) {
            // chrono clamps to the month's last day when the day does not
            // exist; then the period ends on that last day (民法143条2項).
            Some(day) if day.day() != first.day() => day,
            Some(day) => day.pred_opt().unwrap_or(day),
            None => NaiveDate::MAX,
        }
    }

    /// The period in words, e.g. `14日以内`, `10か月以内`.
    pub fn text_ja(&self) -> String {
        if self.days > 0 {
            format!("{}日以内", self.days)
        } else if self.years > 0 {
            format!("{}年以内", self.years)
        } else {
            format!("{}か月以内", self.months)
        }
    }
}

impl Deadline {
    /// The due date for an event on `event`; `None` without a period.
    pub fn due(&self, event: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Period(period) => Some(period.due(event)),
            Self::None | Self::Unstated => None,
        }
    }

    /// The period in days when it is given in days, else 0 (the wire's
    /// legacy `deadline_days`).
    pub fn days(&self) -> u32 {
        match self {
            Self::Period(period) => period.days,
            Self::None | Self::Unstated => 0,
        }
    }

    /// The deadline in words: `14日以内`, or `定めなし`.
    pub fn text_ja(&self) -> String {
        match self {
            Self::Period(period) => period.text_ja(),
            Self::None | Self::Unstated => "定めなし".to_owned(),
        }
    }
}

/// What a filing after the deadline means.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AfterDeadline {
    /// `accepted` (late filing still taken) or `lapsed` (the right is
    /// lost by 時効 or by the end of the claim period).
    pub status: LateStatus,
    /// What a late filing needs (遅延理由書 …) or why the right lapsed.
    pub note: String,
}

/// Whether a late filing is still taken.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LateStatus {
    /// Still accepted, perhaps with a 遅延理由書 or a reduced benefit.
    Accepted,
    /// Lapsed: no counter can take it any more.
    Lapsed,
}

/// The kind of an interview answer.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// `yes` or `no`.
    YesNo,
    /// A resident resource name.
    Person,
    /// Free text.
    Text,
}

impl QuestionKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::YesNo => "yes_no",
            Self::Person => "person",
            Self::Text => "text",
        }
    }
}

/// An interview question.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Answer key.
    pub id: String,
    /// The question in Japanese.
    pub text_ja: String,
    /// Kind of answer.
    pub kind: QuestionKind,
    /// Why it is asked: what no record holds. Shown beside the question.
    #[serde(default)]
    pub why_ja: String,
    /// Conditions on the registry facts (and earlier answers) under which
    /// it is asked; empty: always. A question whose conditions do not hold
    /// need not be answered, and its `answer.` fact stays absent.
    #[serde(default)]
    pub when: Vec<String>,
}

/// A rule: when every condition holds, the procedure is on the checklist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Procedure id.
    pub procedure: String,
    /// Conditions, all of which must hold (empty: always).
    #[serde(default)]
    pub when: Vec<String>,
}

/// A flag rule: when every condition holds, staff see the text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagRule {
    /// Flag id.
    pub id: String,
    /// Conditions.
    #[serde(default)]
    pub when: Vec<String>,
    /// Procedure ids it concerns.
    #[serde(default)]
    pub procedures: Vec<String>,
    /// What to know or tell.
    pub text_ja: String,
}

/// A life event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifeEvent {
    /// Event id.
    pub id: String,
    /// Name in Japanese.
    pub name_ja: String,
    /// Interview questions; every one must be answered.
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Procedure rules in checklist order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Flag rules.
    #[serde(default)]
    pub flags: Vec<FlagRule>,
    /// Whether the navigator may run from a household the visitor declares
    /// (the registry does not hold it yet: a 転入, a birth before its 出生届).
    #[serde(default)]
    pub declared_household: bool,
}

/// Why a catalog was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("reading catalog {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or wrong shape.
    #[error("parsing catalog: {0}")]
    Parse(String),
    /// Valid shape, inconsistent content.
    #[error("invalid catalog: {0}")]
    Invalid(String),
}

impl Catalog {
    /// Reads `catalog.toml` beside the site file.
    pub fn load_beside(site_path: &Path, site: &Site) -> Result<Self, CatalogError> {
        let path = site_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("catalog.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, site)
    }

    /// Parses and checks catalog TOML against the site.
    pub fn parse(text: &str, site: &Site) -> Result<Self, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        catalog.validate(site)?;
        Ok(catalog)
    }

    /// A certificate kind by id.
    pub fn certificate(&self, id: &str) -> Option<&CertificateKind> {
        self.certificates.iter().find(|c| c.id == id)
    }

    /// A procedure by id.
    pub fn procedure(&self, id: &str) -> Option<&Procedure> {
        self.procedures.iter().find(|p| p.id == id)
    }

    /// A life event by id.
    pub fn life_event(&self, id: &str) -> Option<&LifeEvent> {
        self.life_events.iter().find(|e| e.id == id)
    }

    /// What a shipped catalog must say beyond what loading checks: every
    /// procedure names its department or agency, its legal basis, its
    /// deadline (or `"none"`) and what a late filing means, who may apply,
    /// what to bring and the public page it was checked against; every
    /// condition names a fact that exists — an `answer.` of a question of
    /// its own event, or a fact `known_fact` accepts. Returns one line per
    /// problem, empty when the catalog is complete.
    pub fn lint(&self, known_fact: impl Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        for p in &self.procedures {
            let mut missing = |what: &str| problems.push(format!("procedure {}: {what}", p.id));
            if p.department.trim().is_empty() {
                missing("no department or agency");
            }
            if p.legal_basis.trim().is_empty() {
                missing("no legal_basis");
            }
            match p.deadline {
                Deadline::Unstated => missing("no deadline (write \"none\" when there is none)"),
                Deadline::Period(_) if p.after_deadline.is_none() => {
                    missing("a deadline without after_deadline")
                }
                _ => {}
            }
            if p.applicants.is_empty() {
                missing("no applicants");
            }
            if p.documents.is_empty() {
                missing("no documents to bring");
            }
            if !p.source.starts_with("https://") && !p.source.starts_with("http://") {
                missing("no source URL");
            }
        }
        for event in &self.life_events {
            for question in &event.questions {
                if question.why_ja.trim().is_empty() {
                    problems.push(format!(
                        "event {}: question {} does not say why it is asked",
                        event.id, question.id
                    ));
                }
            }
            let conditions = event
                .rules
                .iter()
                .flat_map(|r| r.when.iter())
                .chain(event.flags.iter().flat_map(|f| f.when.iter()))
                .chain(event.questions.iter().flat_map(|q| q.when.iter()));
            for text in conditions {
                let Ok(condition) = Condition::parse(text) else {
                    problems.push(format!("event {}: unparsable condition {text:?}", event.id));
                    continue;
                };
                let fact = condition.fact();
                let known = match fact.strip_prefix("answer.") {
                    Some(question) => event.questions.iter().any(|q| q.id == question),
                    None => known_fact(fact),
                };
                if !known {
                    problems.push(format!(
                        "event {}: condition {text:?} names no fact the navigator knows",
                        event.id
                    ));
                }
            }
            let used: HashSet<&str> = event.rules.iter().map(|r| r.procedure.as_str()).collect();
            if used.is_empty() {
                problems.push(format!("event {}: no rules", event.id));
            }
        }
        problems
    }

    fn validate(&self, site: &Site) -> Result<(), CatalogError> {
        let mut v = Violations::new();
        let categories: HashSet<&str> = site
            .offices
            .iter()
            .flat_map(|o| o.categories.iter().map(|c| c.id.as_str()))
            .collect();
        if !categories.contains(self.one_stop_category.as_str()) {
            v.add("one_stop_category", "not a category of the site");
        }
        let mut ids = HashSet::new();
        for (i, kind) in self.certificates.iter().enumerate() {
            let at = format!("certificates[{i}]");
            if !is_resource_id(&kind.id) || !ids.insert(kind.id.as_str()) {
                v.add(format!("{at}.id"), "must be a unique resource id");
            }
            if !(0..=100_000).contains(&kind.fee_yen) {
                v.add(format!("{at}.fee_yen"), "must be 0..=100000");
            }
            if kind.revenue_account.trim().is_empty() {
                v.add(format!("{at}.revenue_account"), "must be set");
            }
            let mut options = HashSet::new();
            for (o, option) in kind.options.iter().enumerate() {
                if !is_resource_id(&option.id) || !options.insert(option.id.as_str()) {
                    v.add(
                        format!("{at}.options[{o}].id"),
                        "must be a unique resource id",
                    );
                }
            }
            if kind.in_person_only && (kind.requesters.power_of_attorney || kind.requesters.anyone)
            {
                v.add(
                    format!("{at}.requesters"),
                    "an in-person-only kind cannot allow proxies",
                );
            }
        }
        for (i, item) in self.fee_items.iter().enumerate() {
            let at = format!("fee_items[{i}]");
            if !is_resource_id(&item.id) || !ids.insert(item.id.as_str()) {
                v.add(
                    format!("{at}.id"),
                    "must be a resource id unique among certificates and fee items",
                );
            }
            if !(0..=100_000).contains(&item.fee_yen) {
                v.add(format!("{at}.fee_yen"), "must be 0..=100000");
            }
            if item.revenue_account.trim().is_empty() {
                v.add(format!("{at}.revenue_account"), "must be set");
            }
            if item.name_ja.trim().is_empty() {
                v.add(format!("{at}.name_ja"), "must be set");
            }
        }
        let mut exemptions = HashSet::new();
        for (i, exemption) in self.exemptions.iter().enumerate() {
            let at = format!("exemptions[{i}]");
            if !is_resource_id(&exemption.id) || !exemptions.insert(exemption.id.as_str()) {
                v.add(format!("{at}.id"), "must be a unique resource id");
            }
            if exemption.legal_basis.trim().is_empty() {
                v.add(format!("{at}.legal_basis"), "must be set");
            }
            for (a, item) in exemption.applies_to.iter().enumerate() {
                if !ids.contains(item.as_str()) {
                    v.add(
                        format!("{at}.applies_to[{a}]"),
                        format!("unknown fee item {item}"),
                    );
                }
            }
        }
        let mut procedures: HashMap<&str, &Procedure> = HashMap::new();
        for (i, procedure) in self.procedures.iter().enumerate() {
            let at = format!("procedures[{i}]");
            if !is_resource_id(&procedure.id)
                || procedures.insert(&procedure.id, procedure).is_some()
            {
                v.add(format!("{at}.id"), "must be a unique resource id");
            }
            if !procedure.category.is_empty() && !categories.contains(procedure.category.as_str()) {
                v.add(
                    format!("{at}.category"),
                    format!("unknown category {}", procedure.category),
                );
            }
            if procedure.category.is_empty() && procedure.one_stop {
                v.add(
                    format!("{at}.one_stop"),
                    "a procedure done outside the office cannot be one-stop",
                );
            }
            if !(1..=480).contains(&procedure.minutes) {
                v.add(format!("{at}.minutes"), "must be 1..=480");
            }
            for (a, label) in procedure.applicants.iter().enumerate() {
                if !APPLICANT_LABELS.contains(&label.as_str()) {
                    v.add(
                        format!("{at}.applicants[{a}]"),
                        format!("{label:?} is not one of {}", APPLICANT_LABELS.join(", ")),
                    );
                }
            }
            if let Some(after) = &procedure.after_deadline
                && after.note.trim().is_empty()
            {
                v.add(format!("{at}.after_deadline.note"), "must be set");
            }
            let url_or_empty = procedure.source.is_empty()
                || procedure.source.starts_with("https://")
                || procedure.source.starts_with("http://");
            if !url_or_empty {
                v.add(format!("{at}.source"), "must be an http(s) URL");
            }
            let acts_for_ok = procedure.acts_for == "subject"
                || procedure.acts_for == "applicant"
                || procedure.acts_for.strip_prefix("answer:").is_some();
            if !acts_for_ok {
                v.add(
                    format!("{at}.acts_for"),
                    "must be subject, applicant or answer:<question>",
                );
            }
        }
        let mut events = HashSet::new();
        for (e, event) in self.life_events.iter().enumerate() {
            let at = format!("life_events[{e}]");
            if !is_resource_id(&event.id) || !events.insert(event.id.as_str()) {
                v.add(format!("{at}.id"), "must be a unique resource id");
            }
            let mut questions = HashMap::new();
            for (q, question) in event.questions.iter().enumerate() {
                let ok = !question.id.is_empty()
                    && question
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok
                    || questions
                        .insert(question.id.as_str(), question.kind)
                        .is_some()
                {
                    v.add(
                        format!("{at}.questions[{q}].id"),
                        "must be a unique snake_case id",
                    );
                }
            }
            let mut check_conditions = |field: String, conditions: &[String]| {
                for (c, text) in conditions.iter().enumerate() {
                    if let Err(error) = Condition::parse(text) {
                        v.add(format!("{field}.when[{c}]"), error.to_string());
                    }
                }
            };
            for (q, question) in event.questions.iter().enumerate() {
                check_conditions(format!("{at}.questions[{q}]"), &question.when);
            }
            for (r, rule) in event.rules.iter().enumerate() {
                check_conditions(format!("{at}.rules[{r}]"), &rule.when);
            }
            for (f, flag) in event.flags.iter().enumerate() {
                check_conditions(format!("{at}.flags[{f}]"), &flag.when);
            }
            for (r, rule) in event.rules.iter().enumerate() {
                match procedures.get(rule.procedure.as_str()) {
                    None => v.add(
                        format!("{at}.rules[{r}].procedure"),
                        format!("unknown procedure {}", rule.procedure),
                    ),
                    Some(procedure) => {
                        if let Some(question) = procedure.acts_for.strip_prefix("answer:")
                            && questions.get(question) != Some(&QuestionKind::Person)
                        {
                            v.add(
                                format!("{at}.rules[{r}].procedure"),
                                format!(
                                    "procedure {} acts for answer {question}, which is not a person question of this event",
                                    procedure.id
                                ),
                            );
                        }
                    }
                }
            }
            for (f, flag) in event.flags.iter().enumerate() {
                for procedure in &flag.procedures {
                    if !procedures.contains_key(procedure.as_str()) {
                        v.add(
                            format!("{at}.flags[{f}].procedures"),
                            format!("unknown procedure {procedure}"),
                        );
                    }
                }
            }
        }
        v.finish()
            .map_err(|error| CatalogError::Invalid(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn site() -> Site {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        Site::load(&path).unwrap()
    }

    #[test]
    fn shipped_ofunato_catalog_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        let catalog = Catalog::load_beside(&path, &site()).unwrap();
        let fee = |id: &str| catalog.certificate(id).unwrap().fee_yen;
        assert_eq!(fee("juminhyo"), 300);
        assert_eq!(fee("koseki-tohon"), 450);
        assert_eq!(fee("joseki-tohon"), 750);
        let kouiki = catalog.certificate("koseki-kouiki").unwrap();
        assert!(kouiki.in_person_only && kouiki.requesters.photo_id_required);
        assert!(!kouiki.requesters.power_of_attorney);
        for event in [
            "death",
            "move-out",
            "move-in",
            "relocation",
            "birth",
            "marriage",
            "divorce",
        ] {
            assert!(catalog.life_event(event).is_some(), "{event}");
        }
    }

    #[test]
    fn register_fee_items_and_exemptions() {
        let text = r#"
one_stop_category = "life-events"
[[certificates]]
id = "juminhyo"
name_ja = "住民票の写し"
name_en = "x"
fee_yen = 300
revenue_account = "13-01-01-02"
department = "d"
[[fee_items]]
id = "juminhyo"
name_ja = "dup"
fee_yen = 200000
revenue_account = " "
[[exemptions]]
id = "pension"
name_ja = "年金請求用"
legal_basis = ""
applies_to = ["juminhyo", "gold"]
"#;
        let Err(CatalogError::Invalid(message)) = Catalog::parse(text, &site()) else {
            panic!("catalog should be rejected");
        };
        for needle in [
            "fee_items[0].id",
            "fee_items[0].fee_yen",
            "fee_items[0].revenue_account",
            "exemptions[0].legal_basis",
            "exemptions[0].applies_to[1]",
        ] {
            assert!(message.contains(needle), "{needle} not in {message}");
        }
        assert!(!message.contains("applies_to[0]"), "{message}");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        let shipped = Catalog::load_beside(&path, &site()).unwrap();
        assert!(shipped.fee_items.iter().any(|i| i.id == "mibun"));
        assert!(shipped.exemptions.iter().any(|e| e.id == "pension"));
    }

    #[test]
    fn inconsistent_catalogs_are_rejected() {
        let text = r#"
one_stop_category = "nope"
[[certificates]]
id = "x"
name_ja = "x"
name_en = "x"
fee_yen = -5
revenue_account = ""
department = "d"
in_person_only = true
requesters = { power_of_attorney = true }
[[procedures]]
id = "p"
name_ja = "p"
department = "d"
category = "unknown"
location = "l"
minutes = 0
one_stop = true
acts_for = "someone"
[[life_events]]
id = "death"
name_ja = "死亡"
rules = [{ procedure = "missing", when = ["subject.enrolment.x", "a==b"] }]
"#;
        let Err(CatalogError::Invalid(message)) = Catalog::parse(text, &site()) else {
            panic!("catalog should be rejected");
        };
        for needle in [
            "one_stop_category",
            "fee_yen",
            "revenue_account",
            "certificates[0].requesters",
            "unknown category unknown",
            "minutes",
            "acts_for",
            "unknown procedure missing",
            "when[1]",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }
}
