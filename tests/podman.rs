//! End to end on real Podman: the daemon against running containers, `acp list`, `acp connect`.
//!
//! The private Podman environment comes from `.ci/podman-env.sh` (a private storage root, a
//! private API socket, runc and cgroupfs); the test image is imported from a busybox-static
//! rootfs with the fixture agent and two wrappers, labelled `ai.terok.agents=claude,codex,ghost`
//! (`ghost` ships no wrapper). Without Podman these tests fail under `CI` and skip elsewhere.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{picker_values, Client, BIN};
use serde_json::{json, Value};

const IMAGE: &str = "localhost/terok-executor-test:latest";
const PLAIN_IMAGE: &str = "localhost/terok-executor-test-plain:latest";

struct PodmanEnv {
    vars: HashMap<String, String>,
}

fn fixture_binary() -> PathBuf {
    let path = Path::new(BIN).with_file_name("acp-fixture-agent");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "acp-fixtures", "--bin", "acp-fixture-agent"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the fixture agent");
    }
    path
}

fn setup() -> Result<PodmanEnv, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scripts = tempfile::tempdir().map_err(|e| e.to_string())?;
    for (name, flags) in [
        (
            "claude",
            "--models opus,sonnet --mode-option --ignore-stdin-eof",
        ),
        (
            "codex",
            "--models gpt-5 --model-style legacy --ignore-stdin-eof",
        ),
    ] {
        let path = scripts.path().join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec /usr/local/bin/acp-fixture-agent --name {name} {flags} \"$@\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let fixture = fixture_binary();
    let script = format!(
        "set -e; export TEROK_PODMAN_QUIET=1; source .ci/podman-env.sh; \
         terok_build_test_image {IMAGE} claude,codex,ghost '{fixture}' terok-claude-acp='{s}/claude' terok-codex-acp='{s}/codex' >&2; \
         terok_build_test_image {PLAIN_IMAGE} gh >&2; \
         for v in CONTAINER_HOST DOCKER_HOST CONTAINERS_CONF CONTAINERS_STORAGE_CONF; do printf '%s=%s\\n' \"$v\" \"${{!v}}\"; done",
        fixture = fixture.display(),
        s = scripts.path().display(),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "Podman setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    // Daemons started by the tests keep their state out of the real home: in the state dir the
    // caller gave (CI's, removed when it ends), else in one of this process's own.
    let state = std::env::var("TEROK_STATE_DIR")
        .ok()
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| {
            let dir = std::env::temp_dir().join(format!("terok-test-state-{}", std::process::id()));
            dir.display().to_string()
        });
    vars.insert("TEROK_STATE_DIR".into(), state);
    Ok(PodmanEnv { vars })
}

