//! The identity service end to end, over gRPC, on SQLite and PostgreSQL:
//! the seed's おくやみ visit (the daughter identifies herself with her My
//! Number card, the proxy rules raise the constraints the facts imply, a
//! handler reads the number, every access is audited), a birth visit with
//! a driver's licence, bad input, registry import and tenancy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use madoguchi_identity::card::SimulatedCard;
use madoguchi_identity::card::kenhojo::{CardFace, CardRefusal, KenhojoReader};
use madoguchi_identity::card::licence::LicenceFace;
use madoguchi_identity::card::{LicenceRead, LicenceReader, SimulatedLicence};
use madoguchi_identity::domain::my_number::MyNumber;
use support::*;
use tonic::Code;

/// The daughter's number (valid check digit), known only to the card.
fn tsuruko_number() -> String {
    MyNumber::complete("48291736450")
        .expect("valid")
        .expose()
        .to_owned()
}

fn tsuruko_card() -> SimulatedCard {
    let face = CardFace {
        name: "おくやみ つる子".into(),
        address: "宮城県仙台市青葉区国分町3丁目7番1号".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1972, 10, 31).expect("date"),
        sex: 2,
        my_number: tsuruko_number(),
    };
    SimulatedCard::new(&face, "4729")
}

fn procedure(id: &str, subject: &str) -> pb::RequestedProcedure {
    pb::RequestedProcedure {
        procedure: id.into(),
        subject: subject.into(),
        relation: 0,
        policy: None,
    }
}

