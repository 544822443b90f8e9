//! Shared by the signage tests: servers with the sample site's signage
//! file (one process, or signage alone following a queue elsewhere), a
//! headless Chromium driven through Debian's chromedriver, raw HTTP/SSE
//! reads, and the floor's usual moves (issue, call, finish).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder};
use madoguchi::cli::Auth;
use madoguchi::server::{RunningServer, ServiceSelection, start};
use madoguchi_e2e::{Backend, Client, OFFICE, category, counter, issue, test_tokens, token};
use madoguchi_platform::auth::Role;
use madoguchi_platform::clock::{ManualClock, SharedClock};
use madoguchi_platform::config::ServerConfig;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::signage::v1::signage_service_client::SignageServiceClient;
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A signage client with `role`.
pub type SignageClient = SignageServiceClient<InterceptedService<Channel, Auth>>;

/// A server under test with its data directory.
#[derive(Debug)]
pub struct Floor {
    /// The running server.
    pub server: RunningServer,
    /// Its configuration (to start it again).
    pub config: ServerConfig,
    /// The clock it reads.
    pub clock: ManualClock,
    dir: Arc<TempDir>,
}

fn morning() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-04-01T09:00:00+09:00")
        .unwrap()
        .to_utc()
}

/// Configuration for the sample site and its signage file on `backend`.
pub async fn config(backend: Backend, dir: &TempDir) -> ServerConfig {
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        Backend::Postgres => madoguchi_e2e::fresh_postgres_database().await,
    };
    let mut config = ServerConfig {
        data_dir: dir.path().to_owned(),
        database_url: Some(SecretString::from(database_url)),
        site: Some(repo().join("sites/ofunato/site.toml")),
        tokens: test_tokens(),
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    config.signage.public_url = Some("https://madoguchi.city.ofunato.example".into());
    // Given, not generated: a signage-only process (a replica) refuses to
    // make up its own, and its status URLs must match the first server's.
    config.signage.status_url_secret = Some(SecretString::from(
        "signage-test-secret-shared-by-every-replica",
    ));
    config
}

/// Every service in one process, on port 0.
pub async fn spawn_all(backend: Backend) -> Floor {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = config(backend, &dir).await;
    let clock = ManualClock::new(morning());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shared: SharedClock = Arc::new(clock.clone());
    let server = start(&config, ServiceSelection::All, shared, listener)
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e:#}"));
    Floor {
        server,
        config,
        clock,
        dir,
    }
}

/// The signage service alone, following the queue of `queue`, on `addr`
/// (port 0 for a new one, or the address of a stopped one).
pub async fn spawn_signage(queue: &Floor, addr: SocketAddr) -> Floor {
    let mut config = queue.config.clone();
    config.signage.queue_url = Some(format!("http://{}", queue.server.addr));
    // It has no database: point it at a URL that would fail if it tried.
    config.database_url = Some(SecretString::from("postgres://nobody@127.0.0.1:1/none"));
    let listener = TcpListener::bind(addr).await.unwrap();
    let shared: SharedClock = Arc::new(queue.clock.clone());
    let server = start(&config, ServiceSelection::Signage, shared, listener)
        .await
        .unwrap_or_else(|e| panic!("signage did not start: {e:#}"));
    Floor {
        server,
        config,
        clock: queue.clock.clone(),
        dir: queue.dir.clone(),
    }
}

impl Floor {
    /// `http://addr`.
    pub fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// A queue client with `role`.
    pub async fn queue(&self, role: Role) -> Client {
        madoguchi_e2e::client_at(self.server.addr, role, "032034").await
    }

    /// A signage client with `role` in `municipality`.
    pub async fn signage(&self, role: Role, municipality: &str) -> SignageClient {
        let channel = Channel::from_shared(self.base())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let auth = Auth::bearer(&token(role, municipality).token).unwrap();
        SignageServiceClient::with_interceptor(channel, auth)
    }

    /// Stops it gracefully; returns the address it listened on.
    pub async fn stop(self) -> SocketAddr {
        let addr = self.server.addr;
        self.server.shutdown().await.unwrap();
        addr
    }
}

