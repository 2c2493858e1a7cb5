//! Real loopback handshakes on both monoio drivers: edge TLS 1.2/1.3 with SNI
//! and ALPN, mesh mTLS with SVIDs, the ten bad certificates on both sides,
//! version refusal, rotation, resumption, deadlines and peeked bytes.

use super::*;
use crate::tls::certs::{serial_hex, CertStore, ClientCertSlot, SniTable};
use crate::tls::clienthello::{parse_client_hello, Peek};
use crate::tls::config::{
    edge_server, mesh_server, origination_client, session_cache, ticket_keys, MeshMode,
    Origination, ServerResumption, ALPN_H2, ALPN_HTTP1,
};
use crate::tls::spiffe::SpiffePattern;
use crate::tls::testpki::{id, on_both_drivers, web_params, Ca, Leaf, Mesh, TD};
use crate::tls::verify::{shared_bundle, ExpectedPeer, ServerVerifier, SharedBundle, TrustBundle};
use monoio::io::AsyncReadRentExt;
use monoio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(5);

type Server = Result<(ServerStream<TcpStream>, PeerInfo), TlsFailure>;
type Client = Result<(ClientStream<TcpStream>, PeerInfo), TlsFailure>;

async fn pair(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    name: &str,
) -> (Server, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let serve = async {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp, server, &[], DEADLINE).await
    };
    let dial = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        connect(tcp, client, name, DEADLINE).await
    };
    monoio::join!(serve, dial)
}

/// Client says `ping`, server answers `pong`: proves the streams carry data
/// after the hand-over from our handshake to the request-path stream.
async fn exchange(server: &mut ServerStream<TcpStream>, client: &mut ClientStream<TcpStream>) {
    let (sent, _) = client.write_all(b"ping".to_vec()).await;
    sent.unwrap();
    let (got, buf) = server.read_exact(vec![0u8; 4]).await;
    got.unwrap();
    assert_eq!(buf, b"ping");
    let (sent, _) = server.write_all(b"pong".to_vec()).await;
    sent.unwrap();
    let (got, buf) = client.read_exact(vec![0u8; 4]).await;
    got.unwrap();
    assert_eq!(buf, b"pong");
}

fn serial(info: &PeerInfo) -> String {
    serial_hex(info.peer_leaf.as_ref().unwrap()).unwrap()
}

