//! `docs/api.md`'s reference section is generated from the proto comments
//! (every service, method, message, field and enum value), the resource
//! names the `name` fields document, and the `ErrorInfo` reasons the
//! services raise. This test regenerates it and fails when the committed
//! file differs, so the document cannot drift from the API. After a proto
//! or reason change, regenerate with
//! `MADOGUCHI_UPDATE_DOCS=1 cargo test -p madoguchi-e2e --test api_doc`.
//! The prose around the markers (the versioning policy) is kept as written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use madoguchi_proto::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE (tests/tests/api_doc.rs) -->";
const END: &str = "<!-- END GENERATED REFERENCE -->";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// SourceCodeInfo path components (descriptor.proto field numbers).
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

/// One file's leading comments by SourceCodeInfo path.
struct Comments(HashMap<Vec<i32>, String>);

impl Comments {
    fn of(file: &FileDescriptorProto) -> Self {
        let mut map = HashMap::new();
        for location in file.source_code_info.iter().flat_map(|info| &info.location) {
            if let Some(comment) = &location.leading_comments {
                map.insert(location.path.clone(), comment.clone());
            }
        }
        Self(map)
    }

    /// The comment as one line, for a table cell.
    fn cell(&self, path: &[i32]) -> String {
        self.0
            .get(path)
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
            .replace('|', "\\|")
    }

    /// The comment as paragraphs.
    fn block(&self, path: &[i32]) -> String {
        self.0
            .get(path)
            .map(|c| {
                c.lines()
                    .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
                    .collect::<Vec<_>>()
                    .join("\n")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    }
}

fn short_type(name: &str, package: &str) -> String {
    let name = name.trim_start_matches('.');
    name.strip_prefix(package)
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or(name)
        .to_owned()
}

fn field_type(
    field: &FieldDescriptorProto,
    package: &str,
    maps: &HashMap<String, String>,
) -> String {
    let scalar = match field.r#type() {
        Type::Message | Type::Enum | Type::Group => {
            let full = field.type_name().trim_start_matches('.');
            if let Some(map) = maps.get(full) {
                return map.clone();
            }
            short_type(field.type_name(), package)
        }
        Type::Double => "double".into(),
        Type::Float => "float".into(),
        Type::Int64 => "int64".into(),
        Type::Uint64 => "uint64".into(),
        Type::Int32 => "int32".into(),
        Type::Fixed64 => "fixed64".into(),
        Type::Fixed32 => "fixed32".into(),
        Type::Bool => "bool".into(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Uint32 => "uint32".into(),
        Type::Sfixed32 => "sfixed32".into(),
        Type::Sfixed64 => "sfixed64".into(),
        Type::Sint32 => "sint32".into(),
        Type::Sint64 => "sint64".into(),
    };
    if field.label() == Label::Repeated {
        format!("repeated {scalar}")
    } else if field.proto3_optional() {
        format!("optional {scalar}")
    } else {
        scalar
    }
}

/// `map<K, V>` for every map-entry message of the set, by full name.
fn map_types(files: &[FileDescriptorProto]) -> HashMap<String, String> {
    fn walk(
        prefix: &str,
        package: &str,
        messages: &[DescriptorProto],
        out: &mut HashMap<String, String>,
    ) {
        for message in messages {
            let full = format!("{prefix}.{}", message.name());
            if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                let empty = HashMap::new();
                let kv: Vec<_> = message
                    .field
                    .iter()
                    .map(|f| field_type(f, package, &empty))
                    .collect();
                out.insert(full.clone(), format!("map<{}>", kv.join(", ")));
            }
            walk(&full, package, &message.nested_type, out);
        }
    }
    let mut out = HashMap::new();
    for file in files {
        walk(file.package(), file.package(), &file.message_type, &mut out);
    }
    out
}

/// The first `municipalities/...` pattern of a comment.
fn resource_pattern(comment: &str) -> Option<String> {
    let start = comment.find("municipalities/")?;
    let pattern: String = comment[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ')' | '`' | ';' | '"'))
        .collect();
    Some(pattern.trim_end_matches(['.', ':']).to_owned())
}

struct Doc<'a> {
    out: String,
    comments: &'a Comments,
    package: &'a str,
    maps: &'a HashMap<String, String>,
    resources: &'a mut BTreeMap<String, String>,
}