async fn okuyami_visit(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let mut handler = server.client(HANDLER_TOKEN).await;

    // The daughter gives her name and birth date in 和暦; staff find her
    // record (住登外: registered in 仙台市青葉区) by kana.
    let found = staff
        .search_residents(pb::SearchResidentsRequest {
            parent: OFUNATO.into(),
            family_name: "オクヤミ".into(),
            given_name: "つるこ".into(),
            birth_date: None,
            birth_date_wareki: "昭和47年10月31日".into(),
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(found.residents.len(), 1);
    let tsuruko = &found.residents[0];
    assert_eq!(tsuruko.name, TSURUKO);
    assert_eq!(
        tsuruko.residence_status,
        pb::ResidenceStatus::NonResident as i32
    );
    assert_eq!(
        tsuruko
            .address
            .as_ref()
            .map(|a| a.municipality_code.as_str()),
        Some("041017")
    );

    // The father's household: deceased head with his enrolments (condition 3, 5, 9).
    let taro = staff
        .get_resident(pb::GetResidentRequest { name: TARO.into() })
        .await
        .expect("taro")
        .into_inner();
    assert_eq!(taro.life_status, pb::LifeStatus::Deceased as i32);
    assert_eq!(taro.death_date, Some(date(2023, 6, 16)));
    let disability = taro
        .enrolments
        .iter()
        .find(|e| e.kind == pb::EnrolmentKind::DisabilityCertificate as i32)
        .expect("身体障害者手帳");
    assert_eq!(
        (disability.disability_kind, disability.grade),
        (pb::DisabilityKind::Physical as i32, 1)
    );
    assert!(
        taro.enrolments
            .iter()
            .any(|e| e.kind == pb::EnrolmentKind::Pension as i32
                && e.pension_kind == pb::PensionKind::Employees as i32)
    );
    assert!(
        taro.enrolments
            .iter()
            .any(|e| e.kind == pb::EnrolmentKind::PropertyOwner as i32)
    );
    assert_eq!(taro.relatives, [TSURUKO]);
    let household = staff
        .get_household(pb::GetHouseholdRequest {
            name: taro.household.clone(),
        })
        .await
        .expect("household")
        .into_inner();
    assert_eq!(household.head, TARO);
    let members: Vec<&str> = household.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, [TARO, HANAKO]);
    assert_eq!(
        household.address.as_ref().map(|a| a.street.as_str()),
        Some("盛町字宇津野沢15番地")
    );

    // She brought her My Number card. A first PIN attempt fails; the
    // second is right; the staff client submits the face.
    let mut card = tsuruko_card();
    let mut reader = KenhojoReader::new(&mut card);
    assert_eq!(
        reader.read("4720"),
        Ok(Err(CardRefusal::WrongPin { remaining: 2 }))
    );
    let face = reader.read("4729").expect("transport").expect("card reads");
    assert_eq!(card.tries_left(), 3);
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(face.to_proto()),
            procedures: vec![
                "card-return".into(),
                "kouki-soushitsu".into(),
                "sosaihi".into(),
            ],
        })
        .await
        .expect("card read")
        .into_inner();
    assert_eq!(read.my_number_masked, "************");
    assert!(read.my_number_retained);
    assert_eq!(read.my_number_purpose, "kouki-soushitsu");
    assert_eq!(read.resident, TSURUKO, "the read matches her record");
    assert_eq!(read.read_by, "staff-tanaka");

    // 本人確認: the card read backs the My Number card document; her cash
    // card (condition 7) is shown too and counts as supplementary.
    let verification = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            visitor: Some(tsuruko_claim()),
            resident: TSURUKO.into(),
            documents: vec![
                pb::PresentedDocument {
                    kind: "my-number-card".into(),
                    card_read: read.name.clone(),
                    ..Default::default()
                },
                pb::PresentedDocument {
                    kind: "cash-card".into(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(verification.verified);
    assert!(verification.photo_id);
    assert_eq!(
        verification.outcome,
        pb::VerificationOutcome::VerifiedByPhotoId as i32
    );
    let stored = staff
        .get_verification(pb::GetVerificationRequest {
            name: verification.name.clone(),
        })
        .await
        .expect("stored")
        .into_inner();
    assert_eq!(stored, verification);

    // What may she do, and for whom? She brought no 委任状 (condition 8).
    let decisions = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![
                procedure("card-return", TARO),
                procedure("kaigo-soushitsu", TARO),
                procedure("kouki-soushitsu", TARO),
                procedure("juminhyo-joshu", TARO),
                procedure("koseki-kouiki", TARO),
                procedure("sosaihi", HANAKO),
                procedure("juminhyo", TSURUKO),
                procedure("juminhyo", HANAKO),
            ],
            powers_of_attorney: vec![],
            legal_representations: vec![],
        })
        .await
        .expect("proxy")
        .into_inner()
        .decisions;
    let got: Vec<(&str, &str, bool, i32)> = decisions
        .iter()
        .map(|d| {
            (
                d.procedure.as_str(),
                d.subject.as_str(),
                d.allowed,
                d.reason,
            )
        })
        .collect();
    use pb::ProxyDecisionReason as R;
    assert_eq!(
        got,
        [
            ("card-return", TARO, true, R::Anyone as i32),
            ("kaigo-soushitsu", TARO, true, R::Family as i32),
            ("kouki-soushitsu", TARO, true, R::Family as i32),
            ("juminhyo-joshu", TARO, true, R::Family as i32),
            ("koseki-kouiki", TARO, true, R::Family as i32),
            // 葬祭費 is paid to the 喪主, her mother: a 委任状 is needed.
            ("sosaihi", HANAKO, false, R::PowerOfAttorneyMissing as i32),
            // Her own 住民票 is 仙台市's to issue.
            ("juminhyo", TSURUKO, false, R::SubjectNotResident as i32),
            ("juminhyo", HANAKO, false, R::PowerOfAttorneyMissing as i32),
        ]
    );

    // Had she brought letters: one from her mother covers 葬祭費; one her
    // father signed before he died is void.
    let letter = |delegator: &str, procedures: &[&str], written: types::Date| pb::PowerOfAttorney {
        delegator: delegator.into(),
        proxy: Some(tsuruko_claim()),
        procedures: procedures.iter().map(|p| (*p).to_owned()).collect(),
        written_on: Some(written),
    };
    let decisions = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![
                procedure("sosaihi", HANAKO),
                procedure("kogaku-ryoyohi", TARO),
            ],
            powers_of_attorney: vec![
                letter(HANAKO, &["sosaihi"], date(2023, 6, 25)),
                letter(TARO, &["kogaku-ryoyohi"], date(2023, 6, 1)),
            ],
            legal_representations: vec![],
        })
        .await
        .expect("proxy")
        .into_inner()
        .decisions;
    assert_eq!(decisions[0].reason, R::PowerOfAttorney as i32);
    assert!(decisions[0].allowed);
    assert_eq!(decisions[1].reason, R::DelegatorDeceased as i32);
    assert!(!decisions[1].allowed);
    // Three months and a day later the mother's letter has expired.
    server.clock.advance(chrono::Duration::days(92));
    let decisions = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![procedure("sosaihi", HANAKO)],
            powers_of_attorney: vec![letter(HANAKO, &["sosaihi"], date(2023, 6, 25))],
            legal_representations: vec![],
        })
        .await
        .expect("proxy")
        .into_inner()
        .decisions;
    assert_eq!(decisions[0].reason, R::PowerOfAttorneyExpired as i32);
    server.clock.set(visit_day());

    // The number stays masked for everyone, and only a designated handler
    // reads it in clear, for a purpose that uses it.
    let again = staff
        .get_card_read(pb::GetCardReadRequest {
            name: read.name.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(again, read);
    let denied = staff
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "kouki-soushitsu".into(),
        })
        .await
        .expect_err("staff is not a handler");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "NOT_A_MY_NUMBER_HANDLER");
    let wrong_purpose = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "juminhyo".into(),
        })
        .await
        .expect_err("住民票 does not use my number");
    assert_eq!(wrong_purpose.code(), Code::InvalidArgument);
    let reading = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "kouki-soushitsu".into(),
        })
        .await
        .expect("handler reads")
        .into_inner();
    assert_eq!(reading.my_number, tsuruko_number());

    // Every access is in the audit log, newest first, with who, which
    // visit and which purpose; never the number.
    let audit = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(audit.audit_events.len(), 2);
    let rest = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            page_size: 10,
            page_token: audit.next_page_token.clone(),
        })
        .await
        .expect("audit page 2")
        .into_inner();
    assert!(rest.next_page_token.is_empty());
    let events: Vec<_> = audit
        .audit_events
        .iter()
        .chain(&rest.audit_events)
        .collect();
    let actions: Vec<(i32, &str, &str)> = events
        .iter()
        .map(|e| (e.action, e.actor.as_str(), e.purpose.as_str()))
        .collect();
    use pb::AuditAction as A;
    assert_eq!(
        actions,
        [
            (A::MyNumberRead as i32, "local-admin", "kouki-soushitsu"),
            (A::MyNumberReadDenied as i32, "local-admin", "juminhyo"),
            (
                A::MyNumberReadDenied as i32,
                "staff-tanaka",
                "kouki-soushitsu"
            ),
            (A::MyNumberStored as i32, "staff-tanaka", "kouki-soushitsu"),
        ]
    );
    assert_eq!(events[0].name, reading.audit_event);
    assert!(
        events
            .iter()
            .all(|e| e.visit == VISIT && e.card_read == read.name)
    );
    let listing = format!("{events:?}");
    assert!(!listing.contains(&tsuruko_number()));
    // Staff may not list the audit log.
    let status = staff
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            ..Default::default()
        })
        .await
        .expect_err("admin only");
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await;
}

