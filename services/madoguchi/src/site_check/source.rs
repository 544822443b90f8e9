//! From a loader's words to a line of the file: the crates' loaders report
//! a problem as a field path (`offices[0].categories[1].prefix: …`) or,
//! for a TOML error, as a message; this module keeps each TOML file's
//! text with its spanned tree (`toml::de::DeTable`, the parser `toml`
//! itself uses, so no second TOML parser is linked) and turns such a path
//! back into the line a person edits.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A TOML file's text and its spanned tree.
pub(super) struct TomlSource<'t> {
    text: &'t str,
    root: Spanned<DeTable<'t>>,
}

/// A problem the TOML parser found, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TomlError {
    /// 1-based line, when the parser gave a position.
    pub line: Option<usize>,
    /// The parser's message, one line.
    pub message: String,
}

impl<'t> TomlSource<'t> {
    /// Parses `text`; on syntax errors, every one the parser could
    /// recover from, each with its line.
    pub fn parse(text: &'t str) -> Result<Self, Vec<TomlError>> {
        let (root, errors) = DeTable::parse_recoverable(text);
        if errors.is_empty() {
            return Ok(Self { text, root });
        }
        // After a mistake the parser resynchronises and may report the
        // rest of the same line again; the first error of a line is the
        // one a person fixes.
        // The parser reports some errors when it closes a construct, after
        // later ones: the list is put in file order.
        let mut lines_seen = std::collections::HashSet::new();
        let mut errors: Vec<TomlError> = errors
            .iter()
            .map(|e| TomlError {
                line: e.span().map(|s| line_at(text, s.start)),
                message: one_line(e.message()),
            })
            .filter(|e| e.line.is_none() || lines_seen.insert(e.line))
            .collect();
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }

    /// Why `text` does not deserialize as `T` (unknown or missing keys,
    /// wrong types, a value its type refuses such as a municipality code
    /// with a wrong check digit), or `None` when it does. Loaders turn
    /// this error into a string without its position; deserializing the
    /// loader's own type again recovers it.
    pub fn shape_error<T: DeserializeOwned>(&self) -> Option<TomlError> {
        toml::from_str::<T>(self.text).err().map(|e| {
            let key = e.span().and_then(|s| self.key_at(s.start));
            TomlError {
                line: e.span().map(|s| line_at(self.text, s.start)),
                message: match key {
                    Some(key) => format!("{key}: {}", one_line(e.message())),
                    None => one_line(e.message()),
                },
            }
        })
    }

