//! One file's bytes → its objects and errors.
//!
//! YAML files are split on document markers (`---` at the start of a line; YAML forbids that
//! sequence inside any scalar, so the split is exact) and each document is parsed on its own, so
//! a syntax error in one document does not hide the others. JSON files hold one object, a `List`,
//! or several concatenated objects. A `kind: List` (what `kubectl get -o yaml` prints) contributes
//! its `items`, all with the List's document number; their errors say `items[i]`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::Error;
use serde_json::Value;

use super::LoadOptions;
use super::{depth, expansion};
use crate::api::doc::{Draft, DraftNode, Kind};
use crate::api::{Origin, RawObject, ResourceError};

/// A file's documents as read.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Parsed {
    pub objects: Vec<RawObject>,
    pub errors: Vec<ResourceError>,
}

/// Parses one file. `rel` is its path relative to the config directory, used in origins.
pub(super) fn parse_file(rel: &Path, bytes: &[u8], options: &LoadOptions) -> Parsed {
    let mut parsed = Parsed::default();
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.strip_prefix('\u{feff}').unwrap_or(text),
        Err(error) => {
            parsed.file_error(rel, format!("file is not valid UTF-8: {error}"));
            return parsed;
        }
    };
    let text = match &options.env {
        Some(env) => substitute(text, env),
        None => Cow::Borrowed(text),
    };
    // One path for every object of the file (`Origin`'s docs).
    let file: Arc<Path> = Arc::from(rel);
    if is_json(rel) {
        parse_json(&file, &text, options, &mut parsed);
    } else {
        parse_yaml(&file, &text, options, &mut parsed);
    }
    parsed
}

impl Parsed {
    /// Replaces this reading with `new`, keeping every object that is unchanged (same origin,
    /// equal document) as it was: still shared with the states already published. Returns
    /// whether any object or error differs.
    pub(super) fn update(&mut self, new: Parsed) -> bool {
        let mut changed = self.errors != new.errors || self.objects.len() != new.objects.len();
        let mut old = std::mem::take(&mut self.objects).into_iter();
        for object in new.objects {
            match old.next() {
                Some(kept) if kept.origin == object.origin && kept.value == object.value => {
                    self.objects.push(kept);
                }
                _ => {
                    changed = true;
                    self.objects.push(object);
                }
            }
        }
        self.errors = new.errors;
        changed
    }

    /// An error about the file as a whole (document 0).
    pub(super) fn file_error(&mut self, rel: &Path, message: String) {
        self.errors
            .push(error(Origin::file(rel, 0), "", "", None, message));
    }
}

