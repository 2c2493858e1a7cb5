use super::*;
use crate::compile_str;

const BASE: &str = r#"
[runtime]
workers = 2

[[listener]]
name = "edge"
bind = "127.0.0.1:8080"
protocol = "http"

[[listener.route]]
path_prefix = "/a/"
cluster = "a"

[[listener.route]]
path_prefix = "/b/"
cluster = "b"

[[listener.route]]
path_prefix = "/c/"
cluster = "c"

[[listener.route]]
path_prefix = "/"
cluster = "a"

[[listener]]
name = "db"
bind = "127.0.0.1:5432"
protocol = "tcp"
cluster = "c"

[[cluster]]
name = "a"
endpoints = ["127.0.0.1:9001"]

[[cluster]]
name = "b"
endpoints = ["127.0.0.1:9002"]

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:9003"]
"#;

fn snapshot(text: &str, generation: u64) -> Snapshot {
    compile_str(text, "mesh.toml", generation).unwrap()
}

/// Applies the delta from BASE to `edited` and checks the result is `edited`'s
/// snapshot; returns the delta for further checks.
fn round_trip(edited: &str) -> SnapshotDelta {
    let old = snapshot(BASE, 1);
    let new = snapshot(edited, 2);
    let delta = SnapshotDelta::between(&old, &new).unwrap();
    // Through the wire, as a dataplane gets it.
    let frame = crate::wire::encode_delta_binary(&delta).unwrap();
    let Some((crate::wire::Message::SnapshotDelta { delta: sent }, _)) =
        crate::wire::decode(&frame).unwrap()
    else {
        panic!("not decoded as a delta");
    };
    assert_eq!(*sent, delta);
    let mut applied = old.clone();
    sent.apply(&mut applied).unwrap();
    assert_eq!(applied, new, "delta {delta:?}");
    delta
}

#[test]
fn an_identical_table_changes_nothing() {
    let old = snapshot(BASE, 1);
    let delta = SnapshotDelta::between(&old, &snapshot(BASE, 2)).unwrap();
    assert!(delta.changes_nothing_in(&old));
    assert_eq!(delta.items(), 0);
}

#[test]
fn one_edited_route_sends_one_route() {
    let delta = round_trip(&BASE.replace("\"/b/\"", "\"/bee/\""));
    assert_eq!(delta.items(), 1);
    assert!(matches!(
        &delta.listeners[..],
        [ListenerChange::Routes { index: 0, route_count: 4, routes }] if routes[0].index == 1
    ));
    assert!(delta.clusters.is_empty() && delta.runtime.is_none());
}

#[test]
fn routes_added_and_removed_at_the_end() {
    let added = BASE.replace(
        "[[listener]]\nname = \"db\"",
        "[[listener.route]]\npath_prefix = \"/z/\"\ncluster = \"b\"\n\n[[listener]]\nname = \"db\"",
    );
    assert_eq!(round_trip(&added).items(), 1);
    let removed = BASE.replace(
        "[[listener.route]]\npath_prefix = \"/\"\ncluster = \"a\"\n",
        "",
    );
    let delta = round_trip(&removed);
    assert!(matches!(
        &delta.listeners[..],
        [ListenerChange::Routes { route_count: 3, routes, .. }] if routes.is_empty()
    ));
    assert!(!delta.changes_nothing_in(&snapshot(BASE, 1)));
}

#[test]
fn a_changed_listener_setting_sends_the_whole_listener() {
    let delta = round_trip(&BASE.replace("127.0.0.1:8080", "127.0.0.1:8081"));
    assert!(matches!(&delta.listeners[..], [ListenerChange::Whole(l)] if l.index == 0));
    // A TCP listener has no routes: any change sends it whole.
    let delta = round_trip(&BASE.replace(
        "cluster = \"c\"\n\n[[cluster]]",
        "cluster = \"b\"\n\n[[cluster]]",
    ));
    assert!(matches!(&delta.listeners[..], [ListenerChange::Whole(l)] if l.index == 1));
}

#[test]
fn listeners_added_and_removed() {
    let added = format!(
        "{BASE}\n[[listener]]\nname = \"other\"\nbind = \"127.0.0.1:8090\"\nprotocol = \"tcp\"\ncluster = \"a\"\n"
    );
    assert_eq!(round_trip(&added).items(), 1);
    let removed = BASE.replace(
        "[[listener]]\nname = \"db\"\nbind = \"127.0.0.1:5432\"\nprotocol = \"tcp\"\ncluster = \"c\"\n",
        "",
    );
    let delta = round_trip(&removed);
    assert_eq!((delta.listener_count, delta.items()), (1, 0));
    assert!(!delta.changes_nothing_in(&snapshot(BASE, 1)));
}

