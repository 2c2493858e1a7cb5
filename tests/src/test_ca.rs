//! A certificate authority with real validity dates, written to PEM files, for tests that look at certificates the
//! way an outside tool or a peer would: a server chain for the edge that a scanner such as testssl accepts (CA + leaf
//! with the right names, usages and lifetime), and a mesh CA in the `--ca-dir` layout `ringmesh-control serve` loads,
//! which the test can also sign its own client SVIDs with.
//!
//! [`crate::tls::Pki`] is enough for handshakes between our own programs; it leaves rcgen's default validity
//! (1975 to 4096) and no revocation pointer, which a scanner rightly reports.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::temp_dir;
use crate::tls::Issued;

/// How far back certificates start, so a clock a little behind does not see them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Where the edge leaf says its CRL is. Nothing serves it and nothing fetches it (scanners only look for the
/// pointer unless told to go online); a leaf without any revocation pointer is what real CAs never issue.
pub const CRL_URL: &str = "http://crl.ringmesh.test/ca.crl";

/// A root CA whose certificate and key are files in [`TestCa::dir`].
pub struct TestCa {
    pub dir: PathBuf,
    /// `ca.pem`: the trust anchor.
    pub cert: PathBuf,
    /// `ca.key`, mode 0600 (the control process warns about a CA key others can read).
    pub key_file: PathBuf,
    params: CertificateParams,
    key: KeyPair,
}

/// Sets `params`' validity to [now - BACKDATE, now + lifetime].
fn valid_for(params: &mut CertificateParams, lifetime: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    // rcgen takes `time` dates; the tests crate does not depend on `time`, so build them from the epoch.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + (now - BACKDATE);
    params.not_after = epoch + (now + lifetime);
}

fn write_private(path: &PathBuf, text: &str) {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl TestCa {
    /// A root CA called `name`, valid from an hour ago for `lifetime`. With `trust_domain` it is shaped like the CA
    /// `ringmesh-control ca init` makes: its one URI SAN is `spiffe://TD` and it may sign leaves only.
    pub fn new(tag: &str, name: &str, trust_domain: Option<&str>, lifetime: Duration) -> TestCa {
        let dir = temp_dir(tag);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ringmesh tests");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        if let Some(td) = trust_domain {
            let uri = format!("spiffe://{td}");
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        valid_for(&mut params, lifetime);
        // ECDSA P-256, like ringmesh-control's CA.
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_file) = (dir.join("ca.pem"), dir.join("ca.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        write_private(&key_file, &key.serialize_pem());
        TestCa {
            dir,
            cert: cert_path,
            key_file,
            params,
            key,
        }
    }

    fn sign(&self, file: &str, params: &CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        write_private(&issued.key, &key.serialize_pem());
        issued
    }

    /// A TLS server leaf for `dns` names and `ips`, valid for `lifetime`: serverAuth only, digitalSignature (an
    /// ECDSA key signs, it never enciphers), the CA's key identifier, and a CRL pointer ([`CRL_URL`]).
    pub fn server(&self, file: &str, dns: &[&str], ips: &[IpAddr], lifetime: Duration) -> Issued {
        let mut params =
            CertificateParams::new(dns.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = dns.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![CRL_URL.to_string()],
        }];
        valid_for(&mut params, lifetime);
        self.sign(file, &params)
    }

    /// An X.509-SVID for `spiffe_id` valid for `lifetime`, shaped like the control process's: no subject, the ID as
    /// the one (then critical) URI SAN, client and server auth.
    pub fn svid(&self, file: &str, spiffe_id: &str, lifetime: Duration) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        valid_for(&mut params, lifetime);
        self.sign(file, &params)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