fn is_json(rel: &Path) -> bool {
    rel.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn parse_json(rel: &Arc<Path>, text: &str, options: &LoadOptions, out: &mut Parsed) {
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut draft = Draft::new();
    for (index, value) in stream.enumerate() {
        let origin = origin(rel, index + 1);
        draft.clear();
        match value.and_then(|value| draft.parse(&value)) {
            Ok(root) => accept(&mut draft, root, origin, options, out),
            Err(e) => {
                out.errors.push(error(origin, "", "", None, e.to_string()));
                // A JSON stream cannot be resynchronised after a syntax error.
                return;
            }
        }
    }
}

fn parse_yaml(rel: &Arc<Path>, text: &str, options: &LoadOptions, out: &mut Parsed) {
    // Fast path: the whole stream in one parser (a quarter faster than one per document).
    // Its document numbering is the same as the split's (see the tests).
    // Whether merge keys may occur: looked up once per file, not once per document.
    // Too deep a nesting anywhere: the split finds which document (the parser would take time
    // quadratic in the depth to say so, see `depth`).
    let aliases = expansion::may_alias(text);
    let bounded = depth::check(text, 0).is_ok()
        && (!aliases || expansion::check(yaml_parser(text), expansion::budget(text.len())).is_ok());
    if bounded {
        let merges = text.contains("<<");
        // Every document into one draft: kept only if all of them parse.
        let mut draft = Draft::new();
        let whole: Result<Vec<DraftNode>, _> = yaml_parser(text)
            .map(|d| yaml_document(&mut draft, d, merges))
            .collect();
        if let Ok(roots) = whole {
            for (i, root) in roots.into_iter().enumerate() {
                accept(&mut draft, root, origin(rel, i + 1), options, out);
            }
            return;
        }
    }
    parse_yaml_split(rel, text, options, out);
}

/// Parses each document on its own, so one syntax error does not hide the others.
fn parse_yaml_split(rel: &Arc<Path>, text: &str, options: &LoadOptions, out: &mut Parsed) {
    let mut doc = 0;
    let mut draft = Draft::new();
    for chunk in split_documents(text) {
        if let Err(too_deep) = depth::check(chunk.text, chunk.first_line) {
            doc += 1;
            out.errors
                .push(error(origin(rel, doc), "", "", None, too_deep.to_string()));
            continue;
        }
        if expansion::may_alias(chunk.text) {
            let budget = expansion::budget(chunk.text.len());
            if let Err(e) = expansion::check(yaml_parser(chunk.text), budget) {
                doc += 1;
                let message = shift_lines(&e.to_string(), chunk.first_line);
                out.errors
                    .push(error(origin(rel, doc), "", "", None, message));
                continue;
            }
        }
        let merges = chunk.text.contains("<<");
        for value in yaml_parser(chunk.text) {
            doc += 1;
            let origin = origin(rel, doc);
            draft.clear();
            match yaml_document(&mut draft, value, merges) {
                Ok(root) => accept(&mut draft, root, origin, options, out),
                Err(e) => {
                    // The error's line numbers are the chunk's: shift them to the file's.
                    let message = shift_lines(&e.to_string(), chunk.first_line);
                    out.errors.push(error(origin, "", "", None, message));
                    // The rest of this chunk cannot be trusted; the next chunk starts afresh.
                    break;
                }
            }
        }
    }
}

/// The YAML parser over `text` (the tests count what it is given).
fn yaml_parser(text: &str) -> serde_yaml::Deserializer<'_> {
    #[cfg(test)]
    tests::PARSED_BYTES.with(|n| n.set(n.get() + text.len()));
    serde_yaml::Deserializer::from_str(text)
}

/// One document into `draft`, as it would be read into a `serde_json::Value` (same values, same
/// errors). `merges`: its text may hold merge keys (`<<`).
fn yaml_document(
    draft: &mut Draft,
    document: serde_yaml::Deserializer<'_>,
    merges: bool,
) -> Result<DraftNode, serde_yaml::Error> {
    if merges {
        // Merge keys only apply through serde_yaml's own Value; the direct path is faster.
        let mut value = serde_yaml::Value::deserialize(document)?;
        value.apply_merge()?;
        let value = serde_json::to_value(value).map_err(<serde_yaml::Error as Error>::custom)?;
        draft
            .parse(&value)
            .map_err(<serde_yaml::Error as Error>::custom)
    } else {
        draft.parse(document)
    }
}

/// Adds `by` to every `line N` of a parser message (its locations, and the context's).
/// Linear in the message; re-parsing the document with blank lines before it would cost the
/// whole file again for every broken document.
fn shift_lines(message: &str, by: usize) -> String {
    if by == 0 {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len() + 8);
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// One document's text and the 0-based line it starts on.
#[derive(Debug, PartialEq)]
struct Chunk<'a> {
    first_line: usize,
    text: &'a str,
}

/// Splits a YAML stream before every `---` marker line. Text before the first marker is kept
/// only if it holds something other than blank lines, comments and directives.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 0, 0);
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line) && offset > start {
            chunks.push(Chunk {
                first_line: start_line,
                text: &text[start..offset],
            });
            (start, start_line) = (offset, line_no);
        }
        offset += line.len();
    }
    if offset > start {
        chunks.push(Chunk {
            first_line: start_line,
            text: &text[start..],
        });
    }
    if chunks
        .first()
        .is_some_and(|c| !is_marker(c.text) && !has_content(c.text))
    {
        chunks.remove(0);
    }
    chunks
}

fn is_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && !l.starts_with('%')
    })
}

