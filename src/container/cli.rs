//! The `run`, `list` and `stop` subcommands.

use std::path::PathBuf;

use clap::Args;

use crate::image::cli::ImageArgs;

/// `terok-executor run`: start an agent container.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The agent to run (see `terok-executor agents`).
    pub agent: String,
    /// The project directory mounted at /workspace.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Run headless on this prompt, follow the agent's output and exit with its exit code.
    #[arg(short = 'p', long, conflicts_with = "acp")]
    pub prompt: Option<String>,
    /// Start the ACP daemon for the container and print how to connect an editor.
    #[arg(long)]
    pub acp: bool,
    /// Model for headless runs (the agent's model flag).
    #[arg(short = 'm', long)]
    pub model: Option<String>,
    /// Headless runs: the most agent turns (where the agent has such an option).
    #[arg(long, value_name = "N", requires = "prompt")]
    pub max_turns: Option<u32>,
    /// Headless runs: end the agent after this long (`90s`, `15m`, `2h`); the exit status is then 124.
    #[arg(long, value_name = "DURATION", requires = "prompt", value_parser = super::headless::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Add this sub-agent (from `.terok/agents/<NAME>.md` or a config `agents/` directory) to
    /// the default ones; repeatable.
    #[arg(long = "subagent", value_name = "NAME")]
    pub subagents: Vec<String>,
    /// No bind mounts: copy the workspace, the agent config and the shared config files in
    /// before the start (`terok-executor pull` copies results out).
    #[arg(long)]
    pub sealed: bool,
    /// Fix what the preflight can: build missing or out-of-date images without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Container name (default: terok-executor-<random id>).
    #[arg(long)]
    pub name: Option<String>,
    /// Use this image instead of the L1 image of the selection (nothing is built).
    #[arg(long)]
    pub image: Option<String>,
    /// Roster entries of the image (comma-separated or `all`; default: the agent).
    #[arg(long)]
    pub agents: Option<String>,
    #[command(flatten)]
    pub image_args: ImageArgs,
    /// Relax the container hardening: keep the engine's default capabilities, allow privilege
    /// gain (sudo), a writable root filesystem, and no pids or memory limits.
    #[arg(long)]
    pub unrestricted: bool,
    /// Memory limit (e.g. 4g; default 8g, none with --unrestricted).
    #[arg(long, value_parser = crate::container::hardening::parse_memory)]
    pub memory: Option<i64>,
    /// Process limit (default 4096, none with --unrestricted).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// An environment variable for the container: `KEY=VALUE`, or `KEY` for the host's value;
    /// repeatable. It wins over the launcher's own variable of the same name.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

/// `KEY=VALUE`, or `KEY` (the host's value; an error when the host has none).
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value.to_owned())),
        None => (text, None),
    };
    let valid = key
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if key.is_empty() || !valid {
        return Err(format!("{key:?} is not a variable name"));
    }
    let value = match value {
        Some(v) => v,
        None => std::env::var(key).map_err(|_| format!("{key} is not set here"))?,
    };
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn env_entries_are_checked() {
        assert_eq!(parse_env("A_1=x=y"), Ok(("A_1".into(), "x=y".into())));
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("1A=x").is_err());
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A B=x").is_err());
        std::env::var("PATH").unwrap();
        assert_eq!(parse_env("PATH").unwrap().1, std::env::var("PATH").unwrap());
        assert!(parse_env("TEROK_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .contains("not set"));
    }
}

/// `terok-executor list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `terok-executor stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Container names (as shown by `list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `terok-executor doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Also check this container (through exec).
    pub container: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `terok-executor pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The container.
    pub container: String,
    /// What to copy out (a directory or a file in the container).
    #[arg(default_value = "/workspace")]
    pub path: String,
    /// Where to put it on the host: a directory that does not exist yet or is empty
    /// (default: `./<container>-<last part of PATH>`).
    #[arg(long)]
    pub to: Option<PathBuf>,
}
