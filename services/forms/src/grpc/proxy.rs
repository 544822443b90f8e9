//! Proxy documents at the counter: the 委任状 and the proof of a legal
//! representation are recorded once on the visit (RecordProxyDocuments)
//! and passed to the identity service's CheckProxy with every question of
//! "may this visitor do this for that person" — the navigator's checklist
//! items, each certificate line when a request is created, and again when
//! it is confirmed. A refused line is one `PreconditionFailure` violation
//! carrying the identity service's reason.

use std::collections::HashMap;

use madoguchi_platform::auth::Principal;
use madoguchi_platform::error::{PreconditionViolation, ServiceError, Violations};
use madoguchi_platform::wareki::WarekiDate;
use madoguchi_proto::forms::v1 as pb;
use madoguchi_proto::identity::v1 as id;

use super::{
    FormsGrpc, check_resident, date_from, date_to, full_name, item_status, parse_etag, policy,
    reason_name,
};
use crate::domain::{ItemStatus, VisitName, check_text};
use crate::peers::Forwarded;
use crate::storage::FormsStore;

/// The flag raised for the persons the visitor may not act for.
pub(super) const BLOCKED_FLAG: &str = "power-of-attorney-needed";

/// The visit's proxy documents as the identity service takes them.
pub(super) fn documents(
    visit: &pb::Visit,
) -> (Vec<id::PowerOfAttorney>, Vec<id::LegalRepresentation>) {
    let letters = visit
        .powers_of_attorney
        .iter()
        .map(|l| id::PowerOfAttorney {
            delegator: l.delegator.clone(),
            proxy: Some(id::PersonClaim {
                person_name: l.proxy_name.clone(),
                birth_date: l.proxy_birth_date,
                address: None,
            }),
            procedures: l.scope.clone(),
            written_on: l.written_on,
        })
        .collect();
    let representations = visit
        .legal_representations
        .iter()
        .map(|r| id::LegalRepresentation {
            kind: match pb::LegalRepresentativeKind::try_from(r.kind) {
                Ok(pb::LegalRepresentativeKind::ParentalAuthority) => {
                    id::LegalRepresentativeKind::ParentalAuthority
                }
                Ok(pb::LegalRepresentativeKind::AdultGuardian) => {
                    id::LegalRepresentativeKind::AdultGuardian
                }
                _ => id::LegalRepresentativeKind::Unspecified,
            } as i32,
            represented: r.represented.clone(),
            evidence_issued_on: r.evidence_issued_on,
        })
        .collect();
    (letters, representations)
}

/// FAILED_PRECONDITION NOT_ENTITLED with one violation per refused line,
/// or `None` when every line is allowed. `decisions` are in line order.
pub(super) fn refused_lines(
    subject: &str,
    kinds: &[String],
    decisions: &[id::ProcedureDecision],
) -> Option<ServiceError> {
    if decisions.len() != kinds.len() {
        return Some(ServiceError::Internal(format!(
            "identity answered {} decisions for {} lines",
            decisions.len(),
            kinds.len()
        )));
    }
    let violations: Vec<PreconditionViolation> = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.allowed)
        .map(|(i, d)| PreconditionViolation {
            kind: reason_name(d.reason),
            subject: format!("lines[{i}]"),
            description: format!("{}: {}", kinds[i], d.message),
        })
        .collect();
    if violations.is_empty() {
        return None;
    }
    let summary: Vec<String> = violations
        .iter()
        .map(|v| format!("{} {} ({})", v.subject, v.description, v.kind))
        .collect();
    Some(ServiceError::FailedPreconditions {
        reason: "NOT_ENTITLED",
        message: format!("the visitor may not request: {}", summary.join("; ")),
        subject: subject.to_owned(),
        violations,
    })
}

