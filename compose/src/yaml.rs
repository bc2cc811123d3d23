//! The YAML layer: turns a file's text into a [`Node`] tree in which every
//! node remembers the file and line it came from, with anchors, aliases and
//! merge keys (`<<:`) already resolved — and writes such a tree back out as
//! YAML for `shoal stack config`.
//!
//! It knows nothing about Compose: which keys exist, what types they take and
//! how files merge are the business of [`crate::schema`] and [`crate::merge`].
//!
//! The tokenizer is `yaml-rust2`'s event parser, driven one event at a time
//! rather than through its recursive `load`, so that nesting depth and alias
//! expansion are bounded here ([`crate::limits`]) and hostile input cannot
//! exhaust the stack or memory. Each anchor remembers how many values, how
//! many bytes of text and how many levels it holds, so an alias is checked
//! against the bounds *before* it is copied.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{ComposeError, Location};
use crate::limits::{mib, MAX_DEPTH, MAX_EXPANDED_BYTES, MAX_NODES};

/// Where a node was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pos {
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
}

impl Pos {
    pub fn location(&self) -> Location {
        Location {
            file: self.file.to_string(),
            line: Some(self.line),
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    /// The scalar's text; `quoted` is false for plain scalars, whose text may
    /// stand for a number or boolean, and true for quoted or block ones,
    /// which are always strings.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars (Compose never uses complex keys); order is kept.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    pub fn new(value: Value, pos: Pos) -> Node {
        Node { value, pos }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name for the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text, for values where Compose accepts numbers and
    /// booleans as strings too (`FOO: 1`, `image: 13`).
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Structural equality that ignores positions, for de-duplicating
    /// merged lists.
    pub fn same_value(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            (Value::Null, Value::Null) => true,
            (Value::Scalar { text: a, .. }, Value::Scalar { text: b, .. }) => a == b,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter().all(|(k, v)| {
                        b.iter()
                            .any(|(k2, v2)| k.name == k2.name && v.same_value(v2))
                    })
            }
            _ => false,
        }
    }
}

fn syntax(file: &Arc<str>, mark: Option<&Marker>, message: impl Into<String>) -> ComposeError {
    ComposeError::Syntax {
        at: Location {
            file: file.to_string(),
            line: mark.map(Marker::line),
        },
        message: message.into(),
    }
}

fn limit(file: &Arc<str>, mark: &Marker, message: String) -> ComposeError {
    ComposeError::Limit {
        at: Location {
            file: file.to_string(),
            line: Some(mark.line().max(1)),
        },
        message,
    }
}

/// What a finished node weighs: values and text bytes inside it, aliases
/// expanded, and its height in collections (a scalar is 0).
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    nodes: usize,
    bytes: usize,
    height: usize,
}

