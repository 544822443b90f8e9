//! `madoguchi site check` through the real binary: the shipped sample
//! passes, and copies of it with one fault each yield exactly that
//! problem, naming its file and line, with exit status 1 for an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_madoguchi");

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sites/ofunato")
}

struct Checked {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Checked {
    /// The problem lines of one severity (`error`, `warning`).
    fn lines(&self, severity: &str) -> Vec<String> {
        let tag = format!(": {severity}: ");
        self.stdout
            .lines()
            .filter(|l| l.contains(&tag))
            .map(str::to_owned)
            .collect()
    }
}

/// `madoguchi site check site` from `cwd` (a scratch directory, so that
/// the gateway's relative `token_file` never finds a developer's
/// credentials).
fn check(cwd: &Path, site: &str) -> Checked {
    let output = Command::new(BIN)
        .args(["site", "check", site])
        .current_dir(cwd)
        .output()
        .unwrap();
    Checked {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A copy of the sample at `root/ofunato`.
fn copy_sample(root: &Path) -> PathBuf {
    let to = root.join("ofunato");
    std::fs::create_dir(&to).unwrap();
    for entry in std::fs::read_dir(sample()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to
}

/// Replaces the first `from` in `file` with `to`; returns its line.
fn inject(site: &Path, file: &str, from: &str, to: &str) -> usize {
    let path = site.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in {file}"));
    let line = text[..at].matches('\n').count() + 1;
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    line
}

/// Injects one fault into a copy of the sample and asserts that the check
/// reports exactly `expected` (given the line the fault is on) beyond
/// what it reports for the intact sample.
fn assert_single_problem(
    file: &str,
    from: &str,
    to: &str,
    severity: &str,
    expected: impl FnOnce(usize) -> String,
) {
    let scratch = tempfile::tempdir().unwrap();
    let site = copy_sample(scratch.path());
    let intact = check(scratch.path(), "ofunato");
    assert_eq!(intact.status, Some(0), "{}{}", intact.stdout, intact.stderr);
    let baseline = intact.lines("warning");

    let line = inject(&site, file, from, to);
    let broken = check(scratch.path(), "ofunato");
    let expected = format!("ofunato/{file}:{line}: {severity}: {}", expected(line));
    let errors = broken.lines("error");
    let new_warnings: Vec<String> = broken
        .lines("warning")
        .into_iter()
        .filter(|w| !baseline.contains(w))
        .collect();
    let (reported, other) = if severity == "error" {
        (errors, new_warnings)
    } else {
        (new_warnings, errors)
    };
    assert_eq!(reported, [expected], "output:\n{}", broken.stdout);
    assert!(other.is_empty(), "output:\n{}", broken.stdout);
    let failed = severity == "error";
    assert_eq!(
        broken.status,
        Some(i32::from(failed)),
        "{}{}",
        broken.stdout,
        broken.stderr
    );
    if failed {
        assert!(broken.stderr.contains("1 error"), "{}", broken.stderr);
    }
}

#[test]
fn the_shipped_sample_passes() {
    let scratch = tempfile::tempdir().unwrap();
    let site = sample();
    let checked = check(scratch.path(), site.to_str().unwrap());
    assert_eq!(
        checked.status,
        Some(0),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    assert!(checked.lines("error").is_empty(), "{}", checked.stdout);
    let summary = checked.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(
            "7 files checked (site.toml, catalog.toml, identity.toml, residents.csv, \
             signage.toml, gateway.toml, kustomization.yaml): 0 errors"
        ),
        "{summary}"
    );
}

#[test]
fn a_wrong_check_digit_in_the_municipality_code() {
    assert_single_problem(
        "site.toml",
        "code = \"032034\"",
        "code = \"032035\"",
        "error",
        |_| "municipality.code: check digit should be 4".into(),
    );
}

#[test]
fn a_duplicate_category_prefix() {
    assert_single_problem(
        "site.toml",
        "prefix = \"B\"",
        "prefix = \"A\"",
        "error",
        |_| "offices[0].categories[1].prefix: must be one unique capital letter".into(),
    );
}

#[test]
fn a_bad_colour() {
    assert_single_problem(
        "site.toml",
        "colour = \"#2E86C1\"",
        "colour = \"#2E86C\"",
        "error",
        |_| "offices[0].categories[1].colour: must be #RRGGBB".into(),
    );
}

#[test]
fn a_catalog_procedure_in_an_unknown_category() {
    assert_single_problem(
        "catalog.toml",
        "category = \"insurance-pension\"",
        "category = \"insurance\"",
        "error",
        |_| "procedures[2].category: unknown category insurance".into(),
    );
}

#[test]
fn an_identity_procedure_the_catalog_does_not_have() {
    // A warning: the identity service answers for its own ids, so a stray
    // id is drift from the catalog, not a server that fails.
    assert_single_problem(
        "identity.toml",
        "id = \"sosaihi\"",
        "id = \"sosai-hi\"",
        "warning",
        |_| {
            "procedure sosai-hi is neither a procedure nor a certificate kind of catalog.toml"
                .into()
        },
    );
}

#[test]
fn a_signage_board_for_a_missing_counter() {
    assert_single_problem(
        "signage.toml",
        "counters = [\"2\"]",
        "counters = [\"9\"]",
        "error",
        |_| "offices[0].boards[1].counters: unknown counter 9".into(),
    );
}

#[test]
fn a_gateway_board_unit_that_shows_no_counter() {
    assert_single_problem(
        "gateway.toml",
        "units = [1, 2, 3, 4, 5, 10]",
        "units = [1, 2, 3, 4, 5, 6, 10]",
        "error",
        |_| {
            "board line rs485-1f unit 6: no board of signage.toml is at this address, \
             so it shows no counter's calls"
                .into()
        },
    );
}

#[test]
fn a_gateway_kiosk_button_for_a_missing_category() {
    assert_single_problem(
        "gateway.toml",
        "3 = \"insurance-pension\"",
        "3 = \"insurance\"",
        "error",
        |_| "kiosk k1 button 3: unknown category insurance of office main".into(),
    );
}

#[test]
fn a_toml_syntax_error() {
    assert_single_problem(
        "catalog.toml",
        "fee_yen = 300",
        "fee_yen = = 300",
        "error",
        |_| "extra `=`, expected nothing".into(),
    );
}

#[test]
fn a_registry_row_with_a_wrong_check_digit() {
    // A row no other row refers to (a refused row is not imported, so
    // the relatives and households naming it would be refused too).
    assert_single_problem(
        "residents.csv",
        "ミサキ,1992-08-03,2,spouse,妻,0220003,032034,",
        "ミサキ,1992-08-03,2,spouse,妻,0220003,032035,",
        "error",
        |line| format!("rows[{line}].municipality_code: check digit should be 4"),
    );
}

#[test]
fn a_catalog_lint_finding_points_at_its_procedure() {
    // `legal_basis` emptied: the id line of the procedure it belongs to.
    let scratch = tempfile::tempdir().unwrap();
    let site = copy_sample(scratch.path());
    let text = std::fs::read_to_string(site.join("catalog.toml")).unwrap();
    let id_line = text
        .lines()
        .position(|l| l == "id = \"shibo-todoke\"")
        .unwrap()
        + 1;
    // The first procedure's basis (戸籍法 for the 死亡届).
    inject(
        &site,
        "catalog.toml",
        "legal_basis = \"戸籍法",
        "legal_basis = \"\" # \"戸籍法",
    );
    let broken = check(scratch.path(), "ofunato");
    assert_eq!(
        broken.lines("error"),
        [format!(
            "ofunato/catalog.toml:{id_line}: error: procedure shibo-todoke: no legal_basis"
        )],
        "{}",
        broken.stdout
    );
}

#[test]
fn missing_files_required_and_optional() {
    let scratch = tempfile::tempdir().unwrap();
    let site = copy_sample(scratch.path());
    for file in [
        "identity.toml",
        "residents.csv",
        "signage.toml",
        "gateway.toml",
        "kustomization.yaml",
    ] {
        std::fs::remove_file(site.join(file)).unwrap();
    }
    let checked = check(scratch.path(), "ofunato");
    assert_eq!(checked.status, Some(1));
    assert_eq!(
        checked.lines("error"),
        ["ofunato/identity.toml: error: missing: the identity service does not start without it"],
        "{}",
        checked.stdout
    );
    for file in ["signage.toml", "gateway.toml", "kustomization.yaml"] {
        assert!(
            checked
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("ofunato/{file}: note: absent"))),
            "{file}: {}",
            checked.stdout
        );
    }
}

#[test]
fn a_kustomization_listing_a_file_that_is_not_there() {
    let scratch = tempfile::tempdir().unwrap();
    let site = copy_sample(scratch.path());
    let line = inject(
        &site,
        "kustomization.yaml",
        "- signage.toml",
        "- signage.tml",
    );
    let checked = check(scratch.path(), "ofunato");
    assert!(
        checked.lines("error").contains(&format!(
            "ofunato/kustomization.yaml:{line}: error: signage.tml is listed for the ConfigMap but is not in the directory"
        )),
        "{}",
        checked.stdout
    );
    assert!(
        checked
            .lines("warning")
            .iter()
            .any(|w| w
                .ends_with("signage.toml is not listed: servers in the cluster would not find it")),
        "{}",
        checked.stdout
    );
}

/// docs/adopting.md's table of a site directory's files and the sample
/// agree: every file the table names is in sites/ofunato, and every file
/// of sites/ofunato is in the table.
#[test]
fn the_adoption_guide_names_the_samples_files() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/adopting.md");
    let text = std::fs::read_to_string(guide).unwrap();
    // The first cell of each table row: | `site.toml` | …
    let named: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .collect();
    assert!(named.contains(&"site.toml"), "no table of files: {named:?}");
    for file in &named {
        assert!(
            sample().join(file).is_file(),
            "adopting.md names {file}, which sites/ofunato does not have"
        );
    }
    for entry in std::fs::read_dir(sample()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            named.contains(&name.as_str()),
            "sites/ofunato/{name} is not in adopting.md's table of files"
        );
    }
}

