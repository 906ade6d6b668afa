//! Errors of the shared-config patcher.
//!
//! Any of these means vault routing for a container cannot be established, so
//! the caller must not start the container.

use std::path::PathBuf;

use super::location::LocationError;

/// A shared config patch failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigPatchError {
    #[error("invalid patch file path: '{file}'")]
    InvalidPath { file: String },
    #[error("patch target {} escapes shared dir {}", target.display(), base.display())]
    Escapes { target: PathBuf, base: PathBuf },
    #[error("refusing to read through symlink at {}", path.display())]
    SymlinkRead { path: PathBuf },
    #[error("refusing to write through symlink at {}", path.display())]
    SymlinkWrite { path: PathBuf },
    #[error("refusing to delete directory at {}", path.display())]
    DeleteDirectory { path: PathBuf },
    /// The user's file is not valid TOML/YAML; it was left untouched.
    #[error("cannot patch {}: {message}; the file was left untouched", path.display())]
    Unparsable { path: PathBuf, message: String },
    /// The roster's `shared_config_patch` is malformed.
    #[error("invalid shared_config_patch: {0}")]
    InvalidSpec(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Any other failure while applying, with the provider and file named.
    #[error("failed to apply vault config patch for {provider} (file='{file}'): {source}")]
    Apply {
        provider: String,
        file: String,
        #[source]
        source: Box<ConfigPatchError>,
    },
    /// Any other failure while removing a disabled provider's values.
    #[error("failed to remove vault config patch for {provider}: {source}")]
    Remove {
        provider: String,
        #[source]
        source: Box<ConfigPatchError>,
    },
}

impl ConfigPatchError {
    /// Whether the error is reported as-is rather than wrapped with the provider.
    ///
    /// Path-safety refusals and unparsable files already name the file and are
    /// the errors callers match on.
    pub fn is_direct(&self) -> bool {
        !matches!(
            self,
            ConfigPatchError::Io { .. } | ConfigPatchError::InvalidSpec(_)
        )
    }
}
