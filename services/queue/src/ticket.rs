//! Turning stored rows into the API's `Ticket`, `Leg` and `OfficeEvent`.

use chrono::{DateTime, Utc};
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::prost_types::{Duration as PbDuration, Timestamp};
use madoguchi_proto::queue::v1 as pb;
use madoguchi_proto::types::v1::Date;

use crate::domain::{Estimate, VisitState};
use crate::storage::entities::{leg, visit};

/// A visit and its legs in order, as read in one go.
#[derive(Debug, Clone)]
pub struct TicketRecord {
    /// The visit row.
    pub visit: visit::Model,
    /// Its legs, by index.
    pub legs: Vec<leg::Model>,
}

/// Microseconds since the epoch, the stored form of instants.
pub fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// A protobuf timestamp from stored microseconds.
pub fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn duration(from: Option<i64>, to: Option<i64>) -> Option<PbDuration> {
    let (from, to) = (from?, to?);
    let micros = (to - from).max(0);
    Some(PbDuration {
        seconds: micros / 1_000_000,
        nanos: ((micros % 1_000_000) * 1000) as i32,
    })
}

/// The API form of a business day.
pub fn date(day: BusinessDay) -> Date {
    use chrono::Datelike;
    let date = day.date();
    Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}

/// The API form of a stored visit state.
pub fn ticket_state(state: i16) -> pb::TicketState {
    match VisitState::from_i16(state) {
        Some(VisitState::Waiting) => pb::TicketState::Waiting,
        Some(VisitState::Called) => pb::TicketState::Called,
        Some(VisitState::Serving) => pb::TicketState::Serving,
        Some(VisitState::Done) => pb::TicketState::Done,
        Some(VisitState::NoShow) => pb::TicketState::NoShow,
        Some(VisitState::Cancelled) => pb::TicketState::Cancelled,
        None => pb::TicketState::Unspecified,
    }
}

fn leg_outcome(outcome: i16) -> pb::LegOutcome {
    match outcome {
        1 => pb::LegOutcome::Finished,
        2 => pb::LegOutcome::Transferred,
        3 => pb::LegOutcome::NoShow,
        4 => pb::LegOutcome::Cancelled,
        _ => pb::LegOutcome::Unspecified,
    }
}

/// The API form of an estimate.
pub fn wait_estimate(estimate: Estimate) -> pb::WaitEstimate {
    pb::WaitEstimate {
        min_minutes: estimate.min_minutes,
        max_minutes: estimate.max_minutes,
        open_counters: estimate.open_counters,
        sample_size: estimate.sample_size,
    }
}

impl TicketRecord {
    /// Resource name of the ticket.
    pub fn name(&self) -> String {
        format!("{}/tickets/{}", self.visit.office, self.visit.id)
    }

    /// The etag of this version.
    pub fn etag(&self) -> String {
        self.visit.version.to_string()
    }

    /// The API form, without the wait fields (set by the caller while the
    /// ticket waits).
    pub fn to_proto(&self) -> pb::Ticket {
        let v = &self.visit;
        let business_day = BusinessDay::from_ordinal(v.business_day).map(date);
        pb::Ticket {
            name: self.name(),
            display_number: v.display_number.clone(),
            number: u32::try_from(v.number).unwrap_or_default(),
            issue_category: v.issue_category.clone(),
            business_day,
            priority: v.priority,
            state: ticket_state(v.state) as i32,
            issue_time: Some(timestamp(v.issued_at)),
            legs: self
                .legs
                .iter()
                .map(|l| pb::Leg {
                    category: l.category.clone(),
                    counter: l.counter.clone().unwrap_or_default(),
                    enqueue_time: Some(timestamp(l.enqueued_at)),
                    call_time: l.called_at.map(timestamp),
                    start_time: l.started_at.map(timestamp),
                    end_time: l.ended_at.map(timestamp),
                    outcome: leg_outcome(l.outcome) as i32,
                    wait_duration: duration(Some(l.enqueued_at), l.called_at),
                    service_duration: duration(l.started_at, l.ended_at),
                })
                .collect(),
            current_category: v.current_category.clone(),
            current_counter: v.current_counter.clone().unwrap_or_default(),
            recall_count: u32::try_from(v.recall_count).unwrap_or_default(),
            people_ahead: 0,
            wait_estimate: None,
            etag: self.etag(),
            sequence: u64::try_from(v.last_sequence).unwrap_or_default(),
            issued_offline: v.issued_offline,
            import_time: v.imported_at.map(timestamp),
            issuing_device: v.issuing_device.clone().unwrap_or_default(),
        }
    }
}
