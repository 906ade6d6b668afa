//! The proxy against real fixture-agent processes: aggregation, binding, routing, relaying.

mod common;

use common::{current_model, eventually, picker_values, Agents, Proxy};
use serde_json::{json, Value};

fn two_agents() -> Agents {
    Agents::new(&[
        ("claude", "--models opus,sonnet --mode-option"),
        ("codex", "--models gpt-5,gpt-5-mini --model-style legacy"),
    ])
}

#[tokio::test]
async fn initialize_is_answered_by_the_proxy_with_a_valid_schema() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    assert_eq!(init["protocolVersion"], 1);
    assert_eq!(init["agentInfo"]["name"], "terok-executor");
    let parsed: Result<agent_client_protocol::v1::schema::InitializeResponse, _> =
        serde_json::from_value(init);
    assert!(parsed.is_ok());
    // No agent was started for it.
    assert!(agents
        .received_method("claude", "initialize")
        .iter()
        .all(|v| v["params"]["clientInfo"]["name"] != "test"));
    proxy.stop().await;
}

#[tokio::test]
async fn session_new_aggregates_every_agents_models() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, result) = client.new_session().await;
    assert!(sid.starts_with("terok-"));
    assert_eq!(
        picker_values(&result["configOptions"]),
        [
            "claude:opus",
            "claude:sonnet",
            "codex:gpt-5",
            "codex:gpt-5-mini"
        ]
    );
    assert_eq!(current_model(&result["configOptions"]), "claude:opus");
    let model = &result["configOptions"][0];
    assert_eq!(
        (model["category"].as_str(), model["type"].as_str()),
        (Some("model"), Some("select"))
    );
    assert_eq!(model["options"][1]["group"], "codex");
    // The legacy block for old clients.
    let legacy: Vec<&str> = result["models"]["availableModels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelId"].as_str().unwrap())
        .collect();
    assert_eq!(
        legacy,
        [
            "claude:opus",
            "claude:sonnet",
            "codex:gpt-5",
            "codex:gpt-5-mini"
        ]
    );
    assert_eq!(result["models"]["currentModelId"], "claude:opus");
    proxy.stop().await;
}

#[tokio::test]
async fn bind_by_set_config_option_answers_the_complete_list_and_selects_the_bare_id() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    let answer = client.pick(&sid, "claude:sonnet").await;
    let options = answer["configOptions"].as_array().unwrap();
    assert_eq!(current_model(&answer["configOptions"]), "claude:sonnet");
    assert!(
        options.iter().any(|o| o["id"] == "mode"),
        "the agent's own options come along: {answer}"
    );
    assert_eq!(
        picker_values(&answer["configOptions"]).len(),
        4,
        "the picker still lists every agent"
    );
    let (chunks, done) = client.prompt(&sid, "hello").await;
    assert_eq!(chunks, ["claude/sonnet: hello"]);
    assert_eq!(done["result"]["stopReason"], "end_turn");
    assert_eq!(done["params"], Value::Null);
    // The agent saw its own session id and the bare model id, never the proxy's names.
    let set = agents.received_method("claude", "session/set_config_option");
    let set = set
        .iter()
        .find(|v| v["params"]["configId"] == "model")
        .expect("model was selected");
    assert_eq!(set["params"]["value"], "sonnet");
    assert!(set["params"]["sessionId"]
        .as_str()
        .unwrap()
        .starts_with("claude-sess-"));
    // The agent process serving the session was offered the client's capabilities.
    let inits = agents.received_method("claude", "initialize");
    assert!(inits
        .iter()
        .any(|v| v["params"]["clientCapabilities"]["terminal"] == true
            && v["params"]["clientCapabilities"]["fs"]["readTextFile"] == true));
    proxy.stop().await;
}

