//! The identity operations: registry look-ups, verification, proxy
//! decisions, card reads and the audited My Number. Inputs arrive parsed
//! (see `grpc`); each operation reads what it needs, applies the pure
//! rules of [`crate::domain`] and writes in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use madoguchi_platform::auth::Principal;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::error::{ServiceError, Violation};
use madoguchi_platform::types::{BusinessDay, MunicipalityCode};
use madoguchi_proto::identity::v1 as pb;
use madoguchi_proto::prost::Message;
use madoguchi_proto::prost_types::Timestamp;
use uuid::Uuid;

use crate::config::{CardKind, DocumentKindConfig, IdentitySite, ProcedureConfig};
use crate::crypto::{MyNumberCipher, associated_data};
use crate::domain::my_number::{MASK, MyNumber};
use crate::domain::names::ChildName;
use crate::domain::person::{date_to_proto, fold};
use crate::domain::proxy;
use crate::domain::verification::{self, Claim, DocumentClass, Outcome, Presented, Rejection};
use crate::registry::{ResidentRecord, ResidentRegistry};
use crate::storage::entities::{audit_event, card_read, verification as verification_row};
use crate::storage::{IdentityStore, micros};

/// Everything the operations share.
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) store: IdentityStore,
    pub(crate) registry: Arc<dyn ResidentRegistry>,
    pub(crate) clock: SharedClock,
    pub(crate) cipher: MyNumberCipher,
    pub(crate) rules: Arc<HashMap<MunicipalityCode, Rules>>,
}

/// One served municipality's identity rules, from its own `identity.toml`:
/// document kinds, who may request each procedure, its My Number handlers
/// and how long its 委任状 stay valid. Nothing is shared between
/// municipalities: a kind, procedure or handler of one is unknown to the
/// other.
#[derive(Debug)]
pub struct Rules {
    kinds: HashMap<String, DocumentKindConfig>,
    kind_order: Vec<String>,
    procedures: HashMap<String, ProcedureConfig>,
    handlers: Vec<String>,
    validity_months: u32,
}

impl Rules {
    /// The rules of one `identity.toml`.
    pub fn from_site(site: &IdentitySite) -> Self {
        Self {
            kinds: site.kinds(),
            kind_order: site.document_kinds.iter().map(|k| k.id.clone()).collect(),
            procedures: site.procedures(),
            handlers: site.my_number.handlers.clone(),
            validity_months: site.power_of_attorney.validity_months,
        }
    }

    /// A procedure's rules, if the municipality knows it.
    pub fn procedure(&self, id: &str) -> Option<&ProcedureConfig> {
        self.procedures.get(id)
    }

    /// A document kind, if the municipality knows it.
    pub fn kind(&self, id: &str) -> Option<&DocumentKindConfig> {
        self.kinds.get(id)
    }

    /// Whether `subject` is one of the municipality's designated My Number
    /// handlers (個人番号事務取扱担当者).
    pub fn is_handler(&self, subject: &str) -> bool {
        self.handlers.iter().any(|h| h == subject)
    }
}

/// A parsed document of `VerifyIdentity`.
#[derive(Debug, Clone)]
pub struct DocumentInput {
    /// Kind id (known).
    pub kind: String,
    /// Holder name as entered.
    pub holder_name: Option<String>,
    /// Holder birth date as entered.
    pub holder_birth_date: Option<NaiveDate>,
    /// Expiry as entered.
    pub expiry_date: Option<NaiveDate>,
    /// A card read backing the document.
    pub card_read: Option<ChildName>,
}

/// A parsed `VerifyIdentity`.
#[derive(Debug, Clone)]
pub struct VerifyInput {
    /// The visit.
    pub visit: String,
    /// The checked claim.
    pub visitor: Claim,
    /// The claim as sent, stored with the result.
    pub visitor_proto: pb::PersonClaim,
    /// The visitor's record, if named.
    pub resident: Option<ChildName>,
    /// The documents.
    pub documents: Vec<DocumentInput>,
}

/// A parsed `SubmitCardRead`.
#[derive(Debug, Clone)]
pub struct CardReadInput {
    /// The visit.
    pub visit: String,
    /// Which card.
    pub source: CardKind,
    /// 氏名.
    pub full_name: String,
    /// 住所.
    pub address: String,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// ISO 5218.
    pub sex: i32,
    /// The number, if read.
    pub my_number: Option<MyNumber>,
    /// Expiry.
    pub expiry_date: Option<NaiveDate>,
    /// Licence number, if a licence.
    pub licence_number: String,
    /// Procedures of the visit.
    pub procedures: Vec<String>,
}

fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn new_id() -> String {
    Uuid::now_v7().simple().to_string()
}

impl Identity {
    /// Today in Asia/Tokyo by the service's clock.
    pub fn today(&self) -> NaiveDate {
        BusinessDay::of(self.clock.now()).date()
    }

    /// The registry port.
    pub fn registry(&self) -> &dyn ResidentRegistry {
        self.registry.as_ref()
    }

    /// The rules of a municipality this service serves, or NOT_FOUND
    /// naming `municipalities/{code}`.
    pub fn rules(&self, municipality: &MunicipalityCode) -> Result<&Rules, ServiceError> {
        self.rules
            .get(municipality)
            .ok_or_else(|| ServiceError::not_found("municipality", served_name(municipality)))
    }

    /// Admits `principal` to `municipality`: PERMISSION_DENIED for another
    /// municipality's principal, then NOT_FOUND for a municipality this
    /// service does not serve; every handler calls it before touching
    /// data.
    pub fn admit(
        &self,
        principal: &Principal,
        municipality: &MunicipalityCode,
    ) -> Result<&Rules, ServiceError> {
        principal.check_tenant(municipality)?;
        self.rules(municipality)
    }

    /// A resident or NOT_FOUND.
    pub async fn resident(&self, name: &ChildName) -> Result<ResidentRecord, ServiceError> {
        self.registry
            .resident(&name.municipality, &name.id)
            .await?
            .ok_or_else(|| ServiceError::not_found("resident", name.to_string()))
    }

    /// Residents matching names (folded; kanji or kana) and a birth date.
    pub async fn search(
        &self,
        municipality: &MunicipalityCode,
        family: &str,
        given: &str,
        birth_date: NaiveDate,
    ) -> Result<Vec<pb::Resident>, ServiceError> {
        let (family, given) = (fold(family), fold(given));
        let part_matches = |wanted: &str, kanji: &str, kana: &str| {
            wanted.is_empty() || wanted == fold(kanji) || (!kana.is_empty() && wanted == fold(kana))
        };
        Ok(self
            .registry
            .born_on(municipality, birth_date)
            .await?
            .into_iter()
            .filter(|r| {
                part_matches(&family, &r.name.family, &r.name.family_kana)
                    && part_matches(&given, &r.name.given, &r.name.given_kana)
            })
            .map(|r| r.to_proto())
            .collect())
    }

    /// A household with its members, head first, then by birth date.
    pub async fn household(&self, name: &ChildName) -> Result<pb::Household, ServiceError> {
        let mut members = self
            .registry
            .household(&name.municipality, &name.id)
            .await?;
        if members.is_empty() {
            return Err(ServiceError::not_found("household", name.to_string()));
        }
        members.sort_by_key(|m| {
            (
                m.relationship != Some(crate::registry::Relationship::Head),
                m.birth_date,
                m.resident_id.clone(),
            )
        });
        let head = members
            .iter()
            .find(|m| m.relationship == Some(crate::registry::Relationship::Head))
            .unwrap_or(&members[0]);
        Ok(pb::Household {
            name: name.to_string(),
            household_id: name.id.clone(),
            head: head.name().to_string(),
            address: Some(head.address.to_proto()),
            members: members.iter().map(ResidentRecord::to_proto).collect(),
        })
    }

