//! The section cache must give exactly what parsing the whole text gives, cold
//! and warm, for ordinary files and for every layout that has to fall back.

use super::*;

/// Parses `text` through a cold cache and then a warm one (primed with `prime`),
/// and checks both against the whole-text parse. Returns whether the warm parse
/// was assembled from sections.
fn check(prime: &str, text: &str) -> bool {
    let whole = crate::parse::parse_file(text).map(|f| format!("{f:?}"));
    let mut cold = SectionCache::default();
    let (cold_result, _) = outcome(&mut cold, text);
    assert_eq!(cold_result, whole, "cold parse differs for:\n{text}");
    let mut warm = SectionCache::default();
    let _ = outcome(&mut warm, prime);
    let (warm_result, assembled) = outcome(&mut warm, text);
    assert_eq!(warm_result, whole, "warm parse differs for:\n{text}");
    assembled
}

fn outcome(cache: &mut SectionCache, text: &str) -> (Result<String, ConfigError>, bool) {
    match cache.parse(text) {
        Ok((file, layout)) => {
            let shown = format!("{file:?}");
            let assembled = layout.is_some();
            if let Some(layout) = layout {
                cache.keep(text, &layout, file);
            }
            (Ok(shown), assembled)
        }
        Err(err) => (Err(err), false),
    }
}

const FULL: &str = r#"# ringmesh
[runtime]
workers = 2
admin = "127.0.0.1:9901"

[mesh]
trust_domain = "example.org"

[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
[[listener.policy]]
name = "p"
action = "allow"

[[listener.route]]
name = "a"
path_prefix = "/a"
cluster = "a"
[listener.route.retry]
attempts = 2
[[listener.route.policy]]
name = "q"
action = "deny"

[[cluster]]
name = "a"
endpoints = ["127.0.0.1:1", { addr = "127.0.0.1:2", weight = 3 }]
[cluster.health_check]
protocol = "tcp"

[[listener.route]]
name = "after-a-cluster"
cluster = "a"

[[listener]]
name = "l4"
bind = "127.0.0.1:8081"
protocol = "tcp"
cluster = "a"
"#;

#[test]
fn cuts_at_the_three_headers_only() {
    let kinds: Vec<Kind> = cut(FULL).into_iter().map(|cut| cut.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Root,
            Kind::Listener,
            Kind::Route,
            Kind::Cluster,
            Kind::Route,
            Kind::Listener
        ]
    );
    let ranges = cut(FULL);
    assert_eq!(ranges.last().map(|cut| cut.range.end), Some(FULL.len()));
    assert!(ranges
        .windows(2)
        .all(|w| w[0].range.end == w[1].range.start));
}

#[test]
fn sections_give_the_whole_parse_and_are_reused() {
    assert!(check(FULL, FULL));
    // One route edited: still assembled, and equal to the whole parse.
    let edited = FULL.replace("path_prefix = \"/a\"", "path_prefix = \"/b\"");
    assert!(check(FULL, &edited));
    // CRLF line ends and a file without a final newline.
    assert!(check(FULL, &FULL.replace('\n', "\r\n")));
    assert!(check(FULL, FULL.trim_end()));
    // Only the changed section is parsed again: the others come out of the cache.
    let mut cache = SectionCache::default();
    let _ = outcome(&mut cache, FULL);
    let before = cache.sections.len();
    assert_eq!(before, cut(FULL).len());
    let (file, layout) = cache.parse(&edited).unwrap();
    assert_eq!(
        cache.sections.len(),
        1,
        "all but the edited section were reused"
    );
    cache.keep(&edited, &layout.unwrap(), file);
    assert_eq!(cache.sections.len(), before);
}

#[test]
fn unusual_layouts_fall_back_to_the_whole_parse() {
    let cases = [
        // A route before any listener.
        "[[listener.route]]\nname = \"r\"\ncluster = \"a\"\n",
        // The root already defines the arrays the headers extend.
        "listener = []\n[[listener]]\nname = \"a\"\n",
        "cluster = [{ name = \"x\" }]\n[[cluster]]\nname = \"y\"\n",
        // Routes written inline, then a header appending to them.
        "[[listener]]\nname = \"a\"\nroute = [{ cluster = \"a\" }]\n[[listener.route]]\ncluster = \"b\"\n",
        // A header inside a multi-line string.
        "[[listener]]\nname = \"a\"\n[[listener.route]]\ndirect = { status = 200, body = \"\"\"\n[[cluster]]\n\"\"\" }\n",
        "[[cluster]]\nname = \"a\"\nendpoints = [\n\"127.0.0.1:1\",\n]\n",
        // Headers written differently are not cut points.
        "[[ cluster ]]\nname = \"a\"\n[[cluster]]\nname = \"b\"\n",
        // Another table after an element, which belongs to the root.
        "[[cluster]]\nname = \"a\"\n[runtime]\nworkers = 1\n",
        "[[listener]]\nname = \"a\"\n[[listener.route]]\ncluster = \"a\"\n[listener.tls]\nalpn = []\n",
        // Errors keep their paths and positions.
        "[[cluster]]\nname = \"a\"\nendpoint = []\n",
        "[[listener]]\nname = 5\n",
        "[runtime]\nworkers = \n",
    ];
    for text in cases {
        check(FULL, text);
        check(text, text);
    }
}
