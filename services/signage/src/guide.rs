//! The signage file (`sites/<city>/signage.toml`): per office the call-board
//! routing, the floor map, the purposes of the floor guide (目的別案内) with
//! their readings and texts in five languages, and notices and sponsored
//! ads with time windows. Parsed and checked once against the site file;
//! searching and choosing what is on air are pure functions of it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use madoguchi_platform::error::Violations;
use madoguchi_platform::site::{self, Site};
use serde::{Deserialize, Serialize};

/// A language the pages and the guide speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    /// Japanese.
    #[serde(rename = "ja")]
    Japanese,
    /// English.
    #[serde(rename = "en")]
    English,
    /// Chinese (simplified).
    #[serde(rename = "zh")]
    Chinese,
    /// Korean.
    #[serde(rename = "ko")]
    Korean,
    /// やさしい日本語: plain Japanese in kana with spaces between words.
    #[serde(rename = "ja-easy")]
    EasyJapanese,
}

impl Language {
    /// Every language, in the order the pages offer them.
    pub const ALL: [Language; 5] = [
        Language::Japanese,
        Language::English,
        Language::Chinese,
        Language::Korean,
        Language::EasyJapanese,
    ];

    /// Parses a code; the empty string means Japanese.
    pub fn parse(code: &str) -> Result<Self, String> {
        match code {
            "" | "ja" => Ok(Language::Japanese),
            "en" => Ok(Language::English),
            "zh" => Ok(Language::Chinese),
            "ko" => Ok(Language::Korean),
            "ja-easy" => Ok(Language::EasyJapanese),
            _ => Err("must be one of ja, en, zh, ko, ja-easy".to_owned()),
        }
    }
}

/// A text in every language.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized<T> {
    /// Japanese.
    pub ja: T,
    /// English.
    pub en: T,
    /// Chinese.
    pub zh: T,
    /// Korean.
    pub ko: T,
    /// やさしい日本語.
    #[serde(rename = "ja-easy")]
    pub ja_easy: T,
}

impl<T> Localized<T> {
    /// The text in `language`.
    pub fn get(&self, language: Language) -> &T {
        match language {
            Language::Japanese => &self.ja,
            Language::English => &self.en,
            Language::Chinese => &self.zh,
            Language::Korean => &self.ko,
            Language::EasyJapanese => &self.ja_easy,
        }
    }

    fn all(&self) -> [&T; 5] {
        [&self.ja, &self.en, &self.zh, &self.ko, &self.ja_easy]
    }
}

/// The whole signage file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignageFile {
    /// Signage of each office; offices not listed have no guide or boards.
    #[serde(default)]
    pub offices: Vec<OfficeSignage>,
}

/// The signage of one office.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeSignage {
    /// Office id from the site file.
    pub id: String,
    /// LED call boards.
    #[serde(default)]
    pub boards: Vec<BoardRoute>,
    /// Floors with their map.
    #[serde(default)]
    pub floors: Vec<Floor>,
    /// Purposes of the floor guide.
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    /// Notices from the city.
    #[serde(default)]
    pub notices: Vec<Notice>,
    /// Sponsored ads (the seed's guide is ad-funded).
    #[serde(default)]
    pub ads: Vec<Ad>,
    /// The call display's settings.
    #[serde(default)]
    pub display: DisplaySettings,
}

/// How the call display behaves (`[offices.display]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplaySettings {
    /// A call whose announcement has not started this many seconds after
    /// the display received it is shown but not spoken, and an
    /// announcement leaves the banner when it is this old: during a burst
    /// residents never hear a number long after it was called. 1..=300;
    /// default 20.
    #[serde(default = "default_announce_within_seconds")]
    pub announce_within_seconds: u32,
}

fn default_announce_within_seconds() -> u32 {
    20
}

impl Default for DisplaySettings {
    fn default() -> Self {
        Self {
            announce_within_seconds: default_announce_within_seconds(),
        }
    }
}

