//! The references between a site directory's files, which no single
//! loader sees: the identity rules' procedures against the catalog, the
//! registry against the site's municipality, the gateway against the
//! site, the signage routing and the credentials it will use, and the
//! Kubernetes ConfigMap against the files that exist.

use std::collections::HashSet;
use std::path::Path;

use madoguchi_platform::auth::Role;
use madoguchi_platform::config::TokenConfig;
use madoguchi_queue::domain::OfficeName;

use super::source::{TomlSource, line_at};
use super::{CATALOG_FILE, GATEWAY_FILE, IDENTITY_FILE, Loaded, Problems, SIGNAGE_FILE, SITE_FILE};

/// The registry CSV that `identity.toml` names, read by the identity
/// service's own importer against the site's municipality: every row's
/// cells, every municipality code's check digit, relatives and
/// households.
pub(super) fn registry(
    dir: &Path,
    loaded: &Loaded,
    problems: &mut Problems,
    files_read: &mut Vec<String>,
) {
    let site = loaded.site.as_ref();
    let named = loaded
        .identity
        .as_ref()
        .and_then(|identity| identity.registry_csv.clone());
    let Some(csv) = named else {
        if loaded.identity.is_some() && dir.join("residents.csv").exists() {
            problems.note(
                "residents.csv",
                format!("not read: {IDENTITY_FILE} names no registry_csv"),
            );
        }
        return;
    };
    let file = csv.display().to_string();
    let identity_line = loaded.texts.identity.as_deref().and_then(|text| {
        TomlSource::parse(text)
            .ok()?
            .line_of_path("registry_csv", "")
    });
    let path = dir.join(&csv);
    if csv.is_absolute() || csv.components().count() != 1 {
        problems.warning(
            IDENTITY_FILE,
            identity_line,
            format!(
                "registry_csv {file} is not a file of the site directory: it is neither checked here nor in the ConfigMap"
            ),
        );
        return;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            problems.error(
                IDENTITY_FILE,
                identity_line,
                format!(
                    "registry_csv {file}: {e} (the identity service does not start without it)"
                ),
            );
            return;
        }
    };
    files_read.push(file.clone());
    let Some(site) = site else {
        problems.note(
            &file,
            format!("not checked: {SITE_FILE} did not load (its municipality code is needed)"),
        );
        return;
    };
    if let Err(violations) =
        madoguchi_identity::registry::csv::parse(&text, &site.municipality.code)
    {
        for v in violations {
            // `rows[<line>].<column>`, line 1 being the header; `csv` for
            // the file as a whole (its header).
            let line = v
                .field
                .strip_prefix("rows[")
                .and_then(|rest| rest.split(']').next())
                .and_then(|n| n.parse().ok())
                .or(Some(1));
            problems.error(&file, line, format!("{}: {}", v.field, v.description));
        }
    }
}

/// The line in `catalog.toml` of a lint finding (`procedure ID: …`,
/// `event ID: question Q …`, `event ID: condition "…" …`).
pub(super) fn lint_line(source: &TomlSource<'_>, finding: &str) -> Option<usize> {
    if let Some(rest) = finding.strip_prefix("procedure ") {
        let id = rest.split(':').next()?;
        return source.line_of_entry("procedures", id);
    }
    let rest = finding.strip_prefix("event ")?;
    let (id, what) = rest.split_once(": ")?;
    let event = source.index_of_entry("life_events", id)?;
    let at = format!("life_events[{event}]");
    let specific = if let Some(question) = what.strip_prefix("question ") {
        let question = question.split(' ').next().unwrap_or_default();
        source.line_of_string(&format!("{at}.questions"), question)
    } else if let (Some(start), Some(end)) = (what.find('"'), what.rfind('"')) {
        what.get(start + 1..end)
            .and_then(|condition| source.line_of_string(&at, condition))
    } else {
        None
    };
    specific.or_else(|| source.line_of_entry("life_events", id))
}