/// FAILED_PRECONDITION NOT_ENTITLED for marking a refused item 済: one
/// violation, typed with the identity service's reason.
pub(super) fn refused_item(item: &str, proxy_reason: &str) -> ServiceError {
    let (kind, why) = proxy_reason
        .split_once(": ")
        .unwrap_or((proxy_reason, "the visitor may not do this procedure"));
    ServiceError::FailedPreconditions {
        reason: "NOT_ENTITLED",
        message: format!("the visitor may not do this procedure: {why} ({kind})"),
        subject: item.to_owned(),
        violations: vec![PreconditionViolation {
            kind: kind.to_owned(),
            subject: item.to_owned(),
            description: why.to_owned(),
        }],
    }
}

/// What staff should do about a refused item, in Japanese.
pub(super) fn refusal_note(reason: i32, who: &str) -> String {
    use id::ProxyDecisionReason as R;
    match R::try_from(reason).unwrap_or(R::Unspecified) {
        R::PowerOfAttorneyExpired => {
            format!("{who}の委任状は有効期間を過ぎています。新しい委任状が必要")
        }
        R::PowerOfAttorneyFutureDated => {
            format!("{who}の委任状の作成日が未来の日付です。作成日を確認してください")
        }
        R::OutOfScope => format!("{who}の委任状にこの手続が書かれていません"),
        R::ProxyMismatch => format!("{who}の委任状の代理人が来庁者と一致しません"),
        R::DelegatorDeceased => {
            format!("{who}は亡くなっているため、{who}の委任状は使えません")
        }
        R::ProxyNotAllowed => format!("代理不可の手続です。{who}本人の来庁が必要"),
        R::LegalRepresentationInvalid => {
            "法定代理人であることの証明が確認できません（資格・証明書の日付）".to_owned()
        }
        R::PhotoIdRequired => "顔写真付きの本人確認書類が必要".to_owned(),
        R::SubjectNotResident => format!("{who}は当市に住民登録がありません"),
        _ => format!("{who}本人の申請・署名、または{who}の委任状が必要"),
    }
}

/// Applies the identity service's decision to an item: allowed → 未,
/// refused → 後日 with a note saying why.
pub(super) fn apply_decision(
    item: &mut pb::ChecklistItem,
    decision: &id::ProcedureDecision,
    who: &str,
) {
    item.visitor_may_do = decision.allowed;
    item.proxy_reason = format!("{}: {}", reason_name(decision.reason), decision.message);
    if decision.allowed {
        item.status = ItemStatus::Pending as i32;
        item.note.clear();
    } else {
        item.status = ItemStatus::Later as i32;
        item.note = refusal_note(decision.reason, who);
    }
}

/// The flags naming, per person, what the visitor may not do for them.
pub(super) fn blocked_flags(
    catalog: &madoguchi_catalog::Catalog,
    items: &[pb::ChecklistItem],
    people: &HashMap<String, String>,
) -> Vec<pb::Flag> {
    let mut blocked: Vec<(String, Vec<String>)> = Vec::new();
    // A lapsed item is refused to everyone, not for want of a 委任状.
    for item in items
        .iter()
        .filter(|i| !i.visitor_may_do && !super::is_lapsed(i))
    {
        let procedure = item
            .procedure
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_default();
        match blocked.iter_mut().find(|(p, _)| *p == item.acts_for) {
            Some((_, list)) => list.push(procedure),
            None => blocked.push((item.acts_for.clone(), vec![procedure])),
        }
    }
    blocked.sort();
    blocked
        .into_iter()
        .map(|(person, procedures)| {
            let who = people.get(&person).cloned().unwrap_or_default();
            let names: Vec<String> = procedures
                .iter()
                .filter_map(|p| catalog.procedure(p).map(|p| p.name_ja.clone()))
                .collect();
            pb::Flag {
                id: BLOCKED_FLAG.to_owned(),
                text_ja: format!(
                    "有効な委任状がないため、申請者は{who}に代わって次の手続をできません：{}。{who}本人が申請書に署名する（郵送可）か、{who}の委任状を持って後日来庁してください。",
                    names.join("、")
                ),
                procedures,
            }
        })
        .collect()
}

