//! The public HTTP surface under `/signage/`: three pages, their assets
//! (compiled into the binary, no build step), JSON endpoints for the guide
//! and the SSE feeds (see [`crate::feed`]). Everything here is public —
//! residents and TVs have no credentials — so nothing here reveals more
//! than the floor itself shows; the ticket page is reachable only with its
//! HMAC token.
//!
//! Every page and endpoint of a municipality lives under its scope,
//! `/signage/municipalities/{code}` (written `{scope}` below): one server
//! may serve several municipalities whose offices share ids (`main`). The
//! first municipality served also answers with the scope left out
//! (`/signage/offices/main/display`), so a single-site deployment's
//! bookmarks, TVs and printed tickets keep working. A status page checks
//! its token against the ticket name of the scope it was opened under, so
//! one municipality's ticket URL opened under another's scope (or the
//! unscoped one, when it is not the first's) is an unknown ticket: 404.
//!
//! | path | what |
//! | --- | --- |
//! | `/signage/` | index of every municipality's office pages |
//! | `{scope}/offices/{office}/display` | call display (TV, 1920×1080) |
//! | `{scope}/offices/{office}/guide` | floor guide (touch panel) |
//! | `{scope}/t/{office}/{ticket}/{token}` | ticket status page (phone) |
//! | `{scope}/api/offices/{office}/feed` | office SSE feed (`Last-Event-ID` or `?after=`) |
//! | `{scope}/api/offices/{office}/guide?lang=` | floor map, purposes' ids, notices, ads |
//! | `{scope}/api/offices/{office}/guide/search?q=&lang=` | purpose search |
//! | `{scope}/api/t/{office}/{ticket}/{token}/feed` | ticket SSE feed |
//! | `/signage/static/{file}` | the pages' scripts and style sheets |

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::SignageApp;
use crate::guide::{self, Language};
use crate::status_url::TOKEN_CHARS;
use crate::views::Floor;

const DISPLAY_HTML: &str = include_str!("../web/display.html");
const GUIDE_HTML: &str = include_str!("../web/guide.html");
const TICKET_HTML: &str = include_str!("../web/ticket.html");
const COMMON_CSS: &str = include_str!("../web/common.css");
const DISPLAY_CSS: &str = include_str!("../web/display.css");
const GUIDE_CSS: &str = include_str!("../web/guide.css");
const TICKET_CSS: &str = include_str!("../web/ticket.css");
const COMMON_JS: &str = include_str!("../web/common.js");
const DISPLAY_JS: &str = include_str!("../web/display.js");
const GUIDE_JS: &str = include_str!("../web/guide.js");
const TICKET_JS: &str = include_str!("../web/ticket.js");

/// The router of the public pages.
pub fn router(app: SignageApp) -> Router {
    let router = Router::new()
        .route("/signage/", get(index))
        .route("/signage/static/{file}", get(asset));
    scoped(
        scoped(router, "/signage/municipalities/{municipality}"),
        "/signage",
    )
    .layer(axum::middleware::map_response(protective_headers))
    .with_state(app)
}

/// `router` with a municipality's pages and endpoints under `scope`.
fn scoped(router: Router<SignageApp>, scope: &str) -> Router<SignageApp> {
    router
        .route(
            &format!("{scope}/offices/{{office}}/display"),
            get(display_page),
        )
        .route(
            &format!("{scope}/offices/{{office}}/guide"),
            get(guide_page),
        )
        .route(
            &format!("{scope}/t/{{office}}/{{ticket}}/{{token}}"),
            get(ticket_page),
        )
        .route(
            &format!("{scope}/api/offices/{{office}}/feed"),
            get(office_feed),
        )
        .route(
            &format!("{scope}/api/offices/{{office}}/guide"),
            get(guide_data),
        )
        .route(
            &format!("{scope}/api/offices/{{office}}/guide/search"),
            get(guide_search),
        )
        .route(
            &format!("{scope}/api/t/{{office}}/{{ticket}}/{{token}}/feed"),
            get(ticket_feed),
        )
}

/// The path of an office's page or endpoint; `municipality` is absent on
/// the unscoped paths (the first municipality served).
#[derive(Debug, Deserialize)]
struct OfficePath {
    #[serde(default)]
    municipality: Option<String>,
    office: String,
}

/// The path of a ticket's status page or feed.
#[derive(Debug, Deserialize)]
struct TicketPath {
    #[serde(default)]
    municipality: Option<String>,
    office: String,
    ticket: String,
    token: String,
}

/// What the pages may load: their own scripts, style sheets and images,
/// and their own feeds and JSON (`connect-src`). No inline script, no
/// `eval`; style attributes are set through the CSSOM
/// (`element.style`), which the policy does not govern, so no inline style
/// either. Never framed (a display or status page inside another site's
/// frame could be dressed up as something else); no `<base>`, no form
/// submission (the guide's search form is handled by its script).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Headers on every public response, pages, assets, JSON and feeds alike:
/// the policy above, no MIME sniffing, and no `Referer` — the status
/// page's URL holds its token, which must not leak to any link or
/// resource it could ever open.
async fn protective_headers(mut response: Response) -> Response {
    madoguchi_platform::plain_http::protect(response.headers_mut(), CONTENT_SECURITY_POLICY);
    response
}

