//! TLS for the end-to-end tests: a PKI minted with rcgen and written to PEM files, a blocking rustls client that
//! sends one HTTP/1.1 request, and a tiny rustls upstream server (std threads) that answers every request with its
//! name and the SNI it saw.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::{temp_dir, IO_TIMEOUT};

/// A certificate authority whose certificates are written to `dir`.
pub struct Pki {
    pub dir: PathBuf,
    params: CertificateParams,
    key: KeyPair,
    /// PEM file of the CA certificate (the trust bundle).
    pub ca: PathBuf,
}

/// Files of an issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{tag} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            dir,
            params,
            key,
            ca,
        }
    }

    fn issue(&self, file: &str, mut params: CertificateParams) -> Issued {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }

    /// A server certificate for DNS names (`*.x` allowed).
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        self.issue(file, params)
    }

    /// An X.509-SVID for `spiffe_id` (one URI SAN, digitalSignature).
    pub fn svid(&self, file: &str, spiffe_id: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
        self.issue(file, params)
    }
}

pub fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

pub fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a TLS client request saw.
#[derive(Debug)]
pub struct TlsResponse {
    pub status: u16,
    /// The whole head, lower-cased names kept as sent.
    pub head: String,
    pub body: String,
    pub version: Option<rustls::ProtocolVersion>,
    pub alpn: Option<Vec<u8>>,
    /// The handshake resumed an earlier session.
    pub resumed: bool,
}

impl TlsResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Client settings.
pub struct TlsClient {
    pub ca: PathBuf,
    pub versions: &'static [&'static SupportedProtocolVersion],
    pub client_cert: Option<Issued>,
    pub alpn: Vec<Vec<u8>>,
}

impl TlsClient {
    pub fn new(ca: &Path) -> TlsClient {
        TlsClient {
            ca: ca.to_path_buf(),
            versions: rustls::ALL_VERSIONS,
            client_cert: None,
            alpn: vec![b"http/1.1".to_vec()],
        }
    }

    /// The rustls config for these settings; one config keeps its sessions for
    /// resumption across `request_with` calls.
    pub fn config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in load_certs(&self.ca) {
            roots.add(cert).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some(issued) => builder
                .with_client_auth_cert(load_certs(&issued.cert), load_key(&issued.key))
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }

    /// Sends `method path` with `Connection: close` to `addr`, SNI (and verified name) `sni`; reads the response
    /// until the server closes.
    pub fn request(
        &self,
        addr: SocketAddr,
        sni: &str,
        method: &str,
        path: &str,
    ) -> std::io::Result<TlsResponse> {
        self.request_with(self.config(), addr, sni, method, path)
    }

    /// `request` with a given config (from `config()`), to resume its sessions.
    pub fn request_with(
        &self,
        config: Arc<ClientConfig>,
        addr: SocketAddr,
        sni: &str,
        method: &str,
        path: &str,
    ) -> std::io::Result<TlsResponse> {
        let name = ServerName::try_from(sni.to_string()).map_err(std::io::Error::other)?;
        let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // Servers that close without close_notify: what arrived is the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
        Ok(TlsResponse {
            status,
            head: head.to_string(),
            body: body.to_string(),
            version: tls.conn.protocol_version(),
            alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
            resumed: tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        })
    }
}

/// A TLS upstream: answers every HTTP/1.1 request with `200`, body `<name> sni=<sni>`, header `x-upstream`.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TlsUpstream {
    pub fn start(name: &str, issued: &Issued) -> TlsUpstream {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(load_certs(&issued.cert), load_key(&issued.key))
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (stop2, count, name) = (stop.clone(), handshakes.clone(), name.to_string());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = sock else { continue };
                let (config, count, name) = (config.clone(), count.clone(), name.clone());
                std::thread::spawn(move || serve_tls(sock, config, &count, &name));
            }
        });
        TlsUpstream {
            addr,
            handshakes,
            stop,
        }
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve_tls(sock: TcpStream, config: Arc<ServerConfig>, count: &AtomicUsize, name: &str) {
    let _ = sock.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut counted = false;
    loop {
        let Ok(n) = tls.read(&mut chunk) else { return };
        if !counted && !tls.conn.is_handshaking() {
            count.fetch_add(1, Ordering::SeqCst);
            counted = true;
        }
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            buf.drain(..end + 4);
            let sni = tls.conn.server_name().unwrap_or("-").to_string();
            let body = format!("{name} sni={sni}");
            let close = head.contains("connection: close");
            let response = format!(
                "HTTP/1.1 200 OK\r\nx-upstream: {name}\r\ncontent-length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" }
            );
            if tls.write_all(response.as_bytes()).is_err() || close {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
        }
    }
}

/// Accepts any server certificate (for clients of mesh ports, whose SVIDs carry no DNS name); mTLS still happens.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Like [`TlsClient::request`] but trusting any server certificate; returns the status.
pub fn request_any_server(
    addr: SocketAddr,
    client: &TlsClient,
    method: &str,
    path: &str,
) -> std::io::Result<u16> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(client.versions)
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())));
    let config = match &client.client_cert {
        Some(issued) => builder
            .with_client_auth_cert(load_certs(&issued.cert), load_key(&issued.key))
            .map_err(std::io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))
}