/// A collection under construction, with the running totals at its start
/// (to weigh it at its end) and the height of its tallest child.
struct Frame {
    kind: FrameKind,
    pos: Pos,
    anchor: usize,
    nodes_at_start: usize,
    bytes_at_start: usize,
    child_height: usize,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

/// Parses one YAML document. An empty document yields a null node.
pub(crate) fn parse(file: &str, text: &str) -> Result<Node, ComposeError> {
    let file: Arc<str> = Arc::from(file);
    let mut parser = Parser::new_from_str(text);
    let mut anchors: HashMap<usize, (Node, Weight)> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    // Running totals over the whole document, aliases expanded.
    let mut nodes = 0usize;
    let mut bytes = 0usize;

    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| syntax(&file, Some(e.marker()), e.info()))?;
        let pos = Pos {
            file: file.clone(),
            line: mark.line().max(1),
        };
        // A finished node, to be placed into its parent (or become the root),
        // and its height.
        let (done, height): (Node, usize) = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(syntax(
                        &file,
                        Some(&mark),
                        "a Compose file holds one YAML document, found a second one",
                    ));
                }
                continue;
            }
            Event::Alias(id) => {
                let (node, weight) = anchors
                    .get(&id)
                    .ok_or_else(|| syntax(&file, Some(&mark), "alias to an unknown anchor"))?;
                // Checked before cloning: the clone is what a bomb is after.
                if stack.len() + weight.height > MAX_DEPTH {
                    return Err(limit(
                        &file,
                        &mark,
                        format!(
                            "nesting deeper than {MAX_DEPTH} levels once this alias is expanded, \
                             the most shoal loads"
                        ),
                    ));
                }
                nodes += weight.nodes;
                bytes += weight.bytes;
                check_expansion(&file, &mark, nodes, bytes)?;
                (node.clone(), weight.height)
            }
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                bytes += text.len();
                check_expansion(&file, &mark, nodes, bytes)?;
                let weight = Weight {
                    nodes: 1,
                    bytes: text.len(),
                    height: 0,
                };
                let value = if style == TScalarStyle::Plain && is_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar {
                        text,
                        quoted: style != TScalarStyle::Plain,
                    }
                };
                let node = Node::new(value, pos);
                if anchor > 0 {
                    anchors.insert(anchor, (node.clone(), weight));
                }
                (node, 0)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(limit(
                        &file,
                        &mark,
                        format!("nesting deeper than {MAX_DEPTH} levels, the most shoal loads"),
                    ));
                }
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Seq(Vec::new())
                } else {
                    FrameKind::Map {
                        entries: Vec::new(),
                        pending_key: None,
                    }
                };
                stack.push(Frame {
                    kind,
                    pos,
                    anchor,
                    nodes_at_start: nodes,
                    bytes_at_start: bytes,
                    child_height: 0,
                });
                nodes += 1;
                check_expansion(&file, &mark, nodes, bytes)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack
                    .pop()
                    .ok_or_else(|| syntax(&file, Some(&mark), "unbalanced collection end"))?;
                let node = match frame.kind {
                    FrameKind::Seq(items) => Node::new(Value::Seq(items), frame.pos),
                    FrameKind::Map { entries, .. } => build_map(entries, frame.pos)?,
                };
                let weight = Weight {
                    nodes: nodes - frame.nodes_at_start,
                    bytes: bytes - frame.bytes_at_start,
                    height: frame.child_height + 1,
                };
                if frame.anchor > 0 {
                    anchors.insert(frame.anchor, (node.clone(), weight));
                }
                (node, weight.height)
            }
        };
        match stack.last_mut() {
            None => root = Some(done),
            Some(parent) => {
                parent.child_height = parent.child_height.max(height);
                match &mut parent.kind {
                    FrameKind::Seq(items) => items.push(done),
                    FrameKind::Map {
                        entries,
                        pending_key,
                    } => match pending_key.take() {
                        None => *pending_key = Some(done),
                        Some(key) => entries.push((key, done)),
                    },
                }
            }
        }
    }
    Ok(root.unwrap_or_else(|| {
        Node::new(
            Value::Null,
            Pos {
                file: file.clone(),
                line: 1,
            },
        )
    }))
}

/// The bounds on what a document expands to; `nodes` and `bytes` are the
/// running totals with every alias so far expanded.
fn check_expansion(
    file: &Arc<str>,
    mark: &Marker,
    nodes: usize,
    bytes: usize,
) -> Result<(), ComposeError> {
    if bytes > MAX_EXPANDED_BYTES {
        return Err(limit(
            file,
            mark,
            format!(
                "the document expands to more than {} of text once aliases are expanded, \
                 the most shoal loads; write the repeated values out or use fewer aliases",
                mib(MAX_EXPANDED_BYTES)
            ),
        ));
    }
    if nodes > MAX_NODES {
        return Err(limit(
            file,
            mark,
            format!(
                "the document expands to more than {MAX_NODES} values once aliases are expanded, \
                 the most shoal loads; write the repeated values out or use fewer aliases"
            ),
        ));
    }
    Ok(())
}

/// YAML 1.2 core schema nulls (what Compose's Go parser accepts).
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Turns the raw key/value pairs of a mapping into a [`Value::Map`],
/// resolving merge keys: explicit keys win over merged ones, and among merged
/// mappings an earlier one wins over a later one (YAML merge-key spec).
fn build_map(raw: Vec<(Node, Node)>, pos: Pos) -> Result<Node, ComposeError> {
    let mut entries: Vec<(Key, Node)> = Vec::with_capacity(raw.len());
    let mut merged: Vec<Node> = Vec::new();
    // A set, not a scan of `entries`: a mapping of 100 000 keys must not
    // take 10^10 comparisons.
    let mut seen: HashSet<String> = HashSet::with_capacity(raw.len());
    for (key, value) in raw {
        let name = match &key.value {
            Value::Scalar { text, quoted } => {
                if text == "<<" && !quoted {
                    match value.value {
                        Value::Map(_) => merged.push(value),
                        Value::Seq(items) => {
                            for item in items {
                                if !matches!(item.value, Value::Map(_)) {
                                    return Err(merge_key_error(&item.pos));
                                }
                                merged.push(item);
                            }
                        }
                        _ => return Err(merge_key_error(&value.pos)),
                    }
                    continue;
                }
                text.clone()
            }
            // `null:` or `~:` as a key: keep it as text so validation can
            // name it rather than failing here.
            Value::Null => "null".to_owned(),
            _ => {
                return Err(ComposeError::Syntax {
                    at: key.pos.location(),
                    message: format!("mapping keys must be scalars, found {}", key.kind()),
                })
            }
        };
        if !seen.insert(name.clone()) {
            return Err(ComposeError::Syntax {
                at: key.pos.location(),
                message: format!("duplicate key `{name}` in a mapping"),
            });
        }
        entries.push((Key { name, pos: key.pos }, value));
    }
    for source in merged {
        if let Value::Map(source_entries) = source.value {
            for (k, v) in source_entries {
                if seen.insert(k.name.clone()) {
                    entries.push((k, v));
                }
            }
        }
    }
    Ok(Node::new(Value::Map(entries), pos))
}

