//! Stored rows to API messages: orders, payments, refunds, sessions, the
//! rendered receipt, the daily-close inputs and the reconciliation CSV.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::types::BusinessDay;
use madoguchi_proto::pos::v1 as pb;
use madoguchi_proto::prost_types::Timestamp;
use madoguchi_proto::types::v1::{Date, Yen as PbYen};

use super::entities::{order, order_line, payment, refund, session};
use crate::domain::{CloseLine, CloseRefund, FeeSchedule, Method, PaymentState, RefundKind, Yen};

/// What receipts print beside the stored rows.
#[derive(Debug)]
pub struct Names {
    /// Municipality name, e.g. 大船渡市.
    pub municipality_ja: String,
    /// The fee schedule (exemption names).
    pub fees: FeeSchedule,
}

/// Microseconds since the Unix epoch, the stored form of an instant.
pub fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// A protobuf timestamp from stored microseconds.
pub fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

fn jst(micros: i64) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(9 * 3600)?;
    DateTime::from_timestamp_micros(micros).map(|t| t.with_timezone(&offset))
}

fn yen(amount: i64) -> Option<PbYen> {
    Some(PbYen { amount })
}

/// A business day as a proto date.
pub fn date_pb(day: BusinessDay) -> Date {
    let d = day.date();
    Date {
        year: d.year(),
        month: i32::try_from(d.month()).unwrap_or(0),
        day: i32::try_from(d.day()).unwrap_or(0),
    }
}

fn day_pb(ordinal: i32) -> Option<Date> {
    BusinessDay::from_ordinal(ordinal).map(date_pb)
}

/// A session; `expected` is computed by the caller for an open one.
pub fn session_pb(row: &session::Model, expected: Yen) -> pb::RegisterSession {
    let closed = row.state == 2;
    pb::RegisterSession {
        name: row.name.clone(),
        register: row.register.clone(),
        state: if closed {
            pb::RegisterSessionState::Closed
        } else {
            pb::RegisterSessionState::Open
        } as i32,
        float_yen: yen(row.float_yen),
        counted_cash: row.counted_yen.and_then(yen),
        expected_cash: yen(row.expected_yen.unwrap_or(expected.0)),
        cash_difference: row
            .counted_yen
            .zip(row.expected_yen)
            .and_then(|(c, e)| yen(c - e)),
        business_day: day_pb(row.business_day),
        open_time: Some(timestamp(row.opened_at)),
        close_time: row.closed_at.map(timestamp),
        opened_by: row.opened_by.clone(),
        closed_by: row.closed_by.clone().unwrap_or_default(),
    }
}

fn line_pb(line: &order_line::Model) -> pb::OrderLine {
    pb::OrderLine {
        fee_item: line.fee_item.clone(),
        name_ja: line.name_ja.clone(),
        unit_fee: yen(line.unit_fee_yen),
        copies: u32::try_from(line.copies).unwrap_or(0),
        amount: yen(line.amount_yen),
        revenue_account: line.revenue_account.clone(),
        exemption_reason: line.exemption_reason.clone().unwrap_or_default(),
        non_taxable: true,
    }
}

/// An order with its payment state.
pub fn order_pb(
    row: &order::Model,
    lines: &[order_line::Model],
    live: Option<&payment::Model>,
    _names: &Names,
) -> pb::Order {
    let state = match live {
        None => pb::OrderState::Unpaid,
        Some(p) if p.state == PaymentState::Approved as i16 => pb::OrderState::Paid,
        Some(_) => pb::OrderState::PaymentInProgress,
    };
    pb::Order {
        name: row.name.clone(),
        certificate_request: row.certificate_request.clone().unwrap_or_default(),
        lines: lines.iter().map(line_pb).collect(),
        total: yen(row.total_yen),
        state: state as i32,
        payment: live.map(|p| p.name.clone()).unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        created_by: row.created_by.clone(),
    }
}