    /// The dotted key whose value holds byte `offset` (`municipality.code`),
    /// to name the field of a type error whose message does not.
    fn key_at(&self, offset: usize) -> Option<String> {
        // Every leaf is visited: the span of a table written as a
        // `[header]` section need not cover its keys.
        fn walk(value: &DeValue<'_>, offset: usize, at: &str, best: &mut Option<String>) {
            let mut visit = |path: String, child: &Spanned<DeValue<'_>>| {
                if child.span().contains(&offset) && !child.get_ref().is_table() {
                    *best = Some(path.clone());
                }
                walk(child.get_ref(), offset, &path, best);
            };
            match value {
                DeValue::Table(table) => {
                    for (key, child) in table.iter() {
                        let path = if at.is_empty() {
                            key.get_ref().to_string()
                        } else {
                            format!("{at}.{}", key.get_ref())
                        };
                        visit(path, child);
                    }
                }
                DeValue::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        visit(format!("{at}[{i}]"), child);
                    }
                }
                _ => {}
            }
        }
        let mut best = None;
        for (key, child) in self.root.get_ref().iter() {
            if child.span().contains(&offset) && !child.get_ref().is_table() {
                best = Some(key.get_ref().to_string());
            }
            walk(child.get_ref(), offset, key.get_ref(), &mut best);
        }
        best
    }

    /// The line of the field a loader's path names, e.g.
    /// `offices[0].boards[1].counters`. When the path ends in a list and
    /// the message ends with one of its values (`unknown counter 7`), the
    /// line of that value. A path that leaves the tree (a missing key)
    /// gives the line of the deepest part that exists.
    pub fn line_of_path(&self, path: &str, message: &str) -> Option<usize> {
        let mut table: &DeTable<'t> = self.root.get_ref();
        let mut found: Option<&Spanned<DeValue<'t>>> = None;
        let mut span: Option<Range<usize>> = None;
        'walk: for segment in path.split('.') {
            let (name, indices) = split_segment(segment);
            if !name.is_empty() {
                if let Some(value) = found {
                    match value.get_ref() {
                        DeValue::Table(t) => table = t,
                        _ => break 'walk,
                    }
                }
                let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
                    break 'walk;
                };
                span = Some(key.span());
                found = Some(value);
            }
            for index in indices {
                let Some(item) = found.and_then(|v| v.get_ref().as_array()?.get(index)) else {
                    break 'walk;
                };
                span = Some(item.span());
                found = Some(item);
            }
        }
        if let Some(DeValue::Array(items)) = found.map(Spanned::get_ref) {
            let named = items.iter().find(|item| {
                let value = item.get_ref();
                value
                    .as_str()
                    .or_else(|| value.as_integer().map(|i| i.as_str()))
                    .is_some_and(|s| message.ends_with(&format!(" {s}")))
            });
            if let Some(item) = named {
                span = Some(item.span());
            }
        }
        span.map(|s| line_at(self.text, s.start))
    }

    /// The line of the entry of array-of-tables `array` (a top-level key,
    /// or a dotted path such as `offices[0].purposes`) whose `id` is `id`:
    /// the line of its `id` key.
    pub fn line_of_entry(&self, array: &str, id: &str) -> Option<usize> {
        let value = self.value_at(array)?;
        value.get_ref().as_array()?.iter().find_map(|entry| {
            let (key, value) = entry
                .get_ref()
                .as_table()?
                .iter()
                .find(|(k, _)| k.get_ref() == "id")?;
            (value.get_ref().as_str() == Some(id)).then(|| line_at(self.text, key.span().start))
        })
    }

    /// The line of element `element` (a string or an integer as written)
    /// of the list at `path`, else of the list.
    pub fn line_of_element(&self, path: &str, element: &str) -> Option<usize> {
        self.line_of_path(path, &format!(" {element}"))
    }

    /// The index of the entry of array-of-tables `array` whose `id` is `id`.
    pub fn index_of_entry(&self, array: &str, id: &str) -> Option<usize> {
        let value = self.value_at(array)?;
        value.get_ref().as_array()?.iter().position(|entry| {
            entry.get_ref().as_table().is_some_and(|t| {
                t.iter()
                    .any(|(k, v)| k.get_ref() == "id" && v.get_ref().as_str() == Some(id))
            })
        })
    }

    /// The line of the first string value equal to `wanted` under `path`
    /// (the whole file for an empty path).
    pub fn line_of_string(&self, path: &str, wanted: &str) -> Option<usize> {
        let span = if path.is_empty() {
            self.root
                .get_ref()
                .iter()
                .find_map(|(_, v)| find_string(v, wanted))
        } else {
            find_string(self.value_at(path)?, wanted)
        };
        span.map(|s| line_at(self.text, s.start))
    }

    /// The value a path names exactly, if it exists.
    fn value_at(&self, path: &str) -> Option<&Spanned<DeValue<'t>>> {
        let mut table: &DeTable<'t> = self.root.get_ref();
        let mut found: Option<&Spanned<DeValue<'t>>> = None;
        for segment in path.split('.') {
            let (name, indices) = split_segment(segment);
            if !name.is_empty() {
                if let Some(value) = found {
                    table = value.get_ref().as_table()?;
                }
                found = Some(table.iter().find(|(k, _)| k.get_ref() == name)?.1);
            }
            for index in indices {
                found = Some(found?.get_ref().as_array()?.get(index)?);
            }
        }
        found
    }
}