/// One call board and the counters it shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardRoute {
    /// Board id, unique in the office.
    pub id: String,
    /// The serial line's name in the gateway's configuration.
    pub line: String,
    /// Modbus unit id, 1..=247 (0 is broadcast and never answers).
    pub address: u32,
    /// Counter ids whose calls the board shows.
    pub counters: Vec<String>,
    /// Where it hangs, for technicians.
    #[serde(default)]
    pub location_ja: String,
}

/// One floor and its map.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Floor number, 1 for the ground floor (matches counters' `floor`).
    pub number: i32,
    /// Its name, e.g. 1階.
    pub name: Localized<String>,
    /// Width of the map grid.
    pub width: u32,
    /// Height of the map grid.
    pub height: u32,
    /// Areas drawn on the map.
    #[serde(default)]
    pub areas: Vec<Area>,
}

/// A rectangle on a floor map.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// `counter`, `waiting`, `kiosk`, `entrance`, `elevator`, `stairs`,
    /// `toilet` or `other`.
    pub kind: String,
    /// For `counter` areas: the counter id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Left edge in grid units.
    pub x: u32,
    /// Top edge in grid units.
    pub y: u32,
    /// Width in grid units.
    pub w: u32,
    /// Height in grid units.
    pub h: u32,
    /// Label for areas other than counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Localized<String>>,
}

const AREA_KINDS: [&str; 8] = [
    "counter", "waiting", "kiosk", "entrance", "elevator", "stairs", "toilet", "other",
];

/// A purpose (目的): what a resident came to do, and where to go for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    /// Purpose id, unique in the office.
    pub id: String,
    /// Ticket category id to take.
    pub category: String,
    /// Counter id to go to.
    pub counter: String,
    /// Written forms, e.g. 住民票.
    #[serde(default)]
    pub kanji: Vec<String>,
    /// Readings in hiragana, e.g. じゅうみんひょう.
    #[serde(default)]
    pub kana: Vec<String>,
    /// Readings in romaji without long-vowel marks, e.g. juminhyo.
    #[serde(default)]
    pub romaji: Vec<String>,
    /// Other words residents use, any language.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The purpose as the resident would say it.
    pub title: Localized<String>,
    /// What happens at the counter.
    pub description: Localized<String>,
    /// Documents to bring.
    pub documents: Localized<Vec<String>>,
}

/// A notice from the city, on air within its window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// Notice id.
    pub id: String,
    /// Start of the window (RFC 3339), inclusive.
    pub starts: String,
    /// End of the window (RFC 3339), exclusive.
    pub ends: String,
    /// The text.
    pub text: Localized<String>,
}

/// A sponsored ad, on air within its window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ad {
    /// Ad id.
    pub id: String,
    /// Who paid for it; shown with the ad so it is never mistaken for a
    /// notice of the city.
    pub sponsor: String,
    /// Start of the window (RFC 3339), inclusive.
    pub starts: String,
    /// End of the window (RFC 3339), exclusive.
    pub ends: String,
    /// The text.
    pub text: Localized<String>,
}

/// Why a signage file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum GuideError {
    /// The file could not be read.
    #[error("reading signage file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or wrong shape.
    #[error("parsing signage file: {0}")]
    Parse(String),
    /// Valid shape, inconsistent with itself or the site.
    #[error("invalid signage file: {0}")]
    Invalid(String),
}

/// A time window, parsed.
#[derive(Debug, Clone, Copy)]
struct Window {
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
}

impl Window {
    fn parse(v: &mut Violations, at: &str, starts: &str, ends: &str) -> Option<Self> {
        let s = v.check(
            &format!("{at}.starts"),
            DateTime::parse_from_rfc3339(starts).map_err(|_| "must be an RFC 3339 time"),
        );
        let e = v.check(
            &format!("{at}.ends"),
            DateTime::parse_from_rfc3339(ends).map_err(|_| "must be an RFC 3339 time"),
        );
        let (s, e) = (s?.to_utc(), e?.to_utc());
        if s >= e {
            v.add(format!("{at}.ends"), "must be after starts");
            return None;
        }
        Some(Self { starts: s, ends: e })
    }

    fn contains(&self, now: DateTime<Utc>) -> bool {
        self.starts <= now && now < self.ends
    }
}

/// A checked signage file, with search keys prepared.
#[derive(Debug, Clone, Default)]
pub struct Guide {
    offices: HashMap<String, OfficeGuide>,
}

