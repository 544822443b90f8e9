//! POS rules and types, without I/O: resource names, yen, payment and
//! refund states and the transitions they allow, the fee schedule, change,
//! terminal references and the daily-close arithmetic. Storage and the gRPC
//! adapter build on these.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use madoguchi_catalog::Catalog;
use madoguchi_platform::error::ServiceError;
use madoguchi_platform::site::is_resource_id;
use madoguchi_platform::types::MunicipalityCode;

/// Largest cash float a session may open with.
pub const MAX_FLOAT_YEN: i64 = 1_000_000;
/// Largest cash count a session may close with.
pub const MAX_COUNTED_YEN: i64 = 100_000_000;
/// Most a resident may hand over beyond the total (change is paid from the
/// drawer; a ¥1,000,000 note pile is a typing error).
pub const MAX_OVERPAY_YEN: i64 = 1_000_000;
/// Most copies of one line.
pub const MAX_COPIES: u32 = 100;
/// Most lines of one order.
pub const MAX_LINES: usize = 50;

/// An amount of yen. Yen has no minor unit; arithmetic is checked, so an
/// absurd amount is an error, never a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Yen(pub i64);

impl Yen {
    /// Zero yen.
    pub const ZERO: Yen = Yen(0);

    /// `self + other`, or an error on overflow.
    pub fn plus(self, other: Yen) -> Result<Yen, ServiceError> {
        self.0
            .checked_add(other.0)
            .map(Yen)
            .ok_or_else(|| ServiceError::invalid("amount", "amount out of range"))
    }

    /// `self × n`, or an error on overflow.
    pub fn times(self, n: u32) -> Result<Yen, ServiceError> {
        self.0
            .checked_mul(i64::from(n))
            .map(Yen)
            .ok_or_else(|| ServiceError::invalid("copies", "amount out of range"))
    }
}

impl fmt::Display for Yen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", self.0)
    }
}

/// `municipalities/{code}/offices/{office}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeName {
    /// The municipality that owns the office.
    pub municipality: MunicipalityCode,
    /// The office id.
    pub office: String,
}

fn office_of(code: &str, office: &str) -> Result<OfficeName, String> {
    let municipality =
        MunicipalityCode::parse(code).map_err(|e| format!("municipality code: {e}"))?;
    if !is_resource_id(office) {
        return Err("office id must be 1-63 lowercase letters, digits or hyphens".into());
    }
    Ok(OfficeName {
        municipality,
        office: office.to_owned(),
    })
}

impl OfficeName {
    /// Parses an office resource name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.split('/').collect::<Vec<_>>().as_slice() {
            ["municipalities", code, "offices", office] => office_of(code, office),
            _ => Err("expected municipalities/{code}/offices/{office}".into()),
        }
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

/// A resource directly under an office: a register or an order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OfficeChild {
    /// The office.
    pub office: OfficeName,
    /// The child's id.
    pub id: String,
    collection: &'static str,
}

