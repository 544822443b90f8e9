//! The gRPC adapter and the use cases behind it: authenticate, parse every
//! field (all violations at once), check the tenant, ask the peers
//! (identity, queue), then change the store in one transaction. Rules on
//! facts live in `domain`; reading the registry in `facts`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use madoguchi_platform::auth::{Principal, Role};
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::{ServiceError, Violations};
use madoguchi_platform::types::{BusinessDay, MunicipalityCode};
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::forms::v1 as pb;
use madoguchi_proto::forms::v1::forms_service_server::FormsService;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::prost_types;
use madoguchi_proto::types::v1::{Date, JapaneseName, Yen};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{
    DeadlineStanding, ItemStatus, OfficeName, VisitChild, VisitName, check_text, deadline_standing,
    navigate, unanswered_questions,
};
use crate::facts::{FactInput, facts};
use crate::kpi;
use crate::pdf::{CjkFont, Line, render};
use crate::peers::{Forwarded, Peers};
use crate::storage::{FormsStore, timestamp};
use madoguchi_catalog::{Catalog, LateStatus, Procedure, QuestionKind, Requesters};

mod declared;
mod proxy;

/// Roles that act at the counter.
const STAFF: &[Role] = &[Role::Admin, Role::Staff];
/// Roles that may read the catalog.
const READERS: &[Role] = &[
    Role::Admin,
    Role::Staff,
    Role::Device,
    Role::Display,
    Role::Integrator,
];

/// What the adapter needs of one served municipality: its name and its
/// own catalog (procedures, life events, certificate kinds and their fees).
#[derive(Debug, Clone)]
pub struct Municipality {
    /// 地方公共団体コード.
    pub code: MunicipalityCode,
    /// Name in Japanese.
    pub name_ja: String,
    /// The municipality's `catalog.toml`.
    pub catalog: Catalog,
}

/// The `FormsService` implementation.
#[derive(Debug, Clone)]
pub struct FormsGrpc {
    store: FormsStore,
    /// Every served municipality by code; a request is answered from the
    /// entry of the municipality its resource name names, and only after
    /// [`FormsGrpc::admit`].
    municipalities: Arc<HashMap<MunicipalityCode, Municipality>>,
    peers: Peers,
    clock: SharedClock,
    font: Option<CjkFont>,
    kpi_counters: kpi::KpiCounters,
}

impl FormsGrpc {
    /// An adapter over its parts.
    pub fn new(
        store: FormsStore,
        municipalities: Vec<Municipality>,
        peers: Peers,
        clock: SharedClock,
        font: Option<CjkFont>,
    ) -> Self {
        Self {
            store,
            municipalities: Arc::new(
                municipalities
                    .into_iter()
                    .map(|m| (m.code.clone(), m))
                    .collect(),
            ),
            peers,
            clock,
            font,
            kpi_counters: kpi::KpiCounters::default(),
        }
    }

    /// The KPI counters completed visits are counted in.
    pub fn kpi_counters(&self) -> &kpi::KpiCounters {
        &self.kpi_counters
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A served municipality, or NOT_FOUND naming `municipalities/{code}`.
    fn municipality(&self, code: &MunicipalityCode) -> Result<&Municipality, ServiceError> {
        self.municipalities.get(code).ok_or_else(|| {
            ServiceError::not_found("municipality", format!("municipalities/{code}"))
        })
    }

    /// Admits `principal` to the municipality `code`: PERMISSION_DENIED
    /// for another municipality's principal, then NOT_FOUND when this
    /// service does not serve it. Every use case calls it before reading
    /// or writing anything of the municipality.
    fn admit(
        &self,
        principal: &Principal,
        code: &MunicipalityCode,
    ) -> Result<&Municipality, ServiceError> {
        principal.check_tenant(code)?;
        self.municipality(code)
    }

    /// The catalog of a parsed, served municipality, for validating a
    /// request before it is admitted (checks against it are skipped for
    /// an unparsed or unserved name, which fails on its own).
    fn catalog_of(&self, code: Option<&MunicipalityCode>) -> Option<&Catalog> {
        code.and_then(|c| self.municipalities.get(c))
            .map(|m| &m.catalog)
    }

    fn today(&self) -> NaiveDate {
        BusinessDay::of(self.now()).date()
    }

    fn font(&self) -> Result<&CjkFont, ServiceError> {
        self.font.as_ref().ok_or_else(|| {
            ServiceError::precondition(
                "PDF_FONT_MISSING",
                "font",
                "no cjk font is installed on the server (scripts/fonts.sh)",
            )
        })
    }
}

fn authorize<T>(
    request: &Request<T>,
    roles: &[Role],
) -> Result<(Principal, Forwarded), ServiceError> {
    let principal = Principal::of(request)?.clone();
    principal.require(roles)?;
    Ok((principal, Forwarded::of(request)))
}

// ------------------------------------------------------------------ parsing

/// A pb date → calendar date.
pub fn date_from(date: &Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        date.year,
        u32::try_from(date.month).ok()?,
        u32::try_from(date.day).ok()?,
    )
    .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
}

