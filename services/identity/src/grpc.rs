//! The gRPC adapter: authenticate, parse and validate the request (every
//! violation at once), admit the caller to the named municipality (its
//! own, and served here: [`Identity::admit`]), call [`Identity`], map the
//! error. No identity rule lives here. Nothing here logs request
//! contents: they are personal data.

use madoguchi_platform::auth::{Principal, Role};
use madoguchi_platform::error::{ServiceError, Violations};
use madoguchi_platform::types::MunicipalityCode;
use madoguchi_platform::wareki;
use madoguchi_proto::identity::v1 as pb;
use madoguchi_proto::identity::v1::identity_service_server::IdentityService;
use tonic::{Request, Response, Status};

use crate::config::CardKind;
use crate::domain::my_number::MyNumber;
use crate::domain::names::{ChildName, MunicipalityName, parse_visit};
use crate::domain::person::{PersonName, check_sex, check_text, date_from_proto};
use crate::domain::proxy::{self, LegalKind, ProxyPolicy, Relation};
use crate::domain::verification::Claim;
use crate::registry::csv;
use crate::service::{CardReadInput, DocumentInput, Identity, VerifyInput, subject_of};

/// Counter staff and administrators: everything that touches personal data.
const STAFF: &[Role] = &[Role::Admin, Role::Staff];
/// Administrators only.
const ADMIN: &[Role] = &[Role::Admin];
/// Anyone authenticated: non-personal reference data.
const ANYONE: &[Role] = &[
    Role::Admin,
    Role::Staff,
    Role::Device,
    Role::Display,
    Role::Integrator,
];
/// Most documents a verification accepts.
const MAX_DOCUMENTS: usize = 5;
/// Most procedures one proxy check decides.
const MAX_PROCEDURES: usize = 50;
/// Largest audit page.
const MAX_PAGE_SIZE: i32 = 1000;

/// The `IdentityService` implementation.
#[derive(Debug, Clone)]
pub struct IdentityGrpc {
    identity: Identity,
}