async fn number_kept_only_when_needed(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let mut handler = server.client(HANDLER_TOKEN).await;
    let mut card = tsuruko_card();
    let face = KenhojoReader::new(&mut card)
        .read("4729")
        .expect("transport")
        .expect("read");
    // Only certificates in this visit: none uses My Number, so it is dropped.
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(face.to_proto()),
            procedures: vec!["koseki-kouiki".into()],
        })
        .await
        .expect("read")
        .into_inner();
    assert!(!read.my_number_retained);
    assert_eq!(read.my_number_masked, "************");
    let row = server
        .app
        .identity()
        .card_read(
            &madoguchi_identity::domain::names::ChildName::parse(&read.name, "cardReads")
                .expect("name"),
        )
        .await
        .expect("row")
        .0;
    assert!(row.my_number_sealed.is_none(), "nothing stored");
    let status = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: VISIT.into(),
            purpose: "kouki-soushitsu".into(),
        })
        .await
        .expect_err("nothing to read");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "MY_NUMBER_NOT_RETAINED");
    // A read for another visit is refused (and audited).
    let status = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: read.name.clone(),
            visit: "municipalities/032034/visits/other".into(),
            purpose: "kouki-soushitsu".into(),
        })
        .await
        .expect_err("other visit");
    assert_eq!(status.code(), Code::InvalidArgument);
    // A read of a card read that does not exist is refused and audited.
    let status = handler
        .read_my_number(pb::ReadMyNumberRequest {
            card_read: "municipalities/032034/cardReads/nope".into(),
            visit: VISIT.into(),
            purpose: "kouki-soushitsu".into(),
        })
        .await
        .expect_err("no such card read");
    assert_eq!(status.code(), Code::NotFound);
    let audit = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    let actions: Vec<i32> = audit.audit_events.iter().map(|e| e.action).collect();
    use pb::AuditAction as A;
    assert_eq!(
        actions,
        [
            A::MyNumberReadDenied as i32,
            A::MyNumberReadDenied as i32,
            A::MyNumberReadDenied as i32,
            A::MyNumberDiscarded as i32
        ]
    );
    assert_eq!(audit.audit_events[0].detail, "no such card read");
    server.stop().await;
}

