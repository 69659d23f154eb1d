//! What loading reports: one [`Diagnostic`] per problem, with file, line and key path, and the
//! [`Report`] that collects them so that one run shows every problem.

use std::fmt;

/// How bad a diagnostic is: errors refuse the file, warnings are printed and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    /// Key path such as `channels[1].topic`; empty when the problem is not about one key.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics for one file.
pub(super) struct Report {
    file: String,
    items: Vec<Diagnostic>,
}

impl Report {
    pub(super) fn new(file: &str) -> Self {
        Report {
            file: file.to_owned(),
            items: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, severity: Severity, line: usize, path: &str, message: String) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            path: path.to_owned(),
            message,
        });
    }

    pub(super) fn error_at(&mut self, line: usize, path: &str, message: String) {
        self.push(Severity::Error, line, path, message);
    }

    pub(super) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// All diagnostics, in file order.
    pub(super) fn finish(&mut self) -> Vec<Diagnostic> {
        let mut items = std::mem::take(&mut self.items);
        items.sort_by_key(|d| d.line);
        items
    }
}