/// Whether an item's proxy decision may change with the documents: it is
/// done for someone else, nobody has handled it, and it was not allowed
/// on a basis the documents do not touch (self, anyone, household,
/// family).
fn redecidable(item: &pb::ChecklistItem, applicant: &str) -> bool {
    let untouched = item.handled_by.is_empty()
        && !item.transferred
        && item.signature.is_empty()
        && matches!(item_status(item), ItemStatus::Pending | ItemStatus::Later);
    let by_documents = !item.visitor_may_do
        || item
            .proxy_reason
            .starts_with("PROXY_DECISION_REASON_POWER_OF_ATTORNEY:")
        || item
            .proxy_reason
            .starts_with("PROXY_DECISION_REASON_LEGAL_REPRESENTATIVE:");
    untouched && by_documents && !item.acts_for.is_empty() && item.acts_for != applicant
}

impl FormsGrpc {
    fn parse_documents(
        &self,
        v: &mut Violations,
        req: &pb::RecordProxyDocumentsRequest,
        municipality: Option<&madoguchi_platform::types::MunicipalityCode>,
    ) -> (Vec<pb::PowerOfAttorney>, Vec<pb::LegalRepresentation>) {
        if req.powers_of_attorney.len() > 10 {
            v.add("powers_of_attorney", "at most 10 letters");
        }
        if req.legal_representations.len() > 10 {
            v.add("legal_representations", "at most 10 representations");
        }
        let mut letters = Vec::new();
        for (i, letter) in req.powers_of_attorney.iter().enumerate() {
            let at = format!("powers_of_attorney[{i}]");
            let mut ok = check_resident(
                v,
                &format!("{at}.delegator"),
                &letter.delegator,
                municipality,
            );
            match &letter.proxy_name {
                Some(name)
                    if !name.family_name.trim().is_empty()
                        && !name.given_name.trim().is_empty() =>
                {
                    for (field, text) in [
                        ("family_name", &name.family_name),
                        ("given_name", &name.given_name),
                        ("family_name_kana", &name.family_name_kana),
                        ("given_name_kana", &name.given_name_kana),
                    ] {
                        if let Err(why) = check_text(text, 50) {
                            v.add(format!("{at}.proxy_name.{field}"), why);
                            ok = false;
                        }
                    }
                }
                _ => {
                    v.add(
                        format!("{at}.proxy_name"),
                        "family and given name of the proxy are required",
                    );
                    ok = false;
                }
            }
            match letter.proxy_birth_date.as_ref().map(date_from) {
                Some(Some(_)) => {}
                Some(None) => {
                    v.add(format!("{at}.proxy_birth_date"), "not a calendar date");
                    ok = false;
                }
                None => {
                    v.add(format!("{at}.proxy_birth_date"), "is required");
                    ok = false;
                }
            }
            if letter.scope.is_empty() || letter.scope.len() > 50 {
                v.add(format!("{at}.scope"), "must list 1..=50 procedures");
                ok = false;
            }
            for (s, id) in letter.scope.iter().enumerate() {
                let unknown = self
                    .catalog_of(municipality)
                    .is_some_and(|c| c.certificate(id).is_none() && c.procedure(id).is_none());
                if unknown {
                    v.add(
                        format!("{at}.scope[{s}]"),
                        "not a certificate kind or procedure of the catalog",
                    );
                    ok = false;
                } else if letter.scope[..s].contains(id) {
                    v.add(format!("{at}.scope[{s}]"), "listed twice");
                    ok = false;
                }
            }
            let written_on = match (&letter.written_on, letter.written_on_wareki.is_empty()) {
                (Some(_), false) => {
                    v.add(
                        format!("{at}.written_on_wareki"),
                        "set written_on or written_on_wareki, not both",
                    );
                    None
                }
                (Some(date), true) => {
                    let date = date_from(date);
                    if date.is_none() {
                        v.add(format!("{at}.written_on"), "not a calendar date");
                    }
                    date
                }
                (None, false) => match letter.written_on_wareki.parse::<WarekiDate>() {
                    Ok(w) => Some(w.to_gregorian()),
                    Err(e) => {
                        v.add(format!("{at}.written_on_wareki"), e.to_string());
                        None
                    }
                },
                (None, true) => {
                    v.add(
                        format!("{at}.written_on"),
                        "the date on the letter is required",
                    );
                    None
                }
            };
            if let (true, Some(written_on)) = (ok, written_on) {
                letters.push(pb::PowerOfAttorney {
                    written_on: Some(date_to(written_on)),
                    written_on_wareki: String::new(),
                    ..letter.clone()
                });
            }
        }
        let mut representations = Vec::new();
        for (i, r) in req.legal_representations.iter().enumerate() {
            let at = format!("legal_representations[{i}]");
            let mut ok = check_resident(
                v,
                &format!("{at}.represented"),
                &r.represented,
                municipality,
            );
            if !matches!(
                pb::LegalRepresentativeKind::try_from(r.kind),
                Ok(pb::LegalRepresentativeKind::ParentalAuthority
                    | pb::LegalRepresentativeKind::AdultGuardian)
            ) {
                v.add(
                    format!("{at}.kind"),
                    "must be PARENTAL_AUTHORITY or ADULT_GUARDIAN",
                );
                ok = false;
            }
            match r.evidence_issued_on.as_ref().map(date_from) {
                Some(None) => {
                    v.add(format!("{at}.evidence_issued_on"), "not a calendar date");
                    ok = false;
                }
                None if r.kind == pb::LegalRepresentativeKind::AdultGuardian as i32 => {
                    v.add(
                        format!("{at}.evidence_issued_on"),
                        "a guardian's 登記事項証明書 and its issue date are required",
                    );
                    ok = false;
                }
                _ => {}
            }
            if ok {
                representations.push(r.clone());
            }
        }
        (letters, representations)
    }

