//! Re-parsing a config file that changed a little: the text is cut at its
//! `[[listener]]`, `[[listener.route]]` and `[[cluster]]` header lines, and a
//! section whose text is the same as at the last parse reuses the file type parsed
//! then. Only new or edited sections go through the TOML parser, which costs
//! tens of milliseconds for a table of 10,000 routes.
//!
//! # Why the result is the same as parsing the whole text
//! Each section is parsed on its own as a TOML document and must have exactly the
//! shape its header gives it (one array element, no other keys), checked by the
//! `*Section` types with `deny_unknown_fields`. Inside such a section every key
//! and sub-table header (`[cluster.health_check]`, `[[listener.route.policy]]`)
//! refers to that one element, exactly as in the whole document, and the elements
//! are put back together in file order (a route goes to the last listener before
//! it, as TOML's `[[listener.route]]` does). A cut inside a multi-line string or
//! array leaves the section before it unterminated, so it fails to parse.
//!
//! Anything unusual (a parse error, an unexpected shape, a route before any
//! listener, a root that defines `listener` or `cluster`) makes the caller parse
//! the whole text the ordinary way, which also produces the usual error messages
//! with their paths and positions.

use crate::error::ConfigError;
use crate::file::{ClusterFile, ConfigFile, ListenerFile, MeshFile, RouteFile, RuntimeFile};
use serde::Deserialize;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Everything before the first cut: `[runtime]`, `[mesh]`.
    Root,
    Listener,
    Route,
    Cluster,
}