/// The checked signage of one office.
#[derive(Debug, Clone)]
pub struct OfficeGuide {
    /// The office's signage as written.
    pub signage: OfficeSignage,
    /// Normalised search keys per purpose, in purpose order.
    keys: Vec<Vec<String>>,
    notice_windows: Vec<Window>,
    ad_windows: Vec<Window>,
}

impl Guide {
    /// Reads and checks a signage file against `site`.
    pub fn load(path: &Path, site: &Site) -> Result<Self, GuideError> {
        let text = std::fs::read_to_string(path).map_err(|source| GuideError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, site)
    }

    /// Parses and checks signage TOML against `site`.
    pub fn parse(text: &str, site: &Site) -> Result<Self, GuideError> {
        let file: SignageFile =
            toml::from_str(text).map_err(|e| GuideError::Parse(e.to_string()))?;
        Self::check(file, site)
    }

    fn check(file: SignageFile, site: &Site) -> Result<Self, GuideError> {
        let mut v = Violations::new();
        let mut offices = HashMap::new();
        for (o, office) in file.offices.into_iter().enumerate() {
            let at = format!("offices[{o}]");
            let Some(site_office) = site.offices.iter().find(|s| s.id == office.id) else {
                v.add(format!("{at}.id"), format!("unknown office {}", office.id));
                continue;
            };
            let counters: HashMap<&str, i32> = site_office
                .counters
                .iter()
                .map(|c| (c.id.as_str(), c.floor))
                .collect();
            let categories: HashSet<&str> = site_office
                .categories
                .iter()
                .map(|c| c.id.as_str())
                .collect();
            if !(1..=300).contains(&office.display.announce_within_seconds) {
                v.add(
                    format!("{at}.display.announce_within_seconds"),
                    "must be 1..=300",
                );
            }
            let mut ids = HashSet::new();
            let mut addresses = HashSet::new();
            for (b, board) in office.boards.iter().enumerate() {
                let at = format!("{at}.boards[{b}]");
                if !site::is_resource_id(&board.id) || !ids.insert(board.id.as_str()) {
                    v.add(format!("{at}.id"), "must be a unique resource id");
                }
                if !(1..=247).contains(&board.address)
                    || !addresses.insert((board.line.as_str(), board.address))
                {
                    v.add(
                        format!("{at}.address"),
                        "must be 1..=247 and unique on its line",
                    );
                }
                if board.line.is_empty() {
                    v.add(format!("{at}.line"), "must name a serial line");
                }
                if board.counters.is_empty() {
                    v.add(format!("{at}.counters"), "must name at least one counter");
                }
                for counter in &board.counters {
                    if !counters.contains_key(counter.as_str()) {
                        v.add(
                            format!("{at}.counters"),
                            format!("unknown counter {counter}"),
                        );
                    }
                }
            }
            let mut floors = HashSet::new();
            for (f, floor) in office.floors.iter().enumerate() {
                let at = format!("{at}.floors[{f}]");
                if !floors.insert(floor.number) {
                    v.add(format!("{at}.number"), "must be unique");
                }
                if floor.width == 0 || floor.height == 0 {
                    v.add(format!("{at}.width"), "the map must not be empty");
                }
                for (a, area) in floor.areas.iter().enumerate() {
                    let at = format!("{at}.areas[{a}]");
                    if !AREA_KINDS.contains(&area.kind.as_str()) {
                        v.add(
                            format!("{at}.kind"),
                            format!("must be one of {AREA_KINDS:?}"),
                        );
                    }
                    if area.x + area.w > floor.width || area.y + area.h > floor.height {
                        v.add(at.clone(), "must lie inside the floor");
                    }
                    match (&area.kind[..], &area.counter) {
                        ("counter", Some(counter)) => {
                            if counters.get(counter.as_str()) != Some(&floor.number) {
                                v.add(
                                    format!("{at}.counter"),
                                    format!("counter {counter} is not on floor {}", floor.number),
                                );
                            }
                        }
                        ("counter", None) => v.add(format!("{at}.counter"), "is required"),
                        (_, Some(_)) => v.add(format!("{at}.counter"), "only for counter areas"),
                        (_, None) => {}
                    }
                }
            }
            let mut purpose_ids = HashSet::new();
            let mut keys = Vec::new();
            for (p, purpose) in office.purposes.iter().enumerate() {
                let at = format!("{at}.purposes[{p}]");
                if !site::is_resource_id(&purpose.id) || !purpose_ids.insert(purpose.id.as_str()) {
                    v.add(format!("{at}.id"), "must be a unique resource id");
                }
                if !categories.contains(purpose.category.as_str()) {
                    v.add(
                        format!("{at}.category"),
                        format!("unknown category {}", purpose.category),
                    );
                }
                match counters.get(purpose.counter.as_str()) {
                    None => v.add(
                        format!("{at}.counter"),
                        format!("unknown counter {}", purpose.counter),
                    ),
                    Some(floor) if !floors.contains(floor) && !office.floors.is_empty() => v.add(
                        format!("{at}.counter"),
                        format!("floor {floor} of counter {} has no map", purpose.counter),
                    ),
                    Some(_) => {}
                }
                if purpose.kana.iter().any(|k| !is_hiragana(k)) {
                    v.add(format!("{at}.kana"), "readings must be hiragana");
                }
                if purpose.title.all().iter().any(|t| t.trim().is_empty()) {
                    v.add(format!("{at}.title"), "needs a text in every language");
                }
                keys.push(search_keys(purpose));
            }
            let notice_windows = office
                .notices
                .iter()
                .enumerate()
                .filter_map(|(n, notice)| {
                    Window::parse(
                        &mut v,
                        &format!("{at}.notices[{n}]"),
                        &notice.starts,
                        &notice.ends,
                    )
                })
                .collect();
            let ad_windows = office
                .ads
                .iter()
                .enumerate()
                .filter_map(|(n, ad)| {
                    Window::parse(&mut v, &format!("{at}.ads[{n}]"), &ad.starts, &ad.ends)
                })
                .collect();
            if offices.contains_key(&office.id) {
                v.add(format!("{at}.id"), "office listed twice");
            }
            offices.insert(
                office.id.clone(),
                OfficeGuide {
                    signage: office,
                    keys,
                    notice_windows,
                    ad_windows,
                },
            );
        }
        v.finish()
            .map_err(|error| GuideError::Invalid(error.to_string()))?;
        Ok(Self { offices })
    }

