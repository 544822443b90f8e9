//! Platform behaviour every service gets: open health checks and
//! reflection, request ids, authentication before anything else.

use madoguchi_e2e::*;
use madoguchi_platform::auth::Role;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_reports_the_queue() {
    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let mut health = HealthClient::new(t.channel().await);
    for service in ["", "madoguchi.queue.v1.QueueService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"))
            .into_inner();
        assert_eq!(response.status, ServingStatus::Serving as i32, "{service}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "madoguchi.nowhere.v1.NoService".into(),
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("unknown service reported healthy"));
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_generated() {
    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let mut client = t.client(Role::Staff).await;
    let mut request = tonic::Request::new(pb::GetOfficeStatusRequest {
        name: OFFICE.into(),
    });
    request.metadata_mut().insert(
        "x-request-id",
        "kiosk-1f-000042"
            .parse()
            .unwrap_or_else(|e| panic!("{e:?}")),
    );
    let response = client
        .get_office_status(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("kiosk-1f-000042")
    );
    let generated = client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = generated
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_unauthenticated() {
    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let auth = madoguchi::cli::Auth::bearer(&secrecy::SecretString::from("not-a-token".to_owned()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut client =
        pb::queue_service_client::QueueServiceClient::with_interceptor(t.channel().await, auth);
    let status = client
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.into(),
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}
