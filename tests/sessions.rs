//! Session routing by id: reopening after a daemon restart, listing across agents with
//! pagination, resume, close and delete, and clear errors where an agent lacks a capability.

mod common;

use common::{current_model, eventually, Agents, Proxy};
use serde_json::{json, Value};
use terok_executor::acp::server::ProxyConfig;

const CAPS: &str = r#"'{"loadSession":true,"sessionCapabilities":{"list":{},"resume":{},"close":{},"delete":{}}}'"#;

fn agents() -> (Agents, tempfile::TempDir) {
    let stores = tempfile::tempdir().unwrap();
    let agents = Agents::new(&[]);
    for name in ["claude", "codex"] {
        let store = stores.path().join(name);
        agents.add_fixture(
            name,
            &format!("--models m1,m2 --caps {CAPS} --store '{}'", store.display()),
        );
    }
    // An agent that cannot reopen or list anything.
    agents.add_fixture("plain", "--models p1");
    (agents, stores)
}

fn config(state: &tempfile::TempDir) -> ProxyConfig {
    ProxyConfig {
        sessions_file: Some(state.path().join("sessions.json")),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_session_is_reopened_by_its_id_after_a_daemon_restart() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:m2").await;
    client.prompt(&sid, "remember me").await;
    drop(client);
    proxy.stop().await;

    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    assert_eq!(init["agentCapabilities"]["loadSession"], true);
    for capability in ["list", "resume", "close", "delete"] {
        assert!(
            init["agentCapabilities"]["sessionCapabilities"][capability].is_object(),
            "{capability}: {init}"
        );
    }
    let id = client
        .request(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    // The history comes first, under the proxy's id.
    let replay = client
        .wait_for("the replayed history", |v| {
            v["params"]["update"]["sessionUpdate"] == "user_message_chunk"
        })
        .await;
    assert_eq!(replay["params"]["sessionId"], sid.as_str());
    assert_eq!(replay["params"]["update"]["content"]["text"], "remember me");
    // The daemon's own transcript answered: the agent's reply comes along, exactly once.
    let answer = client
        .wait_for("the replayed answer", |v| {
            v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    assert_eq!(
        answer["params"]["update"]["content"]["text"],
        "claude/m2: remember me"
    );
    assert!(
        client.backlog.iter().all(|v| v["id"] != id),
        "the replay precedes the answer"
    );
    let loaded = client.response(&id).await;
    client.backlog.clear();
    assert_eq!(
        current_model(&loaded["result"]["configOptions"]),
        "claude:m2",
        "{loaded}"
    );
    let (chunks, _) = client.prompt(&sid, "again").await;
    assert_eq!(chunks, ["claude/m2: again"]);
    proxy.stop().await;
}

#[tokio::test]
async fn list_spans_agents_and_pages_with_one_cursor() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    // Three claude sessions, one codex session.
    let mut opened = Vec::new();
    for model in ["claude:m1", "claude:m1", "claude:m2", "codex:m1"] {
        let (sid, _) = client.new_session().await;
        client.pick(&sid, model).await;
        opened.push(sid);
    }
    let first = client.call("session/list", json!({})).await;
    let cursor = first["nextCursor"]
        .as_str()
        .expect("claude has another page")
        .to_owned();
    let second = client.call("session/list", json!({"cursor": cursor})).await;
    assert!(second.get("nextCursor").is_none(), "{second}");
    let mut listed: Vec<String> = first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["sessions"].as_array().unwrap())
        .map(|s| s["sessionId"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    opened.sort();
    assert_eq!(listed, opened, "every session, once, under the proxy's ids");
    assert!(first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["_meta"]["terok.agent"].is_string()));
    let err = client
        .call_err("session/list", json!({"cursor": "not-a-cursor"}))
        .await;
    assert_eq!(err["code"], -32602);
    proxy.stop().await;
}

#[tokio::test]
async fn sessions_the_proxy_never_saw_get_ids_that_reopen_them() {
    let (agents, stores) = agents();
    // A session the agent has from elsewhere.
    std::fs::create_dir_all(stores.path().join("codex")).unwrap();
    std::fs::write(
        stores.path().join("codex").join("old-1"),
        "/srv/old\nearlier work\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let listed = client.call("session/list", json!({})).await;
    let old = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cwd"] == "/srv/old")
        .expect("listed")
        .clone();
    let sid = old["sessionId"].as_str().unwrap();
    assert!(sid.starts_with("terok-"), "{old}");
    assert_eq!(old["title"], "earlier work");
    let resumed = client
        .call(
            "session/resume",
            json!({"sessionId": sid, "cwd": "/srv/old", "mcpServers": []}),
        )
        .await;
    assert!(resumed["configOptions"].is_array());
    let (chunks, _) = client.prompt(sid, "continue").await;
    assert_eq!(chunks, ["codex/m1: continue"]);
    assert!(
        client
            .backlog
            .iter()
            .all(|v| v["params"]["update"]["sessionUpdate"] != "user_message_chunk"),
        "resume replays nothing"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn close_and_delete_reach_the_owning_agent() {
    let (agents, stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "codex:m2").await;
    client.prompt(&sid, "hello").await;
    assert_eq!(
        client
            .call("session/close", json!({"sessionId": sid}))
            .await,
        json!({})
    );
    let agent_sid =
        agents.received_method("codex", "session/prompt")[0]["params"]["sessionId"].clone();
    assert!(agents
        .received_method("codex", "session/close")
        .iter()
        .any(|v| v["params"]["sessionId"] == agent_sid));
    let err = client
        .call_err("session/prompt", json!({"sessionId": sid, "prompt": []}))
        .await;
    assert_eq!(
        err["code"], -32002,
        "a closed session is gone from the connection"
    );
    // Closed is not deleted: it can be loaded again, then deleted for good.
    client
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    // The agent's store holds this session (and the spare kept for the next bind).
    let files = || {
        std::fs::read_dir(stores.path().join("codex"))
            .unwrap()
            .count()
    };
    let before = files();
    assert!(before >= 1);
    assert_eq!(
        client
            .call("session/delete", json!({"sessionId": sid}))
            .await,
        json!({})
    );
    assert_eq!(files(), before - 1);
    let err = client
        .call_err(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert_eq!(err["code"], -32002);
    proxy.stop().await;
}

#[tokio::test]
async fn an_agent_without_the_capability_gets_a_clear_error() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "plain:p1").await;
    client.prompt(&sid, "x").await;
    let err: Value = client
        .call_err("session/close", json!({"sessionId": sid}))
        .await;
    assert_eq!(err["code"], -32601);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("plain cannot close"),
        "{err}"
    );
    // On another connection, the daemon's own transcript reopens it although the agent
    // cannot load sessions; the first connection has lost it.
    let mut other = proxy.connect().await;
    other.initialize().await;
    other
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let (chunks, _) = other.prompt(&sid, "y").await;
    assert_eq!(chunks.last().map(String::as_str), Some("plain/p1: y"));
    let err = client
        .call_err("session/prompt", json!({"sessionId": sid, "prompt": []}))
        .await;
    assert_eq!(err["code"], -32600);
    // A session known only from the map (no transcript kept) goes through the agent: refused
    // by capability, not by a confused agent.
    drop(other);
    drop(client);
    proxy.stop().await;
    std::fs::remove_dir_all(state.path().join("sessions.json.transcripts")).unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let mut other = proxy.connect().await;
    other.initialize().await;
    let err = other
        .call_err(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert_eq!(err["code"], -32601);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("plain cannot load"),
        "{err}"
    );
    let err = other
        .call_err(
            "session/load",
            json!({"sessionId": "terok-nope", "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert_eq!(err["code"], -32002);
    proxy.stop().await;
}

/// A client binds a session to `plain:p1`, prompts `text` and leaves; the session's id.
async fn prompt_and_leave(proxy: &Proxy, text: &str) -> String {
    let mut owner = proxy.connect().await;
    owner.initialize().await;
    let (sid, _) = owner.new_session().await;
    owner.pick(&sid, "plain:p1").await;
    owner.prompt(&sid, text).await;
    sid
}

/// `session/load` of `sid` replays the agent's answer `text` before it is answered.
async fn load_replays(client: &mut common::Client, sid: &str, text: &str) {
    let id = client
        .request(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let answer = client
        .wait_for("the replayed answer", |v| {
            v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    assert_eq!(answer["params"]["update"]["content"]["text"], text);
    client.response(&id).await;
}

/// The daemon's report on `sid`, once `pred` holds for it.
async fn session_report(
    client: &mut common::Client,
    sid: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = client.call("_terok/status", json!({})).await;
        let report = status["sessions"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["id"] == sid).cloned())
            .unwrap_or(Value::Null);
        if pred(&report) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session {sid} never came to that: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_detached_idle_session_keeps_its_transcript_on_disk_until_a_client_comes_back() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let sid = prompt_and_leave(&proxy, "keep this").await;

    let mut watcher = proxy.connect().await;
    watcher.initialize().await;
    let parked = session_report(&mut watcher, &sid, |s| s["transcriptOnDisk"] == true).await;
    assert_eq!(parked["state"], "detached", "{parked}");
    assert!(parked["transcriptBytes"].as_u64().unwrap() > 0, "{parked}");
    let file = state
        .path()
        .join("sessions.json.transcripts")
        .join(format!("{sid}.json"));
    // Written off the hub's thread, right after the entries left memory.
    eventually("the transcript's file", || file.exists()).await;
    let saved = std::fs::read_to_string(&file).expect("the transcript is on disk");
    assert!(saved.contains("plain/p1: keep this"), "{saved}");

    // A client that comes back gets the whole record, read back from disk.
    load_replays(&mut watcher, &sid, "plain/p1: keep this").await;
    watcher.backlog.clear();
    let attached = session_report(&mut watcher, &sid, |s| s["holder"].is_u64()).await;
    assert_eq!(attached["transcriptOnDisk"], false, "{attached}");
    let (chunks, _) = watcher.prompt(&sid, "and this").await;
    assert_eq!(chunks, ["plain/p1: and this"]);

    // Parked again; its file then vanishes. The session goes on without its history.
    drop(watcher);
    let mut last = proxy.connect().await;
    last.initialize().await;
    session_report(&mut last, &sid, |s| s["transcriptOnDisk"] == true).await;
    eventually("the second save", || {
        std::fs::read_to_string(&file).is_ok_and(|saved| saved.contains("and this"))
    })
    .await;
    std::fs::remove_file(&file).unwrap();
    let loaded = last
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert_eq!(current_model(&loaded["configOptions"]), "plain:p1");
    assert!(
        last.backlog
            .iter()
            .all(|v| v["params"]["update"]["sessionUpdate"] != "agent_message_chunk"),
        "nothing left to replay: {:?}",
        last.backlog
    );
    let (chunks, _) = last.prompt(&sid, "still here").await;
    assert_eq!(chunks, ["plain/p1: still here"]);
    proxy.stop().await;
}

#[tokio::test]
async fn a_transcript_that_cannot_be_written_is_kept_in_memory_and_replayed() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    // A file where the transcripts' directory would go: every save fails.
    std::fs::write(state.path().join("sessions.json.transcripts"), "").unwrap();
    let proxy = Proxy::start_with(&agents, config(&state)).await;
    let sid = prompt_and_leave(&proxy, "not lost").await;

    let mut back = proxy.connect().await;
    back.initialize().await;
    session_report(&mut back, &sid, |s| s["state"] == "detached").await;
    // Out of the session's record, but not on disk: the report does not claim it is.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let report = session_report(&mut back, &sid, |s| s.is_object()).await;
    assert_eq!(report["transcriptOnDisk"], false, "{report}");
    assert!(report["transcriptBytes"].as_u64().unwrap() > 0, "{report}");
    load_replays(&mut back, &sid, "plain/p1: not lost").await;
    proxy.stop().await;
}

#[tokio::test]
async fn an_agent_ending_idle_hands_a_parked_conversation_over_and_leaves_it_on_disk() {
    let (agents, _stores) = agents();
    let state = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        agent_idle: std::time::Duration::from_millis(300),
        ..config(&state)
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let sid = prompt_and_leave(&proxy, "remember the lighthouse").await;

    // `plain` can neither resume nor load: once its process ends, the session's next prompt
    // carries the conversation, built while the record was read back, and the record goes
    // back to disk.
    let mut watcher = proxy.connect().await;
    watcher.initialize().await;
    session_report(&mut watcher, &sid, |s| s["transcriptOnDisk"] == true).await;
    let unbound = session_report(&mut watcher, &sid, |s| s["agent"].is_null()).await;
    assert_eq!(unbound["transcriptOnDisk"], true, "{unbound}");

    watcher
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    watcher.backlog.clear();
    let (chunks, _) = watcher.prompt(&sid, "what did I ask?").await;
    // The fixture echoes the prompt's text blocks: the handed-over conversation, then the
    // new message.
    let echoed = chunks.concat();
    assert!(
        echoed.contains("remember the lighthouse") && echoed.ends_with("what did I ask?"),
        "{echoed}"
    );
    let prompts = agents.received_method("plain", "session/prompt");
    let last = prompts.last().unwrap().to_string();
    assert!(last.contains("remember the lighthouse"), "{last}");
    proxy.stop().await;
}
