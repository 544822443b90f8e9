//! The queue's Prometheus metrics.
//!
//! Counted as they happen: tickets issued per category
//! (`madoguchi_queue_tickets_issued_total`, offline imports included) and
//! calls per counter (`madoguchi_queue_calls_total`). Read at each scrape
//! from the offices' status: tickets waiting
//! (`madoguchi_queue_tickets_waiting`), the upper bound of the wait
//! estimate for a ticket issued now (`madoguchi_queue_wait_estimate_seconds`)
//! and the event log's last sequence (`madoguchi_queue_event_log_sequence`);
//! and, per `WatchOffice` follower (the subject of its credentials: a
//! gateway, a signage replica), how many committed events it has not been
//! sent yet (`madoguchi_queue_event_log_lag_events`, the largest over that
//! subject's streams). With several replicas each reports the followers
//! connected to it; the log-derived gauges are the same on every replica.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use madoguchi_platform::metrics::{FloatGauge, Metrics};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;

use crate::domain::OfficeName;
use crate::storage::QueueStore;

type OfficeLabels = [(&'static str, String); 1];
type PairLabels = [(&'static str, String); 2];

/// The queue's counters and the followers being served.
#[derive(Debug, Clone, Default)]
pub struct QueueMetrics {
    issued: Family<PairLabels, Counter>,
    calls: Family<PairLabels, Counter>,
    waiting: Family<PairLabels, Gauge>,
    estimate: Family<PairLabels, FloatGauge>,
    sequence: Family<OfficeLabels, Gauge>,
    lag: Family<PairLabels, Gauge>,
    followers: Arc<Followers>,
}

#[derive(Debug, Default)]
struct Followers {
    next: AtomicU64,
    streams: Mutex<HashMap<u64, Stream>>,
}

#[derive(Debug)]
struct Stream {
    office: String,
    subject: String,
    sent: Arc<AtomicI64>,
}

/// A follower's place in the metrics: updated as it sends, removed when
/// the stream ends.
#[derive(Debug)]
pub struct FollowerMark {
    id: u64,
    sent: Arc<AtomicI64>,
    followers: Arc<Followers>,
}

impl FollowerMark {
    /// The follower has sent everything up to `sequence`.
    pub fn sent(&self, sequence: i64) {
        self.sent.store(sequence, Ordering::Relaxed);
    }
}

impl Drop for FollowerMark {
    fn drop(&mut self) {
        self.followers
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// The last segment of a resource name (`…/categories/certificates` →
/// `certificates`); metrics carry the office's name whole.
fn leaf(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

impl QueueMetrics {
    /// A ticket was issued in `category` of `office`.
    pub fn issued(&self, office: &str, category: &str, count: u64) {
        self.issued
            .get_or_create(&[("office", office.to_owned()), ("category", leaf(category))])
            .inc_by(count);
    }

    /// A ticket was called to `counter` of `office`.
    pub fn called(&self, office: &str, counter: &str) {
        self.calls
            .get_or_create(&[("office", office.to_owned()), ("counter", leaf(counter))])
            .inc();
    }

    /// A `WatchOffice` stream of `subject` starts on `office`, having sent
    /// nothing after `after`.
    pub fn follow(&self, office: &str, subject: &str, after: i64) -> FollowerMark {
        let id = self.followers.next.fetch_add(1, Ordering::Relaxed);
        let sent = Arc::new(AtomicI64::new(after));
        self.followers
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Stream {
                    office: office.to_owned(),
                    subject: subject.to_owned(),
                    sent: sent.clone(),
                },
            );
        FollowerMark {
            id,
            sent,
            followers: self.followers.clone(),
        }
    }

    /// Registers everything with `metrics`; the gauges of `store`'s offices
    /// are read at each scrape.
    pub fn register(&self, metrics: &Metrics, store: QueueStore) {
        metrics.register(
            "madoguchi_queue_tickets_issued",
            "Tickets issued, by office and category (offline tickets when imported)",
            self.issued.clone(),
        );
        metrics.register(
            "madoguchi_queue_calls",
            "Tickets called to a counter, by office and counter",
            self.calls.clone(),
        );
        metrics.register(
            "madoguchi_queue_tickets_waiting",
            "Tickets waiting now, by office and category",
            self.waiting.clone(),
        );
        metrics.register_with_unit(
            "madoguchi_queue_wait_estimate",
            "Upper bound of the wait estimate for a ticket issued now, by office and category",
            Unit::Seconds,
            self.estimate.clone(),
        );
        metrics.register(
            "madoguchi_queue_event_log_sequence",
            "Sequence of the last event committed to the office's log",
            self.sequence.clone(),
        );
        metrics.register(
            "madoguchi_queue_event_log_lag_events",
            "Events committed but not yet sent to a WatchOffice follower (its largest over the subject's streams on this replica)",
            self.lag.clone(),
        );
        let this = self.clone();
        metrics.on_scrape(move || {
            let this = this.clone();
            let store = store.clone();
            async move { this.refresh(&store).await }
        });
    }

    async fn refresh(&self, store: &QueueStore) {
        let offices = match store.office_names().await {
            Ok(offices) => offices,
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot list the offices");
                return;
            }
        };
        let mut heads = BTreeMap::new();
        for office in offices {
            let Ok(name) = OfficeName::parse(&office) else {
                continue;
            };
            match store.office_status(&name).await {
                Ok(status) => {
                    // Every category and counter has its series from the
                    // start (at 0), so rates and alerts see them before the
                    // first ticket.
                    for counter in &status.counters {
                        let _ = self.calls.get_or_create(&[
                            ("office", office.clone()),
                            ("counter", leaf(&counter.name)),
                        ]);
                    }
                    for category in &status.categories {
                        let labels = [
                            ("office", office.clone()),
                            ("category", leaf(&category.name)),
                        ];
                        let _ = self.issued.get_or_create(&labels);
                        self.waiting
                            .get_or_create(&labels)
                            .set(i64::from(category.waiting));
                        let seconds = category
                            .wait_estimate
                            .as_ref()
                            .map_or(0.0, |e| f64::from(e.max_minutes) * 60.0);
                        self.estimate.get_or_create(&labels).set(seconds);
                    }
                    let last = i64::try_from(status.last_sequence).unwrap_or(i64::MAX);
                    self.sequence
                        .get_or_create(&[("office", office.clone())])
                        .set(last);
                    heads.insert(office, last);
                }
                Err(error) => tracing::warn!(%error, %office, "metrics: office status failed"),
            }
        }
        let mut lags: BTreeMap<(String, String), i64> = BTreeMap::new();
        {
            let streams = self
                .followers
                .streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for stream in streams.values() {
                let Some(head) = heads.get(&stream.office) else {
                    continue;
                };
                let lag = (head - stream.sent.load(Ordering::Relaxed)).max(0);
                let entry = lags
                    .entry((stream.office.clone(), stream.subject.clone()))
                    .or_default();
                *entry = (*entry).max(lag);
            }
        }
        // Followers that left disappear from the next scrape.
        self.lag.clear();
        for ((office, follower), lag) in lags {
            self.lag
                .get_or_create(&[("office", office), ("follower", follower)])
                .set(lag);
        }
    }
}
