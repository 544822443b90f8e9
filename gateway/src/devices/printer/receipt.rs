//! The register's receipt (領収書) and the cash-drawer kick, as ESC/POS
//! bytes (no I/O), and the reading of a printed receipt back into fields
//! (what the simulator and tests check).
//!
//! Layout (42 columns, Font A on 80 mm paper; a full-width character takes
//! two columns), every text line in Kanji mode (`FS C 1` Shift_JIS):
//!
//! ```text
//!            【再発行】            ← reprints only, 2×2, first line
//!              領収書              ← 2×2
//!              大船渡市
//!           大船渡市役所 市民課
//! 領収番号: R1-000123
//! 日時: 令和8年11月25日 10:15
//! ------------------------------------------
//! 住民票の写し
//!     ￥300 × 2                       ￥600
//! 戸籍謄本
//!     ￥450 × 1                         ￥0
//!     免除: 年金請求用                      ← exempted items only
//! ------------------------------------------
//! 合計                             ￥600    ← 2× height
//! お支払方法: 現金
//! お預り                          ￥1,000
//! お釣り                            ￥400
//! 承認番号: A1B2C3                          ← terminal payments only
//! 非課税                                    ← non-taxable fees
//! 上記の金額を領収いたしました。
//! この領収書は再発行です。                  ← reprints only
//! ```
//!
//! Amounts are integer yen, printed with the full-width yen sign `￥`
//! (U+FFE5, Shift_JIS `81 8F`): the half-width `¥` has no Shift_JIS code
//! of its own (it is `5C`, which reads back as a backslash).

use super::escpos::{ESC, EncodeError, GS, JobId, LF, kanji_line};

/// Paper width in columns (Font A, 80 mm).
pub const COLUMNS: usize = 42;

/// The separator line between sections.
pub const RULE: &str = "------------------------------------------";

/// Prefix of the line under an exempted item.
pub const EXEMPTION: &str = "    免除: ";

/// The mark printed at the top of a reprint.
pub const REPRINT_MARK: &str = "【再発行】";

/// One line item of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptItem {
    /// Fee item name, e.g. `住民票の写し`.
    pub name: String,
    /// Fee per copy in yen.
    pub unit_fee_yen: u64,
    /// Copies.
    pub copies: u32,
    /// Amount in yen (unit fee × copies, or less for an exemption).
    pub amount_yen: u64,
    /// Why the fee was waived, e.g. `年金請求用`, printed under the item.
    pub exemption: Option<String>,
}

/// What a receipt says. The caller (the POS service) computed every
/// figure; the gateway prints them as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptContent {
    /// Municipality, e.g. `大船渡市`.
    pub municipality: String,
    /// Office, e.g. `大船渡市役所 市民課`.
    pub office: String,
    /// Receipt number, e.g. `R1-000123`.
    pub receipt_number: String,
    /// Date and time as printed, e.g. `令和8年11月25日 10:15`.
    pub issued_at: String,
    /// Line items.
    pub items: Vec<ReceiptItem>,
    /// Total in yen.
    pub total_yen: u64,
    /// Payment method as printed, e.g. `現金`, `クレジットカード`.
    pub method: String,
    /// Cash handed over, for cash payments.
    pub tendered_yen: Option<u64>,
    /// Change given, for cash payments.
    pub change_yen: Option<u64>,
    /// The terminal's approval number, for terminal payments.
    pub approval_number: Option<String>,
    /// Every line is a non-taxable administrative fee: printed 「非課税」.
    pub non_taxable: bool,
    /// A reprint of an earlier receipt: marked 【再発行】.
    pub reprint: bool,
}

/// `1,234` style grouping.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `￥1,234`.
pub fn yen(n: u64) -> String {
    format!("￥{}", group_thousands(n))
}

/// Columns `text` takes on the paper: ASCII and half-width katakana one,
/// everything else two.
pub fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| {
            if c.is_ascii() || ('\u{FF61}'..='\u{FF9F}').contains(&c) {
                1
            } else {
                2
            }
        })
        .sum()
}

