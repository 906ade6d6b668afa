//! Per-agent defaults for the `_meta` of the sessions the daemon opens at an agent.
//!
//! Some adapters take a task's settings only with each session: claude-agent-acp reads
//! `_meta.systemPrompt` (`{append: ...}` adds to Claude Code's own prompt) and
//! `_meta.claudeCode.options` (the Agent SDK's options; `agents` holds the sub-agents in the
//! form of Claude's `--agents`). The daemon adds its defaults to every `session/new`,
//! `session/load` and `session/resume` it sends such an agent, probes and spare sessions
//! included. What the client sent wins: a default fills only keys the client left out.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

/// Agent name → the `_meta` its sessions get.
pub type SessionDefaults = HashMap<String, Arc<Map<String, Value>>>;

/// Whether `method` opens (or reopens) an agent session.
pub fn opens_session(method: &str) -> bool {
    matches!(method, "session/new" | "session/load" | "session/resume")
}

/// Adds `defaults` to `params["_meta"]`, keeping every value the params hold already.
pub fn apply(params: &mut Value, defaults: &Map<String, Value>) {
    let Some(params) = params.as_object_mut() else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        fill(meta, defaults);
    }
    // A `_meta` that is not an object is the client's business: it is left alone.
}

fn fill(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, value) in defaults {
        match (target.get_mut(key), value) {
            (None, _) => {
                target.insert(key.clone(), value.clone());
            }
            (Some(Value::Object(inner)), Value::Object(more)) => fill(inner, more),
            (Some(_), _) => {}
        }
    }
}

/// claude-agent-acp's `_meta` for a task's instructions and sub-agents (Claude's `--agents`
/// object); `None` when there is neither.
pub fn claude(
    instructions: Option<&str>,
    agents: Option<Map<String, Value>>,
) -> Option<Map<String, Value>> {
    let mut meta = Map::new();
    if let Some(text) = instructions.map(str::trim).filter(|t| !t.is_empty()) {
        meta.insert("systemPrompt".into(), serde_json::json!({ "append": text }));
    }
    if let Some(agents) = agents.filter(|a| !a.is_empty()) {
        meta.insert(
            "claudeCode".into(),
            serde_json::json!({ "options": { "agents": agents } }),
        );
    }
    (!meta.is_empty()).then_some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Map<String, Value> {
        let agents = json!({"reviewer": {"description": "d", "prompt": "p"}});
        claude(Some("Be careful.\n"), agents.as_object().cloned()).unwrap()
    }

    #[test]
    fn fills_a_bare_session_new() {
        let mut params = json!({"cwd": "/w", "mcpServers": []});
        apply(&mut params, &defaults());
        assert_eq!(
            params["_meta"],
            json!({
                "systemPrompt": {"append": "Be careful."},
                "claudeCode": {"options": {"agents": {"reviewer": {"description": "d", "prompt": "p"}}}}
            })
        );
    }

    #[test]
    fn the_clients_values_win() {
        let mut params = json!({
            "cwd": "/w",
            "_meta": {
                "systemPrompt": "mine",
                "claudeCode": {"options": {"agents": {"reviewer": {"prompt": "own"}}, "maxTurns": 3}},
                "other": 1
            }
        });
        apply(&mut params, &defaults());
        assert_eq!(params["_meta"]["systemPrompt"], "mine");
        assert_eq!(
            params["_meta"]["claudeCode"],
            json!({"options": {"agents": {"reviewer": {"prompt": "own", "description": "d"}}, "maxTurns": 3}})
        );
        assert_eq!(params["_meta"]["other"], 1);

        let mut odd = json!({"cwd": "/w", "_meta": "text"});
        apply(&mut odd, &defaults());
        assert_eq!(odd["_meta"], "text");
    }

    #[test]
    fn nothing_to_say_is_no_meta() {
        assert!(claude(None, None).is_none());
        assert!(claude(Some("  \n"), Some(Map::new())).is_none());
        assert!(opens_session("session/resume") && !opens_session("session/prompt"));
    }
}
