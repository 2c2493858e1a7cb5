//! Unit tests of `diff`: real configs compiled by `ringmesh-api`, compared by name.

use super::*;
use ringmesh_api::compile_str;

const BASE: &str = r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:18080"
protocol = "http"

[[listener.route]]
name = "health"
path = "/healthz"
direct = { status = 200, body = "ok" }

[[listener.route]]
name = "shop"
path_prefix = "/"
cluster = "blue"

[[cluster]]
name = "blue"
endpoints = ["127.0.0.1:18081", "127.0.0.1:18082"]
"#;

fn compile(text: &str, generation: u64) -> Snapshot {
    compile_str(text, "mesh.toml", generation).unwrap()
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(ToString::to_string).collect()
}

#[test]
fn same_config_different_generation_is_no_change() {
    assert!(diff(&compile(BASE, 1), &compile(BASE, 9)).is_empty());
}

#[test]
fn additions_removals_and_changes_by_name() {
    let proposed = BASE
        .replace("127.0.0.1:18082\"]", "127.0.0.1:18083\"]\nconnect_timeout = \"3s\"")
        .replace("name = \"health\"\npath = \"/healthz\"", "name = \"ready\"\npath = \"/ready\"")
        .replace("bind = \"127.0.0.1:18080\"", "bind = \"127.0.0.1:18090\"")
        + "\n[[listener]]\nname = \"db\"\nbind = \"127.0.0.1:15432\"\nprotocol = \"tcp\"\ncluster = \"blue\"\n";
    let changes = diff(&compile(BASE, 1), &compile(&proposed, 2));
    assert_eq!(
        lines(&changes),
        vec![
            "~ listener edge: bind 127.0.0.1:18080 -> 127.0.0.1:18090",
            "+ listener db",
            "- route edge/health",
            "+ route edge/ready",
            "~ cluster blue: connect_timeout_ms 1000 -> 3000",
            "- endpoint blue/127.0.0.1:18082",
            "+ endpoint blue/127.0.0.1:18083",
        ],
        "{changes:#?}"
    );
}

#[test]
fn inserting_a_cluster_first_does_not_change_routes_that_name_others() {
    let proposed = BASE.replacen(
        "[[cluster]]",
        "[[cluster]]\nname = \"aaa\"\nendpoints = [\"127.0.0.1:1\"]\n\n[[cluster]]",
        1,
    );
    let changes = diff(&compile(BASE, 1), &compile(&proposed, 2));
    assert_eq!(
        lines(&changes),
        vec!["+ cluster aaa", "+ endpoint aaa/127.0.0.1:1"]
    );
}

#[test]
fn route_action_and_order_and_weights() {
    let running =
        BASE.to_string() + "\n[[cluster]]\nname = \"green\"\nendpoints = [\"127.0.0.1:18084\"]\n";
    let proposed = running
        .replace(
            "cluster = \"blue\"\n",
            "cluster = \"green\"\ntimeout = \"2s\"\n",
        )
        .replace(
            "\"127.0.0.1:18084\"",
            "{ addr = \"127.0.0.1:18084\", weight = 5 }",
        );
    let changes = diff(&compile(&running, 1), &compile(&proposed, 2));
    assert_eq!(
        lines(&changes),
        vec![
            "~ route edge/shop: action cluster blue -> cluster green, timeout_ms none -> 2000",
            "~ endpoint green/127.0.0.1:18084: weight 1 -> 5",
        ]
    );

    // Swap the two routes: both still exist, but the first match changes.
    let swapped = r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:18080"
protocol = "http"

[[listener.route]]
name = "shop"
path_prefix = "/"
cluster = "blue"

[[listener.route]]
name = "health"
path = "/healthz"
direct = { status = 200, body = "ok" }

[[cluster]]
name = "blue"
endpoints = ["127.0.0.1:18081", "127.0.0.1:18082"]
"#;
    let changes = diff(&compile(BASE, 1), &compile(swapped, 2));
    assert_eq!(lines(&changes), vec!["~ listener edge: route order"]);
}

#[test]
fn a_changed_direct_body_is_visible() {
    let proposed = BASE.replace("body = \"ok\"", "body = \"still ok\"");
    let changes = diff(&compile(BASE, 1), &compile(&proposed, 2));
    assert_eq!(
        lines(&changes),
        vec!["~ route edge/health: action direct 200 \"ok\" -> direct 200 \"still ok\""]
    );
}

#[test]
fn removing_a_listener_lists_its_routes_and_runtime_changes_say_restart() {
    let proposed = "[runtime]\nworkers = 3\n\n[[cluster]]\nname = \"blue\"\nendpoints = [\"127.0.0.1:18081\", \"127.0.0.1:18082\"]\n";
    let changes = diff(&compile(BASE, 1), &compile(proposed, 2));
    assert_eq!(
        lines(&changes),
        vec![
            "~ runtime settings: workers none -> 3, (takes a dataplane restart)",
            "- listener edge",
            "- route edge/health",
            "- route edge/shop",
        ]
    );
}
