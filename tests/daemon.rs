//! The `terok-executor acp` daemon as a process: socket lifecycle, signals, container liveness.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{alive, eventually, Agents, Client, BIN};

fn spawn_daemon(dir: &Path, socket: &Path) -> Child {
    Command::new(BIN)
        .env("TEROK_STATE_DIR", dir.join("state"))
        .args(["acp", "--runtime", "local"])
        .arg(dir)
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_live(socket: &Path) {
    eventually("the daemon to accept", || {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    })
    .await;
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + common::STEP;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "daemon did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[tokio::test]
async fn binds_privately_and_cleans_up_on_sigterm() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let socket = agents.path().join("nested").join("dir").join("c.sock");
    let mut daemon = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(socket.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let mut client = Client::connect(&socket).await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let (chunks, _) = client.prompt(&sid, "hi").await;
    assert_eq!(chunks, ["claude/opus: hi"]);
    let bound = socket.with_file_name("c.bound");
    eventually("the bound marker", || bound.exists()).await;

    // Agents that ignore stdin EOF are still ended when the daemon stops.
    let pids = agents.pids("claude");
    assert!(!pids.is_empty());
    sigterm(&daemon);
    let status = wait_exit(&mut daemon).await;
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed");
    assert!(!bound.exists(), "the bound marker is removed");
    assert!(
        !agents.path().join("nested").exists(),
        "the directories it made are removed"
    );
    eventually("every agent process to end", || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "a socket file nobody accepts on");
    let mut daemon = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    let mut client = Client::connect(&socket).await;
    client.initialize().await;
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).await.success());
}

#[tokio::test]
async fn a_live_socket_makes_a_second_daemon_exit_quietly() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("l.sock");
    let mut first = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    let mut second = spawn_daemon(agents.path(), &socket);
    let status = wait_exit(&mut second).await;
    assert!(status.success(), "{status:?}");
    // The first one still serves.
    let mut client = Client::connect(&socket).await;
    client.initialize().await;
    sigterm(&first);
    assert!(wait_exit(&mut first).await.success());
}

#[tokio::test]
async fn two_daemons_started_at_once_leave_exactly_one_serving() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("race.sock");
    let mut a = spawn_daemon(agents.path(), &socket);
    let mut b = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    // One of them exits on its own; the other keeps serving.
    let deadline = tokio::time::Instant::now() + common::STEP;
    let (mut server, exited) = loop {
        if let Some(status) = a.try_wait().unwrap() {
            break (b, status);
        }
        if let Some(status) = b.try_wait().unwrap() {
            break (a, status);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither daemon stepped back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exited.success());
    assert!(
        server.try_wait().unwrap().is_none(),
        "the winner is still running"
    );
    let mut client = Client::connect(&socket).await;
    client.initialize().await;
    sigterm(&server);
    assert!(wait_exit(&mut server).await.success());
}

#[tokio::test]
async fn the_daemon_exits_when_its_container_disappears() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("gone.sock");
    let container = agents.path().join("container");
    std::fs::create_dir(&container).unwrap();
    std::fs::copy(
        agents.path().join("terok-claude-acp"),
        container.join("terok-claude-acp"),
    )
    .unwrap();
    let mut daemon = spawn_daemon(&container, &socket);
    wait_live(&socket).await;
    std::fs::remove_dir_all(&container).unwrap();
    let status = wait_exit(&mut daemon).await;
    assert!(status.success());
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_regular_file_at_the_socket_path_is_not_replaced() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("precious.sock");
    std::fs::write(&socket, "user data").unwrap();
    let output = Command::new(BIN)
        .args(["acp", "--runtime", "local"])
        .arg(agents.path())
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a socket"));
    assert!(output.stdout.is_empty(), "nothing on stdout");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "user data");
}

#[tokio::test]
async fn a_missing_container_is_a_clear_error() {
    let output = Command::new(BIN)
        .args([
            "acp",
            "--runtime",
            "local",
            "/nonexistent/container",
            "/tmp/never.sock",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/container"));
}

#[tokio::test]
async fn a_daemon_whose_socket_is_deleted_steps_down() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("deleted.sock");
    let mut daemon = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    std::fs::remove_file(&socket).unwrap();
    let status = wait_exit(&mut daemon).await;
    assert!(status.success(), "{status:?}");
}

/// Connects as uid/gid 65534 and sends `initialize`; returns what came back.
fn initialize_as_nobody(socket: &Path) -> String {
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect({path:?})\nsys.stdout.write('CONNECTED\\n')\n\
         s.sendall(b'{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":1}}}}\\n')\n\
         data=b''\ntry:\n  while b'\\n' not in data:\n    chunk=s.recv(65536)\n    if not chunk: break\n    data+=chunk\nexcept Exception: pass\nsys.stdout.write(data.decode())",
        path = socket.display().to_string()
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn peers_of_another_user_are_refused_unless_allowed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root to connect as another user");
        return;
    }
    let agents = Agents::new(&[("claude", "--models opus")]);
    // Open the directory and socket to everyone, so only the credential check stands.
    std::fs::set_permissions(agents.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open_up = |socket: &Path| {
        std::fs::set_permissions(
            socket.parent().unwrap(),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    };

    let socket = agents.path().join("private").join("p.sock");
    let mut daemon = spawn_daemon(agents.path(), &socket);
    wait_live(&socket).await;
    open_up(&socket);
    assert_eq!(
        initialize_as_nobody(&socket),
        "CONNECTED\n",
        "another user connects but gets nothing"
    );
    // The daemon's own user is still served.
    let mut client = Client::connect(&socket).await;
    client.initialize().await;
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).await.success());

    let socket = agents.path().join("shared").join("s.sock");
    let mut daemon = Command::new(BIN)
        .env("TEROK_STATE_DIR", agents.path().join("state"))
        .env("TEROK_ACP_ALLOW_UIDS", "65534")
        .args(["acp", "--runtime", "local"])
        .arg(agents.path())
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_live(&socket).await;
    open_up(&socket);
    assert!(
        initialize_as_nobody(&socket).contains("\"protocolVersion\""),
        "an allowed user is served"
    );
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).await.success());
}

/// Runs a daemon with `TEROK_ACP_DEBUG=<debug>`, prompts a secret through it, returns its log.
async fn log_of_a_secret_prompt(debug: &str) -> String {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let socket = agents.path().join("debug.sock");
    let log = agents.path().join("daemon.log");
    let mut daemon = Command::new(BIN)
        .env("TEROK_STATE_DIR", agents.path().join("state"))
        .env("TEROK_ACP_DEBUG", debug)
        .env_remove("RUST_LOG")
        .args(["acp", "--runtime", "local"])
        .arg(agents.path())
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_live(&socket).await;
    let mut client = Client::connect(&socket).await;
    let (sid, _) = client.new_session().await;
    let (chunks, _) = client.prompt(&sid, "the password is hunter2-secret").await;
    assert_eq!(chunks.len(), 1);
    sigterm(&daemon);
    assert!(wait_exit(&mut daemon).await.success());
    std::fs::read_to_string(&log).unwrap()
}

#[tokio::test]
async fn frame_summaries_never_log_prompt_text_unless_asked() {
    let summary = log_of_a_secret_prompt("1").await;
    assert!(
        summary.contains("session/prompt"),
        "summaries are on: {summary}"
    );
    assert!(
        !summary.contains("hunter2"),
        "a summary leaked the prompt: {summary}"
    );
    let full = log_of_a_secret_prompt("full").await;
    assert!(
        full.contains("hunter2-secret"),
        "full frames were asked for"
    );
}
