//! Errors raised while loading and querying the roster.
//!
//! A schema error always names the file to edit, the dotted path of the key and,
//! for a misspelt key or enumeration value, the closest valid spelling.

use std::path::PathBuf;

/// A roster entry that violates the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The file that introduced the offending key (a user file wins over the bundled one).
    pub file: String,
    /// The roster name (the file stem).
    pub agent: String,
    /// The dotted path of the key, e.g. `vault.oauth_refresh.token_url` or `mounts[0].label`.
    pub key: String,
    /// What is wrong, lowercase.
    pub message: String,
    /// The closest valid key or value, when one is near enough.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: agent '{}': ", self.file, self.agent)?;
        if self.key.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "key '{}': {}", self.key, self.message)?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean '{s}'?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaError {}

/// Why the roster could not be loaded or queried.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// A merged entry violates the schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The user roster directory exists but could not be listed.
    #[error("cannot read roster directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A selection named entries without an `install:` section.
    #[error("unknown roster entries: {unknown}; available: {available}")]
    UnknownSelection { unknown: String, available: String },
    /// An `install.depends_on` names an entry that cannot be installed.
    #[error("agent '{agent}' declares depends_on '{dependency}', which has no install: section in the roster")]
    MissingDependency { agent: String, dependency: String },
    /// Two providers ask for different values of the same auto-approve variable.
    #[error(
        "conflicting auto_approve env for '{key}': '{first}' vs '{second}' (provider '{provider}')"
    )]
    AutoApproveConflict {
        key: String,
        first: String,
        second: String,
        provider: String,
    },
    /// A name that is not an agent in the roster.
    #[error("unknown agent '{name}'; available: {available}")]
    UnknownAgent { name: String, available: String },
}
