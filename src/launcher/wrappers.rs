//! The shell wrapper file `terok-executor.sh`: one bash function per agent, written into the
//! agent config directory on every launch. The image links it into every bash's environment
//! (`/etc/profile.d/terok-env.sh` sources it), so `claude`, `codex`, … typed in a container
//! shell, or run by a headless task, are these functions.
//!
//! Each function
//! - takes `--terok-timeout SECONDS` before the agent's own arguments: the run then ends with
//!   SIGTERM after that long (SIGKILL 30 s later), and returns 124;
//! - refuses the agent's login subcommands (the roster's `wrapper.refuse_subcommands`): logins
//!   are made on the host, with `terok-executor auth`;
//! - runs the agent in a subshell with the agent's git identity, so the caller's shell keeps
//!   its own;
//! - adds the agent's own flags: auto-approval (when `TEROK_UNRESTRICTED=1`), the task's
//!   instructions and sub-agents in the form the agent takes them, Claude's `--add-dir /`;
//! - resumes the task's last session on a bare launch or a headless one, where the agent
//!   records its session (the roster's `session.session_file`, or Claude's session hook); a
//!   resume that fails within 3 s (a session the agent never saved) is retried fresh.
//!
//! Agents whose binary is not a plain command name, or is one of the commands the image relies on
//! (`sh`, `git`, …), get no function.

use std::fmt::Write as _;

use super::env::CONTAINER_AGENT_CONFIG;
use super::roster::AgentProvider;

/// The file's name in the agent config directory.
pub const FILE: &str = "terok-executor.sh";
/// Claude's extra settings (the session hook), passed with `--settings`.
pub const CLAUDE_SETTINGS: &str = "claude-settings.json";
/// Where Claude's session hook records the session id.
pub const CLAUDE_SESSION: &str = "claude-session.txt";
/// How long an agent has after a timeout's SIGTERM before SIGKILL.
pub const KILL_AFTER_SECS: u64 = 30;
/// Seconds within which a failed resume counts as a session that was never saved.
const STALE_RESUME_SECS: u32 = 3;

