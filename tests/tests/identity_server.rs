//! The identity service inside the real `madoguchi` server (every service
//! in one process), on SQLite and PostgreSQL: the registry sample is
//! seeded at first start, a My Number kept for a procedure survives two
//! restarts (the generated key is kept, private, in the data directory),
//! and only a designated handler reads it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use madoguchi::cli::Auth;
use madoguchi_e2e::{Backend, Spawn, spawn, token};
use madoguchi_platform::auth::Role;
use madoguchi_proto::identity::v1 as pb;
use madoguchi_proto::identity::v1::identity_service_client::IdentityServiceClient;
use madoguchi_proto::types::v1::Date;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Client = IdentityServiceClient<InterceptedService<Channel, Auth>>;

async fn client(addr: std::net::SocketAddr, role: Role) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    IdentityServiceClient::with_interceptor(
        channel,
        Auth::bearer(&token(role, "032034").token).expect("auth"),
    )
}

async fn number_survives_restarts(backend: Backend) {
    let server = spawn(Spawn::new(backend)).await;
    let dir = server
        .config
        .site
        .as_deref()
        .and_then(|s| s.parent())
        .expect("site dir")
        .to_owned();
    // Designate the test admin as My Number handler for this deployment.
    let rules = std::fs::read_to_string(dir.join("identity.toml")).expect("identity.toml");
    std::fs::write(
        dir.join("identity.toml"),
        rules.replace(
            "handlers = [\"local-admin\"]",
            "handlers = [\"test-admin\"]",
        ),
    )
    .expect("write");
    let server = server.stop().await.restart().await;

    let mut staff = client(server.server.addr, Role::Staff).await;
    let found = staff
        .search_residents(pb::SearchResidentsRequest {
            parent: "municipalities/032034".into(),
            family_name: "おくやみ".into(),
            given_name: "花子".into(),
            birth_date: None,
            birth_date_wareki: "S20.11.1".into(),
        })
        .await
        .expect("search")
        .into_inner();
    assert_eq!(found.residents.len(), 1, "the sample registry was seeded");

    let number = "123456789018";
    let read = staff
        .submit_card_read(pb::SubmitCardReadRequest {
            parent: "municipalities/032034".into(),
            visit: "municipalities/032034/visits/v1".into(),
            source: pb::CardSource::MyNumberCard as i32,
            data: Some(pb::CardData {
                full_name: "おくやみ 花子".into(),
                address: "岩手県大船渡市盛町字宇津野沢15番地".into(),
                birth_date: Some(Date {
                    year: 1945,
                    month: 11,
                    day: 1,
                }),
                sex: 2,
                my_number: number.into(),
                expiry_date: None,
                licence_number: String::new(),
            }),
            procedures: vec!["sosaihi".into()],
        })
        .await
        .expect("card read")
        .into_inner();
    assert!(read.my_number_retained);
    assert_eq!(read.resident, "municipalities/032034/residents/100002");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("identity.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let server = server.stop().await.restart().await;
    let request = pb::ReadMyNumberRequest {
        card_read: read.name.clone(),
        visit: "municipalities/032034/visits/v1".into(),
        purpose: "sosaihi".into(),
    };
    let mut staff = client(server.server.addr, Role::Staff).await;
    assert_eq!(
        staff
            .read_my_number(request.clone())
            .await
            .expect_err("staff")
            .code(),
        tonic::Code::PermissionDenied
    );
    let mut admin = client(server.server.addr, Role::Admin).await;
    let reading = admin
        .read_my_number(request)
        .await
        .expect("handler")
        .into_inner();
    assert_eq!(reading.my_number, number);
    server.stop().await;
}

madoguchi_e2e::on_both_backends!(number_survives_restarts);