#[tokio::test]
async fn bind_by_legacy_set_model() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    let answer = client
        .call(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "codex:gpt-5-mini"}),
        )
        .await;
    assert_eq!(answer, json!({}));
    let (chunks, _) = client.prompt(&sid, "hi").await;
    assert_eq!(chunks, ["codex/gpt-5-mini: hi"]);
    // codex only speaks the legacy method, and got the bare id.
    let set = agents.received_method("codex", "session/set_model");
    assert_eq!(set.last().unwrap()["params"]["modelId"], "gpt-5-mini");
    proxy.stop().await;
}

#[tokio::test]
async fn set_config_option_reaches_an_agent_that_only_speaks_set_model() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    let answer = client.pick(&sid, "codex:gpt-5-mini").await;
    assert_eq!(current_model(&answer["configOptions"]), "codex:gpt-5-mini");
    let (chunks, _) = client.prompt(&sid, "x").await;
    assert_eq!(chunks, ["codex/gpt-5-mini: x"]);
    proxy.stop().await;
}

#[tokio::test]
async fn first_prompt_binds_the_default_lazily() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    assert!(agents
        .received_method("claude", "session/prompt")
        .is_empty());
    let (chunks, done) = client.prompt(&sid, "lazy").await;
    assert_eq!(chunks, ["claude/opus: lazy"]);
    assert_eq!(done["result"]["stopReason"], "end_turn");
    // The client learns the agent's options through a config_option_update.
    let update = client
        .wait_for("a config_option_update", |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
        })
        .await;
    assert_eq!(update["params"]["sessionId"], sid.as_str());
    assert!(update["params"]["update"]["configOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == "mode"));
    proxy.stop().await;
}

#[tokio::test]
async fn cancel_never_binds() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    let probes = agents.received_method("claude", "initialize").len();
    client
        .notify("session/cancel", json!({"sessionId": sid}))
        .await;
    // A request after the cancel proves the cancel was processed.
    let err = client
        .call_err(
            "session/prompt",
            json!({"sessionId": "terok-nope", "prompt": []}),
        )
        .await;
    assert_eq!(err["code"], -32002);
    assert_eq!(
        agents.received_method("claude", "initialize").len(),
        probes,
        "no agent was started"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn many_sessions_on_one_connection_share_one_backend_per_agent() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (a, _) = client.new_session().await;
    let (b, _) = client.new_session().await;
    let (c, _) = client.new_session().await;
    assert!(a != b && b != c && a != c);
    client.pick(&a, "claude:opus").await;
    client.pick(&b, "claude:sonnet").await;
    client.pick(&c, "codex:gpt-5").await;
    for (sid, expected) in [
        (&a, "claude/opus: one"),
        (&b, "claude/sonnet: one"),
        (&c, "codex/gpt-5: one"),
    ] {
        let (chunks, _) = client.prompt(sid, "one").await;
        assert_eq!(chunks, [expected]);
    }
    // One process per agent, the one that answered the probe, serves every session.
    let inits = agents.received_method("claude", "initialize");
    assert_eq!(inits.len(), 1, "{inits:#?}");
    let (pa, _) = client.prompt(&a, "pid").await;
    let (pb, _) = client.prompt(&b, "pid").await;
    assert_eq!(pa, pb, "one process serves both claude sessions");
    // ...each in its own agent session.
    let prompted: std::collections::HashSet<String> = agents
        .received_method("claude", "session/prompt")
        .iter()
        .map(|v| v["params"]["sessionId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(prompted.len(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn interleaved_streams_of_two_sessions_stay_apart() {
    interleave_two_streams((500, 32), (300, 8), "codex:gpt-5").await;
}

#[tokio::test]
async fn long_updates_sent_as_slices_interleave_intact_with_short_ones() {
    // Updates past 2 KiB leave as slices of where they were read; short ones are copied into
    // the same connection's batch between them.
    interleave_two_streams((500, 5000), (300, 8), "codex:gpt-5").await;
}

#[tokio::test]
async fn streams_of_two_sessions_on_one_agent_process_stay_apart() {
    // One agent process, so one read can hold both sessions' chunks: each run of one
    // session's chunks is routed by the first of them, and the next session's starts anew.
    // Long enough that the agent's two prompt threads write at the same time.
    interleave_two_streams((20000, 32), (20000, 8), "claude:sonnet").await;
    interleave_two_streams((2000, 5000), (20000, 8), "claude:sonnet").await;
}

async fn interleave_two_streams(
    (count_a, long): (usize, usize),
    (count_b, short): (usize, usize),
    second: &str,
) {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (a, _) = client.new_session().await;
    let (b, _) = client.new_session().await;
    client.pick(&a, "claude:opus").await;
    client.pick(&b, second).await;
    // Whether the two sessions share an agent process is what the caller chose.
    let status = client.call("_terok/status", json!({})).await;
    let shared = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["sessions"].as_array().unwrap().len() == 2);
    assert_eq!(shared, second.starts_with("claude:"), "{status}");
    let pa = client
        .request(
            "session/prompt",
            json!({"sessionId": a, "prompt": [{"type": "text", "text": format!("stream {count_a} {long}")}]}),
        )
        .await;
    let pb = client
        .request(
            "session/prompt",
            json!({"sessionId": b, "prompt": [{"type": "text", "text": format!("stream {count_b} {short}")}]}),
        )
        .await;
    let (mut na, mut nb, mut done) = (0, 0, 0);
    while done < 2 {
        let v = client.next().await;
        if v["method"] == "session/update" {
            let text = v["params"]["update"]["content"]["text"]
                .as_str()
                .unwrap_or("");
            match v["params"]["sessionId"].as_str() {
                Some(s) if s == a => {
                    assert_eq!(text.len(), long);
                    na += 1
                }
                Some(s) if s == b => {
                    assert_eq!(text.len(), short);
                    nb += 1
                }
                other => panic!("update for an unexpected session {other:?}"),
            }
        } else if v["id"] == pa {
            assert_eq!(
                na, count_a,
                "every update arrives before its prompt's response"
            );
            done += 1;
        } else if v["id"] == pb {
            assert_eq!(nb, count_b);
            done += 1;
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn two_connections_at_once_are_independent() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut one = proxy.connect().await;
    let mut two = proxy.connect().await;
    let (s1, _) = one.new_session().await;
    let (s2, _) = two.new_session().await;
    one.pick(&s1, "claude:opus").await;
    two.pick(&s2, "claude:sonnet").await;
    let (c1, _) = one.prompt(&s1, "from one").await;
    let (c2, _) = two.prompt(&s2, "from two").await;
    assert_eq!(c1, ["claude/opus: from one"]);
    assert_eq!(c2, ["claude/sonnet: from two"]);
    // A session held by one connection is not the other's to use.
    let err = two
        .call_err("session/prompt", json!({"sessionId": s1, "prompt": []}))
        .await;
    assert_eq!(err["code"], -32600);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("attached to another connection"));
    let err = two
        .call_err(
            "session/prompt",
            json!({"sessionId": "terok-nope", "prompt": []}),
        )
        .await;
    assert_eq!(err["code"], -32002);
    proxy.stop().await;
}

#[tokio::test]
async fn agent_requests_reach_the_client_and_answers_go_back() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let prompt = client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    let ask = client
        .wait_for("a permission request", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    assert_eq!(
        ask["params"]["sessionId"],
        sid.as_str(),
        "the session id is the proxy's"
    );
    client.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"outcome": {"outcome": "selected", "optionId": "allow"}}})).await;
    let text = client
        .wait_for("the permission outcome", |v| {
            v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    assert_eq!(
        text["params"]["update"]["content"]["text"],
        "permission: allow"
    );
    let done = client.response(&prompt).await;
    assert_eq!(done["result"]["stopReason"], "end_turn");

    // fs/read_text_file goes the same way, with the client's answer delivered verbatim.
    let prompt = client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "read /etc/hostname"}]}),
        )
        .await;
    let read = client
        .wait_for("a read request", |v| v["method"] == "fs/read_text_file")
        .await;
    assert_eq!(read["params"]["path"], "/etc/hostname");
    client
        .send(
            &json!({"jsonrpc": "2.0", "id": read["id"], "result": {"content": "from the editor"}}),
        )
        .await;
    let text = client
        .wait_for("the read result", |v| {
            v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    assert_eq!(
        text["params"]["update"]["content"]["text"],
        "read: from the editor"
    );
    client.response(&prompt).await;
    proxy.stop().await;
}

#[tokio::test]
async fn request_ids_of_two_backends_never_collide() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (a, _) = client.new_session().await;
    let (b, _) = client.new_session().await;
    client.pick(&a, "claude:opus").await;
    client.pick(&b, "codex:gpt-5").await;
    // Both fixtures number their requests from 0.
    let pa = client
        .request(
            "session/prompt",
            json!({"sessionId": a, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    let pb = client
        .request(
            "session/prompt",
            json!({"sessionId": b, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    let ask_a = client
        .wait_for("claude's request", |v| {
            v["method"] == "session/request_permission" && v["params"]["sessionId"] == a.as_str()
        })
        .await;
    let ask_b = client
        .wait_for("codex's request", |v| {
            v["method"] == "session/request_permission" && v["params"]["sessionId"] == b.as_str()
        })
        .await;
    assert_ne!(ask_a["id"], ask_b["id"]);
    // Answer in the opposite order, with different outcomes.
    client.send(&json!({"jsonrpc": "2.0", "id": ask_b["id"], "result": {"outcome": {"outcome": "selected", "optionId": "reject"}}})).await;
    client.send(&json!({"jsonrpc": "2.0", "id": ask_a["id"], "result": {"outcome": {"outcome": "selected", "optionId": "allow"}}})).await;
    let ta = client
        .wait_for("claude's outcome", |v| {
            v["params"]["sessionId"] == a.as_str()
                && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    let tb = client
        .wait_for("codex's outcome", |v| {
            v["params"]["sessionId"] == b.as_str()
                && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    assert_eq!(
        ta["params"]["update"]["content"]["text"],
        "permission: allow"
    );
    assert_eq!(
        tb["params"]["update"]["content"]["text"],
        "permission: reject"
    );
    client.response(&pa).await;
    client.response(&pb).await;
    proxy.stop().await;
}

#[tokio::test]
async fn client_ids_of_any_type_come_back_unchanged() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    for id in [
        json!("a-uuid-like-string"),
        json!(0),
        json!(-5),
        json!(1.5),
        json!(null),
        json!("1"),
    ] {
        client
            .request_with_id(
                id.clone(),
                "_fixture/echo",
                json!({"sessionId": sid, "n": 1}),
            )
            .await;
        let response = client
            .wait_for("the echo", |v| {
                v.get("result").is_some() && v["result"]["n"] == 1
            })
            .await;
        assert_eq!(response["id"], id, "id {id} must come back as sent");
        // The echo shows what the agent received: its own session id, not the proxy's.
        assert!(
            response["result"]["sessionId"]
                .as_str()
                .unwrap()
                .starts_with("claude-sess-"),
            "{response}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn unknown_methods_and_fields_pass_through_unchanged() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let params = json!({"sessionId": sid, "_meta": {"traceparent": "00-abc-def-01", "x": [1, {"y": null}]}, "weird": "\u{2603}\n"});
    let echoed = client.call("_fixture/echo", params.clone()).await;
    assert_eq!(echoed["_meta"], params["_meta"]);
    assert_eq!(echoed["weird"], params["weird"]);
    let received = agents.received_method("claude", "_fixture/echo");
    assert_eq!(received.last().unwrap()["params"]["_meta"], params["_meta"]);
    // A method the agent does not know gets the agent's own answer.
    let err = client
        .call_err("_vendor/unknown", json!({"sessionId": sid}))
        .await;
    assert_eq!(err["code"], -32601);
    proxy.stop().await;
}

#[tokio::test]
async fn a_failing_agent_is_left_out_of_the_picker() {
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("broken", "--exit-on-start 3"),
        ("locked", "--auth-required"),
        ("codex", "--models gpt-5"),
    ]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (_, result) = client.new_session().await;
    assert_eq!(
        picker_values(&result["configOptions"]),
        ["claude:opus", "codex:gpt-5"]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn an_agent_without_a_selector_is_offered_as_default() {
    let agents = Agents::new(&[("plain", "--model-style none")]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, result) = client.new_session().await;
    assert_eq!(picker_values(&result["configOptions"]), ["plain:default"]);
    let answer = client.pick(&sid, "plain:default").await;
    assert_eq!(current_model(&answer["configOptions"]), "plain:default");
    let (chunks, _) = client.prompt(&sid, "hi").await;
    assert_eq!(chunks.len(), 1);
    assert!(
        agents
            .received_method("plain", "session/set_config_option")
            .is_empty(),
        "nothing is selected on the agent"
    );
    assert!(agents
        .received_method("plain", "session/set_model")
        .is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn no_usable_agent_is_a_clear_error() {
    let agents = Agents::new(&[
        ("locked", "--auth-required"),
        ("broken", "--exit-on-start 2"),
    ]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let err = client
        .call_err("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
        .await;
    assert_eq!(
        err["code"], -32000,
        "an agent needing auth maps to auth_required: {err}"
    );
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("locked") && message.contains("broken"),
        "{message}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn bad_picks_and_bad_frames_get_errors_and_the_connection_survives() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    for value in [
        "opus",
        "ghost:x",
        "claude:haiku",
        "claude;rm -rf /:x",
        "../../bin/sh:x",
    ] {
        let err = client
            .call_err(
                "session/set_config_option",
                json!({"sessionId": sid, "configId": "model", "value": value}),
            )
            .await;
        assert_eq!(err["code"], -32602, "{value}");
    }
    client.send_raw("this is not json").await;
    let parse = client
        .wait_for("a parse error", |v| v["error"]["code"] == -32700)
        .await;
    assert_eq!(parse["id"], Value::Null);
    client
        .send_raw(r#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#)
        .await;
    client
        .wait_for("a batch error", |v| v["error"]["code"] == -32600)
        .await;
    client
        .send_raw(r#"{"id":77,"method":"initialize","params":{}}"#)
        .await;
    let missing = client
        .wait_for("an invalid request error", |v| v["id"] == 77)
        .await;
    assert_eq!(missing["error"]["code"], -32600);
    let err = client.call_err("no/such/method", json!({})).await;
    assert_eq!(err["code"], -32601);
    let err = client
        .call_err(
            "session/prompt",
            json!({"sessionId": "terok-unknown", "prompt": []}),
        )
        .await;
    assert_eq!(err["code"], -32002);
    // Still fully usable.
    let (chunks, _) = client.prompt(&sid, "alive").await;
    assert_eq!(chunks, ["claude/opus: alive"]);
    // No wrapper was ever run for a name that is not an agent.
    for entry in std::fs::read_dir(agents.path().join("pids"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("claude.") || name.starts_with("codex."),
            "{name}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn a_crashing_agent_fails_its_requests_with_its_stderr_and_the_session_rebinds() {
    let agents = two_agents();
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let err = client
        .call_err(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "crash"}]}),
        )
        .await;
    assert_eq!(err["code"], -32603);
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("exit code 70"), "{message}");
    assert!(
        message.contains("crashing on request"),
        "the stderr tail is in the error: {message}"
    );
    // The next prompt starts the agent again.
    let (chunks, _) = client.prompt(&sid, "back").await;
    assert_eq!(chunks, ["claude/opus: back"]);
    proxy.stop().await;
}

#[tokio::test]
async fn an_agent_outlives_its_client_and_ends_once_idle() {
    let agents = Agents::new(&[("claude", "--models opus --ignore-stdin-eof")]);
    let config = terok_executor::acp::server::ProxyConfig {
        agent_idle: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    client.pick(&sid, "claude:opus").await;
    let pids = agents.pids("claude");
    assert!(!pids.is_empty());
    drop(client);
    eventually("the idle agent to end", || {
        pids.iter().all(|p| !common::alive(*p))
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn the_bound_marker_names_the_agent_while_a_session_is_bound() {
    let agents = two_agents();
    let config = terok_executor::acp::server::ProxyConfig {
        detached_ttl: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let marker = agents.path().join("run").join("acp.bound");
    let mut client = proxy.connect().await;
    let (sid, _) = client.new_session().await;
    assert!(!marker.exists());
    client.pick(&sid, "codex:gpt-5").await;
    // Written off the hub's thread, just after the answer.
    eventually("the marker", || marker.exists()).await;
    let content: Value = serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    assert_eq!(content, json!({"agent": "codex"}));
    // The session outlives its client for the detached time-to-live, then is bound no more.
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(marker.exists(), "a detached session is still bound");
    eventually("the marker to go", || !marker.exists()).await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_slow_agent_is_not_waited_for_past_the_probe_wait_and_joins_the_picker_later() {
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("sloth", "--models slow --delay-ms 1500"),
    ]);
    let config = terok_executor::acp::server::ProxyConfig {
        probe_wait: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let started = std::time::Instant::now();
    let (sid, result) = client.new_session().await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1200),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(picker_values(&result["configOptions"]), ["claude:opus"]);
    // The slow probe was not cut off: its answer reaches the open picker when it comes.
    let update = client
        .wait_for("the picker to gain the slow agent", |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
        })
        .await;
    assert_eq!(update["params"]["sessionId"], sid.as_str());
    assert_eq!(
        picker_values(&update["params"]["update"]["configOptions"]),
        ["claude:opus", "sloth:slow"]
    );
    assert_eq!(
        agents.pids("sloth").len(),
        1,
        "one sloth process: the probe's"
    );
    let reply = client.pick(&sid, "sloth:slow").await;
    assert_eq!(common::current_model(&reply["configOptions"]), "sloth:slow");
    let (chunks, _) = client.prompt(&sid, "hi").await;
    assert_eq!(chunks.concat(), "sloth/slow: hi");
    proxy.stop().await;
}

#[tokio::test]
async fn session_new_waits_for_the_first_agent_when_every_agent_is_still_starting() {
    let agents = Agents::new(&[
        ("slow", "--models a --delay-ms 700"),
        ("slower", "--models b --delay-ms 3000"),
    ]);
    let config = terok_executor::acp::server::ProxyConfig {
        probe_wait: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    assert!(init["authMethods"].as_array().unwrap().is_empty());
    // Nothing is ready past the wait, so the request waits on: a slow start is no error,
    // least of all a login request.
    let (_, result) = client.new_session().await;
    assert_eq!(picker_values(&result["configOptions"]), ["slow:a"]);
    proxy.stop().await;
}

#[tokio::test]
async fn probed_agents_stay_up_then_end_once_idle_though_they_ignore_stdin_eof() {
    let agents = Agents::new(&[
        ("claude", "--models opus --ignore-stdin-eof"),
        ("codex", "--models x --ignore-stdin-eof"),
    ]);
    let config = terok_executor::acp::server::ProxyConfig {
        agent_idle: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.new_session().await;
    // The process that answered each probe is kept as the agent's process...
    let live = |name| {
        let pids = agents.pids(name);
        (
            pids.len(),
            pids.into_iter().filter(|p| common::alive(*p)).count(),
        )
    };
    assert_eq!((live("claude"), live("codex")), ((1, 1), (1, 1)));
    // ...and ended when it has served nothing for the idle time.
    eventually("the idle agents to end", || {
        live("claude") == (1, 0) && live("codex") == (1, 0)
    })
    .await;
    proxy.stop().await;
}
