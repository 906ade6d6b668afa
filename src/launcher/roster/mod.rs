//! The agent roster: which agents and tools exist and everything the launcher
//! needs to know about each.
//!
//! Definitions are YAML files (bundled in the binary, optionally overridden by
//! the user), validated against a strict schema and projected into runtime
//! views. Every derived collection is ordered by roster name, which is also the
//! order of `routes.json` and of image labels.

mod bundled;
mod error;
mod loader;
pub mod merge;
pub mod schema;
pub mod types;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;

pub use bundled::BUNDLED_AGENTS;
pub use error::{RosterError, SchemaError};
pub use loader::{load_roster, load_roster_from, ROSTER_VERSION};
pub use merge::{deep_merge, INHERIT};
use schema::RawAgent;
pub use types::*;

/// A user's choice of roster entries to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every entry with an `install:` section.
    All,
    /// These names (lowercase, deduplicated by the resolver).
    Names(Vec<String>),
}

impl Selection {
    /// Parses `claude,codex` or `all`; empty input means all.
    pub fn parse(raw: &str) -> Selection {
        let folded = raw.trim().to_lowercase();
        if folded.is_empty() || folded == "all" {
            return Selection::All;
        }
        let names: Vec<String> = folded
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() {
            Selection::All
        } else {
            Selection::Names(names)
        }
    }
}

/// Kind and label of an entry, kept for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySummary {
    pub name: String,
    pub kind: AgentKind,
    pub label: String,
}

/// The loaded, validated set of agents and tools.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    entries: BTreeMap<String, EntrySummary>,
    providers: BTreeMap<String, AgentProvider>,
    auth_providers: BTreeMap<String, AuthProvider>,
    vault_routes: BTreeMap<String, VaultRoute>,
    sidecars: BTreeMap<String, SidecarSpec>,
    installs: BTreeMap<String, InstallSpec>,
    helps: BTreeMap<String, HelpSpec>,
    mounts: Vec<MountDef>,
    agent_names: Vec<String>,
    all_names: Vec<String>,
    web_ingress: BTreeSet<String>,
    /// Non-fatal problems met while loading (unparsable user files, version notes).
    pub warnings: Vec<String>,
}

impl Roster {
    /// Loads the bundled roster plus the user's overrides from the standard location.
    pub fn load(paths: &crate::launcher::paths::HostPaths) -> Result<Roster, RosterError> {
        load_roster(Some(&paths.user_agents_dir))
    }

