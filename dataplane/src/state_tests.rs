//! Table adoption across generations, and request-id formatting.

use super::*;

#[test]
fn adoption_keeps_unchanged_clusters_and_carries_endpoints_by_id() {
    let (registry, _scraper) = crate::metrics::registry();
    let shared = Arc::new(Shared::new(
        Table::build(&snapshot_of(1, 21, true)).unwrap(),
        1,
        registry,
    ));
    let worker = Worker::new(
        0,
        DriverKind::Epoll,
        shared.clone(),
        crate::access_log::WorkerLog::new(None),
    );
    let first = worker.table();
    assert_eq!(first.clusters.len(), 3);
    // b changes one endpoint and c goes away; a is untouched.
    let next = Table::build_reusing(&snapshot_of(2, 22, false), Some(&shared.current())).unwrap();
    assert!(Arc::ptr_eq(&next.clusters[0], &first.table.clusters[0]));
    assert!(!Arc::ptr_eq(&next.clusters[1], &first.table.clusters[1]));
    shared.publish(next);
    let second = worker.table();
    assert_eq!(shared.adopted_by_all(), shared.epoch());
    assert_eq!(second.clusters.len(), 2);
    assert!(Rc::ptr_eq(&second.clusters[0], &first.clusters[0]));
    assert!(!Rc::ptr_eq(&second.clusters[1], &first.clusters[1]));
    // b's kept endpoint is the same runtime (pool, EWMA); the moved one is new.
    let (old_b, new_b) = (&first.clusters[1], &second.clusters[1]);
    assert!(Rc::ptr_eq(&old_b.endpoints[0], &new_b.endpoints[0]));
    assert_ne!(new_b.endpoints[1].addr, old_b.endpoints[1].addr);
    // In-flight work keeps the table it started with.
    assert_eq!(first.clusters.len(), 3);
    assert_eq!(worker.endpoints.borrow().len(), 4);
}

/// a (Maglev), b with its second endpoint on `b_port`, and c if `with_c`.
fn snapshot_of(generation: u64, b_port: u16, with_c: bool) -> ringmesh_api::Snapshot {
    let c = if with_c {
        "[[cluster]]\nname = \"c\"\nendpoints = [\"127.0.0.1:30\"]\n"
    } else {
        ""
    };
    let text = format!(
        "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n\
         [[listener.route]]\nname = \"r{generation}\"\npath_prefix = \"/\"\ncluster = \"a\"\n\
         [[cluster]]\nname = \"a\"\nbalance = \"maglev\"\nhash_key = {{ header = \"x-u\" }}\n\
         endpoints = [\"127.0.0.1:10\", \"127.0.0.1:11\"]\n\
         [[cluster]]\nname = \"b\"\nendpoints = [\"127.0.0.1:20\", \"127.0.0.1:{b_port}\"]\n{c}"
    );
    ringmesh_api::compile_str(&text, "t.toml", generation).unwrap()
}

#[test]
fn hex_is_fixed_width() {
    let mut out = [0u8; 16];
    write_hex(&mut out, 0xab);
    assert_eq!(&out, b"00000000000000ab");
}