    /// RecordProxyDocuments: stores the documents and decides again every
    /// item they can change.
    pub(super) async fn record_proxy_documents(
        &self,
        principal: &Principal,
        auth: &Forwarded,
        req: pb::RecordProxyDocumentsRequest,
    ) -> Result<pb::Visit, ServiceError> {
        let mut v = Violations::new();
        let visit_name = v.check("visit", VisitName::parse(&req.visit));
        let municipality = visit_name.as_ref().map(|n| n.office.municipality.clone());
        let (letters, representations) = self.parse_documents(&mut v, &req, municipality.as_ref());
        let etag = parse_etag(&mut v, &req.etag);
        v.finish()?;
        let Some(visit_name) = visit_name else {
            return Err(ServiceError::invalid("visit", "missing"));
        };
        let municipality = self.admit(principal, &visit_name.office.municipality)?;
        let mut visit = self.store.visit(&visit_name.to_string()).await?;
        if visit.state != pb::VisitState::Open as i32 {
            return Err(ServiceError::precondition(
                "VISIT_COMPLETED",
                visit.name,
                "the visit is already completed",
            ));
        }
        // The persons named must exist in the registry (a typo in a
        // resident id is NOT_FOUND here, not a silent "missing letter").
        let mut people: HashMap<String, String> = HashMap::new();
        let named = letters
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    l.delegator.clone(),
                    format!("powers_of_attorney[{i}].delegator"),
                )
            })
            .chain(representations.iter().enumerate().map(|(i, r)| {
                (
                    r.represented.clone(),
                    format!("legal_representations[{i}].represented"),
                )
            }))
            .chain(
                visit
                    .items
                    .iter()
                    .filter(|i| redecidable(i, &visit.applicant))
                    .map(|i| (i.acts_for.clone(), "visit".to_owned())),
            )
            .collect::<Vec<_>>();
        for (person, field) in named {
            if let std::collections::hash_map::Entry::Vacant(entry) = people.entry(person) {
                let resident = self.peers.resident(auth, entry.key(), &field).await?;
                entry.insert(full_name(resident.person_name.as_ref()));
            }
        }

        visit.powers_of_attorney = letters;
        visit.legal_representations = representations;
        let (letters, representations) = documents(&visit);
        let mut items: Vec<pb::ChecklistItem> = visit
            .items
            .iter()
            .filter(|i| redecidable(i, &visit.applicant))
            .cloned()
            .collect();
        let requested: Vec<id::RequestedProcedure> = items
            .iter()
            .map(|i| id::RequestedProcedure {
                procedure: i
                    .procedure
                    .as_ref()
                    .map(|p| p.id.clone())
                    .unwrap_or_default(),
                subject: i.acts_for.clone(),
                relation: id::SubjectRelation::Unspecified as i32,
                policy: municipality
                    .catalog
                    .procedure(
                        i.procedure
                            .as_ref()
                            .map(|p| p.id.as_str())
                            .unwrap_or_default(),
                    )
                    .map(|p| policy(&p.requesters)),
            })
            .collect();
        if !requested.is_empty() {
            let decisions = self
                .peers
                .check_proxy(
                    auth,
                    id::CheckProxyRequest {
                        parent: format!("municipalities/{}", visit_name.office.municipality),
                        verification: visit.verification.clone(),
                        procedures: requested,
                        powers_of_attorney: letters,
                        legal_representations: representations,
                    },
                )
                .await?;
            if decisions.len() != items.len() {
                return Err(ServiceError::Internal(format!(
                    "identity answered {} decisions for {} items",
                    decisions.len(),
                    items.len()
                )));
            }
            for (item, decision) in items.iter_mut().zip(&decisions) {
                let who = people.get(&item.acts_for).cloned().unwrap_or_default();
                apply_decision(item, decision, &who);
            }
        }

        let mut locked = self
            .store
            .lock(&visit_name.to_string(), etag.as_deref(), true)
            .await?;
        let stored_items = FormsStore::items_in(&locked.txn, &locked.row.name).await?;
        let mut all = Vec::new();
        for stored in stored_items {
            let changed = items.iter().find(|i| i.name == stored.name);
            match changed {
                // Saved only if nobody handled it since it was read.
                Some(item) if redecidable(&stored, &visit.applicant) => {
                    FormsStore::save_item(&locked, item).await?;
                    all.push(item.clone());
                }
                _ => all.push(stored),
            }
        }
        for item in &all {
            if !item.visitor_may_do && !people.contains_key(&item.acts_for) {
                people.insert(item.acts_for.clone(), String::new());
            }
        }
        locked.header.powers_of_attorney = visit.powers_of_attorney.clone();
        locked.header.legal_representations = visit.legal_representations.clone();
        let mut flags: Vec<pb::Flag> = locked
            .header
            .flags
            .iter()
            .filter(|f| f.id != BLOCKED_FLAG)
            .cloned()
            .collect();
        flags.extend(blocked_flags(&municipality.catalog, &all, &people));
        locked.header.flags = flags;
        FormsStore::save_header(&locked, &locked.header).await?;
        self.store
            .commit(locked, &principal.subject, self.now())
            .await?;
        self.store.visit(&visit_name.to_string()).await
    }

    /// Decides every line of a certificate request with the visit's proxy
    /// documents.
    pub(super) async fn check_lines(
        &self,
        auth: &Forwarded,
        visit: &pb::Visit,
        municipality: &super::Municipality,
        lines: &[(String, String, pb::Relation)],
    ) -> Result<Vec<id::ProcedureDecision>, ServiceError> {
        let requested: Vec<id::RequestedProcedure> = lines
            .iter()
            .map(|(subject, kind, relation)| id::RequestedProcedure {
                procedure: kind.clone(),
                subject: subject.clone(),
                relation: super::subject_relation(*relation) as i32,
                policy: municipality
                    .catalog
                    .certificate(kind)
                    .map(|k| policy(&k.requesters)),
            })
            .collect();
        let (letters, representations) = documents(visit);
        self.peers
            .check_proxy(
                auth,
                id::CheckProxyRequest {
                    parent: format!("municipalities/{}", municipality.code),
                    verification: visit.verification.clone(),
                    procedures: requested,
                    powers_of_attorney: letters,
                    legal_representations: representations,
                },
            )
            .await
    }
}