impl IdentityGrpc {
    /// An adapter over `identity`.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

fn authorize<T>(request: &Request<T>, roles: &[Role]) -> Result<Principal, ServiceError> {
    let principal = Principal::of(request)?.clone();
    principal.require(roles)?;
    Ok(principal)
}

fn missing(field: &str) -> ServiceError {
    ServiceError::invalid(field, "missing")
}

fn parse_claim(v: &mut Violations, field: &str, claim: Option<&pb::PersonClaim>) -> Option<Claim> {
    let Some(claim) = claim else {
        v.add(field, "required");
        return None;
    };
    let mut name_violations = Vec::new();
    let name = PersonName::from_proto(
        claim.person_name.as_ref(),
        &format!("{field}.person_name"),
        &mut name_violations,
    );
    for (f, d) in name_violations {
        v.add(f, d);
    }
    let birth = match date_from_proto(claim.birth_date.as_ref()) {
        Ok(Some(date)) => Some(date),
        Ok(None) => {
            v.add(format!("{field}.birth_date"), "required");
            None
        }
        Err(e) => {
            v.add(format!("{field}.birth_date"), e);
            None
        }
    };
    if let Some(address) = &claim.address {
        for (sub, value) in [
            ("prefecture", &address.prefecture),
            ("municipality", &address.municipality),
            ("street", &address.street),
            ("building", &address.building),
        ] {
            if let Err(e) = check_text(value, false) {
                v.add(format!("{field}.address.{sub}"), e);
            }
        }
        if !address.municipality_code.is_empty() {
            v.check(
                &format!("{field}.address.municipality_code"),
                MunicipalityCode::parse(&address.municipality_code),
            );
        }
    }
    Some(Claim {
        name: name?,
        birth_date: birth?,
    })
}

fn optional_date(
    v: &mut Violations,
    field: &str,
    date: Option<&madoguchi_proto::types::v1::Date>,
) -> Option<chrono::NaiveDate> {
    match date_from_proto(date) {
        Ok(date) => date,
        Err(e) => {
            v.add(field, e);
            None
        }
    }
}

fn child(
    v: &mut Violations,
    field: &str,
    text: &str,
    collection: &'static str,
    tenant: Option<&MunicipalityCode>,
) -> Option<ChildName> {
    let name = v.check(field, ChildName::parse(text, collection))?;
    if let Some(tenant) = tenant
        && &name.municipality != tenant
    {
        v.add(field, "must belong to the same municipality");
        return None;
    }
    Some(name)
}

fn policy_from_proto(policy: &pb::ProxyPolicy) -> ProxyPolicy {
    ProxyPolicy {
        allow_anyone: policy.allow_anyone,
        allow_household_member: policy.allow_household_member,
        allow_family: policy.allow_family,
        allow_power_of_attorney: policy.allow_power_of_attorney,
        allow_legal_representative: policy.allow_legal_representative,
        require_photo_id: policy.require_photo_id,
        allow_non_resident_subject: false,
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityGrpc {
    async fn get_resident(
        &self,
        request: Request<pb::GetResidentRequest>,
    ) -> Result<Response<pb::Resident>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", ChildName::parse(&req.name, "residents"));
        v.finish()?;
        let name = name.ok_or_else(|| missing("name"))?;
        self.identity.admit(&principal, &name.municipality)?;
        Ok(Response::new(
            self.identity.resident(&name).await?.to_proto(),
        ))
    }

    async fn search_residents(
        &self,
        request: Request<pb::SearchResidentsRequest>,
    ) -> Result<Response<pb::SearchResidentsResponse>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        let family = v.check("family_name", check_text(&req.family_name, false));
        let given = v.check("given_name", check_text(&req.given_name, false));
        if family.as_deref().is_some_and(str::is_empty)
            && given.as_deref().is_some_and(str::is_empty)
        {
            v.add("family_name", "a family or given name is required");
        }
        let birth = match (req.birth_date.as_ref(), req.birth_date_wareki.as_str()) {
            (Some(_), "") => optional_date(&mut v, "birth_date", req.birth_date.as_ref()),
            (None, text) if !text.is_empty() => v.check("birth_date_wareki", wareki::parse(text)),
            (Some(_), _) => {
                v.add(
                    "birth_date_wareki",
                    "set either birth_date or birth_date_wareki, not both",
                );
                None
            }
            (None, _) => {
                v.add("birth_date", "required (or birth_date_wareki)");
                None
            }
        };
        v.finish()?;
        let (Some(parent), Some(family), Some(given), Some(birth)) = (parent, family, given, birth)
        else {
            return Err(missing("parent").into());
        };
        self.identity.admit(&principal, parent.code())?;
        let residents = self
            .identity
            .search(parent.code(), &family, &given, birth)
            .await?;
        Ok(Response::new(pb::SearchResidentsResponse { residents }))
    }

    async fn get_household(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::Household>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", ChildName::parse(&req.name, "households"));
        v.finish()?;
        let name = name.ok_or_else(|| missing("name"))?;
        self.identity.admit(&principal, &name.municipality)?;
        Ok(Response::new(self.identity.household(&name).await?))
    }

    async fn import_residents(
        &self,
        request: Request<pb::ImportResidentsRequest>,
    ) -> Result<Response<pb::ImportResidentsResponse>, Status> {
        let principal = authorize(&request, ADMIN)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        v.finish()?;
        let parent = parent.ok_or_else(|| missing("parent"))?;
        self.identity.admit(&principal, parent.code())?;
        let records = csv::parse(&req.csv, parent.code()).map_err(ServiceError::InvalidArgument)?;
        self.identity
            .store
            .import_residents(parent.code(), &records, false)
            .await?;
        let households: std::collections::HashSet<_> = records
            .iter()
            .filter_map(|r| r.household_id.as_ref())
            .collect();
        tracing::info!(residents = records.len(), "registry imported");
        Ok(Response::new(pb::ImportResidentsResponse {
            residents: records.len() as u32,
            households: households.len() as u32,
        }))
    }

    async fn list_document_kinds(
        &self,
        request: Request<pb::ListDocumentKindsRequest>,
    ) -> Result<Response<pb::ListDocumentKindsResponse>, Status> {
        let principal = authorize(&request, ANYONE)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        v.finish()?;
        let parent = parent.ok_or_else(|| missing("parent"))?;
        let rules = self.identity.admit(&principal, parent.code())?;
        Ok(Response::new(pb::ListDocumentKindsResponse {
            document_kinds: Identity::document_kinds(rules),
        }))
    }

    async fn verify_identity(
        &self,
        request: Request<pb::VerifyIdentityRequest>,
    ) -> Result<Response<pb::IdentityVerification>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        let tenant = parent.as_ref().map(|p| p.code().clone());
        let served = tenant.as_ref().and_then(|t| self.identity.rules(t).ok());
        let visit = tenant
            .as_ref()
            .and_then(|t| v.check("visit", parse_visit(&req.visit, t)));
        let visitor = parse_claim(&mut v, "visitor", req.visitor.as_ref());
        let resident = if req.resident.is_empty() {
            None
        } else {
            child(
                &mut v,
                "resident",
                &req.resident,
                "residents",
                tenant.as_ref(),
            )
        };
        if req.documents.is_empty() || req.documents.len() > MAX_DOCUMENTS {
            v.add("documents", format!("1..={MAX_DOCUMENTS} documents"));
        }
        let mut documents = Vec::new();
        for (i, doc) in req.documents.iter().enumerate() {
            let at = format!("documents[{i}]");
            // Kinds are the named municipality's own; an unserved one is
            // reported as NOT_FOUND once the request is otherwise valid.
            if let Some(rules) = served
                && rules.kind(&doc.kind).is_none()
            {
                v.add(
                    format!("{at}.kind"),
                    format!(
                        "unknown document kind {:?}",
                        doc.kind.chars().take(64).collect::<String>()
                    ),
                );
            }
            let holder_name = if doc.holder_name.is_empty() {
                None
            } else {
                v.check(
                    &format!("{at}.holder_name"),
                    check_text(&doc.holder_name, true),
                )
            };
            let holder_birth_date = optional_date(
                &mut v,
                &format!("{at}.holder_birth_date"),
                doc.holder_birth_date.as_ref(),
            );
            let expiry_date = optional_date(
                &mut v,
                &format!("{at}.expiry_date"),
                doc.expiry_date.as_ref(),
            );
            let card_read = if doc.card_read.is_empty() {
                None
            } else {
                child(
                    &mut v,
                    &format!("{at}.card_read"),
                    &doc.card_read,
                    "cardReads",
                    tenant.as_ref(),
                )
            };
            documents.push(DocumentInput {
                kind: doc.kind.clone(),
                holder_name,
                holder_birth_date,
                expiry_date,
                card_read,
            });
        }
        v.finish()?;
        let (Some(parent), Some(visit), Some(visitor)) = (parent, visit, visitor) else {
            return Err(missing("parent").into());
        };
        self.identity.admit(&principal, parent.code())?;
        let verification = self
            .identity
            .verify(
                &principal,
                parent.code(),
                VerifyInput {
                    visit,
                    visitor,
                    visitor_proto: req.visitor.unwrap_or_default(),
                    resident,
                    documents,
                },
            )
            .await?;
        tracing::info!(verification = %verification.name, verified = verification.verified, "identity verified");
        Ok(Response::new(verification))
    }