impl OfficeChild {
    /// Parses `municipalities/{m}/offices/{o}/{collection}/{id}`.
    pub fn parse(name: &str, collection: &'static str) -> Result<Self, String> {
        match name.split('/').collect::<Vec<_>>().as_slice() {
            ["municipalities", code, "offices", office, c, id] if *c == collection => {
                if !is_resource_id(id) {
                    return Err(format!(
                        "{collection} id must be 1-63 lowercase letters, digits or hyphens"
                    ));
                }
                Ok(Self {
                    office: office_of(code, office)?,
                    id: (*id).to_owned(),
                    collection,
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

/// A payment (`{order}/payments/{id}`) or a refund
/// (`{order}/payments/{p}/refunds/{id}`): stored under its full name, so
/// parsing only checks the shape and extracts the office for tenancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedName {
    /// The office it belongs to.
    pub office: OfficeName,
    /// The full resource name.
    pub name: String,
}

impl NestedName {
    /// Parses a payment name.
    pub fn payment(name: &str) -> Result<Self, String> {
        match name.split('/').collect::<Vec<_>>().as_slice() {
            [
                "municipalities",
                code,
                "offices",
                office,
                "orders",
                _,
                "payments",
                _,
            ] => Ok(Self {
                office: office_of(code, office)?,
                name: name.to_owned(),
            }),
            _ => Err("expected municipalities/{m}/offices/{o}/orders/{order}/payments/{id}".into()),
        }
    }

    /// Parses a refund name.
    pub fn refund(name: &str) -> Result<Self, String> {
        match name.split('/').collect::<Vec<_>>().as_slice() {
            [
                "municipalities",
                code,
                "offices",
                office,
                "orders",
                _,
                "payments",
                _,
                "refunds",
                _,
            ] => Ok(Self {
                office: office_of(code, office)?,
                name: name.to_owned(),
            }),
            _ => Err("expected {payment}/refunds/{id}".into()),
        }
    }
}

/// How a payment is made, stored as a small integer (the proto values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// 現金.
    Cash = 1,
    /// Card on the terminal.
    Card = 2,
    /// E-money on the terminal.
    Emoney = 3,
    /// QR on the terminal.
    Qr = 4,
}

impl Method {
    /// Every method, in proto order.
    pub const ALL: [Method; 4] = [Method::Cash, Method::Card, Method::Emoney, Method::Qr];

    /// From the stored or proto value.
    pub fn from_i32(value: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as i32 == value)
    }

    /// Whether the payment terminal takes it.
    pub fn uses_terminal(self) -> bool {
        self != Method::Cash
    }

    /// Its name in the reconciliation CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "CASH",
            Method::Card => "CARD",
            Method::Emoney => "EMONEY",
            Method::Qr => "QR",
        }
    }
}

/// Where a payment is, stored as a small integer (the proto values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentState {
    /// Waiting for the gateway.
    Pending = 1,
    /// The terminal is working.
    InProgress = 2,
    /// Paid.
    Approved = 3,
    /// Declined.
    Declined = 4,
    /// Aborted.
    Aborted = 5,
    /// 処理未了.
    Unknown = 6,
    /// Voided in full.
    Voided = 7,
}

/// The states in which a payment holds its order ("live"). The database's
/// partial unique index `pos_payments_one_live` lists the same values.
pub const LIVE_STATES: [PaymentState; 4] = [
    PaymentState::Pending,
    PaymentState::InProgress,
    PaymentState::Approved,
    PaymentState::Unknown,
];

impl PaymentState {
    /// From the stored value.
    pub fn from_i16(value: i16) -> Option<Self> {
        use PaymentState::*;
        [
            Pending, InProgress, Approved, Declined, Aborted, Unknown, Voided,
        ]
        .into_iter()
        .find(|s| *s as i16 == value)
    }

    /// Whether the outcome is final (only a void changes it afterwards).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            PaymentState::Approved
                | PaymentState::Declined
                | PaymentState::Aborted
                | PaymentState::Voided
        )
    }
}

/// What the gateway reports about a terminal transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Approved.
    Approved,
    /// Declined.
    Declined,
    /// Aborted.
    Aborted,
    /// 処理未了.
    Unknown,
    /// The terminal started working on it.
    InProgress,
}

impl Outcome {
    /// From the proto value.
    pub fn from_i32(value: i32) -> Option<Self> {
        match value {
            1 => Some(Outcome::Approved),
            2 => Some(Outcome::Declined),
            3 => Some(Outcome::Aborted),
            4 => Some(Outcome::Unknown),
            5 => Some(Outcome::InProgress),
            _ => None,
        }
    }
}