/// A failed public request: status and a lowercase message, as JSON.
#[derive(Debug)]
enum ApiError {
    NotFound(&'static str),
    BadRequest(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

fn floor<'a>(app: &'a SignageApp, path: &OfficePath) -> Result<&'a Floor, ApiError> {
    app.floor(path.municipality.as_deref(), &path.office)
        .ok_or(ApiError::NotFound("office"))
}

fn page(html: &'static str) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        Html(html),
    )
        .into_response()
}

async fn index(State(app): State<SignageApp>) -> Html<String> {
    let mut sections = String::new();
    for municipality in &app.inner.municipalities {
        let code = &municipality.code;
        let mut offices: Vec<_> = municipality.floors.values().collect();
        offices.sort_by(|a, b| a.office_id.cmp(&b.office_id));
        let mut links = String::new();
        for floor in offices {
            let id = &floor.office_id;
            links.push_str(&format!(
                "<li>{name} — <a href=\"/signage/municipalities/{code}/offices/{id}/display\">\
                 呼び出し表示 Call display</a> · <a href=\"/signage/municipalities/{code}/offices/{id}/guide\">\
                 庁舎案内 Floor guide</a></li>",
                name = escape(&floor.name_ja),
            ));
        }
        sections.push_str(&format!(
            "<h2>{name} ({code})</h2><ul>{links}</ul>",
            name = escape(&municipality.name_ja),
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\"><title>Madoguchi signage</title>\
         <link rel=\"stylesheet\" href=\"/signage/static/common.css\"><body class=\"index\">\
         <h1>Madoguchi signage</h1>{sections}</body></html>"
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn display_page(
    State(app): State<SignageApp>,
    Path(path): Path<OfficePath>,
) -> Result<Response, ApiError> {
    floor(&app, &path)?;
    Ok(page(DISPLAY_HTML))
}

async fn guide_page(
    State(app): State<SignageApp>,
    Path(path): Path<OfficePath>,
) -> Result<Response, ApiError> {
    floor(&app, &path)?;
    Ok(page(GUIDE_HTML))
}

/// Checks a status-page token against the ticket name of the path's own
/// municipality and office; a wrong one is indistinguishable from an
/// unknown ticket. Returns the ticket name and its office's floor.
fn verified_ticket<'a>(
    app: &'a SignageApp,
    path: &TicketPath,
) -> Result<(String, &'a Floor), ApiError> {
    let floor = app
        .floor(path.municipality.as_deref(), &path.office)
        .ok_or(ApiError::NotFound("office"))?;
    // The floor's office name carries the municipality the path resolved
    // to (the first served when the path has none).
    let name = format!("{}/tickets/{}", floor.office_name, path.ticket);
    let plausible =
        path.token.len() == TOKEN_CHARS && madoguchi_platform::site::is_resource_id(&path.ticket);
    if plausible && app.inner.key.verify(&name, &path.token) {
        Ok((name, floor))
    } else {
        Err(ApiError::NotFound("ticket"))
    }
}

async fn ticket_page(
    State(app): State<SignageApp>,
    Path(path): Path<TicketPath>,
) -> Result<Response, ApiError> {
    verified_ticket(&app, &path)?;
    Ok(page(TICKET_HTML))
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, mime) = match file.as_str() {
        "common.css" => (COMMON_CSS, "text/css; charset=utf-8"),
        "display.css" => (DISPLAY_CSS, "text/css; charset=utf-8"),
        "guide.css" => (GUIDE_CSS, "text/css; charset=utf-8"),
        "ticket.css" => (TICKET_CSS, "text/css; charset=utf-8"),
        "common.js" => (COMMON_JS, "text/javascript; charset=utf-8"),
        "display.js" => (DISPLAY_JS, "text/javascript; charset=utf-8"),
        "guide.js" => (GUIDE_JS, "text/javascript; charset=utf-8"),
        "ticket.js" => (TICKET_JS, "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::NotFound("file")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

/// Query of the office feed.
#[derive(Debug, Deserialize)]
struct FeedQuery {
    /// Resume after this sequence (when the page opens a new EventSource
    /// and so cannot send `Last-Event-ID`).
    after: Option<u64>,
}

async fn office_feed(
    State(app): State<SignageApp>,
    Path(path): Path<OfficePath>,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let floor = floor(&app, &path)?;
    let hubs = app
        .hubs(path.municipality.as_deref())
        .ok_or(ApiError::NotFound("office"))?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadRequest("last-event-id must be a sequence".into()))?,
        ),
        None => None,
    };
    // The browser's own Last-Event-ID wins over a query the page wrote
    // earlier: it is the newest event the page actually received.
    let after = last_event_id.or(query.after);
    Ok(crate::feed::office_feed(
        hubs,
        floor,
        after,
        app.inner.draining.clone(),
    ))
}

async fn ticket_feed(
    State(app): State<SignageApp>,
    Path(path): Path<TicketPath>,
) -> Result<Response, ApiError> {
    let (name, floor) = verified_ticket(&app, &path)?;
    Ok(crate::feed::ticket_feed(
        app.hubs(path.municipality.as_deref())
            .ok_or(ApiError::NotFound("office"))?,
        floor,
        name,
        app.inner.draining.clone(),
    ))
}

/// Query of the guide endpoints.
#[derive(Debug, Deserialize)]
struct GuideQuery {
    /// Language code; empty means Japanese.
    #[serde(default)]
    lang: String,
    /// Search text.
    #[serde(default)]
    q: String,
}

fn language(code: &str) -> Result<Language, ApiError> {
    Language::parse(code).map_err(|message| ApiError::BadRequest(format!("lang {message}")))
}

/// A counter on the map.
#[derive(Debug, Serialize)]
struct MapCounter {
    id: String,
    number: String,
    floor: i32,
    colour: String,
}

/// A localized text on air.
#[derive(Debug, Serialize)]
struct OnAir {
    id: String,
    text: String,
    sponsor: Option<String>,
}

/// What the guide page loads once.
#[derive(Debug, Serialize)]
struct GuideData<'a> {
    office_ja: &'a str,
    office_en: &'a str,
    floors: Vec<FloorData<'a>>,
    counters: Vec<MapCounter>,
    notices: Vec<OnAir>,
    ads: Vec<OnAir>,
    /// The call display's settings (the guide page ignores them).
    display: guide::DisplaySettings,
}

#[derive(Debug, Serialize)]
struct FloorData<'a> {
    number: i32,
    name: &'a str,
    width: u32,
    height: u32,
    areas: Vec<AreaData<'a>>,
}

