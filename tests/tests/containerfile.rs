//! The container image's recipe, checked without an engine (none runs on
//! the CI machine): `Containerfile` is parsed into its instructions and
//! held to the rules a platform team expects of it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: impl AsRef<Path>) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One instruction: its keyword (upper case) and its arguments, with
/// continuation lines joined and comments dropped.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                out.push(Instruction {
                    keyword: keyword.to_uppercase(),
                    args: args.trim().to_owned(),
                });
                pending.clear();
            }
        }
    }
    assert!(pending.is_empty(), "unterminated continuation: {pending}");
    out
}

/// The stages: each `FROM` and the instructions after it.
fn stages(all: &[Instruction]) -> Vec<(&Instruction, Vec<&Instruction>)> {
    let mut stages: Vec<(&Instruction, Vec<&Instruction>)> = Vec::new();
    for instruction in all {
        if instruction.keyword == "FROM" {
            stages.push((instruction, Vec::new()));
        } else if let Some((_, body)) = stages.last_mut() {
            body.push(instruction);
        } else {
            panic!("{} before the first FROM", instruction.keyword);
        }
    }
    stages
}

/// True for `name@sha256:<64 hex>` or a tag that names an exact version
/// (`1.95.0-slim-bookworm`, `12.12-slim`): digits, a dot, digits.
fn pinned(image: &str) -> bool {
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    let version = tag.split('-').next().unwrap_or("");
    let parts: Vec<&str> = version.split('.').collect();
    tag != "latest"
        && parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn pinning_is_recognised() {
    for good in [
        "docker.io/library/rust:1.95.0-slim-bookworm",
        "docker.io/library/debian:12.12-slim",
        "gcr.io/distroless/cc-debian12@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(pinned(good), "{good}");
    }
    for bad in [
        "debian",
        "debian:latest",
        "debian:bookworm-slim",
        "rust:1-slim",
        "gcr.io/distroless/cc-debian12:nonroot",
        "x@sha256:abc",
    ] {
        assert!(!pinned(bad), "{bad}");
    }
}

#[test]
fn bases_are_pinned_and_fully_qualified() {
    let all = instructions(&read("Containerfile"));
    let stages = stages(&all);
    assert!(
        stages.len() >= 2,
        "expected a build stage and a runtime stage"
    );
    let names: Vec<String> = stages
        .iter()
        .filter_map(|(from, _)| {
            let words: Vec<&str> = from.args.split_whitespace().collect();
            (words.len() == 3 && words[1].eq_ignore_ascii_case("as")).then(|| words[2].to_owned())
        })
        .collect();
    for (from, _) in &stages {
        let image = from
            .args
            .split_whitespace()
            .find(|w| !w.starts_with("--"))
            .unwrap_or_default();
        if names.iter().any(|n| n == image) {
            continue; // an earlier stage
        }
        assert!(pinned(image), "base image not pinned: {image}");
        assert!(
            image.split('/').next().is_some_and(|r| r.contains('.')),
            "base image without its registry (resolves differently per engine): {image}"
        );
    }
}

#[test]
fn the_builder_uses_the_workspace_toolchain() {
    let cargo = read("Cargo.toml");
    let rust_version = cargo
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no rust-version in Cargo.toml"));
    let all = instructions(&read("Containerfile"));
    let first = &stages(&all)[0].0.args;
    assert!(
        first.contains(&format!("rust:{rust_version}.")),
        "build stage {first} is not Rust {rust_version}"
    );
}

#[test]
fn the_image_runs_as_a_non_root_user_with_only_data_writable() {
    let all = instructions(&read("Containerfile"));
    let stages = stages(&all);
    let (_, runtime) = stages.last().unwrap_or_else(|| panic!("no stages"));
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .unwrap_or_else(|| panic!("the runtime stage has no USER"));
    let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, "0"));
    let uid: u32 = uid.parse().unwrap_or_else(|_| {
        panic!(
            "USER {} is not numeric (runAsNonRoot needs a number)",
            user.args
        )
    });
    assert_ne!(uid, 0, "USER is root");
    assert_ne!(gid, "0", "USER's group is root");
    // Nothing runs as root after USER: the last USER comes after every RUN.
    let last_run = runtime.iter().rposition(|i| i.keyword == "RUN");
    let user_at = runtime.iter().rposition(|i| i.keyword == "USER");
    assert!(last_run < user_at, "a RUN after USER");
    let volumes: Vec<&str> = runtime
        .iter()
        .filter(|i| i.keyword == "VOLUME")
        .map(|i| i.args.as_str())
        .collect();
    assert_eq!(volumes, ["[\"/data\"]"], "only /data is a volume");
    let env: String = runtime
        .iter()
        .filter(|i| i.keyword == "ENV")
        .map(|i| i.args.clone())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(env.contains("MADOGUCHI_DATA_DIR=/data"), "{env}");
    assert!(
        env.contains("MADOGUCHI_SITE=/etc/madoguchi/site/site.toml"),
        "the site comes from the mounted ConfigMap: {env}"
    );
    let entrypoint = runtime
        .iter()
        .find(|i| i.keyword == "ENTRYPOINT")
        .unwrap_or_else(|| panic!("no ENTRYPOINT"));
    assert_eq!(entrypoint.args, "[\"/usr/local/bin/madoguchi\"]");
    // The PDFs need their CJK font at the path the forms service looks in.
    assert!(
        runtime.iter().any(|i| i.keyword == "COPY"
            && i.args
                .contains("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")),
        "the runtime image lacks the CJK font"
    );
}

