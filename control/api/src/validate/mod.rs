//! File types → validated config. Every check runs even after one fails, so a user
//! sees all the problems in a file at once, each with its TOML path and a hint.
//!
//! Checks of one table live with that table (`listener`, `route`, `cluster`, and
//! `resilience` for the retry, rate limit, fault and endpoint-health tables);
//! this module owns the checks across tables: unique names, overlapping bind
//! addresses, and resolving cluster names.

mod at;
mod cluster;
mod http;
mod listener;
mod resilience;
mod route;
mod scalar;
mod security;

use crate::error::{ConfigError, Errors};
use crate::file::{ConfigFile, RuntimeFile};
use crate::snapshot::ClusterRef;
use crate::suggest::closest;
use crate::validated::{ValidConfig, ValidRuntime};
use at::At;
pub use resilience::RETRY_CONDITIONS;
use scalar::{duration_ms, int_in, socket_addr, AddrUse};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

const MAX_WORKERS: i64 = 1024;

/// Validates a parsed file. On failure, returns every error found, in file order
/// within each section (runtime, listeners, clusters).
pub fn validate(file: &ConfigFile) -> Result<ValidConfig, Vec<ConfigError>> {
    let mut errors = Errors::default();
    let runtime = runtime(&mut errors, file.runtime.as_ref());
    let clusters = ClusterNames::new(file);

    let mut listeners = Vec::new();
    let listener_at = At::Path("listener");
    for (i, l) in file.listener.iter().enumerate() {
        if let Some(l) = listener::listener(&mut errors, listener_at.index(i), l, &clusters) {
            listeners.push(l);
        }
    }
    unique_listener_names(&mut errors, file);
    let binds = overlapping_binds(&mut errors, file);
    if let Some(admin) = runtime.admin {
        if let Some((j, other)) = binds.iter().find(|(_, b)| overlaps(admin, *b)) {
            errors.add_hint(
                "runtime.admin",
                format!("admin address {admin} overlaps listener[{j}] at {other}"),
                "give the admin endpoint its own port",
            );
        }
    }

    let mut valid_clusters = Vec::with_capacity(file.cluster.len());
    let cluster_at = At::Path("cluster");
    for (i, c) in file.cluster.iter().enumerate() {
        let at = cluster_at.index(i);
        if let Some(name) = &c.name {
            if let Some(first) = clusters.first_index(name).filter(|first| *first != i) {
                errors.add_hint(
                    at.key("name"),
                    format!("duplicate cluster name \"{name}\""),
                    format!("first defined at cluster[{first}]"),
                );
            }
        }
        if let Some(c) = cluster::cluster(&mut errors, at, c) {
            valid_clusters.push(c);
        }
    }

    let mesh = security::mesh(&mut errors, file.mesh.as_ref());
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(ValidConfig {
        runtime,
        listeners,
        clusters: valid_clusters,
        mesh,
    })
}

fn runtime(errors: &mut Errors, file: Option<&RuntimeFile>) -> ValidRuntime {
    let Some(file) = file else {
        return ValidRuntime::default();
    };
    ValidRuntime {
        workers: file
            .workers
            .and_then(|n| int_in(errors, At::Path("runtime.workers"), n, 1, MAX_WORKERS)),
        drain_timeout_ms: file
            .drain_timeout
            .as_ref()
            .and_then(|d| duration_ms(errors, At::Path("runtime.drain_timeout"), d, true)),
        admin: file
            .admin
            .as_ref()
            .and_then(|a| socket_addr(errors, At::Path("runtime.admin"), a, AddrUse::Bind)),
    }
}

fn unique_listener_names(errors: &mut Errors, file: &ConfigFile) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, l) in file.listener.iter().enumerate() {
        let Some(name) = l.name.as_deref() else {
            continue;
        };
        if let Some(first) = seen.get(name) {
            errors.add_hint(
                format!("listener[{i}].name"),
                format!("duplicate listener name \"{name}\""),
                format!("first defined at listener[{first}]"),
            );
        } else {
            seen.insert(name, i);
        }
    }
}

/// Reports listeners whose bind addresses would take the same connections. Every
/// worker binds each listener with `SO_REUSEPORT`, so a clash would not fail at
/// bind time: the kernel would silently share connections between the listeners.
/// Returns the parseable bind addresses with their listener index.
fn overlapping_binds(errors: &mut Errors, file: &ConfigFile) -> Vec<(usize, SocketAddr)> {
    let mut binds: Vec<(usize, SocketAddr)> = Vec::new();
    for (i, l) in file.listener.iter().enumerate() {
        let Some(addr) = l.bind.as_deref().and_then(|b| b.parse::<SocketAddr>().ok()) else {
            continue;
        };
        if let Some((j, other)) = binds.iter().find(|(_, b)| overlaps(addr, *b)) {
            let message = if *other == addr {
                format!("bind address {addr} is already used by listener[{j}]")
            } else {
                format!("bind address {addr} overlaps listener[{j}] at {other}")
            };
            errors.add_hint(
                format!("listener[{i}].bind"),
                message,
                "each listener needs its own port",
            );
        }
        binds.push((i, addr));
    }
    binds
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    // Port 0 asks the kernel for a free port, which never clashes.
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    match (a.ip(), b.ip()) {
        (x, y) if x == y => true,
        (IpAddr::V4(x), IpAddr::V4(y)) => x.is_unspecified() || y.is_unspecified(),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.is_unspecified() || y.is_unspecified(),
        // `[::]` is dual-stack by default and takes IPv4 connections too.
        (IpAddr::V6(x), IpAddr::V4(_)) => x.is_unspecified(),
        (IpAddr::V4(_), IpAddr::V6(y)) => y.is_unspecified(),
    }
}

/// Cluster names in file order, for resolving references to `ClusterRef`s. With
/// duplicate names, references go to the first (the duplicate is an error anyway).
pub(crate) struct ClusterNames<'a> {
    by_name: foldhash::HashMap<&'a str, usize>,
    names: Vec<&'a str>,
}

impl<'a> ClusterNames<'a> {
    fn new(file: &'a ConfigFile) -> Self {
        let mut by_name =
            foldhash::HashMap::with_capacity_and_hasher(file.cluster.len(), Default::default());
        let mut names = Vec::with_capacity(file.cluster.len());
        for (i, c) in file.cluster.iter().enumerate() {
            if let Some(name) = c.name.as_deref() {
                by_name.entry(name).or_insert(i);
                names.push(name);
            }
        }
        ClusterNames { by_name, names }
    }

    fn first_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn resolve(
        &self,
        errors: &mut Errors,
        at: At<'_>,
        name: &str,
    ) -> Option<ClusterRef> {
        if let Some(i) = self.first_index(name) {
            return u32::try_from(i).ok().map(ClusterRef);
        }
        let message = format!("no cluster named \"{name}\"");
        match closest(name, self.names.iter().copied()) {
            Some(near) => errors.add_hint(at, message, format!("did you mean \"{near}\"?")),
            None if self.names.is_empty() => {
                errors.add_hint(at, message, "no clusters are defined; add a [[cluster]]")
            }
            None => errors.add(at, message),
        }
        None
    }
}

#[cfg(test)]
mod resilience_tests;
#[cfg(test)]
mod tests;
