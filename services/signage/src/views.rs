//! What the pages receive: queue messages turned into small JSON views
//! with the site's names and colours, and the call announcements. Pure
//! functions; no I/O. A view never carries personal data — the queue holds
//! none, and only numbers, counters and waits are copied.

use std::collections::HashMap;

use madoguchi_platform::site;
use madoguchi_proto::queue::v1 as pb;
use serde::Serialize;

/// The floor of one office as the pages need it, from the site file.
#[derive(Debug, Clone)]
pub struct Floor {
    /// Office id, e.g. `main`.
    pub office_id: String,
    /// Resource name: municipalities/{m}/offices/{o}.
    pub office_name: String,
    /// Office name in Japanese.
    pub name_ja: String,
    /// Office name in English.
    pub name_en: String,
    counters: HashMap<String, site::Counter>,
    categories: HashMap<String, site::Category>,
    /// Category ids in site order.
    pub category_order: Vec<String>,
    /// Counter ids in site order.
    pub counter_order: Vec<String>,
}

impl Floor {
    /// The floor of `office` of a municipality.
    pub fn new(municipality: &str, office: &site::Office) -> Self {
        Self {
            office_id: office.id.clone(),
            office_name: format!("municipalities/{municipality}/offices/{}", office.id),
            name_ja: office.name_ja.clone(),
            name_en: office.name_en.clone(),
            counters: office
                .counters
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect(),
            categories: office
                .categories
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect(),
            category_order: office.categories.iter().map(|c| c.id.clone()).collect(),
            counter_order: office.counters.iter().map(|c| c.id.clone()).collect(),
        }
    }

    /// A counter by id.
    pub fn counter(&self, id: &str) -> Option<&site::Counter> {
        self.counters.get(id)
    }

    /// A category by id.
    pub fn category(&self, id: &str) -> Option<&site::Category> {
        self.categories.get(id)
    }

    fn counter_of(&self, name: &str) -> Option<&site::Counter> {
        last_segment(name, "counters").and_then(|id| self.counters.get(id))
    }

    fn category_of(&self, name: &str) -> Option<&site::Category> {
        last_segment(name, "categories").and_then(|id| self.categories.get(id))
    }
}

/// The id after `…/{collection}/` in a resource name.
fn last_segment<'a>(name: &'a str, collection: &str) -> Option<&'a str> {
    let (head, id) = name.rsplit_once('/')?;
    head.ends_with(collection).then_some(id)
}

/// "A012" → "A-012": how numbers are shown and read out.
pub fn spoken_number(display_number: &str) -> String {
    let split = display_number
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .unwrap_or(display_number.len());
    let (prefix, digits) = display_number.split_at(split);
    if prefix.is_empty() || digits.is_empty() {
        display_number.to_owned()
    } else {
        format!("{prefix}-{digits}")
    }
}

/// The announcement of a call in Japanese and English.
pub fn announcement(number: &str, counter: &str, recall: bool) -> (String, String) {
    let ja = format!("受付番号 {number} 番の方、{counter} 番窓口へお越しください");
    let en = format!("Ticket number {number}, please come to counter {counter}.");
    if recall {
        (
            format!("もう一度お呼びします。{ja}"),
            format!("Calling again: {en}"),
        )
    } else {
        (ja, en)
    }
}

/// A call (or recall) of a ticket to a counter: what the display shows and
/// announces.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallView {
    /// Sequence of the event in the office log.
    pub sequence: u64,
    /// True for a recall (呼び出し直し).
    pub recall: bool,
    /// The number as shown, e.g. "A-012".
    pub number: String,
    /// Counter number above the counter, e.g. "3".
    pub counter: String,
    /// Counter's sign colour.
    pub counter_colour: String,
    /// Floor of the counter.
    pub floor: i32,
    /// Category colour of the ticket.
    pub category_colour: String,
    /// Category in Japanese.
    pub category_ja: String,
    /// Category in English.
    pub category_en: String,
    /// Announcement in Japanese.
    pub announcement_ja: String,
    /// Announcement in English.
    pub announcement_en: String,
}