/// A payment; `refunded` is the sum of its completed refunds.
pub fn payment_pb(row: &payment::Model, refunded: Yen) -> pb::Payment {
    let cash = row.method == Method::Cash as i16;
    pb::Payment {
        name: row.name.clone(),
        order: row.order_name.clone(),
        register: row.register.clone(),
        session: row.session.clone(),
        method: i32::from(row.method),
        state: i32::from(row.state),
        amount: yen(row.amount_yen),
        tendered: if cash { yen(row.tendered_yen) } else { None },
        change: if cash { yen(row.change_yen) } else { None },
        request_id: row.request_id.clone(),
        terminal_reference: row.terminal_reference.clone().unwrap_or_default(),
        terminal_result_code: row.terminal_result_code.clone(),
        approval_number: row.approval_number.clone(),
        terminal_trace: row.terminal_trace.clone(),
        receipt_number: row.receipt_number.clone().unwrap_or_default(),
        business_day: day_pb(row.business_day),
        create_time: Some(timestamp(row.created_at)),
        settle_time: row.settled_at.map(timestamp),
        created_by: row.created_by.clone(),
        resolved_by: row.resolved_by.clone(),
        resolution_note: row.resolution_note.clone(),
        refunded: yen(refunded.0),
    }
}

/// A void or refund.
pub fn refund_pb(row: &refund::Model) -> pb::Refund {
    pb::Refund {
        name: row.name.clone(),
        payment: row.payment.clone(),
        kind: i32::from(row.kind),
        state: i32::from(row.state),
        amount: yen(row.amount_yen),
        line_index: row
            .line_index
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(0),
        reason: row.reason.clone(),
        requested_by: row.requested_by.clone(),
        register: row.register.clone(),
        method: i32::from(row.method),
        original_terminal_reference: String::new(),
        terminal_reference: row.terminal_reference.clone().unwrap_or_default(),
        business_day: day_pb(row.business_day),
        create_time: Some(timestamp(row.created_at)),
        settle_time: row.settled_at.map(timestamp),
        request_id: row.request_id.clone(),
    }
}