/// Every cross-file reference whose files loaded.
pub(super) fn check(loaded: &Loaded, problems: &mut Problems) {
    fn parse(text: &Option<String>) -> Option<TomlSource<'_>> {
        TomlSource::parse(text.as_deref()?).ok()
    }
    let site_source = parse(&loaded.texts.site);
    let identity_source = parse(&loaded.texts.identity);
    let signage_source = parse(&loaded.texts.signage);
    let gateway_source = parse(&loaded.texts.gateway);

    if let (Some(site), Some(source)) = (&loaded.site, &site_source) {
        // A category no counter calls by default fills up unseen: staff
        // must name it on every CallNext.
        for (o, office) in site.offices.iter().enumerate() {
            for category in &office.categories {
                if !office
                    .counters
                    .iter()
                    .any(|c| c.categories.contains(&category.id))
                {
                    problems.warning(
                        SITE_FILE,
                        source.line_of_entry(&format!("offices[{o}].categories"), &category.id),
                        format!(
                            "category {} of office {}: no counter calls it by default",
                            category.id, office.id
                        ),
                    );
                }
            }
        }
    }

    // The identity rules are keyed by the catalog's ids ("ids shared with
    // the forms catalog"). A warning, not an error: the identity service
    // answers for its own ids, and the forms service sends the catalog's
    // requesters as the policy, so a stray id is drift, not a failure.
    if let (Some(identity), Some(catalog), Some(source)) =
        (&loaded.identity, &loaded.catalog, &identity_source)
    {
        for procedure in &identity.procedures {
            if catalog.procedure(&procedure.id).is_none()
                && catalog.certificate(&procedure.id).is_none()
            {
                problems.warning(
                    IDENTITY_FILE,
                    source.line_of_entry("procedures", &procedure.id),
                    format!(
                        "procedure {} is neither a procedure nor a certificate kind of {CATALOG_FILE}",
                        procedure.id
                    ),
                );
            }
        }
    }

    if let (Some(site), Some(signage), Some(source)) =
        (&loaded.site, &loaded.signage, &signage_source)
    {
        for (o, office) in signage.offices.iter().enumerate() {
            let Some(site_office) = site.offices.iter().find(|s| s.id == office.id) else {
                continue; // the signage loader reports the unknown office
            };
            for (p, purpose) in office.purposes.iter().enumerate() {
                let calls = site_office
                    .counters
                    .iter()
                    .find(|c| c.id == purpose.counter)
                    .is_none_or(|c| c.categories.contains(&purpose.category));
                if !calls {
                    problems.warning(
                        SIGNAGE_FILE,
                        source.line_of_path(&format!("offices[{o}].purposes[{p}].counter"), ""),
                        format!(
                            "purpose {}: counter {} does not call category {} by default",
                            purpose.id, purpose.counter, purpose.category
                        ),
                    );
                }
            }
        }
    }

    if let (Some(gateway), Some(source)) = (&loaded.gateway, &gateway_source) {
        gateway_references(loaded, gateway, source, signage_source.as_ref(), problems);
    }
}

fn gateway_references(
    loaded: &Loaded,
    gateway: &madoguchi_gateway::config::GatewayConfig,
    source: &TomlSource<'_>,
    signage_source: Option<&TomlSource<'_>>,
    problems: &mut Problems,
) {
    let office_line = source.line_of_path("cluster.office", "");
    let office = match OfficeName::parse(&gateway.cluster.office) {
        Ok(office) => Some(office),
        Err(e) => {
            problems.error(GATEWAY_FILE, office_line, format!("cluster.office: {e}"));
            None
        }
    };
    let site_office = match (&office, &loaded.site) {
        (Some(office), Some(site)) => {
            if office.municipality != site.municipality.code {
                problems.error(
                    GATEWAY_FILE,
                    office_line,
                    format!(
                        "cluster.office: municipality {} is not this site's ({} {})",
                        office.municipality, site.municipality.code, site.municipality.name_ja
                    ),
                );
                None
            } else {
                let found = site.offices.iter().find(|o| o.id == office.office);
                if found.is_none() {
                    problems.error(
                        GATEWAY_FILE,
                        office_line,
                        format!(
                            "cluster.office: office {} is not an office of {SITE_FILE}",
                            office.office
                        ),
                    );
                }
                found
            }
        }
        _ => None,
    };

    if let Some(site_office) = site_office {
        for (k, kiosk) in gateway.kiosks.iter().enumerate() {
            for (button, category) in &kiosk.buttons {
                if !site_office.categories.iter().any(|c| &c.id == category) {
                    problems.error(
                        GATEWAY_FILE,
                        source.line_of_path(&format!("kiosks[{k}].buttons.{button}"), ""),
                        format!(
                            "kiosk {} button {button}: unknown category {category} of office {}",
                            kiosk.id, site_office.id
                        ),
                    );
                }
            }
        }
    }

    // Call boards: the gateway polls the units of its lines; signage.toml
    // says which counters each unit (a board's `line` and `address`)
    // shows. A unit no board routes shows nothing; a board on a line or
    // address this gateway does not poll never lights.
    let signage_office = match (&loaded.signage, &office) {
        (Some(signage), Some(office)) => signage.offices.iter().find(|o| o.id == office.office),
        _ => None,
    };
    match signage_office {
        None if !gateway.board_lines.is_empty() => problems.note(
            GATEWAY_FILE,
            format!("board units not checked: {SIGNAGE_FILE} routes no boards for this office"),
        ),
        None => {}
        Some(signage_office) => {
            for (l, line) in gateway.board_lines.iter().enumerate() {
                for unit in &line.units {
                    let routed = signage_office
                        .boards
                        .iter()
                        .any(|b| b.line == line.id && b.address == u32::from(*unit));
                    if !routed {
                        problems.error(
                            GATEWAY_FILE,
                            source.line_of_element(
                                &format!("board_lines[{l}].units"),
                                &unit.to_string(),
                            ),
                            format!(
                                "board line {} unit {unit}: no board of {SIGNAGE_FILE} is at this address, so it shows no counter's calls",
                                line.id
                            ),
                        );
                    }
                }
            }
            let o = loaded
                .signage
                .as_ref()
                .and_then(|s| s.offices.iter().position(|x| x.id == signage_office.id))
                .unwrap_or_default();
            for (b, board) in signage_office.boards.iter().enumerate() {
                let polled = gateway
                    .board_lines
                    .iter()
                    .find(|l| l.id == board.line)
                    .map(|l| l.units.iter().any(|u| u32::from(*u) == board.address));
                let why = match polled {
                    None => format!("line {} is not a board line of {GATEWAY_FILE}", board.line),
                    Some(false) => format!(
                        "{GATEWAY_FILE} does not poll unit {} on line {}",
                        board.address, board.line
                    ),
                    Some(true) => continue,
                };
                problems.warning(
                    SIGNAGE_FILE,
                    signage_source.and_then(|s| {
                        s.line_of_path(&format!("offices[{o}].boards[{b}].address"), "")
                    }),
                    format!("board {}: {why}; it never shows a call", board.id),
                );
            }
        }
    }

    // The gateway's token: written inline, or the `device` token of its
    // office's municipality in a credentials file (read from the
    // gateway's working directory).
    if gateway.cluster.token.is_some() {
        problems.warning(
            GATEWAY_FILE,
            source.line_of_path("cluster.token", ""),
            "cluster.token: a secret in the site directory (and in git); prefer token_file",
        );
    }
    if let (Some(token_file), Some(office)) = (&gateway.cluster.token_file, &office) {
        let line = source.line_of_path("cluster.token_file", "");
        if !token_file.exists() {
            problems.note(
                GATEWAY_FILE,
                format!(
                    "token_file {} not found from this working directory: `madoguchi serve` writes it on first start",
                    token_file.display()
                ),
            );
        } else {
            if let Some(tokens) = token_file_tokens(token_file, problems)
                && !tokens
                    .iter()
                    .any(|t| t.role == Role::Device && t.municipality == office.municipality)
            {
                problems.error(
                    GATEWAY_FILE,
                    line,
                    format!(
                        "token_file {}: no device token of municipality {} (the gateway \
                         takes the device token of its office's municipality)",
                        token_file.display(),
                        office.municipality
                    ),
                );
            }
        }
    }
}

