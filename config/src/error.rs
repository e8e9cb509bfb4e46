//! Diagnostics in HAProxy's shape: every message names the file and line it is about.
//! Never panics on any input; the parser collects these instead of stopping at the first.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a directive came from, so every message and every runtime object can point back
/// at the configuration line that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, shared by every line that came from it.
    pub file: Arc<PathBuf>,
    /// One-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// How serious a diagnostic is; alerts make the configuration invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `.diag` output: shown only in diagnostic mode.
    Diag,
    /// `.notice` output.
    Notice,
    /// Suspicious but loadable.
    Warning,
    /// The configuration cannot be used.
    Alert,
}

impl Severity {
    fn tag(self) -> &'static str {
        match self {
            Severity::Diag => "[DIAG]   ",
            Severity::Notice => "[NOTICE] ",
            Severity::Warning => "[WARNING]",
            Severity::Alert => "[ALERT]  ",
        }
    }
}

/// One message about the configuration, printed the way HAProxy prints its own
/// (`[ALERT]    (pid) : config : parsing [file:line] : message`) so that existing log
/// watchers and habits keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// The line it is about, when it is about one.
    pub location: Option<Location>,
    /// What is wrong, in one sentence, naming the keyword.
    pub message: String,
}

impl Diagnostic {
    /// An alert about a configuration line.
    pub fn alert(location: &Location, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Alert,
            location: Some(location.clone()),
            message: message.into(),
        }
    }

    /// A warning about a configuration line.
    pub fn warning(location: &Location, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            location: Some(location.clone()),
            message: message.into(),
        }
    }

    /// Renders the message with the process id, as HAProxy does on its console.
    pub fn render(&self, pid: u32) -> String {
        match &self.location {
            Some(loc) => format!(
                "{}  ({pid}) : config : parsing [{loc}] : {}",
                self.severity.tag(),
                self.message
            ),
            None => format!(
                "{}  ({pid}) : config : {}",
                self.severity.tag(),
                self.message
            ),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "parsing [{loc}] : {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Why a configuration was refused: every alert found, in file order, plus the warnings
/// seen on the way.
#[derive(Debug, Clone, thiserror::Error)]
#[error("configuration has {} error(s)", self.alerts().count())]
pub struct ConfigError {
    /// All diagnostics, alerts and others, in the order they were found.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// Only the alerts.
    pub fn alerts(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Alert)
    }
}
