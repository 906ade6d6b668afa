//! The bad-input matrix: malformed, hostile and unexpected frames from either peer.
//!
//! Every bad client frame gets the JSON-RPC error the spec asks for (-32700 with id `null`,
//! -32600 with the request's id when it can be read, -32601, -32602, -32002), or is dropped
//! with a log line where nobody could be answered. After each one the connection still answers,
//! another client streaming at the same time sees every one of its frames, and no wrapper runs
//! for a name that is not one of the container's agents. Bad backend frames are dropped and
//! never reach the client.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{Agents, Client, Proxy, BIN};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use terok_executor::acp::lines::DEFAULT_MAX_FRAME;
use terok_executor::acp::runtime::{
    AgentName, AgentProcess, Identity, LocalRuntime, Runtime, RuntimeError,
};
use terok_executor::acp::server::ProxyConfig;

/// A small frame limit so over-limit lines are cheap to send.
const SMALL_FRAME: usize = 4096;

fn small_frames() -> ProxyConfig {
    ProxyConfig {
        max_frame: SMALL_FRAME,
        ..Default::default()
    }
}

/// Two real agents, plus executables that must never run: one whose name is not a valid agent
/// name, one in a subdirectory. Both record their pid under the name `trap`.
fn agents_with_traps() -> Agents {
    let agents = Agents::new(&[
        ("claude", "--models opus,sonnet"),
        ("codex", "--models gpt-5 --model-style legacy"),
    ]);
    let trap = format!(
        "echo $$ > '{}/trap.'$$\nexit 0",
        agents.path().join("pids").display()
    );
    agents.add_script("Evil", &trap);
    let sub = agents.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("terok-x-acp");
    std::fs::write(&path, format!("#!/bin/sh\n{trap}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    agents
}

/// Every wrapper start so far is one of `allowed`.
fn only_wrappers_of(agents: &Agents, allowed: &[&str]) {
    for entry in std::fs::read_dir(agents.path().join("pids"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let agent = name.split('.').next().unwrap_or_default();
        assert!(allowed.contains(&agent), "a wrapper ran for {name}");
    }
}

/// The connection still answers: a fresh request gets its own answer, and it is the next thing
/// the client receives (so whatever was sent before it was answered or dropped, not delayed).
async fn still_answers(client: &mut Client, case: &str) {
    let id = client
        .request("initialize", json!({"protocolVersion": 1}))
        .await;
    let next = client.next().await;
    assert_eq!(
        next["id"], id,
        "after {case}: expected the answer to {id}, got {next}"
    );
    assert!(next.get("result").is_some(), "after {case}: {next}");
}

/// What the proxy must answer to a bad line.
enum Expect {
    /// An error with this code, addressed to this id.
    Error(i64, Value),
    /// Nothing: the line is dropped (and logged).
    Dropped,
}

async fn check(client: &mut Client, line: &[u8], expect: Expect) {
    let case = String::from_utf8_lossy(line);
    let case: String = case.chars().take(120).collect();
    client.send_bytes(line).await;
    match expect {
        Expect::Error(code, id) => {
            let answer = client.next().await;
            assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
            assert_eq!(answer["id"], id, "{case}: {answer}");
            assert!(answer["error"]["message"].is_string(), "{case}: {answer}");
            assert_eq!(answer["jsonrpc"], "2.0", "{case}: {answer}");
        }
        Expect::Dropped => {}
    }
    still_answers(client, &case).await;
}

#[tokio::test]
async fn the_default_frame_limit_is_at_least_16_mib() {
    const { assert!(DEFAULT_MAX_FRAME >= 16 * 1024 * 1024) };
    assert!(ProxyConfig::default().max_frame >= 16 * 1024 * 1024);
}

#[tokio::test]
async fn bad_client_frames_get_the_errors_the_spec_asks_for() {
    use Expect::{Dropped, Error};
    let agents = agents_with_traps();
    let proxy = Proxy::start_with(&agents, small_frames()).await;

    // Another client streams all along.
    let mut other = proxy.connect().await;
    let (other_sid, _) = other.new_session().await;
    other.pick(&other_sid, "claude:opus").await;
    let streaming = tokio::spawn(async move {
        let (chunks, done) = other.prompt(&other_sid, "slow 60 25").await;
        (chunks, done)
    });

    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    let null = Value::Null;
    let over_limit = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(SMALL_FRAME * 3)
    );
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        // Not JSON at all.
        (b"this is not json".to_vec(), Error(-32700, null.clone())),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize""#.to_vec(),
            Error(-32700, null.clone()),
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\",\"params\":{\"t\":\"\xff\"}}".to_vec(),
            Error(-32700, null.clone()),
        ),
        (
            br#"{"jsonrpc":"2.0","method":5,"#.to_vec(),
            Error(-32700, null.clone()),
        ),
        // JSON that is not a message.
        (b"42".to_vec(), Error(-32600, null.clone())),
        (br#""hello""#.to_vec(), Error(-32600, null.clone())),
        (b"null".to_vec(), Error(-32600, null.clone())),
        (b"true".to_vec(), Error(-32600, null.clone())),
        // Batches.
        (b"[]".to_vec(), Error(-32600, null.clone())),
        (
            br#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        // Blank lines are not frames.
        (b"".to_vec(), Dropped),
        (b" \t \r".to_vec(), Dropped),
        // Over the frame limit: the line is never read, so its id is unknown.
        (over_limit.into_bytes(), Error(-32600, null.clone())),
        // Missing or wrong protocol version: answered to the request's id.
        (
            br#"{"id":4,"method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, json!(4)),
        ),
        (
            br#"{"jsonrpc":"1.0","id":"v1","method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, json!("v1")),
        ),
        // Ids that are not ids.
        (
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        (
            br#"{"jsonrpc":"2.0","id":[1],"method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        (
            br#"{"jsonrpc":"2.0","id":true,"method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        // Contradictory envelopes and duplicated fields.
        (
            br#"{"jsonrpc":"2.0","id":5,"method":"initialize","result":{}}"#.to_vec(),
            Error(-32600, json!(5)),
        ),
        (
            br#"{"jsonrpc":"2.0","id":6,"result":{},"error":{"code":1,"message":"x"}}"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"id":8,"method":"initialize","params":{}}"#.to_vec(),
            Error(-32600, null.clone()),
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","id":9,"method":"session/prompt","params":{{"sessionId":"{sid}","sessionId":"other","prompt":[]}}}}"#).into_bytes(),
            Error(-32600, null.clone()),
        ),
        // Unknown methods.
        (
            br#"{"jsonrpc":"2.0","id":10,"method":"no/such/method","params":{}}"#.to_vec(),
            Error(-32601, json!(10)),
        ),
        (
            br#"{"jsonrpc":"2.0","method":"no/such/notification","params":{}}"#.to_vec(),
            Dropped,
        ),
        // Unknown sessions.
        (
            br#"{"jsonrpc":"2.0","id":"p","method":"session/prompt","params":{"sessionId":"terok-nope","prompt":[]}}"#.to_vec(),
            Error(-32002, json!("p")),
        ),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"session/set_config_option","params":{"sessionId":"../claude","configId":"model","value":"claude:opus"}}"#.to_vec(),
            Error(-32002, json!(11)),
        ),
        (
            br#"{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"terok-nope"}}"#.to_vec(),
            Dropped,
        ),
        // Responses to ids nobody sent.
        (br#"{"jsonrpc":"2.0","id":999,"result":{}}"#.to_vec(), Dropped),
        (
            br#"{"jsonrpc":"2.0","id":"nobody","error":{"code":1,"message":"x"}}"#.to_vec(),
            Dropped,
        ),
        (br#"{"jsonrpc":"2.0","id":null,"result":null}"#.to_vec(), Dropped),
        // Invalid params.
        (
            br#"{"jsonrpc":"2.0","id":12,"method":"session/new","params":{}}"#.to_vec(),
            Error(-32602, json!(12)),
        ),
        (
            br#"{"jsonrpc":"2.0","id":13,"method":"initialize","params":[1]}"#.to_vec(),
            Error(-32602, json!(13)),
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","id":14,"method":"session/set_config_option","params":{{"sessionId":"{sid}","configId":"model","value":42}}}}"#).into_bytes(),
            Error(-32602, json!(14)),
        ),
    ];
    for (line, expect) in cases {
        check(&mut client, &line, expect).await;
    }

    // Valid ids of every type come back exactly as sent.
    for id in [
        json!("s"),
        json!(5),
        json!(-7),
        json!(1.5),
        json!(null),
        json!(""),
    ] {
        client
            .request_with_id(id.clone(), "initialize", json!({"protocolVersion": 1}))
            .await;
        let answer = client.next().await;
        assert_eq!(answer["id"], id, "{answer}");
        assert!(answer.get("result").is_some(), "{answer}");
    }

    // Picked values that do not name an agent of this container, however they are spelled.
    for value in [
        "opus",
        "ghost:x",
        ":opus",
        "claude:",
        "claude:haiku",
        "Claude:opus",
        "claude;rm -rf /:opus",
        "$(touch pwned):opus",
        "`id`:opus",
        "claude|sh:opus",
        "claude && sh:opus",
        "Evil:x",
        "sub/x:x",
        "../../bin/sh:x",
        "/bin/sh:x",
        "../terok-claude-acp:opus",
        "./claude:opus",
        "claude/../codex:gpt-5",
        "claude\n:opus",
        "claude\u{0}:opus",
    ] {
        let err = client
            .call_err(
                "session/set_config_option",
                json!({"sessionId": sid, "configId": "model", "value": value}),
            )
            .await;
        assert_eq!(err["code"], -32602, "{value:?}: {err}");
        let err = client
            .call_err(
                "session/set_model",
                json!({"sessionId": sid, "modelId": value}),
            )
            .await;
        assert_eq!(err["code"], -32602, "{value:?}: {err}");
        still_answers(&mut client, value).await;
    }
    only_wrappers_of(&agents, &["claude", "codex"]);

    // The connection is fully usable: a session binds and prompts.
    let (chunks, done) = client.prompt(&sid, "alive").await;
    assert_eq!(chunks, ["claude/opus: alive"]);
    assert_eq!(done["result"]["stopReason"], "end_turn");

    // The other client saw its whole stream, in order.
    let (chunks, done) = tokio::time::timeout(common::STEP, streaming)
        .await
        .expect("the other client's stream finished")
        .unwrap();
    let expected: Vec<String> = (1..=60).map(|i| format!("slow {i}/60")).collect();
    assert_eq!(chunks, expected);
    assert_eq!(done["result"]["stopReason"], "end_turn");

    only_wrappers_of(&agents, &["claude", "codex"]);
    assert!(!agents.path().join("pwned").exists());
    proxy.stop().await;
}

/// An agent whose wrapper writes answers to ids nobody sent and garbage before the handshake and
/// after every line the real agent writes.
fn add_liar(agents: &Agents) {
    let pids = agents.path().join("pids");
    let log = agents.path().join("logs").join("liar.log");
    let before = [
        r#"{"jsonrpc":"2.0","id":999,"result":{"bogus":true}}"#,
        r#"{"jsonrpc":"2.0","id":"never-sent","error":{"code":-1,"message":"bogus"}}"#,
        r#"{"jsonrpc":"2.0","id":{"a":1},"result":{}}"#,
        "garbage before the handshake",
        r#"[{"jsonrpc":"2.0","method":"x"}]"#,
    ]
    .map(|l| format!("'{l}'"))
    .join(" ");
    let after = r#"{"jsonrpc":"2.0","id":12345,"result":{"bogus":true}}"#;
    agents.add_script(
        "liar",
        &format!(
            "echo $$ > '{pids}/liar.'$$\n\
             printf '%s\\n' {before}\n\
             '{BIN}' fixture-agent --name liar --log '{log}' | while IFS= read -r line; do\n\
             printf '%s\\n' \"$line\" '{after}' 'not json'\n\
             done",
            pids = pids.display(),
            log = log.display(),
        ),
    );
}

#[tokio::test]
async fn bad_backend_frames_are_dropped_and_never_reach_the_client() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    add_liar(&agents);
    let proxy = Proxy::start_with(&agents, small_frames()).await;
    let mut client = proxy.connect().await;
    let (sid, result) = client.new_session().await;
    assert_eq!(
        common::picker_values(&result["configOptions"]),
        ["claude:opus", "liar:small", "liar:large"],
        "the probe skipped the liar's noise"
    );

    // Answers to ids the proxy never sent, before and during the session.
    client.pick(&sid, "liar:large").await;
    let (chunks, done) = client.prompt(&sid, "hello").await;
    assert_eq!(chunks, ["liar/large: hello"]);
    assert_eq!(done["result"]["stopReason"], "end_turn");
    // The agent's own malformed lines.
    let (chunks, _) = client.prompt(&sid, "garbage").await;
    assert_eq!(chunks, ["liar/large: garbage"]);
    let (chunks, _) = client.prompt(&sid, "still fine").await;
    assert_eq!(chunks, ["liar/large: still fine"]);
    assert!(
        client.backlog.iter().all(|v| v.get("error").is_none()
            && ![json!(999), json!(12345), json!("never-sent")].contains(&v["id"])),
        "nothing of the noise reached the client: {:?}",
        client.backlog
    );

    // The fixture's garbage, and lines over the frame limit, from a plain agent.
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let (chunks, _) = client.prompt(&sid, "garbage").await;
    assert_eq!(chunks, ["claude/opus: garbage"]);
    let (chunks, done) = client
        .prompt(&sid, &format!("stream 3 {}", SMALL_FRAME * 2))
        .await;
    assert!(chunks.is_empty(), "over-limit chunks are dropped");
    assert_eq!(done["result"]["stopReason"], "end_turn");
    let (chunks, _) = client.prompt(&sid, "stream 3 10").await;
    assert_eq!(chunks, ["xxxxxxxxxx"; 3]);
    assert!(
        client.backlog.iter().all(|v| v.get("error").is_none()),
        "{:?}",
        client.backlog
    );
    proxy.stop().await;
}

/// The local runtime, except that naming the container panics the first time: the proxy calls
/// it while answering `initialize`, on the connection task.
struct PanicOnce {
    inner: LocalRuntime,
    armed: AtomicBool,
}

impl Runtime for PanicOnce {
    fn describe(&self) -> String {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected panic in a connection task");
        }
        self.inner.describe()
    }
    fn workspace(&self) -> String {
        self.inner.workspace()
    }
    fn agents(&self) -> BoxFuture<'_, Result<Vec<AgentName>, RuntimeError>> {
        self.inner.agents()
    }
    fn identity(&self) -> BoxFuture<'_, Result<Identity, RuntimeError>> {
        self.inner.identity()
    }
    fn spawn(&self, agent: &AgentName) -> BoxFuture<'_, Result<AgentProcess, RuntimeError>> {
        self.inner.spawn(agent)
    }
    fn set_env(&self, env: Vec<(String, String)>) {
        self.inner.set_env(env)
    }
    fn is_alive(&self) -> BoxFuture<'_, bool> {
        self.inner.is_alive()
    }
    fn stopped(&self) -> BoxFuture<'_, ()> {
        self.inner.stopped()
    }
}