fn web_client(root: &Ca, tls12_only: bool, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let bundle = shared_bundle(TrustBundle::new(None, std::slice::from_ref(&root.der)).unwrap());
    let verifier = ServerVerifier::new(bundle, ExpectedPeer::DnsName);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn edge_store(root: &Ca) -> Arc<CertStore> {
    let mut table = SniTable::new();
    table
        .insert(
            "a.test",
            root.issue(&web_params(&["a.test"], 1)).certified(),
        )
        .unwrap();
    table
        .insert(
            "*.b.test",
            root.issue(&web_params(&["*.b.test"], 2)).certified(),
        )
        .unwrap();
    table.set_default(root.issue(&web_params(&["default.test"], 3)).certified());
    CertStore::new(table)
}

#[test]
fn edge_tls12_and_tls13_choose_cert_by_sni_and_negotiate_alpn() {
    on_both_drivers(|| async {
        let root = Ca::root("edge root");
        let server = edge_server(edge_store(&root), &[ALPN_HTTP1], &resumption()).unwrap();
        for tls12 in [false, true] {
            let client = web_client(&root, tls12, &[ALPN_H2, ALPN_HTTP1]);
            for (name, want_serial) in [
                ("A.Test", "01"),
                ("www.b.test", "02"),
                ("default.test", "03"),
            ] {
                let (server_side, client_side) = pair(&server, &client, name).await;
                let (mut server_stream, server_info) = server_side.unwrap();
                let (mut client_stream, client_info) = client_side.unwrap();
                let version = if tls12 { "TLSv1.2" } else { "TLSv1.3" };
                assert_eq!(server_info.version, version);
                assert_eq!(client_info.version, version);
                // rustls lower-cases the SNI before certificate selection.
                let lower = name.to_ascii_lowercase();
                assert_eq!(server_info.sni.as_deref(), Some(lower.as_str()));
                assert_eq!(server_info.alpn.as_deref(), Some(ALPN_HTTP1));
                assert_eq!(client_info.alpn.as_deref(), Some(ALPN_HTTP1));
                assert!(
                    server_info.cipher.contains("GCM") || server_info.cipher.contains("CHACHA20")
                );
                assert_eq!(serial(&client_info), want_serial);
                assert_eq!(server_info.peer_leaf, None);
                exchange(&mut server_stream, &mut client_stream).await;
            }
        }
    });
}

/// The mesh PKI plus server/client configs for one test.
struct MeshSetup {
    mesh: Mesh,
    bundle: SharedBundle,
}

impl MeshSetup {
    fn new() -> MeshSetup {
        let mesh = Mesh::new();
        let bundle = shared_bundle(
            TrustBundle::new(Some(TD), std::slice::from_ref(&mesh.root.der)).unwrap(),
        );
        MeshSetup { mesh, bundle }
    }

    /// Inbound mesh port accepting `spiffe://TD/ns/app/sa/*`.
    fn server(&self, leaf: &Leaf, mode: MeshMode) -> Arc<ServerConfig> {
        let mut table = SniTable::new();
        table.set_default(leaf.certified());
        let accept = ExpectedPeer::AnyOf(vec![SpiffePattern::parse(&id("/ns/app/sa/*")).unwrap()]);
        mesh_server(
            CertStore::new(table),
            self.bundle.clone(),
            accept,
            mode,
            &[ALPN_HTTP1],
        )
        .unwrap()
    }

    /// Origination expecting the server to be `/ns/app/sa/web`.
    fn client(
        &self,
        leaf: Option<&Leaf>,
        sessions: &Arc<rustls::client::ClientSessionMemoryCache>,
    ) -> Arc<ClientConfig> {
        origination_client(&Origination {
            mesh: true,
            bundle: self.bundle.clone(),
            expected: ExpectedPeer::Spiffe(SpiffeId::parse(&id("/ns/app/sa/web")).unwrap()),
            client_cert: leaf.map(|leaf| ClientCertSlot::new(Some(leaf.certified()))),
            alpn: vec![ALPN_HTTP1.to_vec()],
            sessions: sessions.clone(),
        })
        .unwrap()
    }
}

#[test]
fn mesh_mtls_accepts_good_svids_and_reads_both_identities() {
    on_both_drivers(|| async {
        let setup = MeshSetup::new();
        let server = setup.server(&setup.mesh.good("/ns/app/sa/web"), MeshMode::Strict);
        let client = setup.client(Some(&setup.mesh.good("/ns/app/sa/api")), &session_cache(8));
        let (server_side, client_side) = pair(&server, &client, "web.app.svc").await;
        let (mut server_stream, server_info) = server_side.unwrap();
        let (mut client_stream, client_info) = client_side.unwrap();
        assert_eq!(server_info.version, "TLSv1.3");
        assert_eq!(
            server_info.peer_identity.unwrap().as_str(),
            id("/ns/app/sa/api")
        );
        assert_eq!(
            client_info.peer_identity.unwrap().as_str(),
            id("/ns/app/sa/web")
        );
        exchange(&mut server_stream, &mut client_stream).await;
    });
}

#[test]
fn ten_bad_client_certificates_are_refused_by_the_mesh_port() {
    on_both_drivers(|| async {
        let setup = MeshSetup::new();
        let server = setup.server(&setup.mesh.good("/ns/app/sa/web"), MeshMode::Strict);
        for (case, leaf, reason) in setup.mesh.bad_certificates("/ns/app/sa/api") {
            let client = setup.client(Some(&leaf), &session_cache(8));
            let (server_side, _client_side) = pair(&server, &client, "web.app.svc").await;
            let failure = server_side
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            assert_eq!(failure.reason, reason, "{case}: {failure}");
        }
    });
}

#[test]
fn ten_bad_server_certificates_are_refused_by_origination() {
    on_both_drivers(|| async {
        let setup = MeshSetup::new();
        let client = setup.client(None, &session_cache(8));
        for (case, leaf, reason) in setup.mesh.bad_certificates("/ns/app/sa/web") {
            let mut table = SniTable::new();
            table.set_default(leaf.certified());
            let server = edge_server(CertStore::new(table), &[], &resumption()).unwrap();
            let (server_side, client_side) = pair(&server, &client, "web.app.svc").await;
            let failure = client_side
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            assert_eq!(failure.reason, reason, "{case}: {failure}");
            // The server learns that its certificate was refused.
            let refused = server_side.err().unwrap();
            assert_eq!(
                refused.reason, "peer_rejected_certificate",
                "{case}: {refused}"
            );
        }
    });
}

#[test]
fn mesh_port_refuses_tls12_and_missing_certificates_unless_permissive() {
    on_both_drivers(|| async {
        let setup = MeshSetup::new();
        let web = setup.mesh.good("/ns/app/sa/web");
        let strict = setup.server(&web, MeshMode::Strict);
        let old = web_client(&setup.mesh.root, true, &[]);
        let (server_side, client_side) = pair(&strict, &old, "web.app.svc").await;
        assert_eq!(server_side.err().unwrap().reason, "protocol_version");
        assert_eq!(client_side.err().unwrap().reason, "protocol_version");

        let anonymous = setup.client(None, &session_cache(8));
        let (server_side, _) = pair(&strict, &anonymous, "web.app.svc").await;
        assert_eq!(server_side.err().unwrap().reason, "no_certificate");

        let permissive = setup.server(&web, MeshMode::Permissive);
        let (server_side, client_side) = pair(&permissive, &anonymous, "web.app.svc").await;
        let (mut server_stream, server_info) = server_side.unwrap();
        let (mut client_stream, _) = client_side.unwrap();
        assert_eq!(server_info.peer_identity, None);
        exchange(&mut server_stream, &mut client_stream).await;
    });
}

#[test]
fn rotation_reaches_new_handshakes_and_spares_open_sessions() {
    on_both_drivers(|| async {
        let root = Ca::root("rotation root");
        let mut table = SniTable::new();
        table.set_default(root.issue(&web_params(&["svc.test"], 0x51)).certified());
        let store = CertStore::new(table);
        let server = edge_server(store.clone(), &[], &resumption()).unwrap();
        let client = web_client(&root, false, &[]);
        let (old_server, old_client) = pair(&server, &client, "svc.test").await;
        let (mut old_server, _) = old_server.unwrap();
        let (mut old_client, old_info) = old_client.unwrap();
        assert_eq!(serial(&old_info), "51");

        let mut rotated = SniTable::new();
        rotated.set_default(root.issue(&web_params(&["svc.test"], 0x52)).certified());
        store.store(rotated);
        let (new_server, new_client) = pair(&server, &client, "svc.test").await;
        let (mut new_server, _) = new_server.unwrap();
        let (mut new_client, new_info) = new_client.unwrap();
        assert_eq!(serial(&new_info), "52");
        exchange(&mut new_server, &mut new_client).await;
        exchange(&mut old_server, &mut old_client).await;
    });
}

fn resumption() -> ServerResumption {
    ServerResumption::new(ticket_keys())
}

/// An edge config rebuilt with the same resumption state (what a table swap, or
/// another worker, does) resumes the sessions of the one before, by ticket in TLS
/// 1.3 and 1.2; with new ticket keys nothing resumes.
#[test]
fn edge_sessions_resume_across_configs_that_share_ticket_keys() {
    on_both_drivers(|| async {
        let root = Ca::root("resume root");
        for tls12_only in [false, true] {
            let shared = resumption();
            let first = edge_server(edge_store(&root), &[], &shared).unwrap();
            let client = web_client(&root, tls12_only, &[]);
            let (server_side, client_side) = pair(&first, &client, "a.test").await;
            let (mut server_stream, server_info) = server_side.unwrap();
            let (mut client_stream, _) = client_side.unwrap();
            assert!(!server_info.resumed);
            // The client takes the tickets in while it reads.
            exchange(&mut server_stream, &mut client_stream).await;

            let rebuilt = edge_server(edge_store(&root), &[], &shared).unwrap();
            let (server_side, client_side) = pair(&rebuilt, &client, "a.test").await;
            let (mut server_stream, server_info) = server_side.unwrap();
            let (mut client_stream, client_info) = client_side.unwrap();
            assert!(
                server_info.resumed && client_info.resumed,
                "TLS 1.2 only: {tls12_only}"
            );
            exchange(&mut server_stream, &mut client_stream).await;

            let other_keys = edge_server(edge_store(&root), &[], &resumption()).unwrap();
            let (server_side, _client_side) = pair(&other_keys, &client, "a.test").await;
            let (_, server_info) = server_side.unwrap();
            assert!(!server_info.resumed, "TLS 1.2 only: {tls12_only}");
        }
    });
}

/// Between sidecars nothing resumes (even with a session cache on the client): every
/// handshake verifies the peer's current SVID and yields its identity afresh.
#[test]
fn mesh_sessions_never_resume_and_each_handshake_proves_the_identity() {
    on_both_drivers(|| async {
        let setup = MeshSetup::new();
        let server = setup.server(&setup.mesh.good("/ns/app/sa/web"), MeshMode::Strict);
        let client = setup.client(Some(&setup.mesh.good("/ns/app/sa/api")), &session_cache(8));
        for round in 0..2 {
            let (server_side, client_side) = pair(&server, &client, "web.app.svc").await;
            let (mut server_stream, server_info) = server_side.unwrap();
            let (mut client_stream, client_info) = client_side.unwrap();
            assert!(!client_info.resumed, "round {round}");
            assert!(!server_info.resumed, "round {round}");
            assert_eq!(
                server_info.peer_identity.unwrap().as_str(),
                id("/ns/app/sa/api")
            );
            // Reading would process session tickets, were any sent.
            exchange(&mut server_stream, &mut client_stream).await;
        }
    });
}

#[test]
fn handshake_deadline_and_early_close() {
    on_both_drivers(|| async {
        let root = Ca::root("deadline root");
        let server = edge_server(edge_store(&root), &[], &resumption()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let failure = accept(tcp, &server, &[], Duration::from_millis(50))
            .await
            .err()
            .unwrap();
        assert_eq!(failure.reason, "timeout");
        drop(silent);

        let closing = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        drop(closing);
        let failure = accept(tcp, &server, &[], DEADLINE).await.err().unwrap();
        assert_eq!(failure.reason, "eof");

        let mut talker = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let (sent, _) = talker.write_all(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
        sent.unwrap();
        let failure = accept(tcp, &server, &[], DEADLINE).await.err().unwrap();
        assert_eq!(failure.reason, "protocol_error", "{failure}");
    });
}

#[test]
fn accept_starts_from_peeked_hello_bytes() {
    on_both_drivers(|| async {
        let root = Ca::root("peek root");
        let server = edge_server(edge_store(&root), &[ALPN_HTTP1], &resumption()).unwrap();
        let client = web_client(&root, false, &[ALPN_HTTP1]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = async {
            let (mut tcp, _) = listener.accept().await.unwrap();
            // Read until the ClientHello parses, as the detect stage would.
            let mut peeked = Vec::new();
            let sni = loop {
                let (read, buf) = tcp.read(vec![0u8; 64]).await;
                let n = read.unwrap();
                assert!(n > 0);
                peeked.extend_from_slice(&buf[..n]);
                match parse_client_hello(&peeked) {
                    Peek::Incomplete { .. } => continue,
                    Peek::Hello(hello) => break hello.sni.unwrap().as_str().to_string(),
                    other => panic!("{other:?}"),
                }
            };
            assert_eq!(sni, "a.test");
            accept(tcp, &server, &peeked, DEADLINE).await
        };
        let dial = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("a.test").unwrap();
            connect(tcp, &client, name, DEADLINE).await
        };
        let (server_side, client_side) = monoio::join!(serve, dial);
        let (mut server_stream, info) = server_side.unwrap();
        let (mut client_stream, _) = client_side.unwrap();
        assert_eq!(info.sni.as_deref(), Some("a.test"));
        exchange(&mut server_stream, &mut client_stream).await;
    });
}

#[test]
fn rewind_replays_peeked_bytes_before_the_socket() {
    on_both_drivers(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut writer = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let (sent, _) = writer.write_all(b" world".to_vec()).await;
        sent.unwrap();
        let mut replay = rewind(tcp, b"hello".to_vec());
        let (read, buf) = replay.read_exact(vec![0u8; 11]).await;
        read.unwrap();
        assert_eq!(buf, b"hello world");
    });
}

#[test]
fn data_sent_with_the_last_handshake_flight_is_not_lost() {
    on_both_drivers(|| async {
        let root = Ca::root("flight root");
        let server = edge_server(edge_store(&root), &[], &resumption()).unwrap();
        let client = web_client(&root, false, &[]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let serve = async {
            let (tcp, _) = listener.accept().await.unwrap();
            // Let the client's Finished and its first request arrive together.
            monoio::time::sleep(Duration::from_millis(30)).await;
            let (mut stream, _) = accept(tcp, &server, &[], DEADLINE).await.unwrap();
            let (read, buf) = stream.read_exact(vec![0u8; body.len()]).await;
            read.unwrap();
            buf
        };
        let dial = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("a.test").unwrap();
            let (mut stream, _) = connect(tcp, &client, name, DEADLINE).await.unwrap();
            let (sent, _) = stream.write_all(body.clone()).await;
            sent.unwrap();
            stream
        };
        let (received, _client) = monoio::join!(serve, dial);
        assert_eq!(received, body);
    });
}
