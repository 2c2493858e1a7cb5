//! Carrying a worker's cluster and endpoint runtimes from one table to the next,
//! in proportion to what changed: a cluster the new table shares unchanged (same
//! compiled `Arc`, same index) keeps its runtime whole; a changed one is rebuilt
//! with endpoint state (pool, EWMA, in-flight) carried by stable id; endpoints
//! that left every cluster lose their idle connections and are forgotten.

use super::{ClusterRuntime, EndpointRuntime};
use crate::table::ClusterTable;
use ringmesh_api::snapshot::{EndpointSpec, StableId};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

/// How to make what cannot be carried over.
pub struct Makers<P, E, B> {
    /// Called once with every endpoint id about to be created (to prepare shared
    /// state for all of them in one step).
    pub prepare: P,
    pub endpoint: E,
    /// (table index, compiled cluster, its endpoints, the same cluster's previous runtime)
    pub cluster: B,
}

/// The runtimes for `clusters` (aligned with it) and how many were rebuilt.
/// `endpoints` holds every endpoint of `old` on entry and of the result on return.
pub fn carry<P, E, B>(
    old: &[Rc<ClusterRuntime>],
    clusters: &[Arc<ClusterTable>],
    endpoints: &mut HashMap<StableId, Rc<EndpointRuntime>>,
    makers: Makers<P, E, B>,
) -> (Vec<Rc<ClusterRuntime>>, usize)
where
    P: FnOnce(&[StableId]),
    E: FnMut(&EndpointSpec) -> EndpointRuntime,
    B: FnMut(
        usize,
        &Arc<ClusterTable>,
        Vec<Rc<EndpointRuntime>>,
        Option<&ClusterRuntime>,
    ) -> ClusterRuntime,
{
    let Makers {
        prepare,
        endpoint: mut make_endpoint,
        cluster: mut make_cluster,
    } = makers;
    // Which old runtime each new cluster keeps whole, if any.
    let kept: Vec<Option<usize>> = clusters
        .iter()
        .enumerate()
        .map(|(index, cluster)| {
            old.get(index)
                .filter(|runtime| runtime.fits(cluster, index))
                .map(|_| index)
        })
        .collect();
    let mut carried_whole = vec![false; old.len()];
    for &index in kept.iter().flatten() {
        if let Some(flag) = carried_whole.get_mut(index) {
            *flag = true;
        }
    }
    let fresh: Vec<StableId> = clusters
        .iter()
        .zip(&kept)
        .filter(|(_, kept)| kept.is_none())
        .flat_map(|(cluster, _)| cluster.endpoints.iter())
        .filter(|spec| endpoints.get(&spec.id).is_none_or(|e| e.addr != spec.addr))
        .map(|spec| spec.id)
        .collect();
    prepare(&fresh);
    // Previous runtimes of changed clusters by id, only built when one changed.
    let mut by_id: Option<HashMap<StableId, &Rc<ClusterRuntime>>> = None;
    let mut present: HashSet<StableId> = HashSet::new();
    let mut rebuilt = 0;
    let mut result = Vec::with_capacity(clusters.len());
    for (index, (cluster, kept)) in clusters.iter().zip(&kept).enumerate() {
        if let Some(runtime) = kept.and_then(|i| old.get(i)) {
            result.push(Rc::clone(runtime));
            continue;
        }
        rebuilt += 1;
        let members: Vec<Rc<EndpointRuntime>> = cluster
            .endpoints
            .iter()
            .map(|spec| {
                present.insert(spec.id);
                match endpoints.get(&spec.id) {
                    Some(existing) if existing.addr == spec.addr => existing.clone(),
                    _ => {
                        let created = Rc::new(make_endpoint(spec));
                        if let Some(displaced) = endpoints.insert(spec.id, created.clone()) {
                            displaced.idle.clear();
                        }
                        created
                    }
                }
            })
            .collect();
        let previous = by_id
            .get_or_insert_with(|| old.iter().map(|c| (c.id, c)).collect())
            .get(&cluster.id)
            .map(|c| c.as_ref());
        result.push(Rc::new(make_cluster(index, cluster, members, previous)));
    }
    // Endpoints of old clusters not kept whole may have left every cluster.
    let mut gone: Vec<StableId> = old
        .iter()
        .zip(&carried_whole)
        .filter(|(_, whole)| !**whole)
        .flat_map(|(runtime, _)| runtime.endpoints.iter().map(|e| e.id))
        .filter(|id| !present.contains(id))
        .collect();
    if !gone.is_empty() {
        // The same id in a cluster kept whole keeps the endpoint (rare: only when
        // two clusters list one endpoint id), so look there only now.
        let in_kept: HashSet<StableId> = result
            .iter()
            .zip(&kept)
            .filter(|(_, kept)| kept.is_some())
            .flat_map(|(runtime, _)| runtime.endpoints.iter().map(|e| e.id))
            .collect();
        gone.retain(|id| !in_kept.contains(id));
    }
    for id in gone {
        // In-flight requests still hold it until they finish; idle connections go now.
        if let Some(endpoint) = endpoints.remove(&id) {
            endpoint.idle.clear();
        }
    }
    (result, rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ClusterStats;
    use crate::table::Table;
    use std::sync::atomic::AtomicBool;

    /// Cluster a (two endpoints), b (its second endpoint on `b_port`), c if `with_c`.
    fn table(b_port: u16, with_c: bool, previous: Option<&Table>) -> Table {
        let mut text = String::from(
            "[[cluster]]\nname = \"a\"\nbalance = \"maglev\"\nhash_key = { header = \"x-u\" }\n\
             endpoints = [\"127.0.0.1:10\", \"127.0.0.1:11\"]\n",
        );
        text.push_str(&format!(
            "[[cluster]]\nname = \"b\"\nendpoints = [\"127.0.0.1:20\", \"127.0.0.1:{b_port}\"]\n"
        ));
        if with_c {
            text.push_str("[[cluster]]\nname = \"c\"\nendpoints = [\"127.0.0.1:30\"]\n");
        }
        let snapshot = ringmesh_api::compile_str(&text, "t.toml", 1).unwrap();
        Table::build_reusing(&snapshot, previous).unwrap()
    }

    fn run(
        old: &[Rc<ClusterRuntime>],
        table: &Table,
        endpoints: &mut HashMap<StableId, Rc<EndpointRuntime>>,
    ) -> (Vec<Rc<ClusterRuntime>>, usize, Vec<StableId>) {
        let mut prepared = Vec::new();
        let (runtimes, rebuilt) = carry(
            old,
            &table.clusters,
            endpoints,
            Makers {
                prepare: |ids: &[StableId]| prepared.extend_from_slice(ids),
                endpoint: |spec: &EndpointSpec| {
                    EndpointRuntime::new(spec.id, spec.addr, Arc::new(AtomicBool::new(true)))
                },
                cluster: |index: usize,
                          cluster: &Arc<ClusterTable>,
                          members: Vec<Rc<EndpointRuntime>>,
                          previous: Option<&ClusterRuntime>| {
                    let stats = Arc::new(ClusterStats::default());
                    ClusterRuntime::new(index, cluster, members, stats, previous, 2)
                },
            },
        );
        (runtimes, rebuilt, prepared)
    }

    #[test]
    fn unchanged_clusters_are_kept_whole_and_changed_ones_carry_endpoints() {
        let first = table(21, true, None);
        let mut endpoints = HashMap::new();
        let (old, rebuilt, prepared) = run(&[], &first, &mut endpoints);
        assert_eq!((rebuilt, prepared.len(), endpoints.len()), (3, 5, 5));

        // Nothing changed: every runtime is the same, nothing is created.
        let same = table(21, true, Some(&first));
        let (again, rebuilt, prepared) = run(&old, &same, &mut endpoints);
        assert_eq!((rebuilt, prepared.len()), (0, 0));
        assert!(again.iter().zip(&old).all(|(a, b)| Rc::ptr_eq(a, b)));

        // b moves one endpoint and c goes away.
        let next = table(22, false, Some(&same));
        let (new, rebuilt, prepared) = run(&again, &next, &mut endpoints);
        assert_eq!((rebuilt, prepared.len()), (1, 1));
        assert!(Rc::ptr_eq(&new[0], &old[0]));
        assert!(!Rc::ptr_eq(&new[1], &old[1]));
        assert!(Rc::ptr_eq(&new[1].endpoints[0], &old[1].endpoints[0]));
        assert_eq!(new[1].endpoints[1].addr.port(), 22);
        // a's two, b's two: c's endpoint and b's old second one are forgotten.
        assert_eq!(endpoints.len(), 4);
        assert!(!endpoints.contains_key(&old[2].endpoints[0].id));
        assert!(!endpoints.contains_key(&old[1].endpoints[1].id));
        assert!(new
            .iter()
            .flat_map(|c| &c.endpoints)
            .all(|e| endpoints.get(&e.id).is_some_and(|kept| Rc::ptr_eq(kept, e))));
    }

    #[test]
    fn a_shifted_cluster_is_rebuilt_carrying_its_state() {
        let first = table(21, true, None);
        let mut endpoints = HashMap::new();
        let (old, _, _) = run(&[], &first, &mut endpoints);
        // c moves to index 0 in a table without a: same spec, other index.
        let text = "[[cluster]]\nname = \"c\"\nendpoints = [\"127.0.0.1:30\"]\n\
                    [[cluster]]\nname = \"b\"\nendpoints = [\"127.0.0.1:20\", \"127.0.0.1:21\"]\n";
        let snapshot = ringmesh_api::compile_str(text, "t.toml", 2).unwrap();
        let next = Table::build_reusing(&snapshot, Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&next.clusters[0], &first.clusters[2]));
        let (new, rebuilt, prepared) = run(&old, &next, &mut endpoints);
        assert_eq!((rebuilt, prepared.len()), (1, 0));
        assert_eq!(new[0].table_index, 0);
        assert!(Rc::ptr_eq(&new[1], &old[1]));
        assert!(Rc::ptr_eq(&new[0].endpoints[0], &old[2].endpoints[0]));
        assert_eq!(endpoints.len(), 3);
    }
}
