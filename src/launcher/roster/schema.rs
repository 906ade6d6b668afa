//! The strict schema of one roster entry, as written in an agent YAML file.
//!
//! Every section rejects unknown keys, enumerations accept only their listed
//! values, and required fields are enforced, so a typo fails loudly instead of
//! silently falling back to a default. Two coercions keep older files valid: a
//! single string `install.depends_on` becomes a one-element list, and a null
//! `auth.post_capture_state` becomes an empty mapping. `vault.shared_config_patch`
//! is deliberately free-form here; the patcher interprets it.
//!
//! These types mirror the file; [`super::types`] holds the projections the rest
//! of the launcher uses.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use serde_norway::{Mapping, Value};

/// What a roster entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// An agent CLI with its own API (claude, codex, …).
    #[default]
    Native,
    /// A provider driven through OpenCode (blablador, kisski, openrouter).
    Opencode,
    /// An agent that bridges to other providers (opencode itself).
    Bridge,
    /// A developer tool (gh, glab, sonar, …).
    Tool,
    /// Image runtime support (caddy, toad); never listed as an agent or tool.
    Runtime,
}

impl AgentKind {
    /// Whether entries of this kind are agents (have a provider).
    pub fn is_agent(self) -> bool {
        matches!(
            self,
            AgentKind::Native | AgentKind::Opencode | AgentKind::Bridge
        )
    }

    /// The kind as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Native => "native",
            AgentKind::Opencode => "opencode",
            AgentKind::Bridge => "bridge",
            AgentKind::Tool => "tool",
            AgentKind::Runtime => "runtime",
        }
    }
}

/// One roster file (after merging and after `roster_version` is stripped).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    #[serde(default)]
    pub kind: AgentKind,
    pub label: Option<String>,
    pub binary: Option<String>,
    pub git_identity: Option<RawGitIdentity>,
    pub headless: Option<RawHeadless>,
    pub auto_approve: Option<RawAutoApprove>,
    pub session: Option<RawSession>,
    pub capabilities: Option<RawCapabilities>,
    pub wrapper: Option<RawWrapper>,
    pub opencode: Option<RawOpenCode>,
    pub auth: Option<RawAuth>,
    pub vault: Option<RawVault>,
    pub sidecar: Option<RawSidecar>,
    pub install: Option<RawInstall>,
    pub help: Option<RawHelp>,
    #[serde(default)]
    pub mounts: Vec<RawMount>,
    #[serde(default)]
    pub web_ingress: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGitIdentity {
    pub name: Option<String>,
    pub email: Option<String>,
}

fn default_prompt_flag() -> String {
    "-p".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeadless {
    pub subcommand: Option<String>,
    /// An empty string means the prompt is positional.
    #[serde(default = "default_prompt_flag")]
    pub prompt_flag: String,
    pub model_flag: Option<String>,
    pub max_turns_flag: Option<String>,
    pub verbose_flag: Option<String>,
    #[serde(default)]
    pub output_format_flags: Vec<String>,
}

impl Default for RawHeadless {
    fn default() -> Self {
        RawHeadless {
            subcommand: None,
            prompt_flag: default_prompt_flag(),
            model_flag: None,
            max_turns_flag: None,
            verbose_flag: None,
            output_format_flags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoApprove {
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    #[serde(default)]
    pub supports_resume: bool,
    pub resume_flag: Option<String>,
    pub continue_flag: Option<String>,
    pub session_file: Option<String>,
    #[serde(default)]
    pub supports_hook: bool,
}

/// How an agent's log output is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum LogFormat {
    #[default]
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "claude-stream-json")]
    ClaudeStreamJson,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    #[serde(default)]
    pub agents_json: bool,
    #[serde(default)]
    pub add_dir: bool,
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWrapper {
    #[serde(default)]
    pub refuse_subcommands: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenCode {
    pub display_name: String,
    pub base_url: String,
    pub preferred_model: String,
    pub fallback_model: String,
    pub env_var_prefix: String,
    pub config_dir: String,
    pub auth_key_url: String,
    pub api_key_hint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthKey {
    pub label: Option<String>,
    pub key_url: String,
    pub env_var: String,
    pub config_path: String,
    pub printf_template: String,
    pub tool_name: Option<String>,
}

/// How a provider can be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Oauth,
    ApiKey,
}

fn default_auth_modes() -> Vec<AuthMode> {
    vec![AuthMode::ApiKey]
}

fn null_as_empty_state<'de, D>(de: D) -> Result<IndexMap<String, Mapping>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<IndexMap<String, Mapping>>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// One path segment under the mounts directory, e.g. `_codex-config`.
    pub host_dir: String,
    pub container_mount: String,
    pub command: Option<Vec<String>>,
    pub auth_key: Option<RawAuthKey>,
    #[serde(default)]
    pub banner_hint: String,
    #[serde(default)]
    pub extra_run_args: Vec<String>,
    #[serde(default = "default_auth_modes")]
    pub modes: Vec<AuthMode>,
    #[serde(default)]
    pub api_key_hint: String,
    #[serde(default, deserialize_with = "null_as_empty_state")]
    pub post_capture_state: IndexMap<String, Mapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuthRefresh {
    pub token_url: String,
    pub client_id: String,
    pub scope: Option<String>,
}

/// The kind of credential the vault stores for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    #[default]
    ApiKey,
    Oauth,
    OauthToken,
    Pat,
}

fn default_auth_header() -> String {
    "Authorization".into()
}

fn default_auth_prefix() -> String {
    "Bearer ".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    pub route_prefix: String,
    pub upstream: String,
    #[serde(default)]
    pub path_upstreams: IndexMap<String, String>,
    #[serde(default)]
    pub oauth_extra_headers: IndexMap<String, String>,
    /// `dynamic` lets the vault pick the header from the stored credential type.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    #[serde(default = "default_auth_prefix")]
    pub auth_prefix: String,
    #[serde(default)]
    pub credential_type: CredentialType,
    #[serde(default)]
    pub credential_file: String,
    #[serde(default)]
    pub phantom_env: IndexMap<String, bool>,
    #[serde(default)]
    pub oauth_phantom_env: IndexMap<String, bool>,
    #[serde(default)]
    pub base_url_env: String,
    #[serde(default)]
    pub socket_env: String,
    /// Free-form; interpreted by the config patcher.
    pub shared_config_patch: Option<Mapping>,
    pub oauth_refresh: Option<RawOAuthRefresh>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSidecar {
    pub tool_name: Option<String>,
    #[serde(default)]
    pub env_map: IndexMap<String, String>,
}

fn string_or_list<'de, D>(de: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match Option::<Value>::deserialize(de)? {
        None => Ok(Vec::new()),
        Some(v) => match OneOrMany::deserialize(v) {
            Ok(OneOrMany::One(s)) => Ok(vec![s]),
            Ok(OneOrMany::Many(v)) => Ok(v),
            Err(_) => Err(serde::de::Error::custom(
                "expected a string or a list of strings",
            )),
        },
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstall {
    #[serde(default, deserialize_with = "string_or_list")]
    pub depends_on: Vec<String>,
    /// A Dockerfile fragment run as root (a template with `family` in scope).
    #[serde(default)]
    pub run_as_root: String,
    /// A Dockerfile fragment run as the `dev` user.
    #[serde(default)]
    pub run_as_dev: String,
}

/// Which help listing an entry appears in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HelpSection {
    #[default]
    Agent,
    DevTool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHelp {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub section: HelpSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMount {
    pub host_dir: String,
    pub container_path: String,
    pub label: Option<String>,
}
