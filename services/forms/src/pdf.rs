//! Printable PDFs: the unified certificate application and the visit's
//! checklist (with what is still open). Text is set in a CJK TrueType font
//! from Debian's packages (IPAex Gothic, `fonts-ipaexfont-gothic`, installed
//! by `scripts/fonts.sh`), which krilla embeds as a subset with a ToUnicode
//! map, so the Japanese is searchable and copyable, not drawn shapes.
//!
//! Layout is deliberately plain: A4 portrait, one column, lines wrapped by
//! width estimated from the character class (full-width = 1 em, others
//! half), which is exact enough for a monospaced-width CJK font.

use std::path::{Path, PathBuf};

use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

/// Where the font is looked for when `MADOGUCHI_CJK_FONT` is unset.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
];

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 48.0;

/// Why a document could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// No usable CJK font.
    #[error(
        "no cjk font found (install fonts-ipaexfont-gothic with scripts/fonts.sh or set MADOGUCHI_CJK_FONT)"
    )]
    NoFont,
    /// krilla failed.
    #[error("pdf serialisation failed: {0}")]
    Serialise(String),
}

/// A loaded CJK font.
#[derive(Clone)]
pub struct CjkFont {
    font: Font,
    path: PathBuf,
}

impl std::fmt::Debug for CjkFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CjkFont").field("path", &self.path).finish()
    }
}

impl CjkFont {
    /// Loads the font at `path`.
    pub fn load(path: &Path) -> Result<Self, PdfError> {
        let data = std::fs::read(path).map_err(|_| PdfError::NoFont)?;
        let font = Font::new(data.into(), 0).ok_or(PdfError::NoFont)?;
        Ok(Self {
            font,
            path: path.to_owned(),
        })
    }

    /// The font named by `override_path`, else the first candidate present.
    pub fn find(override_path: Option<&Path>) -> Result<Self, PdfError> {
        if let Some(path) = override_path {
            return Self::load(path);
        }
        FONT_CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or(PdfError::NoFont)
            .and_then(Self::load)
    }
}

/// One line of a document.
#[derive(Debug, Clone)]
pub enum Line {
    /// A title.
    Title(String),
    /// A section heading.
    Heading(String),
    /// Body text, wrapped.
    Text(String),
    /// Body text indented one level, wrapped.
    Indented(String),
    /// Vertical space.
    Gap,
    /// A signature box with the strokes (pad units 0..=10000) drawn in it.
    Signature(Vec<Vec<(u32, u32)>>),
}

/// Approximate advance of `c` in ems.
fn advance(c: char) -> f32 {
    if c.is_ascii() || ('\u{FF61}'..='\u{FF9F}').contains(&c) {
        0.5
    } else {
        1.0
    }
}

/// Splits `text` into lines no wider than `width` points at `size`.
fn wrap(text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let w = advance(c) * size;
        if used + w > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
            used = 0.0;
        }
        current.push(c);
        used += w;
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// Signature strokes as pad points.
type Strokes = Vec<Vec<(u32, u32)>>;
/// A placed run of text: x, baseline y, size, text.
type Placed = (f32, f32, f32, String);
/// One page: its text runs and its signature boxes (top y, strokes).
type PageContent = (Vec<Placed>, Vec<(f32, Strokes)>);

struct Writer<'a> {
    document: Document,
    font: &'a Font,
    lines: Vec<Placed>,
    signatures: Vec<(f32, Strokes)>,
    pages: Vec<PageContent>,
    y: f32,
}

