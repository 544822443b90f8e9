//! The site file: one municipality's floor as data — its offices, their
//! counters and ticket categories. Services seed their own tables from it
//! at start-up; nothing about a particular city is compiled in.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Violations;
use crate::types::MunicipalityCode;

/// A whole site file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The municipality the site belongs to.
    pub municipality: Municipality,
    /// Its offices (本庁舎, 支所 …).
    pub offices: Vec<Office>,
}

/// A municipality (地方公共団体).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Municipality {
    /// 地方公共団体コード, six digits with check digit.
    pub code: MunicipalityCode,
    /// Name in Japanese, e.g. 大船渡市.
    pub name_ja: String,
    /// Name in English, e.g. Ofunato City.
    pub name_en: String,
    /// Prefecture in Japanese, e.g. 岩手県.
    pub prefecture_ja: String,
}

/// One office (庁舎) with a counter floor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office {
    /// Resource id, e.g. `main`.
    pub id: String,
    /// Name in Japanese.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// Queue rules of this office.
    #[serde(default)]
    pub queue: QueueRules,
    /// Ticket categories (番号札の種類).
    pub categories: Vec<Category>,
    /// Counters (窓口).
    pub counters: Vec<Counter>,
}

/// Rules the queue service applies in an office.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueRules {
    /// Recalls allowed on one leg before the ticket becomes a no-show.
    pub recall_limit: u32,
    /// Highest ticket number; the next number after it is 1 (wrap).
    pub max_number: u32,
    /// Minutes a counter counts as open after its last call.
    pub counter_open_minutes: u32,
}

impl Default for QueueRules {
    fn default() -> Self {
        Self {
            recall_limit: 3,
            max_number: 999,
            counter_open_minutes: 30,
        }
    }
}

/// A ticket category: what residents choose at the kiosk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Resource id, e.g. `certificates`.
    pub id: String,
    /// One capital letter printed before the number, e.g. `A`.
    pub prefix: String,
    /// Name in Japanese, e.g. 証明書.
    pub name_ja: String,
    /// Name in English.
    pub name_en: String,
    /// Signage colour, `#RRGGBB`.
    pub colour: String,
    /// Tickets per business day; 0 means unlimited.
    #[serde(default)]
    pub daily_quota: u32,
    /// Service time assumed before any service has been measured.
    pub default_service_minutes: u32,
}

/// A counter (窓口) on the floor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    /// Resource id, e.g. `1`.
    pub id: String,
    /// Number shown above the counter.
    pub display_number: String,
    /// Floor, 1 for the ground floor.
    pub floor: i32,
    /// Signage colour, `#RRGGBB`.
    pub colour: String,
    /// Ids of the categories this counter calls by default.
    pub categories: Vec<String>,
}

/// Why a site file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The file could not be read.
    #[error("reading site file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or wrong shape.
    #[error("parsing site file: {0}")]
    Parse(String),
    /// Valid shape, inconsistent content.
    #[error("invalid site file: {0}")]
    Invalid(String),
}

/// A site file as loaded, with its path: a service reads its own data
/// files (catalog, identity rules, signage) beside it.
#[derive(Debug, Clone)]
pub struct LoadedSite {
    /// The parsed, checked site.
    pub site: Site,
    /// The file it was read from.
    pub file: PathBuf,
}

impl LoadedSite {
    /// The municipality the site belongs to.
    pub fn code(&self) -> &MunicipalityCode {
        &self.site.municipality.code
    }

