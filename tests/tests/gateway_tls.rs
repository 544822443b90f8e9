//! The gateway's link to the cluster over TLS and mutual TLS: a server on
//! port 0 serving TLS with a client-certificate check (`[tls]` with
//! `client_ca`), certificates made for the test by a throw-away CA, and
//! the gateway configured as in production (`[cluster.tls]`).
//!
//! Transport only, so SQLite only: the storage behind it is the same as in
//! `gateway.rs`, which runs on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use madoguchi::cli::Auth;
use madoguchi_e2e::*;
use madoguchi_gateway::config::{ClusterConfig, GatewayConfig, TlsConfig};
use madoguchi_gateway::floor::start_simulated;
use madoguchi_gateway::link::Cluster;
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::config::TlsFiles;
use madoguchi_proto::queue::v1 as pb;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use secrecy::SecretString;
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The name in the server's certificate (the endpoint is an IP address).
const SERVER_NAME: &str = "queue.madoguchi.test";
const DEADLINE: Duration = Duration::from_secs(20);

/// PEM files of one test PKI.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA, a server certificate for [`SERVER_NAME`] and a client
    /// certificate for the gateway, all signed by the CA; and a second,
    /// unrelated CA with its own client certificate.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        for (prefix, ca_name) in [("", "Madoguchi test CA"), ("rogue-", "Someone else's CA")] {
            let ca_key = KeyPair::generate().unwrap();
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name.push(DnType::CommonName, ca_name);
            write(
                &format!("{prefix}ca.pem"),
                ca.self_signed(&ca_key).unwrap().pem(),
            );
            let issuer = Issuer::new(ca, ca_key);

            let server_key = KeyPair::generate().unwrap();
            let mut server = CertificateParams::new(vec![SERVER_NAME.to_owned()]).unwrap();
            server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            write(
                &format!("{prefix}server.pem"),
                server.signed_by(&server_key, &issuer).unwrap().pem(),
            );
            write(&format!("{prefix}server.key"), server_key.serialize_pem());

            let client_key = KeyPair::generate().unwrap();
            let mut client =
                CertificateParams::new(vec!["gateway-1f.madoguchi.test".to_owned()]).unwrap();
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            client
                .distinguished_name
                .push(DnType::CommonName, "gateway-1f");
            write(
                &format!("{prefix}client.pem"),
                client.signed_by(&client_key, &issuer).unwrap().pem(),
            );
            write(&format!("{prefix}client.key"), client_key.serialize_pem());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The server's `[tls]`: its certificate, and clients must present one
    /// signed by the test CA.
    fn server(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: Some(self.path("ca.pem")),
        }
    }
}

async fn tls_server(pki: &Pki) -> TestServer {
    let mut options = Spawn::new(Backend::Sqlite);
    options.tls = Some(pki.server());
    spawn(options).await
}

