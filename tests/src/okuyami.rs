//! The おくやみ case as the tests walk it: つる子 comes to the counter after
//! her father 太郎 died, shows her My Number card and driving licence, and
//! staff fill one certificate request for the inheritance. Shared by the
//! forms, POS and register tests so the scenario is written once.

use madoguchi::cli::Auth;
use madoguchi_platform::auth::Role;
use madoguchi_proto::forms::v1 as f;
use madoguchi_proto::forms::v1::forms_service_client::FormsServiceClient;
use madoguchi_proto::identity::v1 as id;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::types::v1::{Address, Date, JapaneseName};
use tonic::transport::Channel;

use crate::{OFFICE, TestServer, token};

/// The sample municipality (大船渡市).
pub const M: &str = "municipalities/032034";
/// 太郎, who died.
pub const TARO: &str = "municipalities/032034/residents/100001";
/// 花子, his wife, the 喪主.
pub const HANAKO: &str = "municipalities/032034/residents/100002";
/// つる子, his daughter, who comes to the counter.
pub const TSURUKO: &str = "municipalities/032034/residents/100003";

/// A calendar date.
pub fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// つる子's identity check at the counter of ticket `visit`: she lives in
/// Sendai now and shows her My Number card (photo ID) and her licence.
pub fn daughter_verification(visit: &str) -> id::VerifyIdentityRequest {
    id::VerifyIdentityRequest {
        parent: M.into(),
        visit: visit.into(),
        visitor: Some(id::PersonClaim {
            person_name: Some(JapaneseName {
                family_name: "おくやみ".into(),
                given_name: "つる子".into(),
                ..Default::default()
            }),
            birth_date: date(1972, 10, 31),
            address: Some(Address {
                municipality_code: "041017".into(),
                prefecture: "宮城県".into(),
                municipality: "仙台市青葉区".into(),
                street: "国分町3丁目7番1号".into(),
                ..Default::default()
            }),
        }),
        resident: TSURUKO.into(),
        documents: vec![
            id::PresentedDocument {
                kind: "my-number-card".into(),
                expiry_date: date(2030, 10, 31),
                ..Default::default()
            },
            id::PresentedDocument {
                kind: "drivers-licence".into(),
                expiry_date: date(2028, 11, 30),
                ..Default::default()
            },
        ],
    }
}

/// The certificates the inheritance needs, all of 太郎: 除籍謄本 ×2 (¥750
/// each), 住民票の除票 ×1 with 本籍 (¥300, for the pension claim) and
/// 評価証明書 ×1 (¥300).
pub fn inheritance_lines() -> Vec<f::CertificateLineInput> {
    vec![
        f::CertificateLineInput {
            subject: TARO.into(),
            kind: "joseki-tohon".into(),
            copies: 2,
            purpose: "相続手続".into(),
            relation: f::Relation::LinealRelative as i32,
            ..Default::default()
        },
        f::CertificateLineInput {
            subject: TARO.into(),
            kind: "juminhyo-joshi".into(),
            copies: 1,
            options: vec!["honseki".into()],
            purpose: "年金の手続".into(),
            relation: f::Relation::LinealRelative as i32,
        },
        f::CertificateLineInput {
            subject: TARO.into(),
            kind: "hyoka".into(),
            copies: 1,
            purpose: "相続登記".into(),
            relation: f::Relation::LinealRelative as i32,
            ..Default::default()
        },
    ]
}

/// A forms client acting as counter staff.
pub async fn staff_forms(
    t: &TestServer,
) -> FormsServiceClient<tonic::service::interceptor::InterceptedService<Channel, Auth>> {
    FormsServiceClient::with_interceptor(t.channel().await, staff_auth())
}

/// For the visit of ticket `ticket` (being served): つる子 verified, the
/// visit started and the inheritance request filled — still a draft.
pub async fn draft_inheritance_request(t: &TestServer, ticket: &str) -> f::CertificateRequest {
    draft_inheritance_request_on(t.channel().await, ticket).await
}

/// [`draft_inheritance_request`] through `channel` (a server, or the
/// cluster's edge).
pub async fn draft_inheritance_request_on(channel: Channel, ticket: &str) -> f::CertificateRequest {
    let mut identity = IdentityServiceClient::with_interceptor(channel.clone(), staff_auth());
    let verification = identity
        .verify_identity(daughter_verification(ticket))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(verification.verified, "{verification:?}");
    let mut forms = FormsServiceClient::with_interceptor(channel, staff_auth());
    let visit = forms
        .start_visit(f::StartVisitRequest {
            parent: OFFICE.into(),
            verification: verification.name,
            ticket: ticket.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    forms
        .create_certificate_request(f::CreateCertificateRequestRequest {
            parent: visit.name,
            lines: inheritance_lines(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
}

/// Confirms request `name` as staff.
pub async fn confirm_request(t: &TestServer, name: &str) -> f::CertificateRequest {
    confirm_request_on(t.channel().await, name).await
}

/// [`confirm_request`] through `channel`.
pub async fn confirm_request_on(channel: Channel, name: &str) -> f::CertificateRequest {
    FormsServiceClient::with_interceptor(channel, staff_auth())
        .confirm_certificate_request(f::ConfirmCertificateRequestRequest { name: name.into() })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
}

fn staff_auth() -> Auth {
    Auth::bearer(&token(Role::Staff, "032034").token).unwrap_or_else(|e| panic!("{e}"))
}

/// One navigator answer.
pub fn answer(question: &str, value: &str) -> f::Answer {
    f::Answer {
        question: question.into(),
        value: value.into(),
    }
}

/// The navigator's answers for 太郎's death, as つる子 gives them.
pub fn okuyami_answers() -> Vec<f::Answer> {
    vec![
        // 条件1: the funeral was held on 6.21 with the mother as 喪主.
        answer("funeral_held", "yes"),
        answer("chief_mourner", HANAKO),
        answer("survivor", HANAKO),
        answer("medical_costs", "yes"),
        // 条件4: no pension book or certificate was found.
        answer("pension_book_found", "no"),
        // The mother has no car and walks everywhere.
        answer("mourner_can_visit", "no"),
    ]
}