/// Every read is audited, also when many race.
async fn concurrent_reads_are_each_audited(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let face = KenhojoReader::new(&mut tsuruko_card())
        .read("4729")
        .expect("transport")
        .expect("read");
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(face.to_proto()),
            procedures: vec!["sosaihi".into()],
        })
        .await
        .expect("read")
        .into_inner();
    let handler = server.client(HANDLER_TOKEN).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut client = handler.clone();
        let card_read = read.name.clone();
        tasks.push(tokio::spawn(async move {
            client
                .read_my_number(pb::ReadMyNumberRequest {
                    card_read,
                    visit: VISIT.into(),
                    purpose: if i % 4 == 0 {
                        "juminhyo".into()
                    } else {
                        "sosaihi".into()
                    },
                })
                .await
                .map(|r| r.into_inner().audit_event)
        }));
    }
    let mut allowed = std::collections::HashSet::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(event) => {
                allowed.insert(event);
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!((allowed.len(), refused), (12, 4));
    let mut handler = handler;
    let audit = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    use pb::AuditAction as A;
    let count = |action: A| {
        audit
            .audit_events
            .iter()
            .filter(|e| e.action == action as i32)
            .count()
    };
    assert_eq!(count(A::MyNumberRead), 12);
    assert_eq!(count(A::MyNumberReadDenied), 4);
    assert!(
        audit
            .audit_events
            .iter()
            .filter(|e| e.action == A::MyNumberRead as i32)
            .all(|e| allowed.contains(&e.name))
    );
    server.stop().await;
}