/// `left` and `right` on one line, `right` flush with the right margin
/// (at least two spaces between them).
fn spread(left: &str, right: &str) -> String {
    let used = columns(left) + columns(right);
    let pad = COLUMNS.saturating_sub(used).max(2);
    format!("{left}{}{right}", " ".repeat(pad))
}

/// The drawer pulse: connector pin 2, 50 ms on, 500 ms off (`ESC p 0 25 250`),
/// the values Epson documents for common drawers.
pub const DRAWER_KICK: [u8; 5] = [ESC, b'p', 0, 25, 250];

/// The bytes of one receipt, ending with feed-and-cut and the `GS ( H`
/// print confirmation request tagged `job`; with `kick_drawer` the drawer
/// pulse follows the cut, before the confirmation, so the confirmation
/// also proves the pulse was given.
pub fn encode_receipt(
    r: &ReceiptContent,
    job: JobId,
    kick_drawer: bool,
) -> Result<Vec<u8>, EncodeError> {
    if !job.is_valid() {
        return Err(EncodeError::InvalidJobId);
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&[ESC, b'@', 0x1C, b'C', 1, ESC, b'a', 1]);
    if r.reprint {
        out.extend_from_slice(&[GS, b'!', 0x11]);
        kanji_line(&mut out, "reprint", REPRINT_MARK)?;
    }
    out.extend_from_slice(&[GS, b'!', 0x11]);
    kanji_line(&mut out, "title", "領収書")?;
    out.extend_from_slice(&[GS, b'!', 0x00]);
    kanji_line(&mut out, "municipality", &r.municipality)?;
    kanji_line(&mut out, "office", &r.office)?;
    out.extend_from_slice(&[ESC, b'a', 0]);
    kanji_line(
        &mut out,
        "receipt_number",
        &format!("領収番号: {}", r.receipt_number),
    )?;
    kanji_line(&mut out, "issued_at", &format!("日時: {}", r.issued_at))?;
    kanji_line(&mut out, "rule", RULE)?;
    for item in &r.items {
        kanji_line(&mut out, "item name", &item.name)?;
        let detail = format!("    {} × {}", yen(item.unit_fee_yen), item.copies);
        kanji_line(&mut out, "item", &spread(&detail, &yen(item.amount_yen)))?;
        if let Some(reason) = &item.exemption {
            kanji_line(&mut out, "exemption", &format!("{EXEMPTION}{reason}"))?;
        }
    }
    kanji_line(&mut out, "rule", RULE)?;
    out.extend_from_slice(&[GS, b'!', 0x01]);
    kanji_line(&mut out, "total", &spread("合計", &yen(r.total_yen)))?;
    out.extend_from_slice(&[GS, b'!', 0x00]);
    kanji_line(&mut out, "method", &format!("お支払方法: {}", r.method))?;
    if let Some(tendered) = r.tendered_yen {
        kanji_line(&mut out, "tendered", &spread("お預り", &yen(tendered)))?;
    }
    if let Some(change) = r.change_yen {
        kanji_line(&mut out, "change", &spread("お釣り", &yen(change)))?;
    }
    if let Some(approval) = &r.approval_number {
        kanji_line(
            &mut out,
            "approval_number",
            &format!("承認番号: {approval}"),
        )?;
    }
    if r.non_taxable {
        kanji_line(&mut out, "tax", "非課税")?;
    }
    kanji_line(&mut out, "statement", "上記の金額を領収いたしました。")?;
    if r.reprint {
        kanji_line(&mut out, "reprint", "この領収書は再発行です。")?;
    }
    out.push(LF);
    out.extend_from_slice(&[GS, b'V', 66, 3]);
    if kick_drawer {
        out.extend_from_slice(&DRAWER_KICK);
    }
    out.extend_from_slice(&[GS, b'(', b'H', 6, 0, 48, 48]);
    out.extend_from_slice(&job.0);
    Ok(out)
}

/// The bytes of a drawer kick on its own (no receipt), confirmed by
/// `GS ( H` like a print job.
pub fn encode_drawer_kick(job: JobId) -> Result<Vec<u8>, EncodeError> {
    if !job.is_valid() {
        return Err(EncodeError::InvalidJobId);
    }
    let mut out = DRAWER_KICK.to_vec();
    out.extend_from_slice(&[GS, b'(', b'H', 6, 0, 48, 48]);
    out.extend_from_slice(&job.0);
    Ok(out)
}