impl Doc<'_> {
    fn message(&mut self, message: &DescriptorProto, prefix: &str, path: &[i32]) {
        if message.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let name = if prefix.is_empty() {
            message.name().to_owned()
        } else {
            format!("{prefix}.{}", message.name())
        };
        let _ = writeln!(self.out, "#### `{name}`\n");
        let comment = self.comments.block(path);
        if !comment.is_empty() {
            let _ = writeln!(self.out, "{comment}\n");
        }
        if !message.field.is_empty() {
            let _ = writeln!(self.out, "| Field | Number | Type | Description |");
            let _ = writeln!(self.out, "|---|---|---|---|");
            for (i, field) in message.field.iter().enumerate() {
                let mut field_path = path.to_vec();
                field_path.extend([MESSAGE_FIELD, i as i32]);
                let mut description = self.comments.cell(&field_path);
                if let Some(oneof) = field
                    .oneof_index
                    .filter(|_| !field.proto3_optional())
                    .and_then(|i| message.oneof_decl.get(i as usize))
                {
                    description = format!("(one of `{}`) {description}", oneof.name());
                }
                if field.name() == "name"
                    && !name.ends_with("Request")
                    && let Some(pattern) = resource_pattern(&description)
                {
                    self.resources
                        .insert(format!("{}.{name}", self.package), pattern);
                }
                let _ = writeln!(
                    self.out,
                    "| `{}` | {} | `{}` | {} |",
                    field.name(),
                    field.number(),
                    field_type(field, self.package, self.maps),
                    description
                );
            }
            let _ = writeln!(self.out);
        }
        for (i, nested) in message.nested_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([MESSAGE_NESTED, i as i32]);
            self.message(nested, &name, &nested_path);
        }
        for (i, nested) in message.enum_type.iter().enumerate() {
            let mut nested_path = path.to_vec();
            nested_path.extend([MESSAGE_ENUM, i as i32]);
            self.enumeration(nested, &name, &nested_path);
        }
    }

    fn enumeration(&mut self, enumeration: &EnumDescriptorProto, prefix: &str, path: &[i32]) {
        let name = if prefix.is_empty() {
            enumeration.name().to_owned()
        } else {
            format!("{prefix}.{}", enumeration.name())
        };
        let _ = writeln!(self.out, "#### enum `{name}`\n");
        let comment = self.comments.block(path);
        if !comment.is_empty() {
            let _ = writeln!(self.out, "{comment}\n");
        }
        let _ = writeln!(self.out, "| Value | Number | Description |");
        let _ = writeln!(self.out, "|---|---|---|");
        for (i, value) in enumeration.value.iter().enumerate() {
            let mut value_path = path.to_vec();
            value_path.extend([ENUM_VALUE, i as i32]);
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} |",
                value.name(),
                value.number(),
                self.comments.cell(&value_path)
            );
        }
        let _ = writeln!(self.out);
    }
}

fn package_section(
    file: &FileDescriptorProto,
    maps: &HashMap<String, String>,
    resources: &mut BTreeMap<String, String>,
) -> String {
    let comments = Comments::of(file);
    let package = file.package();
    let mut doc = Doc {
        out: String::new(),
        comments: &comments,
        package,
        maps,
        resources,
    };
    let _ = writeln!(doc.out, "## `{package}`\n\nFile `proto/{}`.\n", file.name());
    for (s, service) in file.service.iter().enumerate() {
        let path = [FILE_SERVICE, s as i32];
        let _ = writeln!(doc.out, "### service `{package}.{}`\n", service.name());
        let comment = comments.block(&path);
        if !comment.is_empty() {
            let _ = writeln!(doc.out, "{comment}\n");
        }
        for (m, method) in service.method.iter().enumerate() {
            let stream = |yes: bool| if yes { "stream " } else { "" };
            let _ = writeln!(
                doc.out,
                "#### `{}({}{}) returns ({}{})`\n",
                method.name(),
                stream(method.client_streaming()),
                short_type(method.input_type(), package),
                stream(method.server_streaming()),
                short_type(method.output_type(), package),
            );
            let comment = comments.block(&[FILE_SERVICE, s as i32, SERVICE_METHOD, m as i32]);
            if !comment.is_empty() {
                let _ = writeln!(doc.out, "{comment}\n");
            }
        }
    }
    if !file.message_type.is_empty() {
        let _ = writeln!(doc.out, "### Messages of `{package}`\n");
    }
    for (i, message) in file.message_type.iter().enumerate() {
        doc.message(message, "", &[FILE_MESSAGE, i as i32]);
    }
    if !file.enum_type.is_empty() {
        let _ = writeln!(doc.out, "### Enums of `{package}`\n");
    }
    for (i, enumeration) in file.enum_type.iter().enumerate() {
        doc.enumeration(enumeration, "", &[FILE_ENUM, i as i32]);
    }
    doc.out
}