/// The second life event: a birth. The father identifies himself with his
/// IC driver's licence (read with PIN1) and a health insurance card, and
/// does the child's procedures as a member of the household.
async fn birth_visit(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let visit = "municipalities/032034/visits/birth-1";
    // His IC licence, read at the counter's reader with PIN1 (the PIN
    // never leaves the staff client); the face goes to SubmitCardRead.
    let on_card = LicenceRead {
        face: LicenceFace {
            name: "盛 健太".into(),
            address: "岩手県大船渡市盛町字東町1番地".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 4, 12).expect("date"),
            expiry_date: chrono::NaiveDate::from_ymd_opt(2025, 5, 12).expect("date"),
            licence_number: "221512345670".into(),
        },
        reading: String::new(),
        issued_on: chrono::NaiveDate::from_ymd_opt(2020, 4, 20).expect("date"),
        commission: "岩手県公安委員会".into(),
        spec_version: "008".into(),
    };
    let mut card = SimulatedLicence::new(&on_card, "2468").expect("card");
    let licence = LicenceReader::new(&mut card)
        .read("2468")
        .expect("reader")
        .expect("pin accepted")
        .face;
    assert_eq!(licence, on_card.face);
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: visit.into(),
            source: pb::CardSource::DriversLicence as i32,
            data: Some(licence.to_proto().expect("valid entry")),
            procedures: vec!["kokuho-shutoku".into()],
        })
        .await
        .expect("licence read")
        .into_inner();
    assert_eq!(read.resident, "municipalities/032034/residents/100011");
    assert_eq!(read.licence_number_masked, "********5670");
    assert!(read.my_number_masked.is_empty() && !read.my_number_retained);
    let claim = pb::PersonClaim {
        person_name: Some(name("盛", "健太", "サカリ", "ケンタ")),
        birth_date: Some(date(1990, 4, 12)),
        address: None,
    };
    let verification = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: visit.into(),
            visitor: Some(claim.clone()),
            resident: "municipalities/032034/residents/100011".into(),
            documents: vec![pb::PresentedDocument {
                kind: "drivers-licence".into(),
                card_read: read.name.clone(),
                ..Default::default()
            }],
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(verification.verified);
    // Two years on, the same licence has expired: an insurance card alone
    // is not enough, an insurance card and a bank book are.
    server.clock.advance(chrono::Duration::days(730));
    let expired = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: visit.into(),
            visitor: Some(claim.clone()),
            resident: String::new(),
            documents: vec![
                pb::PresentedDocument {
                    kind: "drivers-licence".into(),
                    card_read: read.name.clone(),
                    ..Default::default()
                },
                pb::PresentedDocument {
                    kind: "health-insurance-card".into(),
                    holder_name: "盛 健太".into(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(!expired.verified);
    assert_eq!(
        expired.outcome,
        pb::VerificationOutcome::SecondDocumentNeeded as i32
    );
    assert_eq!(
        expired.documents[0].rejection,
        pb::DocumentRejection::Expired as i32
    );
    server.clock.set(visit_day());

    let decisions = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![
                procedure("kokuho-shutoku", "municipalities/032034/residents/100013"),
                procedure("kodomo-iryo", "municipalities/032034/residents/100013"),
                procedure("jidou-teate", "municipalities/032034/residents/100011"),
                procedure("jidou-teate", "municipalities/032034/residents/100012"),
                procedure("inkan-touroku", "municipalities/032034/residents/100012"),
            ],
            powers_of_attorney: vec![],
            legal_representations: vec![pb::LegalRepresentation {
                kind: pb::LegalRepresentativeKind::ParentalAuthority as i32,
                represented: "municipalities/032034/residents/100013".into(),
                evidence_issued_on: None,
            }],
        })
        .await
        .expect("proxy")
        .into_inner()
        .decisions;
    use pb::ProxyDecisionReason as R;
    let reasons: Vec<i32> = decisions.iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        [
            R::HouseholdMember as i32,
            R::HouseholdMember as i32,
            R::Self_ as i32,
            R::PowerOfAttorneyMissing as i32,
            R::ProxyNotAllowed as i32,
        ]
    );
    server.stop().await;
}

