//! The proxies under test, each given one worker pinned to the same core: ringmesh
//! (`workers = 1`), nginx (`worker_processes 1`, `master_process off`) and HAProxy
//! (`nbthread 1`), configured for keep-alive on both sides. `direct` is no proxy.
//! TLS layers give all three the same certificate and key and TLS 1.3.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::procs::{self, Bins, Proc};
use crate::tls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proxy {
    Direct,
    Ringmesh,
    /// ringmesh with the resilience features configured but nothing failing:
    /// retries, outlier detection, circuit breakers, health checks, rate limits.
    RingmeshFull,
    Nginx,
    Haproxy,
}

impl Proxy {
    pub const ALL: [Proxy; 5] = [
        Proxy::Direct,
        Proxy::Ringmesh,
        Proxy::RingmeshFull,
        Proxy::Nginx,
        Proxy::Haproxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Proxy::Direct => "direct",
            Proxy::Ringmesh => "ringmesh",
            Proxy::RingmeshFull => "ringmesh-full",
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
        }
    }

    /// nginx and HAProxy: the proxies a user would pick instead.
    pub fn is_peer(self) -> bool {
        matches!(self, Proxy::Nginx | Proxy::Haproxy)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// HTTP/1.1 proxying.
    Http,
    /// TCP relay (the load is still HTTP/1.1 keep-alive, relayed as bytes).
    L4,
    /// TLS termination in front of a plaintext upstream, HTTP/1.1 keep-alive.
    Tls,
    /// TLS termination, one new connection per request, full handshake each time.
    TlsNew,
    /// TLS termination, one new connection per request resuming an earlier session.
    TlsResumed,
}

impl Layer {
    /// The client reaches the proxy over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Layer::Tls | Layer::TlsNew | Layer::TlsResumed)
    }

    /// One connection per request: measured by handshakes, not by requests.
    pub fn per_connection(self) -> bool {
        matches!(self, Layer::TlsNew | Layer::TlsResumed)
    }

    /// For file names: `latency-tls-new-100.svg`.
    pub fn slug(self) -> &'static str {
        match self {
            Layer::Http => "http",
            Layer::L4 => "l4",
            Layer::Tls => "tls",
            Layer::TlsNew => "tls-new",
            Layer::TlsResumed => "tls-resumed",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Layer::Http => "HTTP/1.1 keep-alive",
            Layer::L4 => "L4 (TCP relay of HTTP/1.1 keep-alive)",
            Layer::Tls => "TLS 1.3 termination, HTTP/1.1 keep-alive",
            Layer::TlsNew => "TLS 1.3 full handshake per request (new connection, no resumption)",
            Layer::TlsResumed => {
                "TLS 1.3 resumed handshake per request (new connection, session ticket)"
            }
        }
    }
}

/// A proxy that is up.
pub struct Running {
    pub proc: Proc,
    /// Processes whose CPU time and memory are counted.
    pub pids: Vec<u32>,
    pub port: u16,
    /// TLS layers: what the client of this layer negotiated with the proxy.
    pub negotiated: Option<String>,
}

pub enum Start {
    Running(Box<Running>),
    Skipped(String),
}

const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// The HTTP listener's resilience settings for `ringmesh-full`, after `protocol`.
const HTTP_FULL: &str = "rate_limit = { requests_per_second = 10000000, burst = 100000 }\n\n\
     [[listener.route]]\ncluster = \"upstream\"\ntimeout = \"10s\"\n\
     retry = { attempts = 2, on = [\"connect-failure\", \"reset\", \"gateway-error\"], per_try_timeout = \"5s\" }\n\
     rate_limit = { requests_per_second = 10000000, burst = 100000 }\n";

/// `full`: every resilience feature on, sized so that nothing trips under the
/// benchmark's load; measures what they cost when all is well.
pub fn ringmesh_config(
    layer: Layer,
    port: u16,
    upstream: u16,
    admin: u16,
    full: bool,
    tls: Option<&tls::Files>,
) -> String {
    let protocol = match tls {
        Some(f) => format!(
            "protocol = \"https\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
            f.cert.display(),
            f.key.display()
        ),
        None => "protocol = \"http\"\n".to_string(),
    };
    let layer = if layer.is_tls() { Layer::Http } else { layer };
    let listener = match (layer, full) {
        (Layer::L4, false) => "protocol = \"tcp\"\ncluster = \"upstream\"\n".to_string(),
        (Layer::L4, true) => "protocol = \"tcp\"\ncluster = \"upstream\"\n\
             rate_limit = { requests_per_second = 10000000, burst = 100000 }\n"
            .to_string(),
        (_, false) => format!("{protocol}\n[[listener.route]]\ncluster = \"upstream\"\n"),
        (_, true) => format!("{protocol}{HTTP_FULL}"),
    };
    let cluster_extra = if full {
        "outlier = { consecutive_5xx = 5, consecutive_gateway_failure = 5 }\n\
         circuit_breaker = { max_connections = 100000, max_pending_requests = 100000, max_requests = 100000, max_retries = 1000 }\n\
         health_check = { protocol = \"tcp\", interval = \"1s\", timeout = \"500ms\" }\n"
    } else {
        ""
    };
    format!(
        "[runtime]\nworkers = 1\nadmin = \"127.0.0.1:{admin}\"\n\n\
         [[listener]]\nname = \"bench\"\nbind = \"127.0.0.1:{port}\"\n{listener}\n\
         [[cluster]]\nname = \"upstream\"\nendpoints = [\"127.0.0.1:{upstream}\"]\n{cluster_extra}"
    )
}