    /// The signage of office `id`, if the file has it.
    pub fn office(&self, id: &str) -> Option<&OfficeGuide> {
        self.offices.get(id)
    }
}

/// One search result: a purpose and how well it matched.
#[derive(Debug, Clone, Copy)]
pub struct SearchHit<'a> {
    /// The purpose.
    pub purpose: &'a Purpose,
    /// Higher is better: exact reading 100, prefix 60, substring 40, the
    /// query containing a whole reading 30.
    pub score: u32,
}

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

impl OfficeGuide {
    /// Purposes matching `query`, best first (ties in file order). The query
    /// and every reading are normalised alike (see [`normalize`]), so
    /// 「ジュウミンヒョウ」, 「じゅうみんひょう」 and "juuminhyou" all find 住民票.
    pub fn search(&self, query: &str) -> Vec<SearchHit<'_>> {
        let q = normalize(query);
        if q.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(usize, SearchHit<'_>)> = self
            .signage
            .purposes
            .iter()
            .zip(&self.keys)
            .enumerate()
            .filter_map(|(i, (purpose, keys))| {
                let score = keys.iter().map(|k| match_score(&q, k)).max().unwrap_or(0);
                (score > 0).then_some((i, SearchHit { purpose, score }))
            })
            .collect();
        hits.sort_by(|(ia, a), (ib, b)| b.score.cmp(&a.score).then(ia.cmp(ib)));
        hits.into_iter().map(|(_, hit)| hit).collect()
    }

    /// Notices on air at `now`.
    pub fn notices_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Notice> {
        self.signage
            .notices
            .iter()
            .zip(&self.notice_windows)
            .filter(move |(_, w)| w.contains(now))
            .map(|(n, _)| n)
    }

