//! What a new snapshot would change compared with the running one, by name: the
//! logic behind `ringmesh-control diff`, a pure function over two snapshots.
//!
//! Items are matched by name (routes by listener + route name, endpoints by cluster
//! name + address), never by position, and references to clusters are compared by
//! the cluster's name: adding a cluster in front of others shifts every
//! `ClusterRef` index but changes no route. The generation is ignored.

use ringmesh_api::snapshot::{
    ClusterRef, ClusterSpec, DirectResponse, EndpointSpec, HttpListenerSpec, ListenerKind,
    ListenerSpec, RouteAction, RouteSpec, Snapshot,
};
use std::fmt::{self, Debug, Display};

/// The kind of thing that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Runtime,
    Listener,
    Route,
    Cluster,
    Endpoint,
}

impl Item {
    fn label(self) -> &'static str {
        match self {
            Item::Runtime => "runtime",
            Item::Listener => "listener",
            Item::Route => "route",
            Item::Cluster => "cluster",
            Item::Endpoint => "endpoint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// The fields that differ, each as `name` or `name old -> new`.
    Changed(Vec<String>),
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub item: Item,
    /// `edge`, `edge/health` (route), `blue/127.0.0.1:8081` (endpoint).
    pub name: String,
    pub kind: ChangeKind,
}

impl Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.kind {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Changed(_) => '~',
        };
        write!(f, "{sign} {} {}", self.item.label(), self.name)?;
        if let ChangeKind::Changed(fields) = &self.kind {
            if !fields.is_empty() {
                write!(f, ": {}", fields.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Everything `proposed` changes relative to `running`: runtime, then listeners,
/// routes, clusters and endpoints; within each, in the order they appear.
pub fn diff(running: &Snapshot, proposed: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    let old = Side::new(running);
    let new = Side::new(proposed);

    let mut runtime = Vec::new();
    let (a, b) = (&running.runtime, &proposed.runtime);
    opt_value(&mut runtime, "workers", &a.workers, &b.workers);
    value(
        &mut runtime,
        "drain_timeout_ms",
        &a.drain_timeout_ms,
        &b.drain_timeout_ms,
    );
    opt_value(&mut runtime, "admin", &a.admin, &b.admin);
    if !runtime.is_empty() {
        runtime.push("(takes a dataplane restart)".to_string());
        changes.push(changed(Item::Runtime, "settings".to_string(), runtime));
    }

    let listener_changes = pair_by_name(&running.listeners, &proposed.listeners, |l| &l.name);
    for (name, pair) in &listener_changes {
        let change = match pair {
            Pair::Removed(_) => Some(ChangeKind::Removed),
            Pair::Added(_) => Some(ChangeKind::Added),
            Pair::Both(a, b) => {
                let fields = listener_fields(&old, a, &new, b);
                (!fields.is_empty()).then_some(ChangeKind::Changed(fields))
            }
        };
        push(&mut changes, Item::Listener, name.to_string(), change);
    }

    for (name, pair) in &listener_changes {
        let (before, after) = match pair {
            Pair::Removed(a) => (routes(a), &[][..]),
            Pair::Added(b) => (&[][..], routes(b)),
            Pair::Both(a, b) => (routes(a), routes(b)),
        };
        for (route, pair) in pair_by_name(before, after, |r| &r.name) {
            let change = match pair {
                Pair::Removed(_) => Some(ChangeKind::Removed),
                Pair::Added(_) => Some(ChangeKind::Added),
                Pair::Both(a, b) => {
                    let fields = route_fields(&old, a, &new, b);
                    (!fields.is_empty()).then_some(ChangeKind::Changed(fields))
                }
            };
            push(&mut changes, Item::Route, format!("{name}/{route}"), change);
        }
    }

    let cluster_changes = pair_by_name(&running.clusters, &proposed.clusters, |c| &c.name);
    for (name, pair) in &cluster_changes {
        let change = match pair {
            Pair::Removed(_) => Some(ChangeKind::Removed),
            Pair::Added(_) => Some(ChangeKind::Added),
            Pair::Both(a, b) => {
                let fields = cluster_fields(a, b);
                (!fields.is_empty()).then_some(ChangeKind::Changed(fields))
            }
        };
        push(&mut changes, Item::Cluster, name.to_string(), change);
    }

    for (name, pair) in &cluster_changes {
        let (before, after): (&[EndpointSpec], &[EndpointSpec]) = match pair {
            Pair::Removed(a) => (&a.endpoints, &[]),
            Pair::Added(b) => (&[], &b.endpoints),
            Pair::Both(a, b) => (&a.endpoints, &b.endpoints),
        };
        for (addr, pair) in pair_by_key(before, after, |e| e.addr.to_string()) {
            let change = match pair {
                Pair::Removed(_) => Some(ChangeKind::Removed),
                Pair::Added(_) => Some(ChangeKind::Added),
                Pair::Both(a, b) => {
                    let mut fields = Vec::new();
                    value(&mut fields, "weight", &a.weight, &b.weight);
                    (!fields.is_empty()).then_some(ChangeKind::Changed(fields))
                }
            };
            push(
                &mut changes,
                Item::Endpoint,
                format!("{name}/{addr}"),
                change,
            );
        }
    }
    changes
}

/// One snapshot, for resolving cluster references to names.
struct Side<'a> {
    clusters: &'a [ClusterSpec],
}

impl<'a> Side<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        Side {
            clusters: &snapshot.clusters,
        }
    }

