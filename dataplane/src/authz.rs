//! Authorization policies, compiled once per table and evaluated per request
//! (HTTP) or per connection (TCP) without allocating.
//!
//! Semantics for one target (a listener, or a route): deny policies first (any
//! match denies); then, if the target has any allow policy, the request must
//! match one of them, else it is denied by default. A target without policies
//! decides nothing. A policy matches when every field it sets matches (any entry
//! of a field may match); a `peers` field never matches a peer without identity.

use crate::tls::spiffe::{SpiffeId, SpiffePattern};
use ringmesh_api::snapshot::{AuthzAction, AuthzPolicy};

/// Name under which a target's default deny is counted and logged.
pub const DEFAULT_DENY: &str = "default_deny";

/// What policies look at.
pub trait AuthzFacts {
    fn peer(&self) -> Option<&SpiffeId>;
    /// `None` on TCP.
    fn method(&self) -> Option<&[u8]>;
    fn path(&self) -> Option<&[u8]>;
    fn header(&self, lower_name: &str) -> Option<&[u8]>;
}

#[derive(Debug)]
enum PathRule {
    Exact(String),
    Prefix(String),
}

#[derive(Debug)]
pub struct Policy {
    pub name: String,
    allow: bool,
    peers: Vec<SpiffePattern>,
    paths: Vec<PathRule>,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
    /// Index of this policy's counters in the worker's policy stats.
    pub slot: usize,
}

/// The policies of one target.
#[derive(Debug, Default)]
pub struct Policies {
    list: Vec<Policy>,
    has_allow: bool,
    /// Counter slot of this target's default deny.
    pub default_slot: usize,
}

/// The outcome for one target: which policy decided (its counter slot and name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// No policy applies to the target.
    None,
    Allow {
        policy: &'a str,
        slot: usize,
    },
    Deny {
        policy: &'a str,
        slot: usize,
    },
}

/// Counter slots: one per (listener, policy name), shared by routes of the
/// listener; built alongside the table.
#[derive(Debug, Default)]
pub struct Slots {
    /// (listener, policy)
    pub names: Vec<(String, String)>,
}

impl Slots {
    pub fn slot(&mut self, listener: &str, policy: &str) -> usize {
        if let Some(at) = self
            .names
            .iter()
            .position(|(l, p)| l == listener && p == policy)
        {
            return at;
        }
        self.names.push((listener.to_string(), policy.to_string()));
        self.names.len() - 1
    }
}