/// Where an `ErrorInfo` reason is raised, with its gRPC code.
#[derive(Default)]
struct Reason {
    code: &'static str,
    crates: BTreeSet<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "tests" && n != "target")
            {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal right after `at` (skipping whitespace), when it is a
/// reason name (`SEQUENCE_AHEAD_OF_LOG`).
fn reason_literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    let literal = &rest[..rest.find('"')?];
    (literal.len() > 2
        && literal
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    .then_some(literal)
}

fn code_of_variant(variant: &str) -> Option<&'static str> {
    Some(match variant {
        "FailedPrecondition" | "FailedPreconditions" => "FAILED_PRECONDITION",
        "AlreadyExists" => "ALREADY_EXISTS",
        "ResourceExhausted" => "RESOURCE_EXHAUSTED",
        "PermissionDenied" => "PERMISSION_DENIED",
        "InvalidArgument" => "INVALID_ARGUMENT",
        "NotFound" => "NOT_FOUND",
        "Aborted" => "ABORTED",
        "Unauthenticated" => "UNAUTHENTICATED",
        "Unavailable" => "UNAVAILABLE",
        "Internal" => "INTERNAL",
        _ => return None,
    })
}

/// Every reason the services and the gateway raise: the literals given to
/// `ServiceError::precondition(..)` and to a variant's `reason:` field, and
/// the fixed reasons of `ServiceError::reason`.
fn error_reasons(root: &Path) -> BTreeMap<String, Reason> {
    let mut files = Vec::new();
    rust_files(&root.join("services"), &mut files);
    rust_files(&root.join("gateway"), &mut files);
    files.sort();
    let mut reasons: BTreeMap<String, Reason> = BTreeMap::new();
    let mut add = |reason: &str, code: &'static str, krate: String| {
        let entry = reasons.entry(reason.to_owned()).or_default();
        entry.code = code;
        entry.crates.insert(krate);
    };
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let mut parts = relative.iter().map(|p| p.to_string_lossy().into_owned());
        let krate = match parts.next().as_deref() {
            Some("services") => parts.next().unwrap_or_default(),
            other => other.unwrap_or_default().to_owned(),
        };
        for (at, _) in text.match_indices("precondition(") {
            if let Some(reason) = reason_literal(&text[at + "precondition(".len()..]) {
                add(reason, "FAILED_PRECONDITION", krate.clone());
            }
        }
        for (at, _) in text.match_indices("reason: ") {
            let Some(reason) = reason_literal(&text[at + "reason: ".len()..]) else {
                continue;
            };
            let before = &text[..at];
            let variant = before.rfind("ServiceError::").and_then(|v| {
                let name: String = before[v + "ServiceError::".len()..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                code_of_variant(&name)
            });
            if let Some(code) = variant {
                add(reason, code, krate.clone());
            }
        }
        // A reason chosen by a `match` first (`let reason = match … => "X"`),
        // then given to the error built after it.
        for (at, _) in text.match_indices("let reason = match") {
            let block = &text[at..];
            let Some(error) = block.find("ServiceError::") else {
                continue;
            };
            let name: String = block[error + "ServiceError::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let code = if name == "precondition" {
                Some("FAILED_PRECONDITION")
            } else {
                code_of_variant(&name)
            };
            let Some(code) = code else { continue };
            for (arrow, _) in block[..error].match_indices("=> ") {
                if let Some(reason) = reason_literal(&block[arrow + "=> ".len()..error]) {
                    add(reason, code, krate.clone());
                }
            }
        }
        if relative.ends_with("services/platform/src/error.rs")
            && let Some(start) = text.find("pub fn reason(&self)")
        {
            let body = &text[start..];
            let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
            for line in body.lines() {
                let (Some(v), Some(arrow)) = (line.find("Self::"), line.find("=> \"")) else {
                    continue;
                };
                let name: String = line[v + "Self::".len()..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                if let (Some(code), Some(reason)) = (
                    code_of_variant(&name),
                    reason_literal(&line[arrow + "=> ".len()..]),
                ) {
                    add(reason, code, "every service".into());
                }
            }
        }
    }
    reasons
}

