//! TLS for the benchmark: one CA and one server certificate minted with rcgen and
//! written as PEM for all three proxies, a rustls client (readiness checks and the
//! connection-per-request load), and a record of what wrk's OpenSSL negotiates.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The name the server certificate is issued for and the client asks for (SNI).
pub const SERVER_NAME: &str = "localhost";

/// The files every proxy is given: the same certificate and key.
#[derive(Debug, Clone)]
pub struct Files {
    /// The CA certificate: the client's trust anchor.
    pub ca: PathBuf,
    /// The server certificate alone (the CA is the trust anchor, so it is not sent).
    pub cert: PathBuf,
    /// Its private key, PKCS#8.
    pub key: PathBuf,
    /// Certificate then key in one file, as HAProxy's `crt` wants them.
    pub combined: PathBuf,
}

/// Mints a CA and a server certificate for `localhost` and 127.0.0.1 into `dir`.
pub fn write_pki(dir: &Path) -> anyhow::Result<Files> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ringmesh-bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAME);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;

    let files = Files {
        ca: dir.join("bench-ca.pem"),
        cert: dir.join("bench-server.pem"),
        key: dir.join("bench-server.key"),
        combined: dir.join("bench-server-haproxy.pem"),
    };
    let write = |p: &Path, text: &str| {
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
    };
    write(&files.ca, &ca_cert.pem())?;
    write(&files.cert, &cert.pem())?;
    write(&files.key, &key.serialize_pem())?;
    write(
        &files.combined,
        &format!("{}{}", cert.pem(), key.serialize_pem()),
    )?;
    Ok(files)
}

/// A TLS 1.3 client that trusts only `ca`. `resume`: remember sessions (tickets)
/// and offer them on the next connection, as browsers and most clients do.
pub fn client_config(ca: &Path, resume: bool) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// What one connection negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: String,
    pub suite: String,
    pub group: String,
    pub resumed: bool,
}

impl Negotiated {
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.version, self.suite, self.group)
    }
}

/// One `GET path` with `Connection: close` over a new connection (TLS when
/// `tls` is given). Reads the response by its Content-Length; returns the status
/// and, for TLS, what was negotiated.
pub fn get_once(
    addr: SocketAddr,
    path: &str,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> anyhow::Result<(u16, Option<Negotiated>)> {
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    // Without it the request and the client's Finished wait for an ACK (Nagle).
    tcp.set_nodelay(true)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n");
    match tls {
        None => {
            let mut s = tcp;
            s.write_all(request.as_bytes())?;
            Ok((read_response(&mut s)?, None))
        }
        Some(config) => {
            let name = ServerName::try_from(SERVER_NAME)?;
            let conn = ClientConnection::new(config.clone(), name)?;
            let mut s = StreamOwned::new(conn, tcp);
            // The first write drives the handshake to completion.
            s.write_all(request.as_bytes())?;
            s.flush()?;
            let status = read_response(&mut s)?;
            let c = &s.conn;
            let negotiated = Negotiated {
                version: c
                    .protocol_version()
                    .map_or("?".into(), |v| format!("{v:?}")),
                suite: c
                    .negotiated_cipher_suite()
                    .map_or("?".into(), |s| format!("{:?}", s.suite())),
                group: c
                    .negotiated_key_exchange_group()
                    .map_or("?".into(), |g| format!("{:?}", g.name())),
                resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            };
            s.conn.send_close_notify();
            let _ = s.flush();
            Ok((status, Some(negotiated)))
        }
    }
}

/// Reads one HTTP/1.1 response head and its Content-Length body; returns the status.
fn read_response(s: &mut impl Read) -> anyhow::Result<u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    let (head_len, status, body_len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| anyhow!("no HTTP status"))?;
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or_else(|| anyhow!("response without Content-Length"))?;
            break (end + 4, status, len);
        }
        if buf.len() > 64 * 1024 {
            bail!("response head over 64 KiB");
        }
    };
    let mut have = buf.len() - head_len;
    while have < body_len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed after {have} of {body_len} body bytes");
        }
        have += n;
    }
    Ok(status)
}

/// Waits until a TLS `GET path` through `addr` answers 200.
pub fn wait_ok(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    timeout: Duration,
    p: &mut crate::procs::Proc,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        p.check_alive()?;
        let last = match get_once(addr, "/", Some(config), Duration::from_millis(500)) {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => format!("status {status}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{}: GET https://{addr}/ not 200 within {timeout:?} (last: {last})",
                p.name
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What wrk would negotiate with `addr`: `openssl s_client` links the same libssl
/// with the same defaults. `None` when the openssl tool is not installed.
pub fn openssl_negotiates(addr: SocketAddr, ca: &Path) -> Option<String> {
    if !crate::procs::have("openssl") {
        return None;
    }
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &addr.to_string()])
        .args(["-servername", SERVER_NAME, "-CAfile"])
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // s_client exits at the end of its (empty) stdin; bound it anyway.
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child.stderr.take()?.read_to_string(&mut err).ok()?;
    Some(parse_s_client(&err))
}

/// `Protocol version: TLSv1.3` / `Ciphersuite: ...` / `Server Temp Key: X25519, 253
/// bits` / `Verification: OK` → `TLSv1.3 TLS_AES_256_GCM_SHA384 X25519`.
fn parse_s_client(text: &str) -> String {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().split(',').next().unwrap_or_default().to_string())
    };
    let mut out = vec![
        field("Protocol version:").unwrap_or_else(|| "?".into()),
        field("Ciphersuite:").unwrap_or_else(|| "?".into()),
        field("Server Temp Key:")
            .or_else(|| field("Negotiated TLS1.3 group:"))
            .unwrap_or_else(|| "?".into()),
    ];
    if field("Verification:").as_deref() != Some("OK") {
        out.push("(certificate not verified)".into());
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_s_client_brief_output() {
        let text = "CONNECTION ESTABLISHED\nProtocol version: TLSv1.3\nCiphersuite: TLS_AES_256_GCM_SHA384\n\
                    Peer certificate: CN = localhost\nHash used: SHA256\nSignature type: ECDSA\n\
                    Verification: OK\nServer Temp Key: X25519, 253 bits\n";
        assert_eq!(
            parse_s_client(text),
            "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"
        );
        assert!(parse_s_client("Protocol version: TLSv1.3\n").contains("not verified"));
    }

    #[test]
    fn reads_responses_by_content_length() {
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(read_response(&mut r).ok(), Some(200));
        let mut short: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert!(read_response(&mut short).is_err());
    }

    #[test]
    fn pki_files_load_into_a_client() {
        let dir = crate::procs::TempDir::new("ringmesh-bench-pki-test")
            .unwrap_or_else(|e| panic!("{e:#}"));
        let files = write_pki(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let combined = std::fs::read_to_string(&files.combined).unwrap_or_default();
        assert!(combined.contains("BEGIN CERTIFICATE") && combined.contains("PRIVATE KEY"));
        assert!(client_config(&files.ca, false).is_ok());
    }
}