/// The environment, or `None` (skip) outside CI when Podman cannot be set up.
fn podman() -> Option<&'static PodmanEnv> {
    static ENV: OnceLock<Result<PodmanEnv, String>> = OnceLock::new();
    match ENV.get_or_init(setup) {
        Ok(env) => Some(env),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("Podman is required in CI: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

impl PodmanEnv {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(&self.vars);
        cmd
    }

    fn podman(&self, args: &[&str]) -> String {
        let out = self.command("podman").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run_container(&'static self, image: &str) -> Container {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("terok-test-{}-{n}", std::process::id());
        self.podman(&["run", "-d", "--name", &name, image]);
        Container { env: self, name }
    }
}

/// A running container, removed when dropped.
struct Container {
    env: &'static PodmanEnv,
    name: String,
}

impl Container {
    /// Names of processes running inside the container.
    fn processes(&self) -> String {
        self.env
            .command("podman")
            .args(["exec", &self.name, "ps", "-o", "args"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .env
            .command("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

fn wait_until(what: &str, timeout: Duration, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_serves_a_container_and_exits_when_it_stops() {
    let Some(env) = podman() else { return };
    let container = env.run_container(IMAGE);
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("c.sock");
    // Detached sessions and idle agents go within a second, so the test sees the container
    // emptied of agents once its client leaves.
    let mut daemon = env
        .command(BIN)
        .args(["acp", &container.name])
        .arg(&socket)
        .env("TEROK_ACP_DETACHED_TTL_SECS", "0.5")
        .env("TEROK_ACP_AGENT_IDLE_SECS", "0.5")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the daemon to accept", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });

    let mut client = Client::connect(&socket).await;
    client.initialize().await;
    let (sid, result) = client.new_session().await;
    // ghost is labelled but ships no wrapper.
    assert_eq!(
        picker_values(&result["configOptions"]),
        ["claude:opus", "claude:sonnet", "codex:gpt-5"]
    );
    let answer = client.pick(&sid, "claude:sonnet").await;
    assert!(answer["configOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == "mode"));
    let (chunks, _) = client.prompt(&sid, "hello container").await;
    assert_eq!(chunks, ["claude/sonnet: hello container"]);
    // The agent runs in the container's workspace.
    let (stream, done) = client.prompt(&sid, "stream 3000 64").await;
    assert_eq!(stream.len(), 3000);
    assert_eq!(done["result"]["stopReason"], "end_turn");
    // A second session on the other agent, through its legacy method.
    let (other, _) = client.new_session().await;
    assert_eq!(
        client
            .call(
                "session/set_model",
                json!({"sessionId": other, "modelId": "codex:gpt-5"})
            )
            .await,
        json!({})
    );
    let (chunks, _) = client.prompt(&other, "and codex").await;
    assert_eq!(chunks, ["codex/gpt-5: and codex"]);
    assert!(container.processes().contains("acp-fixture-agent"));

    // The agents ignore stdin EOF; once the client has left and they have been idle for their
    // idle time, nothing of them is left inside.
    drop(client);
    wait_until(
        "the agents inside the container to end",
        Duration::from_secs(20),
        || !container.processes().contains("acp-fixture-agent"),
    );

    // A prompt in flight when the container stops gets an error that says so.
    let mut waiting = Client::connect(&socket).await;
    let (sid, _) = waiting.new_session().await;
    waiting.pick(&sid, "claude:opus").await;
    let hanging = waiting
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    let stopped = Instant::now();
    env.podman(&["stop", "-t", "1", &container.name]);
    let answer = waiting.response(&hanging).await;
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{answer}"
    );
    wait_until("the daemon to exit", Duration::from_secs(20), || {
        daemon.try_wait().unwrap().is_some()
    });
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed");
    eprintln!(
        "daemon exited {:?} after podman stop began",
        stopped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_active_ready_and_unsupported_containers() {
    let Some(env) = podman() else { return };
    let with_agents = env.run_container(IMAGE);
    let plain = env.run_container(PLAIN_IMAGE);
    let run = tempfile::tempdir().unwrap();
    let list = || -> Vec<Value> {
        let out = env
            .command(BIN)
            .env("TEROK_RUNTIME_DIR", run.path())
            .args(["acp", "list", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let find = |entries: &[Value], name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed"))
    };

    let entries = list();
    assert_eq!(find(&entries, &with_agents.name)["status"], "READY");
    let unsupported = find(&entries, &plain.name);
    assert_eq!(unsupported["status"], "UNSUPPORTED");
    assert!(unsupported["note"]
        .as_str()
        .unwrap()
        .contains("no ACP-capable agent"));

    // A stale socket for the plain container is cleaned up, not shown as ACTIVE.
    let acp_dir = run.path().join("acp");
    std::fs::create_dir_all(&acp_dir).unwrap();
    drop(
        std::os::unix::net::UnixListener::bind(acp_dir.join(format!("{}.sock", plain.name)))
            .unwrap(),
    );
    let entries = list();
    let stale = find(&entries, &plain.name);
    assert_ne!(stale["status"], "ACTIVE");
    assert!(stale["note"].as_str().unwrap().contains("stale"));
    assert!(!acp_dir.join(format!("{}.sock", plain.name)).exists());

    // With a daemon and a bound session it is ACTIVE, naming the agent.
    let socket = acp_dir.join(format!("{}.sock", with_agents.name));
    let mut daemon = env
        .command(BIN)
        .args(["acp", &with_agents.name])
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the daemon to accept", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let mut client = Client::connect(&socket).await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "codex:gpt-5").await;
    let active = find(&list(), &with_agents.name);
    assert_eq!(active["status"], "ACTIVE");
    assert_eq!(active["agent"], "codex");
    let table = env
        .command(BIN)
        .env("TEROK_RUNTIME_DIR", run.path())
        .args(["acp", "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.lines().any(|l| l.starts_with(&with_agents.name)
            && l.contains("ACTIVE")
            && l.contains("codex")),
        "{table}"
    );
    drop(client);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn connect_is_an_editor_session_with_a_real_container() {
    let Some(env) = podman() else { return };
    let container = env.run_container(IMAGE);
    let run = tempfile::tempdir().unwrap();
    let mut child = env
        .command(BIN)
        .env("TEROK_RUNTIME_DIR", run.path())
        .args(["acp", "connect", &container.name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    let mut response = |id: u64| loop {
        let line = lines.next().expect("bridge closed").unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a frame ({e}): {line}"));
        if v["id"] == id && v.get("method").is_none() {
            return v;
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true}}}}),
    );
    assert_eq!(
        response(1)["result"]["agentInfo"]["title"],
        format!("terok ({})", container.name)
    );
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "session/new", "params": {"cwd": "/workspace", "mcpServers": []}}),
    );
    let sid = response(2)["result"]["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "cwd"}]}}),
    );
    assert_eq!(response(3)["result"]["stopReason"], "end_turn");
    let bound = run
        .path()
        .join("acp")
        .join(format!("{}.bound", container.name));
    wait_until("the bound marker", Duration::from_secs(5), || {
        bound.exists()
    });
    let marker: Value = serde_json::from_str(&std::fs::read_to_string(&bound).unwrap()).unwrap();
    assert_eq!(marker["agent"], "claude");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(run
        .path()
        .join("acp")
        .join(format!("{}.log", container.name))
        .exists());
    // Stopping the container ends the detached daemon, which removes its socket.
    env.podman(&["stop", "-t", "1", &container.name]);
    let socket = run
        .path()
        .join("acp")
        .join(format!("{}.sock", container.name));
    wait_until(
        "the daemon to remove its socket",
        Duration::from_secs(20),
        || !socket.exists(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_are_translated_between_the_editor_and_the_container() {
    let Some(env) = podman() else { return };
    let container = env.run_container(IMAGE);
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("p.sock");
    let mut daemon = env
        .command(BIN)
        .args(["acp", &container.name])
        .arg(&socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the daemon to accept", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let mut client = Client::connect(&socket).await;
    client
        .call("initialize", json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}, "terminal": true}}))
        .await;
    let host = "/home/editor/project";
    let result = client
        .call(
            "session/new",
            json!({"cwd": host, "mcpServers": [
        {"name": "host-tool", "command": "/usr/local/bin/host-only-mcp", "args": [], "env": []},
        {"type": "http", "name": "web", "url": "http://127.0.0.1:9/mcp", "headers": []}]}),
        )
        .await;
    let sid = result["sessionId"].as_str().unwrap().to_owned();
    client.pick(&sid, "claude:opus").await;

    // The agent works in the container's workspace.
    let (chunks, _) = client.prompt(&sid, "cwd").await;
    assert_eq!(chunks, ["cwd: /workspace"]);

    // An agent's read inside the workspace reaches the editor as the host path.
    let prompt = client.request("session/prompt", json!({"sessionId": sid, "prompt": [{"type": "text", "text": "read /workspace/src/main.rs"}]})).await;
    let read = client
        .wait_for("the read request", |v| v["method"] == "fs/read_text_file")
        .await;
    assert_eq!(read["params"]["path"], format!("{host}/src/main.rs"));
    client
        .send(&json!({"jsonrpc": "2.0", "id": read["id"], "result": {"content": "fn main() {}"}}))
        .await;
    client.response(&prompt).await;
    client.backlog.clear();

    // Outside every mapped root: refused, and never shown to the editor.
    let (chunks, _) = client.prompt(&sid, "read /etc/shadow").await;
    assert_eq!(chunks.len(), 1);
    assert!(chunks[0].starts_with("read error:"), "{chunks:?}");
    // The editor's terminal runs on the host: not for agents in a container.
    let (chunks, _) = client.prompt(&sid, "terminal ls").await;
    assert!(
        chunks[0].contains("error") || chunks[0].contains("not offered"),
        "{chunks:?}"
    );
    assert!(
        client
            .backlog
            .iter()
            .all(|v| v["method"] != "fs/read_text_file" && v["method"] != "terminal/create"),
        "{:?}",
        client.backlog
    );
    drop(client);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(daemon.wait().unwrap().success());
}