    /// Applies the 本人確認 rule and stores the result.
    pub async fn verify(
        &self,
        principal: &Principal,
        municipality: &MunicipalityCode,
        input: VerifyInput,
    ) -> Result<pb::IdentityVerification, ServiceError> {
        let VerifyInput {
            visit,
            visitor,
            visitor_proto,
            resident,
            documents,
        } = input;
        let rules = self.rules(municipality)?;
        let mut violations = Vec::new();
        if let Some(resident) = &resident {
            let record = self.resident(resident).await?;
            if record.birth_date != visitor.birth_date || !record.name.same_as(&visitor.name) {
                violations.push(Violation::new(
                    "resident",
                    "does not match the visitor's name and birth date",
                ));
            }
        }
        let mut presented = Vec::with_capacity(documents.len());
        for (i, document) in documents.into_iter().enumerate() {
            let Some(kind) = rules.kind(&document.kind) else {
                violations.push(Violation::new(
                    format!("documents[{i}].kind"),
                    "unknown document kind",
                ));
                continue;
            };
            let mut entry = Presented {
                kind: document.kind.clone(),
                class: kind.class,
                holder_name: document.holder_name,
                holder_birth_date: document.holder_birth_date,
                expiry_date: document.expiry_date,
            };
            if let Some(read_name) = &document.card_read {
                let Some(row) = self.store.card_read(&read_name.to_string()).await? else {
                    violations.push(Violation::new(
                        format!("documents[{i}].card_read"),
                        "no such card read",
                    ));
                    continue;
                };
                let read = decode_card_read(&row)?;
                let source = match kind.card_source {
                    Some(CardKind::MyNumberCard) => pb::CardSource::MyNumberCard,
                    Some(CardKind::DriversLicence) => pb::CardSource::DriversLicence,
                    None => pb::CardSource::Unspecified,
                };
                if read.source != source as i32 {
                    violations.push(Violation::new(
                        format!("documents[{i}].card_read"),
                        "was read from another kind of card",
                    ));
                    continue;
                }
                if row.visit != visit {
                    violations.push(Violation::new(
                        format!("documents[{i}].card_read"),
                        "belongs to another visit",
                    ));
                    continue;
                }
                entry.holder_name = Some(read.full_name.clone());
                entry.holder_birth_date = read
                    .birth_date
                    .as_ref()
                    .and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32));
                entry.expiry_date = read
                    .expiry_date
                    .as_ref()
                    .and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32))
                    .or(entry.expiry_date);
            }
            presented.push(entry);
        }
        if !violations.is_empty() {
            return Err(ServiceError::InvalidArgument(violations));
        }
        let evaluation = verification::evaluate(&visitor, &presented, self.today());
        let now = micros(self.clock.now());
        let name = ChildName::new(municipality, "verifications", &new_id()).to_string();
        let response = pb::IdentityVerification {
            name: name.clone(),
            visit: visit.clone(),
            visitor: Some(visitor_proto),
            resident: resident.map(|r| r.to_string()).unwrap_or_default(),
            verified: evaluation.outcome.verified(),
            outcome: match evaluation.outcome {
                Outcome::VerifiedByPhotoId => pb::VerificationOutcome::VerifiedByPhotoId,
                Outcome::VerifiedByTwoDocuments => pb::VerificationOutcome::VerifiedByTwoDocuments,
                Outcome::NoValidDocument => pb::VerificationOutcome::NoValidDocument,
                Outcome::SecondDocumentNeeded => pb::VerificationOutcome::SecondDocumentNeeded,
                Outcome::OfficialDocumentNeeded => pb::VerificationOutcome::OfficialDocumentNeeded,
            } as i32,
            photo_id: evaluation.photo_id,
            documents: evaluation
                .documents
                .iter()
                .map(|d| pb::DocumentResult {
                    kind: d.kind.clone(),
                    class: class_to_proto(d.class) as i32,
                    accepted: d.rejection.is_none(),
                    rejection: match d.rejection {
                        None => pb::DocumentRejection::Unspecified,
                        Some(Rejection::Expired) => pb::DocumentRejection::Expired,
                        Some(Rejection::HolderMismatch) => pb::DocumentRejection::HolderMismatch,
                        Some(Rejection::DuplicateKind) => pb::DocumentRejection::DuplicateKind,
                    } as i32,
                })
                .collect(),
            verified_by: principal.subject.clone(),
            create_time: Some(timestamp(now)),
        };
        self.store
            .insert_verification(verification_row::Model {
                name,
                municipality_code: municipality.to_string(),
                visit,
                payload: response.encode_to_vec(),
                create_time: now,
            })
            .await?;
        Ok(response)
    }

    /// A stored verification or NOT_FOUND.
    pub async fn verification(
        &self,
        name: &ChildName,
    ) -> Result<pb::IdentityVerification, ServiceError> {
        let row = self
            .store
            .verification(&name.to_string())
            .await?
            .ok_or_else(|| ServiceError::not_found("verification", name.to_string()))?;
        pb::IdentityVerification::decode(row.payload.as_slice())
            .map_err(|e| ServiceError::Internal(format!("stored verification: {e}")))
    }

    /// Submits a card read; see `SubmitCardRead`.
    pub async fn submit_card_read(
        &self,
        principal: &Principal,
        municipality: &MunicipalityCode,
        input: CardReadInput,
    ) -> Result<pb::CardRead, ServiceError> {
        let rules = self.rules(municipality)?;
        let now = micros(self.clock.now());
        let name = ChildName::new(municipality, "cardReads", &new_id()).to_string();
        // The first procedure of the visit that uses My Number justifies
        // keeping it; without one, the number is dropped here.
        let purpose = input
            .procedures
            .iter()
            .find(|p| rules.procedure(p).is_some_and(|c| c.uses_my_number))
            .cloned();
        let matches: Vec<ResidentRecord> = self
            .registry
            .born_on(municipality, input.birth_date)
            .await?
            .into_iter()
            .filter(|r| r.name.matches_full(&input.full_name))
            .collect();
        let resident = match matches.as_slice() {
            [one] => one.name().to_string(),
            _ => String::new(),
        };
        let (sealed, audit) = match (&input.my_number, &purpose) {
            (Some(number), Some(purpose)) => (
                Some(
                    self.cipher
                        .seal(number, &associated_data(&name, &input.visit))
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                ),
                Some(self.audit_row(
                    principal,
                    municipality,
                    pb::AuditAction::MyNumberStored,
                    &name,
                    &input.visit,
                    purpose,
                    "",
                )),
            ),
            (Some(_), None) => (
                None,
                Some(self.audit_row(
                    principal,
                    municipality,
                    pb::AuditAction::MyNumberDiscarded,
                    &name,
                    &input.visit,
                    "",
                    "no procedure of the visit uses my number",
                )),
            ),
            (None, _) => (None, None),
        };
        let read = pb::CardRead {
            name: name.clone(),
            visit: input.visit.clone(),
            source: match input.source {
                CardKind::MyNumberCard => pb::CardSource::MyNumberCard,
                CardKind::DriversLicence => pb::CardSource::DriversLicence,
            } as i32,
            full_name: input.full_name,
            address: input.address,
            birth_date: Some(date_to_proto(input.birth_date)),
            sex: input.sex,
            my_number_masked: if input.my_number.is_some() {
                MASK.to_owned()
            } else {
                String::new()
            },
            my_number_retained: sealed.is_some(),
            my_number_purpose: if sealed.is_some() {
                purpose.clone().unwrap_or_default()
            } else {
                String::new()
            },
            expiry_date: input.expiry_date.map(date_to_proto),
            licence_number_masked: if input.licence_number.is_empty() {
                String::new()
            } else {
                crate::card::licence::mask_licence_number(&input.licence_number)
            },
            resident,
            read_by: principal.subject.clone(),
            create_time: Some(timestamp(now)),
        };
        self.store
            .insert_card_read(
                card_read::Model {
                    name,
                    municipality_code: municipality.to_string(),
                    visit: input.visit,
                    payload: read.encode_to_vec(),
                    my_number_purpose: read.my_number_purpose.clone(),
                    my_number_sealed: sealed,
                    create_time: now,
                },
                audit,
            )
            .await?;
        Ok(read)
    }

    /// A stored card read or NOT_FOUND.
    pub async fn card_read(
        &self,
        name: &ChildName,
    ) -> Result<(card_read::Model, pb::CardRead), ServiceError> {
        let row = self
            .store
            .card_read(&name.to_string())
            .await?
            .ok_or_else(|| ServiceError::not_found("card read", name.to_string()))?;
        let read = decode_card_read(&row)?;
        Ok((row, read))
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_row(
        &self,
        principal: &Principal,
        municipality: &MunicipalityCode,
        action: pb::AuditAction,
        card_read: &str,
        visit: &str,
        purpose: &str,
        detail: &str,
    ) -> audit_event::Model {
        audit_event::Model {
            name: ChildName::new(municipality, "auditEvents", &new_id()).to_string(),
            municipality_code: municipality.to_string(),
            time: micros(self.clock.now()),
            actor: principal.subject.clone(),
            actor_role: principal.role.to_string(),
            action: action as i32,
            card_read: card_read.to_owned(),
            visit: visit.to_owned(),
            purpose: purpose.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// The clear My Number for a designated handler; every attempt is
    /// audited before anything else happens.
    pub async fn read_my_number(
        &self,
        principal: &Principal,
        name: &ChildName,
        visit: &str,
        purpose: &str,
    ) -> Result<pb::MyNumberReading, ServiceError> {
        let read_name = name.to_string();
        let deny = |detail: &'static str| {
            self.audit_row(
                principal,
                &name.municipality,
                pb::AuditAction::MyNumberReadDenied,
                &read_name,
                visit,
                purpose,
                detail,
            )
        };
        // Only a served municipality has an audit trail to write to.
        let rules = self.rules(&name.municipality)?;
        let Some(row) = self.store.card_read(&read_name).await? else {
            self.store.insert_audit(deny("no such card read")).await?;
            return Err(ServiceError::not_found("card read", read_name));
        };
        if !rules.is_handler(&principal.subject) {
            self.store
                .insert_audit(deny("not a designated handler"))
                .await?;
            return Err(ServiceError::PermissionDenied {
                reason: "NOT_A_MY_NUMBER_HANDLER",
                message: "only designated my number handlers may read it".into(),
            });
        }
        if row.visit != visit {
            self.store
                .insert_audit(deny("visit does not match the card read"))
                .await?;
            return Err(ServiceError::invalid(
                "visit",
                "is not the visit of the card read",
            ));
        }
        if !rules.procedure(purpose).is_some_and(|p| p.uses_my_number) {
            self.store
                .insert_audit(deny("purpose does not use my number"))
                .await?;
            return Err(ServiceError::invalid(
                "purpose",
                "is not a procedure that uses my number",
            ));
        }
        let Some(sealed) = row.my_number_sealed.as_ref() else {
            self.store
                .insert_audit(deny("no my number retained"))
                .await?;
            return Err(ServiceError::precondition(
                "MY_NUMBER_NOT_RETAINED",
                read_name,
                "the card read kept no my number",
            ));
        };
        let event = self.audit_row(
            principal,
            &name.municipality,
            pb::AuditAction::MyNumberRead,
            &read_name,
            visit,
            purpose,
            "",
        );
        let audit_event = event.name.clone();
        self.store.insert_audit(event).await?;
        let number = self
            .cipher
            .open(sealed, &associated_data(&read_name, &row.visit))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        tracing::info!(card_read = %read_name, %purpose, "my number read by a handler");
        Ok(pb::MyNumberReading {
            card_read: read_name,
            my_number: number.expose().to_owned(),
            audit_event,
        })
    }

    /// A page of audit events.
    pub async fn audit_events(
        &self,
        municipality: &MunicipalityCode,
        visit: Option<&str>,
        after: Option<(i64, String)>,
        page_size: u64,
    ) -> Result<pb::ListAuditEventsResponse, ServiceError> {
        let mut rows = self
            .store
            .audit_events(municipality, visit, after, page_size + 1)
            .await?;
        let next_page_token = if rows.len() as u64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|r| format!("{}/{}", r.time, r.name))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListAuditEventsResponse {
            audit_events: rows
                .into_iter()
                .map(|r| pb::AuditEvent {
                    name: r.name,
                    time: Some(timestamp(r.time)),
                    actor: r.actor,
                    actor_role: r.actor_role,
                    action: r.action,
                    card_read: r.card_read,
                    visit: r.visit,
                    purpose: r.purpose,
                    detail: r.detail,
                })
                .collect(),
            next_page_token,
        })
    }

    /// Every document kind of `rules`' municipality, photo IDs first.
    pub fn document_kinds(rules: &Rules) -> Vec<pb::DocumentKind> {
        let mut kinds: Vec<&DocumentKindConfig> = rules
            .kind_order
            .iter()
            .filter_map(|id| rules.kinds.get(id))
            .collect();
        kinds.sort_by_key(|k| class_rank(k.class));
        kinds
            .into_iter()
            .map(|k| pb::DocumentKind {
                id: k.id.clone(),
                class: class_to_proto(k.class) as i32,
                name_ja: k.name_ja.clone(),
                name_en: k.name_en.clone(),
            })
            .collect()
    }

    /// Decides every requested procedure by `rules`' municipality's
    /// 委任状 validity.
    pub fn decide(
        &self,
        rules: &Rules,
        visitor: &proxy::Visitor,
        requests: &[(String, proxy::Subject, proxy::Relation, proxy::ProxyPolicy)],
        letters: &[proxy::PowerOfAttorney],
        representations: &[proxy::LegalRepresentation],
        subject_names: &[String],
    ) -> pb::CheckProxyResponse {
        let context = proxy::Context {
            visitor,
            letters,
            representations,
            today: self.today(),
            validity_months: rules.validity_months,
        };
        let decisions = requests
            .iter()
            .zip(subject_names)
            .map(|((procedure, subject, relation, policy), subject_name)| {
                let reason = proxy::decide(
                    &context,
                    &proxy::Request {
                        procedure,
                        subject,
                        relation: *relation,
                        policy: *policy,
                    },
                );
                pb::ProcedureDecision {
                    procedure: procedure.clone(),
                    subject: subject_name.clone(),
                    allowed: reason.allowed(),
                    reason: reason_to_proto(reason) as i32,
                    message: reason.message(rules.validity_months),
                }
            })
            .collect();
        pb::CheckProxyResponse { decisions }
    }
}