/// One section's parsed content, as it is kept between parses.
#[derive(Debug)]
enum Section {
    Root(Option<RuntimeFile>, Option<MeshFile>),
    Listener(ListenerFile),
    Route(RouteFile),
    Cluster(ClusterFile),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootSection {
    runtime: Option<RuntimeFile>,
    mesh: Option<MeshFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    listener: Vec<ListenerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    listener: RouteParent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteParent {
    route: Vec<RouteFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    cluster: Vec<ClusterFile>,
}

/// One section of a text: its kind, where it lies, and the hash of its text.
#[derive(Debug)]
struct Cut {
    kind: Kind,
    range: Range<usize>,
    hash: u64,
}

/// Where each section of one text lies, for [`SectionCache::keep`].
#[derive(Debug)]
pub(crate) struct Layout(Vec<Cut>);

/// The sections of the last parsed text, found by the hash of their text and
/// confirmed by comparing the text itself.
#[derive(Debug, Default)]
pub(crate) struct SectionCache {
    /// The text the sections were cut from (one copy rather than one per section).
    text: String,
    /// Hash of a section's text → where it lies in `text`, and its content (boxed:
    /// the entries move around, the file types are large).
    sections: HashMap<u64, (Range<usize>, Box<Section>)>,
}

impl SectionCache {
    /// The file types for `text`, equal to what parsing it whole gives, and its
    /// layout when it was assembled from sections (hand both to `keep` after use).
    pub(crate) fn parse(
        &mut self,
        text: &str,
    ) -> Result<(ConfigFile, Option<Layout>), ConfigError> {
        let layout = Layout(cut(text));
        match self.assemble(text, &layout) {
            Some(file) => Ok((file, Some(layout))),
            None => {
                self.sections.clear();
                crate::parse::parse_file(text).map(|file| (file, None))
            }
        }
    }

    /// Takes the parts of `file` back (it must come from `parse(text)` with this
    /// layout), keyed by their section's text, for the next parse.
    pub(crate) fn keep(&mut self, text: &str, layout: &Layout, file: ConfigFile) {
        let mut sections = HashMap::with_capacity(layout.0.len());
        self.text.clear();
        self.text.push_str(text);
        let mut root = Some((file.runtime, file.mesh));
        let mut listeners = file.listener.into_iter();
        let mut routes = Vec::new().into_iter();
        let mut clusters = file.cluster.into_iter();
        for Cut { kind, range, hash } in &layout.0 {
            let section = match kind {
                Kind::Root => root
                    .take()
                    .map(|(runtime, mesh)| Section::Root(runtime, mesh)),
                Kind::Listener => listeners.next().map(|mut listener| {
                    routes = listener.route.take().unwrap_or_default().into_iter();
                    Section::Listener(listener)
                }),
                Kind::Route => routes.next().map(Section::Route),
                Kind::Cluster => clusters.next().map(Section::Cluster),
            };
            // The layout always matches the file it produced; if it somehow did
            // not, the section is simply parsed again next time. Two sections with
            // one hash keep the last: the other is parsed again, nothing worse.
            if let Some(section) = section {
                sections.insert(*hash, (range.clone(), Box::new(section)));
            }
        }
        self.sections = sections;
    }

    /// The file put together from cached and freshly parsed sections, or `None`
    /// when the text must be parsed whole.
    fn assemble(&mut self, text: &str, layout: &Layout) -> Option<ConfigFile> {
        let mut file = ConfigFile::default();
        // Sized up front: growing vectors of large file types copies them again
        // and again. Routes are counted per listener, in file order.
        let mut routes_of = Vec::new();
        let mut clusters = 0;
        for cut in &layout.0 {
            match cut.kind {
                Kind::Listener => routes_of.push(0),
                Kind::Route => {
                    if let Some(count) = routes_of.last_mut() {
                        *count += 1;
                    }
                }
                Kind::Cluster => clusters += 1,
                Kind::Root => {}
            }
        }
        file.cluster.reserve(clusters);
        let mut routes_of = routes_of.into_iter();
        let mut routes_here = 0;
        for Cut { kind, range, hash } in &layout.0 {
            let body = text.get(range.clone())?;
            let section = match self.sections.remove(hash) {
                Some((was, section))
                    if section.kind() == *kind && self.text.get(was.clone()) == Some(body) =>
                {
                    *section
                }
                _ => parse_section(*kind, body)?,
            };
            match section {
                Section::Root(runtime, mesh) => {
                    file.runtime = runtime;
                    file.mesh = mesh;
                }
                Section::Listener(listener) => {
                    file.listener.push(listener);
                    routes_here = routes_of.next().unwrap_or(0);
                }
                Section::Route(route) => {
                    // TOML appends `[[listener.route]]` to the last listener so far.
                    let listener = file.listener.last_mut()?;
                    listener
                        .route
                        .get_or_insert_with(|| Vec::with_capacity(routes_here))
                        .push(route);
                }
                Section::Cluster(cluster) => file.cluster.push(cluster),
            }
        }
        Some(file)
    }
}

impl Section {
    fn kind(&self) -> Kind {
        match self {
            Section::Root(..) => Kind::Root,
            Section::Listener(_) => Kind::Listener,
            Section::Route(_) => Kind::Route,
            Section::Cluster(_) => Kind::Cluster,
        }
    }
}

/// One section parsed alone, if it has exactly the shape of its kind.
fn parse_section(kind: Kind, body: &str) -> Option<Section> {
    fn one<T>(mut items: Vec<T>) -> Option<T> {
        (items.len() == 1).then(|| items.pop()).flatten()
    }
    let section = match kind {
        Kind::Root => {
            let root: RootSection = toml::from_str(body).ok()?;
            Section::Root(root.runtime, root.mesh)
        }
        Kind::Listener => {
            let listener = one(toml::from_str::<ListenerSection>(body).ok()?.listener)?;
            // Its routes come from the route sections after it; routes written
            // any other way make the whole text go through the parser.
            if listener.route.is_some() {
                return None;
            }
            Section::Listener(listener)
        }
        Kind::Route => Section::Route(one(toml::from_str::<RouteSection>(body)
            .ok()?
            .listener
            .route)?),
        Kind::Cluster => {
            Section::Cluster(one(toml::from_str::<ClusterSection>(body).ok()?.cluster)?)
        }
    };
    Some(section)
}

/// The sections of `text`: the root, then one per recognised header line (the
/// header written exactly so, alone on its line apart from spaces and tabs).
///
/// Only the places where `[[` occurs are looked at (a vectorised substring
/// search), not every line: on a large table, walking all lines was a third of a
/// reload, and `str::match_indices` still a tenth.
/// A header missed or a cut in the wrong place cannot change the result: the
/// sections around it then fail to parse alone and the whole text is parsed.
fn cut(text: &str) -> Vec<Cut> {
    let bytes = text.as_bytes();
    let mut sections = Vec::new();
    let mut current = (Kind::Root, 0);
    for at in memchr::memmem::find_iter(bytes, b"[[") {
        let indent = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let line_start = at - indent;
        if line_start > 0 && bytes[line_start - 1] != b'\n' {
            continue;
        }
        let line_end = bytes[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |end| at + end);
        let kind = match text.get(at..line_end).unwrap_or_default().trim_end() {
            "[[listener]]" => Kind::Listener,
            "[[listener.route]]" => Kind::Route,
            "[[cluster]]" => Kind::Cluster,
            _ => continue,
        };
        sections.push(section(text, current.0, current.1..line_start));
        current = (kind, line_start);
    }
    sections.push(section(text, current.0, current.1..text.len()));
    sections
}

fn section(text: &str, kind: Kind, range: Range<usize>) -> Cut {
    // A fixed seed: the same text always hashes the same. (A hit is confirmed by
    // comparing the text, so the hash only has to be fast.)
    let hash = foldhash::fast::FixedState::with_seed(0x7269_6e67)
        .hash_one(text.get(range.clone()).unwrap_or_default());
    Cut { kind, range, hash }
}

#[cfg(test)]
mod tests;
