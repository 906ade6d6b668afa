//! `acp connect` and `acp list` with the local runtime: an editor's view of the endpoint.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{Agents, BIN};
use serde_json::{json, Value};

fn acp(runtime_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    // The daemon's probe cache and session map stay in the test's directory too.
    cmd.env("TEROK_RUNTIME_DIR", runtime_dir)
        .env("TEROK_STATE_DIR", runtime_dir.join("state"))
        .env_remove("RUST_LOG")
        .arg("acp");
    cmd
}

/// An editor: the bridge process with piped stdio, reading one frame per line.
struct Editor {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Editor {
    /// An editor running `acp connect --runtime local <agents>` as its agent.
    fn connect(runtime_dir: &std::path::Path, agents: &std::path::Path) -> Editor {
        let mut child = acp(runtime_dir)
            .args(["connect", "--runtime", "local"])
            .arg(agents)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        Editor {
            lines: BufReader::new(stdout).lines(),
            child,
        }
    }

    fn send(&mut self, value: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{value}").unwrap();
        stdin.flush().unwrap();
    }

    fn response(&mut self, id: u64) -> Value {
        loop {
            let line = self
                .lines
                .next()
                .expect("the bridge closed stdout")
                .unwrap();
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a frame on stdout ({e}): {line}"));
            if value["id"] == id && value.get("method").is_none() {
                return value;
            }
        }
    }
}

#[test]
fn connect_starts_a_daemon_and_bridges_an_editor_session() {
    let agents = Agents::new(&[("claude", "--models opus,sonnet")]);
    let run = tempfile::tempdir().unwrap();
    let mut editor = Editor::connect(run.path(), agents.path());
    editor.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {}}}));
    assert_eq!(editor.response(1)["result"]["protocolVersion"], 1);
    editor.send(json!({"jsonrpc": "2.0", "id": 2, "method": "session/new", "params": {"cwd": "/tmp", "mcpServers": []}}));
    let sid = editor.response(2)["result"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    editor.send(json!({"jsonrpc": "2.0", "id": 3, "method": "session/set_config_option", "params": {"sessionId": sid, "configId": "model", "value": "claude:sonnet"}}));
    editor.response(3);

    // While bound, `acp list` shows the endpoint ACTIVE with its agent.
    let out = acp(run.path())
        .args(["list", "--runtime", "local", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "ACTIVE")
        .expect("an active endpoint");
    assert_eq!(entry["agent"], "claude");
    let table = String::from_utf8(
        acp(run.path())
            .args(["list", "--runtime", "local"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("ACTIVE") && table.contains("claude"),
        "{table}"
    );

    // A prompt sent just before stdin closes is not lost: the editor is gone, the turn runs on
    // in the daemon, and the next editor that loads the session finds its answer.
    editor.send(json!({"jsonrpc": "2.0", "id": 4, "method": "session/prompt", "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "last words"}]}}));
    drop(editor.child.stdin.take());
    for line in editor.lines.by_ref() {
        line.unwrap();
    }
    assert!(editor.child.wait().unwrap().success());
    let mut editor = Editor::connect(run.path(), agents.path());
    editor.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {}}}));
    editor.response(1);
    editor.send(json!({"jsonrpc": "2.0", "id": 2, "method": "session/load", "params": {"sessionId": sid, "cwd": "/tmp", "mcpServers": []}}));
    let mut chunks = Vec::new();
    for line in editor.lines.by_ref() {
        let value: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if value["params"]["update"]["sessionUpdate"] == "agent_message_chunk" {
            chunks.push(value["params"]["update"]["content"]["text"].clone());
        }
        if chunks.contains(&json!("claude/sonnet: last words")) {
            break;
        }
    }
    drop(editor.child.stdin.take());
    assert!(editor.child.wait().unwrap().success());
    // The daemon keeps serving for the next editor, and logs to the endpoint's log.
    let log = std::fs::read_dir(run.path().join("acp"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "log"));
    assert!(log.is_some(), "the daemon's log is next to its socket");
    let sock = std::fs::read_dir(run.path().join("acp"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "sock"))
        .unwrap()
        .path();
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    stop_daemons_serving(&sock);
}

/// Ends daemons started detached by a test (found by their socket argument).
fn stop_daemons_serving(sock: &std::path::Path) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&sock.as_os_str().as_encoded_bytes()) && args.iter().any(|a| *a == b"acp")
        {
            if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

#[test]
fn connect_refuses_extra_arguments_on_stderr_only() {
    let run = tempfile::tempdir().unwrap();
    let out = acp(run.path())
        .args(["connect", "some-container", "--login"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing may reach stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("extra arguments") && stderr.contains("vault-login <agent>"),
        "{stderr}"
    );
    // The one login it runs needs its agent, named properly.
    for args in [&["vault-login"][..], &["vault-login", "Not:An-Agent"]] {
        let out = acp(run.path())
            .args(["connect", "some-container"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn connect_reports_a_daemon_that_cannot_start() {
    let agents = Agents::new(&[]);
    let run = tempfile::tempdir().unwrap();
    // A file where the endpoint directory must be.
    let out = acp(run.path())
        .args(["connect", "--runtime", "local", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir"));
    drop(agents);
}

#[test]
fn list_removes_stale_sockets_instead_of_showing_them_active() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("acp");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("old.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = acp(run.path())
        .args(["list", "--runtime", "local", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &list[0];
    assert_eq!(entry["name"], "old");
    assert_ne!(entry["status"], "ACTIVE");
    assert!(entry["note"].as_str().unwrap().contains("stale"));
    assert!(!stale.exists());
    let empty = acp(run.path())
        .args(["list", "--runtime", "local"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&empty.stdout).contains("No ACP endpoints"));
}

#[test]
fn list_with_the_local_runtime_and_nothing_to_list_names_where_it_looked() {
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("acp");
    let expected = format!(
        "No ACP endpoints found (no daemon sockets in {}).\n",
        dir.display()
    );
    // Before any daemon made the directory, and once it is there but empty.
    for make_dir in [false, true] {
        if make_dir {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let out = acp(run.path())
            .args(["list", "--runtime", "local"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let table = String::from_utf8(out.stdout).unwrap();
        assert_eq!(table, expected);
        assert!(!table.contains("container"), "{table}");
        let json = acp(run.path())
            .args(["list", "--runtime", "local", "--json"])
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(list, json!([]));
    }
}

#[test]
fn demo_serve_prints_a_connect_command_that_works() {
    let run = tempfile::tempdir().unwrap();
    let mut demo = Command::new(BIN)
        .env("TEROK_RUNTIME_DIR", run.path())
        .env("TEROK_STATE_DIR", run.path().join("state"))
        .args(["demo", "--serve"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let command = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("acp connect --runtime local"))
        .expect("the demo prints how to connect");
    let words: Vec<&str> = command.split_whitespace().collect();
    wait_for_a_socket(&run.path().join("acp"));
    let mut child = Command::new(words[0])
        .args(&words[1..])
        .env("TEROK_RUNTIME_DIR", run.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut editor = Editor {
        lines: BufReader::new(stdout).lines(),
        child,
    };
    editor.send(json!({"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {"cwd": "/tmp", "mcpServers": []}}));
    let result = editor.response(1);
    let groups: Vec<&str> = result["result"]["configOptions"][0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["claude", "codex"]);
    drop(editor.child.stdin.take());
    assert!(editor.child.wait().unwrap().success());
    stop(demo);
}

/// `demo --serve` with `runtime_dir` as its runtime dir, running until [`stop`].
fn serve_demo(runtime_dir: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .env("TEROK_RUNTIME_DIR", runtime_dir)
        .env("TEROK_STATE_DIR", runtime_dir.with_extension("state"))
        .args(["demo", "--serve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `dir` holds a socket, and returns it.
fn wait_for_a_socket(dir: &std::path::Path) -> std::path::PathBuf {
    let socket = || {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let path = e.path();
            path.extension()
                .is_some_and(|x| x == "sock")
                .then_some(path)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(socket) = socket() {
            return socket;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One `initialize` answered on `socket`: the daemon is serving (and handles signals).
fn initialize(socket: &std::path::Path) {
    let stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {}}});
    writeln!(&stream, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["result"]["protocolVersion"], 1, "{line}");
}

/// SIGTERM, and a clean exit.
fn stop(mut child: std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn demo_serve_removes_the_directories_it_made_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    // A runtime dir that does not exist yet: the daemon makes it and its `acp/`, and once
    // stopped leaves neither behind.
    let runtime_dir = tmp.path().join("runtime");
    let demo = serve_demo(&runtime_dir);
    initialize(&wait_for_a_socket(&runtime_dir.join("acp")));
    stop(demo);
    assert!(
        !runtime_dir.exists(),
        "the runtime dir the daemon made is gone"
    );
    assert!(tmp.path().is_dir());

    // An `acp/` that was there before, with another endpoint's log in it, stays as it was.
    let acp = runtime_dir.join("acp");
    std::fs::create_dir_all(&acp).unwrap();
    std::fs::write(acp.join("other.log"), "kept").unwrap();
    let demo = serve_demo(&runtime_dir);
    initialize(&wait_for_a_socket(&acp));
    stop(demo);
    let left: Vec<_> = std::fs::read_dir(&acp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["other.log"]);
}
