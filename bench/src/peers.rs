//! The proxies under test, each given one worker pinned to the same core: ringmesh
//! (`workers = 1`), nginx (`worker_processes 1`, `master_process off`) and HAProxy
//! (`nbthread 1`), configured for keep-alive on both sides. `direct` is no proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::procs::{self, Bins, Proc};

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
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// HTTP/1.1 proxying.
    Http,
    /// TCP relay (the load is still HTTP/1.1 keep-alive, relayed as bytes).
    L4,
}

/// A proxy that is up.
pub struct Running {
    pub proc: Proc,
    /// Processes whose CPU time and memory are counted.
    pub pids: Vec<u32>,
    pub port: u16,
}

pub enum Start {
    Running(Box<Running>),
    Skipped(String),
}

const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// `full`: every resilience feature on, sized so that nothing trips under the
/// benchmark's load; measures what they cost when all is well.
pub fn ringmesh_config(layer: Layer, port: u16, upstream: u16, admin: u16, full: bool) -> String {
    let listener = match (layer, full) {
        (Layer::Http, false) => "protocol = \"http\"\n\n[[listener.route]]\ncluster = \"upstream\"\n".to_string(),
        (Layer::Http, true) => "protocol = \"http\"\nrate_limit = { requests_per_second = 10000000, burst = 100000 }\n\n\
             [[listener.route]]\ncluster = \"upstream\"\ntimeout = \"10s\"\n\
             retry = { attempts = 2, on = [\"connect-failure\", \"reset\", \"gateway-error\"], per_try_timeout = \"5s\" }\n\
             rate_limit = { requests_per_second = 10000000, burst = 100000 }\n"
            .to_string(),
        (Layer::L4, false) => "protocol = \"tcp\"\ncluster = \"upstream\"\n".to_string(),
        (Layer::L4, true) => "protocol = \"tcp\"\ncluster = \"upstream\"\n\
             rate_limit = { requests_per_second = 10000000, burst = 100000 }\n"
            .to_string(),
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

pub fn nginx_config(layer: Layer, dir: &Path, port: u16, upstream: u16) -> String {
    let d = dir.display();
    let head = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n"
    );
    let events = "events {\n    worker_connections 4096;\n}\n";
    match layer {
        Layer::Http => format!(
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
        listen 127.0.0.1:{port};
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

pub fn haproxy_config(layer: Layer, port: u16, upstream: u16) -> String {
    let mode = match layer {
        Layer::Http => "    mode http\n    option http-keep-alive\n    http-reuse always\n",
        Layer::L4 => "    mode tcp\n",
    };
    format!(
        "global\n    nbthread 1\n    maxconn 4096\n\n\
         defaults\n{mode}    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\n\
         backend be\n    server s1 127.0.0.1:{upstream} maxconn 10000\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// Starts `proxy` in front of the upstream on `upstream`, pinned to `cpu`, and waits
/// until a request through it succeeds.
pub fn start(
    proxy: Proxy,
    layer: Layer,
    upstream: u16,
    bins: &Bins,
    driver: &str,
    dir: &Path,
    cpu: Option<usize>,
) -> anyhow::Result<Start> {
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
                &ringmesh_config(layer, port, upstream, a, full),
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
                &nginx_config(layer, dir, port, upstream),
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
                &haproxy_config(layer, port, upstream),
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
    procs::wait_http_ok(addr, "/", Duration::from_secs(15), &mut proc)?;
    Ok(Start::Running(Box::new(Running {
        pids: vec![proc.pid()],
        proc,
        port,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_the_ports() {
        for layer in [Layer::Http, Layer::L4] {
            for full in [false, true] {
                let text = ringmesh_config(layer, 1, 2, 3, full);
                if let Err(errors) = ringmesh_api::compile_str(&text, "bench.toml", 1) {
                    panic!("{layer:?} full={full}: {errors}\n{text}");
                }
            }
        }
        let r = ringmesh_config(Layer::Http, 1, 2, 3, false);
        assert!(
            r.contains("bind = \"127.0.0.1:1\"")
                && r.contains("127.0.0.1:2")
                && r.contains("workers = 1")
        );
        let n = nginx_config(Layer::Http, Path::new("/tmp/x"), 1, 2);
        assert!(n.contains("keepalive 64;") && n.contains("proxy_http_version 1.1;"));
        assert!(n.contains("master_process off;"));
        let h = haproxy_config(Layer::Http, 1, 2);
        assert!(h.contains("nbthread 1") && h.contains("http-reuse always"));
        assert!(haproxy_config(Layer::L4, 1, 2).contains("mode tcp"));
    }
}
