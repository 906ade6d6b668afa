//! The proxy against real third-party ACP agents.
//!
//! `elizacp` (crates.io) needs no credentials. CI installs it; elsewhere the test skips with a
//! printed reason when it is missing, but under `CI` a missing agent fails the test.

mod common;

use common::{picker_values, Agents, Proxy};

fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn require(program: &str) -> Option<std::path::PathBuf> {
    match find(program) {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("{program} is not installed, and CI requires it")
        }
        None => {
            eprintln!("skipping: {program} is not on PATH (cargo install elizacp)");
            None
        }
    }
}

#[tokio::test]
async fn elizacp_behind_the_proxy_beside_a_fixture_agent() {
    let Some(eliza) = require("elizacp") else {
        return;
    };
    let agents = Agents::new(&[("claude", "--models opus")]);
    agents.add_script(
        "eliza",
        &format!("exec '{}' --deterministic acp", eliza.display()),
    );
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, result) = client.new_session().await;
    // elizacp offers no model selector: it appears as its default.
    assert_eq!(
        picker_values(&result["configOptions"]),
        ["claude:opus", "eliza:default"]
    );
    client.pick(&sid, "eliza:default").await;
    let (chunks, done) = client.prompt(&sid, "I feel happy today").await;
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");
    let reply = chunks.concat();
    assert!(!reply.is_empty(), "eliza answered nothing");
    assert!(
        !reply.contains("claude/"),
        "the answer came from eliza: {reply}"
    );
    // A second session on the same connection binds the fixture agent beside it.
    let (other, _) = client.new_session().await;
    let (chunks, _) = client.prompt(&other, "and you?").await;
    assert_eq!(chunks, ["claude/opus: and you?"]);
    proxy.stop().await;
}

#[tokio::test]
async fn an_elizacp_session_survives_its_client_and_is_loaded_elsewhere() {
    let Some(eliza) = require("elizacp") else {
        return;
    };
    let agents = Agents::new(&[]);
    agents.add_script(
        "eliza",
        &format!("exec '{}' --deterministic acp", eliza.display()),
    );
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    let (chunks, _) = client.prompt(&sid, "I feel happy today").await;
    let first_reply = chunks.concat();
    assert!(!first_reply.is_empty());
    // The client vanishes mid-session.
    drop(client);

    let mut again = proxy.connect().await;
    again.initialize().await;
    let id = again
        .request(
            "session/load",
            serde_json::json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    let loaded = again.response(&id).await;
    assert!(loaded["result"]["configOptions"].is_array(), "{loaded}");
    let replay: Vec<&serde_json::Value> = again
        .backlog
        .iter()
        .filter(|v| v["params"]["sessionId"] == sid.as_str())
        .collect();
    let said = |kind: &str| -> String {
        replay
            .iter()
            .filter(|v| v["params"]["update"]["sessionUpdate"] == kind)
            .filter_map(|v| v["params"]["update"]["content"]["text"].as_str())
            .collect()
    };
    assert_eq!(said("user_message_chunk"), "I feel happy today");
    assert_eq!(said("agent_message_chunk"), first_reply);
    again.backlog.clear();
    let (chunks, done) = again.prompt(&sid, "Tell me more").await;
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");
    assert!(!chunks.concat().is_empty(), "eliza answered again");
    proxy.stop().await;
}
