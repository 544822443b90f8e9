//! A ticket kiosk: a button (on the serial panel or the local
//! `KioskService`) becomes a printed ticket.
//!
//! Online: `IssueTicket` in the cluster, then print. If printing fails the
//! ticket is voided in the cluster (`CancelTicket` with reason
//! `NOT_PRINTED`), so a ticket that never came out of the printer is never
//! counted as handed out.
//!
//! Offline (the cluster does not answer): take the next number of the
//! kiosk's lease, record it in the local outbox *before* printing, print,
//! and mark it printed (or void). [`Kiosk::sync`] imports printed tickets
//! when the link is back, in printing order, idempotently; [`Kiosk::top_up`]
//! keeps a lease of numbers per category while the link is up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use madoguchi_platform::clock::SharedClock;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::prost_types::Timestamp;
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::signage::v1::GetTicketStatusUrlRequest;
use tokio::sync::Mutex as AsyncMutex;
use tracing::Instrument as _;

use crate::config::KioskConfig;
use crate::devices::printer::escpos::TicketContent;
use crate::devices::printer::{PrintError, PrinterHandle};
use crate::link::{Cluster, is_unreachable};
use crate::metrics::{PrintMode, Recorder};
use crate::store::{LocalStore, OutboxState, OutboxTicket};

/// The root span of a resident's press (a panel button, or the local
/// `KioskService`): `kiosk press`, covering `IssueTicket` (which continues
/// it in the cluster) and the printer job. It starts a trace of its own,
/// whatever span the caller is in.
pub fn press_span(kiosk: &str, category: &str, button: Option<u8>) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "kiosk press",
        otel.name = "kiosk press",
        otel.kind = "internal",
        madoguchi.kiosk.id = kiosk,
        madoguchi.category = category,
        madoguchi.kiosk.button = tracing::field::Empty,
    );
    if let Some(button) = button {
        span.record("madoguchi.kiosk.button", u64::from(button));
    }
    span
}

/// Tickets imported per `ImportOfflineTickets` call.
const IMPORT_BATCH: u32 = 100;

/// What the kiosk knows of a category, from the cluster's office status.
#[derive(Debug, Clone, Default)]
pub struct CategoryInfo {
    /// Japanese name, printed on the ticket.
    pub name_ja: String,
    /// Colour name in Japanese, printed so residents find the sign.
    pub colour_name: String,
    /// People waiting when last seen.
    pub waiting: u32,
    /// Wait estimate when last seen.
    pub wait: (u32, u32),
}

/// A printed ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    /// e.g. `A012`.
    pub display_number: String,
    /// Cluster resource name; empty when printed offline.
    pub name: String,
    /// Printed from the lease.
    pub offline: bool,
    /// People ahead when issued.
    pub people_ahead: u32,
    /// Wait estimate (minutes).
    pub wait: (u32, u32),
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// URL in the QR code.
    pub status_url: String,
}

/// Why no ticket came out.
#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    /// No such category on this kiosk.
    #[error("unknown category {0}")]
    UnknownCategory(String),
    /// The printer cannot print now; nothing was issued.
    #[error("printer unavailable: {0}")]
    PrinterUnavailable(String),
    /// Printing failed; the ticket was voided.
    #[error("printing failed: {0}")]
    PrintFailed(PrintError),
    /// The cluster refused the ticket (quota, range).
    #[error("cluster refused: {0}")]
    Refused(tonic::Status),
    /// Offline and the lease is used up.
    #[error("offline and no leased number left for {0}")]
    LeaseExhausted(String),
    /// Local storage failed.
    #[error("local store: {0}")]
    Store(String),
}

/// One kiosk.
#[derive(Debug, Clone)]
pub struct Kiosk {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: KioskConfig,
    cluster: Cluster,
    store: LocalStore,
    printer: PrinterHandle,
    clock: SharedClock,
    recorder: Recorder,
    categories: Mutex<HashMap<String, CategoryInfo>>,
    /// One ticket at a time per kiosk: there is one paper slot.
    printing: AsyncMutex<()>,
    /// One import at a time.
    syncing: AsyncMutex<()>,
    /// One lease top-up at a time (two would both see a low lease).
    leasing: AsyncMutex<()>,
}

