//! Reads the bundled and user roster files and builds the [`Roster`].
//!
//! Order of operations, each a contract with the other terok components:
//! 1. bundled files, then `<user dir>/*.yaml` in name order; the file stem is the
//!    roster name;
//! 2. `roster_version` is stripped (missing or older is silent, a newer or
//!    non-integer value only warns); files without content are skipped;
//! 3. a user entry is deep-merged over the bundled entry of the same name;
//! 4. the merged entry is validated; one invalid entry aborts the load;
//! 5. entries are projected in name order.
//!
//! A file that is not valid YAML is skipped with a warning rather than aborting,
//! so one broken override never takes every agent down. Warnings are returned
//! with the roster, not printed: the caller decides where they go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::bundled::{bundled_file_label, BUNDLED_AGENTS};
use super::error::RosterError;
use super::merge::deep_merge;
use super::validate::{validate_entry, EntrySources};
use super::Roster;

/// The roster format version this build speaks.
pub const ROSTER_VERSION: i64 = 1;

struct Layer {
    file: String,
    data: Mapping,
}

/// Loads the bundled roster with user overrides from `user_dir` (if it exists).
pub fn load_roster(user_dir: Option<&Path>) -> Result<Roster, RosterError> {
    load_roster_from(BUNDLED_AGENTS, user_dir)
}

/// Loads a roster from explicit bundled texts; used by tests and [`load_roster`].
pub fn load_roster_from(
    bundled: &[(&str, &str)],
    user_dir: Option<&Path>,
) -> Result<Roster, RosterError> {
    let mut warnings = Vec::new();
    let mut bundled_layers: BTreeMap<String, Layer> = BTreeMap::new();
    for (name, text) in bundled {
        let file = bundled_file_label(name);
        if let Some(data) = parse_layer(name, text, &file, &mut warnings) {
            bundled_layers.insert(name.to_string(), Layer { file, data });
        }
    }
    let mut user_layers: BTreeMap<String, Layer> = BTreeMap::new();
    if let Some(dir) = user_dir {
        for path in user_files(dir)? {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
                continue;
            };
            let file = path.display().to_string();
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    warnings.push(format!(
                        "warning [roster]: cannot read user agent file {file}: {e}"
                    ));
                    continue;
                }
            };
            if let Some(data) = parse_layer(&name, &text, &file, &mut warnings) {
                user_layers.insert(name, Layer { file, data });
            }
        }
    }

    let mut names: Vec<&String> = bundled_layers.keys().chain(user_layers.keys()).collect();
    names.sort();
    names.dedup();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let base = bundled_layers.get(name);
        let user = user_layers.get(name);
        let merged = match (base, user) {
            (Some(b), Some(u)) => deep_merge(&b.data, &u.data),
            (Some(b), None) => b.data.clone(),
            (None, Some(u)) => u.data.clone(),
            (None, None) => continue,
        };
        let sources = EntrySources {
            bundled: base.map(|b| b.file.clone()),
            user: user.map(|u| (u.file.clone(), &u.data)),
        };
        let raw = validate_entry(name, &merged, &sources)?;
        entries.push((name.clone(), raw));
    }
    let mut roster = Roster::project(entries);
    roster.warnings = warnings;
    Ok(roster)
}

fn user_files(dir: &Path) -> Result<Vec<PathBuf>, RosterError> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(source) => {
            return Err(RosterError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parses one file into its entry mapping, or `None` when it contributes nothing.
fn parse_layer(name: &str, text: &str, file: &str, warnings: &mut Vec<String>) -> Option<Mapping> {
    let value: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!(
                "warning [roster]: failed to parse {file}: {e}; skipping it"
            ));
            return None;
        }
    };
    let Value::Mapping(mut data) = value else {
        return None;
    };
    if data.is_empty() {
        return None;
    }
    if let Some(declared) = data.remove("roster_version") {
        check_version(name, &declared, file, warnings);
    }
    if data.is_empty() {
        warnings.push(format!(
            "info [roster]: skipping metadata-only file ({file}); no agent definition to register for '{name}'"
        ));
        return None;
    }
    Some(data)
}

