//! The identity service's site data (`identity.toml` beside the site
//! file) and its secret: the My Number key.
//!
//! The key is 32 bytes for AES-256-GCM, given as 64 hex digits in
//! `MADOGUCHI_IDENTITY_KEY` (a Kubernetes Secret in a cluster). Without
//! the variable, the embedded default keeps a generated key in
//! `data_dir/identity.key` (mode 0600), the same way first-run tokens are
//! kept; replicas sharing a PostgreSQL must share the variable instead.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use madoguchi_platform::config::Environment;
use madoguchi_platform::error::Violations;
use madoguchi_platform::site::is_resource_id;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;

use crate::domain::proxy::ProxyPolicy;
use crate::domain::verification::DocumentClass;

/// The variable holding the My Number key.
pub const KEY_VARIABLE: &str = "MADOGUCHI_IDENTITY_KEY";

/// Which card a kind can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardKind {
    /// マイナンバーカード.
    MyNumberCard,
    /// 運転免許証.
    DriversLicence,
}

/// An identity document kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentKindConfig {
    /// Kind id.
    pub id: String,
    /// Class.
    pub class: DocumentClass,
    /// Japanese name.
    pub name_ja: String,
    /// English name.
    pub name_en: String,
    /// The card a read of this kind comes from.
    #[serde(default)]
    pub card_source: Option<CardKind>,
}

/// A procedure's rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureConfig {
    /// Procedure id, shared with the forms catalog.
    pub id: String,
    /// Japanese name, for people reading the file.
    pub name_ja: String,
    /// Whether a My Number may be kept for it (番号法 別表).
    #[serde(default)]
    pub uses_my_number: bool,
    /// Anyone may request it.
    #[serde(default)]
    pub allow_anyone: bool,
    /// A household member may, without 委任状.
    #[serde(default)]
    pub allow_household_member: bool,
    /// Spouse or lineal relative may, without 委任状.
    #[serde(default)]
    pub allow_family: bool,
    /// A proxy with a 委任状 may.
    #[serde(default)]
    pub allow_power_of_attorney: bool,
    /// A legal representative may.
    #[serde(default)]
    pub allow_legal_representative: bool,
    /// Only with a photo ID.
    #[serde(default)]
    pub require_photo_id: bool,
    /// The subject may be registered elsewhere.
    #[serde(default)]
    pub allow_non_resident_subject: bool,
}

impl ProcedureConfig {
    /// The proxy rule of the procedure.
    pub fn policy(&self) -> ProxyPolicy {
        ProxyPolicy {
            allow_anyone: self.allow_anyone,
            allow_household_member: self.allow_household_member,
            allow_family: self.allow_family,
            allow_power_of_attorney: self.allow_power_of_attorney,
            allow_legal_representative: self.allow_legal_representative,
            require_photo_id: self.require_photo_id,
            allow_non_resident_subject: self.allow_non_resident_subject,
        }
    }
}

/// `[power_of_attorney]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerOfAttorneyConfig {
    /// Months a 委任状 stays valid.
    pub validity_months: u32,
}

impl Default for PowerOfAttorneyConfig {
    fn default() -> Self {
        Self { validity_months: 3 }
    }
}

/// `[my_number]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyNumberConfig {
    /// Subjects designated as 個人番号事務取扱担当者.
    #[serde(default)]
    pub handlers: Vec<String>,
}

/// A whole `identity.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySite {
    /// The registry CSV to import at start-up, relative to the file.
    #[serde(default)]
    pub registry_csv: Option<PathBuf>,
    /// 委任状 rules.
    #[serde(default)]
    pub power_of_attorney: PowerOfAttorneyConfig,
    /// My Number rules.
    #[serde(default)]
    pub my_number: MyNumberConfig,
    /// Document kinds.
    pub document_kinds: Vec<DocumentKindConfig>,
    /// Procedures.
    #[serde(default)]
    pub procedures: Vec<ProcedureConfig>,
    /// Directory of the file, to resolve relative paths.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Why the identity configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad TOML or shape.
    #[error("parsing identity.toml: {0}")]
    Parse(String),
    /// Inconsistent content.
    #[error("invalid identity.toml: {0}")]
    Invalid(String),
    /// The key is missing or malformed.
    #[error("{KEY_VARIABLE}: {0}")]
    Key(String),
}

impl IdentitySite {
    /// The `identity.toml` beside a site file.
    pub fn beside(site_file: &Path) -> PathBuf {
        site_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("identity.toml")
    }

    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Self, IdentityConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentityConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut site = Self::parse(&text)?;
        site.dir = path.parent().unwrap_or_else(|| Path::new(".")).to_owned();
        Ok(site)
    }

    /// Parses and checks TOML.
    pub fn parse(text: &str) -> Result<Self, IdentityConfigError> {
        let site: Self =
            toml::from_str(text).map_err(|e| IdentityConfigError::Parse(e.to_string()))?;
        let mut v = Violations::new();
        let mut ids = HashSet::new();
        for (i, kind) in site.document_kinds.iter().enumerate() {
            if !is_resource_id(&kind.id) || !ids.insert(kind.id.as_str()) {
                v.add(
                    format!("document_kinds[{i}].id"),
                    "must be a unique resource id",
                );
            }
        }
        if site.document_kinds.is_empty() {
            v.add("document_kinds", "at least one kind is needed");
        }
        let mut ids = HashSet::new();
        for (i, procedure) in site.procedures.iter().enumerate() {
            if !is_resource_id(&procedure.id) || !ids.insert(procedure.id.as_str()) {
                v.add(
                    format!("procedures[{i}].id"),
                    "must be a unique resource id",
                );
            }
        }
        if !(1..=24).contains(&site.power_of_attorney.validity_months) {
            v.add("power_of_attorney.validity_months", "must be 1..=24");
        }
        v.finish()
            .map_err(|e| IdentityConfigError::Invalid(e.to_string()))?;
        Ok(site)
    }

    /// Kinds by id.
    pub fn kinds(&self) -> HashMap<String, DocumentKindConfig> {
        self.document_kinds
            .iter()
            .map(|k| (k.id.clone(), k.clone()))
            .collect()
    }

    /// Procedures by id.
    pub fn procedures(&self) -> HashMap<String, ProcedureConfig> {
        self.procedures
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect()
    }

    /// The registry CSV path, if configured.
    pub fn registry_csv_path(&self) -> Option<PathBuf> {
        self.registry_csv.as_ref().map(|p| self.dir.join(p))
    }
}

