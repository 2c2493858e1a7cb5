//! Which SPIFFE ID each dataplane gets: `spiffe://TD/ns/default/sa/NODE`, unless
//! the `--identities` file maps its node name to another ID of the trust domain:
//!
//! ```toml
//! [[identity]]
//! node = "web-1"
//! spiffe_id = "spiffe://mesh.example/ns/prod/sa/web"
//! ```
//!
//! Every problem in the file is reported at once, each with its TOML path, like
//! the config file's errors. The file is read at start; changing it needs a
//! restart of the control process.

use crate::spiffe::{check_workload_id, default_id};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    #[serde(default)]
    identity: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    node: String,
    spiffe_id: String,
}

/// Node name → SPIFFE ID, for one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMap {
    trust_domain: String,
    by_node: BTreeMap<String, String>,
}

impl IdentityMap {
    /// No mapping: every node gets its default ID.
    pub fn defaults(trust_domain: &str) -> IdentityMap {
        IdentityMap {
            trust_domain: trust_domain.to_string(),
            by_node: BTreeMap::new(),
        }
    }

    /// Reads the mapping file at `path`; the error lists every problem.
    pub fn load(path: &Path, trust_domain: &str) -> Result<IdentityMap, String> {
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        IdentityMap::parse(&text, &path.display().to_string(), trust_domain)
    }

    /// Parses mapping `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, trust_domain: &str) -> Result<IdentityMap, String> {
        let file: IdentityFile = toml::from_str(text).map_err(|err| {
            let at = err
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(":{line}:{column}")
                })
                .unwrap_or_default();
            format!("{origin}{at}: {}", err.message())
        })?;
        let mut problems = Vec::new();
        let mut by_node = BTreeMap::new();
        for (i, entry) in file.identity.into_iter().enumerate() {
            if entry.node.is_empty() {
                problems.push(format!("{origin}: identity[{i}].node: is empty"));
                continue;
            }
            if let Err(err) = check_workload_id(&entry.spiffe_id, trust_domain) {
                problems.push(format!("{origin}: identity[{i}].spiffe_id: {err}"));
                continue;
            }
            if by_node.contains_key(&entry.node) {
                problems.push(format!(
                    "{origin}: identity[{i}].node: {:?} is mapped twice",
                    entry.node
                ));
                continue;
            }
            by_node.insert(entry.node, entry.spiffe_id);
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(IdentityMap {
            trust_domain: trust_domain.to_string(),
            by_node,
        })
    }

    /// The SPIFFE ID for `node`; `Err` when the node is unmapped and its name
    /// cannot be a path segment.
    pub fn spiffe_id(&self, node: &str) -> Result<String, String> {
        match self.by_node.get(node) {
            Some(id) => Ok(id.clone()),
            None => default_id(&self.trust_domain, node),
        }
    }

    /// How many nodes the file maps.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_default_nodes() {
        let text = r#"
[[identity]]
node = "web-1"
spiffe_id = "spiffe://td/ns/prod/sa/web"

[[identity]]
node = "web-2"
spiffe_id = "spiffe://td/ns/prod/sa/web"
"#;
        let map = IdentityMap::parse(text, "ids.toml", "td").unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(
            map.spiffe_id("web-1").unwrap(),
            "spiffe://td/ns/prod/sa/web"
        );
        assert_eq!(
            map.spiffe_id("db-1").unwrap(),
            "spiffe://td/ns/default/sa/db-1"
        );
        assert!(IdentityMap::parse("", "ids.toml", "td").unwrap().is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
[[identity]]
node = "a"
spiffe_id = "spiffe://other/ns/x"

[[identity]]
node = "b"
spiffe_id = "spiffe://td/ns/ok"

[[identity]]
node = "b"
spiffe_id = "spiffe://td/ns/again"

[[identity]]
node = ""
spiffe_id = "spiffe://td/x"
"#;
        let err = IdentityMap::parse(text, "ids.toml", "td").unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with("ids.toml: identity[0].spiffe_id: "),
            "{err}"
        );
        assert!(lines[0].contains("not this CA's \"td\""), "{err}");
        assert!(lines[1].starts_with("ids.toml: identity[2].node: \"b\" is mapped twice"));
        assert!(lines[2].starts_with("ids.toml: identity[3].node: is empty"));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_say_where() {
        let err = IdentityMap::parse(
            "[[identity]]\nnode = \"a\"\nspiffe = \"x\"\n",
            "ids.toml",
            "td",
        )
        .unwrap_err();
        assert!(err.starts_with("ids.toml:3:1: "), "{err}");
        assert!(err.contains("spiffe"), "{err}");
        let err = IdentityMap::load(Path::new("/nonexistent/ids.toml"), "td").unwrap_err();
        assert!(err.starts_with("/nonexistent/ids.toml: "), "{err}");
    }
}
