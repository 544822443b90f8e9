//! The signage service: the public pages of the counter floor — the call
//! display for waiting-area TVs, the ticket status page residents open from
//! the QR code on their ticket, and the purpose-based floor guide for the
//! touch panel — with their live feed, and a small gRPC API for the gateway
//! (board routing, status URLs) and integrators (guide search).
//!
//! One service serves every municipality of the server's sites: each has
//! its floors, its signage file and its own followers of the queue, which
//! read with that municipality's display token, and its pages live under
//! `/signage/municipalities/{code}/` (see [`http`]).
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

/// One served site's part of the options: its floors, the display token
/// its pages follow the queue with, and its signage file.
#[derive(Debug)]
pub struct SiteSignage {
    /// The site (one municipality).
    pub site: Site,
    /// A display-role token of the site's municipality for the queue.
    pub queue_token: SecretString,
    /// The checked signage file (empty when the site has none).
    pub guide: Guide,
}

/// Everything the service needs, resolved from configuration.
#[derive(Debug)]
pub struct SignageOptions {
    /// The queue's URL, e.g. `http://127.0.0.1:50051`.
    pub queue_url: String,
    /// Base URL of the pages as residents reach them (no trailing slash).
    pub public_url: String,
    /// The status URL key (one for every site: a token is the MAC of the
    /// ticket's full name, municipality included).
    pub key: StatusUrlKey,
    /// Sizes of the live feeds' fan-out.
    pub feed: FeedLimits,
    /// The served sites, one per municipality; the first also answers the
    /// unscoped paths (`/signage/offices/…`, see [`http`]).
    pub sites: Vec<SiteSignage>,
}

