//! Warm binds: the daemon keeps a spare session open on each agent, a model pick binds to it
//! without a spawn or a `session/new`, a pick while the spare is opening waits for it, and what
//! the agent says of the spare before the bind reaches the client that takes it, and nobody else.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, Agents, Client, Proxy};
use serde_json::{json, Value};

/// How many spares (sessions opened in the daemon's own cwd) the agent was asked for.
fn spares_asked(agents: &Agents) -> usize {
    agents
        .received_method("claude", "session/new")
        .iter()
        .filter(|v| v["params"]["cwd"] == "/tmp")
        .count()
}

/// A daemon on one fixture agent, `claude` with `flags`, and a client with a fresh session,
/// once the agent has been asked for its spare.
async fn session_beside_a_spare(flags: &str) -> (Agents, Proxy, Client, String) {
    let agents = Agents::new(&[("claude", flags)]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    eventually("the spare to be asked for", || spares_asked(&agents) == 1).await;
    (agents, proxy, client, sid)
}

/// The next commands announcement `client` gets.
async fn announced_commands(client: &mut Client) -> Value {
    client
        .wait_for("the commands of a session", |v| {
            v["params"]["update"]["sessionUpdate"] == "available_commands_update"
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_bind_takes_the_spare_and_a_new_spare_is_opened() {
    let store = tempfile::tempdir().unwrap();
    let agents = Agents::new(&[]);
    agents.add_fixture(
        "claude",
        &format!(
            r#"--models opus,sonnet --caps '{{"sessionCapabilities":{{"list":{{}},"close":{{}},"delete":{{}}}}}}' --store '{}'"#,
            store.path().display()
        ),
    );
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    // The probe's process stays up as the agent's, and opens a spare in this cwd.
    eventually("the spare to be opened", || spares_asked(&agents) >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = agents.received("claude").len();
    let pids = agents.pids("claude").len();
    assert_eq!(pids, 1, "the probed process is the agent's process");
    let started = Instant::now();
    client.pick(&sid, "claude:sonnet").await;
    let took = started.elapsed();
    assert_eq!(agents.pids("claude").len(), pids, "no process was started");
    // Before the pick's own selection, the agent heard nothing: no initialize, no session/new.
    let after: Vec<Value> = agents.received("claude").split_off(seen);
    let select = after
        .iter()
        .position(|v| v["method"] == "session/set_config_option")
        .expect("the model was selected");
    assert!(
        after[..select]
            .iter()
            .all(|v| v["method"] != "initialize" && v["method"] != "session/new"),
        "{after:?}"
    );
    eprintln!("warm bind took {took:?}");
    let (chunks, _) = client.prompt(&sid, "warm").await;
    assert_eq!(chunks, ["claude/sonnet: warm"]);
    // The spare is replaced, and never listed.
    eventually("a new spare", || {
        agents.received("claude")[seen..]
            .iter()
            .any(|v| v["method"] == "session/new")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let listed = client.call("session/list", json!({})).await;
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sid.as_str()], "{listed}");
    // At shutdown the spare is closed and deleted: only the user's session stays in the store.
    proxy.stop().await;
    let files = std::fs::read_dir(store.path()).unwrap().count();
    assert_eq!(files, 1, "the spare was deleted at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_while_the_spare_is_opening_waits_for_it() {
    // Every session/new takes 300 ms, so the pick arrives while the spare is being opened.
    let (agents, proxy, mut client, sid) =
        session_beside_a_spare("--models opus,sonnet --delay-ms 300").await;
    client.pick(&sid, "claude:sonnet").await;
    // The bind took the spare it waited for: right after the spare's session/new the agent
    // heard the model selection, not a session/new of the bind's own.
    let received = agents.received("claude");
    let spare = received
        .iter()
        .position(|v| v["method"] == "session/new" && v["params"]["cwd"] == "/tmp")
        .unwrap();
    let next = received[spare + 1..]
        .iter()
        .find(|v| v["method"].is_string())
        .expect("something after the spare");
    assert_eq!(next["method"], "session/set_config_option", "{received:#?}");
    let (chunks, _) = client.prompt(&sid, "waited").await;
    assert_eq!(chunks, ["claude/sonnet: waited"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_agent_says_of_its_spare_reaches_the_client_that_binds_it() {
    // Like the real adapters, the agent announces each session's commands right after opening
    // it: the probe's session, the spare, and the spare opened after the bind.
    let (agents, proxy, mut client, sid) =
        session_beside_a_spare("--models opus,sonnet --announce-commands").await;
    // The announcement follows the spare's answer: give it time to be kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.pick(&sid, "claude:sonnet").await;
    let announced = announced_commands(&mut client).await;
    assert_eq!(announced["method"], "session/update");
    assert_eq!(
        announced["params"]["sessionId"],
        sid.as_str(),
        "{announced}"
    );

    // They were the commands of the agent session the client's turns now go to.
    eventually("a new spare", || spares_asked(&agents) == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (chunks, _) = client.prompt(&sid, "whose").await;
    assert_eq!(chunks, ["claude/sonnet: whose"]);
    let prompted = agents.received_method("claude", "session/prompt");
    let bound = prompted[0]["params"]["sessionId"].as_str().unwrap();
    assert_eq!(
        announced["params"]["update"]["availableCommands"][0]["name"],
        format!("about-{bound}").as_str()
    );
    // The new spare's announcement is kept for its own bind: this client never sees it, nor
    // the probe's.
    let more: Vec<&Value> = client
        .backlog
        .iter()
        .filter(|v| v["params"]["update"]["sessionUpdate"] == "available_commands_update")
        .collect();
    assert!(more.is_empty(), "{more:?}");

    // A second client's bind takes the new spare, with its own commands.
    let mut other = proxy.connect().await;
    other.initialize().await;
    let (sid2, _) = other.new_session().await;
    other.pick(&sid2, "claude:opus").await;
    let second = announced_commands(&mut other).await;
    assert_eq!(second["params"]["sessionId"], sid2.as_str());
    assert_ne!(
        second["params"]["update"]["availableCommands"][0]["name"],
        announced["params"]["update"]["availableCommands"][0]["name"]
    );
    assert!(
        !client
            .backlog
            .iter()
            .any(|v| v["params"]["sessionId"] == sid2.as_str()),
        "the first client saw nothing of the second session"
    );
    proxy.stop().await;
}