/// The gateway takes the `device` token of its office's municipality from
/// its token file: a file that `madoguchi serve` wrote for two
/// municipalities serves either city's gateway, in either order; a file
/// without this city's device token is an error.
#[test]
fn a_gateway_token_file_without_a_device_token_of_its_municipality() {
    let scratch = tempfile::tempdir().unwrap();
    let site = copy_sample(scratch.path());
    let text = std::fs::read_to_string(site.join("gateway.toml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("token_file = "))
        .unwrap()
        + 1;
    std::fs::create_dir(scratch.path().join(".data")).unwrap();
    let credentials = |first: &str, second: &str| {
        format!(
            "[[tokens]]\ntoken = \"t1\"\nsubject = \"local-device\"\nrole = \"device\"\nmunicipality = \"{first}\"\n\n\
             [[tokens]]\ntoken = \"t2\"\nsubject = \"local-device\"\nrole = \"device\"\nmunicipality = \"{second}\"\n"
        )
    };
    let file = scratch.path().join(".data/credentials.toml");

    std::fs::write(&file, credentials("032034", "032107")).unwrap();
    let own_first = check(scratch.path(), "ofunato");
    assert!(own_first.lines("error").is_empty(), "{}", own_first.stdout);

    std::fs::write(&file, credentials("032107", "032034")).unwrap();
    let other_first = check(scratch.path(), "ofunato");
    assert!(
        other_first.lines("error").is_empty(),
        "{}",
        other_first.stdout
    );

    std::fs::write(&file, credentials("032107", "032107")).unwrap();
    let none_own = check(scratch.path(), "ofunato");
    assert_eq!(
        none_own.lines("error"),
        [format!(
            "ofunato/gateway.toml:{line}: error: token_file .data/credentials.toml: no device \
             token of municipality 032034 (the gateway takes the device token of its office's \
             municipality)"
        )],
        "{}",
        none_own.stdout
    );

    // Every token's municipality code carries its check digit; the file's
    // own line is named.
    std::fs::write(&file, credentials("032034", "032108")).unwrap();
    let bad_code = check(scratch.path(), "ofunato");
    assert_eq!(
        bad_code.lines("error"),
        [".data/credentials.toml:11: error: tokens[1].municipality: check digit should be 7"],
        "{}",
        bad_code.stdout
    );
}

/// Output into a pipe whose reader has gone (`madoguchi site check … |
/// head`) ends the command quietly instead of a panic; the read end is
/// closed before the command starts, so every write meets a closed pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(BIN)
        .args(["site", "check"])
        .arg(sample())
        .current_dir(tempfile::tempdir().unwrap().path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
