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