/// What a reported outcome does to a payment in `state`: the new state,
/// `Ok(None)` when the report changes nothing (a repeat, or an
/// acknowledgement that arrives after the outcome), or the refusal.
///
/// Reports may arrive twice (the gateway retries after a lost answer) and
/// out of order (an acknowledgement after the outcome); both are harmless.
/// A settled payment never changes its outcome: the terminal's first
/// definite word is the truth, and a contradicting report is a bug or a
/// confused gateway that staff must look at.
pub fn apply_outcome(
    state: PaymentState,
    outcome: Outcome,
) -> Result<Option<PaymentState>, &'static str> {
    use PaymentState as S;
    let target = match outcome {
        Outcome::Approved => S::Approved,
        Outcome::Declined => S::Declined,
        Outcome::Aborted => S::Aborted,
        Outcome::Unknown => S::Unknown,
        Outcome::InProgress => S::InProgress,
    };
    match state {
        S::Pending => Ok(Some(target)),
        S::InProgress => match outcome {
            Outcome::InProgress => Ok(None),
            _ => Ok(Some(target)),
        },
        // 処理未了 waits for a definite answer (the gateway's status
        // enquiry); another "unknown" or a late acknowledgement changes
        // nothing. An abort cannot settle it: the sale may have gone through.
        S::Unknown => match outcome {
            Outcome::Approved | Outcome::Declined => Ok(Some(target)),
            Outcome::Unknown | Outcome::InProgress => Ok(None),
            Outcome::Aborted => Err("PAYMENT_OUTCOME_UNKNOWN"),
        },
        S::Approved | S::Declined | S::Aborted => {
            if target == state || outcome == Outcome::InProgress {
                Ok(None)
            } else {
                Err("PAYMENT_ALREADY_SETTLED")
            }
        }
        S::Voided => {
            if outcome == Outcome::Approved || outcome == Outcome::InProgress {
                Ok(None)
            } else {
                Err("PAYMENT_ALREADY_SETTLED")
            }
        }
    }
}

/// Whether a refund is a void or a refund of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundKind {
    /// 取消.
    Void = 1,
    /// 還付.
    Refund = 2,
}

impl RefundKind {
    /// From the stored value.
    pub fn from_i16(value: i16) -> Option<Self> {
        match value {
            1 => Some(RefundKind::Void),
            2 => Some(RefundKind::Refund),
            _ => None,
        }
    }

    /// Its name in the reconciliation CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundKind::Void => "VOID",
            RefundKind::Refund => "REFUND",
        }
    }
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundState {
    /// Sent to the gateway.
    Requested = 1,
    /// Paid back.
    Completed = 2,
    /// The terminal refused; nothing was paid back.
    Failed = 3,
}

impl RefundState {
    /// From the stored value.
    pub fn from_i16(value: i16) -> Option<Self> {
        match value {
            1 => Some(RefundState::Requested),
            2 => Some(RefundState::Completed),
            3 => Some(RefundState::Failed),
            _ => None,
        }
    }
}

/// A chargeable item of the fee schedule: a certificate kind or a
/// hand-entered fee item of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeItem {
    /// Id.
    pub id: String,
    /// Name as printed.
    pub name_ja: String,
    /// Fee per copy.
    pub unit_fee: Yen,
    /// 歳入科目.
    pub revenue_account: String,
}

/// A legal reason to exempt a fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// Reason code.
    pub id: String,
    /// Name as printed.
    pub name_ja: String,
    /// Fee items it applies to; empty for all.
    pub applies_to: Vec<String>,
}

/// 手数料表 — the municipality's fee schedule, from its catalog.
#[derive(Debug, Clone, Default)]
pub struct FeeSchedule {
    items: HashMap<String, FeeItem>,
    exemptions: HashMap<String, Exemption>,
}

/// A priced order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// The fee item.
    pub item: FeeItem,
    /// Copies.
    pub copies: u32,
    /// Amount charged.
    pub amount: Yen,
    /// Exemption reason code, if exempted.
    pub exemption: Option<Exemption>,
}

