//! Sub-agent definitions: Markdown files with YAML front matter, turned into the provider's own
//! format (Claude's `--agents` JSON, which claude-agent-acp takes as `agents` too).
//!
//! A definition is a file `<name>.md`:
//!
//! ```markdown
//! ---
//! description: Reviews a diff for bugs       # required: it tells the agent when to delegate
//! tools: Read, Grep, Glob                    # a comma list or a YAML list
//! model: sonnet
//! default: false                             # only when selected with `run --subagent`
//! ---
//! You review code. ...                       # the sub-agent's prompt
//! ```
//!
//! Files are read from, lowest priority first, the `agents/` directory beside each layered
//! config file and the project's `<workspace>/.terok/agents/`; a later file of the same name
//! replaces an earlier one. `name` in the front matter overrides the file's stem. Front-matter
//! keys besides `default` and `name` pass through (Claude knows `tools`, `disallowedTools`,
//! `model`, `permissionMode`, `mcpServers`, `hooks`, `maxTurns`, `skills`, `memory`,
//! `background`, `isolation`), except a `prompt` key, which the body replaces.
//!
//! The project's directory is read without following links: the agent can write the workspace,
//! and a link there must not hand a host file to the next container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

/// The project's definitions, relative to the workspace.
pub const PROJECT_DIR: &str = ".terok/agents";
/// The file in the agent config directory that holds the converted definitions.
pub const AGENTS_JSON: &str = "agents.json";

/// One parsed definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SubAgent {
    pub name: String,
    /// Included without being selected.
    pub default: bool,
    /// The provider-facing entry: front-matter fields and `prompt`.
    pub entry: Map<String, Json>,
    /// Where it came from, for messages.
    pub source: PathBuf,
}

/// Why a definition or a selection is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubAgentError {
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
    #[error("no sub-agent is named {name:?} (known: {known})")]
    Unknown { name: String, known: String },
}

/// Parses one definition file's text. `stem` names it when the front matter does not.
pub fn parse(stem: &str, text: &str, source: &Path) -> Result<SubAgent, SubAgentError> {
    let invalid = |why: String| SubAgentError::Invalid {
        path: source.display().to_string(),
        why,
    };
    let (front, body) = split_front_matter(text)
        .ok_or_else(|| invalid("no front matter (a `---` block at the top)".into()))?;
    let front: serde_norway::Value =
        serde_norway::from_str(front).map_err(|e| invalid(format!("front matter: {e}")))?;
    let front = match front {
        serde_norway::Value::Null => serde_norway::Mapping::new(),
        serde_norway::Value::Mapping(m) => m,
        _ => return Err(invalid("the front matter is not a mapping".into())),
    };
    let mut entry = Map::new();
    let mut name = stem.to_owned();
    let mut default = true;
    for (key, value) in front {
        let Some(key) = key.as_str() else {
            return Err(invalid("a front-matter key is not a string".into()));
        };
        let value = serde_json::to_value(&value).map_err(|e| invalid(format!("{key}: {e}")))?;
        match key {
            "name" => {
                name = value
                    .as_str()
                    .ok_or_else(|| invalid("`name` is not a string".into()))?
                    .to_owned()
            }
            "default" => {
                default = value
                    .as_bool()
                    .ok_or_else(|| invalid("`default` is not true or false".into()))?
            }
            "prompt" => {}
            "tools" | "disallowedTools" => {
                entry.insert(key.to_owned(), tool_list(value).map_err(invalid)?);
            }
            _ => {
                entry.insert(key.to_owned(), value);
            }
        }
    }
    if !valid_name(&name) {
        return Err(invalid(format!(
            "{name:?} is not a sub-agent name (letters, digits, `-` and `_`)"
        )));
    }
    if !entry.get("description").is_some_and(|d| d.is_string()) {
        return Err(invalid(
            "`description` is missing: the agent decides from it when to delegate".into(),
        ));
    }
    let prompt = body.trim();
    if prompt.is_empty() {
        return Err(invalid("the body (the sub-agent's prompt) is empty".into()));
    }
    entry.insert("prompt".into(), Json::String(prompt.to_owned()));
    Ok(SubAgent {
        name,
        default,
        entry,
        source: source.to_path_buf(),
    })
}

/// `---\n<yaml>\n---\n<body>`: the YAML and the body.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

