//! The container environment and volumes for one agent launch.
//!
//! [`assemble_container_env`] is a pure function: from a typed spec and the
//! roster it computes the variables (in a fixed, documented order), the volume
//! list, and a [`HostPreparation`] describing the host-side work the launch
//! needs (directories to create, credential files to touch so their read-only
//! shadow mounts have a source, shared-config patches to reconcile).
//! [`prepare_host`] performs that work; the launcher calls it on every launch,
//! before starting the container, and must not start it if preparation fails.
//!
//! Variable order: task and protocol; timezone; OpenCode provider settings; git
//! author and committer; authorship and the human identity; branch and repo
//! URLs; vault variables supplied by the caller; unrestricted-mode variables;
//! the shared directory.
//!
//! Volume order: workspace; each shared config mount, followed by the read-only
//! shadow of its credential file; the agent config dir; the shared dir; extra
//! volumes.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use nix::fcntl::OFlag;

use crate::launcher::roster::{Roster, RosterError};
use crate::launcher::vault::location::LocationError;
use crate::launcher::vault::{
    apply_shared_config_patches, ConfigPatchError, PatchReport, PatchSelection, VaultLocation,
};

/// Version of the host↔container variable and script contract (`TEROK_CONTAINER_PROTOCOL`).
/// 3 is terok-sandbox's current layout: each service's socket in its own directory under
/// `/run/terok` (the vault's at `/run/terok/vault/vault.sock`).
pub const CONTAINER_PROTOCOL: u32 = 3;
/// Where the workspace is mounted in the container.
pub const CONTAINER_WORKSPACE: &str = "/workspace";
/// Where the agent config dir is mounted in the container.
pub const CONTAINER_AGENT_CONFIG: &str = "/home/dev/.terok";

/// How a bind mount is relabelled for SELinux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Shared between containers (`:z`).
    Shared,
    /// Private to this container (`:Z`).
    Private,
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub container: String,
    pub sharing: Sharing,
    pub read_only: bool,
}

impl Volume {
    /// A read-write volume.
    pub fn new(host: impl Into<PathBuf>, container: impl Into<String>, sharing: Sharing) -> Self {
        Volume {
            host: host.into(),
            container: container.into(),
            sharing,
            read_only: false,
        }
    }

    /// The `podman run -v` argument: `host:container:z|Z[,ro]`.
    pub fn to_mount_arg(&self) -> String {
        let label = match self.sharing {
            Sharing::Shared => "z",
            Sharing::Private => "Z",
        };
        let ro = if self.read_only { ",ro" } else { "" };
        format!("{}:{}:{label}{ro}", self.host.display(), self.container)
    }
}

/// Everything the caller decides about one launch.
#[derive(Debug, Clone)]
pub struct ContainerEnvSpec {
    pub task_id: String,
    /// The agent to run; unknown names fall back to a generic git identity.
    pub provider_name: String,
    /// Host workspace, created by the caller.
    pub workspace_host_path: PathBuf,
    /// Root of the shared config mounts (normally [`crate::launcher::paths::HostPaths::mounts_dir`]).
    pub mounts_base: PathBuf,
    pub code_repo: Option<String>,
    pub clone_from: Option<String>,
    pub branch: Option<String>,
    /// Git identity overrides; unset fields fall back to the agent's identity.
    pub git_author_name: Option<String>,
    pub git_author_email: Option<String>,
    pub git_committer_name: Option<String>,
    pub git_committer_email: Option<String>,
    /// Authorship mode read by in-container wrappers (`TEROK_GIT_AUTHORSHIP`).
    pub authorship: String,
    pub human_name: String,
    pub human_email: String,
    /// Providers to patch (`None`: all with a patch; empty: none).
    pub enabled_vault_patch_providers: Option<BTreeSet<String>>,
    /// Providers whose managed patch values are removed (`None`: none).
    pub disabled_vault_patch_providers: Option<BTreeSet<String>>,
    /// Providers whose credential file stays writable in the container.
    pub expose_credential_providers: BTreeSet<String>,
    /// Vault variables (phantom tokens, base URLs, ports) resolved by the caller.
    pub vault_env: Vec<(String, String)>,
    /// Auto-approve mode for every agent.
    pub unrestricted: bool,
    /// IANA zone for `TZ`; `None` leaves the image default.
    pub timezone: Option<String>,
    pub agent_config_dir: Option<PathBuf>,
    pub shared_dir: Option<PathBuf>,
    pub shared_mount: String,
    pub extra_volumes: Vec<Volume>,
}

