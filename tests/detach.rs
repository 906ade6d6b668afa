//! Agents and sessions that belong to the daemon: a client killed mid-turn detaches its
//! session (the turn runs on, or is cancelled), another connection reattaches and gets every
//! update exactly once, connections share one agent process without mixing ids, and questions
//! asked while nobody is attached wait for the next client. (Warm binds: `tests/spares.rs`.)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, eventually, Agents, Client, Proxy};
use serde_json::{json, Value};
use terok_executor::acp::server::{OnDisconnect, ProxyConfig};

/// A client in its own process (python3, one JSON line per frame), so it can be killed with
/// SIGKILL like an editor that crashes.
struct ProcessClient {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

const PY_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
import threading
def pump():
    for line in f:
        sys.stdout.buffer.write(line); sys.stdout.flush()
threading.Thread(target=pump, daemon=True).start()
for line in sys.stdin.buffer:
    s.sendall(line)
import time
time.sleep(3600)
"#;

impl ProcessClient {
    fn spawn(socket: &std::path::Path) -> ProcessClient {
        let mut child = Command::new("python3")
            .args(["-c", PY_CLIENT])
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the client process");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        ProcessClient { child, lines }
    }

    fn send(&mut self, value: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{value}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads frames until `pred` holds for one; returns it.
    fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self
                .lines
                .next()
                .expect("the client process ended")
                .unwrap();
            let value: Value = serde_json::from_str(&line).unwrap();
            if pred(&value) {
                return value;
            }
        }
    }

    /// initialize, session/new and a model pick; returns the session id.
    fn open(&mut self, model: &str) -> String {
        self.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}, "terminal": true}}}));
        self.until(|v| v["id"] == 1);
        self.send(json!({"jsonrpc": "2.0", "id": 2, "method": "session/new", "params": {"cwd": "/tmp", "mcpServers": []}}));
        let sid = self.until(|v| v["id"] == 2)["result"]["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.send(json!({"jsonrpc": "2.0", "id": 3, "method": "session/set_config_option", "params": {"sessionId": sid, "configId": "model", "value": model}}));
        self.until(|v| v["id"] == 3);
        sid
    }

    fn kill(mut self) -> Instant {
        self.child.kill().unwrap(); // SIGKILL
        let at = Instant::now();
        self.child.wait().unwrap();
        at
    }
}