    /// Ads on air at `now`.
    pub fn ads_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Ad> {
        self.signage
            .ads
            .iter()
            .zip(&self.ad_windows)
            .filter(move |(_, w)| w.contains(now))
            .map(|(a, _)| a)
    }
}

fn match_score(query: &str, key: &str) -> u32 {
    if key.is_empty() {
        0
    } else if key == query {
        100
    } else if key.starts_with(query) {
        60
    } else if key.contains(query) {
        40
    } else if key.chars().count() >= 2 && query.contains(key) {
        30
    } else {
        0
    }
}

fn search_keys(purpose: &Purpose) -> Vec<String> {
    purpose
        .kanji
        .iter()
        .chain(&purpose.kana)
        .chain(&purpose.romaji)
        .chain(&purpose.keywords)
        .chain(purpose.title.all())
        .map(|s| normalize(s))
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_hiragana(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| ('\u{3041}'..='\u{309F}').contains(&c) || c == 'ー')
}

/// The search normal form: full-width ASCII to ASCII, katakana to
/// hiragana, lower case, long-vowel marks dropped from romaji (ū → u) and
/// doubled romaji vowels folded (uu → u, ou → o, oo → o, ii → i), and
/// spaces, punctuation and the prolonged sound mark removed. Kanji and
/// hangul pass through.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match c {
            // Full-width ASCII (！..～) to ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            // Katakana ァ..ヶ to hiragana ぁ..ゖ.
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            'ā' | 'â' | 'Ā' => 'a',
            'ī' | 'î' | 'Ī' => 'i',
            'ū' | 'û' | 'Ū' => 'u',
            'ē' | 'ê' | 'Ē' => 'e',
            'ō' | 'ô' | 'Ō' => 'o',
            other => other,
        };
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    fold_romaji_vowels(&out)
}