/// Issues a ticket in `category_id`.
pub async fn issue_ticket(staff: &mut Client, category_id: &str) -> pb::Ticket {
    staff
        .issue_ticket(issue(category_id, false))
        .await
        .unwrap_or_else(|e| panic!("issue: {e}"))
        .into_inner()
}

/// Calls the next ticket to counter `id`.
pub async fn call_next(staff: &mut Client, id: &str) -> pb::Ticket {
    staff
        .call_next(pb::CallNextRequest {
            counter: counter(id),
            categories: Vec::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("call next: {e}"))
        .into_inner()
        .ticket
        .unwrap_or_else(|| panic!("nobody waiting at counter {id}"))
}

/// Starts and finishes service of `ticket`.
pub async fn serve_and_finish(staff: &mut Client, ticket: &pb::Ticket) {
    staff
        .start_service(pb::StartServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    staff
        .finish_service(pb::FinishServiceRequest {
            name: ticket.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
}

/// The office's newest event sequence.
pub async fn last_sequence(staff: &mut Client) -> u64 {
    staff
        .get_office_status(pb::GetOfficeStatusRequest {
            name: OFFICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .last_sequence
}

/// `category("certificates")` re-exported for brevity.
pub fn certificates() -> String {
    category("certificates")
}

/// "A012" → "A-012", as the pages show numbers.
pub fn shown(ticket: &pb::Ticket) -> String {
    madoguchi_signage::views::spoken_number(&ticket.display_number)
}

/// A raw HTTP/1.1 GET: status code, headers and body (read to the end).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field.
    pub event: String,
    /// `id:` field, if any.
    pub id: Option<String>,
    /// `data:` field.
    pub data: String,
}

/// An open SSE response read event by event.
#[derive(Debug)]
pub struct SseReader {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl SseReader {
    /// Opens `path` with optional `Last-Event-ID`.
    pub async fn open(addr: SocketAddr, path: &str, last_event_id: Option<u64>) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::request(stream, addr, path, last_event_id).await
    }

    /// Opens `path` on a socket with a receive buffer of about
    /// `receive_buffer` bytes: a page on a slow link, whose events pile up
    /// at the server as soon as this reader stops reading.
    pub async fn open_slow(addr: SocketAddr, path: &str, receive_buffer: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(receive_buffer).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        Self::request(stream, addr, path, None).await
    }

    async fn request(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<u64>,
    ) -> Self {
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await.unwrap().unwrap_or_default();
        assert!(status.contains(" 200 "), "{status}");
        // Headers end at the first empty line.
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.is_empty() {
                break;
            }
        }
        Self { lines }
    }

    /// Reads until the event with id `newest`; returns every event that
    /// has an id, as `(id, event name, data)`, in arrival order.
    pub async fn events_through(&mut self, newest: u64) -> Vec<(u64, String, String)> {
        let mut events = Vec::new();
        while events.last().map(|(id, _, _)| *id) != Some(newest) {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("feed ended before event {newest}: {events:?}"));
            if let Some(id) = event.id {
                events.push((id.parse().unwrap(), event.event, event.data));
            }
        }
        events
    }

    /// The next event that has an `event:` name (skipping `retry:` and
    /// keep-alive comments), or `None` at the end of the stream. The body
    /// is chunked; chunk-size lines are told apart from fields by having
    /// no colon.
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.read_event(false).await
    }

    /// Like [`SseReader::next`], but `None` also when the server ends the
    /// response (the chunked body's last chunk, `0`), as when its follower
    /// of the queue ended: a browser's EventSource then reconnects with
    /// `Last-Event-ID`.
    pub async fn next_or_end(&mut self) -> Option<SseEvent> {
        self.read_event(true).await
    }

    async fn read_event(&mut self, stop_at_last_chunk: bool) -> Option<SseEvent> {
        let mut event = SseEvent::default();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("sse event within 20 s")
                .ok()??;
            if stop_at_last_chunk && line == "0" {
                return None;
            }
            if let Some(v) = line.strip_prefix("event:") {
                event.event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                event.id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                event.data.push_str(v.trim_start());
            } else if line.is_empty() && !event.event.is_empty() {
                return Some(event);
            }
        }
    }
}

// ------------------------------------------------------------------ browser

/// A chromedriver process and a headless Chromium session.
#[derive(Debug)]
pub struct Chromium {
    /// The WebDriver client.
    pub browser: Browser,
    driver: tokio::process::Child,
    _profile: TempDir,
}

fn chromium_binary() -> PathBuf {
    for candidate in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        let path = PathBuf::from(candidate);
        if path.exists() {
            return path;
        }
    }
    panic!("chromium is not installed: run scripts/browser.sh (browser tests never skip)");
}