fn reference() -> String {
    let root = repository();
    let proto = root.join("proto");
    let mut protos = Vec::new();
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(path);
            }
        }
    }
    collect(&proto.join("madoguchi"), &mut protos);
    let relative: Vec<PathBuf> = protos
        .iter()
        .map(|p| p.strip_prefix(&proto).unwrap_or(p).to_owned())
        .collect();
    let set = protox::compile(&relative, [&proto]).unwrap_or_else(|e| panic!("protox: {e}"));
    let mut files: Vec<FileDescriptorProto> = set
        .file
        .into_iter()
        .filter(|f| f.name().starts_with("madoguchi/"))
        .collect();
    // Shared types first, then the services alphabetically.
    files.sort_by_key(|f| {
        (
            !f.package().starts_with("madoguchi.type."),
            f.name().to_owned(),
        )
    });
    let maps = map_types(&files);

    let mut resources = BTreeMap::new();
    let mut packages = String::new();
    for file in &files {
        packages.push_str(&package_section(file, &maps, &mut resources));
    }

    let mut out = String::new();
    out.push_str(BEGIN);
    out.push_str(
        "\n\n<!-- Do not edit between these markers: regenerate with \
         MADOGUCHI_UPDATE_DOCS=1 cargo test -p madoguchi-e2e --test api_doc -->\n\n",
    );
    out.push_str("## Services\n\n| Service | File | Methods |\n|---|---|---|\n");
    for file in &files {
        for service in &file.service {
            let _ = writeln!(
                out,
                "| `{}.{}` | `proto/{}` | {} |",
                file.package(),
                service.name(),
                file.name(),
                service.method.len()
            );
        }
    }
    out.push_str(
        "\n## Resource names\n\nFrom each resource's `name` field. `{m}` is the 6-digit \
         municipality code (全国地方公共団体コード with its check digit).\n\n\
         | Resource | Pattern |\n|---|---|\n",
    );
    for (resource, pattern) in &resources {
        let _ = writeln!(out, "| `{resource}` | `{pattern}` |");
    }
    out.push_str(
        "\n## Error reasons\n\nEvery error carries a `google.rpc.ErrorInfo` with domain \
         `madoguchi` and one of these reasons (decode `google.rpc.Status` from the \
         `grpc-status-details-bin` trailer; `examples/` show how). INVALID_ARGUMENT also \
         carries a `BadRequest` with one field violation per wrong field, and \
         FAILED_PRECONDITION a `PreconditionFailure`. Reasons are stable: a client may \
         branch on them.\n\n| Reason | gRPC code | Raised by |\n|---|---|---|\n",
    );
    for (reason, where_) in error_reasons(&root) {
        let crates: Vec<_> = where_.crates.into_iter().collect();
        let _ = writeln!(
            out,
            "| `{reason}` | {} | {} |",
            where_.code,
            crates.join(", ")
        );
    }
    out.push('\n');
    out.push_str(&packages);
    out.push_str(END);
    out.push('\n');
    out
}

#[test]
fn docs_api_md_matches_the_protos_and_the_reasons() {
    let path = repository().join("docs/api.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let (Some(begin), Some(end)) = (committed.find(BEGIN), committed.find(END)) else {
        panic!("docs/api.md lacks the markers {BEGIN:?} … {END:?}");
    };
    let end = end + END.len() + usize::from(committed[end + END.len()..].starts_with('\n'));
    let regenerated = format!(
        "{}{}{}",
        &committed[..begin],
        reference(),
        &committed[end..]
    );
    if std::env::var_os("MADOGUCHI_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &regenerated).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    if committed != regenerated {
        let line = committed
            .lines()
            .zip(regenerated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "docs/api.md is stale from {line}: regenerate with \
             MADOGUCHI_UPDATE_DOCS=1 cargo test -p madoguchi-e2e --test api_doc"
        );
    }
}
