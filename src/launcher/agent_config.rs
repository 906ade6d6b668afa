//! The agent config directory (`~/.terok` in the container), prepared on every launch:
//! - `instructions.md`: the task instructions ([`super::instructions`]);
//! - `agents.json`: the sub-agents in Claude's `--agents` form ([`super::subagents`]), when
//!   there are any;
//! - `terok-executor.sh`: the agents' shell functions ([`super::wrappers`]);
//! - `claude-settings.json`: Claude's session hook, which lets its function resume.
//!
//! The ACP side reads the same files: the daemon passes the instructions and sub-agents to
//! claude-agent-acp with each session ([`session_defaults`]).

use std::path::Path;

use anyhow::Context;

use super::roster::{AgentProvider, Roster};
use super::{instructions, subagents, wrappers};

/// Writes the directory's files for a launch of `agent`; `selected` names sub-agents to add to
/// the default ones. Invalid definition files are warnings; an unknown selected name is an
/// error.
pub fn prepare(
    dir: &Path,
    roster: &Roster,
    agent: &AgentProvider,
    config_files: &[impl AsRef<Path>],
    workspace: &Path,
    selected: &[String],
) -> anyhow::Result<()> {
    let write = |name: &str, contents: &[u8]| {
        std::fs::write(dir.join(name), contents)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    write(
        "instructions.md",
        instructions::for_launch(config_files, &agent.name, workspace).as_bytes(),
    )?;

    let (all, problems) = subagents::collect(config_files, workspace);
    for problem in problems {
        eprintln!("warning: sub-agent skipped: {problem}");
    }
    let chosen = subagents::to_claude_json(&all, selected)?;
    if !selected.is_empty() && !agent.supports_agents_json {
        eprintln!(
            "warning: {} takes no sub-agent definitions; --subagent is ignored for it",
            agent.name
        );
    }
    let agents_json = dir.join(subagents::AGENTS_JSON);
    if chosen.is_empty() {
        match std::fs::remove_file(&agents_json) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", agents_json.display()))
            }
            _ => {}
        }
    } else {
        write(
            subagents::AGENTS_JSON,
            serde_json::to_string(&chosen)?.as_bytes(),
        )?;
    }

    write(
        wrappers::FILE,
        wrappers::render(roster.providers().values()).as_bytes(),
    )?;
    write(
        wrappers::CLAUDE_SETTINGS,
        serde_json::to_string_pretty(&wrappers::claude_settings())?.as_bytes(),
    )?;
    Ok(())
}

/// What the ACP daemon adds to the sessions it opens, from a prepared directory: Claude's
/// instructions and sub-agents (claude-agent-acp takes neither from its command line). The
/// container can write the directory, so links there are not followed and a malformed
/// `agents.json` is a warning.
pub fn session_defaults(dir: &Path) -> crate::acp::session_defaults::SessionDefaults {
    let read = |name: &str| {
        crate::fsutil::read_in_tree(dir, Path::new(name)).unwrap_or_else(|e| {
            tracing::warn!("{name} of the agent config is skipped: {e}");
            None
        })
    };
    let instructions = read("instructions.md");
    let agents = read(subagents::AGENTS_JSON).and_then(|text| {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => {
                tracing::warn!("{} is not a JSON object; skipped", subagents::AGENTS_JSON);
                None
            }
        }
    });
    let mut defaults = crate::acp::session_defaults::SessionDefaults::new();
    if let Some(meta) = crate::acp::session_defaults::claude(instructions.as_deref(), agents) {
        defaults.insert("claude".into(), std::sync::Arc::new(meta));
    }
    defaults
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::load_roster;

    #[test]
    fn a_launch_writes_every_file_and_refuses_unknown_subagents() {
        let roster = load_roster(None).unwrap();
        let claude = roster.providers()["claude"].clone();
        let ws = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join(subagents::PROJECT_DIR)).unwrap();
        std::fs::write(
            ws.path().join(".terok/agents/planner.md"),
            "---\ndescription: plans\ndefault: false\n---\nPlan first.\n",
        )
        .unwrap();
        let none: [&Path; 0] = [];

        prepare(dir.path(), &roster, &claude, &none, ws.path(), &[]).unwrap();
        for file in ["instructions.md", wrappers::FILE, wrappers::CLAUDE_SETTINGS] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        assert!(
            !dir.path().join(subagents::AGENTS_JSON).exists(),
            "no default sub-agent, no file"
        );

        prepare(
            dir.path(),
            &roster,
            &claude,
            &none,
            ws.path(),
            &["planner".into()],
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(subagents::AGENTS_JSON)).unwrap(),
        )
        .unwrap();
        assert_eq!(json["planner"]["prompt"], "Plan first.");

        let err = prepare(
            dir.path(),
            &roster,
            &claude,
            &none,
            ws.path(),
            &["nope".into()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("known: planner"), "{err}");

        // The daemon's view of the same directory.
        let defaults = session_defaults(dir.path());
        let meta = &defaults["claude"];
        assert_eq!(
            meta["claudeCode"]["options"]["agents"]["planner"]["prompt"],
            "Plan first."
        );
        assert!(meta["systemPrompt"]["append"]
            .as_str()
            .unwrap()
            .starts_with(instructions::DEFAULT.trim_start().lines().next().unwrap()));
        // A link planted by the container is not followed.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        std::fs::remove_file(dir.path().join("instructions.md")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            dir.path().join("instructions.md"),
        )
        .unwrap();
        std::fs::write(dir.path().join(subagents::AGENTS_JSON), "[1]").unwrap();
        assert!(session_defaults(dir.path()).is_empty());
    }
}
