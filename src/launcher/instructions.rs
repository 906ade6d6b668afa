//! The task instructions an agent gets (`~/.terok/instructions.md` in the container).
//!
//! Two layers make the text:
//! 1. `agent.instructions` in the layered `config.yml` files, merged across the files with the
//!    stack-wide rules ([`super::roster::merge`]: a later list containing `_inherit` splices the
//!    earlier one in its place, mappings merge, `~` deletes). The merged value is
//!    - absent, `~` or the bare string `_inherit`: the bundled default;
//!    - a string: that text;
//!    - a mapping by agent name (`{claude: ..., _default: ...}`): the agent's entry, else
//!      `_default`, else the bundled default; the entry itself may be any of these forms;
//!    - a list: its items joined by blank lines, each `_inherit` replaced by the bundled
//!      default.
//! 2. The project's own file, `<workspace>/.terok/instructions.md`, appended after a blank line
//!    when it holds more than white space. (Under `.terok/` rather than at the top of the
//!    repository, where an `instructions.md` may well be the project's own documentation.)

use std::path::Path;

use serde_norway::{Mapping, Value};

use super::roster::merge::{deep_merge, INHERIT};

/// The bundled default instructions.
pub const DEFAULT: &str = include_str!("../../resources/instructions/default.md");
/// The config section and key holding the instructions.
pub const SECTION: &str = "agent";
pub const KEY: &str = "instructions";
/// The project's own instructions, relative to the workspace.
pub const PROJECT_FILE: &str = ".terok/instructions.md";

/// The instructions for `agent` from the config files (lowest priority first) and the
/// workspace.
pub fn for_launch(config_files: &[impl AsRef<Path>], agent: &str, workspace: &Path) -> String {
    let layered = merged_setting(config_files);
    // The agent can write the workspace: a link there must not pull in a host file.
    let project =
        crate::fsutil::read_in_tree(workspace, Path::new(PROJECT_FILE)).unwrap_or_else(|e| {
            tracing::warn!("the project's instructions are skipped: {e}");
            None
        });
    resolve(layered.as_ref(), agent, project.as_deref())
}

/// `agent.instructions` merged across `files`; unreadable files and other shapes are skipped.
pub fn merged_setting(files: &[impl AsRef<Path>]) -> Option<Value> {
    let key = Value::String(KEY.to_owned());
    let mut merged = Mapping::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file.as_ref()) else {
            continue;
        };
        let Ok(Value::Mapping(top)) = serde_norway::from_str::<Value>(&text) else {
            continue;
        };
        let Some(Value::Mapping(section)) = top.get(SECTION) else {
            continue;
        };
        if let Some(value) = section.get(&key) {
            let mut layer = Mapping::new();
            layer.insert(key.clone(), value.clone());
            merged = deep_merge(&merged, &layer);
        }
    }
    merged.get(&key).cloned()
}

/// The instructions from the merged setting and the project file's text.
pub fn resolve(setting: Option<&Value>, agent: &str, project: Option<&str>) -> String {
    let base = from_setting(setting, agent);
    match project.map(str::trim).filter(|p| !p.is_empty()) {
        Some(extra) if base.trim().is_empty() => format!("{extra}\n"),
        Some(extra) => format!("{}\n\n{extra}\n", base.trim_end()),
        None => base,
    }
}

