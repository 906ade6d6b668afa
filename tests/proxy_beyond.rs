//! The proxy beyond a plain relay: switching agents, logins, capabilities, live pickers,
//! cancellation and teardown, the persisted probe cache.

mod common;

use std::time::{Duration, Instant};

use common::{current_model, eventually, picker_values, Agents, Client, Proxy};
use serde_json::{json, Value};

fn two_agents() -> Agents {
    Agents::new(&[
        (
            "claude",
            r#"--models opus,sonnet --mode-option --caps '{"promptCapabilities":{"image":true},"sessionCapabilities":{"close":{}}}'"#,
        ),
        ("codex", "--models gpt-5,gpt-5-mini --model-style legacy"),
    ])
}

async fn wait_chunk(client: &mut Client, sid: &str) -> String {
    let sid = sid.to_owned();
    let v = client
        .wait_for("an agent message", move |v| {
            v["params"]["sessionId"] == sid.as_str()
                && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    v["params"]["update"]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_session_switches_agents_mid_conversation_and_back() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let (chunks, _) = client.prompt(&sid, "before").await;
    assert_eq!(chunks, ["claude/opus: before"]);

    let answer = client.pick(&sid, "codex:gpt-5-mini").await;
    assert_eq!(current_model(&answer["configOptions"]), "codex:gpt-5-mini");
    assert!(
        !answer["configOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == "mode"),
        "claude's own options are gone"
    );
    let notice = wait_chunk(&mut client, &sid).await;
    assert!(
        notice.contains("Switched from claude to codex:gpt-5-mini"),
        "{notice}"
    );
    assert!(notice.contains("handed to codex"), "{notice}");
    // Codex's first prompt carries the conversation so far (a text block: it takes no
    // embedded context), ahead of the user's own words; the fixture echoes all of it.
    let (chunks, _) = client.prompt(&sid, "after").await;
    let echoed = chunks.concat();
    assert!(
        echoed.starts_with("codex/gpt-5-mini: # Conversation so far"),
        "{echoed}"
    );
    let (asked, answered) = (
        echoed.find("before").unwrap(),
        echoed.find("claude/opus: before").unwrap(),
    );
    assert!(asked < answered && echoed.ends_with("after"), "{echoed}");
    assert!(
        echoed.contains("switched to you from the agent `claude`"),
        "{echoed}"
    );
    // The old agent session was cancelled and, since claude supports it, closed.
    let claude_sid =
        agents.received_method("claude", "session/prompt")[0]["params"]["sessionId"].clone();
    assert!(agents
        .received_method("claude", "session/cancel")
        .iter()
        .any(|v| v["params"]["sessionId"] == claude_sid));
    assert!(agents
        .received_method("claude", "session/close")
        .iter()
        .any(|v| v["params"]["sessionId"] == claude_sid));
    // The new agent session got the client's original session/new params.
    assert!(agents
        .received_method("codex", "session/new")
        .iter()
        .any(|v| v["params"]["cwd"] == "/tmp"));

    // And back, into a fresh claude session.
    let answer = client.pick(&sid, "claude:sonnet").await;
    assert_eq!(current_model(&answer["configOptions"]), "claude:sonnet");
    assert!(wait_chunk(&mut client, &sid)
        .await
        .starts_with("Switched from codex to claude:sonnet"));
    let (chunks, _) = client.prompt(&sid, "back again").await;
    let echoed = chunks.concat();
    assert!(
        echoed.starts_with("claude/sonnet: # Conversation so far"),
        "{echoed}"
    );
    assert!(
        echoed.contains("codex/gpt-5-mini: # Conversation") || echoed.contains("after"),
        "{echoed}"
    );
    assert!(echoed.ends_with("back again"), "{echoed}");
    let claude_sessions: std::collections::HashSet<String> = agents
        .received_method("claude", "session/prompt")
        .iter()
        .map(|v| v["params"]["sessionId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(claude_sessions.len(), 2, "back into a fresh claude session");
    proxy.stop().await;
}

#[tokio::test]
async fn with_the_handover_off_a_switch_starts_without_context() {
    let agents = two_agents();
    let config = terok_executor::acp::server::ProxyConfig {
        switch_context: false,
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    client.prompt(&sid, "before").await;
    client.pick(&sid, "codex:gpt-5-mini").await;
    let notice = wait_chunk(&mut client, &sid).await;
    assert!(notice.contains("starts without it"), "{notice}");
    let (chunks, _) = client.prompt(&sid, "after").await;
    assert_eq!(chunks, ["codex/gpt-5-mini: after"]);
    proxy.stop().await;
}

#[tokio::test]
async fn a_failed_switch_keeps_the_session_where_it_was() {
    // `picky` lists config-option models but refuses set_config_option: binding it fails.
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("picky", "--models p1,p2 --set-model-method legacy"),
    ]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let err = client
        .call_err(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "picky:p2"}),
        )
        .await;
    assert_eq!(err["code"], -32601, "{err}");
    let (chunks, _) = client.prompt(&sid, "still claude").await;
    assert_eq!(chunks, ["claude/opus: still claude"]);
    proxy.stop().await;
}

#[tokio::test]
async fn initialize_merges_capabilities_and_refuses_what_the_bound_agent_cannot_take() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    assert_eq!(
        init["agentCapabilities"]["promptCapabilities"]["image"], true,
        "claude takes images: {init}"
    );
    assert_eq!(
        init["agentCapabilities"]["promptCapabilities"]["audio"],
        false
    );
    let image = json!([{"type": "text", "text": "look"}, {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="}]);
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "codex:gpt-5").await;
    let err = client
        .call_err("session/prompt", json!({"sessionId": sid, "prompt": image}))
        .await;
    assert_eq!(err["code"], -32602);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("does not accept image"),
        "{err}"
    );
    assert!(
        agents.received_method("codex", "session/prompt").is_empty(),
        "never forwarded"
    );
    let (other, _) = client.new_session().await;
    client.pick(&other, "claude:opus").await;
    let ok = client
        .call(
            "session/prompt",
            json!({"sessionId": other, "prompt": image}),
        )
        .await;
    assert_eq!(ok["stopReason"], "end_turn");
    proxy.stop().await;
}

#[tokio::test]
async fn a_login_through_the_proxy_brings_the_agent_into_open_pickers() {
    let agents = Agents::new(&[("claude", "--models opus")]);
    let login = agents.path().join("locked-login");
    agents.add_fixture(
        "locked",
        &format!("--models l1 --auth-file '{}'", login.display()),
    );
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    let methods: Vec<&str> = init["authMethods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["locked:login"]);
    let (sid, result) = client.new_session().await;
    assert_eq!(picker_values(&result["configOptions"]), ["claude:opus"]);

    let err = client
        .call_err("authenticate", json!({"methodId": "ghost:login"}))
        .await;
    assert_eq!(err["code"], -32602);
    assert_eq!(
        client
            .call("authenticate", json!({"methodId": "locked:login"}))
            .await,
        json!({})
    );
    assert_eq!(
        agents.received_method("locked", "authenticate")[0]["params"]["methodId"],
        "login",
        "the agent got its bare id"
    );
    // The open, unbound session learns about the new agent without reconnecting.
    let update = client
        .wait_for("a picker update", |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
        })
        .await;
    assert_eq!(update["params"]["sessionId"], sid.as_str());
    assert_eq!(
        picker_values(&update["params"]["update"]["configOptions"]),
        ["claude:opus", "locked:l1"]
    );
    client.pick(&sid, "locked:l1").await;
    let (chunks, _) = client.prompt(&sid, "in").await;
    assert_eq!(chunks, ["locked/l1: in"]);
    proxy.stop().await;
}

#[tokio::test]
async fn cancel_requests_are_reissued_under_the_agents_id() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    client
        .request_with_id(
            json!("prompt-7"),
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    eventually("the prompt to reach the agent", || {
        !agents
            .received_method("claude", "session/prompt")
            .is_empty()
    })
    .await;
    client
        .notify("$/cancel_request", json!({"requestId": "prompt-7"}))
        .await;
    eventually("the cancel to reach the agent", || {
        !agents
            .received_method("claude", "$/cancel_request")
            .is_empty()
    })
    .await;
    let prompt_id = agents.received_method("claude", "session/prompt")[0]["id"].clone();
    let cancel = &agents.received_method("claude", "$/cancel_request")[0];
    assert_eq!(
        cancel["params"]["requestId"], prompt_id,
        "the id the agent knows, not the client's"
    );
    assert_ne!(prompt_id, json!("prompt-7"));
    client
        .notify("session/cancel", json!({"sessionId": sid}))
        .await;
    let done = client.response(&json!("prompt-7")).await;
    assert_eq!(done["result"]["stopReason"], "cancelled");
    proxy.stop().await;
}

#[tokio::test]
async fn with_cancel_a_disconnect_cancels_the_turn_and_its_questions() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let config = terok_executor::acp::server::ProxyConfig {
        on_disconnect: terok_executor::acp::server::OnDisconnect::Cancel,
        agent_idle: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    client
        .wait_for("the permission request", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    let pids = agents.pids("claude");
    drop(client);
    eventually("the agent to hear the outcome", || {
        agents
            .received("claude")
            .iter()
            .any(|v| v["result"]["outcome"]["outcome"] == "cancelled")
    })
    .await;
    assert!(agents
        .received_method("claude", "session/cancel")
        .iter()
        .any(|v| v["params"]["sessionId"].as_str().is_some()));
    eventually("the agent to end", || {
        pids.iter().all(|p| !common::alive(*p))
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_restarted_daemon_answers_from_the_persisted_cache() {
    // Each probe takes 2 s (1 s per answer); one agent needs a login.
    let agents = Agents::new(&[
        ("claude", "--models opus --delay-ms 1000"),
        ("locked", "--auth-required --delay-ms 1000"),
    ]);
    let state = tempfile::tempdir().unwrap();
    let config = || terok_executor::acp::server::ProxyConfig {
        cache_dir: Some(state.path().to_owned()),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config()).await;
    proxy.server.warm_up();
    let cached = || {
        std::fs::read_dir(state.path())
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    // The file's own `"locked"` key must not pass for the agent: read its lists.
    let names = |list: &str| -> Vec<String> {
        serde_json::from_str::<Value>(&cached())
            .ok()
            .map_or(vec![], |v| {
                v[list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["agent"].as_str().map(String::from))
                    .collect()
            })
    };
    eventually("both agents in the cache file", || {
        names("ready") == ["claude"] && names("locked") == ["locked"]
    })
    .await;
    proxy.stop().await;

    let proxy = Proxy::start_with(&agents, config()).await;
    proxy.server.warm_up();
    let mut client = proxy.connect().await;
    let started = Instant::now();
    let init = client.initialize().await;
    // The login the agent asked for last time is offered at once, while it is probed again.
    assert!(
        init["authMethods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "locked:login"),
        "{init}"
    );
    let (_, result) = client.new_session().await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "waited {:?} for probes",
        started.elapsed()
    );
    assert_eq!(picker_values(&result["configOptions"]), ["claude:opus"]);
    proxy.stop().await;
}

#[tokio::test]
async fn probe_sessions_are_closed_when_the_agent_supports_it() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.new_session().await;
    let probe_session = agents.received_method("claude", "session/new")[0].clone();
    assert_eq!(
        probe_session["params"]["cwd"],
        agents.path().to_str().unwrap(),
        "probes open sessions in the workspace"
    );
    eventually("the probe session to be closed", || {
        !agents.received_method("claude", "session/close").is_empty()
    })
    .await;
    assert!(
        agents.received_method("codex", "session/close").is_empty(),
        "codex does not advertise close"
    );
    let _: Value = client
        .call("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
        .await;
    proxy.stop().await;
}

#[tokio::test]
async fn claude_sessions_carry_the_tasks_instructions_and_subagents() {
    let agents = two_agents();
    // A task's agent config directory, as `run` prepares it.
    let task = tempfile::tempdir().unwrap();
    std::fs::write(task.path().join("instructions.md"), "Task rules.\n").unwrap();
    std::fs::write(
        task.path().join("agents.json"),
        r#"{"reviewer":{"description":"reviews","prompt":"Review."}}"#,
    )
    .unwrap();
    let config = terok_executor::acp::server::ProxyConfig {
        session_defaults: terok_executor::launcher::agent_config::session_defaults(task.path()),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    client.prompt(&sid, "hi").await;
    // The client's own `_meta` wins where it says something.
    let mine = client
        .call(
            "session/new",
            json!({"cwd": "/tmp", "mcpServers": [], "_meta": {"systemPrompt": "mine"}}),
        )
        .await;
    let mine = mine["sessionId"].as_str().unwrap().to_owned();
    client.pick(&mine, "claude:sonnet").await;
    client.prompt(&mine, "hi").await;
    client.pick(&sid, "codex:gpt-5").await;
    client.prompt(&sid, "and codex").await;

    let opened = agents.received_method("claude", "session/new");
    assert!(opened.len() >= 2, "{opened:?}");
    for frame in &opened {
        let meta = &frame["params"]["_meta"];
        assert_eq!(
            meta["claudeCode"]["options"]["agents"]["reviewer"]["prompt"], "Review.",
            "every claude session, probes and spares too: {frame}"
        );
    }
    let prompts: Vec<&Value> = opened
        .iter()
        .map(|f| &f["params"]["_meta"]["systemPrompt"])
        .collect();
    assert!(
        prompts.contains(&&json!({"append": "Task rules."})),
        "{prompts:?}"
    );
    assert!(prompts.contains(&&json!("mine")), "{prompts:?}");
    for frame in agents.received_method("codex", "session/new") {
        assert!(
            frame["params"].get("_meta").is_none(),
            "codex gets none: {frame}"
        );
    }
    proxy.stop().await;
}
