//! Host-side locations of the launcher's configuration and state.
//!
//! Every location follows the same resolution chain as the rest of the terok
//! stack (a package-specific environment variable, then `TEROK_ROOT` or
//! `paths.root` from `config.yml`, then the platform default), so files written
//! here are found by the other components. `TEROK_CONFIG_DIR` overrides the
//! configuration root (as in the sandbox). Resolution reads variables through a
//! [`VarSource`], which lets tests describe a whole environment without touching
//! the process environment or the real home directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// Where environment variables come from.
pub trait VarSource {
    /// The value of `key`, or `None` when unset or empty.
    fn var(&self, key: &str) -> Option<String>;
    /// Whether the effective user is root (root uses system-wide locations).
    fn is_root(&self) -> bool;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl VarSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }
}

/// A fixed set of variables, for tests and for callers that pre-resolve them.
#[derive(Debug, Default, Clone)]
pub struct FixedEnv {
    /// The variables; empty values count as unset.
    pub vars: HashMap<String, String>,
    /// Whether to resolve locations as root.
    pub root: bool,
}

impl VarSource for FixedEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.vars.get(key).filter(|v| !v.is_empty()).cloned()
    }

    fn is_root(&self) -> bool {
        self.root
    }
}

const NAMESPACE: &str = "terok";

/// Resolved host locations used by the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// User roster overrides: `<config>/agent/agents`.
    pub user_agents_dir: PathBuf,
    /// Layered `config.yml` files, lowest priority first.
    pub config_files: Vec<PathBuf>,
    /// The vault's state directory (holds `routes.json`).
    pub vault_dir: PathBuf,
    /// Root of the per-provider shared config directories mounted into containers.
    pub mounts_dir: PathBuf,
    /// This tool's persistent state (`TEROK_ROOT`, `paths.root`, or the system/XDG default).
    pub state_dir: PathBuf,
    /// terok-sandbox's runtime directory, under which each container's vault socket is bound
    /// (`TEROK_SANDBOX_RUNTIME_DIR`, `/run/terok/sandbox` for root, else under
    /// `XDG_RUNTIME_DIR`, `XDG_STATE_HOME` or `~/.local/state`).
    pub sandbox_runtime_dir: PathBuf,
}

impl HostPaths {
    /// Resolves every location from the process environment.
    pub fn from_env() -> Self {
        Self::resolve(&ProcessEnv)
    }

    /// Resolves every location from `vars`.
    pub fn resolve(vars: &dyn VarSource) -> Self {
        let config_files = config_file_paths(vars);
        let config = LayeredConfig::load(&config_files);
        let state_base = state_base(vars, &config);
        let vault_dir = vars
            .var("TEROK_VAULT_DIR")
            .map(|v| expand_home(&v, vars))
            .unwrap_or_else(|| state_base.join("vault"));
        let mounts_dir = vars
            .var("TEROK_SANDBOX_LIVE_DIR")
            .map(|v| expand_home(&v, vars))
            .unwrap_or_else(|| state_base.join("sandbox-live"))
            .join("mounts");
        HostPaths {
            user_agents_dir: config_base(vars).join("agent").join("agents"),
            config_files,
            vault_dir,
            mounts_dir,
            sandbox_runtime_dir: sandbox_runtime_dir(vars),
            state_dir: state_base,
        }
    }

    /// The path of the generated vault route table.
    pub fn routes_path(&self) -> PathBuf {
        self.vault_dir.join("routes.json")
    }
}

fn sandbox_runtime_dir(vars: &dyn VarSource) -> PathBuf {
    if let Some(dir) = vars.var("TEROK_SANDBOX_RUNTIME_DIR") {
        return expand_home(&dir, vars);
    }
    if vars.is_root() {
        return PathBuf::from("/run/terok/sandbox");
    }
    let base = match (vars.var("XDG_RUNTIME_DIR"), vars.var("XDG_STATE_HOME")) {
        (Some(run), _) => PathBuf::from(run),
        (None, Some(state)) => PathBuf::from(state),
        (None, None) => home(vars).join(".local").join("state"),
    };
    base.join(NAMESPACE).join("sandbox")
}