#[derive(Debug, Serialize)]
struct AreaData<'a> {
    kind: &'a str,
    counter: Option<&'a str>,
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    label: Option<&'a str>,
}

async fn guide_data(
    State(app): State<SignageApp>,
    Path(path): Path<OfficePath>,
    Query(query): Query<GuideQuery>,
) -> Result<Response, ApiError> {
    let floor = floor(&app, &path)?;
    let lang = language(&query.lang)?;
    let now = app.inner.clock.now();
    let office_guide = app
        .municipality(path.municipality.as_deref())
        .and_then(|m| m.guide.office(&path.office));
    let floors = office_guide
        .map(|g| {
            g.signage
                .floors
                .iter()
                .map(|f| FloorData {
                    number: f.number,
                    name: f.name.get(lang),
                    width: f.width,
                    height: f.height,
                    areas: f
                        .areas
                        .iter()
                        .map(|a| AreaData {
                            kind: &a.kind,
                            counter: a.counter.as_deref(),
                            x: a.x,
                            y: a.y,
                            w: a.w,
                            h: a.h,
                            label: a.label.as_ref().map(|l| l.get(lang).as_str()),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let counters = floor
        .counter_order
        .iter()
        .filter_map(|id| floor.counter(id))
        .map(|c| MapCounter {
            id: c.id.clone(),
            number: c.display_number.clone(),
            floor: c.floor,
            colour: c.colour.clone(),
        })
        .collect();
    let notices = office_guide
        .map(|g| {
            g.notices_at(now)
                .map(|n| OnAir {
                    id: n.id.clone(),
                    text: n.text.get(lang).clone(),
                    sponsor: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let ads = office_guide
        .map(|g| {
            g.ads_at(now)
                .map(|a| OnAir {
                    id: a.id.clone(),
                    text: a.text.get(lang).clone(),
                    sponsor: Some(a.sponsor.clone()),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(GuideData {
        office_ja: &floor.name_ja,
        office_en: &floor.name_en,
        floors,
        counters,
        notices,
        ads,
        display: office_guide
            .map(|g| g.signage.display.clone())
            .unwrap_or_default(),
    })
    .into_response())
}

async fn guide_search(
    State(app): State<SignageApp>,
    Path(path): Path<OfficePath>,
    Query(query): Query<GuideQuery>,
) -> Result<Response, ApiError> {
    let lang = language(&query.lang)?;
    if query.q.chars().count() > guide::MAX_QUERY_CHARS {
        return Err(ApiError::BadRequest(format!(
            "q must have at most {} characters",
            guide::MAX_QUERY_CHARS
        )));
    }
    let matches = app
        .search(path.municipality.as_deref(), &path.office, &query.q, lang)
        .ok_or(ApiError::NotFound("office"))?;
    Ok(Json(serde_json::json!({ "matches": matches })).into_response())
}
