//! The config error types every stage reports through: one `ConfigError` per
//! problem, gathered into `ConfigErrors` for a whole file.

use std::fmt;

/// A 1-based position in the file, for errors that have no TOML path (syntax errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// TOML path such as `listener[0].route[3].cluster`; empty when the problem is
    /// not inside the document (an unreadable file, a syntax error).
    pub path: String,
    pub message: String,
    /// How to fix it, when there is something better to say than the message.
    pub hint: Option<String>,
    /// Where in the text, when known and the path alone would not find it.
    pub location: Option<Location>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
            hint: None,
            location: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Every problem found in one config source. Displayed as one line per error:
/// `{origin}: {path}: {message} ({hint})`, or `{origin}:{line}:{col}: {message}`
/// when there is no path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file name (or other label) the errors are about.
    pub origin: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn new(origin: impl Into<String>, errors: Vec<ConfigError>) -> Self {
        ConfigErrors {
            origin: origin.into(),
            errors,
        }
    }

    /// The paths of all errors, in order; convenient in tests and logs.
    pub fn paths(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.path.as_str()).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match (error.path.is_empty(), error.location) {
                (true, Some(at)) => {
                    write!(f, "{}:{}:{}: {error}", self.origin, at.line, at.column)?
                }
                _ => write!(f, "{}: {error}", self.origin)?,
            }
        }
        Ok(())
    }
}

/// A single error for `origin`, for problems found outside this crate, such as the
/// dataplane failing to bind: `config_error("mesh.toml", "listener[1].bind",
/// "address already in use", None)`.
pub fn config_error(
    origin: impl Into<String>,
    path: impl Into<String>,
    message: impl Into<String>,
    hint: Option<String>,
) -> ConfigErrors {
    ConfigErrors::new(
        origin,
        vec![ConfigError::new(path, message).with_optional_hint(hint)],
    )
}

/// Collects errors during validation so that one bad value never hides the next.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<ConfigError>);

impl Errors {
    /// `path` is rendered only here, once an error is known: validation passes
    /// `At` chains that cost nothing when the value is good.
    pub(crate) fn add(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        self.0.push(ConfigError::new(path.to_string(), message));
    }

    pub(crate) fn add_hint(
        &mut self,
        path: impl fmt::Display,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.0
            .push(ConfigError::new(path.to_string(), message).with_hint(hint));
    }

    pub(crate) fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_line_per_error() {
        let errors = ConfigErrors::new(
            "mesh.toml",
            vec![
                ConfigError::new(
                    "listener[0].route[3].cluster",
                    "no cluster named \"paymnts\"",
                )
                .with_hint("did you mean \"payments\"?"),
                ConfigError {
                    path: String::new(),
                    message: "invalid string".into(),
                    hint: None,
                    location: Some(Location { line: 3, column: 8 }),
                },
                ConfigError::new("", "No such file or directory (os error 2)"),
            ],
        );
        assert_eq!(
            errors.to_string(),
            "mesh.toml: listener[0].route[3].cluster: no cluster named \"paymnts\" \
             (did you mean \"payments\"?)\n\
             mesh.toml:3:8: invalid string\n\
             mesh.toml: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn helper_for_bind_errors() {
        let e = config_error(
            "mesh.toml",
            "listener[1].bind",
            "address already in use",
            None,
        );
        assert_eq!(
            e.to_string(),
            "mesh.toml: listener[1].bind: address already in use"
        );
    }
}
