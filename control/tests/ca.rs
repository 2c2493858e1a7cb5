//! The control process as the node's mesh CA, end to end: `ca init`, serving with
//! the CA, a fake dataplane that receives its snapshot then its SVID, checks the
//! SVID against the CA with webpki, and sees it rotated; plus the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, FakeDataplane, Server, TempDir, BIN};
use ringmesh_api::wire::{Message, ProtocolVersion};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::prelude::{FromDer, X509Certificate};

const TD: &str = "mesh.test";

fn ca_init(dir: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ca", "init", "--dir"])
        .arg(dir)
        .args(["--trust-domain", TD])
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|block| block.unwrap().contents)
        .collect()
}

/// An identity message's fields that the checks need.
struct Received {
    spiffe_id: String,
    leaf: Vec<u8>,
    serial: Vec<u8>,
    expires_unix: i64,
}

/// Checks an identity message as a peer would: the chain verifies against the
/// bundle for both TLS directions, the key is the leaf's, the fields agree.
fn check_identity(message: Message, ca_pem: &str) -> Received {
    let Message::Identity {
        spiffe_id,
        chain_pem,
        key_pem,
        bundle_pem,
        trust_domain,
        expires_unix,
    } = message
    else {
        panic!("expected an identity, got {message:?}");
    };
    assert_eq!(trust_domain, TD);
    assert_eq!(ders(&bundle_pem), ders(ca_pem), "the bundle is the CA");
    let chain = ders(&chain_pem);
    assert_eq!(chain.len(), 1, "the CA signs leaves directly");
    let leaf_der = CertificateDer::from(chain[0].clone());
    let ca_der = CertificateDer::from(ders(ca_pem)[0].clone());
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let algorithms = [webpki::ring::ECDSA_P256_SHA256];
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        end_entity
            .verify_for_usage(
                &algorithms,
                std::slice::from_ref(&anchor),
                &[],
                UnixTime::now(),
                usage,
                None,
                None,
            )
            .unwrap();
    }
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    assert_eq!(leaf.validity().not_after.timestamp(), expires_unix);
    let key = rcgen::KeyPair::from_pem(&key_pem.0).unwrap();
    assert_eq!(
        key.public_key_raw(),
        leaf.public_key().subject_public_key.data.as_ref()
    );
    Received {
        spiffe_id,
        serial: leaf.raw_serial().to_vec(),
        leaf: chain[0].clone(),
        expires_unix,
    }
}

fn ca_args<'a>(ca_dir: &'a Path, extra: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--ca-dir"),
        ca_dir.as_os_str(),
        OsStr::new("--trust-domain"),
        OsStr::new(TD),
    ];
    args.extend(extra.iter().map(|arg| OsStr::new(*arg)));
    args
}

