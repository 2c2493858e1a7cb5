//! Reading TOML text into the file types, and turning the toml crate's errors into
//! `ConfigError`s that name the TOML path of the offending key.
//!
//! The toml crate reports a byte span, not a path. To recover the path, the text
//! is parsed a second time into a tree that records the span of every key and
//! value, and the deepest entry whose span holds the error's span names it.

use crate::error::{ConfigError, Location};
use crate::file::ConfigFile;
use crate::suggest::closest;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;
use toml::Spanned;

pub(crate) fn parse_file(text: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str::<ConfigFile>(text).map_err(|e| describe(text, &e))
}

fn describe(text: &str, error: &toml::de::Error) -> ConfigError {
    let location = error.span().map(|span| location_of(text, span.start));
    let message = error.message().trim().replace('\n', "; ");
    let tree = match toml::from_str::<Spanned<Node>>(text) {
        Ok(tree) => tree,
        // The text itself is not valid TOML: there are no keys to name, only a place.
        Err(_) => {
            return ConfigError {
                path: String::new(),
                message,
                hint: None,
                location,
            };
        }
    };
    let path = error
        .span()
        .map(|span| path_at(&tree, &span))
        .unwrap_or_default();
    let mut out = reword(path, &message);
    // Keep the position too: a path with no key (the document root) says little.
    out.location = location;
    if out.path.is_empty() && out.location.is_none() {
        out.location = Some(Location { line: 1, column: 1 });
    }
    out
}

/// Turns serde's phrasing into the config reference's: keys, not fields.
fn reword(path: String, message: &str) -> ConfigError {
    let quoted = backticked(message);
    if message.starts_with("unknown field ") {
        let field = quoted.first().cloned().unwrap_or_default();
        let expected: Vec<&str> = quoted.iter().skip(1).map(String::as_str).collect();
        let mut hint = String::new();
        if let Some(near) = closest(&field, expected.iter().copied()) {
            hint.push_str(&format!("did you mean \"{near}\"? "));
        }
        if expected.is_empty() {
            hint.push_str("this table takes no keys");
        } else {
            hint.push_str(&format!("expected one of: {}", expected.join(", ")));
        }
        return ConfigError::new(path, format!("unknown key \"{field}\"")).with_hint(hint);
    }
    if message.starts_with("missing field ") {
        let field = quoted.first().cloned().unwrap_or_default();
        let path = if path.is_empty() {
            field
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::new(path, "required key is missing");
    }
    if message.starts_with("unknown variant ") {
        let value = quoted.first().cloned().unwrap_or_default();
        let expected: Vec<&str> = quoted.iter().skip(1).map(String::as_str).collect();
        return ConfigError::new(path, format!("unknown value \"{value}\""))
            .with_hint(format!("expected one of: {}", expected.join(", ")));
    }
    ConfigError::new(path, message)
}

/// The pieces of a serde message quoted in backticks, in order.
fn backticked(message: &str) -> Vec<String> {
    message
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn location_of(text: &str, offset: usize) -> Location {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Location { line, column }
}

/// A TOML document reduced to its shape and spans.
#[derive(Debug)]
enum Node {
    Leaf,
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// The path of the deepest key or value whose span holds `span`. Tables are
/// searched through even when their own span does not hold it, because the
/// span of a `[[listener]]` entry ends before its `[[listener.route]]` children.
fn path_at(root: &Spanned<Node>, span: &Range<usize>) -> String {
    let mut best: (usize, String) = (0, String::new());
    search(root, span, String::new(), 0, &mut best);
    best.1
}

fn search(
    node: &Spanned<Node>,
    span: &Range<usize>,
    path: String,
    depth: usize,
    best: &mut (usize, String),
) {
    // A key whose span is exactly the error's (an unknown key) beats any value
    // around it: array-of-tables values span their `[[header]]` lines too.
    if best.0 < usize::MAX && depth > best.0 && contains(&node.span(), span) {
        *best = (depth, path.clone());
    }
    match node.get_ref() {
        Node::Leaf => {}
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                search(item, span, format!("{path}[{i}]"), depth + 1, best);
            }
        }
        Node::Table(entries) => {
            for (key, value) in entries {
                let child = if path.is_empty() {
                    key.get_ref().clone()
                } else {
                    format!("{path}.{}", key.get_ref())
                };
                if key.span() == *span {
                    *best = (usize::MAX, child.clone());
                } else if best.0 < usize::MAX && depth + 1 > best.0 && contains(&key.span(), span) {
                    *best = (depth + 1, child.clone());
                }
                search(value, span, child, depth + 1, best);
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse_file(text).unwrap_err()
    }

    #[test]
    fn unknown_key_in_nested_array_of_tables() {
        let e = err(r#"
[[listener]]
name = "a"

[[listener.route]]
cluster = "x"

[[listener.route]]
split = [{ cluster = "a", weight = 1 }, { cluster = "b", wieght = 2 }]
"#);
        assert_eq!(e.path, "listener[0].route[1].split[1].wieght");
        assert_eq!(e.message, "unknown key \"wieght\"");
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean \"weight\"? expected one of: cluster, weight")
        );
        assert_eq!(
            e.location,
            Some(Location {
                line: 9,
                column: 58
            })
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let e = err("[[clusters]]\nname = \"a\"\n");
        assert_eq!(e.path, "clusters");
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean \"cluster\"? expected one of: runtime, listener, cluster, mesh")
        );
    }

    #[test]
    fn wrong_type_names_the_value() {
        let e = err("[[listener]]\nname = \"a\"\n\n[[listener]]\nname = 5\n");
        assert_eq!(e.path, "listener[1].name");
        assert!(e.message.contains("invalid type"), "{e:?}");
    }

    #[test]
    fn unknown_variant() {
        let e = err("[[listener]]\nprotocol = \"udp\"\n");
        assert_eq!(e.path, "listener[0].protocol");
        assert_eq!(e.message, "unknown value \"udp\"");
        assert_eq!(
            e.hint.as_deref(),
            Some("expected one of: tcp, http, https, tls, tls_passthrough")
        );
    }

    #[test]
    fn missing_key_names_the_key() {
        let e = err("[[listener]]\nname = \"a\"\n[[listener.route]]\nsplit = [{ weight = 1 }]\n");
        assert_eq!(e.path, "listener[0].route[0].split[0].cluster");
        assert_eq!(e.message, "required key is missing");
    }

    #[test]
    fn syntax_error_has_a_position_and_no_path() {
        let e = err("[runtime]\nworkers = \n");
        assert_eq!(e.path, "");
        assert_eq!(
            e.location,
            Some(Location {
                line: 2,
                column: 11
            })
        );
    }

    #[test]
    fn endpoint_table_errors_keep_their_path() {
        let e = err("[[cluster]]\nendpoints = [\"1.1.1.1:1\", { addr = \"1.1.1.1:2\", w = 1 }]\n");
        assert_eq!(e.path, "cluster[0].endpoints[1].w");
    }
}