/// Checks one document and turns it into objects or errors.
fn accept(
    draft: &mut Draft,
    root: DraftNode,
    origin: Origin,
    options: &LoadOptions,
    out: &mut Parsed,
) {
    let is_list = draft.kind(root) == Kind::Object
        && draft.get(root, "kind").and_then(|k| draft.as_str(k)) == Some("List");
    if draft.kind(root) == Kind::Null {
        // an empty document
    } else if is_list {
        let items = draft.get(root, "items").and_then(|i| draft.items(i));
        let Some(items) = items.map(Iterator::collect::<Vec<_>>) else {
            let e = error(
                origin,
                "List",
                "",
                Some("items"),
                "a List needs an items list",
            );
            out.errors.push(e);
            return;
        };
        for (i, item) in items.into_iter().enumerate() {
            match object(draft, item, origin.clone(), options) {
                Ok(raw) => out.objects.push(raw),
                Err(mut e) => {
                    e.message = format!("items[{i}]: {}", e.message);
                    out.errors.push(*e);
                }
            }
        }
    } else {
        match object(draft, root, origin, options) {
            Ok(raw) => out.objects.push(raw),
            Err(e) => out.errors.push(*e),
        }
    }
}

/// Validates the parts every source guarantees (a mapping with `apiVersion`, `kind` and a
/// namespace) and defaults a missing `metadata.namespace`.
///
/// Emissary aborts the whole file-mode load on a document without a namespace;
/// legate instead gives it the configured `AMBASSADOR_NAMESPACE`, as `kubectl apply` would give
/// the current namespace, so plain example files work unchanged.
fn object(
    draft: &mut Draft,
    root: DraftNode,
    origin: Origin,
    options: &LoadOptions,
) -> Result<RawObject, Box<ResourceError>> {
    if draft.kind(root) != Kind::Object {
        let found = type_name(draft.kind(root));
        return Err(Box::new(error(
            origin,
            "",
            "",
            None,
            format!("document is {found}, not a mapping"),
        )));
    }
    let text = |node: Option<DraftNode>| node.and_then(|n| draft.as_str(n));
    let kind = text(draft.get(root, "kind"))
        .unwrap_or_default()
        .to_string();
    let metadata = draft.get(root, "metadata");
    let field = |key| metadata.and_then(|m| draft.get(m, key));
    let name = text(field("name")).unwrap_or_default();
    let default_ns = options.default_namespace.as_str();
    let ns = text(field("namespace"))
        .filter(|ns| !ns.is_empty())
        .unwrap_or(default_ns);
    let full_name = if name.is_empty() {
        String::new()
    } else {
        format!("{ns}/{name}")
    };
    let fail = |field, message: &str| {
        Err(Box::new(error(
            origin.clone(),
            &kind,
            &full_name,
            Some(field),
            message,
        )))
    };
    if text(draft.get(root, "apiVersion")).is_none_or(str::is_empty) {
        return fail("apiVersion", "apiVersion is missing or not a string");
    }
    if kind.is_empty() {
        return fail("kind", "kind is missing or not a string");
    }
    let metadata = match metadata {
        None => draft.object(),
        Some(m) if draft.kind(m) == Kind::Object => m,
        Some(_) => return fail("metadata", "metadata is not a mapping"),
    };
    let namespace = draft.get(metadata, "namespace");
    let defaulted = match namespace.map(|n| (draft.kind(n), draft.as_str(n))) {
        None | Some((Kind::Null, _)) | Some((_, Some(""))) => true,
        Some((Kind::String, _)) => false,
        Some(_) => return fail("metadata.namespace", "namespace is not a string"),
    };
    let mut root = root;
    if defaulted {
        let ns = draft.string(default_ns);
        let metadata = draft.set(metadata, "namespace", ns);
        root = draft.set(root, "metadata", metadata);
    }
    match draft.finish(root) {
        Ok(document) => Ok(RawObject {
            origin,
            value: Arc::new(document),
        }),
        Err(e) => Err(Box::new(error(
            origin,
            &kind,
            &full_name,
            None,
            e.to_string(),
        ))),
    }
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "empty",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "a list",
        Kind::Object => "a mapping",
    }
}

fn origin(rel: &Arc<Path>, doc: usize) -> Origin {
    Origin::File {
        file: Arc::clone(rel),
        doc,
    }
}