impl FeeSchedule {
    /// The schedule of a catalog: its certificate kinds and fee items.
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let mut items = HashMap::new();
        for kind in &catalog.certificates {
            items.insert(
                kind.id.clone(),
                FeeItem {
                    id: kind.id.clone(),
                    name_ja: kind.name_ja.clone(),
                    unit_fee: Yen(kind.fee_yen),
                    revenue_account: kind.revenue_account.clone(),
                },
            );
        }
        for item in &catalog.fee_items {
            items.insert(
                item.id.clone(),
                FeeItem {
                    id: item.id.clone(),
                    name_ja: item.name_ja.clone(),
                    unit_fee: Yen(item.fee_yen),
                    revenue_account: item.revenue_account.clone(),
                },
            );
        }
        let exemptions = catalog
            .exemptions
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    Exemption {
                        id: e.id.clone(),
                        name_ja: e.name_ja.clone(),
                        applies_to: e.applies_to.clone(),
                    },
                )
            })
            .collect();
        Self { items, exemptions }
    }

    /// The name of an exemption reason, for receipts.
    pub fn exemption_name(&self, id: &str) -> Option<&str> {
        self.exemptions.get(id).map(|e| e.name_ja.as_str())
    }

    /// Prices one line; `field` prefixes the violations' field paths.
    /// Problems are recorded in `v` and yield `None`.
    pub fn price(
        &self,
        v: &mut madoguchi_platform::error::Violations,
        field: &str,
        fee_item: &str,
        copies: u32,
        exemption: &str,
    ) -> Option<PricedLine> {
        let item = self.items.get(fee_item);
        if item.is_none() {
            v.add(
                format!("{field}.fee_item"),
                format!("unknown fee item {fee_item:?}"),
            );
        }
        if !(1..=MAX_COPIES).contains(&copies) {
            v.add(
                format!("{field}.copies"),
                format!("must be 1..={MAX_COPIES}"),
            );
        }
        let exemption = if exemption.is_empty() {
            None
        } else {
            match self.exemptions.get(exemption) {
                None => {
                    v.add(
                        format!("{field}.exemption_reason"),
                        format!("unknown exemption reason {exemption:?}"),
                    );
                    return None;
                }
                Some(e)
                    if !e.applies_to.is_empty() && !e.applies_to.iter().any(|i| i == fee_item) =>
                {
                    v.add(
                        format!("{field}.exemption_reason"),
                        format!("exemption {exemption} does not apply to {fee_item}"),
                    );
                    return None;
                }
                Some(e) => Some(e.clone()),
            }
        };
        let item = item?.clone();
        if !(1..=MAX_COPIES).contains(&copies) {
            return None;
        }
        // Fees are ≤ ¥100,000 (catalog check) and copies ≤ 100: no overflow.
        let amount = if exemption.is_some() {
            Yen::ZERO
        } else {
            Yen(item.unit_fee.0 * i64::from(copies))
        };
        Some(PricedLine {
            item,
            copies,
            amount,
            exemption,
        })
    }
}

/// Change for a cash payment: `tendered − total`, or why it is refused.
pub fn change_for(total: Yen, tendered: i64) -> Result<Yen, String> {
    if tendered < total.0 {
        return Err(format!(
            "{tendered} yen does not cover the total of {}",
            total.0
        ));
    }
    if tendered - total.0 > MAX_OVERPAY_YEN {
        return Err(format!(
            "more than {MAX_OVERPAY_YEN} yen over the total; check the amount"
        ));
    }
    Ok(Yen(tendered - total.0))
}

/// A fresh terminal reference: a prefix letter (`P` payment, `R` refund),
/// a hyphen and 16 hex digits of randomness — 18 ASCII characters, within
/// the terminal's 20. Uniqueness is enforced by a database index; a
/// collision (p ≈ n²/2⁶⁵) fails the request rather than reusing one.
pub fn terminal_reference(prefix: char) -> String {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    format!("{prefix}-{random:016X}")
}

/// An idempotency key: 1..=64 of `A–Z a–z 0–9 - _` (a UUID fits).
pub fn is_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One line of an order as the daily close needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseLine {
    /// Fee item id.
    pub fee_item: String,
    /// Name.
    pub name_ja: String,
    /// Copies.
    pub copies: u32,
    /// Amount charged.
    pub amount: Yen,
    /// 歳入科目.
    pub revenue_account: String,
    /// Exempted.
    pub exempted: bool,
}