/// A calendar date → pb date.
pub fn date_to(date: NaiveDate) -> Date {
    use chrono::Datelike;
    Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// `令和5年6月16日` for printouts; the Gregorian form before 明治6年.
pub fn wareki(date: NaiveDate) -> String {
    WarekiDate::from_gregorian(date)
        .map(|w| w.to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// A resident resource name of `municipality`.
fn check_resident(
    v: &mut Violations,
    field: &str,
    name: &str,
    municipality: Option<&MunicipalityCode>,
) -> bool {
    let Some(rest) = name.strip_prefix("municipalities/") else {
        v.add(field, "must look like municipalities/{code}/residents/{id}");
        return false;
    };
    let Some((code, id)) = rest.split_once("/residents/") else {
        v.add(field, "must look like municipalities/{code}/residents/{id}");
        return false;
    };
    if id.is_empty() || id.contains('/') || id.chars().any(char::is_control) {
        v.add(field, "must look like municipalities/{code}/residents/{id}");
        return false;
    }
    if let Some(municipality) = municipality
        && code != municipality.as_str()
    {
        v.add(
            field,
            format!("must be a resident record of municipality {municipality}"),
        );
        return false;
    }
    true
}

fn parse_etag(v: &mut Violations, etag: &str) -> Option<String> {
    if etag.is_empty() {
        None
    } else if etag.len() > 20 || !etag.bytes().all(|b| b.is_ascii_digit()) {
        v.add("etag", "not an etag this service issued");
        None
    } else {
        Some(etag.to_owned())
    }
}

fn relation(value: i32) -> Option<pb::Relation> {
    pb::Relation::try_from(value).ok()
}

fn subject_relation(relation: pb::Relation) -> id::SubjectRelation {
    match relation {
        pb::Relation::Unspecified => id::SubjectRelation::Unspecified,
        pb::Relation::Spouse => id::SubjectRelation::Spouse,
        pb::Relation::LinealRelative => id::SubjectRelation::LinealRelative,
        pb::Relation::Other => id::SubjectRelation::Other,
    }
}

fn policy(requesters: &Requesters) -> id::ProxyPolicy {
    id::ProxyPolicy {
        allow_anyone: requesters.anyone,
        allow_household_member: requesters.household_member,
        allow_family: requesters.family,
        allow_power_of_attorney: requesters.power_of_attorney,
        allow_legal_representative: requesters.legal_representative,
        require_photo_id: requesters.photo_id_required,
    }
}

fn requester_policy(r: &Requesters) -> pb::RequesterPolicy {
    pb::RequesterPolicy {
        anyone: r.anyone,
        household_member: r.household_member,
        family: r.family,
        power_of_attorney: r.power_of_attorney,
        legal_representative: r.legal_representative,
        photo_id_required: r.photo_id_required,
    }
}

fn procedure_pb(p: &Procedure) -> pb::Procedure {
    pb::Procedure {
        id: p.id.clone(),
        name_ja: p.name_ja.clone(),
        department: p.department.clone(),
        category: p.category.clone(),
        location: p.location.clone(),
        documents: p.documents.clone(),
        minutes: p.minutes,
        deadline_days: p.deadline.days(),
        one_stop: p.one_stop,
        requesters: Some(requester_policy(&p.requesters)),
        signature: p.signature,
        deadline_text: p.deadline.text_ja(),
        legal_basis: p.legal_basis.clone(),
        applicants: p.applicants.clone(),
        source: p.source.clone(),
        after_deadline: p.after_deadline.as_ref().map(|a| pb::LateFiling {
            lapsed: a.status == LateStatus::Lapsed,
            note: a.note.clone(),
        }),
    }
}

fn full_name(name: Option<&JapaneseName>) -> String {
    name.map(|n| format!("{} {}", n.family_name, n.given_name))
        .unwrap_or_default()
}

fn address_line(address: Option<&madoguchi_proto::types::v1::Address>) -> String {
    address
        .map(|a| {
            format!(
                "{}{}{}{}",
                a.prefecture,
                a.municipality,
                a.street,
                if a.building.is_empty() {
                    String::new()
                } else {
                    format!(" {}", a.building)
                }
            )
        })
        .unwrap_or_default()
}

fn reason_name(reason: i32) -> String {
    id::ProxyDecisionReason::try_from(reason)
        .map(|r| r.as_str_name().to_owned())
        .unwrap_or_else(|_| "PROXY_DECISION_REASON_UNSPECIFIED".to_owned())
}

fn deadline_standing_pb(standing: DeadlineStanding) -> pb::DeadlineStanding {
    match standing {
        DeadlineStanding::None => pb::DeadlineStanding::None,
        DeadlineStanding::InTime => pb::DeadlineStanding::InTime,
        DeadlineStanding::Late => pb::DeadlineStanding::Late,
        DeadlineStanding::Lapsed => pb::DeadlineStanding::Lapsed,
    }
}

/// Whether the item's right lapsed before the visit (時効).
fn is_lapsed(item: &pb::ChecklistItem) -> bool {
    item.deadline_standing == pb::DeadlineStanding::Lapsed as i32
}

/// FAILED_PRECONDITION DEADLINE_LAPSED for `item`.
fn lapsed_item(item: &pb::ChecklistItem) -> ServiceError {
    ServiceError::precondition(
        "DEADLINE_LAPSED",
        item.name.clone(),
        "the right lapsed before the visit (時効); no counter can take it",
    )
}

/// A declared member's birth date as printed (和暦), empty when unknown.
fn declared_birth(member: &pb::DeclaredMember) -> String {
    member
        .birth_date
        .as_ref()
        .and_then(date_from)
        .map(wareki)
        .unwrap_or_default()
}

/// The signature block of a printed document: the strokes, or 未署名.
fn signature_line(strokes: Option<&[pb::Stroke]>) -> Line {
    match strokes {
        Some(strokes) => Line::Signature(
            strokes
                .iter()
                .map(|s| s.points.iter().map(|p| (p.x, p.y)).collect())
                .collect(),
        ),
        None => Line::Text("（未署名）".to_owned()),
    }
}

/// 続柄 as printed.
fn relation_to_head_ja(relation: i32) -> &'static str {
    match pb::RelationToHead::try_from(relation) {
        Ok(pb::RelationToHead::Head) => "世帯主",
        Ok(pb::RelationToHead::Spouse) => "妻・夫",
        Ok(pb::RelationToHead::Child) => "子",
        Ok(pb::RelationToHead::Parent) => "父・母",
        _ => "その他",
    }
}

/// The due date as printed: `令和5年6月30日まで（14日以内）`, or `定めなし`.
fn due_text(item: &pb::ChecklistItem, p: &pb::Procedure) -> String {
    item.due_date
        .as_ref()
        .and_then(date_from)
        .map(|d| format!("{}まで（{}）", wareki(d), p.deadline_text))
        .unwrap_or_else(|| "定めなし".to_owned())
}

fn item_status(item: &pb::ChecklistItem) -> ItemStatus {
    ItemStatus::from_i32(item.status).unwrap_or(ItemStatus::Pending)
}

fn validate_strokes(v: &mut Violations, strokes: &[pb::Stroke]) {
    if strokes.is_empty() || strokes.len() > 100 {
        v.add("strokes", "must hold 1..=100 strokes");
        return;
    }
    let mut total = 0usize;
    for (s, stroke) in strokes.iter().enumerate() {
        if stroke.points.is_empty() || stroke.points.len() > 2000 {
            v.add(format!("strokes[{s}].points"), "must hold 1..=2000 points");
        }
        total += stroke.points.len();
        let mut last_t = 0;
        for (p, point) in stroke.points.iter().enumerate() {
            if point.x > 10_000 || point.y > 10_000 {
                v.add(
                    format!("strokes[{s}].points[{p}]"),
                    "x and y must be 0..=10000",
                );
            }
            if point.t_ms < last_t {
                v.add(
                    format!("strokes[{s}].points[{p}].t_ms"),
                    "must not go back in time",
                );
            }
            last_t = point.t_ms;
        }
    }
    if total > 20_000 {
        v.add("strokes", "at most 20000 points in all");
    }
}

// ------------------------------------------------------------------ use cases

impl FormsGrpc {
    fn catalog_pb(municipality: &Municipality) -> pb::Catalog {
        let c = &municipality.catalog;
        pb::Catalog {
            name: format!("municipalities/{}", municipality.code),
            certificate_kinds: c
                .certificates
                .iter()
                .map(|k| pb::CertificateKind {
                    id: k.id.clone(),
                    name_ja: k.name_ja.clone(),
                    name_en: k.name_en.clone(),
                    fee: Some(Yen { amount: k.fee_yen }),
                    revenue_account: k.revenue_account.clone(),
                    requesters: Some(requester_policy(&k.requesters)),
                    options: k
                        .options
                        .iter()
                        .map(|o| pb::CertificateOption {
                            id: o.id.clone(),
                            name_ja: o.name_ja.clone(),
                        })
                        .collect(),
                    in_person_only: k.in_person_only,
                    department: k.department.clone(),
                    purpose_required: k.purpose_required,
                })
                .collect(),
            procedures: c.procedures.iter().map(procedure_pb).collect(),
            life_events: c
                .life_events
                .iter()
                .map(|e| {
                    let mut procedures: Vec<String> = Vec::new();
                    for rule in &e.rules {
                        if !procedures.contains(&rule.procedure) {
                            procedures.push(rule.procedure.clone());
                        }
                    }
                    pb::LifeEvent {
                        id: e.id.clone(),
                        name_ja: e.name_ja.clone(),
                        questions: e
                            .questions
                            .iter()
                            .map(|q| pb::Question {
                                id: q.id.clone(),
                                text_ja: q.text_ja.clone(),
                                kind: q.kind.as_str().to_owned(),
                                why_ja: q.why_ja.clone(),
                                when: q.when.clone(),
                            })
                            .collect(),
                        procedures,
                        declared_household: e.declared_household,
                    }
                })
                .collect(),
        }
    }

    async fn start_visit(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::StartVisitRequest,
    ) -> Result<pb::Visit, ServiceError> {
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        if let Some(office) = &office {
            let prefix = format!("municipalities/{}/verifications/", office.municipality);
            let ok = req
                .verification
                .strip_prefix(&prefix)
                .is_some_and(|id| !id.is_empty() && !id.contains('/'));
            if !ok {
                v.add("verification", format!("must look like {prefix}{{id}}"));
            }
            if !req.ticket.is_empty() {
                let prefix = format!("{office}/tickets/");
                let ok = req
                    .ticket
                    .strip_prefix(&prefix)
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'));
                if !ok {
                    v.add("ticket", format!("must look like {prefix}{{ticket}}"));
                }
            }
        }
        let request_id = if req.request_id.is_empty() {
            None
        } else {
            match Uuid::parse_str(&req.request_id) {
                Ok(id) if !id.is_nil() => Some(id.to_string()),
                _ => {
                    v.add("request_id", "must be a UUID");
                    None
                }
            }
        };
        v.finish()?;
        let Some(office) = office else {
            return Err(ServiceError::invalid("parent", "missing"));
        };
        self.admit(principal, &office.municipality)?;
        let verification = self.peers.verification(auth, &req.verification).await?;
        if !verification.verified {
            return Err(ServiceError::precondition(
                "VISITOR_NOT_VERIFIED",
                req.verification,
                "the visitor's identity is not verified",
            ));
        }
        if !req.ticket.is_empty() {
            self.peers.ticket(auth, &req.ticket).await?;
        }
        let mut header = pb::Visit {
            ticket: req.ticket.clone(),
            verification: req.verification.clone(),
            photo_id: verification.photo_id,
            ..Default::default()
        };
        if verification.resident.is_empty() {
            let claim = verification.visitor.unwrap_or_default();
            header.applicant_name = claim.person_name;
            header.applicant_address = claim.address;
            header.applicant_resident = false;
        } else {
            let resident = self
                .peers
                .resident(auth, &verification.resident, "verification")
                .await?;
            header.applicant = resident.name.clone();
            header.applicant_name = resident.person_name;
            header.applicant_address = resident.address;
            header.applicant_resident =
                resident.residence_status == id::ResidenceStatus::Resident as i32;
        }
        let name = VisitName {
            office,
            id: Uuid::now_v7().to_string(),
        };
        let visit = self
            .store
            .create_visit(&name, &header, request_id, &principal.subject, self.now())
            .await?;
        tracing::info!(visit = %visit.name, "visit started");
        Ok(visit)
    }

    async fn navigate_life_event(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::NavigateLifeEventRequest,
    ) -> Result<pb::Visit, ServiceError> {
        let mut v = Violations::new();
        let visit_name = v.check("visit", VisitName::parse(&req.visit));
        let municipality = visit_name.as_ref().map(|n| n.office.municipality.clone());
        let catalog = self.catalog_of(municipality.as_ref());
        let event = catalog.and_then(|c| c.life_event(&req.life_event));
        if catalog.is_some() && event.is_none() {
            v.add("life_event", "not a life event of the catalog");
        }
        let declared = req.declared_household.as_ref();
        match declared {
            None => {
                check_resident(&mut v, "subject", &req.subject, municipality.as_ref());
            }
            Some(_) if !req.subject.is_empty() => v.add(
                "declared_household",
                "set subject or declared_household, not both",
            ),
            Some(_) => {
                if let Some(event) = event
                    && !event.declared_household
                {
                    v.add(
                        "declared_household",
                        format!("life event {} needs a registered subject", event.id),
                    );
                }
            }
        }
        let mut answers: Vec<(String, String)> = Vec::new();
        if let Some(event) = event {
            for (i, answer) in req.answers.iter().enumerate() {
                let Some(question) = event.questions.iter().find(|q| q.id == answer.question)
                else {
                    v.add(
                        format!("answers[{i}].question"),
                        "not a question of this life event",
                    );
                    continue;
                };
                if answers.iter().any(|(q, _)| q == &answer.question) {
                    v.add(format!("answers[{i}].question"), "answered twice");
                    continue;
                }
                let field = format!("answers[{i}].value");
                let ok = match question.kind {
                    QuestionKind::YesNo => {
                        let ok = answer.value == "yes" || answer.value == "no";
                        if !ok {
                            v.add(&field, "must be yes or no");
                        }
                        ok
                    }
                    QuestionKind::Person => {
                        check_resident(&mut v, &field, &answer.value, municipality.as_ref())
                    }
                    QuestionKind::Text => match check_text(&answer.value, 200) {
                        Ok(()) => true,
                        Err(why) => {
                            v.add(&field, why);
                            false
                        }
                    },
                };
                if ok {
                    answers.push((answer.question.clone(), answer.value.clone()));
                }
            }
            // A question with conditions is checked once the registry
            // facts are known (below); the others must always be answered.
            for question in event.questions.iter().filter(|q| q.when.is_empty()) {
                if !req.answers.iter().any(|a| a.question == question.id) {
                    v.add(
                        "answers",
                        format!("question {} is not answered", question.id),
                    );
                }
            }
        }
        let mut relations: HashMap<String, pb::Relation> = HashMap::new();
        for (i, r) in req.relations.iter().enumerate() {
            let field = format!("relations[{i}]");
            if check_resident(
                &mut v,
                &format!("{field}.person"),
                &r.person,
                municipality.as_ref(),
            ) {
                match relation(r.relation) {
                    Some(rel) => {
                        relations.insert(r.person.clone(), rel);
                    }
                    None => v.add(format!("{field}.relation"), "not a relation"),
                }
            }
        }
        let mut event_date = None;
        match (&req.event_date, req.event_date_wareki.is_empty()) {
            (Some(_), false) => v.add(
                "event_date_wareki",
                "set event_date or event_date_wareki, not both",
            ),
            (Some(date), true) => match date_from(date) {
                Some(d) => event_date = Some(d),
                None => v.add("event_date", "not a calendar date"),
            },
            (None, false) => match req.event_date_wareki.parse::<WarekiDate>() {
                Ok(w) => event_date = Some(w.to_gregorian()),
                Err(e) => v.add("event_date_wareki", e.to_string()),
            },
            (None, true) => {}
        }
        if let Some(date) = event_date
            && date > self.today()
        {
            v.add("event_date", "is in the future");
        }
        if let Some(household) = declared {
            declared::validate(
                &mut v,
                household,
                &req.life_event,
                municipality.as_ref(),
                self.today(),
                Some(event_date.unwrap_or_else(|| self.today())),
            );
        }
        let etag = parse_etag(&mut v, &req.etag);
        v.finish()?;
        let Some(visit_name) = visit_name else {
            return Err(ServiceError::invalid("visit", "missing"));
        };
        let municipality = self.admit(principal, &visit_name.office.municipality)?;
        let Some(event) = event else {
            return Err(ServiceError::invalid("life_event", "missing"));
        };
        let visit = self.store.visit(&visit_name.to_string()).await?;
        if visit.state != pb::VisitState::Open as i32 {
            return Err(ServiceError::precondition(
                "VISIT_COMPLETED",
                visit.name,
                "the visit is already completed",
            ));
        }
        let (subject, household) = match declared {
            // Nobody to read: the declared members stand in for the records.
            Some(declared) => {
                let on = event_date.unwrap_or_else(|| self.today());
                let (subject, household) = declared::as_records(declared, on);
                (subject, Some(household))
            }
            None => {
                let subject = self.peers.resident(auth, &req.subject, "subject").await?;
                let household = if subject.household.is_empty() {
                    None
                } else {
                    Some(self.peers.household(auth, &subject.household).await?)
                };
                (subject, household)
            }
        };
        let deceased = subject.life_status == id::LifeStatus::Deceased as i32;
        if event.id == "death" && !deceased {
            return Err(ServiceError::precondition(
                "SUBJECT_NOT_DECEASED",
                req.subject,
                "the registry does not record this person as deceased",
            ));
        }
        let event_date = event_date
            .or_else(|| subject.death_date.as_ref().and_then(date_from))
            .unwrap_or_else(|| self.today());
        let facts = facts(&FactInput {
            subject: &subject,
            household: household.as_ref(),
            applicant: &visit.applicant,
            applicant_resident: visit.applicant_resident,
            photo_id: visit.photo_id,
            event_date,
            today: self.today(),
            event,
            answers: &answers,
        });
        let unanswered = unanswered_questions(event, &facts);
        if !unanswered.is_empty() {
            let mut v = Violations::new();
            for question in unanswered {
                v.add(
                    "answers",
                    format!("question {} is not answered", question.id),
                );
            }
            v.finish()?;
        }
        let navigation = navigate(&municipality.catalog, event, &facts);

        // For whom is each procedure done, and may this visitor do it?
        let answer = |q: &str| {
            answers
                .iter()
                .find(|(id, _)| id == q)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        let acts_for: Vec<String> = navigation
            .procedures
            .iter()
            .map(|p| match p.acts_for.as_str() {
                "applicant" => visit.applicant.clone(),
                // A declared person has no record (and no resource name) to
                // check a proxy against.
                _ if declared.is_some() => String::new(),
                "subject" => subject.name.clone(),
                other => answer(other.trim_start_matches("answer:")),
            })
            .collect();
        // Deadlines against the visit's day: a lapsed right is not asked
        // of the identity service — nobody may do it any more.
        let today = self.today();
        let deadlines: Vec<_> = navigation
            .procedures
            .iter()
            .map(|p| deadline_standing(p, event_date, today))
            .collect();
        let lapsed = |i: usize| deadlines[i].1 == DeadlineStanding::Lapsed;
        let mut requested = Vec::new();
        let mut asked = Vec::new();
        for (i, p) in navigation.procedures.iter().enumerate() {
            let person = &acts_for[i];
            if person.is_empty()
                || (!visit.applicant.is_empty() && person == &visit.applicant)
                || lapsed(i)
            {
                continue;
            }
            asked.push(i);
            requested.push(id::RequestedProcedure {
                procedure: p.id.clone(),
                subject: person.clone(),
                relation: subject_relation(
                    relations
                        .get(person)
                        .copied()
                        .unwrap_or(pb::Relation::Unspecified),
                ) as i32,
                policy: Some(policy(&p.requesters)),
            });
        }
        let decisions = if requested.is_empty() {
            Vec::new()
        } else {
            self.peers
                .check_proxy(
                    auth,
                    id::CheckProxyRequest {
                        parent: format!("municipalities/{}", visit_name.office.municipality),
                        verification: visit.verification.clone(),
                        procedures: requested,
                        powers_of_attorney: proxy::documents(&visit).0,
                        legal_representations: proxy::documents(&visit).1,
                    },
                )
                .await?
        };
        let mut people: HashMap<String, String> = HashMap::new();
        people.insert(
            subject.name.clone(),
            full_name(subject.person_name.as_ref()),
        );
        if let Some(h) = &household {
            for m in &h.members {
                people.insert(m.name.clone(), full_name(m.person_name.as_ref()));
            }
        }
        let mut items = Vec::new();
        for (i, p) in navigation.procedures.iter().enumerate() {
            let decision = asked
                .iter()
                .position(|a| *a == i)
                .and_then(|d| decisions.get(d));
            let person = acts_for[i].clone();
            let (due, standing, deadline_note) = &deadlines[i];
            let mut item = pb::ChecklistItem {
                name: visit_name.child("items", &p.id),
                procedure: Some(procedure_pb(p)),
                status: ItemStatus::Pending as i32,
                acts_for: person.clone(),
                visitor_may_do: true,
                proxy_reason: "PROXY_DECISION_REASON_SELF".to_owned(),
                due_date: due.map(date_to),
                deadline_standing: deadline_standing_pb(*standing) as i32,
                deadline_note: deadline_note.clone(),
                ..Default::default()
            };
            if lapsed(i) {
                // 時効: not an item to do, for this visitor or anyone.
                item.status = ItemStatus::NotApplicable as i32;
                item.visitor_may_do = false;
                item.proxy_reason.clear();
            } else if let Some(d) = decision {
                let who = people.get(&person).cloned().unwrap_or_default();
                proxy::apply_decision(&mut item, d, &who);
            }
            items.push(item);
        }
        // A flag about lapsed rights only (e.g. "the 喪主 must claim the
        // 葬祭費" after its 時効) would send staff after nothing.
        let lapsed_ids: Vec<&str> = navigation
            .procedures
            .iter()
            .enumerate()
            .filter(|(i, _)| lapsed(*i))
            .map(|(_, p)| p.id.as_str())
            .collect();
        let mut flags: Vec<pb::Flag> = navigation
            .flags
            .iter()
            .filter(|f| {
                f.procedures.is_empty()
                    || !f
                        .procedures
                        .iter()
                        .all(|p| lapsed_ids.contains(&p.as_str()))
            })
            .map(|f| pb::Flag {
                id: f.id.clone(),
                text_ja: f.text_ja.clone(),
                procedures: f.procedures.clone(),
            })
            .collect();
        flags.extend(proxy::blocked_flags(&municipality.catalog, &items, &people));

        let mut locked = self
            .store
            .lock(&visit_name.to_string(), etag.as_deref(), true)
            .await?;
        locked.header.life_event = event.id.clone();
        locked.header.subject = if declared.is_some() {
            String::new()
        } else {
            subject.name.clone()
        };
        locked.header.declared_household = req.declared_household.clone();
        locked.header.event_date = Some(date_to(event_date));
        locked.header.answers = answers
            .iter()
            .map(|(question, value)| pb::Answer {
                question: question.clone(),
                value: value.clone(),
            })
            .collect();
        locked.header.flags = flags;
        FormsStore::save_header(&locked, &locked.header).await?;
        FormsStore::replace_unhandled_items(&locked, &items).await?;
        self.store
            .commit(locked, &principal.subject, self.now())
            .await?;
        self.store.visit(&visit_name.to_string()).await
    }

    async fn update_item(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::UpdateChecklistItemRequest,
    ) -> Result<pb::ChecklistItem, ServiceError> {
        let mut v = Violations::new();
        let item = v.check("name", VisitChild::parse(&req.name, "items"));
        let status = ItemStatus::from_i32(req.status);
        if status.is_none() {
            v.add("status", "must be PENDING, DONE, NOT_APPLICABLE or LATER");
        }
        if let Err(why) = check_text(&req.note, 500) {
            v.add("note", why);
        }
        if let Some(item) = &item
            && !req.counter.is_empty()
        {
            let prefix = format!("{}/counters/", item.visit.office);
            if !req
                .counter
                .strip_prefix(&prefix)
                .is_some_and(|c| !c.is_empty() && !c.contains('/'))
            {
                v.add("counter", format!("must look like {prefix}{{counter}}"));
            }
        }
        v.finish()?;
        let (Some(item), Some(status)) = (item, status) else {
            return Err(ServiceError::invalid("name", "missing"));
        };
        self.admit(principal, &item.visit.office.municipality)?;
        let visit = self.store.visit(&item.visit.to_string()).await?;
        let category = if visit.ticket.is_empty() {
            String::new()
        } else {
            self.peers
                .ticket(auth, &visit.ticket)
                .await?
                .current_category
        };
        let locked = self.store.lock(&item.visit.to_string(), None, true).await?;
        let mut value = FormsStore::item_in(&locked, &item.id).await?;
        if is_lapsed(&value) && status != ItemStatus::NotApplicable {
            return Err(lapsed_item(&value));
        }
        if status == ItemStatus::Done && !value.visitor_may_do {
            // The identity service refused it for this visitor: it cannot
            // be done today (record a 委任状 and it is decided again).
            return Err(proxy::refused_item(&req.name, &value.proxy_reason));
        }
        value.status = status as i32;
        if !req.note.is_empty() {
            value.note = req.note;
        }
        value.handled_by = principal.subject.clone();
        value.handled_at_counter = req.counter;
        value.handled_in_category = category;
        value.handle_time = Some(timestamp(self.now().timestamp_micros()));
        FormsStore::save_item(&locked, &value).await?;
        self.store
            .commit(locked, &principal.subject, self.now())
            .await?;
        Ok(value)
    }

    async fn transfer_for_item(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::TransferForItemRequest,
    ) -> Result<pb::TransferForItemResponse, ServiceError> {
        let item = VisitChild::parse(&req.name, "items")
            .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
        self.admit(principal, &item.visit.office.municipality)?;
        let visit = self.store.visit(&item.visit.to_string()).await?;
        let current = visit
            .items
            .iter()
            .find(|i| i.name == req.name)
            .ok_or_else(|| ServiceError::not_found("checklist item", req.name.clone()))?;
        if is_lapsed(current) {
            return Err(lapsed_item(current));
        }
        let category = current
            .procedure
            .as_ref()
            .map(|p| p.category.clone())
            .unwrap_or_default();
        if category.is_empty() {
            return Err(ServiceError::precondition(
                "OUTSIDE_OFFICE",
                req.name,
                "the procedure is done outside this office; it stays on the open-items list",
            ));
        }
        if visit.ticket.is_empty() {
            return Err(ServiceError::precondition(
                "NO_TICKET",
                visit.name,
                "the visit has no queue ticket to transfer",
            ));
        }
        if visit.state != pb::VisitState::Open as i32 {
            return Err(ServiceError::precondition(
                "VISIT_COMPLETED",
                visit.name,
                "the visit is already completed",
            ));
        }
        let target = format!("{}/categories/{category}", item.visit.office);
        // Step 1: the intent, with the idempotency key the queue will
        // remember. A retry after a failure further on finds it and
        // replays the same queue transfer instead of asking for a new one.
        let request_id = if current.transfer_request_id.is_empty() {
            let ticket = self.peers.ticket(auth, &visit.ticket).await?;
            if ticket.current_category == target {
                return Err(ServiceError::precondition(
                    "ALREADY_IN_CATEGORY",
                    visit.ticket,
                    "the ticket is already queued for this department",
                ));
            }
            let locked = self.store.lock(&item.visit.to_string(), None, true).await?;
            let mut value = FormsStore::item_in(&locked, &item.id).await?;
            if value.transfer_request_id.is_empty() {
                value.transfer_request_id = Uuid::new_v4().to_string();
                FormsStore::save_item(&locked, &value).await?;
                self.store
                    .commit(locked, &principal.subject, self.now())
                    .await?;
            }
            // Else a concurrent call recorded one first: use that.
            value.transfer_request_id
        } else {
            current.transfer_request_id.clone()
        };
        // Step 2: the queue moves the ticket once per key.
        let ticket = match self
            .peers
            .transfer(auth, &visit.ticket, &target, &request_id)
            .await
        {
            Ok(ticket) => ticket,
            Err(error) => {
                // The answer may have been lost after the queue committed,
                // or an earlier attempt failed in the queue and the ticket
                // reached the department another way since: either way
                // there is nothing left to move once it waits there.
                let now = self.peers.ticket(auth, &visit.ticket).await?;
                if now.current_category != target {
                    return Err(error);
                }
                now
            }
        };
        // Step 3: the mark; the key is cleared so that a later transfer of
        // the same item (after the ticket came back) is a new one.
        let locked = self.store.lock(&item.visit.to_string(), None, true).await?;
        let mut value = FormsStore::item_in(&locked, &item.id).await?;
        if value.transfer_request_id == request_id {
            value.transferred = true;
            value.transfer_request_id.clear();
            FormsStore::save_item(&locked, &value).await?;
        }
        self.store
            .commit(locked, &principal.subject, self.now())
            .await?;
        Ok(pb::TransferForItemResponse {
            item: Some(value),
            category: target,
            ticket_display_number: ticket.display_number,
        })
    }

    async fn create_request(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::CreateCertificateRequestRequest,
    ) -> Result<pb::CertificateRequest, ServiceError> {
        let mut v = Violations::new();
        let visit_name = v.check("parent", VisitName::parse(&req.parent));
        let municipality = visit_name.as_ref().map(|n| n.office.municipality.clone());
        let catalog = self.catalog_of(municipality.as_ref());
        if req.lines.is_empty() || req.lines.len() > 20 {
            v.add("lines", "must hold 1..=20 line items");
        }
        for (i, line) in req.lines.iter().enumerate() {
            let at = format!("lines[{i}]");
            check_resident(
                &mut v,
                &format!("{at}.subject"),
                &line.subject,
                municipality.as_ref(),
            );
            match catalog.map(|c| c.certificate(&line.kind)) {
                // An unserved municipality: NOT_FOUND once admitted.
                None => {}
                Some(None) => v.add(
                    format!("{at}.kind"),
                    "not a certificate kind of the catalog",
                ),
                Some(Some(kind)) => {
                    for (o, option) in line.options.iter().enumerate() {
                        if !kind.options.iter().any(|k| &k.id == option) {
                            v.add(format!("{at}.options[{o}]"), "not an option of this kind");
                        } else if line.options[..o].contains(option) {
                            v.add(format!("{at}.options[{o}]"), "chosen twice");
                        }
                    }
                    if kind.purpose_required && line.purpose.trim().is_empty() {
                        v.add(
                            format!("{at}.purpose"),
                            "this kind needs a purpose (使用目的)",
                        );
                    }
                }
            }
            if !(1..=20).contains(&line.copies) {
                v.add(format!("{at}.copies"), "must be 1..=20");
            }
            if let Err(why) = check_text(&line.purpose, 100) {
                v.add(format!("{at}.purpose"), why);
            }
            if relation(line.relation).is_none() {
                v.add(format!("{at}.relation"), "not a relation");
            }
        }
        v.finish()?;
        let Some(visit_name) = visit_name else {
            return Err(ServiceError::invalid("parent", "missing"));
        };
        let municipality = self.admit(principal, &visit_name.office.municipality)?;
        let visit = self.store.visit(&visit_name.to_string()).await?;
        let mut subjects: HashMap<String, id::Resident> = HashMap::new();
        for (i, line) in req.lines.iter().enumerate() {
            if !subjects.contains_key(&line.subject) {
                let resident = self
                    .peers
                    .resident(auth, &line.subject, &format!("lines[{i}].subject"))
                    .await?;
                subjects.insert(line.subject.clone(), resident);
            }
        }
        let asked: Vec<(String, String, pb::Relation)> = req
            .lines
            .iter()
            .map(|line| {
                (
                    line.subject.clone(),
                    line.kind.clone(),
                    relation(line.relation).unwrap_or_default(),
                )
            })
            .collect();
        let decisions = self.check_lines(auth, &visit, municipality, &asked).await?;
        let kinds: Vec<String> = asked.iter().map(|(_, k, _)| k.clone()).collect();
        if let Some(refused) = proxy::refused_lines(&visit_name.to_string(), &kinds, &decisions) {
            return Err(refused);
        }
        let mut total = 0;
        let mut lines = Vec::new();
        for (i, line) in req.lines.iter().enumerate() {
            let Some(kind) = municipality.catalog.certificate(&line.kind) else {
                continue;
            };
            let fee = kind.fee_yen * i64::from(line.copies);
            total += fee;
            lines.push(pb::CertificateLine {
                subject: line.subject.clone(),
                subject_name: subjects
                    .get(&line.subject)
                    .and_then(|r| r.person_name.clone()),
                kind: kind.id.clone(),
                copies: line.copies,
                options: line.options.clone(),
                purpose: line.purpose.clone(),
                fee: Some(Yen { amount: fee }),
                revenue_account: kind.revenue_account.clone(),
                relation: line.relation,
                basis: decisions
                    .get(i)
                    .map(|d| reason_name(d.reason))
                    .unwrap_or_default(),
            });
        }
        let now = self.now();
        let request = pb::CertificateRequest {
            name: visit_name.child("certificateRequests", &Uuid::now_v7().to_string()),
            applicant_name: visit.applicant_name.clone(),
            applicant_address: visit.applicant_address.clone(),
            lines,
            total_fee: Some(Yen { amount: total }),
            state: pb::CertificateRequestState::Draft as i32,
            create_time: Some(timestamp(now.timestamp_micros())),
            ..Default::default()
        };
        let locked = self.store.lock(&visit_name.to_string(), None, true).await?;
        FormsStore::insert_request(&locked, &request, now).await?;
        self.store.commit(locked, &principal.subject, now).await?;
        Ok(request)
    }

    async fn confirm_request(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::ConfirmCertificateRequestRequest,
    ) -> Result<pb::CertificateRequest, ServiceError> {
        let name = VisitChild::parse(&req.name, "certificateRequests")
            .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
        let municipality = self.admit(principal, &name.visit.office.municipality)?;
        // Every line is decided again with the documents recorded now: a
        // letter may have expired or been replaced since the draft.
        let visit = self.store.visit(&name.visit.to_string()).await?;
        let draft = visit
            .certificate_requests
            .iter()
            .find(|r| r.name == req.name)
            .ok_or_else(|| ServiceError::not_found("certificate request", req.name.clone()))?;
        if draft.state == pb::CertificateRequestState::Draft as i32 {
            let asked: Vec<(String, String, pb::Relation)> = draft
                .lines
                .iter()
                .map(|l| {
                    (
                        l.subject.clone(),
                        l.kind.clone(),
                        relation(l.relation).unwrap_or_default(),
                    )
                })
                .collect();
            let decisions = self.check_lines(auth, &visit, municipality, &asked).await?;
            let kinds: Vec<String> = asked.iter().map(|(_, k, _)| k.clone()).collect();
            if let Some(refused) = proxy::refused_lines(&req.name, &kinds, &decisions) {
                return Err(refused);
            }
        }
        let locked = self.store.lock(&name.visit.to_string(), None, true).await?;
        if locked.header.powers_of_attorney != visit.powers_of_attorney
            || locked.header.legal_representations != visit.legal_representations
        {
            // The documents changed while the lines were being checked.
            return Err(ServiceError::Aborted {
                name: name.visit.to_string(),
            });
        }
        let mut request = FormsStore::requests_in(&locked.txn, &locked.row.name)
            .await?
            .into_iter()
            .find(|r| r.name == req.name)
            .ok_or_else(|| ServiceError::not_found("certificate request", req.name.clone()))?;
        if request.state != pb::CertificateRequestState::Draft as i32 {
            return Err(ServiceError::precondition(
                "REQUEST_NOT_DRAFT",
                req.name,
                "the request is already confirmed",
            ));
        }
        request.state = pb::CertificateRequestState::Confirmed as i32;
        request.confirmed_by = principal.subject.clone();
        FormsStore::save_request(&locked, &request).await?;
        self.store
            .commit(locked, &principal.subject, self.now())
            .await?;
        Ok(request)
    }

    async fn sign_visit(
        &self,
        principal: &Principal,
        req: pb::SignVisitRequest,
    ) -> Result<pb::Signature, ServiceError> {
        let mut v = Violations::new();
        let visit_name = v.check("visit", VisitName::parse(&req.visit));
        validate_strokes(&mut v, &req.strokes);
        v.finish()?;
        let Some(visit_name) = visit_name else {
            return Err(ServiceError::invalid("visit", "missing"));
        };
        self.admit(principal, &visit_name.office.municipality)?;
        let now = self.now();
        let locked = self.store.lock(&visit_name.to_string(), None, true).await?;
        let requests = FormsStore::requests_in(&locked.txn, &locked.row.name).await?;
        let items = FormsStore::items_in(&locked.txn, &locked.row.name).await?;
        let to_sign_requests: Vec<_> = requests
            .iter()
            .filter(|r| r.state == pb::CertificateRequestState::Confirmed as i32)
            .cloned()
            .collect();
        let to_sign_items: Vec<_> = items
            .iter()
            .filter(|i| {
                i.procedure.as_ref().is_some_and(|p| p.signature)
                    && i.signature.is_empty()
                    && i.visitor_may_do
                    // Only what is filed here today: not 対象外 or 後日,
                    // and not a procedure of an outside office.
                    && matches!(item_status(i), ItemStatus::Pending | ItemStatus::Done)
                    && i.procedure.as_ref().is_some_and(|p| !p.category.is_empty())
            })
            .cloned()
            .collect();
        if to_sign_requests.is_empty() && to_sign_items.is_empty() {
            let drafts = requests
                .iter()
                .any(|r| r.state == pb::CertificateRequestState::Draft as i32);
            return Err(ServiceError::precondition(
                "NOTHING_TO_SIGN",
                visit_name.to_string(),
                if drafts {
                    "confirm the certificate request before the signature"
                } else {
                    "every document of the visit is already signed"
                },
            ));
        }
        let name = visit_name.child("signatures", &Uuid::now_v7().to_string());
        let covers: Vec<String> = to_sign_requests
            .iter()
            .map(|r| r.name.clone())
            .chain(to_sign_items.iter().map(|i| i.name.clone()))
            .collect();
        for mut request in to_sign_requests {
            request.state = pb::CertificateRequestState::Signed as i32;
            request.signature = name.clone();
            FormsStore::save_request(&locked, &request).await?;
        }
        for mut item in to_sign_items {
            item.signature = name.clone();
            FormsStore::save_item(&locked, &item).await?;
        }
        let signature = pb::Signature {
            name,
            strokes: req.strokes,
            covers,
            witnessed_by: principal.subject.clone(),
            create_time: Some(timestamp(now.timestamp_micros())),
        };
        FormsStore::insert_signature(&locked, &signature, now).await?;
        self.store.commit(locked, &principal.subject, now).await?;
        Ok(signature)
    }

    fn visit_heading(&self, visit: &pb::Visit, lines: &mut Vec<Line>) {
        lines.push(Line::Text(format!(
            "来庁者: {}（{}）",
            full_name(visit.applicant_name.as_ref()),
            address_line(visit.applicant_address.as_ref())
        )));
        lines.push(Line::Text(format!(
            "本人確認: 済（{}）{}",
            if visit.photo_id {
                "顔写真付き本人確認書類"
            } else {
                "書類2点"
            },
            if visit.applicant_resident {
                ""
            } else {
                "／市外在住"
            }
        )));
    }

    fn application_pdf(
        &self,
        municipality: &Municipality,
        visit: &pb::Visit,
        request: &pb::CertificateRequest,
        strokes: Option<&[pb::Stroke]>,
    ) -> Result<Vec<u8>, ServiceError> {
        let mut lines = vec![
            Line::Title(format!("{}長　様", municipality.name_ja)),
            Line::Title("証明書交付申請書".to_owned()),
            Line::Text(format!("申請日: {}", wareki(self.today()))),
        ];
        self.visit_heading(visit, &mut lines);
        lines.push(Line::Heading(
            "請求内容（誰の・何を・何通・使用目的）".to_owned(),
        ));
        for (i, line) in request.lines.iter().enumerate() {
            let kind = municipality.catalog.certificate(&line.kind);
            let options: Vec<String> = line
                .options
                .iter()
                .filter_map(|o| {
                    kind.and_then(|k| k.options.iter().find(|x| &x.id == o))
                        .map(|x| x.name_ja.clone())
                })
                .collect();
            lines.push(Line::Text(format!(
                "{}. {}　{} × {}通　手数料 {}円",
                i + 1,
                full_name(line.subject_name.as_ref()),
                kind.map(|k| k.name_ja.as_str()).unwrap_or(&line.kind),
                line.copies,
                line.fee.as_ref().map(|f| f.amount).unwrap_or_default()
            )));
            lines.push(Line::Indented(format!(
                "使用目的: {}　記載事項: {}　歳入科目: {}",
                if line.purpose.is_empty() {
                    "—"
                } else {
                    &line.purpose
                },
                if options.is_empty() {
                    "—".to_owned()
                } else {
                    options.join("・")
                },
                line.revenue_account
            )));
        }
        lines.push(Line::Text(format!(
            "合計 {}円",
            request
                .total_fee
                .as_ref()
                .map(|f| f.amount)
                .unwrap_or_default()
        )));
        lines.push(Line::Heading(
            "署名（この署名は本申請のすべての明細に及びます）".to_owned(),
        ));
        lines.push(signature_line(strokes));
        lines.push(Line::Text(format!("受付職員: {}", request.confirmed_by)));
        render(self.font()?, lines).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    fn checklist_pdf(
        &self,
        municipality: &Municipality,
        visit: &pb::Visit,
        only_open: bool,
    ) -> Result<Vec<u8>, ServiceError> {
        let event = municipality
            .catalog
            .life_event(&visit.life_event)
            .map(|e| e.name_ja.as_str())
            .unwrap_or("");
        let mut lines = vec![Line::Title(if only_open {
            format!("まだ済んでいない手続の一覧（{event}）")
        } else {
            format!("手続チェックリスト（{event}）")
        })];
        lines.push(Line::Text(format!(
            "{}　{}",
            municipality.name_ja,
            wareki(self.today())
        )));
        self.visit_heading(visit, &mut lines);
        if let Some(date) = visit.event_date.as_ref().and_then(date_from) {
            lines.push(Line::Text(format!(
                "届出の日（事由発生日）: {}",
                wareki(date)
            )));
        }
        if let Some(household) = &visit.declared_household {
            // Written once at the navigator; every printed form takes it
            // from here.
            lines.push(Line::Text(format!(
                "届出の世帯（{}）",
                address_line(household.address.as_ref())
            )));
            for member in &household.members {
                lines.push(Line::Indented(format!(
                    "{}　{}生　{}",
                    full_name(member.person_name.as_ref()),
                    declared_birth(member),
                    relation_to_head_ja(member.relation)
                )));
            }
        }
        lines.push(Line::Gap);
        for item in &visit.items {
            let status = item_status(item);
            if only_open && (!status.is_open() || is_lapsed(item)) {
                continue;
            }
            let Some(p) = &item.procedure else { continue };
            let mark = if is_lapsed(item) {
                "時効"
            } else {
                status.mark()
            };
            lines.push(Line::Heading(format!(
                "［{mark}］{}　{}",
                p.name_ja, p.department
            )));
            if is_lapsed(item) {
                // Nothing to do: say why instead of where to go.
                lines.push(Line::Indented(format!(
                    "期限: {}　手続はできません（窓口へ行く必要はありません）",
                    due_text(item, p)
                )));
                lines.push(Line::Indented(format!("理由: {}", item.deadline_note)));
                continue;
            }
            lines.push(Line::Indented(format!("場所: {}", p.location)));
            lines.push(Line::Indented(format!(
                "持ち物: {}",
                p.documents.join("、")
            )));
            let due = due_text(item, p);
            if item.deadline_standing == pb::DeadlineStanding::Late as i32 {
                lines.push(Line::Indented(format!(
                    "期限を過ぎています（{due}）が、まだ受け付けます: {}",
                    item.deadline_note
                )));
            }
            lines.push(Line::Indented(format!(
                "期限: {due}　所要時間: 約{}分　{}",
                p.minutes,
                if p.one_stop {
                    "ワンストップ窓口で受付できます"
                } else {
                    "担当窓口・機関での手続です"
                }
            )));
            if !item.note.is_empty() {
                lines.push(Line::Indented(format!("備考: {}", item.note)));
            }
        }
        let lapsed: Vec<&pb::ChecklistItem> = visit.items.iter().filter(|i| is_lapsed(i)).collect();
        if only_open && !lapsed.is_empty() {
            lines.push(Line::Heading(
                "時効により手続できなくなったもの（窓口へ行く必要はありません）".to_owned(),
            ));
            for item in lapsed {
                let Some(p) = &item.procedure else { continue };
                lines.push(Line::Text(format!(
                    "・{}（期限 {}）",
                    p.name_ja,
                    due_text(item, p)
                )));
                lines.push(Line::Indented(item.deadline_note.clone()));
            }
        }
        if !visit.flags.is_empty() {
            lines.push(Line::Heading("ご注意".to_owned()));
            for flag in &visit.flags {
                lines.push(Line::Text(format!("・{}", flag.text_ja)));
            }
        }
        render(self.font()?, lines).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// The 住民異動届 of a 転入, from the declared household: written once
    /// at the navigator, printed here for the resident's one signature.
    fn move_in_pdf(
        &self,
        municipality: &Municipality,
        visit: &pb::Visit,
        signatures: &[pb::Signature],
    ) -> Result<Vec<u8>, ServiceError> {
        let Some(household) = visit
            .declared_household
            .as_ref()
            .filter(|h| h.address.is_some())
        else {
            return Err(ServiceError::precondition(
                "NO_DECLARED_MOVE_IN",
                visit.name.clone(),
                "the visit has no household declared with a 転入先: navigate a 転入 from \
                 the visitor's declaration first",
            ));
        };
        let mut lines = vec![Line::Title("住民異動届（転入届）".to_owned())];
        lines.push(Line::Text(format!(
            "{}長 あて　届出日: {}",
            municipality.name_ja,
            wareki(self.today())
        )));
        if let Some(date) = visit.event_date.as_ref().and_then(date_from) {
            lines.push(Line::Text(format!(
                "異動日（住み始めた日）: {}",
                wareki(date)
            )));
        }
        lines.push(Line::Text("異動の種類: 転入".to_owned()));
        lines.push(Line::Text(format!(
            "新しい住所: {}",
            address_line(household.address.as_ref())
        )));
        let head = household
            .members
            .iter()
            .find(|m| m.relation == pb::RelationToHead::Head as i32);
        lines.push(Line::Text(format!(
            "世帯主: {}",
            full_name(head.and_then(|m| m.person_name.as_ref()))
        )));
        lines.push(Line::Text(
            "前住所: 転出証明書（またはマイナンバーカードの転出情報）のとおり".to_owned(),
        ));
        lines.push(Line::Heading(format!(
            "異動した人（{}人）",
            household.members.len()
        )));
        for member in &household.members {
            let kana = member
                .person_name
                .as_ref()
                .map(|n| format!("{} {}", n.family_name_kana, n.given_name_kana))
                .filter(|k| !k.trim().is_empty())
                .map(|k| format!("（{k}）"))
                .unwrap_or_default();
            lines.push(Line::Indented(format!(
                "{}{}　{}生　続柄: {}",
                full_name(member.person_name.as_ref()),
                kana,
                declared_birth(member),
                relation_to_head_ja(member.relation)
            )));
        }
        lines.push(Line::Gap);
        self.visit_heading(visit, &mut lines);
        lines.push(Line::Text("届出人の署名".to_owned()));
        // One signature covers every document of the visit; the latest
        // one is the resident's current consent.
        lines.push(signature_line(
            signatures
                .iter()
                .rev()
                .find(|s| !s.strokes.is_empty())
                .map(|s| s.strokes.as_slice()),
        ));
        render(self.font()?, lines).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    async fn render_document(
        &self,
        principal: &Principal,
        req: pb::RenderDocumentRequest,
    ) -> Result<pb::RenderedDocument, ServiceError> {
        match pb::DocumentKind::try_from(req.kind) {
            Ok(pb::DocumentKind::CertificateApplication) => {
                let name = VisitChild::parse(&req.name, "certificateRequests")
                    .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
                let municipality = self.admit(principal, &name.visit.office.municipality)?;
                let visit = self.store.visit(&name.visit.to_string()).await?;
                let request = visit
                    .certificate_requests
                    .iter()
                    .find(|r| r.name == req.name)
                    .ok_or_else(|| {
                        ServiceError::not_found("certificate request", req.name.clone())
                    })?;
                if request.state == pb::CertificateRequestState::Draft as i32 {
                    return Err(ServiceError::precondition(
                        "REQUEST_NOT_CONFIRMED",
                        req.name,
                        "staff must confirm the request before it is printed",
                    ));
                }
                let signatures = self.store.signatures(&visit.name).await?;
                let strokes = signatures
                    .iter()
                    .find(|s| s.name == request.signature)
                    .map(|s| s.strokes.as_slice());
                Ok(pb::RenderedDocument {
                    media_type: "application/pdf".to_owned(),
                    content: self.application_pdf(municipality, &visit, request, strokes)?,
                    file_name: format!("application-{}.pdf", name.id),
                })
            }
            Ok(pb::DocumentKind::Checklist) => {
                let name = VisitName::parse(&req.name)
                    .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
                let municipality = self.admit(principal, &name.office.municipality)?;
                let visit = self.store.visit(&name.to_string()).await?;
                Ok(pb::RenderedDocument {
                    media_type: "application/pdf".to_owned(),
                    content: self.checklist_pdf(municipality, &visit, false)?,
                    file_name: format!("checklist-{}.pdf", name.id),
                })
            }
            Ok(pb::DocumentKind::MoveInNotification) => {
                let name = VisitName::parse(&req.name)
                    .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
                let municipality = self.admit(principal, &name.office.municipality)?;
                let visit = self.store.visit(&name.to_string()).await?;
                let signatures = self.store.signatures(&visit.name).await?;
                Ok(pb::RenderedDocument {
                    media_type: "application/pdf".to_owned(),
                    content: self.move_in_pdf(municipality, &visit, &signatures)?,
                    file_name: format!("move-in-{}.pdf", name.id),
                })
            }
            _ => Err(ServiceError::invalid(
                "kind",
                "must be CERTIFICATE_APPLICATION, CHECKLIST or MOVE_IN_NOTIFICATION",
            )),
        }
    }

    async fn complete_visit(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::CompleteVisitRequest,
    ) -> Result<pb::CompleteVisitResponse, ServiceError> {
        let name = VisitName::parse(&req.name)
            .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
        let municipality = self.admit(principal, &name.office.municipality)?;
        let now = self.now();
        let locked = self.store.lock(&name.to_string(), None, true).await?;
        FormsStore::complete(&locked, now).await?;
        self.store.commit(locked, &principal.subject, now).await?;
        // Counted once, after the commit; the ticket's legs come from the
        // queue, and a visit whose ticket cannot be read now still counts
        // (without counters).
        let kpis = match self.visit_kpis(municipality, auth, &name.to_string()).await {
            Ok(kpis) => Some(kpis),
            Err(error) => {
                tracing::warn!(%error, "visit kpis without the ticket");
                None
            }
        };
        let visit = self.store.visit(&name.to_string()).await?;
        let kpis = kpis.unwrap_or_else(|| {
            kpi::visit_kpis(&visit, visit.signatures.len() as u32, 0, None, "", now)
        });
        self.kpi_counters
            .visit_completed(&name.office.to_string(), &kpis);
        let open_items: Vec<pb::ChecklistItem> = visit
            .items
            .iter()
            .filter(|i| item_status(i).is_open())
            .cloned()
            .collect();
        let content = self.checklist_pdf(municipality, &visit, true)?;
        Ok(pb::CompleteVisitResponse {
            open_items,
            open_items_document: Some(pb::RenderedDocument {
                media_type: "application/pdf".to_owned(),
                content,
                file_name: format!("open-items-{}.pdf", name.id),
            }),
            visit: Some(visit),
        })
    }

    async fn visit_kpis(
        &self,
        municipality: &Municipality,
        auth: &Forwarded,
        visit: &str,
    ) -> Result<pb::VisitKpis, ServiceError> {
        let visit = self.store.visit(visit).await?;
        let signatures = visit.signatures.len() as u32;
        let staff = self.store.staff_count(&visit.name).await?;
        let ticket = if visit.ticket.is_empty() {
            None
        } else {
            Some(self.peers.ticket(auth, &visit.ticket).await?)
        };
        let one_stop = format!(
            "{}/categories/{}",
            VisitName::parse(&visit.name)
                .map(|n| n.office.to_string())
                .unwrap_or_default(),
            municipality.catalog.one_stop_category
        );
        Ok(kpi::visit_kpis(
            &visit,
            signatures,
            staff,
            ticket.as_ref(),
            &one_stop,
            self.now(),
        ))
    }

    async fn export_kpis(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::ExportKpisRequest,
    ) -> Result<pb::ExportKpisResponse, ServiceError> {
        let mut v = Violations::new();
        let office = v.check("parent", OfficeName::parse(&req.parent));
        let from = req.from_day.as_ref().and_then(date_from);
        let to = req.to_day.as_ref().and_then(date_from);
        if from.is_none() {
            v.add("from_day", "not a calendar date");
        }
        if to.is_none() {
            v.add("to_day", "not a calendar date");
        }
        if let (Some(from), Some(to)) = (from, to)
            && (to < from || (to - from).num_days() > 366)
        {
            v.add("to_day", "must be 0..=366 days after from_day");
        }
        v.finish()?;
        let (Some(office), Some(from), Some(to)) = (office, from, to) else {
            return Err(ServiceError::invalid("parent", "missing"));
        };
        let municipality = self.admit(principal, &office.municipality)?;
        let names = self
            .store
            .visits_between(
                &office.to_string(),
                BusinessDay::from_date(from),
                BusinessDay::from_date(to),
            )
            .await?;
        let mut visits = Vec::with_capacity(names.len());
        for name in names {
            visits.push(self.visit_kpis(municipality, auth, &name).await?);
        }
        let csv = kpi::to_csv(&visits);
        Ok(pb::ExportKpisResponse {
            one_stop_share_permille: kpi::aggregate_share(&visits),
            visits,
            csv,
        })
    }
}

// ------------------------------------------------------------------ tonic

fn ok<T>(result: Result<T, ServiceError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl FormsService for FormsGrpc {
    async fn get_catalog(
        &self,
        request: Request<pb::GetCatalogRequest>,
    ) -> Result<Response<pb::Catalog>, Status> {
        let (principal, _) = authorize(&request, READERS)?;
        let req = request.into_inner();
        let code = req
            .name
            .strip_prefix("municipalities/")
            .ok_or_else(|| ServiceError::invalid("name", "must look like municipalities/{code}"))
            .and_then(|c| {
                MunicipalityCode::parse(c).map_err(|e| ServiceError::invalid("name", e.to_string()))
            })?;
        let municipality = self.admit(&principal, &code)?;
        ok(Ok(Self::catalog_pb(municipality)))
    }

    async fn start_visit(
        &self,
        request: Request<pb::StartVisitRequest>,
    ) -> Result<Response<pb::Visit>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::start_visit(self, &principal, &auth, request.into_inner()).await)
    }

    async fn get_visit(
        &self,
        request: Request<pb::GetVisitRequest>,
    ) -> Result<Response<pb::Visit>, Status> {
        let (principal, _) = authorize(&request, STAFF)?;
        let name = VisitName::parse(&request.get_ref().name)
            .map_err(|e| ServiceError::invalid("name", e.to_string()))?;
        self.admit(&principal, &name.office.municipality)?;
        ok(self.store.visit(&name.to_string()).await)
    }

    async fn navigate_life_event(
        &self,
        request: Request<pb::NavigateLifeEventRequest>,
    ) -> Result<Response<pb::Visit>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::navigate_life_event(self, &principal, &auth, request.into_inner()).await)
    }

    async fn update_checklist_item(
        &self,
        request: Request<pb::UpdateChecklistItemRequest>,
    ) -> Result<Response<pb::ChecklistItem>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(self
            .update_item(&principal, &auth, request.into_inner())
            .await)
    }

    async fn transfer_for_item(
        &self,
        request: Request<pb::TransferForItemRequest>,
    ) -> Result<Response<pb::TransferForItemResponse>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::transfer_for_item(self, &principal, &auth, request.into_inner()).await)
    }

    async fn create_certificate_request(
        &self,
        request: Request<pb::CreateCertificateRequestRequest>,
    ) -> Result<Response<pb::CertificateRequest>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(self
            .create_request(&principal, &auth, request.into_inner())
            .await)
    }

    async fn confirm_certificate_request(
        &self,
        request: Request<pb::ConfirmCertificateRequestRequest>,
    ) -> Result<Response<pb::CertificateRequest>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(self
            .confirm_request(&principal, &auth, request.into_inner())
            .await)
    }

    async fn record_proxy_documents(
        &self,
        request: Request<pb::RecordProxyDocumentsRequest>,
    ) -> Result<Response<pb::Visit>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::record_proxy_documents(self, &principal, &auth, request.into_inner()).await)
    }

    async fn sign_visit(
        &self,
        request: Request<pb::SignVisitRequest>,
    ) -> Result<Response<pb::Signature>, Status> {
        let (principal, _) = authorize(&request, STAFF)?;
        ok(FormsGrpc::sign_visit(self, &principal, request.into_inner()).await)
    }

    async fn render_document(
        &self,
        request: Request<pb::RenderDocumentRequest>,
    ) -> Result<Response<pb::RenderedDocument>, Status> {
        let (principal, _) = authorize(&request, STAFF)?;
        ok(FormsGrpc::render_document(self, &principal, request.into_inner()).await)
    }

    async fn complete_visit(
        &self,
        request: Request<pb::CompleteVisitRequest>,
    ) -> Result<Response<pb::CompleteVisitResponse>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::complete_visit(self, &principal, &auth, request.into_inner()).await)
    }

    async fn get_visit_kpis(
        &self,
        request: Request<pb::GetVisitKpisRequest>,
    ) -> Result<Response<pb::VisitKpis>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        let name = VisitName::parse(&request.get_ref().visit)
            .map_err(|e| ServiceError::invalid("visit", e.to_string()))?;
        let municipality = self.admit(&principal, &name.office.municipality)?;
        ok(self
            .visit_kpis(municipality, &auth, &name.to_string())
            .await)
    }

    async fn export_kpis(
        &self,
        request: Request<pb::ExportKpisRequest>,
    ) -> Result<Response<pb::ExportKpisResponse>, Status> {
        let (principal, auth) = authorize(&request, STAFF)?;
        ok(FormsGrpc::export_kpis(self, &principal, &auth, request.into_inner()).await)
    }
}

/// Converts a protobuf duration from a chrono one (non-negative).
pub fn duration(d: Duration) -> prost_types::Duration {
    let micros = d.num_microseconds().unwrap_or(i64::MAX).max(0);
    prost_types::Duration {
        seconds: micros / 1_000_000,
        nanos: ((micros % 1_000_000) * 1000) as i32,
    }
}