#[test]
fn clusters_edited_added_removed_and_inserted() {
    assert_eq!(
        round_trip(&BASE.replace("127.0.0.1:9002", "127.0.0.1:9012")).items(),
        1
    );
    let added = format!("{BASE}\n[[cluster]]\nname = \"d\"\nendpoints = [\"127.0.0.1:9004\"]\n");
    assert_eq!(round_trip(&added).items(), 1);
    // Inserted first: every cluster index shifts, so routes referring to them change too.
    let inserted = BASE.replacen(
        "[[cluster]]",
        "[[cluster]]\nname = \"d\"\nendpoints = [\"127.0.0.1:9004\"]\n\n[[cluster]]",
        1,
    );
    round_trip(&inserted);
}

#[test]
fn runtime_and_mesh_changes() {
    let delta = round_trip(&BASE.replace("workers = 2", "workers = 3"));
    assert!(delta.runtime.is_some() && delta.items() == 0);
    let delta = round_trip(&format!("[mesh]\ntrust_domain = \"example.org\"\n{BASE}"));
    assert!(matches!(delta.mesh, MeshChange::Set(Some(_))));
}

#[test]
fn many_changed_routes_send_the_listener_whole() {
    let edited = BASE
        .replace("\"/a/\"", "\"/aa/\"")
        .replace("\"/b/\"", "\"/bb/\"")
        .replace("\"/c/\"", "\"/cc/\"");
    let delta = round_trip(&edited);
    assert!(matches!(&delta.listeners[..], [ListenerChange::Whole(_)]));
}

fn edited_delta() -> (Snapshot, SnapshotDelta) {
    let old = snapshot(BASE, 1);
    let new = snapshot(&BASE.replace("\"/b/\"", "\"/bee/\""), 2);
    let delta = SnapshotDelta::between(&old, &new).unwrap();
    (old, delta)
}

#[test]
fn a_delta_for_another_base_is_refused() {
    let (mut old, mut delta) = edited_delta();
    old.generation = 7;
    let err = delta.clone().apply(&mut old).unwrap_err();
    assert!(err.contains("applies to 1"), "{err}");
    old.generation = 1;
    delta.generation = 1;
    assert!(delta.apply(&mut old).unwrap_err().contains("back to"));
}

#[test]
fn malformed_deltas_are_refused() {
    let (old, delta) = edited_delta();
    let refused = |edit: &dyn Fn(&mut SnapshotDelta)| {
        let mut delta = delta.clone();
        edit(&mut delta);
        delta.apply(&mut old.clone()).unwrap_err()
    };
    let route = |d: &mut SnapshotDelta| match &mut d.listeners[0] {
        ListenerChange::Routes { routes, .. } => routes[0].clone(),
        ListenerChange::Whole(_) => unreachable!(),
    };
    // A route past the listener's new count.
    let err = refused(&|d| {
        if let ListenerChange::Routes { routes, .. } = &mut d.listeners[0] {
            routes[0].index = 9;
        }
    });
    assert!(err.contains("past the new count"), "{err}");
    // Route changes addressed to the TCP listener.
    let err = refused(&|d| {
        if let ListenerChange::Routes { index, .. } = &mut d.listeners[0] {
            *index = 1;
        }
    });
    assert!(err.contains("not HTTP"), "{err}");
    let err = refused(&|d| {
        if let ListenerChange::Routes { index, .. } = &mut d.listeners[0] {
            *index = 5;
        }
    });
    assert!(err.contains("does not exist"), "{err}");
    // Two changes of one route, and a count that the changes cannot fill.
    let err = refused(&|d| {
        let again = route(d);
        if let ListenerChange::Routes { routes, .. } = &mut d.listeners[0] {
            routes.push(again);
        }
    });
    assert!(err.contains("out of order"), "{err}");
    let err = refused(&|d| {
        if let ListenerChange::Routes { route_count, .. } = &mut d.listeners[0] {
            *route_count = 6;
        }
    });
    assert!(err.contains("after the changes"), "{err}");
    // A cluster added with a gap before it.
    let err = refused(&|d| {
        d.cluster_count = 5;
        d.clusters.push(Indexed {
            index: 4,
            item: old.clusters[0].clone(),
        });
    });
    assert!(err.contains("added after 3"), "{err}");
}
