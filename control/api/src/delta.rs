//! What changed between two snapshots, item by item: the routes, listeners and
//! clusters that differ by position, so a reload that edits one route sends one
//! route instead of a table of 10,000 (protocol 1.3).
//!
//! A delta is computed against the snapshot last *sent* to a dataplane and
//! applied to the snapshot last *received* by it, which are the same snapshot as
//! long as frames arrive in order on one connection. A delta that does not fit
//! the snapshot it is applied to (wrong base generation, an index past the end)
//! is refused whole, and the dataplane reconnects to get a complete snapshot.
//!
//! Items are compared by position, not by name: clusters are referred to by index
//! (`ClusterRef`), so a cluster inserted in the middle shifts every later one and
//! the delta carries them all. That is correct, only larger; the common edits
//! (change, append, remove at the end) stay small.

use crate::snapshot::{
    ClusterSpec, HttpListenerSpec, ListenerKind, ListenerSpec, MeshSpec, RouteSpec,
    RuntimeSettings, Snapshot,
};
use serde::{Deserialize, Serialize};

/// The changes that turn the snapshot of generation `base` into `generation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDelta {
    pub base: u64,
    pub generation: u64,
    /// The new runtime settings, when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "MeshChange::is_same")]
    pub mesh: MeshChange,
    /// Number of listeners in the new snapshot.
    pub listener_count: u32,
    /// In ascending index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerChange>,
    /// Number of clusters in the new snapshot.
    pub cluster_count: u32,
    /// In ascending index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<Indexed<ClusterSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeshChange {
    #[default]
    Same,
    Set(Option<MeshSpec>),
}

impl MeshChange {
    fn is_same(&self) -> bool {
        matches!(self, MeshChange::Same)
    }
}

/// An item at a position of the new snapshot's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indexed<T> {
    pub index: u32,
    pub item: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerChange {
    /// A new listener, or one whose settings (not only its routes) changed.
    Whole(Indexed<Box<ListenerSpec>>),
    /// An HTTP listener whose settings are the same: only some routes changed.
    Routes {
        index: u32,
        /// Number of routes the listener has now.
        route_count: u32,
        /// In ascending index order.
        routes: Vec<Indexed<RouteSpec>>,
    },
}

impl SnapshotDelta {
    /// The changes from `old` to `new`. `None` when a list is too long to index
    /// with `u32` (no real table is).
    pub fn between(old: &Snapshot, new: &Snapshot) -> Option<SnapshotDelta> {
        let mut listeners = Vec::new();
        for (index, listener) in new.listeners.iter().enumerate() {
            let index = u32::try_from(index).ok()?;
            let routes_only = match old.listeners.get(index as usize) {
                Some(was) if was == listener => continue,
                Some(was) => route_changes(was, listener)?,
                None => None,
            };
            listeners.push(match routes_only {
                Some((route_count, routes)) => ListenerChange::Routes {
                    index,
                    route_count,
                    routes,
                },
                None => ListenerChange::Whole(Indexed {
                    index,
                    item: Box::new(listener.clone()),
                }),
            });
        }
        Some(SnapshotDelta {
            base: old.generation,
            generation: new.generation,
            runtime: (old.runtime != new.runtime).then(|| new.runtime.clone()),
            mesh: if old.mesh == new.mesh {
                MeshChange::Same
            } else {
                MeshChange::Set(new.mesh.clone())
            },
            listener_count: u32::try_from(new.listeners.len()).ok()?,
            listeners,
            cluster_count: u32::try_from(new.clusters.len()).ok()?,
            clusters: changed(&old.clusters, &new.clusters)?,
        })
    }

    /// True when the new snapshot is `base` (the snapshot the delta was computed
    /// from) with another generation.
    pub fn changes_nothing_in(&self, base: &Snapshot) -> bool {
        self.runtime.is_none()
            && self.mesh.is_same()
            && self.listeners.is_empty()
            && self.clusters.is_empty()
            && self.listener_count as usize == base.listeners.len()
            && self.cluster_count as usize == base.clusters.len()
    }

    /// Number of routes, listeners and clusters the delta carries (for logs).
    pub fn items(&self) -> usize {
        self.clusters.len()
            + self
                .listeners
                .iter()
                .map(|change| match change {
                    ListenerChange::Whole(_) => 1,
                    ListenerChange::Routes { routes, .. } => routes.len(),
                })
                .sum::<usize>()
    }