#[tokio::test]
async fn a_panicking_connection_ends_alone_and_the_daemon_keeps_serving() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let runtime = Arc::new(PanicOnce {
        inner: LocalRuntime::new(agents.path()).unwrap(),
        armed: AtomicBool::new(false),
    });
    let proxy = Proxy::start_on(&agents, runtime.clone(), ProxyConfig::default()).await;

    // A connection with a bound session, and a bystander mid-session on the same agent.
    let mut doomed = proxy.connect().await;
    doomed.initialize().await;
    let (sid, _) = doomed.new_session().await;
    doomed.pick(&sid, "claude:opus").await;
    doomed.prompt(&sid, "before the panic").await;
    let mut bystander = proxy.connect().await;
    let (other, _) = bystander.new_session().await;
    bystander.pick(&other, "claude:opus").await;
    let agent_pids: Vec<i32> = agents
        .pids("claude")
        .into_iter()
        .filter(|p| common::alive(*p))
        .collect();

    runtime.armed.store(true, Ordering::SeqCst);
    doomed
        .request("initialize", json!({"protocolVersion": 1}))
        .await;
    doomed.expect_closed().await;

    // Only that connection went: the agent serves on, the bystander is unharmed.
    assert!(agent_pids.iter().all(|p| common::alive(*p)));
    let (chunks, _) = bystander.prompt(&other, "unharmed").await;
    assert_eq!(chunks, ["claude/opus: unharmed"]);
    // New connections are served, and the panicked connection's session waits for them.
    let mut fresh = proxy.connect().await;
    fresh.initialize().await;
    fresh
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let (chunks, _) = fresh.prompt(&sid, "after").await;
    assert_eq!(
        chunks.last().map(String::as_str),
        Some("claude/opus: after")
    );
    proxy.stop().await;
}
