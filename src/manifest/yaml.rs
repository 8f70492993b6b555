//! Parser options, and syntax errors in the manifest's own words: the
//! parser's messages are translated (no Rust type names or library calls) and
//! the field at fault is named from the enclosing keys (`spec.methods`).

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::{ErrorKind, ManifestError, MAX_YAML_ALIASES, MAX_YAML_DEPTH};

pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_aliases = MAX_YAML_ALIASES;
    serde_saphyr::options! {
        budget: Some(budget),
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Counts `---` document starts outside the first document. A cheap pre-check:
/// the parser would otherwise read only the first document.
pub(crate) fn count_documents(text: &str) -> usize {
    let mut docs = 0;
    let mut content_seen = false;
    for line in text.lines() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if line.starts_with('%') && docs == 0 {
            // A directive (`%YAML 1.2`) belongs to the document that follows.
            continue;
        }
        if is_marker {
            docs += 1;
            content_seen = false;
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            if !content_seen && docs == 0 {
                docs = 1;
            }
            content_seen = true;
        }
    }
    docs
}

/// Where a value was written, as (line, column); `None` where the parser
/// does not know (an unknown location is line 0).
pub(crate) fn pos<T>(s: &Spanned<T>) -> Option<(u64, u64)> {
    known(s.referenced)
}

/// A location as (line, column), if it is known (not line 0).
fn known(l: Location) -> Option<(u64, u64)> {
    (l.line() > 0).then(|| (l.line(), l.column()))
}

pub(crate) fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

pub(crate) fn yaml_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> ManifestError {
    let position = e.location().and_then(known);
    let raw = e.without_snippet().to_string();
    let (mut field, message) = explain_yaml_error(&raw);
    if field.is_none() {
        field = position.and_then(|(line, column)| field_at(text, line, column));
    }
    ManifestError {
        file: file.to_path_buf(),
        position,
        field,
        message,
        kind: ErrorKind::Syntax,
    }
}

/// Turns the parser's wording into ours, and pulls out the field where serde names it.
fn explain_yaml_error(raw: &str) -> (Option<String>, String) {
    // The parser appends its own " at line X column Y"; we print the position ourselves.
    let mut msg = raw.trim().to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            let expected = tail
                .trim_start_matches(", expected ")
                .trim_start_matches("one of ")
                .replace('`', "");
            return (
                Some(name.to_string()),
                format!("unknown field; expected one of {expected}"),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return (
            Some(key.to_string()),
            "key appears twice in the same mapping".into(),
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return (Some(name.to_string()), "required field is missing".into());
        }
    }
    (None, plain_wording(&msg))
}

/// The parser's remaining messages in the manifest's terms (no Rust types,
/// no library API names).
fn plain_wording(msg: &str) -> String {
    if let Some(t) = msg.strip_prefix("cannot deserialize null into ") {
        let t = t.split(';').next().unwrap_or(t).trim();
        return format!("is empty (null); expected {}", type_words(t));
    }
    if msg.starts_with("multiple YAML documents detected") {
        return "file holds more than one YAML document; put each mount in its own file".into();
    }
    if let Some(what) = msg.strip_prefix("budget breached: ") {
        return if what.starts_with("Aliases") {
            format!(
                "too many aliases (more than {MAX_YAML_ALIASES} '*name' references); write the values out"
            )
        } else if what.starts_with("Depth") {
            format!("nested more than {MAX_YAML_DEPTH} levels deep")
        } else {
            "document is too large or too complex for a manifest".into()
        };
    }
    let known: &[(&str, &str)] = &[
        (
            "expected mapping start",
            "expected a mapping (key: value lines)",
        ),
        ("expected sequence start", "expected a list"),
        ("expected string scalar", "expected a string"),
        (
            "invalid boolean (strict mode expects true/false)",
            "expected a boolean (true or false)",
        ),
    ];
    for (theirs, ours) in known {
        if msg.starts_with(theirs) {
            return (*ours).to_string();
        }
    }
    msg.to_string()
}

fn type_words(rust_type: &str) -> &'static str {
    match rust_type {
        "string" | "String" => "a string",
        "bool" | "boolean" => "a boolean (true or false)",
        _ if rust_type.contains("Vec") || rust_type.contains("sequence") => "a list",
        _ if rust_type.contains("map") || rust_type.contains("struct") => "a mapping",
        _ => "a value",
    }
}

