//! Compilation: the documented example, defaults, and stable ids.

use crate::ids::{cluster_id, endpoint_id};
use crate::snapshot::*;

/// The TOML example in docs/config.md, so the reference cannot drift from the code.
fn docs_example() -> String {
    let doc = include_str!("../../../../docs/config.md");
    let start = doc
        .find("```toml\n")
        .map(|i| i + "```toml\n".len())
        .unwrap_or(0);
    let end = doc[start..]
        .find("```")
        .map(|i| start + i)
        .unwrap_or(doc.len());
    doc[start..end].to_string()
}

fn compile(text: &str, generation: u64) -> Snapshot {
    match crate::compile_str(text, "t.toml", generation) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn docs_example_compiles() {
    let s = compile(&docs_example(), 3);
    assert_eq!(s.generation, 3);
    assert_eq!(s.runtime.workers, Some(2));
    assert_eq!(s.runtime.admin, Some("127.0.0.1:9901".parse().unwrap()));
    let names: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "api-v1", "api-v2", "postgres"]);
    assert_eq!(s.clusters[1].balance, Balance::P2cEwma);
    assert_eq!(s.clusters[0].endpoints[1].weight, 2);

    let ListenerKind::Http(edge) = &s.listeners[0].kind else {
        panic!("edge is http")
    };
    let routes: Vec<&str> = edge.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(routes, ["health", "api", "route2"]);
    assert_eq!(
        edge.routes[0].matcher.path,
        Some(PathMatch::Exact("/healthz".into()))
    );
    assert_eq!(
        edge.routes[1].action,
        RouteAction::Split(vec![
            WeightedCluster {
                cluster: ClusterRef(1),
                weight: 90
            },
            WeightedCluster {
                cluster: ClusterRef(2),
                weight: 10
            },
        ])
    );
    assert_eq!(
        edge.routes[1].matcher.host,
        Some(HostMatch::Suffix(".example.com".into()))
    );
    assert_eq!(edge.routes[1].timeout_ms, Some(5_000));
    assert_eq!(
        edge.routes[1].request_headers.set,
        [("x-route".to_string(), "api".to_string())]
    );
    assert_eq!(edge.routes[2].action, RouteAction::Cluster(ClusterRef(0)));

    let ListenerKind::Tcp(db) = &s.listeners[1].kind else {
        panic!("db is tcp")
    };
    assert_eq!(db.cluster, ClusterRef(3));
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = compile(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
[[listener.route]]
cluster = "c"

[[listener]]
name = "db"
bind = "127.0.0.1:5433"
protocol = "tcp"
cluster = "c"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:1"]
"#,
        1,
    );
    assert_eq!(
        s.runtime,
        RuntimeSettings {
            workers: None,
            drain_timeout_ms: 10_000,
            admin: None
        }
    );
    assert_eq!(s.listeners[0].max_connections, 10_000);
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("http")
    };
    assert_eq!(
        h.limits,
        HttpLimits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_body_bytes: 100 * 1024 * 1024,
        }
    );
    assert_eq!(
        h.forwarding,
        ForwardHeaders {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            via: Some("ringmesh".into()),
            request_id: true,
        }
    );
    let r = &h.routes[0];
    assert_eq!(r.name, "route0");
    assert_eq!((r.timeout_ms, r.max_body_bytes), (None, None));
    assert_eq!(r.matcher, RouteMatch::default());
    assert_eq!(r.request_headers, HeaderOps::default());

    let ListenerKind::Tcp(t) = &s.listeners[1].kind else {
        panic!("tcp")
    };
    assert_eq!((t.idle_timeout_ms, t.splice), (3_600_000, false));

    let c = &s.clusters[0];
    assert_eq!(c.balance, Balance::RoundRobin);
    assert_eq!(c.connect_timeout_ms, 1_000);
    assert_eq!(
        c.pool,
        PoolSpec {
            max_idle_per_endpoint: 64,
            idle_timeout_ms: 30_000
        }
    );
    assert_eq!(c.endpoints[0].weight, 1);
}

#[test]
fn explicit_values_override_defaults() {
    let s = compile(
        r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"
idle_timeout = "500us"
via = false
x_forwarded_for = false
[[listener.route]]
direct = { status = 200 }
max_body = "1kB"
"#,
        1,
    );
    let ListenerKind::Http(h) = &s.listeners[0].kind else {
        panic!("http")
    };
    assert_eq!(h.limits.idle_timeout_ms, 1);
    assert_eq!(h.forwarding.via, None);
    assert!(!h.forwarding.x_forwarded_for);
    assert_eq!(h.routes[0].max_body_bytes, Some(1_000));
}

#[test]
fn stable_ids_are_fixed_across_builds() {
    let s = compile(&docs_example(), 1);
    let web = &s.clusters[0];
    assert_eq!(web.id, cluster_id("web"));
    assert_eq!(web.id, StableId(0x5ea0_e119_4872_1ef1));
    assert_eq!(web.endpoints[0].id, endpoint_id("web", "127.0.0.1:9000"));
    assert_eq!(web.endpoints[0].id, StableId(0x26b9_e269_cb36_4513));
    assert_ne!(s.clusters[0].id, s.clusters[1].id);
    assert_ne!(web.endpoints[0].id, web.endpoints[1].id);
    // A new generation of the same file keeps every id.
    let again = compile(&docs_example(), 2);
    assert_eq!(again.clusters, s.clusters);
}

#[test]
fn no_input_panics() {
    // Every prefix of the example and the example without each line: a cheap sweep
    // over half-written files, which are what a user saves while editing.
    let text = docs_example();
    for end in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
        let _ = crate::compile_str(&text[..end], "t.toml", 1);
    }
    let lines: Vec<&str> = text.lines().collect();
    for skip in 0..lines.len() {
        let mut without = lines.clone();
        without.remove(skip);
        let _ = crate::compile_str(&without.join("\n"), "t.toml", 1);
    }
    for odd in [
        "\u{feff}",
        "\0",
        "[[listener]]\n[[listener.route]]\n[[listener.route.x]]",
        "a.b.c.d = 1",
    ] {
        let _ = crate::compile_str(odd, "t.toml", 1);
    }
}