pub fn nginx_config(
    layer: Layer,
    dir: &Path,
    port: u16,
    upstream: u16,
    tls: Option<&tls::Files>,
) -> String {
    let d = dir.display();
    // Session tickets and the (absent) session cache stay at nginx's defaults.
    let listen = match tls {
        Some(f) => format!(
            "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        \
             ssl_certificate_key {};\n        ssl_protocols TLSv1.3;",
            f.cert.display(),
            f.key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    let head = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n"
    );
    let events = "events {\n    worker_connections 4096;\n}\n";
    match layer {
        Layer::Http | Layer::Tls | Layer::TlsNew | Layer::TlsResumed => format!(
            "{head}{events}http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    keepalive_requests 100000000;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        {listen}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
        ),
        Layer::L4 => format!(
            "load_module {NGINX_STREAM_MODULE};\n{head}{events}stream {{
    server {{
        listen 127.0.0.1:{port};
        proxy_pass 127.0.0.1:{upstream};
    }}
}}
"
        ),
    }
}

/// nginx as the upstream: every request gets the file `DIR/body` (written by the
/// caller; `return 200 "..."` cannot hold a 16 KiB body).
pub fn nginx_upstream_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    keepalive_requests 100000000;\n\
         client_body_temp_path {d}/nginx-body;\n    proxy_temp_path {d}/nginx-proxy;\n\
         fastcgi_temp_path {d}/nginx-fastcgi;\n    uwsgi_temp_path {d}/nginx-uwsgi;\n\
         scgi_temp_path {d}/nginx-scgi;\n\
         server {{\n        listen 127.0.0.1:{port};\n        root {d};\n\
         default_type application/octet-stream;\n\
         location / {{\n            try_files /body =404;\n        }}\n    }}\n}}\n"
    )
}

