//! Queue rules and types, without I/O: resource names, ticket states and
//! which transitions they allow, the wrap policy for numbers, and the wait
//! estimate. Storage and the gRPC adapter build on these.

use std::fmt;

use chrono::Duration;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::is_resource_id;
use madoguchi_platform::types::MunicipalityCode;

/// `municipalities/{code}/offices/{office}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeName {
    /// The municipality that owns the office.
    pub municipality: MunicipalityCode,
    /// The office id.
    pub office: String,
}

impl OfficeName {
    /// Parses an office resource name.
    pub fn parse(name: &str) -> Result<Self, String> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["municipalities", code, "offices", office] => Self::from_parts(code, office),
            _ => Err("expected municipalities/{code}/offices/{office}".into()),
        }
    }

    fn from_parts(code: &str, office: &str) -> Result<Self, String> {
        let municipality =
            MunicipalityCode::parse(code).map_err(|e| format!("municipality code: {e}"))?;
        if !is_resource_id(office) {
            return Err("office id must be 1-63 lowercase letters, digits or hyphens".into());
        }
        Ok(Self {
            municipality,
            office: office.to_owned(),
        })
    }

    /// The resource name of a child collection member of this office.
    pub fn child(&self, collection: &str, id: &str) -> String {
        format!("{self}/{collection}/{id}")
    }
}

impl fmt::Display for OfficeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "municipalities/{}/offices/{}",
            self.municipality, self.office
        )
    }
}

/// A resource directly under an office: a category, a counter or a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeChild {
    /// The office.
    pub office: OfficeName,
    /// The collection: `categories`, `counters` or `tickets`.
    pub collection: String,
    /// The child's id.
    pub id: String,
}

impl OfficeChild {
    /// Parses `municipalities/{m}/offices/{o}/{collection}/{id}`.
    pub fn parse(name: &str, collection: &str) -> Result<Self, String> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["municipalities", code, "offices", office, c, id] if *c == collection => {
                let office = OfficeName::from_parts(code, office)?;
                let valid = if collection == "tickets" {
                    uuid::Uuid::parse_str(id).is_ok()
                } else {
                    is_resource_id(id)
                };
                if !valid {
                    return Err(format!("invalid {collection} id"));
                }
                Ok(Self {
                    office,
                    collection: collection.to_owned(),
                    id: (*id).to_owned(),
                })
            }
            _ => Err(format!(
                "expected municipalities/{{code}}/offices/{{office}}/{collection}/{{id}}"
            )),
        }
    }
}

impl fmt::Display for OfficeChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.office, self.collection, self.id)
    }
}

/// The state of a visit, stored as a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitState {
    /// Waiting in the queue of its current leg.
    Waiting = 1,
    /// Called to a counter.
    Called = 2,
    /// Being served.
    Serving = 3,
    /// Finished.
    Done = 4,
    /// Did not come.
    NoShow = 5,
    /// Cancelled.
    Cancelled = 6,
}

/// The `state` of a leg row once the leg has ended (its outcome says how).
pub const LEG_ENDED: i16 = 0;

impl VisitState {
    /// States whose ticket number is still in use on the floor.
    pub const ACTIVE: [VisitState; 3] =
        [VisitState::Waiting, VisitState::Called, VisitState::Serving];

    /// From the stored integer.
    pub fn from_i16(value: i16) -> Option<Self> {
        Some(match value {
            1 => Self::Waiting,
            2 => Self::Called,
            3 => Self::Serving,
            4 => Self::Done,
            5 => Self::NoShow,
            6 => Self::Cancelled,
            _ => return None,
        })
    }

    /// Lowercase name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Called => "called",
            Self::Serving => "serving",
            Self::Done => "done",
            Self::NoShow => "no-show",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a leg ended, stored as a small integer (0 while current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegOutcome {
    /// Still the current leg.
    Open = 0,
    /// Served; the visit ended.
    Finished = 1,
    /// Moved on to another category.
    Transferred = 2,
    /// Did not come.
    NoShow = 3,
    /// Cancelled.
    Cancelled = 4,
}

/// An operation on an existing ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketAction {
    /// Call again.
    Recall,
    /// Mark as not come.
    NoShow,
    /// Start service.
    Start,
    /// Finish service.
    Finish,
    /// Queue in another category.
    Transfer,
    /// Cancel.
    Cancel,
    /// Cancel a ticket the kiosk could not print: it was never handed out,
    /// so it stops counting as issued. Only a waiting ticket on its first
    /// leg qualifies.
    Void,
}

impl TicketAction {
    /// Checks that a ticket in `state` allows this action.
    ///
    /// Finishing a ticket that was called but never marked as started is
    /// allowed (staff often skip the button): service is then taken to
    /// have started at the call.
    pub fn check(self, state: VisitState, ticket: &str) -> Result<(), ServiceError> {
        use VisitState::*;
        let allowed: &[VisitState] = match self {
            Self::Recall | Self::NoShow | Self::Start => &[Called],
            Self::Finish => &[Called, Serving],
            Self::Transfer => &[Waiting, Called, Serving],
            Self::Cancel => &[Waiting, Called],
            Self::Void => &[Waiting],
        };
        if allowed.contains(&state) {
            return Ok(());
        }
        let reason = match (self, state) {
            (_, Done | NoShow | Cancelled) => "TICKET_CLOSED",
            (Self::Recall | Self::NoShow | Self::Start, _) => "TICKET_NOT_CALLED",
            (Self::Finish, _) => "TICKET_NOT_AT_COUNTER",
            (Self::Cancel, _) => "TICKET_IN_SERVICE",
            (Self::Void, _) => "TICKET_ALREADY_CALLED",
            (Self::Transfer, _) => "TICKET_CLOSED",
        };
        Err(ServiceError::precondition(
            reason,
            ticket,
            format!("ticket is {}", state.as_str()),
        ))
    }
}

/// The number after `last` in a category's range `1..=max`: after `max`
/// comes 1 (the wrap). Callers skip numbers still in use on the floor.
pub fn successor(last: u32, max: u32) -> u32 {
    if last >= max { 1 } else { last + 1 }
}

/// How ticket numbers are printed: prefix letter and three digits.
pub fn display_number(prefix: &str, number: u32) -> String {
    format!("{prefix}{number:03}")
}

/// Inputs of a wait estimate for one queue.
#[derive(Debug, Clone)]
pub struct EstimateInput {
    /// Tickets ahead in the queue.
    pub ahead: u32,
    /// Counters that called in this category recently.
    pub open_counters: u32,
    /// Recent service durations in this category, any order.
    pub recent_services: Vec<Duration>,
    /// Configured service time before any has been measured.
    pub default_service: Duration,
}

/// A wait range in whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Lower bound.
    pub min_minutes: u32,
    /// Upper bound.
    pub max_minutes: u32,
    /// Counters used in the division (at least 1).
    pub open_counters: u32,
    /// Measured services used; 0 when the default was used.
    pub sample_size: u32,
}