impl SignageOptions {
    /// Resolves the `[signage]` settings for a server serving `sites`,
    /// listening on `listen_addr` with `tokens`: unset values default to
    /// this process (queue URL, public URL), to each site's display-role
    /// token among `tokens`, and to files beside each site and in the data
    /// directory (signage file, secret). `signage.queue_token` and
    /// `signage.file` name one municipality's token and file, so they are
    /// refused when several sites are served.
    pub fn from_config(
        config: &ServerConfig,
        sites: &[LoadedSite],
        tokens: &[TokenConfig],
        listen_addr: SocketAddr,
    ) -> Result<Self, SignageError> {
        let settings = &config.signage;
        if sites.is_empty() {
            return Err(SignageError::Config("no site to serve".into()));
        }
        if sites.len() > 1 {
            let single = [
                (
                    settings.queue_token.is_some(),
                    "signage.queue_token (MADOGUCHI_SIGNAGE_QUEUE_TOKEN)",
                ),
                (settings.file.is_some(), "signage.file"),
            ];
            if let Some((_, setting)) = single.iter().find(|(set, _)| *set) {
                return Err(SignageError::Config(format!(
                    "{setting} overrides a single site's, but {} sites are served; leave it \
                     unset so each site uses its municipality's display token and the \
                     signage.toml beside its site file",
                    sites.len()
                )));
            }
        }
        let own_url = format!("http://{listen_addr}");
        let key = match &settings.status_url_secret {
            Some(secret) => StatusUrlKey::new(secret.clone()).map_err(SignageError::Config)?,
            None => StatusUrlKey::load_or_create(&config.data_dir)?,
        };
        let mut served = Vec::with_capacity(sites.len());
        for loaded in sites {
            let site = &loaded.site;
            let code = &site.municipality.code;
            let queue_token = match &settings.queue_token {
                Some(token) => token.clone(),
                None => tokens
                    .iter()
                    .find(|t| t.role == Role::Display && &t.municipality == code)
                    .map(|t| t.token.clone())
                    .ok_or_else(|| {
                        SignageError::Config(format!(
                            "no display-role token for municipality {code} ({}); add one to the \
                             tokens or the credentials file",
                            site.municipality.name_ja
                        ))
                    })?,
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
                        municipality = %code,
                        "no signage file beside the site file: the floor guide and board routing are empty"
                    );
                    Guide::default()
                }
            };
            served.push(SiteSignage {
                site: site.clone(),
                queue_token,
                guide,
            });
        }
        Ok(Self {
            queue_url: settings
                .queue_url
                .clone()
                .unwrap_or_else(|| own_url.clone()),
            public_url: settings
                .public_url
                .clone()
                .unwrap_or(own_url)
                .trim_end_matches('/')
                .to_owned(),
            key,
            feed: FeedLimits::default(),
            sites: served,
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
    /// The served municipalities, in the order of the site files.
    municipalities: Vec<Municipality>,
    key: StatusUrlKey,
    public_url: String,
    clock: SharedClock,
    draining: Draining,
}

/// What the service holds of one municipality. Nothing is shared between
/// municipalities but the status-URL key: each follows the queue with its
/// own display token (the queue lets a display read only its own
/// municipality), through followers of its own.
#[derive(Debug)]
struct Municipality {
    code: String,
    name_ja: String,
    floors: HashMap<String, Floor>,
    guide: Guide,
    hubs: Arc<Hubs>,
}

impl SignageApp {
    /// Prepares the service; it connects to the queue lazily, so the queue
    /// may start after it (one process) or elsewhere (cluster).
    pub fn new(
        options: SignageOptions,
        clock: SharedClock,
        draining: Draining,
    ) -> Result<Self, SignageError> {
        if options.sites.is_empty() {
            return Err(SignageError::Config("no site to serve".into()));
        }
        let mut municipalities = Vec::with_capacity(options.sites.len());
        for served in options.sites {
            let queue = queue_client::connect(&options.queue_url, &served.queue_token)
                .map_err(SignageError::Config)?;
            let code = served.site.municipality.code.as_str().to_owned();
            let floors = served
                .site
                .offices
                .iter()
                .map(|o| (o.id.clone(), Floor::new(&code, o)))
                .collect();
            municipalities.push(Municipality {
                code,
                name_ja: served.site.municipality.name_ja.clone(),
                floors,
                guide: served.guide,
                hubs: Hubs::new(queue, options.feed, draining.clone()),
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                municipalities,
                key: options.key,
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

    /// The path of a ticket's status page,
    /// `/signage/municipalities/{code}/t/{office}/{ticket}/{token}`, or
    /// `None` when the ticket name is not of an office this service serves.
    pub fn status_path(&self, ticket_name: &str) -> Option<String> {
        let (code, office, ticket) = parse_ticket_name(ticket_name)?;
        self.municipality(Some(code))?.floors.get(office)?;
        Some(format!(
            "{PUBLIC_PREFIX}municipalities/{code}/t/{office}/{ticket}/{}",
            self.inner.key.token(ticket_name)
        ))
    }

    /// The absolute URL of a ticket's status page.
    pub fn status_url(&self, ticket_name: &str) -> Option<String> {
        self.status_path(ticket_name)
            .map(|path| format!("{}{path}", self.inner.public_url))
    }

    /// Counters of the live feeds (queue streams opened, catch-ups,
    /// resynchronisations, status reads), summed over the municipalities.
    pub fn feed_counts(&self) -> FeedCounts {
        self.inner
            .municipalities
            .iter()
            .map(|m| m.hubs.counts())
            .fold(FeedCounts::default(), |sum, c| FeedCounts {
                office_streams: sum.office_streams + c.office_streams,
                catch_up_streams: sum.catch_up_streams + c.catch_up_streams,
                resyncs: sum.resyncs + c.resyncs,
                status_reads: sum.status_reads + c.status_reads,
                live_offices: sum.live_offices + c.live_offices,
            })
    }

    /// Registers `madoguchi_signage_displays_connected{office}` (pages on
    /// each office's live feed, read at each scrape; zero for an office
    /// without a page; `office` is the full resource name, so offices of
    /// different municipalities never share a series) into the server's
    /// `metrics`.
    pub fn register_metrics(&self, metrics: &madoguchi_platform::metrics::Metrics) {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let gauge: Family<[(&'static str, String); 1], Gauge> = Family::default();
        metrics.register(
            "madoguchi_signage_displays_connected",
            "Display pages connected to the office's live feed",
            gauge.clone(),
        );
        let hubs: Vec<Arc<Hubs>> = self
            .inner
            .municipalities
            .iter()
            .map(|m| m.hubs.clone())
            .collect();
        // Every office of every site reads, zero without a page.
        let offices: Vec<String> = self
            .inner
            .municipalities
            .iter()
            .flat_map(|m| m.floors.values())
            .map(|floor| floor.office_name.clone())
            .collect();
        metrics.on_scrape(move || {
            let mut now: HashMap<String, u64> =
                offices.iter().map(|office| (office.clone(), 0)).collect();
            for hubs in &hubs {
                now.extend(hubs.displays_connected());
            }
            for (office, count) in now {
                gauge
                    .get_or_create(&[("office", office)])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            std::future::ready(())
        });
    }

    /// The served municipality `code`, or with `None` the first served
    /// (the one the unscoped paths belong to).
    fn municipality(&self, code: Option<&str>) -> Option<&Municipality> {
        match code {
            None => self.inner.municipalities.first(),
            Some(code) => self.inner.municipalities.iter().find(|m| m.code == code),
        }
    }

    /// The office followers of municipality `code` (`None`: the first).
    fn hubs(&self, code: Option<&str>) -> Option<Arc<Hubs>> {
        self.municipality(code).map(|m| m.hubs.clone())
    }

    fn floor(&self, code: Option<&str>, office: &str) -> Option<&Floor> {
        self.municipality(code)?.floors.get(office)
    }
}

/// Splits `municipalities/{m}/offices/{o}/tickets/{t}` into `(m, o, t)`.
fn parse_ticket_name(name: &str) -> Option<(&str, &str, &str)> {
    let rest = name.strip_prefix("municipalities/")?;
    let (m, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("offices/")?;
    let (office, rest) = rest.split_once('/')?;
    let ticket = rest.strip_prefix("tickets/")?;
    let valid = |s: &str| madoguchi_platform::site::is_resource_id(s);
    let code = m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit());
    (code && valid(office) && valid(ticket)).then_some((m, office, ticket))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use madoguchi_platform::clock::ManualClock;
    use secrecy::SecretString;

    use super::*;

    fn two_cities() -> SignageApp {
        let sites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites");
        let served = ["ofunato", "rikuzentakata"]
            .into_iter()
            .map(|name| SiteSignage {
                site: Site::load(&sites.join(name).join("site.toml")).unwrap(),
                queue_token: SecretString::from(format!("display-{name}")),
                guide: Guide::default(),
            })
            .collect();
        let options = SignageOptions {
            queue_url: "http://127.0.0.1:1".into(),
            public_url: "https://madoguchi.example".into(),
            key: StatusUrlKey::new(SecretString::from("k".repeat(40))).unwrap(),
            feed: FeedLimits::default(),
            sites: served,
        };
        let clock = Arc::new(ManualClock::new(chrono::DateTime::UNIX_EPOCH));
        let (_drain, draining) = madoguchi_platform::server::drain_channel();
        SignageApp::new(options, clock, draining).unwrap()
    }

    #[test]
    fn each_site_takes_its_own_display_token_and_single_site_overrides_are_refused() {
        use madoguchi_platform::types::MunicipalityCode;
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let sites_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites");
        let loaded: Vec<LoadedSite> = ["ofunato", "rikuzentakata"]
            .into_iter()
            .map(|name| {
                let file = sites_dir.join(name).join("site.toml");
                LoadedSite {
                    site: Site::load(&file).unwrap(),
                    file,
                }
            })
            .collect();
        let token = |role: Role, code: &str| TokenConfig {
            token: SecretString::from(format!("{role}-{code}")),
            subject: "test".into(),
            role,
            municipality: MunicipalityCode::parse(code).unwrap(),
        };
        let tokens = [
            token(Role::Staff, "032107"),
            token(Role::Display, "032107"),
            token(Role::Display, "032034"),
        ];
        let config = ServerConfig {
            data_dir: dir.path().to_owned(),
            ..ServerConfig::default()
        };
        let addr: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let options = SignageOptions::from_config(&config, &loaded, &tokens, addr).unwrap();
        let served: Vec<(&str, &str)> = options
            .sites
            .iter()
            .map(|s| {
                (
                    s.site.municipality.code.as_str(),
                    s.queue_token.expose_secret(),
                )
            })
            .collect();
        assert_eq!(
            served,
            [("032034", "display-032034"), ("032107", "display-032107")]
        );
        // Each site's own signage.toml, read beside its site file.
        for site in &options.sites {
            assert!(site.guide.office("main").is_some());
        }

        let error = SignageOptions::from_config(&config, &loaded, &tokens[..2], addr)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no display-role token for municipality 032034"),
            "{error}"
        );

        let mut overridden = config.clone();
        overridden.signage.queue_token = Some(SecretString::from("one-city-only"));
        let error = SignageOptions::from_config(&overridden, &loaded, &tokens, addr)
            .unwrap_err()
            .to_string();
        assert!(error.contains("signage.queue_token"), "{error}");
        // With one site it is the override it always was.
        let one = SignageOptions::from_config(&overridden, &loaded[1..], &tokens, addr).unwrap();
        assert_eq!(one.sites[0].queue_token.expose_secret(), "one-city-only");
    }

    #[tokio::test]
    async fn status_paths_are_scoped_by_the_ticket_s_municipality() {
        let app = two_cities();
        let ticket = "municipalities/032107/offices/main/tickets/t-1";
        let path = app.status_path(ticket).unwrap();
        let token = app.inner.key.token(ticket);
        assert_eq!(
            path,
            format!("/signage/municipalities/032107/t/main/t-1/{token}")
        );
        assert_eq!(
            app.status_url(ticket).unwrap(),
            format!("https://madoguchi.example{path}")
        );
        // The same ticket id in the other city is another ticket.
        let other = app
            .status_path("municipalities/032034/offices/main/tickets/t-1")
            .unwrap();
        assert!(other.starts_with("/signage/municipalities/032034/t/main/t-1/"));
        assert_ne!(other.rsplit('/').next(), Some(token.as_str()));
        // An unserved municipality or office has no page.
        for unserved in [
            "municipalities/131016/offices/main/tickets/t-1",
            "municipalities/032107/offices/annex/tickets/t-1",
        ] {
            assert_eq!(app.status_path(unserved), None, "{unserved}");
        }
        // Unscoped paths belong to the first site served.
        assert_eq!(
            app.floor(None, "main").unwrap().office_name,
            "municipalities/032034/offices/main"
        );
        assert_eq!(
            app.floor(Some("032107"), "main").unwrap().office_name,
            "municipalities/032107/offices/main"
        );
    }

    #[test]
    fn ticket_names() {
        assert_eq!(
            parse_ticket_name("municipalities/032034/offices/main/tickets/abc-1"),
            Some(("032034", "main", "abc-1"))
        );
        assert_eq!(
            parse_ticket_name("municipalities/032107/offices/main/tickets/abc-1"),
            Some(("032107", "main", "abc-1"))
        );
        for bad in [
            "municipalities/13101/offices/main/tickets/abc",
            "municipalities/13101x/offices/main/tickets/abc",
            "municipalities/032034/offices/main/tickets/",
            "municipalities/032034/offices/main/tickets/a/b",
            "municipalities/032034/offices/Main/tickets/abc",
            "offices/main/tickets/abc",
        ] {
            assert_eq!(parse_ticket_name(bad), None, "{bad}");
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
    /// Searches the floor guide of `office` of `municipality` (`None`: the
    /// first served). `None` when the office is not one this service serves.
    pub fn search(
        &self,
        municipality: Option<&str>,
        office: &str,
        query: &str,
        language: guide::Language,
    ) -> Option<Vec<PurposeMatch>> {
        let served = self.municipality(municipality)?;
        let floor = served.floors.get(office)?;
        let Some(office_guide) = served.guide.office(office) else {
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