/// The rendered receipt of an approved payment.
pub fn receipt_pb(
    row: &payment::Model,
    lines: &[order_line::Model],
    office_ja: &str,
    reprint: bool,
    names: &Names,
) -> pb::Receipt {
    let issued = row.approved_at.unwrap_or(row.created_at);
    let cash = row.method == Method::Cash as i16;
    pb::Receipt {
        municipality_name: names.municipality_ja.clone(),
        office_name: office_ja.to_owned(),
        receipt_number: row.receipt_number.clone().unwrap_or_default(),
        issue_time: Some(timestamp(issued)),
        lines: lines
            .iter()
            .map(|l| pb::ReceiptLine {
                name_ja: l.name_ja.clone(),
                unit_fee: yen(l.unit_fee_yen),
                copies: u32::try_from(l.copies).unwrap_or(0),
                amount: yen(l.amount_yen),
                exemption_ja: l
                    .exemption_reason
                    .as_deref()
                    .map(|id| {
                        names
                            .fees
                            .exemption_name(id)
                            .map_or_else(|| id.to_owned(), |n| format!("免除（{n}）"))
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        total: yen(row.amount_yen),
        method: i32::from(row.method),
        tendered: if cash { yen(row.tendered_yen) } else { None },
        change: if cash { yen(row.change_yen) } else { None },
        // Every fee the register charges is an administrative fee (手数料),
        // which is outside consumption tax.
        non_taxable: true,
        reprint,
        payment: row.name.clone(),
        approval_number: row.approval_number.clone(),
        issue_time_text: jst(issued)
            .map(|t| t.format("%Y年%m月%d日 %H:%M").to_string())
            .unwrap_or_default(),
    }
}

/// An order line as the daily close counts it.
pub fn close_line(line: &order_line::Model) -> CloseLine {
    CloseLine {
        fee_item: line.fee_item.clone(),
        name_ja: line.name_ja.clone(),
        copies: u32::try_from(line.copies).unwrap_or(0),
        amount: Yen(line.amount_yen),
        revenue_account: line.revenue_account.clone(),
        exempted: line.exemption_reason.is_some(),
    }
}

/// The lines a completed refund paid back: one line for a refund, every
/// line in full for a void.
fn refunded_lines(
    row: &refund::Model,
    lines: &[order_line::Model],
) -> Vec<(order_line::Model, i64)> {
    match row.line_index {
        Some(i) => lines
            .iter()
            .filter(|l| l.line_index == i)
            .map(|l| (l.clone(), row.amount_yen))
            .collect(),
        None => lines.iter().map(|l| (l.clone(), l.amount_yen)).collect(),
    }
}

/// A completed refund as the daily close counts it.
pub fn close_refund(row: &refund::Model, lines: &[order_line::Model]) -> CloseRefund {
    CloseRefund {
        method: Method::from_i32(i32::from(row.method)).unwrap_or(Method::Cash),
        kind: RefundKind::from_i16(row.kind).unwrap_or(RefundKind::Refund),
        lines: refunded_lines(row, lines)
            .into_iter()
            .map(|(l, amount)| (l.fee_item, l.name_ja, l.revenue_account, Yen(amount)))
            .collect(),
    }
}

/// The CSV header; documented column by column in docs/pos.md.
pub const CSV_COLUMNS: [&str; 18] = [
    "business_day",
    "office",
    "register",
    "transaction",
    "payment",
    "refund",
    "receipt_number",
    "method",
    "line_index",
    "fee_item",
    "fee_item_name",
    "revenue_account",
    "unit_fee_yen",
    "copies",
    "exemption_reason",
    "amount_yen",
    "terminal_reference",
    "time",
];

/// One row per line of every approved (or later voided) payment, then one
/// per line paid back by every completed void or refund, amounts negative.
pub fn reconciliation_csv<'a>(
    payments: &[payment::Model],
    refunds: &[refund::Model],
    lines: &BTreeMap<String, Vec<order_line::Model>>,
    original: impl Fn(&str) -> Option<&'a payment::Model>,
) -> Result<(String, u32), ServiceError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| ServiceError::Internal(format!("writing csv: {e}"));
    out.write_record(CSV_COLUMNS).map_err(csv_error)?;
    let mut rows = 0u32;
    let day = |ordinal: i32| {
        BusinessDay::from_ordinal(ordinal)
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    let time = |m: Option<i64>| m.and_then(jst).map(|t| t.to_rfc3339()).unwrap_or_default();
    let method = |m: i16| {
        Method::from_i32(i32::from(m))
            .map(Method::as_str)
            .unwrap_or_default()
    };
    let empty = Vec::new();
    for p in payments {
        for l in lines.get(&p.order_name).unwrap_or(&empty) {
            out.write_record([
                day(p.business_day),
                p.office.clone(),
                p.register.clone(),
                "SALE".to_owned(),
                p.name.clone(),
                String::new(),
                p.receipt_number.clone().unwrap_or_default(),
                method(p.method).to_owned(),
                l.line_index.to_string(),
                l.fee_item.clone(),
                l.name_ja.clone(),
                l.revenue_account.clone(),
                l.unit_fee_yen.to_string(),
                l.copies.to_string(),
                l.exemption_reason.clone().unwrap_or_default(),
                l.amount_yen.to_string(),
                p.terminal_reference.clone().unwrap_or_default(),
                time(p.approved_at),
            ])
            .map_err(csv_error)?;
            rows += 1;
        }
    }
    for r in refunds {
        let receipt = original(&r.payment)
            .and_then(|p| p.receipt_number.clone())
            .unwrap_or_default();
        let kind = RefundKind::from_i16(r.kind).unwrap_or(RefundKind::Refund);
        for (l, amount) in refunded_lines(r, lines.get(&r.order_name).unwrap_or(&empty)) {
            out.write_record([
                day(r.business_day),
                r.office.clone(),
                r.register.clone(),
                kind.as_str().to_owned(),
                r.payment.clone(),
                r.name.clone(),
                receipt.clone(),
                method(r.method).to_owned(),
                l.line_index.to_string(),
                l.fee_item.clone(),
                l.name_ja.clone(),
                l.revenue_account.clone(),
                l.unit_fee_yen.to_string(),
                l.copies.to_string(),
                l.exemption_reason.clone().unwrap_or_default(),
                (-amount).to_string(),
                r.terminal_reference.clone().unwrap_or_default(),
                time(r.settled_at),
            ])
            .map_err(csv_error)?;
            rows += 1;
        }
    }
    let bytes = out
        .into_inner()
        .map_err(|e| ServiceError::Internal(format!("writing csv: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| ServiceError::Internal(format!("csv is not utf-8: {e}")))?;
    Ok((text, rows))
}