impl Kiosk {
    /// A kiosk over its printer.
    pub fn new(
        config: KioskConfig,
        cluster: Cluster,
        store: LocalStore,
        printer: PrinterHandle,
        clock: SharedClock,
        recorder: Recorder,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                cluster,
                store,
                printer,
                clock,
                recorder,
                categories: Mutex::default(),
                printing: AsyncMutex::new(()),
                syncing: AsyncMutex::new(()),
                leasing: AsyncMutex::new(()),
            }),
        }
    }

    /// Kiosk id.
    pub fn id(&self) -> &str {
        &self.inner.config.id
    }

    /// Button number → category id.
    pub fn buttons(&self) -> &BTreeMap<u8, String> {
        &self.inner.config.buttons
    }

    /// The printer.
    pub fn printer(&self) -> &PrinterHandle {
        &self.inner.printer
    }

    /// The local store.
    pub fn store(&self) -> &LocalStore {
        &self.inner.store
    }

    /// The cluster link.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    fn category_name(&self, id: &str) -> String {
        format!("{}/categories/{id}", self.inner.cluster.office)
    }

    fn categories(&self) -> std::sync::MutexGuard<'_, HashMap<String, CategoryInfo>> {
        self.inner
            .categories
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refreshes category names, colours and queue lengths from the
    /// cluster (kept for printing while offline).
    pub async fn refresh(&self) -> Result<(), tonic::Status> {
        let cluster = &self.inner.cluster;
        let status = cluster
            .call(
                cluster
                    .queue()
                    .get_office_status(pb::GetOfficeStatusRequest {
                        name: cluster.office.clone(),
                    }),
            )
            .await?;
        let mut categories = self.categories();
        for c in status.categories {
            let wait = c
                .wait_estimate
                .map_or((0, 0), |w| (w.min_minutes, w.max_minutes));
            categories.insert(
                c.name,
                CategoryInfo {
                    name_ja: c.display_name_ja,
                    colour_name: colour_name(&c.colour).to_owned(),
                    waiting: c.waiting,
                    wait,
                },
            );
        }
        Ok(())
    }

    /// Issues and prints a ticket of category `category_id`.
    pub async fn issue(
        &self,
        category_id: &str,
        priority: bool,
    ) -> Result<IssuedTicket, KioskError> {
        if !self.inner.config.buttons.values().any(|c| c == category_id) {
            return Err(KioskError::UnknownCategory(category_id.to_owned()));
        }
        let _slot = self.inner.printing.lock().await;
        let mut health = self.inner.printer.health().borrow().clone();
        if !health.connected {
            // Not seen yet (just started) or lost: ask the printer now
            // rather than turning the resident away on a stale snapshot.
            if self.inner.printer.status().await.is_ok() {
                health = self.inner.printer.health().borrow().clone();
            }
        }
        if !health.connected || health.paper_out || health.cover_open || health.offline {
            let why = if health.paper_out {
                "out of paper"
            } else if health.cover_open {
                "cover open"
            } else if !health.connected {
                "not connected"
            } else {
                "offline"
            };
            return Err(KioskError::PrinterUnavailable(why.to_owned()));
        }
        let category = self.category_name(category_id);
        let known = self.categories().contains_key(&category);
        if !known && let Err(status) = self.refresh().await {
            tracing::warn!(code = ?status.code(), "category names unknown; printing without them");
        }
        let cluster = &self.inner.cluster;
        let issued = cluster
            .call(cluster.queue().issue_ticket(pb::IssueTicketRequest {
                parent: cluster.office.clone(),
                category: category.clone(),
                priority,
                request_id: uuid::Uuid::new_v4().to_string(),
            }))
            .await;
        match issued {
            Ok(ticket) => self.print_online(&category, ticket).await,
            Err(status) if is_unreachable(&status) => {
                tracing::warn!(
                    kiosk = self.id(),
                    "cluster unreachable; printing from the lease"
                );
                self.print_offline(&category, priority).await
            }
            Err(status) => Err(KioskError::Refused(status)),
        }
    }

    async fn print_online(
        &self,
        category: &str,
        ticket: pb::Ticket,
    ) -> Result<IssuedTicket, KioskError> {
        let cluster = &self.inner.cluster;
        let wait = ticket
            .wait_estimate
            .map_or((0, 0), |w| (w.min_minutes, w.max_minutes));
        let issued_at = ticket
            .issue_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
            .unwrap_or_else(|| self.inner.clock.now());
        let status_url = match cluster
            .call(
                cluster
                    .signage()
                    .get_ticket_status_url(GetTicketStatusUrlRequest {
                        ticket: ticket.name.clone(),
                    }),
            )
            .await
        {
            Ok(url) => url.url,
            Err(status) => {
                tracing::warn!(code = ?status.code(), "no status url; printing the office page");
                String::new()
            }
        };
        let info = {
            let mut categories = self.categories();
            let info = categories.entry(category.to_owned()).or_default();
            info.waiting = ticket.people_ahead + 1;
            info.wait = wait;
            info.clone()
        };
        let content = self.content(
            &info,
            &ticket.display_number,
            ticket.people_ahead,
            wait,
            issued_at,
            &status_url,
        );
        match self.print(&content, PrintMode::Online).await {
            Ok(()) => Ok(IssuedTicket {
                display_number: ticket.display_number,
                name: ticket.name,
                offline: false,
                people_ahead: ticket.people_ahead,
                wait,
                issued_at,
                status_url,
            }),
            Err(error) => {
                tracing::warn!(kiosk = self.id(), %error, ticket = %ticket.display_number, "not printed; voiding");
                self.void(&ticket.name).await;
                Err(KioskError::PrintFailed(error))
            }
        }
    }

    /// Voids an issued ticket that did not print, retrying while the
    /// cluster is unreachable (in the background, so the kiosk stays
    /// usable).
    async fn void(&self, name: &str) {
        let request = pb::CancelTicketRequest {
            name: name.to_owned(),
            etag: String::new(),
            reason: pb::CancelReason::NotPrinted as i32,
        };
        let cluster = self.inner.cluster.clone();
        let first = cluster
            .call(cluster.queue().cancel_ticket(request.clone()))
            .await;
        match first {
            Ok(_) => {}
            Err(status) if is_unreachable(&status) => {
                tokio::spawn(async move {
                    let mut backoff = crate::serial::Backoff::default();
                    loop {
                        tokio::time::sleep(backoff.next_delay()).await;
                        match cluster
                            .call(cluster.queue().cancel_ticket(request.clone()))
                            .await
                        {
                            Err(status) if is_unreachable(&status) => continue,
                            Err(status) => {
                                tracing::error!(code = ?status.code(), "cannot void an unprinted ticket");
                                return;
                            }
                            Ok(_) => return,
                        }
                    }
                });
            }
            Err(status) => {
                tracing::error!(code = ?status.code(), "cannot void an unprinted ticket")
            }
        }
    }

    async fn print_offline(
        &self,
        category: &str,
        priority: bool,
    ) -> Result<IssuedTicket, KioskError> {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let day = BusinessDay::of(now).date().to_string();
        let taken = store
            .take_number(self.id(), category, &day)
            .await
            .map_err(|e| KioskError::Store(e.to_string()))?
            .ok_or_else(|| KioskError::LeaseExhausted(category.to_owned()))?;
        let offline_id = uuid::Uuid::new_v4().to_string();
        store
            .outbox_add(&OutboxTicket {
                seq: 0,
                offline_id: offline_id.clone(),
                kiosk: self.id().to_owned(),
                lease: taken.lease.clone(),
                category: category.to_owned(),
                number: taken.number,
                display_number: taken.display_number.clone(),
                priority,
                issued_at: now,
            })
            .await
            .map_err(|e| KioskError::Store(e.to_string()))?;
        let info = {
            let mut categories = self.categories();
            let info = categories.entry(category.to_owned()).or_default();
            // Best knowledge offline: the queue as last seen, grown by the
            // tickets printed since.
            let ahead = info.waiting;
            info.waiting += 1;
            CategoryInfo {
                waiting: ahead,
                ..info.clone()
            }
        };
        let content = self.content(
            &info,
            &taken.display_number,
            info.waiting,
            info.wait,
            now,
            "",
        );
        match self.print(&content, PrintMode::Offline).await {
            Ok(()) => {
                store
                    .outbox_mark(&offline_id, OutboxState::Printed, "")
                    .await
                    .map_err(|e| KioskError::Store(e.to_string()))?;
                Ok(IssuedTicket {
                    display_number: taken.display_number,
                    name: String::new(),
                    offline: true,
                    people_ahead: info.waiting,
                    wait: info.wait,
                    issued_at: now,
                    status_url: String::new(),
                })
            }
            Err(error) => {
                store
                    .outbox_mark(&offline_id, OutboxState::Void, &error.to_string())
                    .await
                    .map_err(|e| KioskError::Store(e.to_string()))?;
                Err(KioskError::PrintFailed(error))
            }
        }
    }

    /// One print job, in a `printer job` span; counts the ticket when it
    /// came out.
    async fn print(&self, content: &TicketContent, mode: PrintMode) -> Result<(), PrintError> {
        let span = tracing::info_span!(
            "printer job",
            otel.name = "printer job",
            otel.kind = "internal",
            otel.status_code = tracing::field::Empty,
            madoguchi.device.id = format!("printer-{}", self.id()).as_str(),
            madoguchi.printer.mode = mode.as_str(),
            madoguchi.printer.bytes = tracing::field::Empty,
            madoguchi.printer.outcome = tracing::field::Empty,
        );
        let result = self
            .inner
            .printer
            .print_ticket(content)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(receipt) => {
                span.record("madoguchi.printer.bytes", receipt.bytes as u64);
                span.record("madoguchi.printer.outcome", "printed");
                self.inner.recorder.ticket_printed(self.id(), mode);
            }
            Err(error) => {
                span.record("madoguchi.printer.outcome", error.kind());
                span.record("otel.status_code", "error");
            }
        }
        result.map(|_| ())
    }

    fn content(
        &self,
        info: &CategoryInfo,
        number: &str,
        ahead: u32,
        wait: (u32, u32),
        issued_at: DateTime<Utc>,
        status_url: &str,
    ) -> TicketContent {
        let local = issued_at.with_timezone(&madoguchi_platform::types::JAPAN_STANDARD_TIME);
        TicketContent {
            heading: self.inner.config.heading.clone(),
            number: number.to_owned(),
            category: info.name_ja.clone(),
            counter_colour: info.colour_name.clone(),
            people_ahead: ahead,
            estimated_wait_minutes: wait.1,
            issued_at: local.format("%Y-%m-%d %H:%M").to_string(),
            status_url: status_url.to_owned(),
        }
    }

    /// Tops up the lease of every category of this kiosk to its
    /// configured size for today (only while the cluster answers).
    pub async fn top_up(&self) -> Result<(), tonic::Status> {
        let _one = self.inner.leasing.lock().await;
        let now = self.inner.clock.now();
        let day = BusinessDay::of(now).date().to_string();
        let store = &self.inner.store;
        store
            .drop_old_leases(&day)
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let size = self.inner.config.lease_size;
        let categories: std::collections::BTreeSet<String> =
            self.inner.config.buttons.values().cloned().collect();
        for id in categories {
            let category = self.category_name(&id);
            let left = store
                .remaining(self.id(), &category, &day)
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            // Lease again once half the block is used.
            if left * 2 > size {
                continue;
            }
            let cluster = &self.inner.cluster;
            let lease = cluster
                .call(cluster.queue().lease_numbers(pb::LeaseNumbersRequest {
                    category: category.clone(),
                    device: format!("kiosk-{}", self.id()),
                    count: size - left,
                    request_id: uuid::Uuid::new_v4().to_string(),
                }))
                .await?;
            let lease_day = lease
                .business_day
                .as_ref()
                .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                .unwrap_or_else(|| day.clone());
            store
                .add_lease(self.id(), &lease, &lease_day)
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            tracing::info!(kiosk = self.id(), %category, numbers = lease.numbers.len(), "leased numbers for offline printing");
        }
        Ok(())
    }

    /// Imports tickets printed offline, in printing order; returns how many
    /// the cluster newly queued. Stops at the first failure to reach the
    /// cluster (retried on the next call); a ticket the cluster refuses
    /// for good is marked rejected with the reason, and logged.
    pub async fn sync(&self) -> Result<usize, tonic::Status> {
        let _one = self.inner.syncing.lock().await;
        let store = &self.inner.store;
        let mut imported = 0;
        loop {
            let pending = store
                .outbox_pending(IMPORT_BATCH)
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            if pending.is_empty() {
                return Ok(imported);
            }
            let tickets: Vec<pb::OfflineTicket> = pending.iter().map(offline_ticket).collect();
            let cluster = &self.inner.cluster;
            let result = cluster
                .call(
                    cluster
                        .queue()
                        .import_offline_tickets(pb::ImportOfflineTicketsRequest {
                            parent: cluster.office.clone(),
                            tickets,
                        }),
                )
                .await;
            match result {
                Ok(response) => {
                    for r in response.results {
                        imported += usize::from(!r.already_imported);
                        store
                            .outbox_mark(&r.offline_id, OutboxState::Imported, "")
                            .await
                            .map_err(|e| tonic::Status::internal(e.to_string()))?;
                    }
                }
                Err(status) if is_unreachable(&status) => return Err(status),
                Err(status) => {
                    // The batch is refused as a whole; find the culprit by
                    // importing one at a time, so one bad ticket cannot
                    // hold back the others.
                    if pending.len() == 1 {
                        tracing::error!(ticket = %pending[0].display_number, code = ?status.code(), message = status.message(), "offline ticket rejected by the cluster");
                        store
                            .outbox_mark(
                                &pending[0].offline_id,
                                OutboxState::Rejected,
                                status.message(),
                            )
                            .await
                            .map_err(|e| tonic::Status::internal(e.to_string()))?;
                    } else {
                        imported += self.sync_one_by_one(&pending).await?;
                    }
                }
            }
        }
    }

    async fn sync_one_by_one(&self, pending: &[OutboxTicket]) -> Result<usize, tonic::Status> {
        let store = &self.inner.store;
        let cluster = &self.inner.cluster;
        let mut imported = 0;
        for t in pending {
            let result = cluster
                .call(
                    cluster
                        .queue()
                        .import_offline_tickets(pb::ImportOfflineTicketsRequest {
                            parent: cluster.office.clone(),
                            tickets: vec![offline_ticket(t)],
                        }),
                )
                .await;
            let (state, note) = match result {
                Ok(r) => {
                    imported += r.results.iter().filter(|r| !r.already_imported).count();
                    (OutboxState::Imported, String::new())
                }
                Err(status) if is_unreachable(&status) => return Err(status),
                Err(status) => {
                    tracing::error!(ticket = %t.display_number, code = ?status.code(), message = status.message(), "offline ticket rejected by the cluster");
                    (OutboxState::Rejected, status.message().to_owned())
                }
            };
            store
                .outbox_mark(&t.offline_id, state, &note)
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
        }
        Ok(imported)
    }
}

