//! A headless run's command line: the roster's flags for the agent, with the overrides a user
//! gives (`--model`, `--max-turns`, `--timeout`).
//!
//! What an agent's roster entry has no flag for is not dropped silently: [`line`] returns a
//! warning for each such override, which `run` prints. The line calls the agent's shell function
//! (see [`crate::launcher::wrappers`]), which adds the agent's own flags. A timeout needs no flag
//! from the agent: the function (or, for an agent without one, the line) runs it under `timeout`,
//! which ends it with SIGTERM (and SIGKILL 30 s later). The shell stays the
//! container's first process (`; exit $?`), because a first process ignores the signals it has
//! no handler for, and BusyBox's `timeout` signals the command it became itself. `run` reports a
//! run that `timeout` ended (GNU's 124, or 143/137 once the time is up) as 124.

use std::time::Duration;

use super::spec::shell_quote;
use crate::launcher::env::CONTAINER_AGENT_CONFIG;
use crate::launcher::roster::AgentProvider;
use crate::launcher::wrappers;

/// The exit status of a run that `--timeout` ended.
pub const TIMED_OUT: u8 = 124;

/// What a user may set for a headless run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadlessOptions {
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub timeout: Option<Duration>,
}

/// The headless invocation of `agent` (the prompt is read from the agent config mount), and a
/// warning for each override the agent cannot take.
pub fn line(agent: &AgentProvider, opts: &HeadlessOptions) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let mut words: Vec<String> = Vec::new();
    // The agent's shell function (terok-executor.sh) adds its own flags, identity and session
    // resume, and takes the timeout; an agent without one is run directly.
    let function = wrappers::has_function(agent);
    let secs = opts.timeout.map(|t| t.as_secs().max(1).to_string());
    if let (Some(secs), false) = (&secs, function) {
        words.extend([
            "timeout".into(),
            "-k".into(),
            wrappers::KILL_AFTER_SECS.to_string(),
            "-s".into(),
            "TERM".into(),
            secs.clone(),
        ]);
    }
    words.push(shell_quote(&agent.binary));
    if let (Some(secs), true) = (&secs, function) {
        words.extend(["--terok-timeout".into(), secs.clone()]);
    }
    if let Some(sub) = &agent.headless_subcommand {
        words.push(shell_quote(sub));
    }
    if !function {
        words.extend(agent.auto_approve_flags.iter().map(|f| shell_quote(f)));
    }
    let mut flag = |flag: &Option<String>, value: Option<String>, what: &str| {
        let Some(value) = value else { return };
        match flag {
            Some(flag) => {
                words.push(shell_quote(flag));
                words.push(shell_quote(&value));
            }
            None => warnings.push(format!(
                "{} has no {what} option; --{what} {value} is ignored",
                agent.name
            )),
        }
    };
    flag(&agent.model_flag, opts.model.clone(), "model");
    flag(
        &agent.max_turns_flag,
        opts.max_turns.map(|n| n.to_string()),
        "max-turns",
    );
    if !agent.prompt_flag.is_empty() {
        words.push(shell_quote(&agent.prompt_flag));
    }
    words.push(format!("\"$(cat {CONTAINER_AGENT_CONFIG}/prompt.txt)\""));
    let mut line = words.join(" ");
    if opts.timeout.is_some() {
        line.push_str("; exit $?");
    }
    (line, warnings)
}

/// Whether a run with `timeout` that exited with `code` after `elapsed` was ended by it.
pub fn timed_out(timeout: Duration, code: u8, elapsed: Duration) -> bool {
    code == TIMED_OUT || (matches!(code, 137 | 143) && elapsed >= timeout)
}

/// Parses `90`, `90s`, `15m`, `2h` (a whole number and an optional unit) into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (like 90s, 15m or 2h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("'{text}': the unit is s, m or h")),
    };
    if secs == 0 {
        return Err("a timeout of zero would end the run at once".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::load_roster;

    fn provider(name: &str) -> AgentProvider {
        load_roster(None).unwrap().providers()[name].clone()
    }

    #[test]
    fn claude_takes_every_override() {
        let opts = HeadlessOptions {
            model: Some("opus".into()),
            max_turns: Some(7),
            timeout: Some(Duration::from_secs(900)),
        };
        let (line, warnings) = line(&provider("claude"), &opts);
        assert_eq!(
            line,
            "claude --terok-timeout 900 --model opus --max-turns 7 -p \"$(cat /home/dev/.terok/prompt.txt)\"; exit $?"
        );
        let limit = Duration::from_secs(10);
        assert!(timed_out(limit, 124, Duration::from_secs(1)));
        assert!(timed_out(limit, 143, Duration::from_secs(11)));
        assert!(
            !timed_out(limit, 143, Duration::from_secs(3)),
            "killed by someone else"
        );
        assert!(!timed_out(limit, 0, Duration::from_secs(11)));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn what_an_agent_cannot_take_is_a_warning_not_a_silent_drop() {
        let opts = HeadlessOptions {
            model: Some("o3".into()),
            max_turns: Some(3),
            timeout: None,
        };
        let (line, warnings) = line(&provider("codex"), &opts);
        assert_eq!(
            line,
            "codex exec --model o3 \"$(cat /home/dev/.terok/prompt.txt)\""
        );
        assert_eq!(
            warnings,
            ["codex has no max-turns option; --max-turns 3 is ignored"]
        );
        let (plain, none) = super::line(&provider("claude"), &HeadlessOptions::default());
        assert_eq!(plain, "claude -p \"$(cat /home/dev/.terok/prompt.txt)\"");
        assert!(none.is_empty());
    }

    #[test]
    fn an_agent_without_a_function_is_run_directly() {
        let mut agent = provider("codex");
        agent.binary = "/opt/codex/bin/codex".into();
        let opts = HeadlessOptions {
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert_eq!(
            line(&agent, &opts).0,
            "timeout -k 30 -s TERM 60 /opt/codex/bin/codex exec --yolo \"$(cat /home/dev/.terok/prompt.txt)\"; exit $?"
        );
    }

    #[test]
    fn durations_read_like_timeout_arguments() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "m", "1.5h", "10d", "0", "-5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