    async fn get_verification(
        &self,
        request: Request<pb::GetVerificationRequest>,
    ) -> Result<Response<pb::IdentityVerification>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", ChildName::parse(&req.name, "verifications"));
        v.finish()?;
        let name = name.ok_or_else(|| missing("name"))?;
        self.identity.admit(&principal, &name.municipality)?;
        Ok(Response::new(self.identity.verification(&name).await?))
    }

    async fn check_proxy(
        &self,
        request: Request<pb::CheckProxyRequest>,
    ) -> Result<Response<pb::CheckProxyResponse>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        let tenant = parent.as_ref().map(|p| p.code().clone());
        let served = tenant.as_ref().and_then(|t| self.identity.rules(t).ok());
        let verification = child(
            &mut v,
            "verification",
            &req.verification,
            "verifications",
            tenant.as_ref(),
        );
        if req.procedures.is_empty() || req.procedures.len() > MAX_PROCEDURES {
            v.add("procedures", format!("1..={MAX_PROCEDURES} procedures"));
        }
        // Parse everything first, then read the registry once per person.
        let mut requests = Vec::new();
        for (i, procedure) in req.procedures.iter().enumerate() {
            let at = format!("procedures[{i}]");
            let policy = match (
                &procedure.policy,
                served.and_then(|r| r.procedure(&procedure.procedure)),
            ) {
                (Some(policy), _) => Some(policy_from_proto(policy)),
                (None, Some(config)) => Some(config.policy()),
                // An unserved municipality: NOT_FOUND below.
                (None, None) if served.is_none() => None,
                (None, None) => {
                    v.add(
                        format!("{at}.procedure"),
                        "unknown procedure; pass its policy",
                    );
                    None
                }
            };
            let subject = child(
                &mut v,
                &format!("{at}.subject"),
                &procedure.subject,
                "residents",
                tenant.as_ref(),
            );
            let relation = match pb::SubjectRelation::try_from(procedure.relation) {
                Ok(pb::SubjectRelation::Unspecified) => Some(Relation::Unstated),
                Ok(pb::SubjectRelation::Self_) => Some(Relation::Myself),
                Ok(pb::SubjectRelation::Spouse) => Some(Relation::Spouse),
                Ok(pb::SubjectRelation::LinealRelative) => Some(Relation::LinealRelative),
                Ok(pb::SubjectRelation::Other) => Some(Relation::Other),
                Err(_) => {
                    v.add(format!("{at}.relation"), "unknown relation");
                    None
                }
            };
            requests.push((procedure.procedure.clone(), subject, relation, policy));
        }
        let mut letters = Vec::new();
        for (i, letter) in req.powers_of_attorney.iter().enumerate() {
            let at = format!("powers_of_attorney[{i}]");
            let delegator = child(
                &mut v,
                &format!("{at}.delegator"),
                &letter.delegator,
                "residents",
                tenant.as_ref(),
            );
            let proxy_claim = parse_claim(&mut v, &format!("{at}.proxy"), letter.proxy.as_ref());
            if letter.procedures.is_empty() {
                v.add(
                    format!("{at}.procedures"),
                    "a power of attorney names at least one procedure",
                );
            }
            let written_on = match date_from_proto(letter.written_on.as_ref()) {
                Ok(Some(date)) => Some(date),
                Ok(None) => {
                    v.add(format!("{at}.written_on"), "required");
                    None
                }
                Err(e) => {
                    v.add(format!("{at}.written_on"), e);
                    None
                }
            };
            letters.push((
                delegator,
                proxy_claim,
                letter.procedures.clone(),
                written_on,
            ));
        }
        let mut representations = Vec::new();
        for (i, representation) in req.legal_representations.iter().enumerate() {
            let at = format!("legal_representations[{i}]");
            let kind = match pb::LegalRepresentativeKind::try_from(representation.kind) {
                Ok(pb::LegalRepresentativeKind::ParentalAuthority) => {
                    Some(LegalKind::ParentalAuthority)
                }
                Ok(pb::LegalRepresentativeKind::AdultGuardian) => Some(LegalKind::AdultGuardian),
                _ => {
                    v.add(
                        format!("{at}.kind"),
                        "must be parental authority or adult guardian",
                    );
                    None
                }
            };
            let represented = child(
                &mut v,
                &format!("{at}.represented"),
                &representation.represented,
                "residents",
                tenant.as_ref(),
            );
            let issued = optional_date(
                &mut v,
                &format!("{at}.evidence_issued_on"),
                representation.evidence_issued_on.as_ref(),
            );
            representations.push((kind, represented, issued));
        }
        v.finish()?;
        let (Some(parent), Some(verification)) = (parent, verification) else {
            return Err(missing("parent").into());
        };
        let rules = self.identity.admit(&principal, parent.code())?;

        let stored = self.identity.verification(&verification).await?;
        let claim = stored.visitor.as_ref().and_then(|c| {
            let mut ignored = Violations::new();
            parse_claim(&mut ignored, "visitor", Some(c))
        });
        let claim = claim.ok_or_else(|| {
            ServiceError::Internal("stored verification has no valid claim".into())
        })?;
        let visitor_record = if stored.resident.is_empty() {
            None
        } else {
            let name =
                ChildName::parse(&stored.resident, "residents").map_err(ServiceError::Internal)?;
            Some(self.identity.resident(&name).await?)
        };
        let visitor = proxy::Visitor {
            verified: stored.verified,
            photo_id: stored.photo_id,
            claim,
            resident_id: visitor_record.as_ref().map(|r| r.resident_id.clone()),
            household_id: visitor_record.as_ref().and_then(|r| r.household_id.clone()),
            head_relation: visitor_record
                .as_ref()
                .and_then(|r| r.relationship.map(|x| x.head_relation())),
        };

        // Resolve every referenced person; unknown ones are reported together.
        let mut v = Violations::new();
        let mut people = std::collections::HashMap::new();
        let mut names: Vec<(String, ChildName)> = Vec::new();
        for (i, (_, subject, _, _)) in requests.iter().enumerate() {
            if let Some(s) = subject {
                names.push((format!("procedures[{i}].subject"), s.clone()));
            }
        }
        for (i, (delegator, ..)) in letters.iter().enumerate() {
            if let Some(d) = delegator {
                names.push((format!("powers_of_attorney[{i}].delegator"), d.clone()));
            }
        }
        for (i, (_, represented, _)) in representations.iter().enumerate() {
            if let Some(r) = represented {
                names.push((format!("legal_representations[{i}].represented"), r.clone()));
            }
        }
        for (field, name) in names {
            if people.contains_key(&name.id) {
                continue;
            }
            match self
                .identity
                .registry()
                .resident(&name.municipality, &name.id)
                .await?
            {
                Some(record) => {
                    people.insert(name.id.clone(), record);
                }
                None => v.add(field, "no such resident"),
            }
        }
        v.finish()?;

        let mut decided = Vec::new();
        let mut subject_names = Vec::new();
        for (procedure, subject, relation, policy) in requests {
            let (Some(subject), Some(relation), Some(mut policy)) = (subject, relation, policy)
            else {
                return Err(missing("procedures").into());
            };
            let record = people
                .get(&subject.id)
                .ok_or_else(|| missing("procedures"))?;
            if let Some(config) = rules.procedure(&procedure) {
                // A passed policy cannot widen who may be a subject.
                policy.allow_non_resident_subject = config.allow_non_resident_subject;
            }
            subject_names.push(subject.to_string());
            decided.push((procedure, subject_of(record), relation, policy));
        }
        let letters: Vec<proxy::PowerOfAttorney> = letters
            .into_iter()
            .filter_map(|(delegator, proxy_claim, procedures, written_on)| {
                let delegator = delegator?;
                let record = people.get(&delegator.id)?;
                Some(proxy::PowerOfAttorney {
                    delegator_id: delegator.id,
                    delegator_death_date: record.death_date,
                    proxy: proxy_claim?,
                    procedures,
                    written_on: written_on?,
                })
            })
            .collect();
        let representations: Vec<proxy::LegalRepresentation> = representations
            .into_iter()
            .filter_map(|(kind, represented, issued)| {
                Some(proxy::LegalRepresentation {
                    kind: kind?,
                    represented_id: represented?.id,
                    evidence_issued_on: issued,
                })
            })
            .collect();
        Ok(Response::new(self.identity.decide(
            rules,
            &visitor,
            &decided,
            &letters,
            &representations,
            &subject_names,
        )))
    }

    async fn submit_card_read(
        &self,
        request: Request<pb::SubmitCardReadRequest>,
    ) -> Result<Response<pb::CardRead>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        let tenant = parent.as_ref().map(|p| p.code().clone());
        let served = tenant.as_ref().and_then(|t| self.identity.rules(t).ok());
        let visit = tenant
            .as_ref()
            .and_then(|t| v.check("visit", parse_visit(&req.visit, t)));
        let source = match pb::CardSource::try_from(req.source) {
            Ok(pb::CardSource::MyNumberCard) => Some(CardKind::MyNumberCard),
            Ok(pb::CardSource::DriversLicence) => Some(CardKind::DriversLicence),
            _ => {
                v.add("source", "must be my number card or driver's licence");
                None
            }
        };
        let data = req.data.unwrap_or_default();
        let full_name = v.check("data.full_name", check_text(&data.full_name, true));
        let address = v.check("data.address", check_text(&data.address, true));
        let birth_date = match date_from_proto(data.birth_date.as_ref()) {
            Ok(Some(date)) => Some(date),
            Ok(None) => {
                v.add("data.birth_date", "required");
                None
            }
            Err(e) => {
                v.add("data.birth_date", e);
                None
            }
        };
        let sex = v.check("data.sex", check_sex(data.sex));
        let expiry_date = optional_date(&mut v, "data.expiry_date", data.expiry_date.as_ref());
        // The number is checked but never echoed in an error.
        let my_number = match (source, data.my_number.is_empty()) {
            (_, true) => None,
            (Some(CardKind::DriversLicence), false) => {
                v.add("data.my_number", "a driver's licence carries no my number");
                None
            }
            (_, false) => v.check("data.my_number", MyNumber::parse(&data.my_number)),
        };
        if source == Some(CardKind::DriversLicence) {
            v.check(
                "data.licence_number",
                crate::card::licence::check_licence_number(&data.licence_number),
            );
        } else if !data.licence_number.is_empty() {
            v.add(
                "data.licence_number",
                "only a driver's licence has a licence number",
            );
        }
        for (i, procedure) in req.procedures.iter().enumerate() {
            if let Some(rules) = served
                && rules.procedure(procedure).is_none()
            {
                v.add(format!("procedures[{i}]"), "unknown procedure");
            }
        }
        v.finish()?;
        let (
            Some(parent),
            Some(visit),
            Some(source),
            Some(full_name),
            Some(address),
            Some(birth_date),
            Some(sex),
        ) = (parent, visit, source, full_name, address, birth_date, sex)
        else {
            return Err(missing("parent").into());
        };
        self.identity.admit(&principal, parent.code())?;
        let read = self
            .identity
            .submit_card_read(
                &principal,
                parent.code(),
                CardReadInput {
                    visit,
                    source,
                    full_name,
                    address,
                    birth_date,
                    sex,
                    my_number,
                    expiry_date,
                    licence_number: data.licence_number,
                    procedures: req.procedures,
                },
            )
            .await?;
        tracing::info!(card_read = %read.name, retained = read.my_number_retained, "card read submitted");
        Ok(Response::new(read))
    }

    async fn get_card_read(
        &self,
        request: Request<pb::GetCardReadRequest>,
    ) -> Result<Response<pb::CardRead>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("name", ChildName::parse(&req.name, "cardReads"));
        v.finish()?;
        let name = name.ok_or_else(|| missing("name"))?;
        self.identity.admit(&principal, &name.municipality)?;
        Ok(Response::new(self.identity.card_read(&name).await?.1))
    }

    async fn read_my_number(
        &self,
        request: Request<pb::ReadMyNumberRequest>,
    ) -> Result<Response<pb::MyNumberReading>, Status> {
        let principal = authorize(&request, STAFF)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let name = v.check("card_read", ChildName::parse(&req.card_read, "cardReads"));
        if let Some(name) = &name {
            v.check("visit", parse_visit(&req.visit, &name.municipality));
        }
        if req.purpose.is_empty() {
            v.add(
                "purpose",
                "required: the procedure the number is needed for",
            );
        }
        v.finish()?;
        let name = name.ok_or_else(|| missing("card_read"))?;
        self.identity.admit(&principal, &name.municipality)?;
        Ok(Response::new(
            self.identity
                .read_my_number(&principal, &name, &req.visit, &req.purpose)
                .await?,
        ))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let principal = authorize(&request, ADMIN)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let parent = v.check("parent", MunicipalityName::parse(&req.parent));
        let visit = match (&parent, req.visit.is_empty()) {
            (Some(parent), false) => v.check("visit", parse_visit(&req.visit, parent.code())),
            _ => None,
        };
        let page_size = match req.page_size {
            0 => 100,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                v.add("page_size", format!("must be 0..={MAX_PAGE_SIZE}"));
                1
            }
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let parsed = req
                .page_token
                .split_once('/')
                .and_then(|(time, name)| Some((time.parse::<i64>().ok()?, name.to_owned())));
            if parsed.is_none() {
                v.add("page_token", "not a token this service issued");
            }
            parsed
        };
        v.finish()?;
        let parent = parent.ok_or_else(|| missing("parent"))?;
        self.identity.admit(&principal, parent.code())?;
        Ok(Response::new(
            self.identity
                .audit_events(parent.code(), visit.as_deref(), after, page_size as u64)
                .await?,
        ))
    }
}