/// A registry record as the proxy rules see the subject.
pub fn subject_of(record: &ResidentRecord) -> proxy::Subject {
    proxy::Subject {
        resident_id: record.resident_id.clone(),
        claim: Claim {
            name: record.name.clone(),
            birth_date: record.birth_date,
        },
        household_id: record.household_id.clone(),
        head_relation: record.relationship.map(|r| r.head_relation()),
        residence: record.residence,
        death_date: record.death_date,
        relatives: record.relatives.clone(),
    }
}

fn decode_card_read(row: &card_read::Model) -> Result<pb::CardRead, ServiceError> {
    pb::CardRead::decode(row.payload.as_slice())
        .map_err(|e| ServiceError::Internal(format!("stored card read: {e}")))
}

fn class_rank(class: DocumentClass) -> u8 {
    match class {
        DocumentClass::PhotoId => 0,
        DocumentClass::Official => 1,
        DocumentClass::Supplementary => 2,
    }
}

fn class_to_proto(class: DocumentClass) -> pb::DocumentClass {
    match class {
        DocumentClass::PhotoId => pb::DocumentClass::PhotoId,
        DocumentClass::Official => pb::DocumentClass::Official,
        DocumentClass::Supplementary => pb::DocumentClass::Supplementary,
    }
}

fn reason_to_proto(reason: proxy::Reason) -> pb::ProxyDecisionReason {
    use pb::ProxyDecisionReason as P;
    use proxy::Reason as R;
    match reason {
        R::Myself => P::Self_,
        R::Anyone => P::Anyone,
        R::HouseholdMember => P::HouseholdMember,
        R::Family => P::Family,
        R::PowerOfAttorney => P::PowerOfAttorney,
        R::LegalRepresentative => P::LegalRepresentative,
        R::VisitorNotVerified => P::VisitorNotVerified,
        R::PhotoIdRequired => P::PhotoIdRequired,
        R::ProxyNotAllowed => P::ProxyNotAllowed,
        R::PowerOfAttorneyMissing => P::PowerOfAttorneyMissing,
        R::PowerOfAttorneyExpired => P::PowerOfAttorneyExpired,
        R::PowerOfAttorneyFutureDated => P::PowerOfAttorneyFutureDated,
        R::OutOfScope => P::OutOfScope,
        R::DelegatorMismatch => P::DelegatorMismatch,
        R::ProxyMismatch => P::ProxyMismatch,
        R::DelegatorDeceased => P::DelegatorDeceased,
        R::LegalRepresentationInvalid => P::LegalRepresentationInvalid,
        R::SubjectNotResident => P::SubjectNotResident,
    }
}

/// `municipalities/{code}`, the name an unserved municipality is reported
/// under.
fn served_name(municipality: &MunicipalityCode) -> String {
    format!("municipalities/{municipality}")
}

/// Builds the shared state from every served municipality's
/// `identity.toml`.
pub fn build(
    store: IdentityStore,
    registry: Arc<dyn ResidentRegistry>,
    clock: SharedClock,
    cipher: MyNumberCipher,
    sites: &[(MunicipalityCode, IdentitySite)],
) -> Identity {
    Identity {
        store,
        registry,
        clock,
        cipher,
        rules: Arc::new(
            sites
                .iter()
                .map(|(code, site)| (code.clone(), Rules::from_site(site)))
                .collect(),
        ),
    }
}
