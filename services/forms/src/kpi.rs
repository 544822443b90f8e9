//! Counter KPIs computed from the stored data itself — the seed's survey
//! counted 14 names written, 6 staff met and 4 departments visited; these
//! are the same measures, per visit and over a period.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use madoguchi_platform::metrics::Metrics;
use madoguchi_proto::forms::v1 as pb;
use madoguchi_proto::prost_types;
use madoguchi_proto::queue::v1 as q;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::domain::ItemStatus;
use crate::grpc::duration;

fn micros(ts: Option<&prost_types::Timestamp>) -> Option<i64> {
    ts.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn seconds(d: Option<&prost_types::Duration>) -> i64 {
    d.map(|d| d.seconds).unwrap_or_default()
}

/// The KPIs of one visit. `one_stop_category` is the queue category
/// resource name of the one-stop counter; an item counts as finished there
/// when it was marked 済 while the ticket was in that category.
pub fn visit_kpis(
    visit: &pb::Visit,
    signatures: u32,
    staff: u32,
    ticket: Option<&q::Ticket>,
    one_stop_category: &str,
    now: DateTime<Utc>,
) -> pb::VisitKpis {
    let applicable: Vec<&pb::ChecklistItem> = visit
        .items
        .iter()
        .filter(|i| ItemStatus::from_i32(i.status) != Some(ItemStatus::NotApplicable))
        .collect();
    let done: Vec<&&pb::ChecklistItem> = applicable
        .iter()
        .filter(|i| ItemStatus::from_i32(i.status) == Some(ItemStatus::Done))
        .collect();
    let done_one_stop = done
        .iter()
        .filter(|i| i.handled_in_category == one_stop_category)
        .count() as u32;
    let procedures = applicable.len() as u32;
    // Late items still apply (and count in `procedures`); lapsed ones are
    // 対象外 and counted apart.
    let late = applicable
        .iter()
        .filter(|i| i.deadline_standing == pb::DeadlineStanding::Late as i32)
        .count() as u32;
    let lapsed = visit
        .items
        .iter()
        .filter(|i| i.deadline_standing == pb::DeadlineStanding::Lapsed as i32)
        .count() as u32;
    let start = micros(visit.start_time.as_ref()).unwrap_or_default();
    let end = micros(visit.end_time.as_ref()).unwrap_or_else(|| now.timestamp_micros());
    let (mut counters, mut wait, mut service) = (HashSet::new(), 0i64, 0i64);
    if let Some(ticket) = ticket {
        for leg in &ticket.legs {
            if !leg.counter.is_empty() {
                counters.insert(leg.counter.clone());
            }
            wait += seconds(leg.wait_duration.as_ref());
            service += seconds(leg.service_duration.as_ref());
        }
    }
    pb::VisitKpis {
        visit: visit.name.clone(),
        signatures,
        counters_met: counters.len() as u32,
        staff_met: staff,
        procedures,
        procedures_done: done.len() as u32,
        procedures_done_one_stop: done_one_stop,
        one_stop_share_permille: (done_one_stop * 1000).checked_div(procedures).unwrap_or(0),
        visit_duration: Some(duration(chrono::Duration::microseconds(end - start))),
        wait_duration: Some(duration(chrono::Duration::seconds(wait))),
        service_duration: Some(duration(chrono::Duration::seconds(service))),
        certificates: visit
            .certificate_requests
            .iter()
            .flat_map(|r| r.lines.iter().map(|l| l.copies))
            .sum(),
        procedures_late: late,
        procedures_lapsed: lapsed,
    }
}

type OfficeLabels = [(&'static str, String); 1];

/// The seed's KPIs as Prometheus counters, counted once per visit when it
/// is completed, from the same [`visit_kpis`] the KPI API returns:
/// `madoguchi_forms_visits_completed_total`,
/// `madoguchi_forms_signatures_total` (signatures of the visit),
/// `madoguchi_forms_counters_visited_total` (its `counters_met`: distinct
/// counters of the ticket's legs) and `madoguchi_forms_onestop_visits_total`
/// (visits whose ticket went to one counter only), each by office (the
/// office's resource name). Signatures per visit and the one-stop share
/// are ratios of these.
#[derive(Debug, Clone, Default)]
pub struct KpiCounters {
    completed: Family<OfficeLabels, Counter>,
    signatures: Family<OfficeLabels, Counter>,
    counters_visited: Family<OfficeLabels, Counter>,
    onestop: Family<OfficeLabels, Counter>,
}

impl KpiCounters {
    /// A visit of `office` was completed with these KPIs.
    pub fn visit_completed(&self, office: &str, kpis: &pb::VisitKpis) {
        let labels = [("office", office.to_owned())];
        self.completed.get_or_create(&labels).inc();
        self.signatures
            .get_or_create(&labels)
            .inc_by(u64::from(kpis.signatures));
        self.counters_visited
            .get_or_create(&labels)
            .inc_by(u64::from(kpis.counters_met));
        if kpis.counters_met == 1 {
            self.onestop.get_or_create(&labels).inc();
        }
    }

    /// Registers the counters into the server's metrics.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "madoguchi_forms_visits_completed",
            "Visits completed, by office",
            self.completed.clone(),
        );
        metrics.register(
            "madoguchi_forms_signatures",
            "Signatures of the visits completed, by office",
            self.signatures.clone(),
        );
        metrics.register(
            "madoguchi_forms_counters_visited",
            "Counters the residents of the visits completed went to, by office",
            self.counters_visited.clone(),
        );
        metrics.register(
            "madoguchi_forms_onestop_visits",
            "Visits completed at one counter, by office",
            self.onestop.clone(),
        );
    }
}

/// Items finished at the one-stop counter over all applicable items, in ‰.
pub fn aggregate_share(visits: &[pb::VisitKpis]) -> u32 {
    let done: u64 = visits
        .iter()
        .map(|v| u64::from(v.procedures_done_one_stop))
        .sum();
    let all: u64 = visits.iter().map(|v| u64::from(v.procedures)).sum();
    (done * 1000).checked_div(all).unwrap_or(0) as u32
}

/// Quotes one CSV field (RFC 4180): fields with a comma, quote or line
/// break are enclosed in quotes, quotes doubled.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The CSV export: a header row and one row per visit (RFC 4180, CRLF).
pub fn to_csv(visits: &[pb::VisitKpis]) -> String {
    let mut out = String::from(
        "visit,signatures,counters_met,staff_met,procedures,procedures_done,\
         procedures_done_one_stop,one_stop_share_permille,visit_seconds,wait_seconds,\
         service_seconds,certificates,procedures_late,procedures_lapsed\r\n",
    );
    for v in visits {
        let row = [
            field(&v.visit),
            v.signatures.to_string(),
            v.counters_met.to_string(),
            v.staff_met.to_string(),
            v.procedures.to_string(),
            v.procedures_done.to_string(),
            v.procedures_done_one_stop.to_string(),
            v.one_stop_share_permille.to_string(),
            seconds(v.visit_duration.as_ref()).to_string(),
            seconds(v.wait_duration.as_ref()).to_string(),
            seconds(v.service_duration.as_ref()).to_string(),
            v.certificates.to_string(),
            v.procedures_late.to_string(),
            v.procedures_lapsed.to_string(),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(field("municipalities/032034"), "municipalities/032034");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let csv = to_csv(&[pb::VisitKpis {
            visit: "v".into(),
            signatures: 1,
            ..Default::default()
        }]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0].split(',').count(), 14);
        assert!(lines[1].starts_with("v,1,0,0,"), "{csv}");
    }
}
