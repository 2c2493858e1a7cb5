//! Every example in `configs/` (the files users copy) compiles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn every_example_config_compiles() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut checked = 0;
    let mut failures = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        checked += 1;
        if let Err(errors) = ringmesh_api::compile_file(&path, 1) {
            failures.push(errors.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "example configs do not compile:\n{}",
        failures.join("\n")
    );
    assert!(
        checked >= 3,
        "expected the example configs in {}",
        dir.display()
    );
}
