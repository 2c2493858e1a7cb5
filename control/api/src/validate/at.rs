//! TOML paths built only when an error needs one.
//!
//! Validation visits every key of a table of tens of thousands of routes; writing
//! each key's path into a `String` up front (most are never shown) was most of
//! its cost. An `At` is a chain of borrowed steps on the stack that renders the
//! same text (`listener[0].route[3].split[1].weight`) when it is displayed.

use std::fmt;

/// Where in the file a value sits. `Copy`, and free to build.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    /// A path written out whole, such as `"runtime.workers"`.
    Path(&'a str),
    /// `parent.key`.
    Key(&'a At<'a>, &'a str),
    /// `parent.key`, with `key` quoted unless it is a bare TOML key.
    Quoted(&'a At<'a>, &'a str),
    /// `parent[index]`.
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    pub(crate) fn key(&'a self, key: &'a str) -> At<'a> {
        At::Key(self, key)
    }

    pub(crate) fn quoted(&'a self, key: &'a str) -> At<'a> {
        At::Quoted(self, key)
    }

    pub(crate) fn index(&'a self, index: usize) -> At<'a> {
        At::Index(self, index)
    }

    fn is_empty(&self) -> bool {
        matches!(self, At::Path(""))
    }
}

/// Keys that are not bare TOML keys are written quoted in paths, as in the file.
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parent, key) = match self {
            At::Path(path) => return f.write_str(path),
            At::Index(parent, index) => return write!(f, "{parent}[{index}]"),
            At::Key(parent, key) | At::Quoted(parent, key) => (parent, key),
        };
        if !parent.is_empty() {
            write!(f, "{parent}.")?;
        }
        match self {
            At::Quoted(..) if !is_bare(key) => write!(f, "{key:?}"),
            _ => f.write_str(key),
        }
    }
}

impl fmt::Debug for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "At({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_file() {
        let root = At::Path("listener");
        let listener = root.index(2);
        let route = listener.key("route");
        let route = route.index(0);
        assert_eq!(route.to_string(), "listener[2].route[0]");
        let set = route.key("request_headers");
        let set = set.key("set");
        assert_eq!(
            set.quoted("x-env").to_string(),
            "listener[2].route[0].request_headers.set.x-env"
        );
        assert_eq!(
            set.quoted("X Y").to_string(),
            "listener[2].route[0].request_headers.set.\"X Y\""
        );
        assert_eq!(
            set.quoted("").to_string(),
            "listener[2].route[0].request_headers.set.\"\""
        );
        let top = At::Path("");
        assert_eq!(top.key("mesh").to_string(), "mesh");
        assert_eq!(At::Path("runtime.admin").to_string(), "runtime.admin");
    }
}
