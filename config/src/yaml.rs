//! The YAML front end: one event-level parse with `yaml-rust2` that yields both the document as
//! a `serde_json::Value` (for serde to turn into the typed model) and an index of where every
//! value sits, so every error, from serde or from validation, points at the offending value.
//!
//! Why not a serde YAML deserializer: serde_yaml_ng (the maintained fork of the unmaintained
//! serde_yaml) reads enums only as YAML tags (`!forward`), not the `forward: {...}` maps this
//! file uses, and it forgets positions once the model is built. Paths use the syntax of
//! `serde_path_to_error` (`listeners[0].rules[1].priority`), so its paths look up here.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A 1-based line and column in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl From<Marker> for Position {
    fn from(marker: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Position {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// A file that is not well-formed YAML, or that repeats a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) position: Position,
    /// Path of the offending key or value, empty when unknown.
    pub(crate) path: String,
    pub(crate) reason: String,
}

/// A parsed YAML document and where each of its values is.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) value: Value,
    pub(crate) positions: PositionIndex,
}

/// Field path → position of the value at that path (for mappings and sequences, where they
/// start; for a mapping entry whose value is empty, the key).
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    positions: HashMap<String, Position>,
    /// Where each mapping key is, for errors about the key itself (unknown field).
    keys: HashMap<String, Position>,
}

/// One open container while walking events.
enum Frame {
    /// A mapping; `pending_key` is the key whose value comes next, `None` when a key comes next.
    Mapping {
        path: String,
        anchor: usize,
        entries: Map<String, Value>,
        pending_key: Option<String>,
    },
    /// A sequence being filled.
    Sequence {
        path: String,
        anchor: usize,
        items: Vec<Value>,
    },
}

impl Frame {
    fn path(&self) -> &str {
        match self {
            Frame::Mapping { path, .. } | Frame::Sequence { path, .. } => path,
        }
    }
}

/// Parses the first YAML document of `text`.
pub(crate) fn parse_document(text: &str) -> Result<Document, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, marker) = parser.next_token().map_err(|error| SyntaxError {
            position: (*error.marker()).into(),
            path: String::new(),
            reason: format!("invalid YAML: {}", error.info()),
        })?;
        match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::Scalar(text, style, anchor, tag) => {
                if builder.awaits_key() {
                    builder.key(text, marker)?;
                } else {
                    let value = scalar_value(text, style, tag.as_ref());
                    builder.complete(value, anchor, marker)?;
                }
            }
            Event::Alias(anchor) => {
                let value = builder.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                if builder.awaits_key() {
                    builder.key(value.as_str().unwrap_or_default().to_string(), marker)?;
                } else {
                    builder.complete(value, 0, marker)?;
                }
            }
            Event::MappingStart(anchor, _) => {
                let path = builder.open(marker)?;
                builder.stack.push(Frame::Mapping {
                    path,
                    anchor,
                    entries: Map::new(),
                    pending_key: None,
                });
            }
            Event::SequenceStart(anchor, _) => {
                let path = builder.open(marker)?;
                builder.stack.push(Frame::Sequence {
                    path,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match builder.stack.pop() {
                    Some(Frame::Mapping {
                        anchor, entries, ..
                    }) => (Value::Object(entries), anchor),
                    Some(Frame::Sequence { anchor, items, .. }) => (Value::Array(items), anchor),
                    None => continue,
                };
                builder.attach(value, anchor);
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart => {}
        }
    }
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        positions: builder.positions,
    })
}

/// Event-walk state: open containers, anchors seen, positions so far.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    positions: PositionIndex,
    root: Option<Value>,
}

impl Builder {
    fn awaits_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                pending_key: None,
                ..
            })
        )
    }

    /// Takes a mapping key, rejecting one the mapping already has.
    fn key(&mut self, key: String, marker: Marker) -> Result<(), SyntaxError> {
        let Some(Frame::Mapping {
            path,
            entries,
            pending_key,
            ..
        }) = self.stack.last_mut()
        else {
            unreachable!("awaits_key checked the frame");
        };
        let key_path = join_key(path, &key);
        if entries.contains_key(&key) || pending_key.is_some() {
            return Err(SyntaxError {
                position: marker.into(),
                path: key_path,
                reason: format!("duplicate key `{key}`"),
            });
        }
        // yaml-rust2 marks a block mapping's start after its first key: use the key instead.
        if entries.is_empty() {
            self.positions.positions.insert(path.clone(), marker.into());
        }
        // Remember the key's place: if the value is empty (`key:`), this is where it is.
        self.positions
            .positions
            .insert(key_path.clone(), marker.into());
        self.positions.keys.insert(key_path, marker.into());
        *pending_key = Some(key);
        Ok(())
    }

    /// Records where a new mapping or sequence starts and returns its path.
    fn open(&mut self, marker: Marker) -> Result<String, SyntaxError> {
        if self.awaits_key() {
            return Err(SyntaxError {
                position: marker.into(),
                path: self
                    .stack
                    .last()
                    .map(|frame| frame.path().to_string())
                    .unwrap_or_default(),
                reason: "a mapping key must be a plain string, not a mapping or a list".to_string(),
            });
        }
        let path = self.child_path();
        self.positions.positions.insert(path.clone(), marker.into());
        Ok(path)
    }

    /// A scalar or alias value: record its position and attach it.
    fn complete(&mut self, value: Value, anchor: usize, marker: Marker) -> Result<(), SyntaxError> {
        let path = self.child_path();
        // An empty value (`key:`) is reported where its key is.
        if !(value.is_null() && self.positions.positions.contains_key(&path)) {
            self.positions.positions.insert(path, marker.into());
        }
        self.attach(value, anchor);
        Ok(())
    }

    /// The path the next value in the innermost container gets.
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Mapping {
                path, pending_key, ..
            }) => join_key(path, pending_key.as_deref().unwrap_or_default()),
            Some(Frame::Sequence { path, items, .. }) => format!("{path}[{}]", items.len()),
        }
    }

    /// Puts a finished value into its container (or makes it the root).
    fn attach(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Mapping {
                entries,
                pending_key,
                ..
            }) => {
                entries.insert(pending_key.take().unwrap_or_default(), value);
            }
            Some(Frame::Sequence { items, .. }) => items.push(value),
        }
    }
}