    fn cluster_name(&self, cluster: ClusterRef) -> &'a str {
        usize::try_from(cluster.0)
            .ok()
            .and_then(|index| self.clusters.get(index))
            .map_or("<invalid cluster reference>", |c| c.name.as_str())
    }

    fn action(&self, action: &'a RouteAction) -> ActionView<'a> {
        match action {
            RouteAction::Cluster(cluster) => ActionView::Cluster(self.cluster_name(*cluster)),
            RouteAction::Split(split) => ActionView::Split(
                split
                    .iter()
                    .map(|w| (self.cluster_name(w.cluster), w.weight))
                    .collect(),
            ),
            RouteAction::Direct(direct) => ActionView::Direct(direct),
        }
    }
}

/// A route action with cluster references replaced by names.
#[derive(PartialEq)]
enum ActionView<'a> {
    Cluster(&'a str),
    Split(Vec<(&'a str, u32)>),
    Direct(&'a DirectResponse),
}

impl Display for ActionView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionView::Cluster(name) => write!(f, "cluster {name}"),
            ActionView::Split(split) => {
                let parts: Vec<String> = split.iter().map(|(n, w)| format!("{n}={w}")).collect();
                write!(f, "split {}", parts.join(","))
            }
            ActionView::Direct(direct) => {
                // Enough of the body to tell two answers apart, on one line.
                let mut body: String = direct.body.chars().take(24).collect();
                if body.len() < direct.body.len() {
                    body.push('…');
                }
                write!(f, "direct {} {body:?}", direct.status)?;
                if direct.content_type != "text/plain" {
                    write!(f, " ({})", direct.content_type)?;
                }
                Ok(())
            }
        }
    }
}

fn routes(listener: &ListenerSpec) -> &[RouteSpec] {
    match &listener.kind {
        ListenerKind::Http(http) => &http.routes,
        ListenerKind::Tcp(_) => &[],
    }
}

fn listener_fields(old: &Side, a: &ListenerSpec, new: &Side, b: &ListenerSpec) -> Vec<String> {
    let mut fields = Vec::new();
    value(&mut fields, "bind", &a.bind, &b.bind);
    value(
        &mut fields,
        "max_connections",
        &a.max_connections,
        &b.max_connections,
    );
    match (&a.kind, &b.kind) {
        (ListenerKind::Tcp(x), ListenerKind::Tcp(y)) => {
            value(
                &mut fields,
                "cluster",
                &old.cluster_name(x.cluster),
                &new.cluster_name(y.cluster),
            );
            value(
                &mut fields,
                "idle_timeout_ms",
                &x.idle_timeout_ms,
                &y.idle_timeout_ms,
            );
            value(&mut fields, "splice", &x.splice, &y.splice);
        }
        (ListenerKind::Http(x), ListenerKind::Http(y)) => http_fields(&mut fields, x, y),
        (ListenerKind::Tcp(_), ListenerKind::Http(_)) => fields.push("protocol tcp -> http".into()),
        (ListenerKind::Http(_), ListenerKind::Tcp(_)) => fields.push("protocol http -> tcp".into()),
    }
    fields
}

fn http_fields(fields: &mut Vec<String>, x: &HttpListenerSpec, y: &HttpListenerSpec) {
    let (l, m) = (&x.limits, &y.limits);
    value(
        fields,
        "max_request_line",
        &l.max_request_line,
        &m.max_request_line,
    );
    value(
        fields,
        "max_header_bytes",
        &l.max_header_bytes,
        &m.max_header_bytes,
    );
    value(fields, "max_headers", &l.max_headers, &m.max_headers);
    value(
        fields,
        "header_read_timeout_ms",
        &l.header_read_timeout_ms,
        &m.header_read_timeout_ms,
    );
    value(
        fields,
        "idle_timeout_ms",
        &l.idle_timeout_ms,
        &m.idle_timeout_ms,
    );
    value(
        fields,
        "max_body_bytes",
        &l.max_body_bytes,
        &m.max_body_bytes,
    );
    named(fields, "forwarding headers", &x.forwarding, &y.forwarding);
    // First match wins, so the order of the routes that both sides have matters.
    let kept = |from: &[RouteSpec], other: &[RouteSpec]| -> Vec<String> {
        from.iter()
            .filter(|r| other.iter().any(|o| o.name == r.name))
            .map(|r| r.name.clone())
            .collect()
    };
    if kept(&x.routes, &y.routes) != kept(&y.routes, &x.routes) {
        fields.push("route order".to_string());
    }
}

