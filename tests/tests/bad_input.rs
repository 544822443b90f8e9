//! Bad input over every RPC: the precise status, `google.rpc` details
//! naming the field, and nothing written.

use futures::future::BoxFuture;
use madoguchi_e2e::*;
use madoguchi_platform::auth::Role;
use tonic::{Code, Status};
use tonic_types::StatusExt;

type Call = Box<dyn Fn(Client) -> BoxFuture<'static, Result<(), Status>>>;

fn call<F, Fut>(f: F) -> Call
where
    F: Fn(Client) -> Fut + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    Box::new(move |client| Box::pin(f(client)))
}

/// `(case, role, call, expected code, expected violated field or reason)`.
fn cases(ticket: String) -> Vec<(&'static str, Role, Call, Code, &'static str)> {
    let other = "municipalities/131016/offices/main".to_owned();
    let t = ticket.clone();
    let t2 = ticket.clone();
    let t3 = ticket.clone();
    let t4 = ticket.clone();
    let t5 = ticket.clone();
    let t6 = ticket.clone();
    let other2 = other.clone();
    let other3 = other.clone();
    vec![
        (
            "issue: empty parent",
            Role::Device,
            call(|mut c| async move {
                c.issue_ticket(pb::IssueTicketRequest {
                    category: category("certificates"),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "parent",
        ),
        (
            "issue: bad check digit",
            Role::Device,
            call(|mut c| async move {
                c.issue_ticket(pb::IssueTicketRequest {
                    parent: "municipalities/032035/offices/main".into(),
                    category: category("certificates"),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "parent",
        ),
        (
            "issue: request_id not a uuid",
            Role::Device,
            call(|mut c| async move {
                let mut r = issue("certificates", false);
                r.request_id = "retry-1".into();
                c.issue_ticket(r).await.map(drop)
            }),
            Code::InvalidArgument,
            "request_id",
        ),
        (
            "issue: category of another office",
            Role::Device,
            call(|mut c| async move {
                let mut r = issue("certificates", false);
                r.category = "municipalities/032034/offices/branch/categories/certificates".into();
                c.issue_ticket(r).await.map(drop)
            }),
            Code::InvalidArgument,
            "category",
        ),
        (
            "issue: unknown category",
            Role::Device,
            call(|mut c| async move { c.issue_ticket(issue("passports", false)).await.map(drop) }),
            Code::NotFound,
            "NOT_FOUND",
        ),
        (
            "issue: unknown office",
            Role::Device,
            call(|mut c| async move {
                c.issue_ticket(pb::IssueTicketRequest {
                    parent: "municipalities/032034/offices/branch".into(),
                    category: "municipalities/032034/offices/branch/categories/certificates".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::NotFound,
            "NOT_FOUND",
        ),
        (
            "issue: display role",
            Role::Display,
            call(
                |mut c| async move { c.issue_ticket(issue("certificates", false)).await.map(drop) },
            ),
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        ),
        (
            "issue: another municipality",
            Role::Device,
            call(move |mut c| {
                let other = other.clone();
                async move {
                    c.issue_ticket(pb::IssueTicketRequest {
                        parent: other.clone(),
                        category: format!("{other}/categories/certificates"),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::PermissionDenied,
            "OTHER_MUNICIPALITY",
        ),
        (
            "get: malformed name",
            Role::Staff,
            call(|mut c| async move {
                c.get_ticket(pb::GetTicketRequest {
                    name: format!("{OFFICE}/tickets/42"),
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "name",
        ),
        (
            "get: unknown ticket",
            Role::Staff,
            call(|mut c| async move {
                c.get_ticket(pb::GetTicketRequest {
                    name: format!("{OFFICE}/tickets/{}", uuid::Uuid::new_v4()),
                })
                .await
                .map(drop)
            }),
            Code::NotFound,
            "NOT_FOUND",
        ),
        (
            "list: page size",
            Role::Staff,
            call(|mut c| async move {
                c.list_tickets(pb::ListTicketsRequest {
                    parent: OFFICE.into(),
                    page_size: 5000,
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "page_size",
        ),
        (
            "list: page token",
            Role::Staff,
            call(|mut c| async move {
                c.list_tickets(pb::ListTicketsRequest {
                    parent: OFFICE.into(),
                    page_token: "garbage".into(),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "page_token",
        ),
        (
            "list: impossible date",
            Role::Staff,
            call(|mut c| async move {
                c.list_tickets(pb::ListTicketsRequest {
                    parent: OFFICE.into(),
                    business_day: Some(madoguchi_proto::types::v1::Date {
                        year: 2026,
                        month: 2,
                        day: 30,
                    }),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "business_day",
        ),
        (
            "list: unknown state",
            Role::Staff,
            call(|mut c| async move {
                c.list_tickets(pb::ListTicketsRequest {
                    parent: OFFICE.into(),
                    states: vec![42],
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "states[0]",
        ),
        (
            "call: malformed counter",
            Role::Staff,
            call(|mut c| async move {
                c.call_next(pb::CallNextRequest {
                    counter: format!("{OFFICE}/counters/Window 1"),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "counter",
        ),
        (
            "call: unknown counter",
            Role::Staff,
            call(|mut c| async move {
                c.call_next(pb::CallNextRequest {
                    counter: counter("99"),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::NotFound,
            "NOT_FOUND",
        ),
        (
            "call: malformed category",
            Role::Staff,
            call(|mut c| async move {
                c.call_next(pb::CallNextRequest {
                    counter: counter("1"),
                    categories: vec!["certificates".into()],
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "categories[0]",
        ),
        (
            "call: kiosk role",
            Role::Device,
            call(|mut c| async move {
                c.call_next(pb::CallNextRequest {
                    counter: counter("1"),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        ),
        (
            "recall: waiting ticket",
            Role::Staff,
            call(move |mut c| {
                let t = t.clone();
                async move {
                    c.recall(pb::RecallRequest {
                        name: t,
                        etag: String::new(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::FailedPrecondition,
            "TICKET_NOT_CALLED",
        ),
        (
            "no-show: waiting ticket",
            Role::Staff,
            call(move |mut c| {
                let t = t2.clone();
                async move {
                    c.mark_no_show(pb::MarkNoShowRequest {
                        name: t,
                        etag: String::new(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::FailedPrecondition,
            "TICKET_NOT_CALLED",
        ),
        (
            "start: bad etag",
            Role::Staff,
            call(move |mut c| {
                let t = t3.clone();
                async move {
                    c.start_service(pb::StartServiceRequest {
                        name: t,
                        etag: "W/\"x\"".into(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::InvalidArgument,
            "etag",
        ),
        (
            "finish: waiting ticket",
            Role::Staff,
            call(move |mut c| {
                let t = t4.clone();
                async move {
                    c.finish_service(pb::FinishServiceRequest {
                        name: t,
                        etag: String::new(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::FailedPrecondition,
            "TICKET_NOT_AT_COUNTER",
        ),
        (
            "transfer: no category",
            Role::Staff,
            call(move |mut c| {
                let t = t5.clone();
                async move {
                    c.transfer(pb::TransferRequest {
                        name: t,
                        category: String::new(),
                        etag: String::new(),
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::InvalidArgument,
            "category",
        ),
        (
            "transfer: same category",
            Role::Staff,
            call(move |mut c| {
                let t = t6.clone();
                async move {
                    c.transfer(pb::TransferRequest {
                        name: t,
                        category: category("certificates"),
                        etag: String::new(),
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::InvalidArgument,
            "category",
        ),
        (
            "cancel: unknown ticket",
            Role::Staff,
            call(|mut c| async move {
                c.cancel_ticket(pb::CancelTicketRequest {
                    name: format!("{OFFICE}/tickets/{}", uuid::Uuid::new_v4()),
                    etag: String::new(),
                    ..Default::default()
                })
                .await
                .map(drop)
            }),
            Code::NotFound,
            "NOT_FOUND",
        ),
        (
            "status: another municipality",
            Role::Staff,
            call(move |mut c| {
                let other = other2.clone();
                async move {
                    c.get_office_status(pb::GetOfficeStatusRequest { name: other })
                        .await
                        .map(drop)
                }
            }),
            Code::PermissionDenied,
            "OTHER_MUNICIPALITY",
        ),
        (
            "status: malformed",
            Role::Staff,
            call(|mut c| async move {
                c.get_office_status(pb::GetOfficeStatusRequest {
                    name: "offices/main".into(),
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "name",
        ),
        (
            "watch: another municipality",
            Role::Display,
            call(move |mut c| {
                let other = other3.clone();
                async move {
                    c.watch_office(pb::WatchOfficeRequest {
                        office: other,
                        after_sequence: 0,
                    })
                    .await
                    .map(drop)
                }
            }),
            Code::PermissionDenied,
            "OTHER_MUNICIPALITY",
        ),
        (
            "watch: malformed",
            Role::Display,
            call(|mut c| async move {
                c.watch_office(pb::WatchOfficeRequest {
                    office: String::new(),
                    after_sequence: 0,
                })
                .await
                .map(drop)
            }),
            Code::InvalidArgument,
            "office",
        ),
    ]
}

async fn every_rpc_rejects_bad_input(backend: Backend) {
    let t = spawn(Spawn::new(backend)).await;
    let mut kiosk = t.client(Role::Device).await;
    let waiting = kiosk
        .issue_ticket(issue("certificates", false))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    let mut staff = t.client(Role::Staff).await;
    let before = staff
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .last_sequence;

    for (case, role, call, code, expected) in cases(waiting.name.clone()) {
        let client = t.client(role).await;
        let status = call(client)
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: accepted"));
        assert_eq!(status.code(), code, "{case}: {status:?}");
        let details = status.get_error_details();
        if code == Code::InvalidArgument {
            let fields: Vec<String> = details
                .bad_request()
                .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
                .unwrap_or_default();
            assert!(
                fields.iter().any(|f| f == expected),
                "{case}: violations {fields:?}"
            );
        } else {
            let reason = details
                .error_info()
                .map(|i| i.reason.clone())
                .unwrap_or_default();
            assert_eq!(reason, expected, "{case}");
        }
    }

    // No token, a wrong token: UNAUTHENTICATED, before anything else.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", t.server.addr))
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut anonymous = pb::queue_service_client::QueueServiceClient::new(channel);
    let status = anonymous
        .issue_ticket(issue("certificates", false))
        .await
        .err()
        .unwrap_or_else(|| panic!("anonymous issue accepted"));
    assert_eq!(status.code(), Code::Unauthenticated);

    // Nothing above wrote anything.
    let after = staff
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        after.last_sequence, before,
        "a rejected request changed the log"
    );
    let issued: u32 = after.categories.iter().map(|c| c.issued_today).sum();
    assert_eq!(issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    every_rpc_rejects_bad_input(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    every_rpc_rejects_bad_input(Backend::Postgres).await;
}