/// The field an error at (line, column) is about, for errors the parser
/// reports without one: the last `key:` on the line up to the column
/// (`  proxy: "yes"`, or a key inside a flow mapping), else the key of the
/// enclosing block (a list item `- {…}` belongs to the key above it). In block
/// style the parents are added: `spec.methods`.
fn field_at(text: &str, line: u64, column: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let here = *lines.get(index)?;
    let upto: String = here.chars().take(column as usize).collect();
    // A block line `key: value` (or `- key: value`) is about its key when the
    // error lies after the key, about the enclosing key when it is at the item.
    let content = here.trim_start();
    let item = content.strip_prefix("- ").map(str::trim_start);
    let key_column = here.chars().count() - item.unwrap_or(content).chars().count() + 1;
    let found = match block_key(content) {
        Some(k) if column as usize > key_column => Some(k),
        Some(_) => None,
        None if item.is_some() => None,
        None => last_key(&upto),
    };
    let (key, key_line) = match found {
        Some(k) => (k, index),
        None => enclosing_key(&lines, index, indent_of(here))?,
    };
    let mut chain = vec![key];
    let mut at = key_line;
    while let Some((parent, i)) = enclosing_key(&lines, at, indent_of(lines[at])) {
        chain.push(parent);
        at = i;
    }
    chain.reverse();
    Some(chain.join("."))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The nearest line above `below` that is less indented and holds a block key
/// (`key:` with nothing after it but an optional value).
fn enclosing_key(lines: &[&str], below: usize, indent: usize) -> Option<(String, usize)> {
    let mut i = below;
    while i > 0 {
        i -= 1;
        let l = lines[i];
        // Blank lines and comments hold no block key (`# a:` is no key).
        if indent_of(l) >= indent {
            continue;
        }
        if let Some(k) = block_key(l.trim_start()) {
            return Some((k, i));
        }
    }
    None
}

/// `key:` at the start of a line's content (after an optional `- `).
fn block_key(content: &str) -> Option<String> {
    let content = content.trim_start_matches("- ").trim_start();
    let (key, rest) = content.split_once(':')?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    clean_key(key)
}

/// The last `key:` (or `"key":`) in a piece of a line.
fn last_key(piece: &str) -> Option<String> {
    let bytes = piece.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] != b':' {
            continue;
        }
        let after = bytes.get(i + 1);
        if !matches!(
            after,
            None | Some(b' ' | b'\t' | b'"' | b'\'' | b'[' | b'{')
        ) {
            continue;
        }
        let before = piece[..i].trim_end();
        let start = before
            .rfind(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"' || c == '\'')
            })
            .map_or(0, |j| j + 1);
        if let Some(k) = clean_key(&before[start..]) {
            return Some(k);
        }
    }
    None
}

fn clean_key(raw: &str) -> Option<String> {
    let key = raw.trim().trim_matches('"').trim_matches('\'');
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then(|| key.to_string())
}