fn home(vars: &dyn VarSource) -> PathBuf {
    vars.var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn expand_home(value: &str, vars: &dyn VarSource) -> PathBuf {
    match value.strip_prefix("~/") {
        Some(rest) => home(vars).join(rest),
        None if value == "~" => home(vars),
        None => PathBuf::from(value),
    }
}

fn config_base(vars: &dyn VarSource) -> PathBuf {
    if let Some(dir) = vars.var("TEROK_CONFIG_DIR") {
        return expand_home(&dir, vars);
    }
    if vars.is_root() {
        return Path::new("/etc").join(NAMESPACE);
    }
    match vars.var("XDG_CONFIG_HOME") {
        Some(xdg) => PathBuf::from(xdg).join(NAMESPACE),
        None => home(vars).join(".config").join(NAMESPACE),
    }
}

fn config_file_paths(vars: &dyn VarSource) -> Vec<PathBuf> {
    if let Some(file) = vars.var("TEROK_CONFIG_FILE") {
        return vec![expand_home(&file, vars)];
    }
    let mut files = vec![Path::new("/etc").join(NAMESPACE).join("config.yml")];
    if !vars.is_root() {
        files.push(config_base(vars).join("config.yml"));
    }
    files
}

fn state_base(vars: &dyn VarSource, config: &LayeredConfig) -> PathBuf {
    if let Some(root) = vars.var("TEROK_ROOT") {
        return expand_home(&root, vars);
    }
    if let Some(root) = config.string("paths", "root") {
        return expand_home(&root, vars);
    }
    if vars.is_root() {
        return Path::new("/var/lib").join(NAMESPACE);
    }
    match vars.var("XDG_DATA_HOME") {
        Some(xdg) => PathBuf::from(xdg).join(NAMESPACE),
        None => home(vars).join(".local").join("share").join(NAMESPACE),
    }
}

/// The shared `config.yml`, merged section by section (later files win per key).
///
/// Reading is fail-silent like the rest of the stack: a missing or unparsable
/// file contributes nothing, so a broken config never blocks path resolution.
#[derive(Debug, Default, Clone)]
pub struct LayeredConfig {
    sections: HashMap<String, HashMap<String, Value>>,
}

impl LayeredConfig {
    /// Reads and merges `files`, lowest priority first.
    pub fn load(files: &[PathBuf]) -> Self {
        let mut merged = LayeredConfig::default();
        for file in files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let Ok(Value::Mapping(top)) = serde_norway::from_str::<Value>(&text) else {
                continue;
            };
            for (section, body) in top {
                let (Value::String(section), Value::Mapping(body)) = (section, body) else {
                    continue;
                };
                let entry = merged.sections.entry(section).or_default();
                for (key, value) in body {
                    if let Value::String(key) = key {
                        if value.is_null() {
                            entry.remove(&key);
                        } else {
                            entry.insert(key, value);
                        }
                    }
                }
            }
        }
        merged
    }

    /// The raw value of `section.key`.
    pub fn value(&self, section: &str, key: &str) -> Option<&Value> {
        self.sections.get(section)?.get(key)
    }

    /// `section.key` rendered as a string (numbers and booleans included).
    pub fn string(&self, section: &str, key: &str) -> Option<String> {
        match self.value(section, key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Locations for a test: everything under `dir` (the config file `dir/config.yml`, the state
/// root `dir/state`, terok-sandbox's runtime dir `dir/rt`).
#[cfg(test)]
pub(crate) fn temp_host_paths(dir: &Path) -> HostPaths {
    let vars = FixedEnv {
        vars: HashMap::from([
            ("HOME".into(), dir.display().to_string()),
            ("TEROK_ROOT".into(), dir.join("state").display().to_string()),
            (
                "TEROK_CONFIG_FILE".into(),
                dir.join("config.yml").display().to_string(),
            ),
            (
                "TEROK_SANDBOX_RUNTIME_DIR".into(),
                dir.join("rt").display().to_string(),
            ),
        ]),
        root: false,
    };
    HostPaths::resolve(&vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> FixedEnv {
        FixedEnv {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            root: false,
        }
    }

    #[test]
    fn defaults_follow_home_and_xdg_layout() {
        let paths = HostPaths::resolve(&env(&[
            ("HOME", "/h"),
            ("TEROK_CONFIG_FILE", "/nonexistent.yml"),
        ]));
        assert_eq!(
            paths.user_agents_dir,
            PathBuf::from("/h/.config/terok/agent/agents")
        );
        assert_eq!(
            paths.vault_dir,
            PathBuf::from("/h/.local/share/terok/vault")
        );
        assert_eq!(
            paths.mounts_dir,
            PathBuf::from("/h/.local/share/terok/sandbox-live/mounts")
        );
        assert_eq!(
            paths.routes_path(),
            PathBuf::from("/h/.local/share/terok/vault/routes.json")
        );
        assert_eq!(paths.state_dir, PathBuf::from("/h/.local/share/terok"));
        assert_eq!(
            paths.sandbox_runtime_dir,
            PathBuf::from("/h/.local/state/terok/sandbox")
        );
        let mut vars = env(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            HostPaths::resolve(&vars).sandbox_runtime_dir,
            PathBuf::from("/run/user/7/terok/sandbox")
        );
        vars.root = true;
        assert_eq!(
            HostPaths::resolve(&vars).sandbox_runtime_dir,
            PathBuf::from("/run/terok/sandbox")
        );
        vars.vars
            .insert("TEROK_SANDBOX_RUNTIME_DIR".into(), "/srt".into());
        assert_eq!(
            HostPaths::resolve(&vars).sandbox_runtime_dir,
            PathBuf::from("/srt")
        );
    }

    #[test]
    fn package_variables_override_the_namespace_root() {
        let paths = HostPaths::resolve(&env(&[
            ("HOME", "/h"),
            ("TEROK_CONFIG_FILE", "/nonexistent.yml"),
            ("TEROK_ROOT", "/r"),
            ("TEROK_VAULT_DIR", "/v"),
            ("XDG_CONFIG_HOME", "/c"),
        ]));
        assert_eq!(paths.vault_dir, PathBuf::from("/v"));
        assert_eq!(paths.mounts_dir, PathBuf::from("/r/sandbox-live/mounts"));
        assert_eq!(
            paths.user_agents_dir,
            PathBuf::from("/c/terok/agent/agents")
        );
    }

    #[test]
    fn config_dir_variable_overrides_the_config_root() {
        let mut vars = env(&[("HOME", "/h"), ("TEROK_CONFIG_DIR", "/cfg")]);
        vars.root = true;
        let paths = HostPaths::resolve(&vars);
        assert_eq!(paths.user_agents_dir, PathBuf::from("/cfg/agent/agents"));
        assert_eq!(paths.config_files, [PathBuf::from("/etc/terok/config.yml")]);
    }

    #[test]
    fn root_uses_system_locations() {
        let mut vars = env(&[("HOME", "/root"), ("TEROK_CONFIG_FILE", "/nonexistent.yml")]);
        vars.root = true;
        let paths = HostPaths::resolve(&vars);
        assert_eq!(
            paths.user_agents_dir,
            PathBuf::from("/etc/terok/agent/agents")
        );
        assert_eq!(paths.vault_dir, PathBuf::from("/var/lib/terok/vault"));
    }

    #[test]
    fn config_paths_root_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, "paths:\n  root: /from-config\n").unwrap();
        let paths = HostPaths::resolve(&env(&[
            ("HOME", "/h"),
            ("TEROK_CONFIG_FILE", file.to_str().unwrap()),
        ]));
        assert_eq!(paths.vault_dir, PathBuf::from("/from-config/vault"));
    }

    #[test]
    fn later_config_files_override_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yml");
        let b = dir.path().join("b.yml");
        std::fs::write(&a, "services: {mode: tcp}\nvault: {port: 1}\n").unwrap();
        std::fs::write(&b, "vault: {port: 2}\n").unwrap();
        let cfg = LayeredConfig::load(&[a, b, dir.path().join("missing.yml")]);
        assert_eq!(cfg.string("services", "mode").as_deref(), Some("tcp"));
        assert_eq!(cfg.string("vault", "port").as_deref(), Some("2"));
    }

    #[test]
    fn unparsable_config_contributes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yml");
        std::fs::write(&a, "services: [unclosed\n").unwrap();
        assert!(LayeredConfig::load(&[a])
            .value("services", "mode")
            .is_none());
    }
}