    /// The directory of the site file, where its other files live.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

/// Loads every site file a server serves. Fails on the first unreadable or
/// invalid file, on an empty list, and when two files claim the same
/// municipality (a server serves each municipality from one site).
pub fn load_sites(files: &[PathBuf]) -> Result<Vec<LoadedSite>, SiteError> {
    if files.is_empty() {
        return Err(SiteError::Invalid("no site files configured".into()));
    }
    let mut sites: Vec<LoadedSite> = Vec::with_capacity(files.len());
    for file in files {
        let site = Site::load(file).map_err(|e| match e {
            SiteError::Parse(m) => SiteError::Parse(format!("{}: {m}", file.display())),
            SiteError::Invalid(m) => SiteError::Invalid(format!("{}: {m}", file.display())),
            read => read,
        })?;
        if let Some(earlier) = sites
            .iter()
            .find(|s| s.site.municipality.code == site.municipality.code)
        {
            return Err(SiteError::Invalid(format!(
                "{} and {} both describe municipality {}",
                earlier.file.display(),
                file.display(),
                site.municipality.code
            )));
        }
        sites.push(LoadedSite {
            site,
            file: file.clone(),
        });
    }
    Ok(sites)
}

/// A resource id: 1–63 characters of lowercase ASCII letters, digits and
/// hyphens, starting with a letter or digit (AIP-122).
pub fn is_resource_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// A `#RRGGBB` colour.
pub fn is_colour(colour: &str) -> bool {
    colour.len() == 7
        && colour.starts_with('#')
        && colour[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Site {
    /// Reads and checks a site file.
    pub fn load(path: &Path) -> Result<Self, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks site TOML.
    pub fn parse(text: &str) -> Result<Self, SiteError> {
        let site: Site = toml::from_str(text).map_err(|e| SiteError::Parse(e.to_string()))?;
        site.validate()?;
        Ok(site)
    }

    fn validate(&self) -> Result<(), SiteError> {
        let mut v = Violations::new();
        let mut office_ids = HashSet::new();
        for (o, office) in self.offices.iter().enumerate() {
            let at = format!("offices[{o}]");
            if !is_resource_id(&office.id) || !office_ids.insert(office.id.as_str()) {
                v.add(format!("{at}.id"), "must be a unique resource id");
            }
            if !(1..=999_999).contains(&office.queue.max_number) {
                v.add(format!("{at}.queue.max_number"), "must be 1..=999999");
            }
            let mut category_ids = HashSet::new();
            let mut prefixes = HashSet::new();
            for (c, category) in office.categories.iter().enumerate() {
                let at = format!("{at}.categories[{c}]");
                if !is_resource_id(&category.id) || !category_ids.insert(category.id.as_str()) {
                    v.add(format!("{at}.id"), "must be a unique resource id");
                }
                let prefix_ok = category.prefix.len() == 1
                    && category.prefix.bytes().all(|b| b.is_ascii_uppercase());
                if !prefix_ok || !prefixes.insert(category.prefix.as_str()) {
                    v.add(format!("{at}.prefix"), "must be one unique capital letter");
                }
                if !is_colour(&category.colour) {
                    v.add(format!("{at}.colour"), "must be #RRGGBB");
                }
                if !(1..=240).contains(&category.default_service_minutes) {
                    v.add(format!("{at}.default_service_minutes"), "must be 1..=240");
                }
            }
            let mut counter_ids = HashSet::new();
            for (c, counter) in office.counters.iter().enumerate() {
                let at = format!("{at}.counters[{c}]");
                if !is_resource_id(&counter.id) || !counter_ids.insert(counter.id.as_str()) {
                    v.add(format!("{at}.id"), "must be a unique resource id");
                }
                if !is_colour(&counter.colour) {
                    v.add(format!("{at}.colour"), "must be #RRGGBB");
                }
                for category in &counter.categories {
                    if !category_ids.contains(category.as_str()) {
                        v.add(
                            format!("{at}.categories"),
                            format!("unknown category {category}"),
                        );
                    }
                }
            }
        }
        v.finish()
            .map_err(|error| SiteError::Invalid(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_ofunato_site_is_valid() -> Result<(), SiteError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/site.toml");
        let site = Site::load(&path)?;
        assert_eq!(site.municipality.code.as_str(), "032034");
        let names: Vec<_> = site.offices[0]
            .categories
            .iter()
            .map(|c| c.name_ja.as_str())
            .collect();
        for expected in [
            "証明書",
            "保険・年金",
            "高齢・介護・障がい",
            "子ども・子育て",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        Ok(())
    }

    #[test]
    fn inconsistent_sites_are_rejected() {
        let text = r##"
[municipality]
code = "032034"
name_ja = "大船渡市"
name_en = "Ofunato City"
prefecture_ja = "岩手県"
[[offices]]
id = "main"
name_ja = "本庁舎"
name_en = "City Hall"
[[offices.categories]]
id = "certificates"
prefix = "a"
name_ja = "証明書"
name_en = "Certificates"
colour = "orange"
default_service_minutes = 5
[[offices.counters]]
id = "1"
display_number = "1"
floor = 1
colour = "#FFAA00"
categories = ["nope"]
"##;
        let Err(SiteError::Invalid(message)) = Site::parse(text) else {
            panic!("site should be rejected");
        };
        for field in ["prefix", "colour", "unknown category nope"] {
            assert!(message.contains(field), "{message}");
        }
    }
}