/// A payment counted by a daily close (approved or later voided).
#[derive(Debug, Clone)]
pub struct ClosePayment {
    /// Method.
    pub method: Method,
    /// Lines of its order.
    pub lines: Vec<CloseLine>,
}

/// A completed refund counted by a daily close: what went back, per line.
#[derive(Debug, Clone)]
pub struct CloseRefund {
    /// Method of the original payment.
    pub method: Method,
    /// Void or refund.
    pub kind: RefundKind,
    /// Per refunded line: (fee item, name, account, amount).
    pub lines: Vec<(String, String, String, Yen)>,
}

/// Totals of one method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodTotals {
    /// Approved payments.
    pub payments: u32,
    /// Received.
    pub received: Yen,
    /// Paid back.
    pub refunded: Yen,
}

/// Totals of one fee item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemTotals {
    /// Name.
    pub name_ja: String,
    /// Copies paid.
    pub copies: u32,
    /// Copies exempted.
    pub exempted_copies: u32,
    /// Received.
    pub received: Yen,
    /// Paid back.
    pub refunded: Yen,
}

/// Totals of one revenue account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountTotals {
    /// Received.
    pub received: Yen,
    /// Paid back.
    pub refunded: Yen,
}

/// The money part of a daily close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseTotals {
    /// Per method (every method present).
    pub by_method: BTreeMap<Method, MethodTotals>,
    /// Per fee item.
    pub by_item: BTreeMap<String, ItemTotals>,
    /// Per revenue account.
    pub by_account: BTreeMap<String, AccountTotals>,
    /// Voids counted.
    pub voids: u32,
    /// Refunds counted.
    pub refunds: u32,
}

impl CloseTotals {
    /// Totals of a day's approved payments and completed refunds. Every
    /// total is a plain sum of integer yen, so the by-method, by-item and
    /// by-account views always agree with each other.
    pub fn compute(payments: &[ClosePayment], refunds: &[CloseRefund]) -> Self {
        let mut t = CloseTotals::default();
        for method in Method::ALL {
            t.by_method.insert(method, MethodTotals::default());
        }
        for payment in payments {
            let m = t.by_method.entry(payment.method).or_default();
            m.payments += 1;
            for line in &payment.lines {
                m.received.0 += line.amount.0;
                let item = t.by_item.entry(line.fee_item.clone()).or_default();
                item.name_ja.clone_from(&line.name_ja);
                if line.exempted {
                    item.exempted_copies += line.copies;
                } else {
                    item.copies += line.copies;
                }
                item.received.0 += line.amount.0;
                t.by_account
                    .entry(line.revenue_account.clone())
                    .or_default()
                    .received
                    .0 += line.amount.0;
            }
        }
        for refund in refunds {
            match refund.kind {
                RefundKind::Void => t.voids += 1,
                RefundKind::Refund => t.refunds += 1,
            }
            let m = t.by_method.entry(refund.method).or_default();
            for (fee_item, name_ja, account, amount) in &refund.lines {
                m.refunded.0 += amount.0;
                let item = t.by_item.entry(fee_item.clone()).or_default();
                if item.name_ja.is_empty() {
                    item.name_ja.clone_from(name_ja);
                }
                item.refunded.0 += amount.0;
                t.by_account.entry(account.clone()).or_default().refunded.0 += amount.0;
            }
        }
        t
    }

    /// Received over every method.
    pub fn received(&self) -> Yen {
        Yen(self.by_method.values().map(|m| m.received.0).sum())
    }