impl Policies {
    pub fn compile(
        specs: &[AuthzPolicy],
        listener: &str,
        slots: &mut Slots,
    ) -> Result<Policies, String> {
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let peers = spec
                .peers
                .iter()
                .map(|p| {
                    SpiffePattern::parse(p)
                        .map_err(|err| format!("policy \"{}\": peer {p:?}: {err}", spec.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let paths = spec
                .paths
                .iter()
                .map(|p| match p.strip_suffix('*') {
                    Some(prefix) => PathRule::Prefix(prefix.to_string()),
                    None => PathRule::Exact(p.clone()),
                })
                .collect();
            list.push(Policy {
                name: spec.name.clone(),
                allow: spec.action == AuthzAction::Allow,
                peers,
                paths,
                methods: spec.methods.clone(),
                headers: spec.headers.clone(),
                slot: slots.slot(listener, &spec.name),
            });
        }
        let default_slot = if list.is_empty() {
            0
        } else {
            slots.slot(listener, DEFAULT_DENY)
        };
        Ok(Policies {
            has_allow: list.iter().any(|p| p.allow),
            list,
            default_slot,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn evaluate(&self, facts: &impl AuthzFacts) -> Decision<'_> {
        if self.list.is_empty() {
            return Decision::None;
        }
        for policy in self.list.iter().filter(|p| !p.allow) {
            if policy.matches(facts) {
                return Decision::Deny {
                    policy: &policy.name,
                    slot: policy.slot,
                };
            }
        }
        for policy in self.list.iter().filter(|p| p.allow) {
            if policy.matches(facts) {
                return Decision::Allow {
                    policy: &policy.name,
                    slot: policy.slot,
                };
            }
        }
        if self.has_allow {
            Decision::Deny {
                policy: DEFAULT_DENY,
                slot: self.default_slot,
            }
        } else {
            Decision::None
        }
    }
}

impl Policy {
    fn matches(&self, facts: &impl AuthzFacts) -> bool {
        let peer_ok = self.peers.is_empty()
            || facts
                .peer()
                .is_some_and(|id| self.peers.iter().any(|p| p.matches(id)));
        let path_ok = self.paths.is_empty()
            || facts.path().is_some_and(|path| {
                self.paths.iter().any(|rule| match rule {
                    PathRule::Exact(exact) => path == exact.as_bytes(),
                    PathRule::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
                })
            });
        let method_ok = self.methods.is_empty()
            || facts
                .method()
                .is_some_and(|m| self.methods.iter().any(|want| want.as_bytes() == m));
        let headers_ok = self.headers.iter().all(|(name, value)| {
            facts
                .header(name)
                .is_some_and(|got| got == value.as_bytes())
        });
        peer_ok && path_ok && method_ok && headers_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req {
        peer: Option<SpiffeId>,
        method: &'static str,
        path: &'static str,
    }

    impl AuthzFacts for Req {
        fn peer(&self) -> Option<&SpiffeId> {
            self.peer.as_ref()
        }
        fn method(&self) -> Option<&[u8]> {
            Some(self.method.as_bytes())
        }
        fn path(&self) -> Option<&[u8]> {
            Some(self.path.as_bytes())
        }
        fn header(&self, _: &str) -> Option<&[u8]> {
            None
        }
    }

    fn policy(name: &str, action: AuthzAction, peers: &[&str], paths: &[&str]) -> AuthzPolicy {
        AuthzPolicy {
            name: name.into(),
            action,
            peers: peers.iter().map(|p| p.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            methods: vec!["GET".into()],
            headers: Vec::new(),
        }
    }

    #[test]
    fn deny_first_then_allow_then_default_deny() {
        let mut slots = Slots::default();
        let specs = [
            policy(
                "a-public",
                AuthzAction::Allow,
                &["spiffe://td/ns/*/sa/a"],
                &["/public/*"],
            ),
            policy("no-secret", AuthzAction::Deny, &[], &["/public/secret"]),
        ];
        let policies = Policies::compile(&specs, "in", &mut slots).unwrap();
        let a = SpiffeId::parse("spiffe://td/ns/prod/sa/a").ok();
        let b = SpiffeId::parse("spiffe://td/ns/prod/sa/b").ok();
        let req = |peer: &Option<SpiffeId>, method, path| Req {
            peer: peer.clone(),
            method,
            path,
        };
        assert!(matches!(
            policies.evaluate(&req(&a, "GET", "/public/x")),
            Decision::Allow {
                policy: "a-public",
                ..
            }
        ));
        assert!(matches!(
            policies.evaluate(&req(&a, "GET", "/public/secret")),
            Decision::Deny {
                policy: "no-secret",
                ..
            }
        ));
        for (peer, method, path) in [
            (&a, "POST", "/public/x"),
            (&b, "GET", "/public/x"),
            (&a, "GET", "/private"),
        ] {
            assert!(matches!(
                policies.evaluate(&req(peer, method, path)),
                Decision::Deny {
                    policy: DEFAULT_DENY,
                    ..
                }
            ));
        }
        assert!(matches!(
            policies.evaluate(&req(&None, "GET", "/public/x")),
            Decision::Deny { .. }
        ));
        assert_eq!(slots.names.len(), 3);
        let empty = Policies::compile(&[], "in", &mut slots).unwrap();
        assert_eq!(empty.evaluate(&req(&a, "GET", "/")), Decision::None);
    }
}