/// Any other change of a ticket, enough for the display to take a number
/// off the "now calling" list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChangeView {
    /// Sequence of the event in the office log.
    pub sequence: u64,
    /// `issued`, `started`, `finished`, `transferred`, `no-show`, `cancelled`.
    pub kind: &'static str,
    /// The number as shown, e.g. "A-012".
    pub number: String,
}

/// An office event as the display receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventView {
    /// A call or recall.
    Call(CallView),
    /// Another change.
    Change(ChangeView),
}

impl EventView {
    /// The view of an office event.
    pub fn of(floor: &Floor, event: &pb::OfficeEvent) -> Self {
        let ticket = event.ticket.clone().unwrap_or_default();
        let number = spoken_number(&ticket.display_number);
        let kind = pb::EventType::try_from(event.r#type).unwrap_or(pb::EventType::Unspecified);
        let recall = kind == pb::EventType::TicketRecalled;
        if kind == pb::EventType::TicketCalled || recall {
            let counter = floor.counter_of(&event.counter);
            let category = floor.category_of(&ticket.current_category);
            let counter_number = counter
                .map(|c| c.display_number.clone())
                .unwrap_or_else(|| {
                    last_segment(&event.counter, "counters")
                        .unwrap_or("?")
                        .into()
                });
            let (announcement_ja, announcement_en) = announcement(&number, &counter_number, recall);
            return EventView::Call(CallView {
                sequence: event.sequence,
                recall,
                number,
                counter: counter_number,
                counter_colour: counter.map(|c| c.colour.clone()).unwrap_or_default(),
                floor: counter.map(|c| c.floor).unwrap_or(1),
                category_colour: category.map(|c| c.colour.clone()).unwrap_or_default(),
                category_ja: category.map(|c| c.name_ja.clone()).unwrap_or_default(),
                category_en: category.map(|c| c.name_en.clone()).unwrap_or_default(),
                announcement_ja,
                announcement_en,
            });
        }
        let kind = match kind {
            pb::EventType::TicketIssued => "issued",
            pb::EventType::ServiceStarted => "started",
            pb::EventType::ServiceFinished => "finished",
            pb::EventType::TicketTransferred => "transferred",
            pb::EventType::TicketNoShow => "no-show",
            pb::EventType::TicketCancelled => "cancelled",
            _ => "other",
        };
        EventView::Change(ChangeView {
            sequence: event.sequence,
            kind,
            number,
        })
    }

    /// Sequence of the event.
    pub fn sequence(&self) -> u64 {
        match self {
            EventView::Call(c) => c.sequence,
            EventView::Change(c) => c.sequence,
        }
    }
}

/// One category's queue on the display.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CategoryView {
    /// Prefix letter.
    pub prefix: String,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// Sign colour.
    pub colour: String,
    /// People waiting.
    pub waiting: u32,
    /// Estimated wait, lower bound in minutes.
    pub wait_min: u32,
    /// Estimated wait, upper bound in minutes.
    pub wait_max: u32,
}

/// One counter on the display.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CounterView {
    /// Number above the counter.
    pub counter: String,
    /// Sign colour.
    pub colour: String,
    /// Floor.
    pub floor: i32,
    /// The number called to or served at the counter, if any.
    pub number: Option<String>,
    /// True while the ticket is called and not yet served.
    pub calling: bool,
}

/// A snapshot of the office for the display.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusView {
    /// Office name in Japanese.
    pub office_ja: String,
    /// Office name in English.
    pub office_en: String,
    /// Categories in site order.
    pub categories: Vec<CategoryView>,
    /// Counters in site order.
    pub counters: Vec<CounterView>,
    /// Sequence of the newest event the snapshot includes.
    pub last_sequence: u64,
}