impl Writer<'_> {
    fn need(&mut self, height: f32) {
        if self.y + height > PAGE_HEIGHT - MARGIN {
            let lines = std::mem::take(&mut self.lines);
            let signatures = std::mem::take(&mut self.signatures);
            self.pages.push((lines, signatures));
            self.y = MARGIN;
        }
    }

    fn text(&mut self, x: f32, size: f32, text: &str) {
        for line in wrap(text, size, PAGE_WIDTH - MARGIN - x) {
            self.need(size * 1.6);
            self.y += size * 1.6;
            self.lines.push((x, self.y, size, line));
        }
    }

    fn add(&mut self, line: Line) {
        match line {
            Line::Title(text) => self.text(MARGIN, 18.0, &text),
            Line::Heading(text) => {
                self.y += 6.0;
                self.text(MARGIN, 13.0, &text);
            }
            Line::Text(text) => self.text(MARGIN, 10.5, &text),
            Line::Indented(text) => self.text(MARGIN + 16.0, 10.0, &text),
            Line::Gap => self.y += 8.0,
            Line::Signature(strokes) => {
                self.need(110.0);
                self.signatures.push((self.y + 8.0, strokes));
                self.y += 110.0;
            }
        }
    }

    fn draw_page(
        document: &mut Document,
        font: &Font,
        lines: &[Placed],
        signatures: &[(f32, Strokes)],
    ) -> Result<(), PdfError> {
        let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
            .ok_or_else(|| PdfError::Serialise("page size".into()))?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for (x, y, size, text) in lines {
            surface.draw_text(
                Point::from_xy(*x, *y),
                font.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        for (top, strokes) in signatures {
            draw_signature(&mut surface, *top, strokes);
        }
        surface.finish();
        page.finish();
        Ok(())
    }
}

/// Draws the signature box (300 × 100 pt) and the strokes scaled into it.
fn draw_signature(surface: &mut Surface<'_>, top: f32, strokes: &[Vec<(u32, u32)>]) {
    let (left, width, height) = (MARGIN, 300.0_f32, 100.0_f32);
    surface.set_fill(None);
    surface.set_stroke(Some(Stroke {
        width: 0.5,
        ..Stroke::default()
    }));
    let mut frame = PathBuilder::new();
    frame.move_to(left, top);
    frame.line_to(left + width, top);
    frame.line_to(left + width, top + height);
    frame.line_to(left, top + height);
    frame.close();
    if let Some(path) = frame.finish() {
        surface.draw_path(&path);
    }
    surface.set_stroke(Some(Stroke {
        width: 1.4,
        ..Stroke::default()
    }));
    let scale = |v: u32, extent: f32| v.min(10_000) as f32 / 10_000.0 * extent;
    for stroke in strokes {
        let mut builder = PathBuilder::new();
        for (i, (x, y)) in stroke.iter().enumerate() {
            let (px, py) = (left + scale(*x, width), top + scale(*y, height));
            if i == 0 {
                builder.move_to(px, py);
                // A single tap still leaves a visible dot.
                builder.line_to(px + 0.5, py);
            } else {
                builder.line_to(px, py);
            }
        }
        if let Some(path) = builder.finish() {
            surface.draw_path(&path);
        }
    }
    surface.set_stroke(None);
}

/// Renders `lines` into an A4 PDF.
pub fn render(font: &CjkFont, lines: Vec<Line>) -> Result<Vec<u8>, PdfError> {
    let mut writer = Writer {
        document: Document::new(),
        font: &font.font,
        lines: Vec::new(),
        signatures: Vec::new(),
        pages: Vec::new(),
        y: MARGIN,
    };
    for line in lines {
        writer.add(line);
    }
    let last = (
        std::mem::take(&mut writer.lines),
        std::mem::take(&mut writer.signatures),
    );
    writer.pages.push(last);
    let Writer {
        mut document,
        font,
        pages,
        ..
    } = writer;
    for (lines, signatures) in &pages {
        Writer::draw_page(&mut document, font, lines, signatures)?;
    }
    document
        .finish()
        .map_err(|e| PdfError::Serialise(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn wraps_by_width() {
        let lines = wrap(&"あ".repeat(30), 10.0, 100.0);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.chars().count() <= 10));
        assert_eq!(wrap("", 10.0, 100.0), vec![String::new()]);
    }

    #[test]
    fn japanese_text_is_embedded_and_extractable() {
        let font = CjkFont::find(None).expect("install fonts-ipaexfont-gothic (scripts/fonts.sh)");
        let mut lines = vec![
            Line::Title("証明書交付申請書".into()),
            Line::Text("申請者 おくやみ つる子".into()),
            Line::Signature(vec![vec![(100, 100), (5000, 9000), (9000, 200)]]),
        ];
        // Enough lines for a second page.
        for i in 0..80 {
            lines.push(Line::Indented(format!("{i}行目 除籍謄本 ¥750")));
        }
        let pdf = render(&font, lines).unwrap();
        let document = lopdf::Document::load_mem(&pdf).unwrap();
        let pages: Vec<u32> = document.get_pages().keys().copied().collect();
        assert!(pages.len() >= 2, "{} pages", pages.len());
        let text = document.extract_text(&pages).unwrap();
        for needle in ["証明書交付申請書", "おくやみ つる子", "79行目 除籍謄本"]
        {
            assert!(text.contains(needle), "{needle} missing in {text:?}");
        }
        let raw = String::from_utf8_lossy(&pdf);
        assert!(
            raw.contains("IPAexGothic") || raw.contains("IPA"),
            "font not embedded"
        );
        assert!(raw.contains("/FontFile2"), "no embedded TrueType program");
    }
}