fn merge_key_error(pos: &Pos) -> ComposeError {
    ComposeError::Syntax {
        at: pos.location(),
        message: "merge key `<<` expects a mapping or a list of mappings".to_owned(),
    }
}

/// Writes `node` as block-style YAML with mapping keys sorted, the way
/// `docker compose config` prints a project.
pub(crate) fn emit(node: &Node) -> String {
    let mut out = String::new();
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => emit_map(&mut out, entries, 0),
        Value::Seq(items) if !items.is_empty() => emit_seq(&mut out, items, 0),
        _ => {
            out.push_str(&inline(node));
            out.push('\n');
        }
    }
    out
}

fn emit_map(out: &mut String, entries: &[(Key, Node)], indent: usize) {
    let mut sorted: Vec<&(Key, Node)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (key, value) in sorted {
        let key = quote(&key.name, true);
        // YAML allows an implicit (`key: value`) key of at most 1024
        // characters; a longer one needs the explicit `? key` / `: value`
        // form to read back (found by the compose_load fuzz target).
        if key.len() > MAX_IMPLICIT_KEY {
            let _ = write!(out, "{:indent$}? {key}\n{:indent$}:", "", "");
        } else {
            let _ = write!(out, "{:indent$}{key}:", "");
        }
        emit_child(out, value, indent);
    }
}

/// Longest key written in the implicit form, in bytes (YAML's limit is 1024
/// characters, and a character is at least a byte).
const MAX_IMPLICIT_KEY: usize = 1024;

fn emit_seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        match &item.value {
            // A mapping inside a list starts on the dash's line.
            Value::Map(entries) if !entries.is_empty() => {
                let mut body = String::new();
                emit_map(&mut body, entries, indent + 2);
                out.push(' ');
                out.push_str(&body[indent + 2..]);
            }
            _ => emit_child(out, item, indent),
        }
    }
}

fn emit_child(out: &mut String, value: &Node, indent: usize) {
    match &value.value {
        Value::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            emit_map(out, entries, indent + 2);
        }
        Value::Seq(items) if !items.is_empty() => {
            out.push('\n');
            emit_seq(out, items, indent + 2);
        }
        Value::Null => out.push('\n'),
        _ => {
            out.push(' ');
            out.push_str(&inline(value));
            out.push('\n');
        }
    }
}

fn inline(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Scalar { text, quoted } => quote(text, !quoted),
        Value::Seq(_) => "[]".to_owned(),
        Value::Map(_) => "{}".to_owned(),
    }
}

/// Characters that YAML would not read back verbatim from a plain or
/// double-quoted scalar unless escaped.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

