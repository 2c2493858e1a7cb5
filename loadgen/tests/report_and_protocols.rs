//! The JSON report round trip through `report` (and its schema check), the
//! SLO file, and the tcp://, tls:// and https:// targets.

// Panicking is how a test fails; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{json, run, serve, text, tmp};

#[test]
fn report_re_renders_the_run_and_rejects_other_schema_versions() {
    let up = serve(&[]);
    let url = format!("http://{}/", up.addr);
    let out = tmp("roundtrip.json");
    let slos = tmp("slos.txt");
    std::fs::write(
        &slos,
        "# generous limits\np99 < 1s\nerror_rate<1%  # none expected\n",
    )
    .unwrap();
    let spectrum = tmp("spectrum.txt");
    let o = run(&[
        "run",
        &url,
        "--rate",
        "300",
        "--duration",
        "1s",
        "--max-lag",
        "50ms",
        "--slo-file",
        slos.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--spectrum",
        spectrum.to_str().unwrap(),
    ]);
    let r = json(&out);
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["slos"].as_array().map(Vec::len), Some(2), "{}", text(&o));
    assert!(r["histograms"]["response"]
        .as_str()
        .unwrap_or_default()
        .starts_with("HISTF"));
    assert!(std::fs::read_to_string(&spectrum)
        .unwrap()
        .contains("percentile"));

    // Same summary, same verdict, same exit code.
    let again = run(&["report", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), o.status.code(), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&o.stdout)
    );

    // A new question to the stored measurement: nothing is that fast.
    let strict = run(&["report", out.to_str().unwrap(), "--slo", "p50<1us"]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));

    let mut wrong = r.clone();
    wrong["schema_version"] = 99.into();
    let wrong_path = tmp("wrong.json");
    std::fs::write(&wrong_path, wrong.to_string()).unwrap();
    let o = run(&["report", wrong_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("schema_version 99"), "{}", text(&o));
}

#[test]
fn tcp_echo_target() {
    let up = serve(&["--tcp"]);
    let out = tmp("tcp.json");
    let o = run(&[
        "run",
        &format!("tcp://{}", up.addr),
        "--rate",
        "400",
        "--duration",
        "1s",
        "--size",
        "1000",
        "--max-lag",
        "50ms",
        "--out",
        out.to_str().unwrap(),
    ]);
    let r = json(&out);
    assert_eq!(r["requests"]["ok"], 400, "{}", text(&o));
    assert_eq!(r["requests"]["errors"], 0, "{}", text(&o));
}

/// A CA and a certificate for 127.0.0.1 and localhost, as PEM files named
/// after `prefix`.
fn pki(prefix: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = tmp(&format!("{prefix}-{name}"));
        std::fs::write(&p, pem).unwrap();
        p.to_str().unwrap().to_string()
    };
    (
        write("ca.pem", ca.pem()),
        write("cert.pem", leaf.pem()),
        write("key.pem", key.serialize_pem()),
    )
}

fn tls_run(url: &str, trust: &[&str], name: &str) -> (std::process::Output, serde_json::Value) {
    let out = tmp(name);
    let mut args = vec![
        "run",
        url,
        "--rate",
        "200",
        "--duration",
        "1s",
        "--max-lag",
        "50ms",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(trust);
    let o = run(&args);
    let r = json(&out);
    (o, r)
}

#[test]
fn tls_and_https_targets() {
    let (ca, cert, key) = pki("good");
    let https = serve(&["--tls-cert", &cert, "--tls-key", &key]);
    let echo = serve(&["--tcp", "--tls-cert", &cert, "--tls-key", &key]);
    let port = |a: &str| a.rsplit(':').next().unwrap_or_default().to_string();

    let url = format!("https://localhost:{}/", port(&https.addr));
    let (o, r) = tls_run(&url, &["--cacert", &ca], "https.json");
    assert_eq!(r["requests"]["ok"], 200, "{}", text(&o));
    let (o, r) = tls_run(&url, &["--insecure"], "https-insecure.json");
    assert_eq!(r["requests"]["ok"], 200, "{}", text(&o));

    let url = format!("tls://127.0.0.1:{}", port(&echo.addr));
    let (o, r) = tls_run(&url, &["--cacert", &ca, "--size", "300"], "tls.json");
    assert_eq!(r["requests"]["ok"], 200, "{}", text(&o));

    // Without a trust decision: a usage error, not a silent insecure run.
    let o = run(&["run", &url, "--rate", "10", "--duration", "1s"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--cacert"), "{}", text(&o));

    // The wrong CA: every handshake fails, so nothing is OK.
    let (other_ca, _, _) = pki("other");
    let (o, r) = tls_run(&url, &["--cacert", &other_ca], "tls-wrong.json");
    assert_eq!(r["requests"]["ok"], 0, "{}", text(&o));
    assert_ne!(o.status.code(), Some(0));
}
