//! `madoguchi site check DIR`: everything a municipality writes to adopt
//! Madoguchi — its site directory — checked before a server reads it,
//! with every problem reported as `FILE:LINE: severity: message`.
//!
//! Each file is read by the loader of the crate that owns it (the site
//! file by the platform, `catalog.toml` by the catalog crate and its lint,
//! `identity.toml` and `residents.csv` by the identity service,
//! `signage.toml` by the signage guide, `gateway.toml` by the gateway), so
//! this command accepts exactly what a server and a floor gateway accept;
//! [`source`] turns the loaders' field paths back into lines. What no
//! single loader can see — one file naming something another file defines
//! — is checked in [`references`].
//!
//! Which files a directory needs follows from what refuses to start
//! without them: `site.toml`, `catalog.toml` (forms and POS) and
//! `identity.toml` (identity) are required, and so is the registry CSV
//! when `identity.toml` names one. `signage.toml` (the floor guide and
//! call-board routing; signage starts with an empty guide without it),
//! `gateway.toml` (only a floor with serial devices has one) and
//! `kustomization.yaml` (only a cluster deployment needs one) are
//! optional: their absence is a note.

mod references;
mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use madoguchi_catalog::{Catalog, CatalogError};
use madoguchi_gateway::config::{ConfigError, GatewayConfig};
use madoguchi_identity::config::{IdentityConfigError, IdentitySite};
use madoguchi_platform::site::{Site, SiteError};
use madoguchi_signage::guide::{Guide, GuideError, SignageFile};

use source::{TomlError, TomlSource, split_violations};

/// `madoguchi site …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum SiteCommand {
    /// Check a site directory (site.toml, catalog.toml, identity.toml,
    /// residents.csv, signage.toml, gateway.toml, kustomization.yaml):
    /// each file with its own loader, then every reference between them.
    /// Prints each problem as FILE:LINE: severity: message; exits 1 when
    /// any is an error.
    Check {
        /// The site directory, e.g. sites/ofunato.
        dir: PathBuf,
    },
}

/// Runs a site command: the problems on standard output, then a summary;
/// an error (exit status 1) when any problem is an error.
pub fn run(command: SiteCommand) -> anyhow::Result<()> {
    match command {
        SiteCommand::Check { dir } => {
            let report = check(&dir);
            crate::write_out(format_args!("{report}"));
            if report.errors() > 0 {
                anyhow::bail!("{}", report.summary());
            }
            crate::outln!("{}", report.summary());
            Ok(())
        }
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A server or gateway would refuse the file, or would serve
    /// something that does not exist.
    Error,
    /// Accepted, but probably not what the municipality meant.
    Warning,
    /// For information: an optional file that is absent.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        })
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, e.g. `sites/ofunato/catalog.toml`.
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: {}: {}",
                self.file.display(),
                self.severity,
                self.message
            ),
            None => write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.severity,
                self.message
            ),
        }
    }
}

/// The outcome of checking one site directory.
#[derive(Debug, Clone)]
pub struct Report {
    /// The directory as given.
    pub dir: PathBuf,
    /// Files that were present and read.
    pub files_read: Vec<String>,
    /// Every problem, file by file in reading order, then the references.
    pub problems: Vec<Problem>,
}

impl Report {
    /// How many problems are errors.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    /// How many problems are warnings.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .count()
    }

    /// One line: the directory, the files read, errors and warnings.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let files = if self.files_read.is_empty() {
            "no files checked".to_owned()
        } else {
            format!(
                "{} checked ({})",
                plural(self.files_read.len(), "file"),
                self.files_read.join(", ")
            )
        };
        format!(
            "{}: {files}: {}, {}",
            self.dir.display(),
            plural(self.errors(), "error"),
            plural(self.warnings(), "warning"),
        )
    }
}

