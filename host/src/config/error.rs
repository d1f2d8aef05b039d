//! Config errors that point at the file, line and field at fault.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The text of a config file and where it came from, kept so that any later
/// stage (validation, plan building, plugin loading) can turn a byte span
/// into a line and column.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    path: PathBuf,
    text: Arc<str>,
}

/// A place in a config file: byte span plus the dotted field path
/// (`listeners[0].routes[1].pool`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLocation {
    /// Byte range of the value in the file, when known.
    pub span: Option<Range<usize>>,
    /// Dotted path of the field.
    pub field: String,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}", file = file.display())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, 0 when the location is unknown.
    pub line: usize,
    /// 1-based column, 0 when the location is unknown.
    pub column: usize,
    /// Dotted path of the field at fault, or `(file)` for the whole file.
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
}

/// Every problem found in one config file, reported together so that an
/// operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

// === impl ConfigSource ===

impl ConfigSource {
    /// Wraps text read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        ConfigSource {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The directory relative plugin paths are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// An error at `location`.
    pub fn error(&self, location: &FieldLocation, message: impl Into<String>) -> ConfigError {
        let (line, column) = location
            .span
            .as_ref()
            .map(|span| self.line_column(span.start))
            .unwrap_or((0, 0));
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            field: location.field.clone(),
            message: message.into(),
        }
    }

    /// 1-based line and column of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}

// === impl FieldLocation ===

impl FieldLocation {
    /// A field at a known span.
    pub fn new(field: impl Into<String>, span: Range<usize>) -> Self {
        FieldLocation {
            span: Some(span),
            field: field.into(),
        }
    }

    /// A field whose value has no span (a missing table, say).
    pub fn unspanned(field: impl Into<String>) -> Self {
        FieldLocation {
            span: None,
            field: field.into(),
        }
    }
}

// === impl ConfigErrors ===

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "{count} error{} in config:",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_line_and_column() {
        let source = ConfigSource::new("bascule.toml", "a = 1\nbb = 2\n");
        let error = source.error(&FieldLocation::new("bb", 11..12), "bad");
        assert_eq!((error.line, error.column), (2, 6));
        assert_eq!(error.to_string(), "bascule.toml:2:6: bb: bad");
    }
}
