//! The wrapper file, run by a real bash against stub agents that record what they were given.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::launcher::roster::load_roster;

fn agents() -> Vec<AgentProvider> {
    load_roster(None)
        .unwrap()
        .providers()
        .values()
        .cloned()
        .collect()
}

/// A task directory, a wrapper file for the bundled roster and stub agents on `PATH`.
struct Shell {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Shell {
    fn new() -> Shell {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("terok")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("terok").join(FILE), render(&agents())).unwrap();
        // Each stub records its arguments (one per line) and the identity it ran with; it
        // sleeps when asked, and fails on a resume when told to.
        let stub = r#"#!/bin/bash
name=$(basename "$0")
{ printf '%s\n' "$@"; echo "--"; echo "author=$GIT_AUTHOR_NAME <$GIT_AUTHOR_EMAIL>"; echo "session=${TEROK_SESSION_FILE:-}"; echo "copilot_dirs=${COPILOT_CUSTOM_INSTRUCTIONS_DIRS:-}"; echo "opencode_config=${OPENCODE_CONFIG_CONTENT:-}"; } >> "$STUB_LOG.$name"
[ -n "${STUB_SLEEP:-}" ] && sleep "$STUB_SLEEP"
if [ -n "${STUB_FAIL_RESUME:-}" ]; then
    for a in "$@"; do case "$a" in --resume|--session) exit 1 ;; esac; done
fi
exit "${STUB_EXIT:-0}"
"#;
        for name in [
            "claude",
            "codex",
            "copilot",
            "opencode",
            "vibe",
            "blablador",
        ] {
            let path = root.join("bin").join(name);
            std::fs::write(&path, stub).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Shell { _dir: dir, root }
    }

    fn terok(&self, file: &str) -> PathBuf {
        self.root.join("terok").join(file)
    }