    /// Projects validated entries; `entries` must be sorted by name.
    fn project(entries: Vec<(String, RawAgent)>) -> Roster {
        let mut r = Roster::default();
        let mut seen_mounts: IndexMap<String, MountDef> = IndexMap::new();
        for (name, spec) in entries {
            let label = spec
                .label
                .clone()
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| name.clone());
            let is_agent = spec.kind.is_agent();
            r.entries.insert(
                name.clone(),
                EntrySummary {
                    name: name.clone(),
                    kind: spec.kind,
                    label: label.clone(),
                },
            );
            if spec.kind != AgentKind::Runtime {
                r.all_names.push(name.clone());
            }
            if is_agent {
                r.agent_names.push(name.clone());
                r.providers
                    .insert(name.clone(), project_provider(&name, &label, &spec));
            }
            let credential_file = spec
                .vault
                .as_ref()
                .map(|v| v.credential_file.clone())
                .unwrap_or_default();
            let auth = match &spec.auth {
                Some(a) => Some(project_auth(&name, &label, a)),
                None if is_agent => derive_opencode_auth(&name, &label, &spec),
                None => None,
            };
            if let Some(auth) = auth {
                seen_mounts
                    .entry(auth.host_dir.clone())
                    .or_insert_with(|| MountDef {
                        host_dir: auth.host_dir.clone(),
                        container_path: auth.container_mount.clone(),
                        label: format!("{} config", auth.label),
                        credential_file,
                        provider: name.clone(),
                    });
                r.auth_providers.insert(name.clone(), auth);
            }
            for m in &spec.mounts {
                seen_mounts
                    .entry(m.host_dir.clone())
                    .or_insert_with(|| MountDef {
                        host_dir: m.host_dir.clone(),
                        container_path: m.container_path.clone(),
                        label: m
                            .label
                            .clone()
                            .filter(|l| !l.is_empty())
                            .unwrap_or_else(|| name.clone()),
                        credential_file: String::new(),
                        provider: String::new(),
                    });
            }
            if let Some(v) = &spec.vault {
                r.vault_routes.insert(name.clone(), project_vault(&name, v));
            }
            if let Some(s) = &spec.sidecar {
                r.sidecars.insert(
                    name.clone(),
                    SidecarSpec {
                        tool_name: s
                            .tool_name
                            .clone()
                            .filter(|t| !t.is_empty())
                            .unwrap_or_else(|| name.clone()),
                        env_map: s.env_map.clone(),
                    },
                );
            }
            if let Some(i) = &spec.install {
                r.installs.insert(
                    name.clone(),
                    InstallSpec {
                        depends_on: i.depends_on.clone(),
                        run_as_root: i.run_as_root.clone(),
                        run_as_dev: i.run_as_dev.clone(),
                    },
                );
            }
            if let Some(h) = &spec.help {
                r.helps.insert(
                    name.clone(),
                    HelpSpec {
                        label: h.label.clone(),
                        section: h.section,
                    },
                );
            }
            if spec.web_ingress {
                r.web_ingress.insert(name.clone());
            }
        }
        r.mounts = seen_mounts.into_values().collect();
        r
    }

    /// Agents (kinds native, opencode, bridge) by name.
    pub fn providers(&self) -> &BTreeMap<String, AgentProvider> {
        &self.providers
    }

    /// Entries that can be authenticated, by name.
    pub fn auth_providers(&self) -> &BTreeMap<String, AuthProvider> {
        &self.auth_providers
    }

    /// Vault routes by provider name.
    pub fn vault_routes(&self) -> &BTreeMap<String, VaultRoute> {
        &self.vault_routes
    }

    /// Sidecar tool specs by name.
    pub fn sidecars(&self) -> &BTreeMap<String, SidecarSpec> {
        &self.sidecars
    }

    /// Install specs by name (entries without one are absent).
    pub fn installs(&self) -> &BTreeMap<String, InstallSpec> {
        &self.installs
    }

    /// Help lines by name (entries without one are absent).
    pub fn helps(&self) -> &BTreeMap<String, HelpSpec> {
        &self.helps
    }

    /// Shared mounts, deduplicated by host directory (the first definition wins).
    pub fn mounts(&self) -> &[MountDef] {
        &self.mounts
    }

    /// Names of agent entries, sorted.
    pub fn agent_names(&self) -> &[String] {
        &self.agent_names
    }

    /// Names of agents and tools (runtime entries excluded), sorted.
    pub fn all_names(&self) -> &[String] {
        &self.all_names
    }

    /// Entries that publish a host HTTP port.
    pub fn web_ingress(&self) -> &BTreeSet<String> {
        &self.web_ingress
    }

    /// Kind and label of every entry, runtime entries included.
    pub fn entries(&self) -> impl Iterator<Item = &EntrySummary> {
        self.entries.values()
    }

    /// Kind and label of one entry.
    pub fn entry(&self, name: &str) -> Option<&EntrySummary> {
        self.entries.get(name)
    }

    /// The agent to run: `name`, else `default_agent`, else `claude`.
    pub fn provider(
        &self,
        name: Option<&str>,
        default_agent: Option<&str>,
    ) -> Result<&AgentProvider, RosterError> {
        let wanted = name.or(default_agent).unwrap_or("claude");
        self.providers
            .get(wanted)
            .ok_or_else(|| RosterError::UnknownAgent {
                name: wanted.to_string(),
                available: self.agent_names.join(", "),
            })
    }

    /// Expands a selection through `install.depends_on`; the result is sorted.
    pub fn resolve_selection(&self, selection: &Selection) -> Result<Vec<String>, RosterError> {
        let seed: BTreeSet<String> = match selection {
            Selection::All => self.installs.keys().cloned().collect(),
            Selection::Names(n) => n.iter().cloned().collect(),
        };
        let unknown: Vec<&String> = seed
            .iter()
            .filter(|n| !self.installs.contains_key(*n))
            .collect();
        if !unknown.is_empty() {
            return Err(RosterError::UnknownSelection {
                unknown: unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                available: self.installs.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let mut resolved = BTreeSet::new();
        let mut stack: Vec<String> = seed.into_iter().collect();
        while let Some(name) = stack.pop() {
            if !resolved.insert(name.clone()) {
                continue;
            }
            let Some(spec) = self.installs.get(&name) else {
                continue;
            };
            for dep in &spec.depends_on {
                if !self.installs.contains_key(dep) {
                    return Err(RosterError::MissingDependency {
                        agent: name.clone(),
                        dependency: dep.clone(),
                    });
                }
                if !resolved.contains(dep) {
                    stack.push(dep.clone());
                }
            }
        }
        Ok(resolved.into_iter().collect())
    }

    /// Merges every agent's `auto_approve.env`; two different values for one key is an error.
    pub fn auto_approve_env(&self) -> Result<IndexMap<String, String>, RosterError> {
        let mut merged: IndexMap<String, String> = IndexMap::new();
        for p in self.providers.values() {
            for (key, value) in &p.auto_approve_env {
                if let Some(first) = merged.get(key) {
                    if first != value {
                        return Err(RosterError::AutoApproveConflict {
                            key: key.clone(),
                            first: first.clone(),
                            second: value.clone(),
                            provider: p.name.clone(),
                        });
                    }
                }
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged)
    }

    /// `TEROK_OC_<NAME>_*` variables of every OpenCode-based agent.
    pub fn opencode_env(&self) -> Vec<(String, String)> {
        self.providers
            .values()
            .filter_map(|p| p.opencode.as_ref().map(|oc| oc.env(&p.name)))
            .flatten()
            .collect()
    }
}

fn project_provider(name: &str, label: &str, spec: &RawAgent) -> AgentProvider {
    let hl = spec.headless.clone().unwrap_or_default();
    let aa = spec.auto_approve.clone().unwrap_or_default();
    let sess = spec.session.clone().unwrap_or_default();
    let caps = spec.capabilities.clone().unwrap_or_default();
    let wrap = spec.wrapper.clone().unwrap_or_default();
    let gi = spec.git_identity.clone().unwrap_or_default();
    AgentProvider {
        name: name.to_string(),
        label: label.to_string(),
        binary: spec
            .binary
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| name.to_string()),
        git_author_name: gi
            .name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| capitalize(name)),
        git_author_email: gi
            .email
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("noreply@{name}.ai")),
        headless_subcommand: hl.subcommand,
        prompt_flag: hl.prompt_flag,
        auto_approve_env: aa.env,
        auto_approve_flags: aa.flags,
        output_format_flags: hl.output_format_flags,
        model_flag: hl.model_flag,
        max_turns_flag: hl.max_turns_flag,
        verbose_flag: hl.verbose_flag,
        supports_session_resume: sess.supports_resume,
        resume_flag: sess.resume_flag,
        continue_flag: sess.continue_flag,
        session_file: sess.session_file,
        supports_agents_json: caps.agents_json,
        supports_session_hook: sess.supports_hook,
        supports_add_dir: caps.add_dir,
        log_format: caps.log_format,
        opencode: spec.opencode.as_ref().map(|oc| OpenCodeConfig {
            display_name: oc.display_name.clone(),
            base_url: oc.base_url.clone(),
            preferred_model: oc.preferred_model.clone(),
            fallback_model: oc.fallback_model.clone(),
            env_var_prefix: oc.env_var_prefix.clone(),
            config_dir: oc.config_dir.clone(),
            auth_key_url: oc.auth_key_url.clone(),
        }),
        refuse_subcommands: wrap.refuse_subcommands,
    }
}

