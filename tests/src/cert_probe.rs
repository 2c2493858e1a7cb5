//! A mesh client that reports which certificate the server presented: one mTLS connection (TLS 1.3, a client SVID,
//! a full handshake every time, never resumed), one `GET` with `Connection: close`, and the server's leaf as seen
//! on the wire.
//!
//! The server chain is verified as strictly as a peer would (chain to the given CA, validity now, serverAuth); only
//! the DNS/IP name check is waived, because an X.509-SVID carries its identity in a URI SAN instead. The caller
//! checks that identity from the returned fields.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::tls::{load_certs, load_key, Issued};
use crate::x509::{self, CertFields};
use crate::IO_TIMEOUT;

/// What one probe saw.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The server's leaf certificate.
    pub leaf: CertFields,
    pub status: u16,
    pub version: Option<rustls::ProtocolVersion>,
}

/// Verifies like a peer (see the module comment) and keeps the leaf it was shown.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    leaf: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap() = Some(end_entity.to_vec());
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(ok) => Ok(ok),
            // webpki checks the chain, the validity and the usage before the name, so reaching a name error means
            // everything else passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(other) => Err(other),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Connects to the mesh listener at `addr` with `client` as client certificate, trusting `ca`, sends
/// `GET path` and returns the status and the server's leaf. Any TLS or IO failure is an error.
pub fn probe(
    addr: SocketAddr,
    ca: &Path,
    client: &Issued,
    path: &str,
) -> std::io::Result<Presented> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca) {
        roots.add(cert).map_err(std::io::Error::other)?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(std::io::Error::other)?;
    let recording = Arc::new(Recording {
        inner,
        leaf: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_client_auth_cert(load_certs(&client.cert), load_key(&client.key))
        .map_err(std::io::Error::other)?;
    // A resumed handshake shows no certificate: every probe must be a full one.
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::IpAddress(addr.ip().into());
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify: what arrived is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let der =
        recording.leaf.lock().unwrap().take().ok_or_else(|| {
            std::io::Error::other("handshake finished without a server certificate")
        })?;
    Ok(Presented {
        leaf: x509::parse(&der).map_err(std::io::Error::other)?,
        status,
        version: tls.conn.protocol_version(),
    })
}
