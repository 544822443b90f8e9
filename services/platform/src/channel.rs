//! Client channels to peer services, named the way gRPC names targets.
//!
//! A service reaches its peers (forms → identity and queue, POS → forms,
//! signage → queue) through one of three kinds of target:
//!
//! - `http://host:port` — one connection to whatever the name resolves to
//!   when it connects. Right for one process (the embedded default) and for
//!   anything that balances per request in front of the peer.
//! - `dns:///host:port` — every address the name resolves to, resolved
//!   again every [`RESOLVE_EVERY`] (sooner while it resolves to none), with
//!   requests spread over the addresses (tower's power-of-two-choices
//!   balancer, which skips addresses whose connection is down). This is
//!   what a Kubernetes headless Service is for: HTTP/2 keeps one
//!   connection per client, so a ClusterIP Service would pin a client to
//!   the one pod it first reached.
//! - `ipv4:a.b.c.d:port,…` (and `ipv6:[…]:port,…`) — a fixed list of
//!   addresses, balanced the same way: replicas on one machine, as the
//!   tests and `scripts/cluster-local.sh` run them.
//!
//! Every channel connects lazily: creating one never fails because the
//! peer is not up yet, and a connection that drops is made again on the
//! next request.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How often a `dns:///` target is resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(15);

/// How soon a `dns:///` target that resolved to nothing (or failed) is
/// tried again.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(1);

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://…` or `https://…`: one endpoint, as tonic connects to it.
    Uri(String),
    /// `dns:///host:port`: every address of `host`.
    Dns {
        /// The name to resolve.
        host: String,
        /// The port on every address.
        port: u16,
    },
    /// `ipv4:…` / `ipv6:…`: these addresses.
    Static(Vec<SocketAddr>),
}

impl Target {
    /// Parses a target, saying what is wrong with a bad one.
    pub fn parse(target: &str) -> Result<Self, String> {
        if let Some(rest) = target.strip_prefix("dns:") {
            // `dns:///host:port`, or `dns://authority/host:port` whose
            // authority (a DNS server) we do not support.
            let name = rest.strip_prefix("///").ok_or_else(|| {
                format!("{target}: expected dns:///host:port (no DNS server authority)")
            })?;
            let (host, port) = name
                .rsplit_once(':')
                .ok_or_else(|| format!("{target}: expected dns:///host:port"))?;
            let port = port
                .parse()
                .map_err(|_| format!("{target}: the port is not a number"))?;
            if host.is_empty() {
                return Err(format!("{target}: the host is empty"));
            }
            return Ok(Self::Dns {
                host: host.to_owned(),
                port,
            });
        }
        if let Some(list) = target
            .strip_prefix("ipv4:")
            .or_else(|| target.strip_prefix("ipv6:"))
        {
            let addrs = list
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<SocketAddr>()
                        .map_err(|_| format!("{target}: {a} is not an address with a port"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Self::Static(addrs));
        }
        if target.starts_with("http://") || target.starts_with("https://") {
            Endpoint::from_shared(target.to_owned()).map_err(|e| format!("{target}: {e}"))?;
            return Ok(Self::Uri(target.to_owned()));
        }
        Err(format!(
            "{target}: expected http://host:port, dns:///host:port or ipv4:addr:port,…"
        ))
    }
}

/// Resolves names to addresses; the process resolver in production, a
/// scripted one in tests.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` with `port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// How often each address of a balanced target is asked for its health.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long one health check may take before the address counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// How a balanced target is followed: resolution and health-check
/// intervals (shorter in tests).
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    /// Between resolutions of a `dns:///` name.
    pub resolve_every: Duration,
    /// Between health checks of each address.
    pub check_every: Duration,
}

impl Default for Follow {
    fn default() -> Self {
        Self {
            resolve_every: RESOLVE_EVERY,
            check_every: CHECK_EVERY,
        }
    }
}

/// A lazily connecting channel to `target`; `configure` sets timeouts and
/// the like on every endpoint. Must be called inside a tokio runtime (the
/// balancer and its follower run as tasks).
pub fn lazy_channel(
    target: &str,
    configure: impl Fn(Endpoint) -> Endpoint + Send + 'static,
) -> Result<Channel, String> {
    lazy_channel_with(target, SystemResolver, Follow::default(), configure)
}

/// [`lazy_channel`] with a chosen resolver and intervals.
pub fn lazy_channel_with(
    target: &str,
    resolver: impl Resolve,
    follow: Follow,
    configure: impl Fn(Endpoint) -> Endpoint + Send + 'static,
) -> Result<Channel, String> {
    let candidates = match Target::parse(target)? {
        Target::Uri(uri) => {
            return Endpoint::from_shared(uri)
                .map(|e| configure(e).connect_lazy())
                .map_err(|e| format!("{target}: {e}"));
        }
        Target::Static(addrs) => Candidates::Fixed(addrs.into_iter().collect()),
        Target::Dns { host, port } => Candidates::Name { host, port },
    };
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(16);
    tokio::spawn(follow_target(
        resolver, candidates, follow, changes, configure,
    ));
    Ok(channel)
}

