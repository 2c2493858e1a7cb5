//! Tests of the TLS, mesh and authorization keys: what compiles, and the TOML
//! paths and hints of what does not.

use crate::compile_str;
use crate::snapshot::{AuthzAction, ListenerKind, MeshMode};

fn errors(text: &str) -> Vec<(String, String)> {
    match compile_str(text, "t.toml", 1) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errs) => errs
            .errors
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect(),
    }
}

const CLUSTERS: &str = "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n[[cluster]]\nname = \"b\"\nendpoints = [\"127.0.0.1:2\"]\n";

#[test]
fn full_tls_config_compiles() {
    let text = format!(
        r#"
[mesh]
trust_domain = "example.org"
cert = "svid.pem"
key = "svid.key"
bundle = "bundle.pem"

[[listener]]
name = "edge"
bind = "127.0.0.1:8443"
protocol = "https"
tls = {{ certificates = [{{ cert = "a.pem", key = "a.key", sni = ["A.example.com", "*.example.com"] }}] }}
[[listener.route]]
cluster = "a"
[[listener.route.policy]]
name = "get-only"
action = "allow"
methods = ["GET"]
paths = ["/public/*"]

[[listener]]
name = "pass"
bind = "127.0.0.1:9443"
protocol = "tls_passthrough"
cluster = "a"
sni_routes = [{{ sni = "b.example.com", cluster = "b" }}]

[[listener]]
name = "in"
bind = "127.0.0.1:15006"
protocol = "http"
mesh = "permissive"
identity_header = "X-Peer-Identity"
[[listener.policy]]
action = "deny"
peers = ["spiffe://example.org/ns/*/sa/evil", "spiffe://example.org/legacy/**"]
[[listener.route]]
cluster = "b"

{CLUSTERS}
[[cluster.tls]]
"#
    );
    // `[[cluster.tls]]` is not a table array: drop it and add tls inline instead.
    let text = text.replace(
        "[[cluster.tls]]\n",
        "tls = { mesh = true, spiffe_id = \"spiffe://example.org/ns/p/sa/b\" }\n",
    );
    let snapshot = compile_str(&text, "t.toml", 1).unwrap();
    let mesh = snapshot.mesh.as_ref().unwrap();
    assert_eq!(mesh.trust_domain, "example.org");
    let edge = &snapshot.listeners[0];
    let tls = edge.tls.as_ref().unwrap();
    assert_eq!(tls.alpn, ["http/1.1"]);
    assert_eq!(tls.certificates[0].sni, ["a.example.com", "*.example.com"]);
    let ListenerKind::Http(http) = &edge.kind else {
        panic!()
    };
    assert_eq!(http.routes[0].policies[0].action, AuthzAction::Allow);
    let ListenerKind::Tcp(pass) = &snapshot.listeners[1].kind else {
        panic!()
    };
    assert!(pass.passthrough);
    assert_eq!(pass.sni_routes[0].cluster.0, 1);
    let inbound = &snapshot.listeners[2];
    assert_eq!(inbound.mesh, Some(MeshMode::Permissive));
    assert_eq!(inbound.identity_header.as_deref(), Some("x-peer-identity"));
    assert_eq!(inbound.policies[0].name, "policy0");
    assert!(snapshot.clusters[1].tls.as_ref().unwrap().mesh);
}

#[test]
fn tls_mistakes_have_paths() {
    let text = format!(
        r#"
[mesh]
cert = "svid.pem"

[[listener]]
name = "edge"
bind = "127.0.0.1:8443"
protocol = "https"
tls = {{ certificates = [{{ cert = "", key = "a.key", sni = ["bad name"] }}], alpn = ["spdy"] }}
[[listener.route]]
cluster = "a"
[[listener.route.policy]]
action = "maybe"
peers = ["http://x"]
paths = ["no-slash"]

[[listener]]
name = "plain"
bind = "127.0.0.1:8080"
protocol = "tcp"
cluster = "a"
tls = {{ certificates = [] }}
sni_routes = [{{ sni = "x.example.com", cluster = "a" }}]
[[listener.policy]]
action = "allow"
paths = ["/x"]

{CLUSTERS}
tls = {{ client_cert = "c.pem" }}
"#
    );
    let found = errors(&text);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "listener[0].tls.certificates[0].cert",
        "listener[0].tls.certificates[0].sni[0]",
        "listener[0].tls.alpn[0]",
        "listener[0].route[0].policy[0].action",
        "listener[0].route[0].policy[0].peers[0]",
        "listener[0].route[0].policy[0].paths[0]",
        "listener[1].tls",
        "listener[1].sni_routes",
        "listener[1].policy[0].paths",
        "cluster[1].tls.ca",
        "cluster[1].tls.server_name",
        "cluster[1].tls.client_key",
        "mesh.trust_domain",
        "mesh.key",
        "mesh.bundle",
    ] {
        assert!(paths.contains(&want), "missing {want} in {found:#?}");
    }
}

#[test]
fn peer_policies_need_a_mesh_listener() {
    let text = format!(
        "[[listener]]\nname = \"x\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n[[listener.policy]]\naction = \"allow\"\npeers = [\"spiffe://td/a\"]\n[[listener.route]]\ncluster = \"a\"\n{CLUSTERS}"
    );
    let found = errors(&text);
    assert!(
        found.iter().any(|(p, _)| p == "listener[0].policy"),
        "{found:?}"
    );
}