impl ContainerEnvSpec {
    /// A spec with the standard defaults for everything but the required fields.
    pub fn new(
        task_id: impl Into<String>,
        provider_name: impl Into<String>,
        workspace: impl Into<PathBuf>,
        mounts_base: impl Into<PathBuf>,
    ) -> Self {
        ContainerEnvSpec {
            task_id: task_id.into(),
            provider_name: provider_name.into(),
            workspace_host_path: workspace.into(),
            mounts_base: mounts_base.into(),
            code_repo: None,
            clone_from: None,
            branch: None,
            git_author_name: None,
            git_author_email: None,
            git_committer_name: None,
            git_committer_email: None,
            authorship: "agent".into(),
            human_name: "Nobody".into(),
            human_email: "nobody@localhost".into(),
            enabled_vault_patch_providers: None,
            disabled_vault_patch_providers: None,
            expose_credential_providers: BTreeSet::new(),
            vault_env: Vec::new(),
            unrestricted: true,
            timezone: None,
            agent_config_dir: None,
            shared_dir: None,
            shared_mount: "/shared".into(),
            extra_volumes: Vec::new(),
        }
    }
}

/// Host-side work a launch needs before the container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPreparation {
    /// Directories to create (mount sources and the shared dir).
    pub dirs: Vec<PathBuf>,
    /// Credential files to create empty when missing (sources of read-only shadows).
    pub credential_files: Vec<PathBuf>,
    pub mounts_base: PathBuf,
    pub patch_enabled: Option<BTreeSet<String>>,
    pub patch_disabled: Option<BTreeSet<String>>,
}

/// The assembled environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEnv {
    /// Variables in insertion order; a later write to a key keeps its first position.
    pub env: IndexMap<String, String>,
    pub volumes: Vec<Volume>,
    pub prepare: HostPreparation,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Computes the environment and volumes for `spec`; touches nothing.