/// Resolves a scalar as YAML 1.2's core schema does: quoted or `!!str` scalars are strings;
/// plain ones may be null, booleans or numbers.
fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let tagged_string = tag.is_some_and(|tag| tag.suffix == "str");
    if style != TScalarStyle::Plain || tagged_string {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(flag) => Value::Bool(flag),
        Yaml::Integer(integer) => Value::Number(integer.into()),
        Yaml::Real(real) => match real.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(number) => Value::Number(number),
            None => Value::String(text),
        },
        _ => Value::String(text),
    }
}

impl PositionIndex {
    /// The position of `path`, or of its nearest ancestor that is written in the file (a
    /// defaulted field has no position of its own, its parent does).
    pub(crate) fn locate(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(position) = self.positions.get(current) {
                return Some(*position);
            }
            current = parent_path(current)?;
        }
    }

    /// The position of the key that names `path`, falling back to [`Self::locate`].
    pub(crate) fn locate_key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.locate(path))
    }
}

/// `parent.key`, or `key` at the root.
fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``; `None` above the root.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
load_balancer:
  name: demo
listeners:
  - name: web
    address: 127.0.0.1:80
    rules:
      - priority: 10
        conditions:
          - path_pattern: [\"/a\", \"/b\"]
      - priority: 20
    default_action:
      forward:
        target_group: app
";

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn maps_paths_to_value_positions() {
        let index = parse_document(TEXT).unwrap().positions;
        assert_eq!(index.locate("load_balancer.name"), at(2, 9));
        assert_eq!(index.locate("listeners[0]"), at(4, 5));
        assert_eq!(index.locate("listeners[0].default_action"), at(12, 7));
        assert_eq!(index.locate("listeners[0].address"), at(5, 14));
        assert_eq!(index.locate("listeners[0].rules[1].priority"), at(10, 19));
        assert_eq!(
            index.locate("listeners[0].rules[0].conditions[0].path_pattern[1]"),
            at(9, 34)
        );
        assert_eq!(
            index.locate("listeners[0].default_action.forward.target_group"),
            at(13, 23)
        );
    }

    #[test]
    fn falls_back_to_the_nearest_written_ancestor() {
        let index = parse_document(TEXT).unwrap().positions;
        assert_eq!(
            index.locate("listeners[0].rules[1].action"),
            index.locate("listeners[0].rules[1]")
        );
        assert_eq!(index.locate("admin.address"), at(1, 1));
        assert_eq!(index.locate_key("listeners[0].address"), at(5, 5));
    }

    #[test]
    fn empty_value_points_at_its_key() {
        let index = parse_document("admin:\n  address:\n").unwrap().positions;
        assert_eq!(index.locate("admin.address"), at(2, 3));
    }

    #[test]
    fn builds_typed_values() {
        let text = "a: 1\nb: '1'\nc: true\nd: ~\ne: [x, 1.5]\nf: &anchor {g: h}\ni: *anchor\n";
        let value = parse_document(text).unwrap().value;
        let expected = serde_json::json!({
            "a": 1, "b": "1", "c": true, "d": null, "e": ["x", 1.5], "f": {"g": "h"}, "i": {"g": "h"}
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn rejects_duplicate_keys_and_bad_syntax() {
        let error = parse_document("a:\n  b: 1\n  b: 2\n").unwrap_err();
        assert_eq!(
            (error.path.as_str(), error.position),
            ("a.b", Position { line: 3, column: 3 })
        );
        assert_eq!(error.reason, "duplicate key `b`");
        let error = parse_document("a: [1, 2\n").unwrap_err();
        assert!(
            error.reason.starts_with("invalid YAML: "),
            "{}",
            error.reason
        );
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a.b"), Some("a"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