pub fn haproxy_config(layer: Layer, port: u16, upstream: u16, tls: Option<&tls::Files>) -> String {
    let mode = match layer {
        Layer::L4 => "    mode tcp\n",
        _ => "    mode http\n    option http-keep-alive\n    http-reuse always\n",
    };
    // Tickets and the session cache stay at HAProxy's defaults.
    let ssl = tls.map_or(String::new(), |f| {
        format!(" ssl crt {} ssl-min-ver TLSv1.3", f.combined.display())
    });
    format!(
        "global\n    nbthread 1\n    maxconn 4096\n\n\
         defaults\n{mode}    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
         frontend fe\n    bind 127.0.0.1:{port}{ssl}\n    default_backend be\n\n\
         backend be\n    server s1 127.0.0.1:{upstream} maxconn 10000\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// What every proxy of a run is started with.
pub struct Setup<'a> {
    pub bins: &'a Bins,
    /// The dataplane's io driver.
    pub driver: &'a str,
    /// Configs and logs go here.
    pub dir: &'a Path,
    /// The core the proxy is pinned to.
    pub cpu: Option<usize>,
    /// Certificate and key for the TLS layers.
    pub tls: Option<&'a tls::Files>,
}

/// Starts `proxy` in front of the upstream on `upstream`, pinned to `cpu`, and waits
/// until a request through it succeeds.
pub fn start(proxy: Proxy, layer: Layer, upstream: u16, s: &Setup) -> anyhow::Result<Start> {
    let (bins, driver, dir, cpu) = (s.bins, s.driver, s.dir, s.cpu);
    let tls = if layer.is_tls() {
        Some(
            s.tls
                .ok_or_else(|| anyhow::anyhow!("TLS layer without certificates"))?,
        )
    } else {
        None
    };
    let port = procs::free_port()?;
    let tag = format!("{}-{}", proxy.name(), port);
    let mut proc = match proxy {
        Proxy::Direct => return Ok(Start::Skipped("no proxy".into())),
        Proxy::Ringmesh | Proxy::RingmeshFull => {
            let a = procs::free_port()?;
            let full = proxy == Proxy::RingmeshFull;
            let cfg = write(
                dir,
                &format!("{tag}.toml"),
                &ringmesh_config(layer, port, upstream, a, full, tls),
            )?;
            let args = vec![
                "--config".to_string(),
                cfg.display().to_string(),
                "--driver".to_string(),
                driver.to_string(),
            ];
            let mut p = procs::spawn(&tag, cpu, &bins.dataplane, &args, dir)?;
            procs::wait_http_ok(
                procs::loopback(a),
                "/ready",
                Duration::from_secs(15),
                &mut p,
            )?;
            p
        }
        Proxy::Nginx => {
            if !procs::have("nginx") {
                return Ok(Start::Skipped(
                    "nginx not installed (bench/install-peers.sh)".into(),
                ));
            }
            if layer == Layer::L4 && !Path::new(NGINX_STREAM_MODULE).is_file() {
                return Ok(Start::Skipped(
                    "this nginx has no stream module (nginx-light); install libnginx-mod-stream"
                        .into(),
                ));
            }
            let cfg = write(
                dir,
                &format!("{tag}.conf"),
                &nginx_config(layer, dir, port, upstream, tls),
            )?;
            let args = vec![
                "-p".to_string(),
                dir.display().to_string(),
                "-e".to_string(),
                dir.join("nginx-error.log").display().to_string(),
                "-c".to_string(),
                cfg.display().to_string(),
            ];
            procs::spawn(&tag, cpu, Path::new("nginx"), &args, dir)?
        }
        Proxy::Haproxy => {
            if !procs::have("haproxy") {
                return Ok(Start::Skipped(
                    "haproxy not installed (bench/install-peers.sh)".into(),
                ));
            }
            let cfg = write(
                dir,
                &format!("{tag}.cfg"),
                &haproxy_config(layer, port, upstream, tls),
            )?;
            let args = vec![
                "-db".to_string(),
                "-f".to_string(),
                cfg.display().to_string(),
            ];
            procs::spawn(&tag, cpu, Path::new("haproxy"), &args, dir)?
        }
    };
    let addr = procs::loopback(port);
    procs::wait_tcp(addr, Duration::from_secs(15), &mut proc)?;
    let negotiated = match tls {
        None => {
            procs::wait_http_ok(addr, "/", Duration::from_secs(15), &mut proc)?;
            None
        }
        Some(files) => {
            let config = tls::client_config(&files.ca, false)?;
            tls::wait_ok(addr, &config, Duration::from_secs(15), &mut proc)?;
            Some(negotiated(layer, addr, files, &config)?)
        }
    };
    Ok(Start::Running(Box::new(Running {
        pids: vec![proc.pid()],
        proc,
        port,
        negotiated,
    })))
}

/// What the client of `layer` negotiates: wrk's OpenSSL for keep-alive, the
/// bench's rustls client for the connection-per-request layers.
fn negotiated(
    layer: Layer,
    addr: std::net::SocketAddr,
    files: &tls::Files,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<String> {
    if layer == Layer::Tls {
        if let Some(text) = tls::openssl_negotiates(addr, &files.ca) {
            return Ok(format!("OpenSSL: {text}"));
        }
    }
    let (_, n) = tls::get_once(addr, "/", Some(config), Duration::from_secs(5))?;
    Ok(n.map_or("?".into(), |n| format!("rustls: {}", n.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_the_ports() {
        for layer in [Layer::Http, Layer::L4] {
            for full in [false, true] {
                let text = ringmesh_config(layer, 1, 2, 3, full, None);
                if let Err(errors) = ringmesh_api::compile_str(&text, "bench.toml", 1) {
                    panic!("{layer:?} full={full}: {errors}\n{text}");
                }
            }
        }
        let r = ringmesh_config(Layer::Http, 1, 2, 3, false, None);
        assert!(
            r.contains("bind = \"127.0.0.1:1\"")
                && r.contains("127.0.0.1:2")
                && r.contains("workers = 1")
        );
        let n = nginx_config(Layer::Http, Path::new("/tmp/x"), 1, 2, None);
        assert!(n.contains("keepalive 64;") && n.contains("proxy_http_version 1.1;"));
        assert!(n.contains("master_process off;"));
        let h = haproxy_config(Layer::Http, 1, 2, None);
        assert!(h.contains("nbthread 1") && h.contains("http-reuse always"));
        assert!(haproxy_config(Layer::L4, 1, 2, None).contains("mode tcp"));
    }

    #[test]
    fn tls_configs_name_the_same_files() {
        let files = tls::Files {
            ca: "/b/ca.pem".into(),
            cert: "/b/server.pem".into(),
            key: "/b/server.key".into(),
            combined: "/b/both.pem".into(),
        };
        for full in [false, true] {
            let text = ringmesh_config(Layer::Tls, 1, 2, 3, full, Some(&files));
            assert!(text.contains("protocol = \"https\"") && text.contains("/b/server.key"));
            if let Err(errors) = ringmesh_api::compile_str(&text, "bench.toml", 1) {
                panic!("full={full}: {errors}\n{text}");
            }
        }
        let n = nginx_config(Layer::TlsNew, Path::new("/tmp/x"), 1, 2, Some(&files));
        assert!(
            n.contains("listen 127.0.0.1:1 ssl;") && n.contains("ssl_certificate /b/server.pem;")
        );
        assert!(n.contains("ssl_protocols TLSv1.3;") && n.contains("keepalive 64;"));
        let h = haproxy_config(Layer::Tls, 1, 2, Some(&files));
        assert!(h.contains("bind 127.0.0.1:1 ssl crt /b/both.pem ssl-min-ver TLSv1.3"));
        assert!(h.contains("mode http"));
    }
}