pub fn assemble_container_env(
    spec: &ContainerEnvSpec,
    roster: &Roster,
) -> Result<ContainerEnv, RosterError> {
    let mut env: IndexMap<String, String> = IndexMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), v.to_string());
    };
    set("TASK_ID", &spec.task_id);
    set("REPO_ROOT", CONTAINER_WORKSPACE);
    set("GIT_RESET_MODE", "none");
    set("TEROK_CONTAINER_PROTOCOL", &CONTAINER_PROTOCOL.to_string());
    set("CLAUDE_CONFIG_DIR", "/home/dev/.claude");
    if let Some(tz) = non_empty(&spec.timezone) {
        set("TZ", tz);
    }
    for (k, v) in roster.opencode_env() {
        set(&k, &v);
    }

    let provider = roster.providers().get(&spec.provider_name);
    let author_name = non_empty(&spec.git_author_name)
        .map(String::from)
        .unwrap_or_else(|| {
            provider.map_or_else(|| "AI Agent".into(), |p| p.git_author_name.clone())
        });
    let author_email = non_empty(&spec.git_author_email)
        .map(String::from)
        .unwrap_or_else(|| {
            provider.map_or_else(|| "ai@localhost".into(), |p| p.git_author_email.clone())
        });
    let committer_name = non_empty(&spec.git_committer_name)
        .map(String::from)
        .unwrap_or_else(|| author_name.clone());
    let committer_email = non_empty(&spec.git_committer_email)
        .map(String::from)
        .unwrap_or_else(|| author_email.clone());
    set("GIT_AUTHOR_NAME", &author_name);
    set("GIT_AUTHOR_EMAIL", &author_email);
    set("GIT_COMMITTER_NAME", &committer_name);
    set("GIT_COMMITTER_EMAIL", &committer_email);

    set("TEROK_GIT_AUTHORSHIP", &spec.authorship);
    set("HUMAN_GIT_NAME", &spec.human_name);
    set("HUMAN_GIT_EMAIL", &spec.human_email);
    if let Some(b) = non_empty(&spec.branch) {
        set("GIT_BRANCH", b);
    }
    if let Some(r) = non_empty(&spec.code_repo) {
        set("CODE_REPO", r);
    }
    if let Some(c) = non_empty(&spec.clone_from) {
        set("CLONE_FROM", c);
    }
    for (k, v) in &spec.vault_env {
        set(k, v);
    }
    if spec.unrestricted {
        set("TEROK_UNRESTRICTED", "1");
        for (k, v) in roster.auto_approve_env()? {
            set(&k, &v);
        }
    }
    if spec.shared_dir.is_some() {
        set("TEROK_SHARED_DIR", &spec.shared_mount);
    }

    let mut volumes = vec![Volume::new(
        &spec.workspace_host_path,
        CONTAINER_WORKSPACE,
        Sharing::Private,
    )];
    let mut dirs = Vec::new();
    let mut credential_files = Vec::new();
    for m in roster.mounts() {
        let host_dir = spec.mounts_base.join(&m.host_dir);
        dirs.push(host_dir.clone());
        volumes.push(Volume::new(&host_dir, &m.container_path, Sharing::Shared));
        if m.credential_file.is_empty() || spec.expose_credential_providers.contains(&m.provider) {
            continue;
        }
        let host_file = host_dir.join(&m.credential_file);
        credential_files.push(host_file.clone());
        volumes.push(Volume {
            host: host_file,
            container: format!("{}/{}", m.container_path, m.credential_file),
            sharing: Sharing::Shared,
            read_only: true,
        });
    }
    if let Some(dir) = &spec.agent_config_dir {
        volumes.push(Volume::new(dir, CONTAINER_AGENT_CONFIG, Sharing::Private));
    }
    if let Some(dir) = &spec.shared_dir {
        dirs.push(dir.clone());
        volumes.push(Volume::new(dir, &spec.shared_mount, Sharing::Shared));
    }
    volumes.extend(spec.extra_volumes.iter().cloned());

    Ok(ContainerEnv {
        env,
        volumes,
        prepare: HostPreparation {
            dirs,
            credential_files,
            mounts_base: spec.mounts_base.clone(),
            patch_enabled: spec.enabled_vault_patch_providers.clone(),
            patch_disabled: spec.disabled_vault_patch_providers.clone(),
        },
    })
}

/// Why host preparation failed; the container must not start.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create credential file {}: {source}", path.display())]
    CredentialFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to create credential file through symlink at {}", path.display())]
    CredentialSymlink { path: PathBuf },
    #[error(transparent)]
    Patch(#[from] ConfigPatchError),
}

/// Creates directories, touches credential files and reconciles config patches.
pub fn prepare_host(
    prep: &HostPreparation,
    roster: &Roster,
    location: impl FnOnce() -> Result<VaultLocation, LocationError>,
) -> Result<PatchReport, PrepareError> {
    for dir in &prep.dirs {
        std::fs::create_dir_all(dir).map_err(|source| PrepareError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    for file in &prep.credential_files {
        touch_nofollow(file)?;
    }
    let selection = PatchSelection {
        enabled: prep.patch_enabled.as_ref(),
        disabled: prep.patch_disabled.as_ref(),
    };
    Ok(apply_shared_config_patches(
        roster,
        &prep.mounts_base,
        &selection,
        location,
    )?)
}

/// Creates `path` empty if missing, never through a symlink, never truncating.
fn touch_nofollow(path: &Path) -> Result<(), PrepareError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| PrepareError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            Err(PrepareError::CredentialSymlink {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == ErrorKind::IsADirectory => Err(PrepareError::CredentialFile {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(source) => Err(PrepareError::CredentialFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The host's IANA time zone from `TZ` or `/etc/localtime`, if it can be named.
pub fn detect_host_timezone() -> Option<String> {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':');
        if !tz.is_empty() && !tz.starts_with('/') {
            return Some(tz.to_string());
        }
    }
    let target = std::fs::read_link("/etc/localtime").ok()?;
    let text = target.to_string_lossy();
    text.split_once("zoneinfo/")
        .map(|(_, zone)| zone.to_string())
        .filter(|z| !z.is_empty())
}

#[cfg(test)]
mod tests;