/// Bad input: precise field violations, nothing written.
async fn bad_input(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let mut handler = server.client(HANDLER_TOKEN).await;

    let status = staff
        .search_residents(pb::SearchResidentsRequest {
            parent: OFUNATO.into(),
            family_name: "おくやみ".into(),
            given_name: String::new(),
            birth_date: None,
            birth_date_wareki: "平成31年5月1日".into(),
        })
        .await
        .expect_err("平成31年5月1日 does not exist");
    assert_eq!(status.code(), Code::InvalidArgument);
    let v = violations(&status);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, "birth_date_wareki");
    assert!(v[0].1.contains("令和元年5月1日"), "{v:?}");

    let status = staff
        .search_residents(pb::SearchResidentsRequest {
            parent: OFUNATO.into(),
            family_name: String::new(),
            given_name: String::new(),
            birth_date: Some(date(2023, 2, 29)),
            birth_date_wareki: String::new(),
        })
        .await
        .expect_err("no name, no such day");
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["family_name", "birth_date"]);

    let face = KenhojoReader::new(&mut tsuruko_card())
        .read("4729")
        .expect("transport")
        .expect("read");
    let mut data = face.to_proto();
    data.full_name = "おくやみ\u{001B}[31mつる子".into();
    let number = data.my_number.clone();
    data.my_number = format!(
        "{}{}",
        &number[..11],
        (number.as_bytes()[11] - b'0' + 1) % 10
    );
    data.birth_date = Some(date(1972, 2, 30));
    let status = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: OFUNATO.into(),
            visit: "visits/x".into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(data.clone()),
            procedures: vec!["no-such-procedure".into()],
        })
        .await
        .expect_err("everything wrong");
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "visit",
            "data.full_name",
            "data.birth_date",
            "data.my_number",
            "procedures[0]"
        ]
    );
    assert!(
        !status.message().contains(&data.my_number),
        "the number is never echoed"
    );
    assert!(
        violations(&status)
            .iter()
            .any(|(_, d)| d == "check digit does not match")
    );

    let status = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            visitor: Some(pb::PersonClaim {
                person_name: Some(name("おくやみ", "つる子", "tsuruko", "")),
                birth_date: Some(date(1972, 10, 31)),
                address: None,
            }),
            resident: "municipalities/041017/residents/1".into(),
            documents: vec![pb::PresentedDocument {
                kind: "library-card".into(),
                expiry_date: Some(date(2030, 13, 1)),
                ..Default::default()
            }],
        })
        .await
        .expect_err("bad verification");
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "visitor.person_name.family_name_kana",
            "resident",
            "documents[0].kind",
            "documents[0].expiry_date"
        ]
    );

    // A claim that does not match the named record.
    let mut wrong = tsuruko_claim();
    wrong.birth_date = Some(date(1972, 11, 1));
    let status = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            visitor: Some(wrong),
            resident: TSURUKO.into(),
            documents: vec![pb::PresentedDocument {
                kind: "passport".into(),
                ..Default::default()
            }],
        })
        .await
        .expect_err("claim mismatch");
    assert_eq!(violations(&status)[0].0, "resident");

    // Proxies: unknown procedure without a policy, an unknown subject, a
    // letter without date or procedures.
    let verification = staff
        .verify_identity(pb::VerifyIdentityRequest {
            parent: OFUNATO.into(),
            visit: VISIT.into(),
            visitor: Some(tsuruko_claim()),
            resident: String::new(),
            documents: vec![pb::PresentedDocument {
                kind: "passport".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("verify")
        .into_inner();
    let status = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![procedure("golf", HANAKO)],
            powers_of_attorney: vec![pb::PowerOfAttorney {
                delegator: HANAKO.into(),
                proxy: Some(tsuruko_claim()),
                procedures: vec![],
                written_on: None,
            }],
            legal_representations: vec![],
        })
        .await
        .expect_err("bad proxy check");
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "procedures[0].procedure",
            "powers_of_attorney[0].procedures",
            "powers_of_attorney[0].written_on"
        ]
    );
    let status = staff
        .check_proxy(pb::CheckProxyRequest {
            parent: OFUNATO.into(),
            verification: verification.name.clone(),
            procedures: vec![procedure(
                "juminhyo",
                "municipalities/032034/residents/999999",
            )],
            powers_of_attorney: vec![],
            legal_representations: vec![],
        })
        .await
        .expect_err("unknown subject");
    assert_eq!(
        violations(&status),
        [(
            "procedures[0].subject".to_owned(),
            "no such resident".to_owned()
        )]
    );

    // Tenancy: another municipality's staff, and a kiosk, are refused.
    let mut sendai = server.client(SENDAI_TOKEN).await;
    let status = sendai
        .get_resident(pb::GetResidentRequest {
            name: TSURUKO.into(),
        })
        .await
        .expect_err("other municipality");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::PermissionDenied, "OTHER_MUNICIPALITY")
    );
    let mut kiosk = server.client(DEVICE_TOKEN).await;
    let status = kiosk
        .get_resident(pb::GetResidentRequest {
            name: TSURUKO.into(),
        })
        .await
        .expect_err("kiosk");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        kiosk
            .list_document_kinds(pb::ListDocumentKindsRequest {
                parent: OFUNATO.into()
            })
            .await
            .is_ok()
    );

    // Nothing of the failed calls was written.
    let audit = handler
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: OFUNATO.into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    assert!(audit.audit_events.is_empty());
    server.stop().await;
}