fn route_fields(old: &Side, a: &RouteSpec, new: &Side, b: &RouteSpec) -> Vec<String> {
    let mut fields = Vec::new();
    named(&mut fields, "match", &a.matcher, &b.matcher);
    value(
        &mut fields,
        "action",
        &old.action(&a.action),
        &new.action(&b.action),
    );
    opt_value(&mut fields, "timeout_ms", &a.timeout_ms, &b.timeout_ms);
    opt_value(
        &mut fields,
        "max_body_bytes",
        &a.max_body_bytes,
        &b.max_body_bytes,
    );
    named(
        &mut fields,
        "request_headers",
        &a.request_headers,
        &b.request_headers,
    );
    named(
        &mut fields,
        "response_headers",
        &a.response_headers,
        &b.response_headers,
    );
    fields
}

fn cluster_fields(a: &ClusterSpec, b: &ClusterSpec) -> Vec<String> {
    let mut fields = Vec::new();
    debug_value(&mut fields, "balance", &a.balance, &b.balance);
    value(
        &mut fields,
        "connect_timeout_ms",
        &a.connect_timeout_ms,
        &b.connect_timeout_ms,
    );
    value(
        &mut fields,
        "max_idle_per_endpoint",
        &a.pool.max_idle_per_endpoint,
        &b.pool.max_idle_per_endpoint,
    );
    value(
        &mut fields,
        "pool_idle_timeout_ms",
        &a.pool.idle_timeout_ms,
        &b.pool.idle_timeout_ms,
    );
    // Endpoint order decides round-robin order; additions and removals are listed
    // separately, so only report a pure reordering here.
    let order = |from: &[EndpointSpec], other: &[EndpointSpec]| -> Vec<String> {
        from.iter()
            .filter(|e| other.iter().any(|o| o.addr == e.addr))
            .map(|e| e.addr.to_string())
            .collect()
    };
    if order(&a.endpoints, &b.endpoints) != order(&b.endpoints, &a.endpoints) {
        fields.push("endpoint order".to_string());
    }
    fields
}

enum Pair<'a, T> {
    Removed(&'a T),
    Added(&'a T),
    Both(&'a T, &'a T),
}

fn pair_by_name<'a, T>(
    before: &'a [T],
    after: &'a [T],
    name: impl Fn(&T) -> &String,
) -> Vec<(String, Pair<'a, T>)> {
    pair_by_key(before, after, |item| name(item).clone())
}

/// Pairs items by key: removed and kept ones in `before`'s order, then added ones
/// in `after`'s order. With duplicate keys the first of each side is used.
fn pair_by_key<'a, T>(
    before: &'a [T],
    after: &'a [T],
    key: impl Fn(&T) -> String,
) -> Vec<(String, Pair<'a, T>)> {
    let after_keys: Vec<String> = after.iter().map(&key).collect();
    let before_keys: Vec<String> = before.iter().map(&key).collect();
    let mut pairs = Vec::new();
    for (i, item) in before.iter().enumerate() {
        let k = &before_keys[i];
        if before_keys[..i].contains(k) {
            continue;
        }
        match after_keys.iter().position(|other| other == k) {
            Some(j) => pairs.push((k.clone(), Pair::Both(item, &after[j]))),
            None => pairs.push((k.clone(), Pair::Removed(item))),
        }
    }
    for (j, item) in after.iter().enumerate() {
        let k = &after_keys[j];
        if !before_keys.contains(k) && !after_keys[..j].contains(k) {
            pairs.push((k.clone(), Pair::Added(item)));
        }
    }
    pairs
}

fn changed(item: Item, name: String, fields: Vec<String>) -> Change {
    Change {
        item,
        name,
        kind: ChangeKind::Changed(fields),
    }
}

fn push(changes: &mut Vec<Change>, item: Item, name: String, kind: Option<ChangeKind>) {
    if let Some(kind) = kind {
        changes.push(Change { item, name, kind });
    }
}

fn value<T: PartialEq + Display>(fields: &mut Vec<String>, name: &str, a: &T, b: &T) {
    if a != b {
        fields.push(format!("{name} {a} -> {b}"));
    }
}

fn debug_value<T: PartialEq + Debug>(fields: &mut Vec<String>, name: &str, a: &T, b: &T) {
    if a != b {
        fields.push(format!("{name} {a:?} -> {b:?}"));
    }
}

fn opt_value<T: PartialEq + Display>(
    fields: &mut Vec<String>,
    name: &str,
    a: &Option<T>,
    b: &Option<T>,
) {
    let show = |v: &Option<T>| {
        v.as_ref()
            .map_or_else(|| "none".to_string(), |v| v.to_string())
    };
    if a != b {
        fields.push(format!("{name} {} -> {}", show(a), show(b)));
    }
}

fn named<T: PartialEq>(fields: &mut Vec<String>, name: &str, a: &T, b: &T) {
    if a != b {
        fields.push(name.to_string());
    }
}

#[cfg(test)]
mod tests;
