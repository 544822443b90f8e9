//! The POS service's Prometheus metrics.
//!
//! `madoguchi_pos_payments_total{office,method,outcome}` counts payments as
//! they reach an outcome, at the commit that records it: `approved` (a
//! cash payment when taken, a terminal payment when the gateway reports
//! it), `declined`, `cancelled` (the terminal aborted it), `unresolved`
//! (the terminal reported 処理未了), `voided` and `refunded` (when the money
//! went back: at once for cash, on the terminal's approval otherwise).
//! A 処理未了 payment that a supervisor later resolves counts again with its
//! resolution, so `unresolved` counts how often the terminal did not know,
//! not how many payments are still open; that is
//! `madoguchi_pos_payments_unresolved{office}`, read from the database at
//! each scrape (the same on every replica). `method` is `cash`, `card`,
//! `emoney` or `qr`; `office` the office's resource name.

use std::collections::BTreeMap;

use madoguchi_platform::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::domain::{Method, PaymentState};
use crate::storage::PosStore;

type PaymentLabels = [(&'static str, String); 3];
type OfficeLabels = [(&'static str, String); 1];

/// What a payment came to, as `madoguchi_pos_payments_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Paid.
    Approved,
    /// The terminal declined it.
    Declined,
    /// Aborted on the terminal.
    Cancelled,
    /// 処理未了: the terminal does not know.
    Unresolved,
    /// Voided in full.
    Voided,
    /// Partly paid back.
    Refunded,
}

impl PaymentOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Unresolved => "unresolved",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
        }
    }

    /// The outcome a payment reaching `state` counts as; `None` for the
    /// states on the way (pending, in progress).
    pub fn of_state(state: PaymentState) -> Option<Self> {
        match state {
            PaymentState::Pending | PaymentState::InProgress => None,
            PaymentState::Approved => Some(Self::Approved),
            PaymentState::Declined => Some(Self::Declined),
            PaymentState::Aborted => Some(Self::Cancelled),
            PaymentState::Unknown => Some(Self::Unresolved),
            PaymentState::Voided => Some(Self::Voided),
        }
    }
}

/// The payment counter the store increments. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PaymentCounts(Family<PaymentLabels, Counter>);

impl PaymentCounts {
    /// One payment of `office` paid by `method` reached `outcome`.
    pub fn count(&self, office: &str, method: Option<Method>, outcome: PaymentOutcome) {
        let method = method.map_or("unknown", |m| match m {
            Method::Cash => "cash",
            Method::Card => "card",
            Method::Emoney => "emoney",
            Method::Qr => "qr",
        });
        self.0
            .get_or_create(&[
                ("office", office.to_owned()),
                ("method", method.to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
    }
}

/// Registers the POS metrics of `store` into `metrics`.
pub fn register(metrics: &Metrics, store: &PosStore) {
    metrics.register(
        "madoguchi_pos_payments",
        "Payments by office, method and the outcome they reached",
        store.payment_counts().0.clone(),
    );
    let unresolved: Family<OfficeLabels, Gauge> = Family::default();
    metrics.register(
        "madoguchi_pos_payments_unresolved",
        "Payments whose outcome is unknown (処理未了) and not yet resolved, by office",
        unresolved.clone(),
    );
    let store = store.clone();
    metrics.on_scrape(move || {
        let store = store.clone();
        let unresolved = unresolved.clone();
        async move {
            match store.unresolved_payments().await {
                Ok(counts) => {
                    let counts: BTreeMap<String, i64> = counts;
                    for (office, count) in counts {
                        unresolved.get_or_create(&[("office", office)]).set(count);
                    }
                }
                Err(error) => tracing::warn!(%error, "metrics: unresolved payments not read"),
            }
        }
    });
}