fn fold_romaji_vowels(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    for c in text.chars() {
        let fold = matches!(
            (previous, c),
            (Some('u'), 'u') | (Some('o'), 'u') | (Some('o'), 'o') | (Some('i'), 'i')
        );
        if !fold {
            out.push(c);
            previous = Some(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn shipped() -> (Site, Guide) {
        shipped_site("ofunato")
    }

    fn shipped_site(name: &str) -> (Site, Guide) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../sites")
            .join(name);
        let site = Site::load(&dir.join("site.toml")).unwrap();
        let guide = Guide::load(&dir.join("signage.toml"), &site).unwrap();
        (site, guide)
    }

    #[test]
    fn every_shipped_site_has_a_valid_signage_file_covering_its_counters_and_categories() {
        for name in ["ofunato", "rikuzentakata"] {
            let (site, guide) = shipped_site(name);
            for office in &site.offices {
                let signage = &guide.office(&office.id).unwrap().signage;
                for counter in &office.counters {
                    assert!(
                        signage
                            .boards
                            .iter()
                            .any(|b| b.counters.contains(&counter.id)),
                        "{name}: no board shows counter {}",
                        counter.id
                    );
                }
                for category in &office.categories {
                    assert!(
                        signage.purposes.iter().any(|p| p.category == category.id),
                        "{name}: no purpose leads to category {}",
                        category.id
                    );
                }
            }
        }
        // The second site's own words find its own counters.
        let (_, guide) = shipped_site("rikuzentakata");
        assert_eq!(first(&guide, "こくほ"), "health-insurance");
        assert_eq!(first(&guide, "ぜいきん"), "tax");
    }

    fn first(guide: &Guide, query: &str) -> String {
        let office = guide.office("main").unwrap();
        office
            .search(query)
            .first()
            .map(|h| h.purpose.id.clone())
            .unwrap_or_default()
    }

    #[test]
    fn shipped_signage_file_is_valid_and_covers_every_counter() {
        let (site, guide) = shipped();
        let office = guide.office("main").unwrap();
        for counter in &site.offices[0].counters {
            assert!(
                office
                    .signage
                    .boards
                    .iter()
                    .any(|b| b.counters.contains(&counter.id)),
                "no board shows counter {}",
                counter.id
            );
        }
        assert!(office.signage.purposes.len() >= 10);
    }

    #[test]
    fn announcements_are_bounded_by_default_and_by_the_file() {
        let (site, guide) = shipped();
        let main = |g: &Guide| {
            g.office("main")
                .unwrap()
                .signage
                .display
                .announce_within_seconds
        };
        assert_eq!(main(&guide), 20);
        let bare = Guide::parse("[[offices]]\nid = \"main\"\n", &site).unwrap();
        assert_eq!(main(&bare), 20, "the default");
        let set = Guide::parse(
            "[[offices]]\nid = \"main\"\n[offices.display]\nannounce_within_seconds = 45\n",
            &site,
        )
        .unwrap();
        assert_eq!(main(&set), 45);
    }

    #[test]
    fn search_matches_kanji_kana_katakana_and_romaji() {
        let (_, guide) = shipped();
        for query in [
            "住民票",
            "じゅうみんひょう",
            "ジュウミンヒョウ",
            "juminhyo",
            "juuminhyou",
            "jūminhyō",
            "ＪＵＭＩＮＨＹＯ",
            "住民票がほしい",
        ] {
            assert_eq!(first(&guide, query), "residence-certificate", "{query}");
        }
        assert_eq!(first(&guide, "ひっこし"), "moving");
        assert_eq!(first(&guide, "引っ越しした"), "moving");
        assert_eq!(first(&guide, "家族が亡くなった"), "bereavement");
        assert_eq!(first(&guide, "おくやみ"), "bereavement");
        assert_eq!(first(&guide, "kekkon"), "marriage");
        assert_eq!(first(&guide, "Child allowance"), "child-allowance");
        assert_eq!(first(&guide, "주민표"), "residence-certificate");
        assert!(guide.office("main").unwrap().search("  ").is_empty());
        assert!(guide.office("main").unwrap().search("zzzz").is_empty());
    }

    #[test]
    fn normal_form() {
        assert_eq!(normalize("ジュウミン ヒョウ"), "じゅうみんひょう");
        assert_eq!(normalize("Jūminhyō"), "juminhyo");
        assert_eq!(normalize("Koseki Tōhon"), "kosekitohon");
        assert_eq!(normalize("ＡＢＣ"), "abc");
    }

    #[test]
    fn windows_choose_what_is_on_air() {
        let (_, guide) = shipped();
        let office = guide.office("main").unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let ads: Vec<_> = office
            .ads_at(at("2026-04-01T09:00:00+09:00"))
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(ads, ["sanriku-railway"]);
        let ads: Vec<_> = office
            .ads_at(at("2025-01-15T09:00:00+09:00"))
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(ads, ["old-campaign"]);
        // The end of a window is exclusive.
        assert_eq!(office.ads_at(at("2027-01-01T00:00:00+09:00")).count(), 0);
        assert_eq!(
            office.notices_at(at("2026-04-01T09:00:00+09:00")).count(),
            1
        );
    }

    #[test]
    fn inconsistent_files_are_rejected_with_every_problem() {
        let (site, _) = shipped();
        let text = r#"
[[offices]]
id = "main"
display = { announce_within_seconds = 0 }
[[offices.boards]]
id = "b"
line = "l"
address = 0
counters = ["99"]
[[offices.purposes]]
id = "p"
category = "nope"
counter = "1"
kana = ["カタカナ"]
title = { ja = "a", en = "a", zh = "a", ko = "a", ja-easy = "" }
description = { ja = "a", en = "a", zh = "a", ko = "a", ja-easy = "a" }
documents = { ja = [], en = [], zh = [], ko = [], ja-easy = [] }
[[offices.ads]]
id = "x"
sponsor = "s"
starts = "2026-02-01T00:00:00+09:00"
ends = "2026-01-01T00:00:00+09:00"
text = { ja = "a", en = "a", zh = "a", ko = "a", ja-easy = "a" }
"#;
        let Err(GuideError::Invalid(message)) = Guide::parse(text, &site) else {
            panic!("should be rejected");
        };
        for expected in [
            "boards[0].address",
            "unknown counter 99",
            "unknown category nope",
            "hiragana",
            "every language",
            "must be after starts",
            "display.announce_within_seconds",
        ] {
            assert!(message.contains(expected), "{expected} in {message}");
        }
    }
}