fn from_setting(setting: Option<&Value>, agent: &str) -> String {
    match setting {
        None | Some(Value::Null) => DEFAULT.to_owned(),
        Some(Value::String(s)) if s == INHERIT => DEFAULT.to_owned(),
        Some(Value::Mapping(by_agent)) => {
            let pick = |name: &str| by_agent.get(name).filter(|v| !v.is_null());
            match pick(agent).or_else(|| pick("_default")) {
                // One level only: an entry that is itself a mapping is not looked into again.
                Some(Value::Mapping(_)) | None => DEFAULT.to_owned(),
                Some(entry) => from_setting(Some(entry), agent),
            }
        }
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if s == INHERIT => DEFAULT.trim_end().to_owned(),
                other => scalar_text(other),
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        Some(other) => scalar_text(other),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    fn default() -> &'static str {
        DEFAULT.trim_end()
    }

    #[test]
    fn a_missing_key_null_and_bare_inherit_mean_the_bundled_default() {
        assert_eq!(resolve(None, "claude", None), DEFAULT);
        assert_eq!(resolve(Some(&Value::Null), "claude", None), DEFAULT);
        assert_eq!(resolve(Some(&yaml("_inherit")), "claude", None), DEFAULT);
        assert!(DEFAULT.contains("/workspace") && DEFAULT.contains("sudo"));
    }

    #[test]
    fn a_string_replaces_the_default() {
        assert_eq!(
            resolve(Some(&yaml("Be brief.")), "claude", None),
            "Be brief."
        );
    }

    #[test]
    fn a_mapping_picks_the_agent_then_default_then_the_bundled_text() {
        let by_agent = yaml("claude: For Claude.\n_default: For everyone.\ncodex: ~\n");
        assert_eq!(resolve(Some(&by_agent), "claude", None), "For Claude.");
        assert_eq!(resolve(Some(&by_agent), "vibe", None), "For everyone.");
        assert_eq!(
            resolve(Some(&by_agent), "codex", None),
            "For everyone.",
            "null falls back"
        );
        let only = yaml("claude: [_inherit, Also this.]\n");
        assert_eq!(
            resolve(Some(&only), "claude", None),
            format!("{}\n\nAlso this.", default())
        );
        assert_eq!(resolve(Some(&only), "vibe", None), DEFAULT);
    }

    #[test]
    fn inherit_splices_the_default_at_the_start_middle_and_end() {
        let at = |list: &str| resolve(Some(&yaml(list)), "claude", None);
        assert_eq!(at("[_inherit, B]"), format!("{}\n\nB", default()));
        assert_eq!(at("[A, _inherit, B]"), format!("A\n\n{}\n\nB", default()));
        assert_eq!(at("[A, _inherit]"), format!("A\n\n{}", default()));
        assert_eq!(at("[A, B]"), "A\n\nB");
    }

    #[test]
    fn the_project_file_is_appended_when_it_says_something() {
        let text = resolve(Some(&yaml("Base.")), "claude", Some("  Project rules.\n\n"));
        assert_eq!(text, "Base.\n\nProject rules.\n");
        assert_eq!(
            resolve(Some(&yaml("Base.")), "claude", Some(" \n")),
            "Base."
        );
        let with_default = resolve(None, "claude", Some("Extra."));
        assert!(with_default.starts_with(default()) && with_default.ends_with("\n\nExtra.\n"));
        assert_eq!(
            resolve(Some(&yaml("''")), "claude", Some("Only.")),
            "Only.\n"
        );
    }

    #[test]
    fn layers_merge_with_the_stack_rules_and_the_workspace_file_joins() {
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("global.yml");
        let user = dir.path().join("user.yml");
        std::fs::write(&global, "agent:\n  instructions: [Global rule.]\n").unwrap();
        std::fs::write(
            &user,
            "agent:\n  instructions: [_inherit, User rule.]\nvault:\n  required: true\n",
        )
        .unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".terok")).unwrap();
        std::fs::write(ws.join(".terok/instructions.md"), "Project rule.\n").unwrap();
        let files = [global.clone(), user.clone(), dir.path().join("missing.yml")];
        assert_eq!(
            for_launch(&files, "claude", &ws),
            "Global rule.\n\nUser rule.\n\nProject rule.\n"
        );
        // A later plain list replaces; a later null removes (the default comes back).
        std::fs::write(&user, "agent:\n  instructions: [Only the user's.]\n").unwrap();
        assert_eq!(merged_setting(&files), Some(yaml("[Only the user's.]")));
        std::fs::write(&user, "agent:\n  instructions: ~\n").unwrap();
        assert_eq!(merged_setting(&files), None);
        assert_eq!(for_launch(&files[..0], "claude", dir.path()), DEFAULT);
    }
}
