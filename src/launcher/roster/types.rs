//! Runtime views of roster entries, projected from the validated schema.
//!
//! Each type carries only what its consumer needs and every fallback is already
//! resolved (labels, binaries, git identities, derived auth), so no consumer
//! re-derives defaults.

use indexmap::IndexMap;
use serde::Serialize;
use serde_norway::Mapping;

pub use super::schema::{AgentKind, AuthMode, CredentialType, HelpSection, LogFormat};

/// OpenCode settings of a `kind: opencode` provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenCodeConfig {
    pub display_name: String,
    pub base_url: String,
    pub preferred_model: String,
    pub fallback_model: String,
    pub env_var_prefix: String,
    pub config_dir: String,
    pub auth_key_url: String,
}

impl OpenCodeConfig {
    /// The `TEROK_OC_<NAME>_*` variables the in-container wrappers read.
    pub fn env(&self, name: &str) -> Vec<(String, String)> {
        let upper = name.to_uppercase().replace('-', "_");
        let fields = [
            ("BASE_URL", &self.base_url),
            ("PREFERRED_MODEL", &self.preferred_model),
            ("FALLBACK_MODEL", &self.fallback_model),
            ("DISPLAY_NAME", &self.display_name),
            ("ENV_VAR_PREFIX", &self.env_var_prefix),
            ("CONFIG_DIR", &self.config_dir),
        ];
        fields
            .into_iter()
            .map(|(suffix, value)| (format!("TEROK_OC_{upper}_{suffix}"), value.clone()))
            .collect()
    }
}

/// An agent that can run a task (kinds `native`, `opencode`, `bridge`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentProvider {
    pub name: String,
    pub label: String,
    pub binary: String,
    pub git_author_name: String,
    pub git_author_email: String,
    pub headless_subcommand: Option<String>,
    pub prompt_flag: String,
    pub auto_approve_env: IndexMap<String, String>,
    pub auto_approve_flags: Vec<String>,
    pub output_format_flags: Vec<String>,
    pub model_flag: Option<String>,
    pub max_turns_flag: Option<String>,
    pub verbose_flag: Option<String>,
    pub supports_session_resume: bool,
    pub resume_flag: Option<String>,
    pub continue_flag: Option<String>,
    pub session_file: Option<String>,
    pub supports_agents_json: bool,
    pub supports_session_hook: bool,
    pub supports_add_dir: bool,
    #[serde(skip)]
    pub log_format: LogFormat,
    pub opencode: Option<OpenCodeConfig>,
    pub refuse_subcommands: Vec<String>,
}

/// How `terok-executor auth` stores a pasted API key for tools without OAuth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthKey {
    pub label: String,
    pub key_url: String,
    pub env_var: String,
    pub config_path: String,
    pub printf_template: String,
    pub tool_name: String,
}

/// How a provider is authenticated and where its shared config lives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthProvider {
    pub name: String,
    pub label: String,
    /// One segment under the mounts directory.
    pub host_dir: String,
    pub container_mount: String,
    /// The container command for OAuth mode (empty when none).
    pub command: Vec<String>,
    /// Set when the key is captured by a prompt rather than a command.
    pub auth_key: Option<AuthKey>,
    pub banner_hint: String,
    pub extra_run_args: Vec<String>,
    pub modes: Vec<AuthMode>,
    pub api_key_hint: String,
    #[serde(skip)]
    pub post_capture_state: IndexMap<String, Mapping>,
}

/// A host directory shared into every container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountDef {
    pub host_dir: String,
    pub container_path: String,
    pub label: String,
    /// The credential file shadowed read-only inside the mount (empty when none).
    pub credential_file: String,
    /// The provider owning the credential file (empty for plain mounts).
    pub provider: String,
}

/// The vault's OAuth refresh endpoint for a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthRefresh {
    pub token_url: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// How the vault proxies one provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VaultRoute {
    pub provider: String,
    pub route_prefix: String,
    pub upstream: String,
    pub path_upstreams: IndexMap<String, String>,
    pub oauth_extra_headers: IndexMap<String, String>,
    pub auth_header: String,
    pub auth_prefix: String,
    pub credential_type: CredentialType,
    pub credential_file: String,
    pub phantom_env: IndexMap<String, bool>,
    pub oauth_phantom_env: IndexMap<String, bool>,
    pub base_url_env: String,
    pub socket_env: String,
    /// Free-form patch spec, interpreted by the config patcher.
    #[serde(skip)]
    pub shared_config_patch: Option<Mapping>,
    pub oauth_refresh: Option<OAuthRefresh>,
}

/// How a tool runs in the sidecar image with its real key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SidecarSpec {
    pub tool_name: String,
    /// Container variable ← key in the stored credential.
    pub env_map: IndexMap<String, String>,
}

/// How an entry is installed into the agent image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallSpec {
    pub depends_on: Vec<String>,
    pub run_as_root: String,
    pub run_as_dev: String,
}

/// The entry's line in the in-container help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelpSpec {
    pub label: String,
    pub section: HelpSection,
}