/// The import form of an outbox entry.
fn offline_ticket(t: &OutboxTicket) -> pb::OfflineTicket {
    pb::OfflineTicket {
        offline_id: t.offline_id.clone(),
        lease: t.lease.clone(),
        number: t.number,
        priority: t.priority,
        issue_time: Some(Timestamp {
            seconds: t.issued_at.timestamp(),
            nanos: i32::try_from(t.issued_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// A Japanese colour name for a sign colour `#RRGGBB`, by hue: residents
/// are told "the orange counter", not a hex code.
pub fn colour_name(hex: &str) -> &'static str {
    let parse = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map(f64::from)
    };
    let (Some(r), Some(g), Some(b)) = (parse(1), parse(3), parse(5)) else {
        return "";
    };
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    if max - min < 24.0 {
        return if max > 200.0 {
            "白"
        } else if max < 60.0 {
            "黒"
        } else {
            "灰色"
        };
    }
    let hue = if max == r {
        60.0 * ((g - b) / (max - min)).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / (max - min) + 2.0)
    } else {
        60.0 * ((r - g) / (max - min) + 4.0)
    };
    match hue {
        h if h < 15.0 => "赤",
        h if h < 45.0 => "オレンジ",
        h if h < 70.0 => "黄色",
        h if h < 170.0 => "緑",
        h if h < 200.0 => "水色",
        h if h < 250.0 => "青",
        h if h < 300.0 => "紫",
        h if h < 340.0 => "ピンク",
        _ => "赤",
    }
}

#[cfg(test)]
mod tests {
    use super::colour_name;

    #[test]
    fn sample_site_colours_have_names() {
        assert_eq!(colour_name("#E8833A"), "オレンジ");
        assert_eq!(colour_name("#2E86C1"), "青");
        assert_eq!(colour_name("#28A745"), "緑");
        assert_eq!(colour_name("#8E44AD"), "紫");
        assert_eq!(colour_name("#bad"), "");
    }
}