/// The texts of the agent message chunks among `frames`.
fn chunk_texts(frames: &[Value], sid: &str) -> String {
    frames
        .iter()
        .filter(|v| {
            v["params"]["sessionId"] == sid
                && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .map(|v| {
            v["params"]["update"]["content"]["text"]
                .as_str()
                .unwrap_or("")
        })
        .collect()
}

/// Collects frames from `client` until the concatenated chunks of `sid` contain `end`.
async fn collect_until(client: &mut Client, sid: &str, end: &str) -> Vec<Value> {
    let mut frames: Vec<Value> = client.backlog.drain(..).collect();
    while !chunk_texts(&frames, sid).contains(end) {
        frames.push(client.next().await);
    }
    frames
}

fn session_state(listed: &Value, sid: &str) -> Option<String> {
    listed["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["sessionId"] == sid)
        .and_then(|s| s["_meta"]["terok.state"].as_str())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_detaches_and_its_turn_reaches_the_next_client_exactly_once() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let proxy = Proxy::start(&agents).await;
    let mut doomed = ProcessClient::spawn(&proxy.socket);
    let sid = doomed.open("claude:opus");
    doomed.send(json!({"jsonrpc": "2.0", "id": 4, "method": "session/prompt", "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "slow 20 40"}]}}));
    doomed.until(|v| v["params"]["update"]["sessionUpdate"] == "agent_message_chunk");
    let killed = doomed.kill();

    // Another client sees the session detached within a second, its turn still running.
    let mut next = proxy.connect().await;
    next.initialize().await;
    loop {
        let listed = next.call("session/list", json!({})).await;
        if session_state(&listed, &sid).as_deref() == Some("detached") {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "not detached in time: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Loading it replays what was said and streams the rest: every update once, in order.
    let id = next
        .request(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let frames = collect_until(&mut next, &sid, "slow 20/20").await;
    let expected: String = (1..=20).map(|i| format!("slow {i}/20")).collect();
    assert_eq!(chunk_texts(&frames, &sid), expected);
    assert!(frames
        .iter()
        .any(|v| v["id"] == id && v["result"].is_object()));
    // The prompt shows up once too, as the user's message.
    let prompts: Vec<&Value> = frames
        .iter()
        .filter(|v| v["params"]["update"]["sessionUpdate"] == "user_message_chunk")
        .collect();
    assert_eq!(prompts.len(), 1);
    assert_eq!(
        prompts[0]["params"]["update"]["content"]["text"],
        "slow 20 40"
    );
    // And then it works as any session.
    let (chunks, done) = next.prompt(&sid, "hello again").await;
    assert_eq!(chunks, ["claude/opus: hello again"]);
    assert_eq!(done["result"]["stopReason"], "end_turn");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cancel_a_killed_client_cancels_its_turn_within_a_second() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let config = ProxyConfig {
        on_disconnect: OnDisconnect::Cancel,
        agent_idle: Duration::from_millis(500),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut doomed = ProcessClient::spawn(&proxy.socket);
    let sid = doomed.open("claude:opus");
    doomed.send(json!({"jsonrpc": "2.0", "id": 4, "method": "session/prompt", "params": {"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}}));
    eventually("the prompt to reach the agent", || {
        !agents
            .received_method("claude", "session/prompt")
            .is_empty()
    })
    .await;
    let live: Vec<i32> = agents
        .pids("claude")
        .into_iter()
        .filter(|p| alive(*p))
        .collect();
    let killed = doomed.kill();
    eventually("the agent to get session/cancel", || {
        !agents
            .received_method("claude", "session/cancel")
            .is_empty()
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );
    eventually("the agent process to end once idle", || {
        live.iter().all(|p| !alive(*p))
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_share_one_process_and_never_mix() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let proxy = Proxy::start(&agents).await;
    let mut one = proxy.connect().await;
    let mut two = proxy.connect().await;
    one.initialize().await;
    two.initialize().await;
    let (s1, _) = one.new_session().await;
    let (s2, _) = two.new_session().await;
    one.pick(&s1, "claude:opus").await;
    two.pick(&s2, "claude:opus").await;
    let (p1, _) = one.prompt(&s1, "pid").await;
    let (p2, _) = two.prompt(&s2, "pid").await;
    assert_eq!(p1, p2, "one process serves both connections");

    // Both clients use the same request ids; a cancel on one leaves the other streaming.
    let a = one
        .request(
            "session/prompt",
            json!({"sessionId": s1, "prompt": [{"type": "text", "text": "slow 30 20"}]}),
        )
        .await;
    let b = two
        .request(
            "session/prompt",
            json!({"sessionId": s2, "prompt": [{"type": "text", "text": "slow 30 20"}]}),
        )
        .await;
    assert_eq!(a, b, "the clients' ids collide on purpose");
    one.wait_for("a first chunk", |v| {
        v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
    })
    .await;
    one.notify("session/cancel", json!({"sessionId": s1})).await;
    let done_one = one.response(&a).await;
    assert_eq!(done_one["result"]["stopReason"], "cancelled");
    let frames = collect_until(&mut two, &s2, "slow 30/30").await;
    let expected: String = (1..=30).map(|i| format!("slow {i}/30")).collect();
    assert_eq!(chunk_texts(&frames, &s2), expected);
    assert!(frames
        .iter()
        .all(|v| v["params"]["sessionId"].is_null() || v["params"]["sessionId"] == s2.as_str()));
    let done_two = two.response(&b).await;
    assert_eq!(done_two["result"]["stopReason"], "end_turn");

    // The process dies: each connection's open request fails with its own error, and each
    // session binds again, into a new process.
    let hang_one = one
        .request(
            "session/prompt",
            json!({"sessionId": s1, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    let hang_two = two
        .request(
            "session/prompt",
            json!({"sessionId": s2, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    let pid: i32 = p1[0].trim_start_matches("pid: ").parse().unwrap();
    eventually("both prompts to reach the agent", || {
        agents.received_method("claude", "session/prompt").len() >= 6
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for (client, id) in [(&mut one, &hang_one), (&mut two, &hang_two)] {
        let failed = client.response(id).await;
        assert_eq!(failed["error"]["code"], -32603, "{failed}");
        assert!(failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent claude exited"));
    }
    let (q1, _) = one.prompt(&s1, "pid").await;
    let (q2, _) = two.prompt(&s2, "pid").await;
    assert_eq!(q1, q2);
    assert_ne!(q1, p1, "a new process");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_moves_a_session_without_a_replay() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let proxy = Proxy::start(&agents).await;
    let mut first = proxy.connect().await;
    first.initialize().await;
    let (sid, _) = first.new_session().await;
    first.prompt(&sid, "remember").await;
    let mut second = proxy.connect().await;
    second.initialize().await;
    let resumed = second
        .call(
            "session/resume",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert!(resumed["configOptions"].is_array());
    assert!(
        second
            .backlog
            .iter()
            .all(|v| v["method"] != "session/update"),
        "no replay: {:?}",
        second.backlog
    );
    let (chunks, _) = second.prompt(&sid, "resumed").await;
    assert_eq!(chunks, ["claude/opus: resumed"]);
    // The first connection, still open, lost it.
    let err = first
        .call_err("session/prompt", json!({"sessionId": sid, "prompt": []}))
        .await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("another connection"),
        "{err}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_sessions_in_memory_are_bounded() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let config = ProxyConfig {
        max_detached: 2,
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut sids = Vec::new();
    for i in 0..3 {
        let mut client = proxy.connect().await;
        client.initialize().await;
        let (sid, _) = client.new_session().await;
        client.prompt(&sid, &format!("turn {i}")).await;
        sids.push(sid);
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut watcher = proxy.connect().await;
    watcher.initialize().await;
    let detached = |listed: &Value| -> Vec<String> {
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["_meta"]["terok.state"] == "detached")
            .map(|s| s["sessionId"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut held = Vec::new();
    for _ in 0..50 {
        held = detached(&watcher.call("session/list", json!({})).await);
        if held.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.sort();
    let mut newest = sids[1..].to_vec();
    newest.sort();
    assert_eq!(held, newest, "the longest-detached left memory first");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_asked_while_detached_waits_for_the_next_client() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let proxy = Proxy::start(&agents).await;
    let mut first = proxy.connect().await;
    first.initialize().await;
    let (sid, _) = first.new_session().await;
    first.pick(&sid, "claude:opus").await;
    first
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    first
        .wait_for("the question", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !agents
            .received("claude")
            .iter()
            .any(|v| v["result"]["outcome"].is_object()),
        "nobody answered yet"
    );
    let mut second = proxy.connect().await;
    second.initialize().await;
    second
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let asked = second
        .wait_for("the question, asked again", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    assert_eq!(asked["params"]["sessionId"], sid.as_str());
    second
        .send(&json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"outcome": {"outcome": "selected", "optionId": "allow"}}}))
        .await;
    let frames = collect_until(&mut second, &sid, "permission: allow").await;
    assert!(chunk_texts(&frames, &sid).ends_with("permission: allow"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_nobody_attaches_for_is_cancelled_when_the_ttl_ends() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let config = ProxyConfig {
        detached_ttl: Duration::from_millis(400),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    client
        .wait_for("the question", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    let left = Instant::now();
    drop(client);
    eventually("the agent to hear the question cancelled", || {
        agents
            .received("claude")
            .iter()
            .any(|v| v["result"]["outcome"]["outcome"] == "cancelled")
    })
    .await;
    assert!(
        left.elapsed() >= Duration::from_millis(350),
        "not before the TTL"
    );
    // The turn is cancelled too (the agent may read the two in either order).
    eventually("the turn to be cancelled", || {
        !agents
            .received_method("claude", "session/cancel")
            .is_empty()
    })
    .await;
    proxy.stop().await;
}