/// A staff client over mutual TLS.
async fn staff(t: &TestServer, pki: &Pki) -> Client {
    let read = |p: &Path| std::fs::read(p).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&pki.path("ca.pem"))))
        .identity(Identity::from_pem(
            read(&pki.path("client.pem")),
            read(&pki.path("client.key")),
        ))
        .domain_name(SERVER_NAME);
    let channel = Channel::from_shared(format!("https://{}", t.server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::queue_service_client::QueueServiceClient::with_interceptor(
        channel,
        Auth::bearer(&staff_token()).unwrap(),
    )
}

fn staff_token() -> SecretString {
    token(Role::Staff, "032034").token
}

/// The gateway's cluster link with the given TLS material.
fn link(t: &TestServer, tls: TlsConfig) -> Cluster {
    let config = ClusterConfig {
        endpoint: format!("https://{}", t.server.addr),
        office: OFFICE.to_owned(),
        token: None,
        token_file: None,
        tls: Some(tls),
        call_timeout: Duration::from_secs(5),
    };
    Cluster::new(
        &config,
        &SecretString::from("test-device-032034".to_owned()),
    )
    .unwrap()
}

async fn office_status(cluster: &Cluster) -> Result<pb::OfficeStatus, tonic::Status> {
    cluster
        .queue()
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The TLS handshake failed for `why` (a rustls alert or error name): a
/// transport failure, never an answer of the service.
fn assert_refused(status: &tonic::Status, why: &str) {
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "{status:?}"
    );
    let chain = format!("{status:?}");
    assert!(chain.contains(why), "expected {why}: {chain}");
}

#[tokio::test]
async fn only_a_gateway_with_a_certificate_of_the_cluster_ca_gets_in() {
    let pki = Pki::new();
    let t = tls_server(&pki).await;
    let tls = |ca: &str, client: Option<&str>| TlsConfig {
        ca: pki.path(ca),
        cert: client.map(|c| pki.path(&format!("{c}.pem"))),
        key: client.map(|c| pki.path(&format!("{c}.key"))),
        domain: Some(SERVER_NAME.to_owned()),
    };

    let good = link(&t, tls("ca.pem", Some("client")));
    let status = office_status(&good).await.unwrap();
    assert_eq!(status.name, OFFICE);

    // No client certificate: the server's handshake refuses it.
    let anonymous = link(&t, tls("ca.pem", None));
    let refused = office_status(&anonymous).await.unwrap_err();
    assert_refused(&refused, "CertificateRequired");

    // A certificate from another CA: refused as well.
    let stranger = link(&t, tls("ca.pem", Some("rogue-client")));
    let refused = office_status(&stranger).await.unwrap_err();
    assert_refused(&refused, "UnknownCA");

    // The gateway does not trust a server its CA did not sign.
    let fooled = link(&t, tls("rogue-ca.pem", Some("client")));
    let refused = office_status(&fooled).await.unwrap_err();
    assert_refused(&refused, "UnknownIssuer");

    // Cleartext to a TLS port gets nowhere either.
    let channel = Channel::from_shared(format!("http://{}", t.server.addr))
        .unwrap()
        .connect_lazy();
    let mut plain = pb::queue_service_client::QueueServiceClient::with_interceptor(
        channel,
        Auth::bearer(&staff_token()).unwrap(),
    );
    let refused = plain
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.to_owned(),
        })
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_floor_over_mutual_tls_prints_and_shows_calls() {
    let pki = Pki::new();
    let t = tls_server(&pki).await;
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
        state = "{state}"
        [cluster]
        endpoint = "https://{addr}"
        office = "{OFFICE}"
        token = "test-device-032034"
        call_timeout = 5000
        [cluster.tls]
        ca = "{ca}"
        cert = "{cert}"
        key = "{key}"
        domain = "{SERVER_NAME}"

        [timing]
        backoff_initial = 20
        backoff_max = 200
        housekeeping = 600000

        [[kiosks]]
        id = "k1"
        printer = {{ path = "sim-printer" }}
        panel = {{ path = "sim-panel" }}
        buttons = {{ 1 = "certificates" }}

        [[board_lines]]
        id = "rs485-1f"
        port = {{ path = "sim-line" }}
        units = [1, 2, 3, 4, 5, 10]
        "#,
        state = state.path().join("gateway.db").display(),
        addr = t.server.addr,
        ca = pki.path("ca.pem").display(),
        cert = pki.path("client.pem").display(),
        key = pki.path("client.key").display(),
    );
    let config = GatewayConfig::parse(&text).unwrap();
    let clock: SharedClock = Arc::new(t.clock.clone());
    let (gateway, sims) = start_simulated(&config, clock).await.unwrap();

    // A press: the ticket comes from the cluster over mutual TLS (a ticket
    // printed from an offline lease would not be counted as issued yet).
    sims.panels["k1"].press(1);
    let ticket = tokio::time::timeout(DEADLINE, sims.printers["k1"].next_ticket())
        .await
        .expect("a printed ticket")
        .expect("printer simulator running");
    let mut staff = staff(&t, &pki).await;
    let listed = staff
        .list_tickets(pb::ListTicketsRequest {
            parent: OFFICE.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tickets.len(), 1, "{listed:?}");
    let issued = &listed.tickets[0];
    assert!(!issued.issued_offline);
    assert!(
        ticket.contains(&issued.display_number),
        "{}",
        ticket.render_text()
    );
    let number = issued.display_number.clone();

    // A call over TLS reaches the board through the gateway's TLS stream.
    let called = staff
        .call_next(pb::CallNextRequest {
            counter: counter("1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(called.display_number, number);
    let mut line = sims.lines["rs485-1f"].clone();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let shown = line
                .view(1)
                .and_then(|v| Some(format!("{}{:03}", v.display.prefix?, v.display.number?)));
            if shown.as_deref() == Some(number.as_str()) {
                return;
            }
            line.changed().await;
        }
    })
    .await
    .expect("board 1 shows the called number");
    gateway.shutdown().await;
}
