//! The signage service: the public pages of the counter floor — the call
//! display for waiting-area TVs, the ticket status page residents open from
//! the QR code on their ticket, and the purpose-based floor guide for the
//! touch panel — with their live feed, and a small gRPC API for the gateway
//! (board routing, status URLs) and integrators (guide search).
//!
//! - [`guide`]: the signage file (boards, floor map, purposes, notices,
//!   ads), its checks and the purpose search (no I/O);
//! - [`status_url`]: unguessable ticket status URLs (HMAC);
//! - [`views`]: queue messages to page views and announcements (no I/O);
//! - [`queue_client`]: the queue client (gRPC, `display` role);
//! - [`hub`]: one `WatchOffice` follower per office, fanned out to every
//!   page (ring + broadcast, resume, resynchronisation of slow pages);
//! - [`feed`]: the pages' server-sent event feeds, served from the hub;
//! - [`http`]: the pages, assets and JSON/SSE endpoints under `/signage/`;
//! - [`grpc`]: the tonic adapter of `SignageService`;
//! - `SignageApp`: wiring.

pub mod feed;
pub mod grpc;
pub mod guide;
pub mod http;
pub mod hub;
pub mod queue_client;
pub mod status_url;
pub mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::config::{ServerConfig, TokenConfig};
use madoguchi_platform::server::Draining;
use madoguchi_platform::site::{LoadedSite, Site};
use madoguchi_proto::signage::v1::signage_service_server::SignageServiceServer;
use secrecy::SecretString;
use tonic::service::Routes;

use crate::grpc::SignageGrpc;
use crate::guide::{Guide, GuideError};
use crate::hub::{FeedCounts, FeedLimits, Hubs};
use crate::status_url::StatusUrlKey;
use crate::views::Floor;

/// Health-check name of the signage gRPC service.
pub const SERVICE_NAME: &str = "madoguchi.signage.v1.SignageService";

/// The path prefix of every public page and endpoint. The server's auth
/// layer lets it through without a token (see `ServerOptions`).
pub const PUBLIC_PREFIX: &str = "/signage/";

