//! Running `testssl` (Debian package `testssl.sh`) and reading its flat JSON report (`--jsonfile`): an array of
//! objects whose values are all strings, `{"id", "ip", "port", "severity", "finding"[, "cve", "cwe", "hint"]}`.
//!
//! The tests crate has no JSON library, and this one shape is all it needs, so [`parse_findings`] reads exactly
//! that shape (strings with escapes, no numbers or nesting) and refuses anything else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One finding of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: String,
    /// `DEBUG`, `INFO`, `OK`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`, `WARN` (the scan had a problem) or `FATAL`.
    pub severity: String,
    pub finding: String,
}

/// The `testssl` binary on PATH (`testssl.sh` upstream's name too), if any.
pub fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("testssl"), dir.join("testssl.sh")])
        .find(|candidate| candidate.is_file())
}

/// Runs `binary args…`, killed after `limit`; stdout and stderr go to files in `dir` (a full scan prints a lot).
pub fn run(binary: &Path, args: &[&str], dir: &Path, limit: Duration) -> Output {
    let stdout = std::fs::File::create(dir.join("testssl.out")).unwrap();
    let stderr = std::fs::File::create(dir.join("testssl.err")).unwrap();
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {limit:?}; output so far:\n{}",
                binary.display(),
                std::fs::read_to_string(dir.join("testssl.out")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Output {
        status,
        stdout: std::fs::read(dir.join("testssl.out")).unwrap_or_default(),
        stderr: std::fs::read(dir.join("testssl.err")).unwrap_or_default(),
    }
}

/// Reads a flat JSON report.
pub fn parse_findings(text: &str) -> Result<Vec<Finding>, String> {
    let mut p = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut findings = Vec::new();
    p.eat(b'[')?;
    if !p.peek_is(b']') {
        loop {
            findings.push(p.object()?);
            if p.peek_is(b',') {
                p.eat(b',')?;
            } else {
                break;
            }
        }
    }
    p.eat(b']')?;
    p.skip_ws();
    if p.at != p.bytes.len() {
        return Err(format!("trailing bytes at {}", p.at));
    }
    Ok(findings)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek_is(&mut self, byte: u8) -> bool {
        self.skip_ws();
        self.bytes.get(self.at) == Some(&byte)
    }

    fn eat(&mut self, byte: u8) -> Result<(), String> {
        if !self.peek_is(byte) {
            return Err(format!("expected {:?} at byte {}", byte as char, self.at));
        }
        self.at += 1;
        Ok(())
    }

    fn object(&mut self) -> Result<Finding, String> {
        self.eat(b'{')?;
        let (mut id, mut severity, mut finding) = (None, None, None);
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            let value = self.string()?;
            match key.as_str() {
                "id" => id = Some(value),
                "severity" => severity = Some(value),
                "finding" => finding = Some(value),
                _ => {}
            }
            if self.peek_is(b',') {
                self.eat(b',')?;
            } else {
                break;
            }
        }
        self.eat(b'}')?;
        match (id, severity, finding) {
            (Some(id), Some(severity), Some(finding)) => Ok(Finding {
                id,
                severity,
                finding,
            }),
            _ => Err(format!(
                "an object without id, severity or finding before byte {}",
                self.at
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let byte = *self.bytes.get(self.at).ok_or("unterminated string")?;
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escaped = *self.bytes.get(self.at).ok_or("unterminated escape")?;
                    self.at += 1;
                    match escaped {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' | b'f' => out.push(b' '),
                        b'u' => {
                            let hex = self
                                .bytes
                                .get(self.at..self.at + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or("bad \\u escape")?;
                            self.at += 4;
                            let c = char::from_u32(hex).unwrap_or('\u{fffd}');
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_flat_report() {
        let text = r#"[
         {
              "id"           : "TLS1_3",
              "ip"           : "localhost/127.0.0.1",
              "port"         : "443",
              "severity"     : "OK",
              "finding"      : "offered with \"final\"\u0021"
          }
,         {
              "id"           : "BREACH",
              "ip"           : "localhost/127.0.0.1",
              "port"         : "443",
              "severity"     : "MEDIUM",
              "cve"          : "CVE-2013-3587",
              "cwe"          : "CWE-310",
              "finding"      : "potentially NOT ok, uses gzip"
          }
]"#;
        let findings = parse_findings(text).unwrap();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].finding, "offered with \"final\"!");
        assert_eq!(
            (findings[1].id.as_str(), findings[1].severity.as_str()),
            ("BREACH", "MEDIUM")
        );
        assert!(parse_findings("[{\"id\": \"x\"}]").is_err());
        assert!(parse_findings("[").is_err());
        assert_eq!(parse_findings(" [ ] ").unwrap(), vec![]);
    }
}