/// Samples needed before measured service times replace the default.
pub const MIN_SAMPLES: usize = 3;

/// Estimates the wait: `ahead × per-ticket time ÷ open counters`, with the
/// per-ticket time taken from the 25th and 75th percentiles of recent
/// service times (or the default ±25 % before three have been measured).
pub fn estimate_wait(input: &EstimateInput) -> Estimate {
    let open = input.open_counters.max(1);
    let (low, high, samples) = if input.recent_services.len() >= MIN_SAMPLES {
        let mut seconds: Vec<i64> = input
            .recent_services
            .iter()
            .map(|d| d.num_seconds().max(0))
            .collect();
        seconds.sort_unstable();
        (
            percentile(&seconds, 25),
            percentile(&seconds, 75),
            seconds.len() as u32,
        )
    } else {
        let default = input.default_service.num_seconds().max(60);
        (default * 3 / 4, default * 5 / 4, 0)
    };
    let ahead = i64::from(input.ahead);
    let open_i = i64::from(open);
    let min_seconds = ahead * low / open_i;
    let max_seconds = ahead * high / open_i;
    Estimate {
        min_minutes: u32::try_from(min_seconds / 60).unwrap_or(u32::MAX),
        max_minutes: u32::try_from((max_seconds + 59) / 60).unwrap_or(u32::MAX),
        open_counters: open,
        sample_size: samples,
    }
}

/// Nearest-rank percentile of sorted, non-empty data.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[(rank - 1).min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_garbage() {
        let office = OfficeName::parse("municipalities/032034/offices/main");
        assert_eq!(
            office.as_ref().map(ToString::to_string).as_deref(),
            Ok("municipalities/032034/offices/main")
        );
        for bad in [
            "",
            "municipalities/032035/offices/main",
            "municipalities/032034/offices/Main",
            "municipalities/032034/office/main",
            "municipalities/032034/offices/main/extra",
        ] {
            assert!(OfficeName::parse(bad).is_err(), "{bad}");
        }
        let name = "municipalities/032034/offices/main/counters/3";
        let counter = OfficeChild::parse(name, "counters");
        assert_eq!(counter.as_ref().map(|c| c.id.as_str()), Ok("3"));
        assert_eq!(counter.map(|c| c.to_string()).as_deref(), Ok(name));
        assert!(
            OfficeChild::parse("municipalities/032034/offices/main/tickets/3", "tickets").is_err()
        );
    }

    #[test]
    fn numbers_wrap_after_the_maximum() {
        assert_eq!(successor(0, 999), 1);
        assert_eq!(successor(998, 999), 999);
        assert_eq!(successor(999, 999), 1);
        // A range shrunk by a new site file wraps at once.
        assert_eq!(successor(1500, 999), 1);
    }

    #[test]
    fn estimate_uses_measured_times_and_counters() {
        let minutes = |m: i64| Duration::minutes(m);
        let default = estimate_wait(&EstimateInput {
            ahead: 4,
            open_counters: 0,
            recent_services: vec![],
            default_service: minutes(10),
        });
        assert_eq!((default.min_minutes, default.max_minutes), (30, 50));
        assert_eq!(default.sample_size, 0);

        let measured = estimate_wait(&EstimateInput {
            ahead: 6,
            open_counters: 2,
            recent_services: [4, 5, 6, 8].map(minutes).to_vec(),
            default_service: minutes(10),
        });
        // p25 = 4 min, p75 = 6 min; 6 ahead over 2 counters.
        assert_eq!((measured.min_minutes, measured.max_minutes), (12, 18));
        assert_eq!(measured.sample_size, 4);

        let nobody = estimate_wait(&EstimateInput {
            ahead: 0,
            open_counters: 1,
            recent_services: vec![],
            default_service: minutes(5),
        });
        assert_eq!((nobody.min_minutes, nobody.max_minutes), (0, 0));
    }
}