/// The quote character a scalar starts with at (line, column), if any.
pub(crate) fn quoted_at(text: &str, position: Option<(u64, u64)>) -> Option<char> {
    let (line, column) = position?;
    let l = text
        .lines()
        .nth(usize::try_from(line.checked_sub(1)?).ok()?)?;
    let c = l
        .chars()
        .nth(usize::try_from(column.checked_sub(1)?).ok()?)?;
    matches!(c, '"' | '\'').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_counted_by_their_markers_and_content() {
        let table: &[(&str, usize)] = &[
            ("", 0),
            ("# only a comment\n\n", 0),
            ("a: 1", 1),
            ("a: 1\nb: 2", 1),
            ("---\na: 1", 1),
            ("%YAML 1.2\n---\na: 1", 1),
            ("# header\n---\na: 1", 1),
            ("a: 1\n---\nb: 2", 2),
            ("---\na: 1\n--- \nb: 2\n---\t\nc: 3", 3),
            ("a: '---'\nb: ---x", 1),
        ];
        for (text, want) in table {
            assert_eq!(count_documents(text), *want, "{text:?}");
        }
    }

    #[test]
    fn the_last_key_of_a_piece_of_a_line() {
        let table: &[(&str, Option<&str>)] = &[
            ("  proxy: \"yes\"", Some("proxy")),
            ("  proxy:", Some("proxy")),
            ("{a: 1, b: x", Some("b")),
            ("\"quoted\": 1", Some("quoted")),
            ("- {path: /a, methods: [", Some("methods")),
            ("url:http", None),
            ("no colon at all", None),
            ("", None),
        ];
        for (piece, want) in table {
            assert_eq!(last_key(piece).as_deref(), *want, "{piece:?}");
        }
    }

    #[test]
    fn a_value_has_a_position_only_where_the_parser_knows_it() {
        let doc: Spanned<String> = serde_saphyr::from_str("\n  abc").unwrap();
        assert_eq!(pos(&doc), Some((2, 3)));
        let unknown = Spanned::new(1, Location::UNKNOWN, Location::UNKNOWN);
        assert_eq!(pos(&unknown), None);
    }

    #[test]
    fn the_parsers_messages_in_the_manifests_terms() {
        let aliases = format!("too many aliases (more than {MAX_YAML_ALIASES} '*name' references); write the values out");
        let depth = format!("nested more than {MAX_YAML_DEPTH} levels deep");
        let table: &[(&str, &str)] = &[
            (
                "cannot deserialize null into string; at the path",
                "is empty (null); expected a string",
            ),
            (
                "cannot deserialize null into Vec<String>",
                "is empty (null); expected a list",
            ),
            (
                "multiple YAML documents detected; use read_all",
                "file holds more than one YAML document; put each mount in its own file",
            ),
            ("budget breached: Aliases(1025)", &aliases),
            ("budget breached: Depth(65)", &depth),
            (
                "budget breached: Nodes(100000)",
                "document is too large or too complex for a manifest",
            ),
            (
                "expected mapping start, found scalar",
                "expected a mapping (key: value lines)",
            ),
            ("expected sequence start", "expected a list"),
            ("expected string scalar", "expected a string"),
            (
                "invalid boolean (strict mode expects true/false): yes",
                "expected a boolean (true or false)",
            ),
            ("something else entirely", "something else entirely"),
        ];
        for (theirs, ours) in table {
            assert_eq!(plain_wording(theirs), *ours, "{theirs}");
        }
    }

    #[test]
    fn an_error_position_names_its_field_with_the_parents() {
        let text = "apiVersion: apimount/v1
kind: ServiceMount
spec:
  proxy: \"yes\"
  methods:
    - {verb: GET, x: [
  cors: {origins:
    [a], maxAge: x }
";
        let table: &[((u64, u64), Option<&str>)] = &[
            // After the key: the key, under its parent.
            ((4, 10), Some("spec.proxy")),
            ((4, 8), Some("spec.proxy")),
            // At the key itself: the item the key is in, its parent.
            ((4, 3), Some("spec")),
            ((2, 1), None),
            ((2, 7), Some("kind")),
            // A list item `- {…}`: the key above it.
            ((6, 20), Some("spec.methods")),
            ((6, 5), Some("spec.methods")),
            // A line of a flow mapping: its last key up to the column.
            ((8, 18), Some("spec.cors.maxAge")),
            ((8, 6), Some("spec.cors")),
            // Past the end of the text: nothing.
            ((40, 1), None),
            ((0, 1), None),
        ];
        // Comments and blank lines between a key and its parent.
        let commented = "spec:\n# other: x\n  #inner: y\n\n  proxy: \"yes\"\n";
        assert_eq!(field_at(commented, 5, 10).as_deref(), Some("spec.proxy"));
        assert_eq!(field_at(commented, 3, 5).as_deref(), Some("spec"));
        // Keys may hold '-' and '_' (a header, a misspelt field), quoted or not.
        let dashed = "spec:\n  x-api_key:\n    \"a-b\": 1\n    c: {f: 1,\n      d_e: 2}\n";
        assert_eq!(
            field_at(dashed, 3, 12).as_deref(),
            Some("spec.x-api_key.a-b")
        );
        assert_eq!(
            field_at(dashed, 5, 12).as_deref(),
            Some("spec.x-api_key.c.d_e")
        );
        for ((line, column), want) in table {
            assert_eq!(
                field_at(text, *line, *column).as_deref(),
                *want,
                "line {line} column {column}"
            );
        }
    }

    #[test]
    fn types_are_named_in_words() {
        let table: &[(&str, &str)] = &[
            ("string", "a string"),
            ("String", "a string"),
            ("bool", "a boolean (true or false)"),
            ("boolean", "a boolean (true or false)"),
            ("Vec<String>", "a list"),
            ("sequence", "a list"),
            ("map", "a mapping"),
            ("struct MountDoc", "a mapping"),
            ("u32", "a value"),
        ];
        for (rust_type, want) in table {
            assert_eq!(type_words(rust_type), *want, "{rust_type}");
        }
    }
}