fn find_string(value: &Spanned<DeValue<'_>>, wanted: &str) -> Option<Range<usize>> {
    match value.get_ref() {
        DeValue::String(s) if s == wanted => Some(value.span()),
        DeValue::Array(items) => items.iter().find_map(|v| find_string(v, wanted)),
        DeValue::Table(table) => table.iter().find_map(|(_, v)| find_string(v, wanted)),
        _ => None,
    }
}

/// `categories[1]` → (`categories`, [1]); `rows[4]` → (`rows`, [4]).
fn split_segment(segment: &str) -> (&str, Vec<usize>) {
    let name_end = segment.find('[').unwrap_or(segment.len());
    let indices = segment[name_end..]
        .split(['[', ']'])
        .filter_map(|s| s.parse().ok())
        .collect();
    (&segment[..name_end], indices)
}

/// The 1-based line of byte `offset`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', " ")
}

/// A loader's list of violations, `path: description; path: description`,
/// back into (path, description) pairs. A description may itself contain
/// `; `, so a piece only starts a new violation when it begins with
/// something shaped like a field path.
pub(super) fn split_violations(joined: &str) -> Vec<(String, String)> {
    let joined = joined.strip_prefix("invalid argument: ").unwrap_or(joined);
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in joined.split("; ") {
        match piece.split_once(": ") {
            Some((path, description)) if is_field_path(path) => {
                out.push((path.to_owned(), description.to_owned()));
            }
            _ => match out.last_mut() {
                Some((_, description)) => {
                    description.push_str("; ");
                    description.push_str(piece);
                }
                None => out.push((String::new(), piece.to_owned())),
            },
        }
    }
    out
}

fn is_field_path(path: &str) -> bool {
    !path.is_empty()
        && path.starts_with(|c: char| c.is_ascii_lowercase())
        && path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.[]".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const TEXT: &str = r#"# comment
[municipality]
code = "032034"

[[offices]]
id = "main"

[[offices.categories]]
id = "certificates"
prefix = "A"

[[offices.categories]]
id = "life-events"
prefix = "A"

[[offices.boards]]
id = "b"
counters = [
  "1",
  "7",
]
"#;

    #[test]
    fn paths_find_their_lines() {
        let source = TomlSource::parse(TEXT).unwrap();
        assert_eq!(source.line_of_path("municipality.code", ""), Some(3));
        assert_eq!(
            source.line_of_path("offices[0].categories[1].prefix", ""),
            Some(14)
        );
        assert_eq!(
            source.line_of_path("offices[0].categories[1]", ""),
            Some(12)
        );
        assert_eq!(
            source.line_of_path("offices[0].boards[0].counters", "unknown counter 7"),
            Some(20)
        );
        // A missing key: the deepest part that exists.
        assert_eq!(
            source.line_of_path("offices[0].categories[0].colour", ""),
            Some(8)
        );
        assert_eq!(
            source.line_of_entry("offices[0].categories", "life-events"),
            Some(13)
        );
        assert_eq!(source.line_of_string("", "7"), Some(20));
    }

    #[test]
    fn syntax_errors_are_all_reported_with_lines() {
        let errors = TomlSource::parse("a = 1\nb = \nc = \"x\"\nd = [1,\n")
            .err()
            .unwrap();
        assert!(errors.len() >= 2, "{errors:?}");
        assert_eq!(errors[0].line, Some(2), "{errors:?}");
    }

    #[test]
    fn violations_split_on_paths_only() {
        let pairs =
            split_violations("invalid argument: a[0].b: must be x; y; c.d: unknown category e");
        assert_eq!(
            pairs,
            [
                ("a[0].b".to_owned(), "must be x; y".to_owned()),
                ("c.d".to_owned(), "unknown category e".to_owned())
            ]
        );
    }
}