fn endpoint_for(addr: SocketAddr) -> Result<Endpoint, String> {
    Endpoint::from_shared(format!("http://{addr}")).map_err(|e| format!("{addr}: {e}"))
}

/// Where a balanced target's addresses come from.
enum Candidates {
    Fixed(BTreeSet<SocketAddr>),
    Name { host: String, port: u16 },
}

/// Keeps the balancer's endpoints equal to the candidate addresses that
/// answer SERVING on `grpc.health.v1` (the overall service `""`), until
/// every clone of the channel is gone (the balancer drops its receiver).
///
/// This is gRPC's client-side health checking: a replica that starts
/// draining turns NOT_SERVING first and is taken out of the rotation
/// within one check, before it closes its connections, so requests stop
/// going to it instead of failing there; one that does not answer (gone,
/// or its port refused) is out the same way, and back when it answers.
/// If no candidate is healthy, every candidate stays in: failing on a
/// replica beats refusing without trying. A failed or empty resolution
/// keeps the candidates already known: a DNS hiccup must not take every
/// peer away.
async fn follow_target(
    resolver: impl Resolve,
    candidates: Candidates,
    follow: Follow,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
    configure: impl Fn(Endpoint) -> Endpoint + Send + 'static,
) {
    let mut known: BTreeSet<SocketAddr> = match &candidates {
        Candidates::Fixed(addrs) => addrs.clone(),
        Candidates::Name { .. } => BTreeSet::new(),
    };
    // One connection per address for its health checks, apart from the
    // balancer's.
    let mut checkers: BTreeMap<SocketAddr, Channel> = BTreeMap::new();
    let mut inserted: BTreeSet<SocketAddr> = BTreeSet::new();
    let mut next_resolve = tokio::time::Instant::now();
    loop {
        if let Candidates::Name { host, port } = &candidates
            && tokio::time::Instant::now() >= next_resolve
        {
            match resolver.resolve(host, *port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    let resolved: BTreeSet<_> = addrs.into_iter().collect();
                    if resolved != known {
                        tracing::info!(%host, addresses = resolved.len(), "peer addresses changed");
                    }
                    known = resolved;
                }
                Ok(_) => {
                    tracing::warn!(%host, "peer name resolved to nothing; keeping its addresses")
                }
                Err(error) => {
                    tracing::warn!(%host, %error, "peer name did not resolve; keeping its addresses");
                }
            }
            let wait = if known.is_empty() {
                RESOLVE_RETRY.min(follow.resolve_every)
            } else {
                follow.resolve_every
            };
            next_resolve = tokio::time::Instant::now() + wait;
        }
        checkers.retain(|addr, _| known.contains(addr));
        for addr in &known {
            if let (Entry::Vacant(slot), Ok(endpoint)) =
                (checkers.entry(*addr), endpoint_for(*addr))
            {
                slot.insert(endpoint.connect_timeout(CHECK_TIMEOUT).connect_lazy());
            }
        }
        let checks = checkers.iter().map(|(addr, channel)| {
            let (addr, channel) = (*addr, channel.clone());
            async move { (addr, serving(channel).await) }
        });
        let healthy: BTreeSet<SocketAddr> = futures::future::join_all(checks)
            .await
            .into_iter()
            .filter_map(|(addr, up)| up.then_some(addr))
            .collect();
        let wanted = if healthy.is_empty() {
            known.clone()
        } else {
            healthy
        };
        for gone in inserted.difference(&wanted) {
            tracing::info!(peer = %gone, "peer out of rotation");
            if changes.send(Change::Remove(*gone)).await.is_err() {
                return;
            }
        }
        for new in wanted.difference(&inserted) {
            let Ok(endpoint) = endpoint_for(*new) else {
                continue;
            };
            if changes
                .send(Change::Insert(*new, configure(endpoint)))
                .await
                .is_err()
            {
                return;
            }
        }
        inserted = wanted;
        tokio::select! {
            () = tokio::time::sleep(follow.check_every) => {}
            () = changes.closed() => return,
        }
    }
}

