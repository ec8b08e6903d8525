//! Errors and warnings. Every message starts with `file:line:column:` so editors can jump there.

use std::fmt;
use std::path::PathBuf;

use spiffe_workload_client::EndpointError;

use crate::args::ArgsError;

/// Where in a configuration file something was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The configuration file, as it was named.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column (characters), when known.
    pub column: Option<u32>,
}

impl Location {
    /// A location naming only the file.
    #[must_use]
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid HCL (or JSON).
    #[error("{location}: syntax error: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// What the parser expected.
        message: String,
    },
    /// A key this program does not know.
    #[error("{location}: unknown key `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// Where the key is.
        location: Location,
        /// The key as written (with its enclosing block, e.g. `health_checks.port`).
        key: String,
        /// A known key with a similar spelling.
        suggestion: Option<String>,
    },
    /// A key that older upstream versions accepted and that has been replaced.
    #[error("{location}: `{key}` is no longer supported; {replacement}")]
    RemovedKey {
        /// Where the key is.
        location: Location,
        /// The key as written.
        key: String,
        /// What to write instead.
        replacement: String,
    },
    /// A value of the wrong type (`cmd = 123`).
    #[error("{location}: {key} = {value}: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        location: Location,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What the key takes.
        expected: &'static str,
        /// What was written.
        found: &'static str,
    },
    /// A value of the right type that is not acceptable (`cert_file_mode = 0899`).
    #[error("{location}: {key} = {value}: {reason}")]
    InvalidValue {
        /// Where the value is.
        location: Location,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what would be valid.
        reason: String,
    },
    /// The same key is set twice.
    #[error("{location}: `{key}` is set twice (first at line {first_line})")]
    Duplicate {
        /// Where the second occurrence is.
        location: Location,
        /// The key.
        key: String,
        /// The line of the first occurrence.
        first_line: usize,
    },
    /// A required key is missing.
    #[error("{location}: {key} is required{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Missing {
        /// Where the enclosing entry is (or the file).
        location: Location,
        /// The key, with its enclosing entry (e.g. `jwt_svids[1].jwt_audience`).
        key: String,
        /// How to provide it.
        hint: Option<String>,
    },
    /// Keys that are valid alone but not together (e.g. `pid_file_name` in one-shot mode).
    #[error("{location}: {message}")]
    Conflict {
        /// Where the (second) offending key is.
        location: Location,
        /// What conflicts and how to fix it.
        message: String,
    },
    /// The agent address (from the file or the environment) is not a valid endpoint.
    #[error("{origin}: invalid agent address: {source}")]
    AgentAddress {
        /// `file:line` or the environment variable it came from.
        origin: String,
        /// Why it is invalid.
        #[source]
        source: EndpointError,
    },
    /// Several independent mistakes, in file order (a file with one mistake reports it alone,
    /// as its own variant). Displayed one per line; [`ConfigError::iter`] yields each.
    #[error("{}", several(errors))]
    Several {
        /// The mistakes (never fewer than two).
        errors: Vec<ConfigError>,
    },
    /// `cmd_args` cannot be split.
    #[error("{location}: cmd_args: {source}")]
    CmdArgs {
        /// Where `cmd_args` is.
        location: Location,
        /// The quoting problem, with its column inside the value.
        #[source]
        source: ArgsError,
    },
}

impl ConfigError {
    /// One error as itself; several as [`ConfigError::Several`], flattened and in file order
    /// (line, then column; errors about the whole file or the environment first).
    #[must_use]
    pub(crate) fn from_many(errors: Vec<ConfigError>) -> Self {
        let mut flat: Vec<ConfigError> = Vec::with_capacity(errors.len());
        for err in errors {
            match err {
                ConfigError::Several { errors } => flat.extend(errors),
                one => flat.push(one),
            }
        }
        flat.sort_by_key(|e| e.location().map(|l| (l.line, l.column)));
        if flat.len() == 1
            && let Some(one) = flat.pop()
        {
            return one;
        }
        ConfigError::Several { errors: flat }
    }

    /// Each mistake on its own: the errors of [`ConfigError::Several`], or this one.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        match self {
            ConfigError::Several { errors } => errors.iter(),
            one => std::slice::from_ref(one).iter(),
        }
    }

    /// Where the mistake is, when it is in the file.
    fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. }
            | ConfigError::UnknownKey { location, .. }
            | ConfigError::RemovedKey { location, .. }
            | ConfigError::WrongType { location, .. }
            | ConfigError::InvalidValue { location, .. }
            | ConfigError::Duplicate { location, .. }
            | ConfigError::Missing { location, .. }
            | ConfigError::Conflict { location, .. }
            | ConfigError::CmdArgs { location, .. } => Some(location),
            ConfigError::Io { .. }
            | ConfigError::AgentAddress { .. }
            | ConfigError::Several { .. } => None,
        }
    }
}

/// Several mistakes, one per line, as `file:line:column: ...` each.
fn several(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Something worth telling the user that does not stop the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where it was found (`None` for the environment).
    pub location: Option<Location>,
    /// What happens and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