/// Writes a scalar plain when it was plain in the source (`plain_ok`) and
/// reads back as the same text, else double-quoted: what was quoted stays
/// quoted, so `"80:80"` and `"true"` keep meaning what their author meant.
fn quote(text: &str, plain_ok: bool) -> String {
    let first = text.chars().next().unwrap_or(' ');
    let safe = !text.is_empty()
        && !"-?:,[]{}#&*!|>'\"%@` ".contains(first)
        && !text.ends_with(' ')
        && !text.ends_with(':')
        && !text.contains(": ")
        && !text.contains(" #")
        && text != "<<"
        && !text.chars().any(needs_escape);
    if safe && plain_ok && !is_null(text) {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(node: &Node) -> Vec<&str> {
        match &node.value {
            Value::Map(e) => e.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn positions_are_one_based_lines() {
        let node = parse("f.yml", "a: 1\nb:\n  c: x\n").unwrap();
        assert_eq!(node.get("a").unwrap().pos.line, 1);
        assert_eq!(node.get("b").unwrap().get("c").unwrap().pos.line, 3);
    }

    #[test]
    fn merge_keys_explicit_wins_and_first_source_wins() {
        let text = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\n";
        let node = parse("f.yml", text).unwrap();
        let c = node.get("c").unwrap();
        assert_eq!(map_keys(c), ["x", "y", "z"]);
        assert_eq!(c.get("x").unwrap().scalar(), Some("0"));
        assert_eq!(c.get("y").unwrap().scalar(), Some("1"));
        assert_eq!(c.get("z").unwrap().scalar(), Some("2"));
    }

    #[test]
    fn quoted_merge_key_is_a_plain_key() {
        let node = parse("f.yml", "\"<<\": 1\n").unwrap();
        assert_eq!(map_keys(&node), ["<<"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("f.yml", "a: 1\na: 2\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yml:2: malformed YAML: duplicate key `a` in a mapping"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        // yaml-rust2 bounds flow nesting itself; block nesting is bounded here.
        let err = parse("f.yml", &"[".repeat(100_000))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.yml:1: malformed YAML: "), "{err}");
        let err = parse("f.yml", &"- ".repeat(100_000))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.yml:1: nesting deeper than 128 levels, the most shoal loads"
        );
    }

    /// `levels` flow lists nested around `inner`.
    fn nested(levels: usize, inner: &str) -> String {
        format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn nesting_is_counted_after_aliases_are_spliced_in() {
        // 1 (the top mapping) + 60 + 60: fine.
        let text = format!("a: &a {}\nb: {}\n", nested(60, "x"), nested(60, "*a"));
        let node = parse("f.yml", &text).unwrap();
        assert!(node.get("b").is_some());
        // 1 + 70 + 60 levels, each part alone well within the bound.
        let text = format!("a: &a {}\nb: {}\n", nested(60, "x"), nested(70, "*a"));
        let err = parse("f.yml", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yml:2: nesting deeper than 128 levels once this alias is expanded, the most shoal loads"
        );
        // A chain of anchors, each aliasing the one before 30 levels down:
        // every line is shallow, the last expansion is not.
        let mut text = format!("a0: &a0 {}\n", nested(30, "x"));
        for i in 1..6 {
            text.push_str(&format!(
                "a{i}: &a{i} {}\n",
                nested(30, &format!("*a{}", i - 1))
            ));
        }
        let err = parse("f.yml", &text).unwrap_err().to_string();
        assert!(err.contains("once this alias is expanded"), "{err}");
    }

    #[test]
    fn billion_laughs_is_refused() {
        // The classic: nine levels of ten aliases, 10^9 values from 1 KiB.
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = i - 1;
            let refs = vec![format!("*a{prev}"); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse("f.yml", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yml:6: the document expands to more than 1000000 values once aliases are expanded, \
             the most shoal loads; write the repeated values out or use fewer aliases"
        );
    }

    #[test]
    fn alias_expansion_is_bounded_in_bytes_not_only_values() {
        // Twenty aliases of one 1 MiB scalar: 21 values, 21 MiB.
        let big = "x".repeat(1 << 20);
        let text = format!("a: &a {big}\nb: [{}]\n", ["*a"; 20].join(", "));
        let err = parse("f.yml", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yml:2: the document expands to more than 16 MiB of text once aliases are expanded, \
             the most shoal loads; write the repeated values out or use fewer aliases"
        );
        // Ten are 11 MiB: within the bound.
        let text = format!("a: &a {big}\nb: [{}]\n", ["*a"; 10].join(", "));
        assert!(parse("f.yml", &text).is_ok());
    }

    #[test]
    fn large_mappings_load() {
        // Duplicate keys are found through a set: this is linear, not the
        // 10^9 comparisons a scan per key would take.
        let text: String = (0..50_000).map(|i| format!("k{i}: {i}\n")).collect();
        let node = parse("f.yml", &text).unwrap();
        assert_eq!(map_keys(&node).len(), 50_000);
        let text = format!("{text}k49999: again\n");
        let err = parse("f.yml", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yml:50001: malformed YAML: duplicate key `k49999` in a mapping"
        );
    }

    #[test]
    fn second_document_is_an_error() {
        let err = parse("f.yml", "a: 1\n---\nb: 2\n").unwrap_err().to_string();
        assert!(
            err.starts_with("f.yml:2: malformed YAML: a Compose file holds one"),
            "{err}"
        );
    }

    #[test]
    fn emit_writes_long_keys_explicitly() {
        // Fuzz crash: a key over YAML's 1024-character limit for implicit
        // keys was written `key:` and the rendering did not read back.
        let long = "k\u{7f}".repeat(300);
        let text =
            format!("a:\n  \"{long}\": {{x: 1}}\n  b: [{{\"{long}\": 2}}]\n  \"{long}x\": 3\n");
        let node = parse("f.yml", &text).unwrap();
        let out = emit(&node);
        assert!(out.contains("? \""), "{out}");
        let again = parse("g.yml", &out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(again.same_value(&node));
    }

    #[test]
    fn emit_round_trips() {
        let text = "b:\n  - x: 1\n    y: \"true\"\n  - \"- dash\"\na: null\nc: {}\nd: 'a: b'\n";
        let node = parse("f.yml", text).unwrap();
        let out = emit(&node);
        assert_eq!(
            out,
            "a:\nb:\n  - x: 1\n    y: \"true\"\n  - \"- dash\"\nc: {}\nd: \"a: b\"\n"
        );
        let again = parse("g.yml", &out).unwrap();
        assert!(again.same_value(&node));
    }
}
