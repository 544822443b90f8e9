//! Server reflection: both protocol versions answer, and each lists exactly
//! the services its process serves, so a tool never offers an RPC that
//! would answer UNIMPLEMENTED (the gateway's KioskService, or another
//! service's RPCs in a one-service replica).

use std::collections::BTreeSet;
use std::sync::Arc;

use madoguchi::server::{ServiceSelection, start};
use madoguchi_e2e::*;
use madoguchi_platform::clock::{ManualClock, SharedClock};
use madoguchi_platform::config::ServerConfig;
use secrecy::SecretString;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

/// What every process serves beside its application services.
const PLATFORM: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

async fn list_v1(channel: Channel) -> BTreeSet<String> {
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap_or_else(|e| panic!("reflection v1: {e}"))
        .into_inner();
    let response = responses
        .message()
        .await
        .unwrap_or_else(|e| panic!("reflection v1: {e}"))
        .unwrap_or_else(|| panic!("reflection v1: no response"));
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("reflection v1: not a service list: {other:?}"),
    }
}

async fn list_v1alpha(channel: Channel) -> BTreeSet<String> {
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap_or_else(|e| panic!("reflection v1alpha: {e}"))
        .into_inner();
    let response = responses
        .message()
        .await
        .unwrap_or_else(|e| panic!("reflection v1alpha: {e}"))
        .unwrap_or_else(|| panic!("reflection v1alpha: no response"));
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("reflection v1alpha: not a service list: {other:?}"),
    }
}

/// A served service's descriptor is found by symbol on v1alpha too (what
/// grpcurl's `describe` and grpcio-reflection ask after listing).
async fn v1alpha_describes(channel: Channel, symbol: &str) -> bool {
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap_or_else(|e| panic!("reflection v1alpha: {e}"))
        .into_inner();
    matches!(
        responses.message().await,
        Ok(Some(v1alpha::ServerReflectionResponse {
            message_response: Some(MessageResponse::FileDescriptorResponse(files)),
            ..
        })) if !files.file_descriptor_proto.is_empty()
    )
}

fn expected(application: &[&str]) -> BTreeSet<String> {
    application
        .iter()
        .chain(PLATFORM.iter())
        .map(|s| (*s).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_lists_its_services_on_both_versions() {
    let t = spawn(Spawn::new(Backend::Sqlite)).await;
    let want = expected(&[
        "madoguchi.queue.v1.QueueService",
        "madoguchi.signage.v1.SignageService",
        "madoguchi.identity.v1.IdentityService",
        "madoguchi.forms.v1.FormsService",
        "madoguchi.pos.v1.PosService",
    ]);
    // Without a token: reflection is open, as health is.
    assert_eq!(list_v1(t.channel().await).await, want);
    assert_eq!(list_v1alpha(t.channel().await).await, want);
    assert!(v1alpha_describes(t.channel().await, "madoguchi.queue.v1.QueueService").await);
    assert!(v1alpha_describes(t.channel().await, "madoguchi.queue.v1.Ticket").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_replica_lists_only_the_queue() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let site = dir.path().join("site.toml");
    std::fs::write(&site, sample_site()).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
    let config = ServerConfig {
        data_dir: dir.path().to_owned(),
        database_url: Some(SecretString::from(url)),
        site: Some(site),
        tokens: test_tokens(),
        ..ServerConfig::default()
    };
    let clock: SharedClock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = start(&config, ServiceSelection::Queue, clock, listener)
        .await
        .unwrap_or_else(|e| panic!("queue replica did not start: {e:#}"));
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap_or_else(|e| panic!("{e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let want = expected(&["madoguchi.queue.v1.QueueService"]);
    assert_eq!(list_v1(channel.clone()).await, want);
    assert_eq!(list_v1alpha(channel).await, want);
    server
        .shutdown()
        .await
        .unwrap_or_else(|e| panic!("shutdown: {e}"));
}