/// Why the signage service could not start.
#[derive(Debug, thiserror::Error)]
pub enum SignageError {
    /// The signage file is missing or wrong.
    #[error(transparent)]
    Guide(#[from] GuideError),
    /// A setting is wrong.
    #[error("signage configuration: {0}")]
    Config(String),
    /// The generated secret could not be read or written.
    #[error("signage secret: {0}")]
    Secret(#[from] std::io::Error),
}

/// Everything the service needs, resolved from configuration.
#[derive(Debug)]
pub struct SignageOptions {
    /// The queue's URL, e.g. `http://127.0.0.1:50051`.
    pub queue_url: String,
    /// A display-role token for the queue.
    pub queue_token: SecretString,
    /// Base URL of the pages as residents reach them (no trailing slash).
    pub public_url: String,
    /// The status URL key.
    pub key: StatusUrlKey,
    /// The checked signage file (empty when the site has none).
    pub guide: Guide,
    /// Sizes of the live feeds' fan-out.
    pub feed: FeedLimits,
}

impl SignageOptions {
    /// Resolves the `[signage]` settings for a server listening on
    /// `listen_addr` with `tokens`: unset values default to this process
    /// (queue URL, display token, public URL) and to files beside the site
    /// and in the data directory (signage file, secret).
    pub fn from_config(
        config: &ServerConfig,
        loaded: &LoadedSite,
        tokens: &[TokenConfig],
        listen_addr: SocketAddr,
    ) -> Result<Self, SignageError> {
        let site = &loaded.site;
        let settings = &config.signage;
        let own_url = format!("http://{listen_addr}");
        let queue_token = match &settings.queue_token {
            Some(token) => token.clone(),
            None => tokens
                .iter()
                .find(|t| t.role == Role::Display && t.municipality == site.municipality.code)
                .map(|t| t.token.clone())
                .ok_or_else(|| {
                    SignageError::Config(
                        "no display-role token for the site's municipality; set signage.queue_token"
                            .into(),
                    )
                })?,
        };
        let key = match &settings.status_url_secret {
            Some(secret) => StatusUrlKey::new(secret.clone()).map_err(SignageError::Config)?,
            None => StatusUrlKey::load_or_create(&config.data_dir)?,
        };
        let guide_path: Option<PathBuf> = match &settings.file {
            Some(path) => Some(path.clone()),
            None => {
                let beside = loaded.dir().join("signage.toml");
                beside.exists().then_some(beside)
            }
        };
        let guide = match guide_path {
            Some(path) => Guide::load(&path, site)?,
            None => {
                tracing::warn!(
                    "no signage file beside the site file: the floor guide and board routing are empty"
                );
                Guide::default()
            }
        };
        Ok(Self {
            queue_url: settings
                .queue_url
                .clone()
                .unwrap_or_else(|| own_url.clone()),
            queue_token,
            public_url: settings
                .public_url
                .clone()
                .unwrap_or(own_url)
                .trim_end_matches('/')
                .to_owned(),
            key,
            guide,
            feed: FeedLimits::default(),
        })
    }
}

/// A prepared signage service.
#[derive(Debug, Clone)]
pub struct SignageApp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    municipality: String,
    floors: HashMap<String, Floor>,
    guide: Guide,
    key: StatusUrlKey,
    hubs: Arc<Hubs>,
    public_url: String,
    clock: SharedClock,
    draining: Draining,
}

impl SignageApp {
    /// Prepares the service; it connects to the queue lazily, so the queue
    /// may start after it (one process) or elsewhere (cluster).
    pub fn new(
        site: &Site,
        options: SignageOptions,
        clock: SharedClock,
        draining: Draining,
    ) -> Result<Self, SignageError> {
        let queue = queue_client::connect(&options.queue_url, &options.queue_token)
            .map_err(SignageError::Config)?;
        let municipality = site.municipality.code.as_str().to_owned();
        let floors = site
            .offices
            .iter()
            .map(|o| (o.id.clone(), Floor::new(&municipality, o)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                municipality,
                floors,
                guide: options.guide,
                key: options.key,
                hubs: Hubs::new(queue, options.feed, draining.clone()),
                public_url: options.public_url,
                clock,
                draining,
            }),
        })
    }

    /// The gRPC service.
    pub fn service(&self) -> SignageServiceServer<SignageGrpc> {
        SignageServiceServer::new(SignageGrpc::new(self.clone()))
    }

    /// `routes` with the public pages under [`PUBLIC_PREFIX`] added.
    pub fn add_pages(&self, routes: Routes) -> Routes {
        Routes::from(routes.into_axum_router().merge(http::router(self.clone())))
    }

    /// The path of a ticket's status page, or `None` when the ticket name
    /// is not one of this site's offices.
    pub fn status_path(&self, ticket_name: &str) -> Option<String> {
        let (office, ticket) = parse_ticket_name(&self.inner.municipality, ticket_name)?;
        self.inner.floors.get(office)?;
        Some(format!(
            "{PUBLIC_PREFIX}t/{office}/{ticket}/{}",
            self.inner.key.token(ticket_name)
        ))
    }

    /// The absolute URL of a ticket's status page.
    pub fn status_url(&self, ticket_name: &str) -> Option<String> {
        self.status_path(ticket_name)
            .map(|path| format!("{}{path}", self.inner.public_url))
    }

    /// Counters of the live feeds (queue streams opened, catch-ups,
    /// resynchronisations, status reads).
    pub fn feed_counts(&self) -> FeedCounts {
        self.inner.hubs.counts()
    }

    /// Registers `madoguchi_signage_displays_connected{office}` (pages on
    /// each office's live feed, read at each scrape; zero for an office
    /// without a page) into the server's `metrics`.
    pub fn register_metrics(&self, metrics: &madoguchi_platform::metrics::Metrics) {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let gauge: Family<[(&'static str, String); 1], Gauge> = Family::default();
        metrics.register(
            "madoguchi_signage_displays_connected",
            "Display pages connected to the office's live feed",
            gauge.clone(),
        );
        let hubs = self.inner.hubs.clone();
        // Every office of the site reads, zero without a page.
        let offices: Vec<String> = self
            .inner
            .floors
            .values()
            .map(|floor| floor.office_name.clone())
            .collect();
        metrics.on_scrape(move || {
            let mut now: HashMap<String, u64> =
                offices.iter().map(|office| (office.clone(), 0)).collect();
            now.extend(hubs.displays_connected());
            for (office, count) in now {
                gauge
                    .get_or_create(&[("office", office)])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            std::future::ready(())
        });
    }

    fn floor(&self, office: &str) -> Option<&Floor> {
        self.inner.floors.get(office)
    }

    fn ticket_name(&self, office: &str, ticket: &str) -> String {
        format!(
            "municipalities/{}/offices/{office}/tickets/{ticket}",
            self.inner.municipality
        )
    }
}

/// Splits `municipalities/{m}/offices/{o}/tickets/{t}` of municipality `m`
/// into `(o, t)`.
fn parse_ticket_name<'a>(municipality: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix("municipalities/")?;
    let (m, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("offices/")?;
    let (office, rest) = rest.split_once('/')?;
    let ticket = rest.strip_prefix("tickets/")?;
    let valid = |s: &str| madoguchi_platform::site::is_resource_id(s);
    (m == municipality && valid(office) && valid(ticket)).then_some((office, ticket))
}

#[cfg(test)]
mod tests {
    use super::parse_ticket_name;

    #[test]
    fn ticket_names() {
        assert_eq!(
            parse_ticket_name("032034", "municipalities/032034/offices/main/tickets/abc-1"),
            Some(("main", "abc-1"))
        );
        for bad in [
            "municipalities/131016/offices/main/tickets/abc",
            "municipalities/032034/offices/main/tickets/",
            "municipalities/032034/offices/main/tickets/a/b",
            "municipalities/032034/offices/Main/tickets/abc",
            "offices/main/tickets/abc",
        ] {
            assert_eq!(parse_ticket_name("032034", bad), None, "{bad}");
        }
    }
}

/// One match of a floor-guide search, in the requested language.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PurposeMatch {
    /// Purpose id.
    pub id: String,
    /// The purpose as residents say it.
    pub title: String,
    /// What happens at the counter.
    pub description: String,
    /// Documents to bring.
    pub documents: Vec<String>,
    /// Category id.
    pub category: String,
    /// Category prefix letter (the ticket to take).
    pub prefix: String,
    /// Category name in the requested language (Japanese for zh/ko/ja-easy
    /// when the site has no translation: the site names only ja and en).
    pub category_name: String,
    /// Counter number.
    pub counter: String,
    /// Floor of the counter.
    pub floor: i32,
    /// Category colour.
    pub colour: String,
    /// Match score (see `guide::SearchHit`).
    pub score: u32,
}

impl SignageApp {
    /// Searches the floor guide of `office`. `None` when the office is not
    /// one of this site's.
    pub fn search(
        &self,
        office: &str,
        query: &str,
        language: guide::Language,
    ) -> Option<Vec<PurposeMatch>> {
        let floor = self.floor(office)?;
        let Some(office_guide) = self.inner.guide.office(office) else {
            return Some(Vec::new());
        };
        let matches = office_guide
            .search(query)
            .into_iter()
            .take(8)
            .map(|hit| {
                let p = hit.purpose;
                let category = floor.category(&p.category);
                let counter = floor.counter(&p.counter);
                PurposeMatch {
                    id: p.id.clone(),
                    title: p.title.get(language).clone(),
                    description: p.description.get(language).clone(),
                    documents: p.documents.get(language).clone(),
                    category: p.category.clone(),
                    prefix: category.map(|c| c.prefix.clone()).unwrap_or_default(),
                    category_name: category
                        .map(|c| match language {
                            guide::Language::English => c.name_en.clone(),
                            _ => c.name_ja.clone(),
                        })
                        .unwrap_or_default(),
                    counter: counter
                        .map(|c| c.display_number.clone())
                        .unwrap_or_default(),
                    floor: counter.map(|c| c.floor).unwrap_or(1),
                    colour: category.map(|c| c.colour.clone()).unwrap_or_default(),
                    score: hit.score,
                }
            })
            .collect();
        Some(matches)
    }
}