impl fmt::Display for Report {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The file names of a site directory.
pub const SITE_FILE: &str = "site.toml";
/// The catalog (forms, POS).
pub const CATALOG_FILE: &str = "catalog.toml";
/// The identity rules.
pub const IDENTITY_FILE: &str = "identity.toml";
/// The signage guide and board routing.
pub const SIGNAGE_FILE: &str = "signage.toml";
/// The floor gateway's configuration.
pub const GATEWAY_FILE: &str = "gateway.toml";
/// The Kubernetes ConfigMap generator.
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

/// Collects problems with their file's path inside the directory.
struct Problems {
    dir: PathBuf,
    list: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, file: &str, line: Option<usize>, severity: Severity, message: String) {
        self.list.push(Problem {
            file: self.dir.join(file),
            line,
            severity,
            message,
        });
    }

    fn error(&mut self, file: &str, line: Option<usize>, message: impl Into<String>) {
        self.add(file, line, Severity::Error, message.into());
    }

    /// A problem in a file outside the directory (the gateway's token
    /// file), named as the gateway would open it.
    fn error_outside(&mut self, path: &Path, line: Option<usize>, message: impl Into<String>) {
        self.list.push(Problem {
            file: path.to_owned(),
            line,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    fn warning(&mut self, file: &str, line: Option<usize>, message: impl Into<String>) {
        self.add(file, line, Severity::Warning, message.into());
    }

    fn note(&mut self, file: &str, message: impl Into<String>) {
        self.add(file, None, Severity::Note, message.into());
    }

    fn toml_errors(&mut self, file: &str, errors: Vec<TomlError>) {
        for e in errors {
            self.error(file, e.line, e.message);
        }
    }

    /// A loader's "path: description; …" list, each at its line.
    fn violations(&mut self, file: &str, source: &TomlSource<'_>, joined: &str) {
        for (path, description) in split_violations(joined) {
            let line = source.line_of_path(&path, &description);
            let message = if path.is_empty() {
                description
            } else {
                format!("{path}: {description}")
            };
            self.error(file, line, message);
        }
    }
}

/// A file of the directory as read.
enum FileText {
    /// Not there: the caller knows whether that is an error or a note.
    Absent,
    /// There but unreadable, already reported.
    Unreadable,
    /// Its text.
    Text(String),
}

fn read(dir: &Path, file: &str, problems: &mut Problems, files_read: &mut Vec<String>) -> FileText {
    let path = dir.join(file);
    if !path.exists() {
        return FileText::Absent;
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            files_read.push(file.to_owned());
            FileText::Text(text)
        }
        Err(e) => {
            problems.error(file, None, format!("cannot read: {e}"));
            FileText::Unreadable
        }
    }
}

/// What loaded, for the cross-file checks.
#[derive(Default)]
struct Loaded {
    site: Option<Site>,
    catalog: Option<Catalog>,
    identity: Option<IdentitySite>,
    signage: Option<SignageFile>,
    gateway: Option<GatewayConfig>,
    texts: Texts,
}

/// The texts of the TOML files that parsed, to locate cross-file problems.
#[derive(Default)]
struct Texts {
    site: Option<String>,
    catalog: Option<String>,
    identity: Option<String>,
    signage: Option<String>,
    gateway: Option<String>,
}

/// Checks every file of a site directory and every reference between
/// them.
pub fn check(dir: &Path) -> Report {
    let mut problems = Problems {
        dir: dir.to_owned(),
        list: Vec::new(),
    };
    let mut files_read = Vec::new();
    if !dir.is_dir() {
        problems.list.push(Problem {
            file: dir.to_owned(),
            line: None,
            severity: Severity::Error,
            message: "not a directory".into(),
        });
    } else {
        let mut loaded = Loaded::default();
        let files = &mut files_read;
        let p = &mut problems;
        site_file(dir, p, files, &mut loaded);
        catalog_file(dir, p, files, &mut loaded);
        identity_file(dir, p, files, &mut loaded);
        references::registry(dir, &loaded, p, files);
        signage_file(dir, p, files, &mut loaded);
        gateway_file(dir, p, files, &mut loaded);
        references::check(&loaded, p);
        kustomization_file(dir, p, files, &loaded);
    }
    Report {
        dir: dir.to_owned(),
        files_read,
        problems: problems.list,
    }
}

fn not_checked(what: &str) -> String {
    format!("not checked against {SITE_FILE}, which did not load ({what})")
}

/// `site.toml`: everything else refers to it.
fn site_file(dir: &Path, problems: &mut Problems, files: &mut Vec<String>, loaded: &mut Loaded) {
    match read(dir, SITE_FILE, problems, files) {
        FileText::Absent => problems.error(
            SITE_FILE,
            None,
            "missing: every other file refers to the site file",
        ),
        FileText::Unreadable => {}
        FileText::Text(text) => {
            load_site(&text, problems, loaded);
            loaded.texts.site = Some(text);
        }
    }
}

/// `catalog.toml`: required by the forms and POS services.
fn catalog_file(dir: &Path, problems: &mut Problems, files: &mut Vec<String>, loaded: &mut Loaded) {
    let text = match read(dir, CATALOG_FILE, problems, files) {
        FileText::Absent => {
            return problems.error(
                CATALOG_FILE,
                None,
                "missing: the forms and POS services do not start without it",
            );
        }
        FileText::Unreadable => return,
        FileText::Text(text) => text,
    };
    let Some(source) = syntax(CATALOG_FILE, &text, problems) else {
        return;
    };
    match loaded.site.clone() {
        Some(site) => load_catalog(&text, &source, &site, problems, loaded),
        None => {
            shape::<Catalog>(CATALOG_FILE, &source, problems);
            problems.note(CATALOG_FILE, not_checked("categories"));
        }
    }
    loaded.texts.catalog = Some(text);
}

/// `identity.toml`: required by the identity service. The registry CSV
/// it names is [`references::registry`]'s.
fn identity_file(
    dir: &Path,
    problems: &mut Problems,
    files: &mut Vec<String>,
    loaded: &mut Loaded,
) {
    let text = match read(dir, IDENTITY_FILE, problems, files) {
        FileText::Absent => {
            return problems.error(
                IDENTITY_FILE,
                None,
                "missing: the identity service does not start without it",
            );
        }
        FileText::Unreadable => return,
        FileText::Text(text) => text,
    };
    let Some(source) = syntax(IDENTITY_FILE, &text, problems) else {
        return;
    };
    let as_written = || {
        toml::from_str::<IdentitySite>(&text)
            .ok()
            .map(|mut identity| {
                identity.dir = dir.to_owned();
                identity
            })
    };
    match IdentitySite::parse(&text) {
        Ok(mut identity) => {
            identity.dir = dir.to_owned();
            loaded.identity = Some(identity);
        }
        Err(IdentityConfigError::Invalid(joined)) => {
            problems.violations(IDENTITY_FILE, &source, &joined);
            loaded.identity = as_written();
        }
        Err(other) => {
            if shape::<IdentitySite>(IDENTITY_FILE, &source, problems) {
                problems.error(IDENTITY_FILE, None, other.to_string());
            }
        }
    }
    loaded.texts.identity = Some(text);
}

/// `signage.toml`: optional.
fn signage_file(dir: &Path, problems: &mut Problems, files: &mut Vec<String>, loaded: &mut Loaded) {
    let text = match read(dir, SIGNAGE_FILE, problems, files) {
        FileText::Absent => {
            return problems.note(
                SIGNAGE_FILE,
                "absent: the floor guide is empty and no call board is routed",
            );
        }
        FileText::Unreadable => return,
        FileText::Text(text) => text,
    };
    let Some(source) = syntax(SIGNAGE_FILE, &text, problems) else {
        return;
    };
    if shape::<SignageFile>(SIGNAGE_FILE, &source, problems) {
        match &loaded.site {
            Some(site) => match Guide::parse(&text, site) {
                Ok(_) => {}
                Err(GuideError::Invalid(joined)) => {
                    problems.violations(SIGNAGE_FILE, &source, &joined);
                }
                Err(other) => problems.error(SIGNAGE_FILE, None, other.to_string()),
            },
            None => problems.note(SIGNAGE_FILE, not_checked("offices, counters")),
        }
        loaded.signage = toml::from_str(&text).ok();
    }
    loaded.texts.signage = Some(text);
}

/// `gateway.toml`: optional.
fn gateway_file(dir: &Path, problems: &mut Problems, files: &mut Vec<String>, loaded: &mut Loaded) {
    let text = match read(dir, GATEWAY_FILE, problems, files) {
        FileText::Absent => {
            return problems.note(
                GATEWAY_FILE,
                "absent: fine for a floor without serial devices (kiosk printers, call boards, registers)",
            );
        }
        FileText::Unreadable => return,
        FileText::Text(text) => text,
    };
    let Some(source) = syntax(GATEWAY_FILE, &text, problems) else {
        return;
    };
    match GatewayConfig::parse(&text) {
        Ok(config) => loaded.gateway = Some(config),
        Err(ConfigError::Invalid(message)) => {
            // The gateway's own checks stop at the first problem and name
            // it in words, not by path: the line is that of the first
            // value the message quotes or names.
            let line = message
                .split([' ', ':', '"'])
                .filter(|w| !w.is_empty())
                .find_map(|w| source.line_of_string("", w))
                .or_else(|| {
                    let key = message.split(':').next().unwrap_or_default();
                    source.line_of_path(key, "")
                });
            problems.error(GATEWAY_FILE, line, message);
            loaded.gateway = toml::from_str(&text).ok();
        }
        Err(other) => {
            if shape::<GatewayConfig>(GATEWAY_FILE, &source, problems) {
                problems.error(GATEWAY_FILE, None, other.to_string());
            }
        }
    }
    loaded.texts.gateway = Some(text);
}

/// `kustomization.yaml`: optional.
fn kustomization_file(
    dir: &Path,
    problems: &mut Problems,
    files: &mut Vec<String>,
    loaded: &Loaded,
) {
    match read(dir, KUSTOMIZATION_FILE, problems, files) {
        FileText::Absent => problems.note(
            KUSTOMIZATION_FILE,
            "absent: needed only to serve the site from a Kubernetes cluster",
        ),
        FileText::Unreadable => {}
        FileText::Text(text) => references::kustomization(dir, &text, loaded, problems),
    }
}

/// The spanned tree of a TOML file, or its syntax errors reported.
fn syntax<'t>(file: &str, text: &'t str, problems: &mut Problems) -> Option<TomlSource<'t>> {
    match TomlSource::parse(text) {
        Ok(source) => Some(source),
        Err(errors) => {
            problems.toml_errors(file, errors);
            None
        }
    }
}