/// The tokens of a credentials file (`credentials.toml`'s format, the
/// platform's `TokenConfig`, whose municipality codes carry a check
/// digit); its problems are reported at its own lines.
fn token_file_tokens(path: &Path, problems: &mut Problems) -> Option<Vec<TokenConfig>> {
    #[derive(serde::Deserialize)]
    struct CredentialsFile {
        tokens: Vec<TokenConfig>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.error_outside(path, None, format!("cannot read: {e}"));
            return None;
        }
    };
    let source = match TomlSource::parse(&text) {
        Ok(source) => source,
        Err(errors) => {
            for e in errors {
                problems.error_outside(path, e.line, e.message);
            }
            return None;
        }
    };
    if let Some(e) = source.shape_error::<CredentialsFile>() {
        problems.error_outside(path, e.line, e.message);
        return None;
    }
    toml::from_str::<CredentialsFile>(&text)
        .ok()
        .map(|file| file.tokens)
}

/// `kustomization.yaml` generates the ConfigMap a cluster's servers read
/// the site from: every file it lists must exist, and every file a
/// server reads must be listed. The `files:` list is read line by line
/// (no YAML parser is linked for one list).
pub(super) fn kustomization(dir: &Path, text: &str, loaded: &Loaded, problems: &mut Problems) {
    let file = super::KUSTOMIZATION_FILE;
    let mut listed: HashSet<String> = HashSet::new();
    let mut files_line = None;
    let mut list_indent: Option<usize> = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line_no = line_at(text, offset);
        offset += raw.len();
        let line = raw.trim_end();
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if content == "files:" {
            files_line = Some(line_no);
            list_indent = Some(indent);
            continue;
        }
        let Some(base) = list_indent else { continue };
        match content.strip_prefix("- ") {
            Some(entry) if indent >= base => {
                // `name=path` names the key; the file is the path.
                let entry = entry.trim().trim_matches(['"', '\'']);
                let path = entry.split_once('=').map_or(entry, |(_, p)| p);
                if !dir.join(path).is_file() {
                    problems.error(
                        file,
                        Some(line_no),
                        format!("{path} is listed for the ConfigMap but is not in the directory"),
                    );
                }
                listed.insert(path.to_owned());
            }
            _ => list_indent = None,
        }
    }
    let Some(files_line) = files_line else {
        problems.warning(
            file,
            None,
            "no configMapGenerator files list: the cluster gets none of the site's files",
        );
        return;
    };
    let mut served = vec![
        SITE_FILE.to_owned(),
        CATALOG_FILE.to_owned(),
        IDENTITY_FILE.to_owned(),
    ];
    if let Some(csv) = loaded
        .identity
        .as_ref()
        .and_then(|i| i.registry_csv.as_ref())
    {
        served.push(csv.display().to_string());
    }
    if dir.join(SIGNAGE_FILE).exists() {
        served.push(SIGNAGE_FILE.to_owned());
    }
    for name in served {
        if dir.join(&name).exists() && !listed.contains(&name) {
            problems.warning(
                file,
                Some(files_line),
                format!("{name} is not listed: servers in the cluster would not find it"),
            );
        }
    }
}
