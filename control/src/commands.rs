//! The one-shot subcommands (`check`, `status`, `diff`, `ca init`), each returning its exit
//! code after printing its report: results on stdout, problems on stderr.

use crate::ca;
use crate::client::Client;
use crate::diff::diff;
use crate::status::{check_line, format_status};
use ringmesh_api::compile_file;
use std::path::Path;

/// Success; for `diff`, also "nothing would change".
pub const EXIT_OK: u8 = 0;
/// Invalid config, unreachable control process, or another error.
pub const EXIT_ERROR: u8 = 1;
/// `diff` only: the file would change the running table.
pub const EXIT_CHANGES: u8 = 3;

/// Validates `file`: one summary line and 0, or every problem and 1.
pub fn check(file: &Path) -> u8 {
    match compile_file(file, 1) {
        Ok(snapshot) => {
            println!("{}", check_line(&file.display().to_string(), &snapshot));
            EXIT_OK
        }
        Err(errors) => {
            eprintln!("{errors}");
            EXIT_ERROR
        }
    }
}

/// Prints the running control process's status; 1 if it cannot be reached.
pub fn status(socket: &Path) -> u8 {
    match Client::connect(socket).and_then(|mut client| client.status()) {
        Ok(status) => {
            print!("{}", format_status(&status));
            EXIT_OK
        }
        Err(err) => {
            eprintln!("ringmesh-control status: {err}");
            EXIT_ERROR
        }
    }
}

/// Compiles `file` and prints what it would change in the running table.
pub fn diff_running(file: &Path, socket: &Path) -> u8 {
    let proposed = match compile_file(file, 1) {
        Ok(snapshot) => snapshot,
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_ERROR;
        }
    };
    let running = match Client::connect(socket).and_then(|mut client| client.snapshot()) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            eprintln!("ringmesh-control diff: {err}");
            return EXIT_ERROR;
        }
    };
    let changes = diff(&running, &proposed);
    for change in &changes {
        println!("{change}");
    }
    if changes.is_empty() {
        println!("no changes (running generation {})", running.generation);
        EXIT_OK
    } else {
        println!(
            "{} change(s) against running generation {}",
            changes.len(),
            running.generation
        );
        EXIT_CHANGES
    }
}

/// Creates the node's mesh CA in `dir` and prints where it went.
pub fn ca_init(dir: &Path, trust_domain: &str, days: u32, force: bool) -> u8 {
    match ca::init(dir, trust_domain, days, force) {
        Ok(created) => {
            println!("CA certificate: {}", created.cert.display());
            println!("CA key: {} (mode 0600)", created.key.display());
            println!("trust domain: {}", created.trust_domain);
            println!(
                "valid for {days} day(s), until unix time {}",
                created.not_after_unix
            );
            EXIT_OK
        }
        Err(err) => {
            eprintln!("ringmesh-control ca init: {err}");
            EXIT_ERROR
        }
    }
}