/// True when the server at `channel` answers SERVING for `""` in time.
async fn serving(channel: Channel) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, check).await,
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        assert_eq!(
            Target::parse("http://queue:50051"),
            Ok(Target::Uri("http://queue:50051".into()))
        );
        assert_eq!(
            Target::parse("dns:///queue-headless.madoguchi.svc:50051"),
            Ok(Target::Dns {
                host: "queue-headless.madoguchi.svc".into(),
                port: 50051
            })
        );
        assert_eq!(
            Target::parse("ipv4:127.0.0.1:1,127.0.0.2:2"),
            Ok(Target::Static(vec![
                "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")),
                "127.0.0.2:2".parse().unwrap_or_else(|e| panic!("{e}")),
            ]))
        );
        for bad in [
            "queue:50051",
            "dns://8.8.8.8/queue:50051",
            "dns:///queue",
            "dns:///:50051",
            "ipv4:127.0.0.1",
        ] {
            let error = Target::parse(bad).err();
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(bad)),
                "{bad}: {error:?}"
            );
        }
    }

    /// Answers with whatever the test last put in.
    #[derive(Clone, Default)]
    struct Scripted(std::sync::Arc<std::sync::Mutex<Vec<SocketAddr>>>);

    impl Scripted {
        fn set(&self, addrs: &[SocketAddr]) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = addrs.to_vec();
        }
    }

    impl Resolve for Scripted {
        async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
        }
    }

    /// A health server on port 0 that knows only the service `name`: a
    /// check of its name tells which server answered.
    async fn named_server(name: &'static str) -> SocketAddr {
        named_server_with_health(name).await.0
    }

    /// [`named_server`] and its health reporter.
    async fn named_server_with_health(
        name: &'static str,
    ) -> (SocketAddr, tonic_health::server::HealthReporter) {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let kept = reporter.clone();
        tokio::spawn(async move {
            let _reporter = kept;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        });
        (addr, reporter)
    }

    fn quick() -> Follow {
        Follow {
            resolve_every: Duration::from_millis(20),
            check_every: Duration::from_millis(20),
        }
    }

    /// Checks until `name` answers SERVING (`true`) or, 40 times in a row,
    /// NOT_FOUND (`false`), i.e. until the balancer's set is as expected.
    async fn settles(channel: &Channel, name: &str, reachable: bool) {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let mut client = HealthClient::new(channel.clone());
        let mut misses = 0;
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let answer = client
                    .check(HealthCheckRequest {
                        service: name.to_owned(),
                    })
                    .await;
                match (answer.is_ok(), reachable) {
                    (true, true) => return,
                    (false, false) => {
                        misses += 1;
                        if misses == 40 {
                            return;
                        }
                    }
                    (true, false) => misses = 0,
                    (false, true) => {}
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(outcome.is_ok(), "{name} never became reachable={reachable}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dns_target_follows_the_addresses_its_name_resolves_to() {
        let a = named_server("a").await;
        let b = named_server("b").await;
        let resolver = Scripted::default();
        resolver.set(&[a]);
        let channel =
            lazy_channel_with("dns:///peers.test:50051", resolver.clone(), quick(), |e| e)
                .unwrap_or_else(|e| panic!("{e}"));
        settles(&channel, "a", true).await;
        settles(&channel, "b", false).await;
        // A replica is added: requests reach it without a new channel.
        resolver.set(&[a, b]);
        settles(&channel, "b", true).await;
        settles(&channel, "a", true).await;
        // One goes away: nothing reaches it any more.
        resolver.set(&[b]);
        settles(&channel, "a", false).await;
        // A resolution that finds nothing keeps what was known.
        resolver.set(&[]);
        settles(&channel, "b", true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_static_list_reaches_every_address() {
        let a = named_server("a").await;
        let b = named_server("b").await;
        let channel =
            lazy_channel(&format!("ipv4:{a},{b}"), |e| e).unwrap_or_else(|e| panic!("{e}"));
        settles(&channel, "a", true).await;
        settles(&channel, "b", true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_draining_replica_leaves_the_rotation_while_it_still_answers() {
        let (a, health_a) = named_server_with_health("a").await;
        let b = named_server("b").await;
        let channel = lazy_channel_with(&format!("ipv4:{a},{b}"), SystemResolver, quick(), |e| e)
            .unwrap_or_else(|e| panic!("{e}"));
        settles(&channel, "a", true).await;
        settles(&channel, "b", true).await;
        // Draining: the overall status turns NOT_SERVING, the port stays up.
        health_a
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        settles(&channel, "a", false).await;
        settles(&channel, "b", true).await;
        // Back (a restart on the same address): in rotation again.
        health_a
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        settles(&channel, "a", true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_no_replica_is_healthy_every_one_stays_in() {
        let (a, health_a) = named_server_with_health("a").await;
        health_a
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let channel = lazy_channel_with(&format!("ipv4:{a}"), SystemResolver, quick(), |e| e)
            .unwrap_or_else(|e| panic!("{e}"));
        settles(&channel, "a", true).await;
    }
}