/// Python's `str.capitalize`: first character upper, the rest lower.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

fn project_auth(name: &str, label: &str, a: &schema::RawAuth) -> AuthProvider {
    let auth_key = a.auth_key.as_ref().map(|k| AuthKey {
        label: k.label.clone().unwrap_or_else(|| label.to_string()),
        key_url: k.key_url.clone(),
        env_var: k.env_var.clone(),
        config_path: k.config_path.clone(),
        printf_template: k.printf_template.clone(),
        tool_name: k.tool_name.clone().unwrap_or_else(|| name.to_string()),
    });
    AuthProvider {
        name: name.to_string(),
        label: label.to_string(),
        host_dir: a.host_dir.clone(),
        container_mount: a.container_mount.clone(),
        // With neither `command` nor `auth_key` there is no OAuth container.
        command: a.command.clone().unwrap_or_default(),
        auth_key: if a.command.is_some() { None } else { auth_key },
        banner_hint: a.banner_hint.clone(),
        extra_run_args: a.extra_run_args.clone(),
        modes: a.modes.clone(),
        api_key_hint: a.api_key_hint.clone(),
        post_capture_state: a.post_capture_state.clone(),
    }
}

fn derive_opencode_auth(name: &str, label: &str, spec: &RawAgent) -> Option<AuthProvider> {
    let oc = spec.opencode.as_ref()?;
    let hint = oc
        .api_key_hint
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("Get your API key at: {}", oc.auth_key_url));
    Some(AuthProvider {
        name: name.to_string(),
        label: label.to_string(),
        host_dir: format!("_{name}-config"),
        container_mount: format!("/home/dev/{}", oc.config_dir),
        command: Vec::new(),
        auth_key: None,
        banner_hint: String::new(),
        extra_run_args: Vec::new(),
        modes: vec![AuthMode::ApiKey],
        api_key_hint: hint,
        post_capture_state: IndexMap::new(),
    })
}

fn project_vault(name: &str, v: &schema::RawVault) -> VaultRoute {
    VaultRoute {
        provider: name.to_string(),
        route_prefix: v.route_prefix.clone(),
        upstream: v.upstream.clone(),
        path_upstreams: v.path_upstreams.clone(),
        oauth_extra_headers: v.oauth_extra_headers.clone(),
        auth_header: v.auth_header.clone(),
        auth_prefix: v.auth_prefix.clone(),
        credential_type: v.credential_type,
        credential_file: v.credential_file.clone(),
        phantom_env: v.phantom_env.clone(),
        oauth_phantom_env: v.oauth_phantom_env.clone(),
        base_url_env: v.base_url_env.clone(),
        socket_env: v.socket_env.clone(),
        shared_config_patch: v.shared_config_patch.clone(),
        oauth_refresh: v.oauth_refresh.as_ref().map(|r| OAuthRefresh {
            token_url: r.token_url.clone(),
            client_id: r.client_id.clone(),
            scope: r.scope.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;