#[test]
fn no_secret_goes_into_the_image() {
    let text = read("Containerfile");
    let all = instructions(&text);
    for i in &all {
        if matches!(i.keyword.as_str(), "ENV" | "ARG" | "LABEL") {
            let upper = i.args.to_uppercase();
            for word in ["TOKEN", "SECRET", "PASSWORD", "IDENTITY_KEY", "PRIVATE"] {
                assert!(
                    !upper.contains(word),
                    "{} {} names a secret",
                    i.keyword,
                    i.args
                );
            }
        }
        if matches!(i.keyword.as_str(), "COPY" | "ADD") {
            for file in [
                "credentials.toml",
                "identity.key",
                "signage-secret",
                ".pem",
                ".key",
            ] {
                assert!(
                    !i.args.contains(file),
                    "{} {} copies a secret",
                    i.keyword,
                    i.args
                );
            }
        }
    }
    assert!(!text.contains("BEGIN"), "a PEM block in the Containerfile");
    // `COPY . .` takes the build context: the ignore file keeps local data
    // (with its generated credentials and My Number key) and build output out.
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", ".data", ".ci/tools", ".git"] {
        assert!(ignored.contains(&needed), ".dockerignore lacks {needed}");
    }
}

#[test]
fn the_image_builds_what_ci_builds() {
    let all = instructions(&read("Containerfile"));
    let stages = stages(&all);
    let builds: Vec<&str> = stages[0]
        .1
        .iter()
        .filter(|i| i.keyword == "RUN" && i.args.contains("cargo"))
        .map(|i| i.args.as_str())
        .collect();
    assert!(
        builds.is_empty(),
        "the Containerfile runs cargo itself instead of scripts/build-release.sh: {builds:?}"
    );
    assert!(
        stages[0]
            .1
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.starts_with("scripts/build-release.sh")),
        "the build stage does not run scripts/build-release.sh"
    );
    let ci = read(".ci/run");
    assert!(
        ci.lines()
            .any(|l| l.trim_start().starts_with("scripts/build-release.sh")),
        ".ci/run does not run scripts/build-release.sh"
    );
    let script = read("scripts/build-release.sh");
    assert!(
        script.contains("cargo build --release --locked -p madoguchi --bin madoguchi"),
        "scripts/build-release.sh no longer builds the server binary"
    );
}
