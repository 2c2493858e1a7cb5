//! testssl against the dataplane's edge `https` listener, when `testssl` (Debian package `testssl.sh`) is on PATH:
//! any finding of severity MEDIUM or above fails the test, and so does a scan that did not run its checks.
//!
//! The listener is set up as a real edge would be, so what testssl reports is about the dataplane's TLS and not
//! about a careless test setup: a leaf signed by a test CA (passed to testssl with `--add-ca`) for `localhost` and
//! 127.0.0.1 with serverAuth, a 90-day lifetime and a CRL pointer, and the security headers an edge adds to every
//! response. The scan is offline: `--ip` and `--nodns none`, nothing fetched (no `--phone-out`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ringmesh_tests::test_ca::TestCa;
use ringmesh_tests::testssl::{find_binary, parse_findings, run, Finding};
use ringmesh_tests::{free_port, temp_dir, HttpUpstream, Proxy};

/// Severities that fail the test; FATAL means testssl could not scan at all. WARN (one check could not be done) is
/// printed but does not fail: `sessionresumption_ticket` intermittently reports a "connect problem" here (one of
/// its two `openssl s_client` runs exits non-zero now and then; cause not found yet), and [`EXPECTED_IDS`] already
/// catches a scan that stopped early.
const FAILING: &[&str] = &["MEDIUM", "HIGH", "CRITICAL", "FATAL"];

/// Findings every complete scan reports (whatever their severity), one or more per section run by default:
/// protocols, cipher preference, certificate, HTTP headers, vulnerabilities. A scan that stopped early or never
/// connected lacks them.
const EXPECTED_IDS: &[&str] = &[
    "SSLv2",
    "SSLv3",
    "TLS1",
    "TLS1_1",
    "TLS1_2",
    "TLS1_3",
    "cipher_order",
    "cert_trust",
    "cert_chain_of_trust",
    "cert_expirationStatus",
    "HTTP_status_code",
    "heartbleed",
    "ROBOT",
    "BREACH",
];

/// A whole scan took about 90 s on a busy 2-core machine.
const SCAN_LIMIT: Duration = Duration::from_secs(900);

fn find<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("testssl reported no {id:?}"))
}

fn testssl_edge(driver: &str) {
    let Some(testssl) = find_binary() else {
        eprintln!("skipped: testssl is not on PATH (Debian package testssl.sh)");
        return;
    };
    let ca = TestCa::new(
        "testssl-ca",
        "ringmesh testssl CA",
        None,
        Duration::from_secs(5 * 365 * 86_400),
    );
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let leaf = ca.server(
        "edge",
        &["localhost"],
        &[localhost],
        Duration::from_secs(90 * 86_400),
    );
    let app = HttpUpstream::start("app");
    let port = free_port();
    let _proxy = Proxy::start(
        driver,
        &format!(
            r#"
[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
protocol = "https"
tls = {{ certificates = [{{ cert = "{cert}", key = "{key}" }}] }}

# What an edge in front of a web application sets: testssl reports their absence (HSTS LOW, the rest MEDIUM).
[[listener.route]]
cluster = "app"
response_headers = {{ set = {{ "strict-transport-security" = "max-age=31536000", "x-content-type-options" = "nosniff", "x-frame-options" = "DENY", "content-security-policy" = "default-src 'none'" }} }}

[[cluster]]
name = "app"
endpoints = ["{app}"]
"#,
            cert = leaf.cert.display(),
            key = leaf.key.display(),
            app = app.addr,
        ),
    );

    let dir = temp_dir("testssl");
    let json = dir.join("findings.json");
    let (ca_file, json_file, target) = (
        ca.cert.display().to_string(),
        json.display().to_string(),
        format!("localhost:{port}"),
    );
    let started = Instant::now();
    let output = run(
        &testssl,
        &[
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--nodns",
            "none",
            "--ip",
            "127.0.0.1",
            "--add-ca",
            &ca_file,
            "--connect-timeout",
            "10",
            "--openssl-timeout",
            "10",
            "--jsonfile",
            &json_file,
            &target,
        ],
        &dir,
        SCAN_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); testssl exited with {}:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let findings =
        parse_findings(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", json.display()));
    eprintln!(
        "testssl ran {:?}, {} findings, exit {}",
        started.elapsed(),
        findings.len(),
        output.status
    );
    for f in findings
        .iter()
        .filter(|f| !matches!(f.severity.as_str(), "OK" | "INFO" | "DEBUG"))
    {
        eprintln!("  {} {}: {}", f.severity, f.id, f.finding);
    }

    let missing: Vec<&str> = EXPECTED_IDS
        .iter()
        .copied()
        .filter(|id| !findings.iter().any(|f| f.id == *id))
        .collect();
    assert!(
        missing.is_empty(),
        "the scan did not report {missing:?}:\n{stdout}"
    );
    let failing: Vec<String> = findings
        .iter()
        .filter(|f| FAILING.contains(&f.severity.as_str()))
        .map(|f| format!("{} {}: {}", f.severity, f.id, f.finding))
        .collect();
    assert!(
        failing.is_empty(),
        "testssl findings of severity MEDIUM or above:\n  {}\n\nfull output:\n{stdout}",
        failing.join("\n  ")
    );
    // Named outright, whatever severity a testssl version gives them: only TLS 1.2 and 1.3, with the test chain
    // verified against the test CA and the server's cipher order.
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        let f = find(&findings, old);
        assert!(f.finding.starts_with("not offered"), "{old}: {}", f.finding);
    }
    for current in ["TLS1_2", "TLS1_3"] {
        let f = find(&findings, current);
        assert!(f.finding.starts_with("offered"), "{current}: {}", f.finding);
    }
    for verified in ["cert_chain_of_trust", "cert_trust", "cipher_order"] {
        let f = find(&findings, verified);
        assert_eq!(f.severity, "OK", "{verified}: {}", f.finding);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

ringmesh_tests::uring_only!(testssl_edge);
