//! The contract between ringmesh-control and ringmesh-dataplane: the TOML file model,
//! its validation, and the compiled snapshot both processes agree on.
//!
//! A config goes through three stages: [`file`] (serde types, as written) →
//! [`validated`] (checked, every error reported at once) → [`snapshot`] (defaults
//! filled in, stable ids assigned, generation stamped). [`compile_str`] and
//! [`compile_file`] run all three.

// Tests may unwrap: a panic there is a failed test, not a crashed proxy.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod binary;
pub mod compile;
pub mod defaults;
pub mod delta;
pub mod error;
pub mod file;
pub mod ids;
mod parse;
mod sections;
pub mod snapshot;
mod suggest;
pub mod units;
pub mod validate;
pub mod validated;
pub mod wire;

pub use error::{config_error, ConfigError, ConfigErrors, Location};
pub use snapshot::Snapshot;

use std::path::Path;

/// Parses, validates and compiles config `text`. `origin` names the text in
/// error messages (usually the file name).
pub fn compile_str(text: &str, origin: &str, generation: u64) -> Result<Snapshot, ConfigErrors> {
    let file = parse::parse_file(text).map_err(|e| ConfigErrors::new(origin, vec![e]))?;
    let valid = validate::validate(&file).map_err(|errors| ConfigErrors::new(origin, errors))?;
    Ok(compile::compile(&valid, generation))
}

/// Reads and compiles the config file at `path`; its display form is the origin.
pub fn compile_file(path: &Path, generation: u64) -> Result<Snapshot, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => compile_str(&text, &origin, generation),
        Err(e) => Err(config_error(origin, "", e.to_string(), None)),
    }
}

/// Compiles the same config file again and again (the control process's
/// reloads): sections of the text unchanged since the last compile are not parsed
/// again (see `sections`). Results and errors are the same as [`compile_str`]'s.
#[derive(Debug, Default)]
pub struct Compiler {
    sections: sections::SectionCache,
}

impl Compiler {
    pub fn new() -> Self {
        Compiler::default()
    }

    pub fn compile_str(
        &mut self,
        text: &str,
        origin: &str,
        generation: u64,
    ) -> Result<Snapshot, ConfigErrors> {
        let (file, layout) = self
            .sections
            .parse(text)
            .map_err(|e| ConfigErrors::new(origin, vec![e]))?;
        let valid = validate::validate(&file);
        // Kept even when the file does not validate: the next edit usually
        // fixes one section and leaves the others as they are.
        if let Some(layout) = layout {
            self.sections.keep(text, &layout, file);
        }
        let valid = valid.map_err(|errors| ConfigErrors::new(origin, errors))?;
        let snapshot = compile::compile(&valid, generation);
        free_in_background(valid);
        Ok(snapshot)
    }

    pub fn compile_file(&mut self, path: &Path, generation: u64) -> Result<Snapshot, ConfigErrors> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => self.compile_str(&text, &origin, generation),
            Err(e) => Err(config_error(origin, "", e.to_string(), None)),
        }
    }
}

/// Drops `value` on a short-lived thread: freeing the validated form of a large
/// table takes milliseconds that a reload should not wait for. When no thread can
/// be started it is dropped here.
pub fn free_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("ringmesh-free".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiler_gives_what_compile_str_gives() {
        let good = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n\
                    [[listener.route]]\ncluster = \"c\"\n[[cluster]]\nname = \"c\"\n\
                    endpoints = [\"127.0.0.1:2\"]\n";
        let bad = good.replace(
            "cluster = \"c\"\n[[cluster]]",
            "cluster = \"d\"\n[[cluster]]",
        );
        let mut compiler = Compiler::new();
        for (generation, text) in [good, &bad, good, &bad].into_iter().enumerate() {
            let generation = generation as u64 + 1;
            assert_eq!(
                compiler.compile_str(text, "mesh.toml", generation),
                compile_str(text, "mesh.toml", generation)
            );
        }
        let err = compiler.compile_str(&bad, "mesh.toml", 9).unwrap_err();
        assert_eq!(err.paths(), vec!["listener[0].route[0].cluster"]);
    }

    #[test]
    fn unreadable_file_is_a_config_error() {
        let path = Path::new("/nonexistent/ringmesh/mesh.toml");
        let err = compile_file(path, 1).unwrap_err();
        assert_eq!(err.origin, "/nonexistent/ringmesh/mesh.toml");
        assert_eq!(err.errors.len(), 1);
        assert_eq!(err.errors[0].path, "");
        assert!(err
            .to_string()
            .starts_with("/nonexistent/ringmesh/mesh.toml: "));
    }

    #[test]
    fn readable_file_compiles() {
        let dir = std::env::temp_dir().join(format!("ringmesh-api-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mesh.toml");
        std::fs::write(
            &path,
            "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n",
        )
        .unwrap();
        let snapshot = compile_file(&path, 7).unwrap();
        assert_eq!(snapshot.generation, 7);
        assert_eq!(snapshot.clusters.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syntax_error_display_has_line_and_column() {
        let err = compile_str("[runtime]\nworkers = \n", "mesh.toml", 1).unwrap_err();
        assert!(err.to_string().starts_with("mesh.toml:2:11: "), "{err}");
    }

    #[test]
    fn schema_error_display_has_path() {
        let err = compile_str("[runtime]\nworkerz = 2\n", "mesh.toml", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mesh.toml: runtime.workerz: unknown key \"workerz\" (did you mean \"workers\"? \
             expected one of: workers, drain_timeout, admin)"
        );
    }
}