fn check_version(name: &str, declared: &Value, file: &str, warnings: &mut Vec<String>) {
    let as_int = match declared {
        Value::Null => return,
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match as_int {
        None => warnings.push(format!(
            "warning [roster]: {file} declares roster_version={}, which is not a valid integer version; treating as current",
            render_scalar(declared)
        )),
        Some(v) if v > ROSTER_VERSION => warnings.push(format!(
            "warning [roster]: {file} declares roster_version={v}, but this terok-executor speaks version {ROSTER_VERSION}; some fields in '{name}' may be ignored"
        )),
        Some(_) => {}
    }
}

fn render_scalar(v: &Value) -> String {
    serde_norway::to_string(v)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn user_only_entry_is_added() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "mine.yaml", "kind: tool\nlabel: Mine\n");
        let roster = load_roster_from(&[("a", "kind: native\n")], Some(dir.path())).unwrap();
        assert_eq!(roster.all_names(), ["a", "mine"]);
        assert_eq!(roster.agent_names(), ["a"]);
    }

    #[test]
    fn user_override_is_deep_merged() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "label: Override\nauto_approve: {flags: [_inherit, --more]}\n",
        );
        let bundled = [(
            "a",
            "kind: native\nlabel: Base\nbinary: abin\nauto_approve: {flags: [--yolo]}\n",
        )];
        let roster = load_roster_from(&bundled, Some(dir.path())).unwrap();
        let p = &roster.providers()["a"];
        assert_eq!(p.label, "Override");
        assert_eq!(p.binary, "abin");
        assert_eq!(p.auto_approve_flags, ["--yolo", "--more"]);
    }

    #[test]
    fn unparsable_user_file_is_skipped_with_warning() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "label: [unclosed\n");
        let roster = load_roster_from(&[("a", "label: Base\n")], Some(dir.path())).unwrap();
        assert_eq!(roster.providers()["a"].label, "Base");
        assert!(roster
            .warnings
            .iter()
            .any(|w| w.contains("failed to parse") && w.contains("a.yaml")));
    }

    #[test]
    fn schema_error_in_user_file_names_the_user_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "lable: typo\n");
        let err = load_roster_from(&[("a", "label: Base\n")], Some(dir.path())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().join("a.yaml").display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("'lable'") && text.contains("did you mean 'label'"),
            "{text}"
        );
    }

    #[test]
    fn roster_version_is_stripped_and_future_versions_warn() {
        let roster = load_roster_from(
            &[
                ("a", "roster_version: 1\nkind: tool\n"),
                ("b", "roster_version: 7\nkind: tool\n"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(roster.all_names(), ["a", "b"]);
        assert_eq!(roster.warnings.len(), 1);
        assert!(roster.warnings[0].contains("roster_version=7"));
    }

    #[test]
    fn non_integer_roster_version_warns_and_loads() {
        let roster = load_roster_from(&[("a", "roster_version: one\nkind: tool\n")], None).unwrap();
        assert_eq!(roster.all_names(), ["a"]);
        assert!(roster.warnings[0].contains("not a valid integer"));
    }

    #[test]
    fn metadata_only_and_empty_files_are_skipped() {
        let roster = load_roster_from(
            &[
                ("a", "roster_version: 1\n"),
                ("b", ""),
                ("c", "- a list\n"),
                ("d", "kind: tool\n"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(roster.all_names(), ["d"]);
        assert_eq!(roster.warnings.len(), 1);
        assert!(roster.warnings[0].contains("metadata-only"));
    }

    #[test]
    fn missing_user_dir_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let roster =
            load_roster_from(&[("a", "kind: tool\n")], Some(&dir.path().join("absent"))).unwrap();
        assert_eq!(roster.all_names(), ["a"]);
    }

    #[test]
    fn non_yaml_files_in_user_dir_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "lable: typo\n");
        write(dir.path(), "a.yml", "lable: typo\n");
        assert!(load_roster_from(&[("a", "kind: tool\n")], Some(dir.path())).is_ok());
    }
}