    /// Runs `script` in a bash with the wrapper file sourced; (exit code, stderr).
    fn run(&self, script: &str, env: &[(&str, &str)]) -> (i32, String) {
        let identity = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("resources/scripts/terok-env-git-identity.sh");
        let prelude = format!(
            "export PATH={bin}:$PATH; . {identity}; _terok_dir={dir}; . {dir}/{FILE}\n",
            bin = self.root.join("bin").display(),
            identity = identity.display(),
            dir = self.root.join("terok").display(),
        );
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("TEROK_GIT_AUTHORSHIP")
            .env_remove("TEROK_UNRESTRICTED")
            .env("STUB_LOG", self.root.join("log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The invocations of stub `name`: each its arguments, then its recorded environment.
    fn calls(&self, name: &str) -> Vec<(Vec<String>, Vec<String>)> {
        let log =
            std::fs::read_to_string(self.root.join(format!("log.{name}"))).unwrap_or_default();
        let mut calls = Vec::new();
        let mut lines = log.lines().peekable();
        while lines.peek().is_some() {
            let args: Vec<String> = lines
                .by_ref()
                .take_while(|l| *l != "--")
                .map(Into::into)
                .collect();
            let env: Vec<String> = lines.by_ref().take(4).map(Into::into).collect();
            calls.push((args, env));
        }
        calls
    }
}

#[test]
fn the_file_parses_and_defines_a_function_per_agent() {
    let shell = Shell::new();
    let status = Command::new("bash")
        .arg("-n")
        .arg(shell.terok(FILE))
        .status()
        .unwrap();
    assert!(status.success(), "bash -n failed");
    let (code, err) = shell.run(
        "for f in claude codex copilot opencode vibe blablador kisski openrouter; do \
         [ \"$(type -t $f)\" = function ] || { echo \"no $f\" >&2; exit 1; }; done",
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn claude_gets_its_flags_identity_and_a_bare_resume() {
    let shell = Shell::new();
    std::fs::write(shell.terok("instructions.md"), "Be careful.\n").unwrap();
    std::fs::write(
        shell.terok("agents.json"),
        r#"{"r":{"description":"d","prompt":"p"}}"#,
    )
    .unwrap();
    std::fs::write(shell.terok(CLAUDE_SETTINGS), "{}").unwrap();
    let (code, err) = shell.run(
        "export GIT_AUTHOR_NAME=Me; claude; claude --version; \
         [ \"$GIT_AUTHOR_NAME\" = Me ] || { echo 'identity leaked' >&2; exit 9; }",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let settings = shell.terok(CLAUDE_SETTINGS).display().to_string();
    let calls = shell.calls("claude");
    assert_eq!(
        calls[0].0,
        [
            "--add-dir",
            "/",
            "--agents",
            r#"{"r":{"description":"d","prompt":"p"}}"#,
            "--append-system-prompt",
            "Be careful.",
            "--settings",
            &settings,
        ]
    );
    assert_eq!(calls[0].1[0], "author=Claude <noreply@anthropic.com>");
    assert_eq!(
        calls[0].1[1],
        format!("session={}", shell.terok(CLAUDE_SESSION).display())
    );
    assert_eq!(calls[1].0.last().map(String::as_str), Some("--version"));

    // With a recorded session, a bare launch and a headless one resume it; one with the
    // user's own arguments does not.
    std::fs::write(shell.terok(CLAUDE_SESSION), "abc-123\n").unwrap();
    let (code, err) = shell.run(
        "claude && claude -p hi && claude --terok-timeout 60 -p hi",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let calls = shell.calls("claude");
    let resumed = |args: &[String]| args.windows(2).any(|w| w == ["--resume", "abc-123"]);
    assert!(resumed(&calls[2].0), "{:?}", calls[2].0);
    assert!(!resumed(&calls[3].0), "{:?}", calls[3].0);
    assert!(resumed(&calls[4].0), "{:?}", calls[4].0);
}

#[test]
fn a_resume_that_fails_at_once_is_retried_fresh() {
    let shell = Shell::new();
    std::fs::write(shell.terok(CLAUDE_SESSION), "gone\n").unwrap();
    let (code, err) = shell.run("claude", &[("STUB_FAIL_RESUME", "1")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming session gone failed"), "{err}");
    let calls = shell.calls("claude");
    assert_eq!(calls.len(), 2);
    assert!(calls[0].0.contains(&"--resume".to_owned()));
    assert!(!calls[1].0.contains(&"--resume".to_owned()));
    assert!(
        !shell.terok(CLAUDE_SESSION).exists(),
        "the stale record is dropped"
    );
}

#[test]
fn login_subcommands_are_refused_with_the_host_command() {
    let shell = Shell::new();
    let (code, err) = shell.run("codex login", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("terok-executor auth codex"), "{err}");
    assert!(shell.calls("codex").is_empty(), "the agent never ran");
    // The same word later on the line is the user's business.
    let (code, err) = shell.run("codex exec 'please login'", &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn codex_takes_approval_and_instructions_after_its_subcommand() {
    let shell = Shell::new();
    std::fs::write(shell.terok("instructions.md"), "x").unwrap();
    let (code, err) = shell.run(
        "codex exec --model o3 hi; TEROK_UNRESTRICTED= codex",
        &[("TEROK_UNRESTRICTED", "1")],
    );
    assert_eq!(code, 0, "{err}");
    let calls = shell.calls("codex");
    let file = shell.terok("instructions.md").display().to_string();
    assert_eq!(
        calls[0].0,
        [
            "exec",
            "--yolo",
            "-c",
            &format!("model_instructions_file=\"{file}\""),
            "--model",
            "o3",
            "hi"
        ]
    );
    assert_eq!(calls[0].1[0], "author=Codex <noreply@openai.com>");
    assert!(
        !calls[1].0.contains(&"--yolo".to_owned()),
        "no approval flags unless unrestricted"
    );
}

#[test]
fn copilot_and_opencode_get_their_own_forms() {
    let shell = Shell::new();
    std::fs::write(shell.terok("instructions.md"), "x").unwrap();
    std::fs::write(shell.terok("opencode-session.txt"), "ses_9\n").unwrap();
    let (code, err) = shell.run(
        "copilot; opencode; opencode run hi; OPENCODE_CONFIG_CONTENT='{}' blablador",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let copilot = shell.calls("copilot");
    assert_eq!(
        copilot[0].1[2],
        format!("copilot_dirs={}", shell.root.join("terok").display())
    );
    let opencode = shell.calls("opencode");
    assert_eq!(opencode[0].0, ["--session", "ses_9"]);
    assert_eq!(opencode[1].0, ["run", "--session", "ses_9", "hi"]);
    assert_eq!(
        opencode[0].1[1],
        format!("session={}", shell.terok("opencode-session.txt").display())
    );
    let instructions = shell.terok("instructions.md").display().to_string();
    let config: serde_json::Value =
        serde_json::from_str(opencode[0].1[3].strip_prefix("opencode_config=").unwrap()).unwrap();
    assert_eq!(config, serde_json::json!({"instructions": [instructions]}));
    let blablador = shell.calls("blablador");
    assert_eq!(
        blablador[0].1[3], "opencode_config={}",
        "the user's own is kept"
    );
}

#[test]
fn a_timeout_ends_the_agent_with_124() {
    let shell = Shell::new();
    let started = std::time::Instant::now();
    let (code, _) = shell.run(
        "vibe --terok-timeout 1 --prompt hi",
        &[("STUB_SLEEP", "30")],
    );
    assert_eq!(code, 124);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let (code, err) = shell.run("vibe --terok-timeout soon", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("whole number of seconds"), "{err}");
}

#[test]
fn odd_binaries_get_no_function_and_names_are_quoted() {
    let mut odd = agents()[0].clone();
    odd.binary = "/opt/agent/bin/run".into();
    assert!(!has_function(&odd));
    odd.binary = "timeout".into();
    assert!(!has_function(&odd));
    let mut quoted = agents()[0].clone();
    quoted.name = "x".into();
    quoted.binary = "x-agent".into();
    quoted.git_author_name = "O'Brien; rm -rf /".into();
    let file = render([&odd, &quoted]);
    assert!(!file.contains("timeout() {"));
    assert!(file.contains("x-agent() {"));
    assert!(file.contains(r"'O'\''Brien; rm -rf /'"), "{file}");
}

#[test]
fn claudes_session_hook_records_the_id() {
    let settings = claude_settings();
    let command = settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .replace(CONTAINER_AGENT_CONFIG, "$DIR");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&command)
        .env("DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            br#"{"session_id": "5f1c-77", "hook_event_name": "SessionStart", "source": "startup"}"#,
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CLAUDE_SESSION))
            .unwrap()
            .trim_end(),
        "5f1c-77"
    );
}