#[test]
fn ca_init_then_serve_issues_and_rotates_svids() {
    let dir = TempDir::new("ca-serve");
    let ca_dir = dir.path("ca");
    let out = ca_init(&ca_dir, &["--days", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&ca_dir.join("ca.pem").display().to_string()),
        "{stdout}"
    );
    assert!(
        stdout.contains(&ca_dir.join("ca.key").display().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("trust domain: {TD}")), "{stdout}");
    let mode = std::fs::metadata(ca_dir.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();

    // A second init would replace the CA: refused without --force.
    let again = ca_init(&ca_dir, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap(),
        ca_pem
    );

    let args = ca_args(&ca_dir, &["--svid-ttl", "2m", "--svid-rotate-after", "2s"]);
    let server = Server::start_in(dir, &config(18080, 18081), &args);
    let (mut dataplane, first) = FakeDataplane::connect(&server.socket, "node-a");
    assert_eq!(first.generation, 1);
    let message = dataplane
        .next_message(Duration::from_secs(10))
        .expect("an identity right after the first snapshot");
    let issued_at = now();
    let svid = check_identity(message, &ca_pem);
    assert_eq!(
        svid.spiffe_id,
        format!("spiffe://{TD}/ns/default/sa/node-a")
    );
    assert!((svid.expires_unix - (issued_at + 120)).abs() <= 3);
    dataplane.ack(1);
    let status = server.wait_status(|s| s.contains("acked 1 ") && s.contains("svid spiffe://"));
    assert!(
        status.contains(&format!(
            "svid spiffe://{TD}/ns/default/sa/node-a (expires in "
        )),
        "{status}"
    );

    // Rotation: a new SVID with a new serial and key, two seconds later.
    let message = dataplane
        .next_message(Duration::from_secs(10))
        .expect("a rotated identity");
    let rotated = check_identity(message, &ca_pem);
    assert_eq!(rotated.spiffe_id, svid.spiffe_id);
    assert_ne!(rotated.serial, svid.serial);
    assert_ne!(rotated.leaf, svid.leaf);

    // Reloads still arrive between identities, in order.
    server.reload_with(&config(18090, 18081));
    let mut second = None;
    while second.is_none() {
        match dataplane.next_message(Duration::from_secs(10)) {
            Some(Message::Snapshot { snapshot }) => second = Some(snapshot.generation),
            // This client speaks the current protocol: the reload comes as a delta.
            Some(Message::SnapshotDelta { delta }) => second = Some(delta.generation),
            Some(Message::Identity { .. }) => {}
            other => panic!("expected generation 2, got {other:?}"),
        }
    }
    assert_eq!(second, Some(2));

    let log = server.log_text();
    assert!(log.contains("serving as the mesh CA"), "{log}");
    let issued = log.lines().filter(|l| l.contains("SVID issued")).count();
    assert!(issued >= 2, "{log}");
    assert!(log.contains("serial="), "{log}");
    assert!(server.stop().success());
}

#[test]
fn mapped_identities_and_dataplanes_that_predate_them() {
    let dir = TempDir::new("ca-map");
    let ca_dir = dir.path("ca");
    assert!(ca_init(&ca_dir, &[]).status.success());
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
    let ids = dir.write(
        "identities.toml",
        &format!("[[identity]]\nnode = \"web-1\"\nspiffe_id = \"spiffe://{TD}/ns/prod/sa/web\"\n"),
    );
    let mut args = ca_args(&ca_dir, &[]);
    args.extend([OsStr::new("--identities"), ids.as_os_str()]);
    let server = Server::start_in(dir, &config(18080, 18081), &args);

    let (mut web, _) = FakeDataplane::connect(&server.socket, "web-1");
    let svid = check_identity(web.next_message(Duration::from_secs(10)).unwrap(), &ca_pem);
    assert_eq!(svid.spiffe_id, format!("spiffe://{TD}/ns/prod/sa/web"));
    // The default lifetime is a day, renewed at half of it.
    assert!((svid.expires_unix - (now() + 86_400)).abs() <= 5);

    // A 1.0 dataplane could not decode an identity: it gets snapshots only.
    let v1_0 = ProtocolVersion { major: 1, minor: 0 };
    let (mut old, first) = FakeDataplane::connect_as(&server.socket, "old-1", v1_0);
    assert_eq!(first.generation, 1);
    assert!(old.next_message(Duration::from_millis(1500)).is_none());
    assert!(server.log_text().contains("predates identity messages"));

    // A node name that cannot be a SPIFFE ID segment gets no SVID, but snapshots.
    let (mut odd, _) = FakeDataplane::connect(&server.socket, "odd:name");
    assert!(odd.next_message(Duration::from_millis(1500)).is_none());
    assert!(server.log_text().contains("no SVID for this dataplane"));
}

fn serve_output(dir: &TempDir, extra: &[&OsStr]) -> Output {
    let config = dir.write("mesh.toml", &config(18080, 18081));
    let socket = dir.path("control.sock");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .args(extra)
        .output()
        .unwrap();
    assert!(!socket.exists(), "a refused start leaves no socket");
    out
}

#[test]
fn bad_ca_settings_are_refused_at_start_with_their_paths() {
    let dir = TempDir::new("ca-bad");
    let ca_dir = dir.path("ca");

    let out = serve_output(&dir, &ca_args(&ca_dir, &[]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&ca_dir.join("ca.pem").display().to_string()),
        "{stderr}"
    );

    assert!(ca_init(&ca_dir, &[]).status.success());
    let mut wrong_domain = vec![
        OsStr::new("--ca-dir"),
        ca_dir.as_os_str(),
        OsStr::new("--trust-domain"),
        OsStr::new("other.test"),
    ];
    let out = serve_output(&dir, &wrong_domain);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is the CA of trust domain \"mesh.test\""),
        "{stderr}"
    );

    wrong_domain.truncate(2);
    let out = serve_output(&dir, &wrong_domain);
    assert!(
        text(&out.stderr).contains("--trust-domain"),
        "{}",
        text(&out.stderr)
    );

    let out = serve_output(&dir, &[OsStr::new("--trust-domain"), OsStr::new(TD)]);
    assert!(text(&out.stderr).contains("--trust-domain needs --ca-dir"));

    let out = serve_output(&dir, &ca_args(&ca_dir, &["--svid-ttl", "30s"]));
    assert!(
        text(&out.stderr).contains("at least 60s"),
        "{}",
        text(&out.stderr)
    );

    let ids = dir.write(
        "identities.toml",
        "[[identity]]\nnode = \"web-1\"\nspiffe_id = \"spiffe://elsewhere/ns/prod/sa/web\"\n",
    );
    let mut args = ca_args(&ca_dir, &[]);
    args.extend([OsStr::new("--identities"), ids.as_os_str()]);
    let out = serve_output(&dir, &args);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: identity[0].spiffe_id: ", ids.display())),
        "{stderr}"
    );
}