fn error(
    origin: Origin,
    kind: &str,
    name: &str,
    field: Option<&str>,
    message: impl Into<String>,
) -> ResourceError {
    ResourceError {
        origin,
        kind: kind.to_string(),
        name: name.to_string(),
        field: field.map(str::to_string),
        message: message.into(),
        warning: false,
    }
}

/// Emissary's file-mode substitution (as Python's `os.path.expandvars`): `$NAME`
/// (`NAME` of letters, digits, `_`) and `${NAME}` are replaced by the variable's value; unset
/// variables and a lone `$` stay literal.
fn substitute<'a>(text: &'a str, env: &BTreeMap<String, String>) -> Cow<'a, str> {
    if !text.contains('$') {
        return Cow::Borrowed(text);
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after.find(|c| !word(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Bytes handed to the YAML parser by this thread.
        pub(super) static PARSED_BYTES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn parse(text: &str) -> (Parsed, usize) {
        PARSED_BYTES.with(|n| n.set(0));
        let parsed = parse_file(
            Path::new("f.yaml"),
            text.as_bytes(),
            &LoadOptions::default(),
        );
        (parsed, PARSED_BYTES.with(|n| n.get()))
    }

    fn messages(parsed: &Parsed) -> Vec<String> {
        parsed.errors.iter().map(|e| e.to_string()).collect()
    }

    const GOOD: &str = "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: a}\nspec: {prefix: /a/, service: a}\n";

    /// Issue 9 item 8: 100,000 nested brackets took the parser minutes to reject. The document
    /// is now rejected by a single linear scan and never reaches the parser; the other
    /// documents of the file are still read, and line numbers are the file's.
    #[test]
    fn deep_nesting_is_rejected_before_the_parser() {
        let deep = format!(
            "kind: Mapping\nspec: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let text = format!("{GOOD}---\n{deep}---\n{GOOD}");
        let (parsed, parsed_bytes) = parse(&text);
        assert_eq!(parsed.objects.len(), 2, "{:?}", parsed.errors);
        assert_eq!(
            messages(&parsed),
            [format!(
                "f.yaml#2: recursion limit exceeded at line 7 column {}",
                7 + depth::MAX_FLOW_DEPTH - 1
            )]
        );
        // Only the two good documents (twice: the whole-stream attempt was skipped, the split
        // parsed each) were given to the parser, never the deep one.
        assert!(parsed_bytes <= 2 * (GOOD.len() + 4), "{parsed_bytes}");
    }

    #[test]
    fn an_alias_bomb_is_rejected() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("a{}", i - 1)
            };
            bomb.push_str(&format!("a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let (parsed, _) = parse(&format!("{GOOD}---\n{bomb}"));
        assert_only_doc_2_rejected(&parsed, 1, "aliases expand to more than");
    }

    /// Document 2 and nothing else is rejected, for `reason`; `good` documents are read.
    fn assert_only_doc_2_rejected(parsed: &Parsed, good: usize, reason: &str) {
        assert_eq!(parsed.objects.len(), good, "{:?}", parsed.errors);
        let messages = messages(parsed);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("f.yaml#2: "), "{messages:?}");
        assert!(messages[0].contains(reason), "{messages:?}");
    }

    /// One anchor of 50,000 items referenced 50,000 times is 350 KB of text and 2.5 billion
    /// nodes once expanded: rejected after a budget proportional to the text.
    #[test]
    fn a_wide_alias_fan_out_is_rejected() {
        let n = 50_000;
        let wide = format!(
            "kind: Mapping\nspec:\n  big: &b [{}]\n  refs: [{}]\n",
            vec!["x"; n].join(", "),
            vec!["*b"; n].join(", ")
        );
        let (parsed, _) = parse(&format!("{GOOD}---\n{wide}---\n{GOOD}"));
        assert_only_doc_2_rejected(&parsed, 2, "aliases expand to more than");
        // anchors and merge keys within the budget still work
        let merged = "a: &base {prefix: /a/, service: a}\nb:\n  <<: *base\n  service: b\n";
        let (parsed, _) = parse(&format!(
            "apiVersion: v\nkind: K\nmetadata: {{name: m}}\nspec:\n  {}",
            merged.replace('\n', "\n  ")
        ));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let spec = &parsed.objects[0].value.to_value()["spec"];
        assert_eq!(
            (spec["b"]["prefix"].as_str(), spec["b"]["service"].as_str()),
            (Some("/a/"), Some("b"))
        );
    }

    #[test]
    fn binary_garbage_is_rejected() {
        let mut garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        garbage[0] = 0xff;
        let parsed = parse_file(Path::new("f.yaml"), &garbage, &LoadOptions::default());
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.errors.len(), 1);
        assert!(
            parsed.errors[0]
                .message
                .starts_with("file is not valid UTF-8"),
            "{:?}",
            parsed.errors
        );
        // valid UTF-8, but control characters YAML does not allow
        let text: String = (0..2048u32)
            .map(|i| char::from((i * 7 % 32) as u8))
            .collect();
        let (parsed, _) = parse(&text);
        assert!(parsed.objects.is_empty());
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
    }

    #[test]
    fn syntax_errors_of_later_documents_carry_the_file_lines() {
        let text = format!("{GOOD}---\na: [\n---\n{GOOD}---\nb: {{c\n");
        let (parsed, _) = parse(&text);
        assert_eq!(parsed.objects.len(), 2);
        let messages = messages(&parsed);
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("line 7"), "{messages:?}");
        assert!(messages[1].contains("line 13"), "{messages:?}");
        assert_eq!(
            shift_lines("x at line 2 column 3, while y at line 1 column 1", 10),
            "x at line 12 column 3, while y at line 11 column 1"
        );
    }

    #[test]
    fn splits_on_marker_lines_only() {
        let text = "# header\n---\na: 1\n--- {b: 2}\nc: |\n  ---not a marker\n---\n";
        let chunks = split_documents(text);
        let starts: Vec<usize> = chunks.iter().map(|c| c.first_line).collect();
        assert_eq!(starts, vec![1, 3, 6]);
        assert_eq!(chunks[1].text, "--- {b: 2}\nc: |\n  ---not a marker\n");
        // Content before the first marker is a document of its own.
        let chunks = split_documents("a: 1\n---\nb: 2\n");
        assert_eq!(chunks.len(), 2);
        assert!(split_documents("").is_empty());
        assert!(!is_marker("----\n"));
    }

    #[test]
    fn the_fast_path_and_the_split_number_documents_alike() {
        let texts = [
            "# c\n---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n",
            "a: 1\n---\nb: 2\n...\n---\nc: 3\n---\n",
            "--- {a: 1}\n--- |\n  text\n---\n- 1\n",
            "%YAML 1.2\n---\na: 1\n",
            "",
            "# nothing\n",
        ];
        let options = LoadOptions::default();
        for text in texts {
            let (mut fast, mut split) = (Parsed::default(), Parsed::default());
            parse_yaml(&Arc::from(Path::new("f.yaml")), text, &options, &mut fast);
            parse_yaml_split(&Arc::from(Path::new("f.yaml")), text, &options, &mut split);
            assert_eq!(fast, split, "{text:?}");
        }
        let mut parsed = Parsed::default();
        parse_yaml(
            &Arc::from(Path::new("f.yaml")),
            texts[0],
            &options,
            &mut parsed,
        );
        let docs: Vec<String> = parsed.errors.iter().map(|e| e.origin.to_string()).collect();
        assert_eq!(docs, ["f.yaml#1", "f.yaml#4"], "{:?}", parsed.errors);
    }

    #[test]
    fn substitutes_set_variables_and_keeps_the_rest() {
        let env = BTreeMap::from([
            ("HOST".to_string(), "example.com".to_string()),
            ("P".to_string(), "80".to_string()),
        ]);
        assert_eq!(
            substitute("a: $HOST:${P} $UNSET ${UNSET} $ $$ ${open", &env),
            "a: example.com:80 $UNSET ${UNSET} $ $$ ${open"
        );
        assert_eq!(substitute("regex: ^/x/(.*)$", &env), "regex: ^/x/(.*)$");
    }
}