/// The admin import replaces the registry in one transaction, or not at all.
async fn registry_import(backend: Backend) {
    let server = Harness::start(backend).await;
    let mut admin = server.client(HANDLER_TOKEN).await;
    let mut staff = server.client(STAFF_TOKEN).await;
    let sample = std::fs::read_to_string(site_file().with_file_name("residents.csv")).expect("csv");
    let broken = format!(
        "{sample}100099,h-0009,大船渡,次郎,オオフナト,ジロウ,昭和64年1月8日,1,head,世帯主,0220002,032034,岩手県,大船渡市,盛町,,resident,,,\n"
    );
    let status = admin
        .import_residents(pb::ImportResidentsRequest {
            parent: OFUNATO.into(),
            csv: broken,
        })
        .await
        .expect_err("bad row");
    let v = violations(&status);
    assert_eq!(v.len(), 1, "{v:?}");
    let appended_line = sample.lines().count() + 1;
    assert_eq!(v[0].0, format!("rows[{appended_line}].birth_date"));
    assert!(v[0].1.contains("平成元年1月8日"), "{v:?}");
    // The old registry is untouched.
    assert!(
        staff
            .get_resident(pb::GetResidentRequest { name: TARO.into() })
            .await
            .is_ok()
    );
    let status = staff
        .import_residents(pb::ImportResidentsRequest {
            parent: OFUNATO.into(),
            csv: sample.clone(),
        })
        .await
        .expect_err("staff may not import");
    assert_eq!(status.code(), Code::PermissionDenied);
    // A registry of one household replaces the whole sample.
    let header = sample.lines().next().expect("header");
    let one: String = sample
        .lines()
        .filter(|l| l.contains("h-0002"))
        .collect::<Vec<_>>()
        .join("\n");
    let done = admin
        .import_residents(pb::ImportResidentsRequest {
            parent: OFUNATO.into(),
            csv: format!("{header}\n{one}\n"),
        })
        .await
        .expect("import")
        .into_inner();
    assert_eq!((done.residents, done.households), (3, 1));
    let status = staff
        .get_resident(pb::GetResidentRequest { name: TARO.into() })
        .await
        .expect_err("replaced");
    assert_eq!(status.code(), Code::NotFound);
    server.stop().await;
}

on_both_backends!(
    okuyami_visit,
    number_kept_only_when_needed,
    concurrent_reads_are_each_audited,
    birth_visit,
    bad_input,
    registry_import,
);
