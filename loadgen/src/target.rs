//! Where the load goes: the target URL (`http://`, `https://`, `tcp://`, `tls://`),
//! parsed and resolved once, and the bytes every request sends.

use std::net::{SocketAddr, ToSocketAddrs};

/// What is spoken on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 keep-alive, one GET at a time.
    Http,
    /// A fixed-size message written, the same number of bytes read back (an echo).
    Echo,
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub proto: Proto,
    /// TLS around the protocol (`https://`, `tls://`).
    pub tls: bool,
    /// Host as written in the URL, without the port: the TLS server name.
    pub hostname: String,
    /// `Host` header value, as written in the URL (host and port if given).
    pub host: String,
    /// Path and query, starting with `/` (HTTP only).
    pub path: String,
}

impl Target {
    /// Parses `http[s]://host[:port][/path]` or `tcp|tls://host:port` and resolves
    /// the host.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?}: write a URL such as http://127.0.0.1:8080/"))?;
        let (proto, tls, default_port) = match scheme {
            "http" => (Proto::Http, false, Some(80)),
            "https" => (Proto::Http, true, Some(443)),
            "tcp" => (Proto::Echo, false, None),
            "tls" => (Proto::Echo, true, None),
            _ => {
                return Err(format!(
                    "{url:?}: scheme must be http://, https://, tcp:// or tls://"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: missing host"));
        }
        if proto == Proto::Echo && path != "/" {
            return Err(format!("{url:?}: {scheme}:// takes no path"));
        }
        let has_port = !authority.ends_with(']') && authority.contains(':');
        let with_port = match (has_port, default_port) {
            (true, _) => authority.to_string(),
            (false, Some(p)) => format!("{authority}:{p}"),
            (false, None) => return Err(format!("{url:?}: {scheme}:// needs a port")),
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url:?}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url:?}: {with_port} resolves to no address"))?;
        let hostname = match with_port.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        Ok(Self {
            addr,
            proto,
            tls,
            hostname: hostname.to_string(),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The bytes every request writes, built once: the GET for HTTP, `size` bytes
    /// for an echo.
    pub fn request_bytes(&self, size: usize) -> Vec<u8> {
        match self.proto {
            Proto::Http => format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringmesh-loadgen\r\nAccept: */*\r\n\r\n",
                self.path, self.host
            )
            .into_bytes(),
            // Printable, so a capture of the traffic stays readable.
            Proto::Echo => (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Target {
        Target::parse(url).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_http_urls() {
        let t = ok("http://127.0.0.1:8080/a?b=1");
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.hostname, "127.0.0.1");
        assert_eq!(t.path, "/a?b=1");
        assert!(!t.tls);
        let t = ok("http://127.0.0.1");
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.path, "/");
        assert!(Target::parse("http:///x").is_err());
        assert!(Target::parse("ftp://127.0.0.1/").is_err());
        assert!(Target::parse("127.0.0.1:80").is_err());
    }

    #[test]
    fn parses_tls_and_tcp_urls() {
        let t = ok("https://localhost:8443/");
        assert!(t.tls);
        assert_eq!(t.proto, Proto::Http);
        assert_eq!(t.hostname, "localhost");
        assert_eq!(ok("https://127.0.0.1").addr.port(), 443);
        let t = ok("tcp://127.0.0.1:9000");
        assert_eq!(t.proto, Proto::Echo);
        assert!(!t.tls);
        let t = ok("tls://[::1]:9000");
        assert!(t.tls);
        assert_eq!(t.hostname, "::1");
        assert!(Target::parse("tcp://127.0.0.1").is_err(), "no default port");
        assert!(Target::parse("tcp://127.0.0.1:9/x").is_err(), "no path");
    }

    #[test]
    fn echo_request_has_the_size() {
        let t = ok("tcp://127.0.0.1:9000");
        assert_eq!(t.request_bytes(100).len(), 100);
        assert!(ok("http://127.0.0.1:1/p")
            .request_bytes(100)
            .starts_with(b"GET /p HTTP/1.1\r\n"));
    }
}