/// Starts chromedriver on a free port and opens a headless Chromium with a
/// window of `width`×`height` CSS pixels.
pub async fn chromium(width: u32, height: u32) -> Chromium {
    let binary = chromium_binary();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver is not installed ({e}): run scripts/browser.sh"));
    // chromedriver prints one line once it listens; wait for it rather
    // than for a fixed time.
    let stdout = driver.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("started successfully") {
                return;
            }
        }
        panic!("chromedriver exited");
    })
    .await
    .expect("chromedriver started within 20 s");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let profile = tempfile::tempdir().unwrap();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                "--autoplay-policy=no-user-gesture-required", "--lang=ja-JP",
                format!("--user-data-dir={}", profile.path().display()),
                format!("--window-size={width},{height}"),
            ],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start chromium through chromedriver: {e}"));
    // --window-size sets the outer size; make the viewport exact.
    let (inner_w, inner_h) = viewport(&browser).await;
    if (inner_w, inner_h) != (width, height) {
        let (w, h) = browser.get_window_size().await.unwrap();
        browser
            .set_window_size(
                (w as i64 + i64::from(width) - i64::from(inner_w)) as u32,
                (h as i64 + i64::from(height) - i64::from(inner_h)) as u32,
            )
            .await
            .unwrap();
    }
    Chromium {
        browser,
        driver,
        _profile: profile,
    }
}

async fn viewport(browser: &Browser) -> (u32, u32) {
    let v = browser
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let w = v[0].as_u64().unwrap_or(0) as u32;
    let h = v[1].as_u64().unwrap_or(0) as u32;
    (w, h)
}

impl Chromium {
    /// Runs `script` as an async function body (it receives `done` as its
    /// last argument) and returns what it passes to `done`. Waiting in the
    /// page (MutationObserver) instead of polling from here keeps tests
    /// event-driven; the WebDriver script timeout bounds it.
    pub async fn wait_in_page(
        &self,
        script: &str,
        args: Vec<serde_json::Value>,
    ) -> serde_json::Value {
        self.browser
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("waiting in the page failed: {e}\nscript: {script}"))
    }

    /// Resolves once `document.querySelector(selector)` matches an element
    /// whose text contains `text`.
    pub async fn wait_for_text(&self, selector: &str, text: &str) {
        self.wait_in_page(
            r#"const [selector, text, done] = arguments;
               const ok = () => [...document.querySelectorAll(selector)].some((n) => n.textContent.includes(text));
               if (ok()) return done(true);
               const obs = new MutationObserver(() => { if (ok()) { obs.disconnect(); done(true); } });
               obs.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });"#,
            vec![selector.into(), text.into()],
        )
        .await;
    }

    /// Resolves once `document.body` has (or, with `present` false, lacks)
    /// `class`.
    pub async fn wait_for_body_class(&self, class: &str, present: bool) {
        self.wait_in_page(
            r#"const [cls, present, done] = arguments;
               const ok = () => document.body.classList.contains(cls) === present;
               if (ok()) return done(true);
               const obs = new MutationObserver(() => { if (ok()) { obs.disconnect(); done(true); } });
               obs.observe(document.body, { attributes: true });"#,
            vec![class.into(), present.into()],
        )
        .await;
    }

    /// Saves a screenshot as `name.png` in the artifacts folder and prints
    /// its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = artifacts();
        let png = self.browser.screenshot().await.unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.driver.kill().await;
    }
}

/// Where screenshots go: `target/tmp/signage-screenshots` (cargo's
/// per-target temporary folder for integration tests).
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("signage-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
