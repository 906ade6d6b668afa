//! Logging in from the editor through the host's vault: `initialize` offers a terminal login for
//! each agent the vault routes; the editor's terminal runs `acp connect <container> vault-login
//! <agent>` (here in a pseudo-terminal), which asks for the key with echo off, stores it in
//! terok-sandbox's real vault and reports to the daemon; the daemon mints the container's tokens,
//! starts the agent with them and its models appear in the open session's picker.
//!
//! The "container" is a directory of fixture agents (the local runtime); `claude` there counts
//! as logged in only when `ANTHROPIC_API_KEY` is set, as the real agent does. The vault is
//! terok-sandbox 0.6.0's (`TEROK_TEST_SANDBOX_PY`): without it the test skips, except under CI.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::vault::sandbox_python;
use common::{picker_values, Agents, Client, BIN};

const PASSPHRASE: &str = "login-test-passphrase";

/// Every variable that locates terok's state, pointed into `dir`.
fn terok_env(cmd: &mut Command, dir: &Path) {
    cmd.env("TEROK_CONFIG_FILE", dir.join("config.yml"))
        .env("TEROK_CONFIG_DIR", dir.join("config"))
        .env("TEROK_VAULT_DIR", dir.join("vault"))
        .env("TEROK_ROOT", dir.join("root"))
        .env("TEROK_RUNTIME_DIR", dir.join("run"))
        .env_remove("TEROK_VAULT_PASSPHRASE_FILE")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUST_LOG");
}

/// Reads what `master` shows until `done` holds for it (or the deadline passes).
fn read_until(master: &mut std::fs::File, seen: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while !done(seen) {
        assert!(Instant::now() < deadline, "the terminal showed: {seen:?}");
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editor_logs_an_agent_in_through_the_vault_from_its_terminal() {
    let Some(python) = sandbox_python() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("terok-login-")
        .tempdir()
        .unwrap();
    let home = dir.path();
    std::fs::write(
        home.join("config.yml"),
        format!(
            "credentials:\n  use_keyring: false\n  passphrase_command: \"printf {PASSPHRASE}\"\n"
        ),
    )
    .unwrap();
    let sandbox = |code: &str| {
        let mut cmd = Command::new(&python);
        cmd.arg("-c").arg(format!(
            "import json\nfrom terok_sandbox import SandboxConfig\ndb = SandboxConfig().open_credential_db()\n{code}"
        ));
        terok_env(&mut cmd, home);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    sandbox("pass");

    let agents = Agents::new(&[
        ("claude", "--models opus --auth-env ANTHROPIC_API_KEY"),
        ("fixture", "--models small"),
    ]);
    let container = agents.path().to_str().unwrap().to_owned();

    // The editor, through `acp connect`.
    let mut editor_cmd = tokio::process::Command::new(BIN);
    editor_cmd
        .args(["acp", "connect", "--runtime", "local", &container])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    terok_env(editor_cmd.as_std_mut(), home);
    let mut bridge = editor_cmd.spawn().unwrap();
    let mut editor = Client::over(bridge.stdout.take().unwrap(), bridge.stdin.take().unwrap());
    let init = editor
        .call(
            "initialize",
            json!({"protocolVersion": 1,
                   "clientCapabilities": {"fs": {"readTextFile": true}, "auth": {"terminal": true}},
                   "clientInfo": {"name": "login-test", "version": "1"}}),
        )
        .await;
    let login = init["authMethods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "claude:vault-login")
        .cloned()
        .unwrap_or_else(|| panic!("no vault login offered: {init}"));
    assert_eq!(login["type"], "terminal");
    assert_eq!(login["args"], json!(["vault-login", "claude"]));
    assert!(
        !init["authMethods"]
            .to_string()
            .contains("fixture:vault-login"),
        "fixture is not routed through the vault: {init}"
    );
    let (sid, session) = editor.new_session().await;
    let values = picker_values(&session["configOptions"]);
    assert!(
        values.iter().all(|v| !v.starts_with("claude:")),
        "{values:?}"
    );
    let refused = editor
        .call_err("authenticate", json!({"methodId": "claude:vault-login"}))
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("terminal login"),
        "{refused}"
    );

    // The editor's terminal runs the command with the method's arguments.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut login_cmd = Command::new(BIN);
    login_cmd
        .args(["acp", "connect", "--runtime", "local", &container])
        .args(
            login["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        )
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave));
    terok_env(&mut login_cmd, home);
    let mut child = login_cmd.spawn().unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    read_until(&mut master, &mut seen, |s| s.contains("API key for claude"));
    let key = "sk-ant-typed-in-the-terminal";
    master.write_all(format!("{key}\n").as_bytes()).unwrap();
    read_until(&mut master, &mut seen, |s| {
        s.contains("ready") || s.contains("error")
    });
    let status = child.wait().unwrap();
    assert!(status.success(), "the login failed: {seen}");
    assert!(seen.contains("claude is ready"), "{seen}");
    assert!(!seen.contains(key), "the key was echoed: {seen}");

    // terok-sandbox's own API sees the key under claude's provider.
    let stored = sandbox("print(json.dumps(db.load_credential('default', 'anthropic')))");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored, json!({"type": "api_key", "key": key}));

    // The open session's picker shows claude now, and a pick and a prompt work.
    let sid_value = json!(sid);
    editor
        .wait_for_within("claude in the picker", Duration::from_secs(30), |v| {
            v["params"]["sessionId"] == sid_value
                && v["params"]["update"]["sessionUpdate"] == "config_option_update"
                && picker_values(&v["params"]["update"]["configOptions"])
                    .iter()
                    .any(|m| m == "claude:opus")
        })
        .await;
    editor.pick(&sid, "claude:opus").await;
    let (_, done) = editor.prompt(&sid, "hello").await;
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");

    // The agent got a phantom token minted for this endpoint, never the key.
    let tokens = sandbox(
        "print(db._conn.execute(\"SELECT count(*) FROM proxy_tokens WHERE provider = 'anthropic'\").fetchone()[0])",
    );
    assert_ne!(tokens, "0", "a token was minted");
    let log: String = std::fs::read_dir(home.join("run/acp"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(log.contains("vault login"), "the daemon's log: {log}");
    assert!(!log.contains(key) && !log.contains("terok-p-"), "{log}");
    drop(editor);
    let _ = bridge.kill().await;
}
