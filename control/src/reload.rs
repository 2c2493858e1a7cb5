//! SIGHUP reload: recompile the config file with the next generation, and publish
//! it only if it is valid and actually different from what is being served.
//!
//! A config with errors changes nothing: the last good snapshot keeps serving and
//! the errors are kept for `status` until the next successful reload. An identical
//! config (same table, only the generation would differ) is a successful reload
//! that sends nothing and keeps the generation, so dataplanes do no work for it.

use crate::state::Shared;
use ringmesh_api::delta::SnapshotDelta;
use ringmesh_api::ConfigErrors;
use std::time::{Duration, Instant};

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new generation is being served and was queued for `dataplanes`.
    Published {
        generation: u64,
        dataplanes: usize,
        compile: Duration,
        fan_out: Duration,
    },
    /// The file compiles to the table already served.
    Unchanged { generation: u64, compile: Duration },
    /// The file has errors; `serving` keeps serving.
    Failed { errors: ConfigErrors, serving: u64 },
    /// The table compiled but cannot be sent (larger than a frame may be).
    Unsendable { error: String, serving: u64 },
}

/// Recompiles the config file and publishes the result if it is new.
pub fn reload(shared: &Shared) -> ReloadOutcome {
    let started = Instant::now();
    let current = shared.current();
    let next = current.generation.saturating_add(1);
    match shared.compile(next) {
        Err(errors) => {
            shared.set_error(errors.to_string());
            ReloadOutcome::Failed {
                errors,
                serving: current.generation,
            }
        }
        Ok(snapshot) => {
            // What changed doubles as the comparison with the served table.
            let delta = SnapshotDelta::between(&current, &snapshot);
            if delta
                .as_ref()
                .is_some_and(|delta| delta.changes_nothing_in(&current))
            {
                shared.clear_error();
                return ReloadOutcome::Unchanged {
                    generation: current.generation,
                    compile: started.elapsed(),
                };
            }
            let compile = started.elapsed();
            let fan_out_started = Instant::now();
            let published = shared.publish(snapshot, delta.as_ref(), Some(started));
            let serving = current.generation;
            // The table just replaced: freed while the dataplanes build the new one.
            ringmesh_api::free_in_background(current);
            match published {
                Ok(dataplanes) => ReloadOutcome::Published {
                    generation: next,
                    dataplanes,
                    compile,
                    fan_out: fan_out_started.elapsed(),
                },
                Err(err) => {
                    let error = format!(
                        "{}: compiled snapshot cannot be sent: {err}",
                        shared.config_path().display()
                    );
                    shared.set_error(error.clone());
                    ReloadOutcome::Unsendable { error, serving }
                }
            }
        }
    }
}

/// Logs a reload's outcome: every config problem on its own line.
pub fn log_outcome(outcome: &ReloadOutcome) {
    match outcome {
        ReloadOutcome::Published {
            generation,
            dataplanes,
            compile,
            fan_out,
        } => tracing::info!(
            generation,
            dataplanes,
            compile = ?compile,
            fan_out = ?fan_out,
            total = ?(*compile + *fan_out),
            "reloaded: new snapshot queued for every connected dataplane"
        ),
        ReloadOutcome::Unchanged {
            generation,
            compile,
        } => tracing::info!(
            generation,
            compile = ?compile,
            "reloaded: config unchanged, nothing sent"
        ),
        ReloadOutcome::Failed { errors, serving } => {
            tracing::error!(
                problems = errors.errors.len(),
                serving,
                "reload rejected; still serving the last good snapshot"
            );
            for line in errors.to_string().lines() {
                tracing::error!("{line}");
            }
        }
        ReloadOutcome::Unsendable { error, serving } => {
            tracing::error!(
                serving,
                "reload rejected; still serving the last good snapshot: {error}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const CONFIG: &str = "[[cluster]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n";

    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(tag: &str, text: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ringmesh-reload-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("mesh.toml");
            std::fs::write(&path, text).unwrap();
            TempConfig(path)
        }

        fn write(&self, text: &str) {
            std::fs::write(&self.0, text).unwrap();
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn unchanged_then_changed_then_broken_then_fixed() {
        let config = TempConfig::new("cycle", CONFIG);
        let first = ringmesh_api::compile_file(&config.0, 1).unwrap();
        let shared = Shared::new(config.0.clone(), first).unwrap();

        assert!(matches!(
            reload(&shared),
            ReloadOutcome::Unchanged { generation: 1, .. }
        ));

        config.write(&CONFIG.replace(":1", ":2"));
        assert!(matches!(
            reload(&shared),
            ReloadOutcome::Published { generation: 2, .. }
        ));

        config.write("[[cluster]]\nname = \"a\"\nendpoints = [\"nowhere\"]\n");
        match reload(&shared) {
            ReloadOutcome::Failed { errors, serving } => {
                assert_eq!(serving, 2);
                assert_eq!(errors.paths(), vec!["cluster[0].endpoints[0]"]);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let status = shared.status();
        assert_eq!(status.generation, 2);
        assert!(status
            .last_error
            .unwrap_or_default()
            .contains("cluster[0].endpoints[0]"));

        // Back to the served table: a successful reload, so the error is cleared.
        config.write(&CONFIG.replace(":1", ":2"));
        assert!(matches!(
            reload(&shared),
            ReloadOutcome::Unchanged { generation: 2, .. }
        ));
        assert_eq!(shared.status().last_error, None);
    }
}