/// The 32-byte My Number key.
pub type MyNumberKey = SecretBox<[u8; 32]>;

fn decode_key(hex: &str) -> Result<MyNumberKey, IdentityConfigError> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdentityConfigError::Key(
            "expected 64 hex digits (32 bytes)".into(),
        ));
    }
    let mut key = Box::new([0u8; 32]);
    for (i, slot) in key.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| IdentityConfigError::Key("expected hex digits".into()))?;
    }
    Ok(SecretBox::new(key))
}

/// The key from the variable, or from (or newly into) `data_dir/identity.key`.
pub fn load_key(
    env: &dyn Environment,
    data_dir: &Path,
) -> Result<MyNumberKey, IdentityConfigError> {
    if let Some(value) = env.var(KEY_VARIABLE) {
        let value = SecretString::from(value);
        return decode_key(value.expose_secret());
    }
    let file = data_dir.join("identity.key");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return decode_key(&text);
    }
    std::fs::create_dir_all(data_dir).map_err(|e| IdentityConfigError::Key(e.to_string()))?;
    // Two v4 UUIDs: 64 hex digits, 244 of their 256 bits from the OS
    // generator (the rest are UUID version and variant bits).
    let hex = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&file, &hex).map_err(|e| IdentityConfigError::Key(e.to_string()))?;
    tracing::info!(path = %file.display(), "generated the my number key");
    decode_key(&hex)
}

#[cfg(unix)]
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(file, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_ofunato_identity_file_is_valid() -> Result<(), IdentityConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato/identity.toml");
        let site = IdentitySite::load(&path)?;
        let kinds = site.kinds();
        assert_eq!(kinds["my-number-card"].class, DocumentClass::PhotoId);
        assert_eq!(kinds["bank-book"].class, DocumentClass::Supplementary);
        let procedures = site.procedures();
        let kouiki = procedures["koseki-kouiki"].policy();
        assert!(kouiki.require_photo_id && !kouiki.allow_power_of_attorney);
        assert!(procedures["sosaihi"].uses_my_number);
        assert!(site.registry_csv_path().is_some_and(|p| p.exists()));
        Ok(())
    }

    #[test]
    fn shipped_rikuzentakata_identity_file_is_valid() -> Result<(), Box<dyn std::error::Error>> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/rikuzentakata/identity.toml");
        let site = IdentitySite::load(&path)?;
        assert!(
            site.my_number
                .handlers
                .iter()
                .any(|h| h == "takata-shimin-kojinbango")
        );
        assert!(site.procedures()["kokuho-soshitsu"].uses_my_number);
        let csv = site.registry_csv_path().ok_or("no registry csv")?;
        let code = madoguchi_platform::types::MunicipalityCode::parse("032107")?;
        let records = crate::registry::csv::parse(&std::fs::read_to_string(csv)?, &code)
            .map_err(|v| format!("{v:?}"))?;
        assert!(records.len() >= 5);
        Ok(())
    }

    #[test]
    fn bad_files_are_rejected() {
        let text = r#"
[[document_kinds]]
id = "Bad Id"
class = "photo-id"
name_ja = "x"
name_en = "x"
[power_of_attorney]
validity_months = 0
"#;
        let Err(IdentityConfigError::Invalid(message)) = IdentitySite::parse(text) else {
            panic!("should be rejected");
        };
        assert!(message.contains("document_kinds[0].id"), "{message}");
        assert!(message.contains("validity_months"), "{message}");
        assert!(matches!(
            IdentitySite::parse(
                "[[document_kinds]]\nid = \"x\"\nclass = \"gold\"\nname_ja=\"\"\nname_en=\"\"\n"
            ),
            Err(IdentityConfigError::Parse(_))
        ));
    }

    #[test]
    fn keys_come_from_the_variable_or_a_private_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let env = HashMap::from([(KEY_VARIABLE.to_owned(), "ab".repeat(32))]);
        assert_eq!(load_key(&env, dir.path())?.expose_secret()[0], 0xab);
        let bad = HashMap::from([(KEY_VARIABLE.to_owned(), "xyz".to_owned())]);
        assert!(load_key(&bad, dir.path()).is_err());
        let none: HashMap<String, String> = HashMap::new();
        let first = load_key(&none, dir.path())?;
        let second = load_key(&none, dir.path())?;
        assert_eq!(first.expose_secret(), second.expose_secret());
        Ok(())
    }
}