    /// Paid back over every method.
    pub fn refunded(&self) -> Yen {
        Yen(self.by_method.values().map(|m| m.refunded.0).sum())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_parse() {
        let r = OfficeChild::parse(
            "municipalities/032034/offices/main/registers/r1",
            "registers",
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            "municipalities/032034/offices/main/registers/r1"
        );
        assert!(
            OfficeChild::parse("municipalities/032034/offices/main/orders/r1", "registers")
                .is_err()
        );
        assert!(
            OfficeChild::parse(
                "municipalities/032035/offices/main/registers/r1",
                "registers"
            )
            .is_err()
        );
        let p =
            NestedName::payment("municipalities/032034/offices/main/orders/a/payments/b").unwrap();
        assert_eq!(p.office.office, "main");
        assert!(
            NestedName::refund("municipalities/032034/offices/main/orders/a/payments/b").is_err()
        );
    }

    #[test]
    fn outcomes() {
        use PaymentState as S;
        assert_eq!(
            apply_outcome(S::Pending, Outcome::Approved),
            Ok(Some(S::Approved))
        );
        assert_eq!(apply_outcome(S::Approved, Outcome::Approved), Ok(None));
        assert_eq!(apply_outcome(S::Approved, Outcome::InProgress), Ok(None));
        assert_eq!(
            apply_outcome(S::Approved, Outcome::Declined),
            Err("PAYMENT_ALREADY_SETTLED")
        );
        assert_eq!(
            apply_outcome(S::Unknown, Outcome::Declined),
            Ok(Some(S::Declined))
        );
        assert_eq!(apply_outcome(S::Unknown, Outcome::Unknown), Ok(None));
        assert!(apply_outcome(S::Unknown, Outcome::Aborted).is_err());
        assert_eq!(
            apply_outcome(S::InProgress, Outcome::Unknown),
            Ok(Some(S::Unknown))
        );
    }

    #[test]
    fn change() {
        assert_eq!(change_for(Yen(750), 1000), Ok(Yen(250)));
        assert_eq!(change_for(Yen(750), 750), Ok(Yen(0)));
        assert!(change_for(Yen(750), 700).is_err());
        assert!(change_for(Yen(750), 2_000_000).is_err());
    }

    #[test]
    fn references_fit_the_terminal() {
        let r = terminal_reference('P');
        assert_eq!(r.len(), 18);
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_ne!(r, terminal_reference('P'));
    }

    proptest::proptest! {
        #[test]
        fn close_views_agree(
            payments in proptest::collection::vec((1i32..=4, proptest::collection::vec((0usize..3, 1u32..5, proptest::bool::ANY), 1..4)), 0..20),
            refund_share in proptest::collection::vec(0i64..=100, 0..20),
        ) {
            let items = [("a", 300, "acc-1"), ("b", 450, "acc-2"), ("c", 10, "acc-1")];
            let payments: Vec<ClosePayment> = payments.into_iter().map(|(m, lines)| ClosePayment {
                method: Method::from_i32(m).unwrap(),
                lines: lines.into_iter().map(|(i, copies, exempt)| CloseLine {
                    fee_item: items[i].0.into(),
                    name_ja: items[i].0.into(),
                    copies,
                    amount: if exempt { Yen(0) } else { Yen(items[i].1 * i64::from(copies)) },
                    revenue_account: items[i].2.into(),
                    exempted: exempt,
                }).collect(),
            }).collect();
            let refunds: Vec<CloseRefund> = payments.iter().zip(&refund_share).map(|(p, share)| CloseRefund {
                method: p.method,
                kind: RefundKind::Refund,
                lines: vec![(p.lines[0].fee_item.clone(), String::new(), p.lines[0].revenue_account.clone(), Yen(p.lines[0].amount.0 * share / 100))],
            }).collect();
            let t = CloseTotals::compute(&payments, &refunds);
            let by_item: i64 = t.by_item.values().map(|i| i.received.0 - i.refunded.0).sum();
            let by_account: i64 = t.by_account.values().map(|a| a.received.0 - a.refunded.0).sum();
            let net = t.received().0 - t.refunded().0;
            proptest::prop_assert_eq!(by_item, net);
            proptest::prop_assert_eq!(by_account, net);
            let lines: i64 = payments.iter().flat_map(|p| &p.lines).map(|l| l.amount.0).sum();
            proptest::prop_assert_eq!(t.received().0, lines);
        }
    }
}