/// The runner every function calls.
const RUNNER: &str = r#"# _terok_agent BINARY GIT_NAME GIT_EMAIL SESSION_FILE RESUME_FLAG REFUSED SUBCOMMAND \
#              [FIXED ARGS...] -- [USER ARGS...]
_terok_agent() {
    local binary=$1 git_name=$2 git_email=$3 session=$4 resume=$5 refused=$6 sub=$7
    shift 7
    local fixed=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do fixed+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local timeout=
    if [ "${1:-}" = --terok-timeout ]; then
        if ! [[ "${2:-}" =~ ^[1-9][0-9]*$ ]]; then
            echo "$binary: --terok-timeout takes a whole number of seconds" >&2
            return 2
        fi
        timeout=$2
        shift 2
    fi
    if [ -n "$refused" ] && [ $# -gt 0 ] && [[ " $refused " == *" $1 "* ]]; then
        echo "$binary $1 is not available in a terok container." >&2
        echo "Log in on the host instead: terok-executor auth $binary" >&2
        return 1
    fi
    local resumed=()
    if [ -n "$session" ] && [ -n "$resume" ] && [ -s "$session" ] &&
        { [ -n "$timeout" ] || [ $# -eq 0 ] || { [ -n "$sub" ] && [ "$1" = "$sub" ]; }; }; then
        resumed=("$resume" "$(head -n 1 "$session")")
    fi
    local lead=()
    if [ -n "$sub" ] && [ "${1:-}" = "$sub" ]; then
        lead=("$1")
        shift
    fi
    local run=(command "$binary")
    [ -n "$timeout" ] && run=(timeout -k KILL_SECS -s TERM "$timeout" "$binary")
    (
        if declare -F terok_git_identity >/dev/null; then
            terok_git_identity "$git_name" "$git_email"
        fi
        [ -n "$session" ] && export TEROK_SESSION_FILE="$session"
        started=$SECONDS
        "${run[@]}" "${lead[@]}" "${fixed[@]}" "${resumed[@]}" "$@"
        rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ ${#resumed[@]} -gt 0 ] &&
            [ $((SECONDS - started)) -lt STALE_SECS ]; then
            echo "$binary: resuming session ${resumed[1]} failed; starting a new one" >&2
            rm -f -- "$session"
            "${run[@]}" "${lead[@]}" "${fixed[@]}" "$@"
            rc=$?
        fi
        exit "$rc"
    )
}
"#;

/// Whether `agent` gets a function (its binary is a plain command name).
pub fn has_function(agent: &AgentProvider) -> bool {
    let b = &agent.binary;
    !b.is_empty()
        && !b.starts_with('-')
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !SHADOW_NEVER.contains(&b.as_str())
}

/// Commands a function must never shadow: the shell, what the functions themselves run, and
/// what scripts in the image rely on. A roster entry with such a binary (a test's `sh`, say)
/// is run directly.
const SHADOW_NEVER: &[&str] = &[
    "sh", "bash", "dash", "env", "command", "exec", "timeout", "exit", "export", "local", "return",
    "declare", "test", "true", "false", "cat", "head", "rm", "mkdir", "ln", "sed", "sudo", "git",
    "node", "npm", "npx", "python3", "python", "curl", "jq",
];

/// The whole file for `agents` (the roster's agent providers).
pub fn render<'a>(agents: impl IntoIterator<Item = &'a AgentProvider>) -> String {
    let mut out = String::from(
        "# terok-executor.sh: this task's agent functions, written by `terok-executor run`.\n\
         # Sourced by every bash in the container. Each function takes `--terok-timeout SECONDS`\n\
         # before the agent's own arguments.\n",
    );
    let _ = writeln!(
        out,
        "_terok_dir=${{_terok_dir:-{CONTAINER_AGENT_CONFIG}}}\n"
    );
    out.push_str(
        &RUNNER
            .replace("STALE_SECS", &STALE_RESUME_SECS.to_string())
            .replace("KILL_SECS", &KILL_AFTER_SECS.to_string()),
    );
    for agent in agents {
        if has_function(agent) {
            out.push('\n');
            out.push_str(&function(agent));
        }
    }
    out
}

/// One agent's function.
fn function(agent: &AgentProvider) -> String {
    let q = crate::shell::quote;
    let mut body = String::new();
    let _ = writeln!(body, "{}() {{", agent.binary);
    body.push_str("    local fixed=()\n");
    if !agent.auto_approve_flags.is_empty() {
        let flags: Vec<String> = agent.auto_approve_flags.iter().map(|f| q(f)).collect();
        let _ = writeln!(
            body,
            "    [ \"${{TEROK_UNRESTRICTED:-}}\" = 1 ] && fixed+=({})",
            flags.join(" ")
        );
    }
    if agent.supports_add_dir {
        body.push_str("    fixed+=(--add-dir /)\n");
    }
    if agent.supports_agents_json {
        let _ = writeln!(
            body,
            "    [ -s \"$_terok_dir/{json}\" ] && fixed+=(--agents \"$(cat \"$_terok_dir/{json}\")\")",
            json = super::subagents::AGENTS_JSON
        );
    }
    let instructions = "\"$_terok_dir/instructions.md\"";
    match agent.name.as_str() {
        "claude" => {
            let _ = writeln!(
                body,
                "    [ -s {instructions} ] && fixed+=(--append-system-prompt \"$(cat {instructions})\")"
            );
        }
        "codex" => {
            let _ = writeln!(
                body,
                "    [ -s {instructions} ] && fixed+=(-c \"model_instructions_file=\\\"$_terok_dir/instructions.md\\\"\")"
            );
        }
        "copilot" => {
            let _ = writeln!(
                body,
                "    [ -s {instructions} ] && local -x COPILOT_CUSTOM_INSTRUCTIONS_DIRS=\"$_terok_dir\""
            );
        }
        // OpenCode and the agents built on it merge an inline config over their own files; one
        // the user set already is left alone.
        _ if agent.binary == "opencode" || agent.opencode.is_some() => {
            let _ = writeln!(
                body,
                "    [ -s {instructions} ] && [ -z \"${{OPENCODE_CONFIG_CONTENT:-}}\" ] && \\\n        \
                 local -x OPENCODE_CONFIG_CONTENT=\"{{\\\"instructions\\\":[\\\"$_terok_dir/instructions.md\\\"]}}\""
            );
        }
        _ => {}
    }
    if agent.supports_session_hook {
        let _ = writeln!(
            body,
            "    [ -s \"$_terok_dir/{CLAUDE_SETTINGS}\" ] && fixed+=(--settings \"$_terok_dir/{CLAUDE_SETTINGS}\")"
        );
    }
    if agent.session_file.is_some() && agent.binary == "opencode" {
        // OpenCode records its session through the plugin (see opencode-session-plugin.mjs).
        body.push_str(
            "    local plugin=/usr/local/share/terok/opencode-session-plugin.mjs\n    \
             if [ -f \"$plugin\" ]; then\n        \
             mkdir -p \"$HOME/.config/opencode/plugins\" 2>/dev/null &&\n            \
             ln -sf \"$plugin\" \"$HOME/.config/opencode/plugins/terok-session.mjs\" 2>/dev/null\n    \
             fi\n",
        );
    }
    let session = session_file(agent)
        .map(|f| format!("\"$_terok_dir/{f}\""))
        .unwrap_or_else(|| "''".into());
    let resume = agent
        .resume_flag
        .as_deref()
        .filter(|_| agent.supports_session_resume)
        .map(q)
        .unwrap_or_else(|| "''".into());
    let refused = q(&agent.refuse_subcommands.join(" "));
    let sub = agent
        .headless_subcommand
        .as_deref()
        .map(q)
        .unwrap_or_else(|| "''".into());
    let _ = writeln!(
        body,
        "    _terok_agent {} {} {} {session} {resume} {refused} {sub} \"${{fixed[@]}}\" -- \"$@\"",
        q(&agent.binary),
        q(&agent.git_author_name),
        q(&agent.git_author_email),
    );
    body.push_str("}\n");
    body
}

/// The file in the agent config directory where `agent`'s last session id is recorded.
pub fn session_file(agent: &AgentProvider) -> Option<String> {
    if !agent.supports_session_resume {
        return None;
    }
    match &agent.session_file {
        Some(file) => Some(file.clone()),
        None if agent.supports_session_hook => Some(CLAUDE_SESSION.into()),
        None => None,
    }
}

/// Claude's extra settings: a `SessionStart` hook that records the session id, so the wrapper
/// can resume it. Passed with `--settings`, so the user's shared `settings.json` stays as it is.
pub fn claude_settings() -> serde_json::Value {
    let record = format!(
        "sed -n 's/.*\"session_id\" *: *\"\\([^\"]*\\)\".*/\\1/p' > {CONTAINER_AGENT_CONFIG}/{CLAUDE_SESSION}"
    );
    serde_json::json!({
        "hooks": {
            "SessionStart": [{"hooks": [{"type": "command", "command": record}]}]
        }
    })
}

#[cfg(test)]
#[path = "wrappers_tests.rs"]
mod tests;