/// Claude's Markdown files list tools as `Read, Grep`; its JSON wants an array.
fn tool_list(value: Json) -> Result<Json, String> {
    match value {
        Json::String(s) => Ok(Json::Array(
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Json::String(t.to_owned()))
                .collect(),
        )),
        Json::Array(items) if items.iter().all(Json::is_string) => Ok(Json::Array(items)),
        _ => Err("`tools` is neither a comma list nor a list of names".into()),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Every definition visible to a launch, by name, later sources replacing earlier ones.
/// Unreadable or invalid files are reported in the second list and left out.
pub fn collect(
    config_files: &[impl AsRef<Path>],
    workspace: &Path,
) -> (BTreeMap<String, SubAgent>, Vec<SubAgentError>) {
    let mut found = BTreeMap::new();
    let mut errors = Vec::new();
    let mut take = |root: &Path, rel: &Path| {
        let names = match crate::fsutil::list_in_tree(root, rel) {
            Ok(names) => names,
            Err(e) => {
                errors.push(SubAgentError::Invalid {
                    path: root.join(rel).display().to_string(),
                    why: e.to_string(),
                });
                return;
            }
        };
        for file in names {
            let Some(stem) = file.strip_suffix(".md") else {
                continue;
            };
            let path = rel.join(&file);
            let parsed = match crate::fsutil::read_in_tree(root, &path) {
                Ok(Some(text)) => parse(stem, &text, &root.join(&path)),
                Ok(None) => continue,
                Err(e) => Err(SubAgentError::Invalid {
                    path: root.join(&path).display().to_string(),
                    why: e.to_string(),
                }),
            };
            match parsed {
                Ok(agent) => {
                    found.insert(agent.name.clone(), agent);
                }
                Err(e) => errors.push(e),
            }
        }
    };
    for file in config_files {
        if let Some(dir) = file.as_ref().parent() {
            take(dir, Path::new("agents"));
        }
    }
    take(workspace, Path::new(PROJECT_DIR));
    (found, errors)
}

/// The definitions a launch passes on: the default ones and those `selected` by name, as
/// Claude's `--agents` object. An unknown selected name is an error.
pub fn to_claude_json(
    all: &BTreeMap<String, SubAgent>,
    selected: &[String],
) -> Result<Map<String, Json>, SubAgentError> {
    for name in selected {
        if !all.contains_key(name) {
            let known: Vec<&str> = all.keys().map(String::as_str).collect();
            return Err(SubAgentError::Unknown {
                name: name.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    Ok(all
        .values()
        .filter(|a| a.default || selected.contains(&a.name))
        .map(|a| (a.name.clone(), Json::Object(a.entry.clone())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const REVIEWER: &str = "---\ndescription: Reviews diffs\ntools: Read, Grep , Glob\nmodel: sonnet\nmaxTurns: 5\n---\n\nYou review code.\nBe terse.\n";

    #[test]
    fn front_matter_becomes_claudes_entry() {
        let agent = parse("reviewer", REVIEWER, Path::new("r.md")).unwrap();
        assert_eq!(agent.name, "reviewer");
        assert!(agent.default);
        assert_eq!(
            Json::Object(agent.entry),
            json!({
                "description": "Reviews diffs",
                "tools": ["Read", "Grep", "Glob"],
                "model": "sonnet",
                "maxTurns": 5,
                "prompt": "You review code.\nBe terse.",
            })
        );
    }

    #[test]
    fn name_default_and_tool_lists_are_read() {
        let text = "---\r\nname: deep-dive\ndefault: false\ndescription: d\ntools: [Read, Bash]\nprompt: ignored\n---\r\nBody\n";
        let agent = parse("file", text, Path::new("f.md")).unwrap();
        assert_eq!(agent.name, "deep-dive");
        assert!(!agent.default);
        assert_eq!(agent.entry["tools"], json!(["Read", "Bash"]));
        assert_eq!(agent.entry["prompt"], json!("Body"));
    }

    #[test]
    fn bad_definitions_say_why() {
        let cases = [
            ("no front matter", "just text"),
            ("unterminated", "---\ndescription: x\nbody"),
            ("no description", "---\nmodel: x\n---\nbody"),
            ("empty body", "---\ndescription: x\n---\n  \n"),
            ("list front", "---\n- a\n---\nbody"),
            ("bad name", "---\nname: ../etc\ndescription: x\n---\nbody"),
            (
                "bad default",
                "---\ndefault: sometimes\ndescription: x\n---\nbody",
            ),
            ("bad tools", "---\ndescription: x\ntools: {a: 1}\n---\nbody"),
            ("bad yaml", "---\ndescription: [x\n---\nbody"),
        ];
        for (what, text) in cases {
            let err = parse("ok", text, Path::new("/p/x.md")).expect_err(what);
            assert!(err.to_string().starts_with("/p/x.md: "), "{what}: {err}");
        }
    }

    #[test]
    fn selection_keeps_defaults_and_the_named() {
        let mut all = BTreeMap::new();
        for (name, default) in [("a", true), ("b", false), ("c", false)] {
            let text = format!("---\ndescription: {name}\ndefault: {default}\n---\n{name} body\n");
            all.insert(name.into(), parse(name, &text, Path::new("x")).unwrap());
        }
        let picked = to_claude_json(&all, &["c".into()]).unwrap();
        assert_eq!(picked.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(picked["c"]["prompt"], json!("c body"));
        assert_eq!(
            to_claude_json(&all, &["zed".into()]).unwrap_err(),
            SubAgentError::Unknown {
                name: "zed".into(),
                known: "a, b, c".into()
            }
        );
        assert!(to_claude_json(&BTreeMap::new(), &[]).unwrap().is_empty());
    }

    #[test]
    fn project_files_override_config_files_and_links_are_refused() {
        let config = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir(config.path().join("agents")).unwrap();
        std::fs::write(
            config.path().join("agents/reviewer.md"),
            "---\ndescription: global\n---\nglobal body\n",
        )
        .unwrap();
        std::fs::write(
            config.path().join("agents/tester.md"),
            "---\ndescription: tests\n---\ntest body\n",
        )
        .unwrap();
        std::fs::write(config.path().join("agents/notes.txt"), "not a definition").unwrap();
        std::fs::create_dir_all(ws.path().join(PROJECT_DIR)).unwrap();
        std::fs::write(ws.path().join(".terok/agents/reviewer.md"), REVIEWER).unwrap();
        std::fs::write(ws.path().join(".terok/agents/broken.md"), "no front matter").unwrap();
        let secret = config.path().join("secret.md");
        std::fs::write(&secret, "---\ndescription: s\n---\nsecret\n").unwrap();
        std::os::unix::fs::symlink(&secret, ws.path().join(".terok/agents/leak.md")).unwrap();

        let files = [config.path().join("config.yml")];
        let (all, errors) = collect(&files, ws.path());
        assert_eq!(all.keys().collect::<Vec<_>>(), ["reviewer", "tester"]);
        assert_eq!(all["reviewer"].entry["description"], json!("Reviews diffs"));
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("broken.md")));
        assert!(errors
            .iter()
            .any(|e| e.contains("leak.md") && e.contains("symbolic link")));
    }
}