/// Whether the file has the shape of `T`; reports why not.
fn shape<T: serde::de::DeserializeOwned>(
    file: &str,
    source: &TomlSource<'_>,
    problems: &mut Problems,
) -> bool {
    match source.shape_error::<T>() {
        None => true,
        Some(e) => {
            problems.error(file, e.line, e.message);
            false
        }
    }
}

fn load_site(text: &str, problems: &mut Problems, loaded: &mut Loaded) {
    let Some(source) = syntax(SITE_FILE, text, problems) else {
        return;
    };
    match Site::parse(text) {
        Ok(site) => loaded.site = Some(site),
        Err(SiteError::Invalid(joined)) => {
            problems.violations(SITE_FILE, &source, &joined);
            // The references are still worth checking against the site as
            // written: they are independent of its own mistakes.
            loaded.site = toml::from_str(text).ok();
        }
        Err(other) => {
            if !shape::<Site>(SITE_FILE, &source, problems) {
                return;
            }
            problems.error(SITE_FILE, None, other.to_string());
        }
    }
}

fn load_catalog(
    text: &str,
    source: &TomlSource<'_>,
    site: &Site,
    problems: &mut Problems,
    loaded: &mut Loaded,
) {
    match Catalog::parse(text, site) {
        Ok(catalog) => {
            // What a shipped catalog must say beyond loading, with the
            // facts the navigator knows.
            for line in catalog.lint(madoguchi_forms::facts::is_known_fact) {
                let at = references::lint_line(source, &line);
                problems.error(CATALOG_FILE, at, line);
            }
            loaded.catalog = Some(catalog);
        }
        Err(CatalogError::Invalid(joined)) => {
            problems.violations(CATALOG_FILE, source, &joined);
            loaded.catalog = toml::from_str(text).ok();
        }
        Err(other) => {
            if shape::<Catalog>(CATALOG_FILE, source, problems) {
                problems.error(CATALOG_FILE, None, other.to_string());
            }
        }
    }
}