    /// Turns `snapshot` (which must be generation `base`) into the new snapshot.
    /// On an error `snapshot` may be half changed: the caller drops it.
    pub fn apply(self, snapshot: &mut Snapshot) -> Result<(), String> {
        if snapshot.generation != self.base {
            return Err(format!(
                "delta for generation {} applies to {}, but the last snapshot received is {}",
                self.generation, self.base, snapshot.generation
            ));
        }
        if self.generation <= self.base {
            return Err(format!(
                "delta goes from generation {} back to {}",
                self.base, self.generation
            ));
        }
        let mut listeners = Vec::new();
        let mut route_patches = Vec::new();
        for change in self.listeners {
            match change {
                ListenerChange::Whole(Indexed { index, item }) => {
                    listeners.push(Indexed { index, item: *item })
                }
                ListenerChange::Routes {
                    index,
                    route_count,
                    routes,
                } => route_patches.push((index, route_count, routes)),
            }
        }
        patch(
            &mut snapshot.listeners,
            self.listener_count,
            listeners,
            "listener",
        )?;
        for (index, route_count, routes) in route_patches {
            let Some(listener) = snapshot.listeners.get_mut(index as usize) else {
                return Err(format!(
                    "route changes for listener {index}, which does not exist"
                ));
            };
            let ListenerKind::Http(http) = &mut listener.kind else {
                return Err(format!(
                    "route changes for listener {index}, which is not HTTP"
                ));
            };
            patch(&mut http.routes, route_count, routes, "route")?;
        }
        patch(
            &mut snapshot.clusters,
            self.cluster_count,
            self.clusters,
            "cluster",
        )?;
        if let Some(runtime) = self.runtime {
            snapshot.runtime = runtime;
        }
        if let MeshChange::Set(mesh) = self.mesh {
            snapshot.mesh = mesh;
        }
        snapshot.generation = self.generation;
        Ok(())
    }
}

/// The routes of `new` that differ from `old`'s, when the two listeners differ in
/// nothing else; `Ok(None)` when the whole listener must be sent.
#[allow(clippy::type_complexity)]
fn route_changes(
    old: &ListenerSpec,
    new: &ListenerSpec,
) -> Option<Option<(u32, Vec<Indexed<RouteSpec>>)>> {
    let (ListenerKind::Http(old_http), ListenerKind::Http(new_http)) = (&old.kind, &new.kind)
    else {
        return Some(None);
    };
    let HttpListenerSpec {
        limits,
        forwarding,
        routes: _,
    } = new_http;
    // Every field but the routes (here and in `HttpListenerSpec` above), named so
    // that a field added later cannot be left out of the comparison.
    let ListenerSpec {
        name,
        bind,
        max_connections,
        kind: _,
        rate_limit,
        tls,
        mesh,
        identity_header,
        policies,
    } = new;
    let same_settings = old.name == *name
        && old.bind == *bind
        && old.max_connections == *max_connections
        && old.rate_limit == *rate_limit
        && old.tls == *tls
        && old.mesh == *mesh
        && old.identity_header == *identity_header
        && old.policies == *policies
        && old_http.limits == *limits
        && old_http.forwarding == *forwarding;
    if !same_settings {
        return Some(None);
    }
    let routes = changed(&old_http.routes, &new_http.routes)?;
    // Past half the routes, the whole listener is no larger and simpler.
    if routes.len() * 2 > new_http.routes.len() {
        return Some(None);
    }
    Some(Some((u32::try_from(new_http.routes.len()).ok()?, routes)))
}

/// The items of `new` that differ from `old`'s at the same position, or are past
/// its end.
fn changed<T: PartialEq + Clone>(old: &[T], new: &[T]) -> Option<Vec<Indexed<T>>> {
    let mut changes = Vec::new();
    for (index, item) in new.iter().enumerate() {
        if old.get(index) != Some(item) {
            changes.push(Indexed {
                index: u32::try_from(index).ok()?,
                item: item.clone(),
            });
        }
    }
    Some(changes)
}

/// Makes `items` `count` long with `changes` in place: indices ascending, each
/// either within the kept items (replaced) or the next one past the end (added).
fn patch<T>(
    items: &mut Vec<T>,
    count: u32,
    changes: Vec<Indexed<T>>,
    what: &str,
) -> Result<(), String> {
    let count = count as usize;
    items.truncate(count);
    let mut last = None;
    for Indexed { index, item } in changes {
        let index = index as usize;
        if last.is_some_and(|last| index <= last) {
            return Err(format!("{what} changes out of order at index {index}"));
        }
        last = Some(index);
        if index >= count {
            return Err(format!("{what} {index} is past the new count {count}"));
        }
        let len = items.len();
        if index == len {
            items.push(item);
        } else if let Some(slot) = items.get_mut(index) {
            *slot = item;
        } else {
            return Err(format!("{what} {index} is added after {len} existing ones"));
        }
    }
    if items.len() != count {
        return Err(format!(
            "{} {what}s after the changes, the delta says {count}",
            items.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
