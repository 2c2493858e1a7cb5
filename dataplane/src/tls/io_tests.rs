//! The post-handshake stream on both drivers: bulk writes in rounds, reads
//! into small buffers, clean and unclean ends, refused buffer types, and the
//! hand-over to monoio-rustls for split relays without losing bytes.

use super::*;
use crate::tls::stream::{accept, connect, ClientStream, ServerStream};
use crate::tls::testpki::{on_both_drivers, web_params, Ca};
use monoio::io::{AsyncReadRentExt, OwnedReadHalf, OwnedWriteHalf};
use monoio::net::{TcpListener, TcpStream};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(5);

type Relay = monoio_rustls::ServerTlsStream<Rewind<TcpStream>>;

fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let root = Ca::root("io root");
    let leaf = root.issue(&web_params(&["a.test"], 1));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key_der())
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

async fn pair() -> (ServerStream<TcpStream>, ClientStream<TcpStream>) {
    let (server, client) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = async {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp, &server, &[], DEADLINE).await.unwrap().0
    };
    let dial = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("a.test").unwrap();
        connect(tcp, &client, name, DEADLINE).await.unwrap().0
    };
    monoio::join!(serve, dial)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn bulk_writes_arrive_whole_in_both_directions() {
    on_both_drivers(|| async {
        let (mut server, mut client) = pair().await;
        // Larger than a round and not a multiple of the record size.
        let body = pattern(3 * WRITE_ROUND + 1234);
        let send = async {
            let (sent, _) = server.write_all(body.clone()).await;
            sent.unwrap();
        };
        let receive = async {
            let (got, buf) = client.read_exact(vec![0u8; body.len()]).await;
            got.unwrap();
            buf
        };
        let ((), got) = monoio::join!(send, receive);
        assert_eq!(got, body);

        // Client to server, through a slice of a larger buffer.
        let big = pattern(40_000);
        let (sent, _) = client.write_all(big.clone().slice(100..30_100)).await;
        sent.unwrap();
        let (got, buf) = server.read_exact(vec![0u8; 30_000]).await;
        got.unwrap();
        assert_eq!(buf, &big[100..30_100]);
    });
}

#[test]
fn small_reads_drain_a_record_piece_by_piece() {
    on_both_drivers(|| async {
        let (mut server, mut client) = pair().await;
        let (sent, _) = client.write_all(b"hello, world".to_vec()).await;
        sent.unwrap();
        let mut got = Vec::new();
        while got.len() < 12 {
            let (n, buf) = server.read(Vec::with_capacity(5)).await;
            assert!(n.unwrap() <= 5);
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"hello, world");
        // Static bytes and strings are accepted as write buffers too.
        let (sent, _) = server.write_all(&b"ab"[..]).await;
        sent.unwrap();
        let (sent, _) = server.write_all("cd").await;
        sent.unwrap();
        let (got, buf) = client.read_exact(vec![0u8; 4]).await;
        got.unwrap();
        assert_eq!(buf, b"abcd");
    });
}

#[test]
fn clean_close_reads_zero_and_unclean_close_is_an_error() {
    on_both_drivers(|| async {
        let (mut server, mut client) = pair().await;
        client.shutdown().await.unwrap();
        let (n, _) = server.read(vec![0u8; 16]).await;
        assert_eq!(n.unwrap(), 0);

        let (server2, mut client2) = pair().await;
        drop(server2); // TCP close without close_notify
        let (n, _) = client2.read(vec![0u8; 16]).await;
        assert_eq!(n.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    });
}

#[test]
fn unknown_buffer_types_are_refused_not_misread() {
    on_both_drivers(|| async {
        let (mut server, _client) = pair().await;
        let (written, _) = server.write(Box::new([1u8, 2, 3])).await;
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::Unsupported);
    });
}

#[test]
fn split_relay_keeps_bytes_already_read() {
    on_both_drivers(|| async {
        let (mut server, mut client) = pair().await;
        // Two writes, read with a tiny buffer: rustls keeps plaintext and the
        // stream may keep ciphertext rustls has not taken when it is split.
        let first = pattern(20_000);
        let (sent, _) = client.write_all(first.clone()).await;
        sent.unwrap();
        let (sent, _) = client.write_all(b"tail".to_vec()).await;
        sent.unwrap();
        let (got, head) = server.read_exact(vec![0u8; 10]).await;
        got.unwrap();
        assert_eq!(head, &first[..10]);

        let (mut read_half, mut write_half): (OwnedReadHalf<Relay>, OwnedWriteHalf<Relay>) =
            server.into_split();
        let (got, rest) = read_half.read_exact(vec![0u8; first.len() - 10 + 4]).await;
        got.unwrap();
        assert_eq!(&rest[..first.len() - 10], &first[10..]);
        assert_eq!(&rest[first.len() - 10..], b"tail");
        let (sent, _) = write_half.write_all(b"back".to_vec()).await;
        sent.unwrap();
        let (got, buf) = client.read_exact(vec![0u8; 4]).await;
        got.unwrap();
        assert_eq!(buf, b"back");
    });
}