/// Checks that every text of `r` can be printed, without building bytes.
pub fn check_receipt(r: &ReceiptContent) -> Result<(), EncodeError> {
    encode_receipt(r, JobId(*b"0000"), false).map(|_| ())
}

/// A receipt as read back from printed lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintedReceipt {
    /// Marked 【再発行】.
    pub reprint: bool,
    /// Municipality line.
    pub municipality: String,
    /// Office line.
    pub office: String,
    /// After `領収番号: `.
    pub receipt_number: String,
    /// After `日時: `.
    pub issued_at: String,
    /// The items.
    pub items: Vec<ReceiptItem>,
    /// 合計.
    pub total_yen: u64,
    /// After `お支払方法: `.
    pub method: String,
    /// お預り.
    pub tendered_yen: Option<u64>,
    /// お釣り.
    pub change_yen: Option<u64>,
    /// After `承認番号: `.
    pub approval_number: Option<String>,
    /// The line 非課税 is present.
    pub tax_exempt: bool,
}

/// Reads `￥1,234` (possibly after other text and spaces) at the end of a
/// line.
fn trailing_yen(line: &str) -> Option<u64> {
    let (_, amount) = line.rsplit_once('￥')?;
    amount.trim().replace(',', "").parse().ok()
}

impl PrintedReceipt {
    /// Reads a receipt from its printed lines (in order); `None` if the
    /// lines are not a receipt of [`encode_receipt`]'s layout.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut lines = lines.into_iter().map(str::trim_end).peekable();
        let mut r = Self::default();
        if lines.peek().map(|l| l.trim()) == Some(REPRINT_MARK) {
            r.reprint = true;
            lines.next();
        }
        if lines.next()?.trim() != "領収書" {
            return None;
        }
        r.municipality = lines.next()?.trim().to_owned();
        r.office = lines.next()?.trim().to_owned();
        r.receipt_number = lines.next()?.strip_prefix("領収番号: ")?.to_owned();
        r.issued_at = lines.next()?.strip_prefix("日時: ")?.to_owned();
        if lines.next()? != RULE {
            return None;
        }
        loop {
            let name = lines.next()?;
            if name == RULE {
                break;
            }
            let detail = lines.next()?;
            let (unit, rest) = detail.trim_start().strip_prefix('￥')?.split_once(" × ")?;
            let (copies, _) = rest.split_once(' ')?;
            let exemption = match lines.peek() {
                Some(line) if line.starts_with(EXEMPTION) => lines
                    .next()
                    .and_then(|l| l.strip_prefix(EXEMPTION))
                    .map(str::to_owned),
                _ => None,
            };
            r.items.push(ReceiptItem {
                name: name.to_owned(),
                unit_fee_yen: unit.replace(',', "").parse().ok()?,
                copies: copies.parse().ok()?,
                amount_yen: trailing_yen(rest)?,
                exemption,
            });
        }
        let total = lines.next()?;
        if !total.starts_with("合計") {
            return None;
        }
        r.total_yen = trailing_yen(total)?;
        r.method = lines.next()?.strip_prefix("お支払方法: ")?.to_owned();
        for line in lines {
            if line.starts_with("お預り") {
                r.tendered_yen = trailing_yen(line);
            } else if line.starts_with("お釣り") {
                r.change_yen = trailing_yen(line);
            } else if let Some(n) = line.strip_prefix("承認番号: ") {
                r.approval_number = Some(n.to_owned());
            } else if line == "非課税" {
                r.tax_exempt = true;
            } else if line == "この領収書は再発行です。" && !r.reprint {
                return None;
            }
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_columns() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(300), "300");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(columns("合計 ￥1"), 2 * 2 + 1 + 2 + 1);
        assert_eq!(columns(&spread("合計", "￥600")), COLUMNS);
        assert_eq!(columns(&spread(&"長".repeat(30), "￥600")), 60 + 2 + 5);
    }
}