impl StatusView {
    /// The view of an office snapshot.
    pub fn of(floor: &Floor, status: &pb::OfficeStatus) -> Self {
        let categories = status
            .categories
            .iter()
            .map(|c| {
                let estimate = c.wait_estimate.unwrap_or_default();
                CategoryView {
                    prefix: c.prefix.clone(),
                    name_ja: c.display_name_ja.clone(),
                    name_en: c.display_name_en.clone(),
                    colour: c.colour.clone(),
                    waiting: c.waiting,
                    wait_min: estimate.min_minutes,
                    wait_max: estimate.max_minutes,
                }
            })
            .collect();
        let counters = status
            .counters
            .iter()
            .map(|c| {
                let current = c.current_ticket.as_ref();
                CounterView {
                    counter: c.display_number.clone(),
                    colour: c.colour.clone(),
                    floor: c.floor,
                    number: current.map(|t| spoken_number(&t.display_number)),
                    calling: current.is_some_and(|t| t.state == pb::TicketState::Called as i32),
                }
            })
            .collect();
        Self {
            office_ja: floor.name_ja.clone(),
            office_en: floor.name_en.clone(),
            categories,
            counters,
            last_sequence: status.last_sequence,
        }
    }
}

/// One ticket on the resident's status page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TicketView {
    /// The number as shown, e.g. "A-012".
    pub number: String,
    /// `waiting`, `called`, `serving`, `done`, `no-show`, `cancelled`.
    pub state: &'static str,
    /// Category in Japanese.
    pub category_ja: String,
    /// Category in English.
    pub category_en: String,
    /// Category colour.
    pub colour: String,
    /// People ahead while waiting.
    pub people_ahead: Option<u32>,
    /// Estimated wait, lower bound in minutes, while waiting.
    pub wait_min: Option<u32>,
    /// Estimated wait, upper bound in minutes, while waiting.
    pub wait_max: Option<u32>,
    /// Counter number once called.
    pub counter: Option<String>,
    /// Counter colour once called.
    pub counter_colour: Option<String>,
    /// Floor of the counter once called.
    pub floor: Option<i32>,
}

impl TicketView {
    /// The view of a ticket.
    pub fn of(floor: &Floor, ticket: &pb::Ticket) -> Self {
        let state = match pb::TicketState::try_from(ticket.state) {
            Ok(pb::TicketState::Waiting) => "waiting",
            Ok(pb::TicketState::Called) => "called",
            Ok(pb::TicketState::Serving) => "serving",
            Ok(pb::TicketState::Done) => "done",
            Ok(pb::TicketState::NoShow) => "no-show",
            Ok(pb::TicketState::Cancelled) => "cancelled",
            _ => "unknown",
        };
        let waiting = state == "waiting";
        let category = floor.category_of(&ticket.current_category);
        let counter = floor.counter_of(&ticket.current_counter);
        let estimate = ticket.wait_estimate.filter(|_| waiting);
        Self {
            number: spoken_number(&ticket.display_number),
            state,
            category_ja: category.map(|c| c.name_ja.clone()).unwrap_or_default(),
            category_en: category.map(|c| c.name_en.clone()).unwrap_or_default(),
            colour: category.map(|c| c.colour.clone()).unwrap_or_default(),
            people_ahead: waiting.then_some(ticket.people_ahead),
            wait_min: estimate.map(|e| e.min_minutes),
            wait_max: estimate.map(|e| e.max_minutes),
            counter: counter.map(|c| c.display_number.clone()),
            counter_colour: counter.map(|c| c.colour.clone()),
            floor: counter.map(|c| c.floor),
        }
    }

    /// True once the visit is over: the page stops following.
    pub fn is_final(&self) -> bool {
        matches!(self.state, "done" | "no-show" | "cancelled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_announcements() {
        assert_eq!(spoken_number("A012"), "A-012");
        assert_eq!(spoken_number("B1"), "B-1");
        assert_eq!(spoken_number("123"), "123");
        let (ja, en) = announcement("A-012", "3", false);
        assert_eq!(ja, "受付番号 A-012 番の方、3 番窓口へお越しください");
        assert_eq!(en, "Ticket number A-012, please come to counter 3.");
        let (ja, en) = announcement("A-012", "3", true);
        assert!(ja.starts_with("もう一度お呼びします。"));
        assert!(en.starts_with("Calling again"));
    }

    #[test]
    fn resource_name_segments() {
        assert_eq!(
            last_segment("municipalities/032034/offices/main/counters/3", "counters"),
            Some("3")
        );
        assert_eq!(
            last_segment("municipalities/032034/offices/main/tickets/3", "counters"),
            None
        );
        assert_eq!(last_segment("", "counters"), None);
    }
}
