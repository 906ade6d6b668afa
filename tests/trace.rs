//! Wire traces: a scripted session (bind, stream, a permission request, cancel, a switch of
//! agents, a login) leaves every frame of every hop in the trace, in order, with secrets
//! redacted and text elided; `acp trace` renders it as a timeline.

mod common;

use std::process::Command;

use common::{Agents, Proxy, BIN};
use serde_json::{json, Value};
use terok_executor::acp::server::ProxyConfig;
use terok_executor::acp::trace::TraceConfig;

const SECRETS: [&str; 3] = ["sk-trace-secret", "ghp-trace-secret", "the secret words"];

fn read_trace(path: &std::path::Path) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(path).expect("the trace was written");
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (text, records)
}

fn on<'a>(records: &'a [Value], dir: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    records.iter().filter(move |r| r["dir"] == dir)
}

async fn traced_proxy(agents: &Agents, path: &std::path::Path, content: bool) -> Proxy {
    let config = ProxyConfig {
        trace: Some(TraceConfig {
            path: path.to_owned(),
            content,
        }),
        ..ProxyConfig::default()
    };
    Proxy::start_with(agents, config).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_session_is_traced_hop_by_hop_with_secrets_redacted() {
    let agents = Agents::new(&[
        ("a", "--models m1,m2"),
        ("b", "--models m1"),
        ("locked", "--auth-required"),
    ]);
    let path = agents.path().join("wire.ndjson");
    let proxy = traced_proxy(&agents, &path, false).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let result = client
        .call(
            "session/new",
            json!({"cwd": "/tmp", "mcpServers": [{"name": "gh", "command": "/bin/true", "args": [],
                "env": [{"name": "GITHUB_TOKEN", "value": "ghp-trace-secret"}]}]}),
        )
        .await;
    let sid = result["sessionId"].as_str().unwrap().to_owned();
    client.pick(&sid, "a:m1").await;
    let (chunks, _) = client.prompt(&sid, "stream 200 16").await;
    assert_eq!(chunks.len(), 200);
    let (chunks, _) = client.prompt(&sid, "the secret words").await;
    assert_eq!(chunks.len(), 1);

    // The agent asks; the client answers.
    let prompt = client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "permission"}]}),
        )
        .await;
    let ask = client
        .wait_for("the permission request", |v| {
            v["method"] == "session/request_permission"
        })
        .await;
    client
        .send(&json!({"jsonrpc": "2.0", "id": ask["id"],
            "result": {"outcome": {"outcome": "selected", "optionId": "allow"}}}))
        .await;
    client.response(&prompt).await;

    // A turn cancelled.
    let hang = client
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    client
        .notify("session/cancel", json!({"sessionId": sid}))
        .await;
    let answer = client.response(&hang).await;
    assert_eq!(answer["result"]["stopReason"], "cancelled");

    // A switch to another agent, and a turn there.
    client.pick(&sid, "b:m1").await;
    let (chunks, _) = client.prompt(&sid, "hello").await;
    let last = chunks.last().expect("b answered");
    assert!(
        last.starts_with("b/m1: ") && last.ends_with("hello"),
        "{last}"
    );

    // A login: its credentials go to the agent, never into the trace.
    let login = client
        .request(
            "authenticate",
            json!({"methodId": "locked:login", "_meta": {"api-key": {"apiKey": "sk-trace-secret"}}}),
        )
        .await;
    client.response(&login).await;
    proxy.stop().await;

    let (text, records) = read_trace(&path);
    assert_eq!(records[0]["trace"], "terok-executor acp");
    assert_eq!(records[0]["content"], false);
    let end = records.last().unwrap();
    assert_eq!(end["end"], true, "the last record closes the trace");
    assert_eq!(end["dropped"], 0);
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} leaked into the trace");
    }
    assert!(text.contains("[redacted]"));
    assert!(text.contains("bytes elided"));

    // Every request the client sent, in order, and each answered on the way back with its
    // round trip; the answer to the agent's question is named after it.
    let sent: Vec<(String, Value)> = on(&records, "client->daemon")
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_owned(),
                r["id"].clone(),
            )
        })
        .collect();
    let methods: Vec<&str> = sent.iter().map(|(m, _)| &m[..]).collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "session/new",
            "session/set_config_option",
            "session/prompt",
            "session/prompt",
            "session/prompt",
            "session/request_permission",
            "session/prompt",
            "session/cancel",
            "session/set_config_option",
            "session/prompt",
            "authenticate",
        ]
    );
    for (method, id) in sent.iter().filter(|(_, id)| !id.is_null()) {
        if method == "session/request_permission" {
            continue;
        }
        let answer = on(&records, "daemon->client")
            .find(|r| r["kind"] == "response" && &r["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {method} {id}"));
        assert_eq!(answer["method"], method.as_str());
        assert!(answer["rtt"].as_f64().unwrap() >= 0.0);
    }
    let auth = on(&records, "client->daemon")
        .find(|r| r["method"] == "authenticate")
        .unwrap();
    assert_eq!(auth["body"]["params"]["methodId"], "locked:login");
    // The agent got it under its own method id, as redacted in the trace.
    let to_agent = on(&records, "daemon->agent")
        .find(|r| r["method"] == "authenticate")
        .expect("the login went to the agent");
    assert_eq!(to_agent["agent"], "locked");
    assert_eq!(to_agent["body"]["params"]["_meta"], "[redacted]");
    assert_eq!(auth["body"]["params"]["_meta"], "[redacted]");

    // What reached agent `a` is what the trace says the daemon sent it, in the same order.
    let a_slot = on(&records, "daemon->agent")
        .find(|r| r["agent"] == "a" && r["slot"].is_number())
        .map(|r| r["slot"].clone())
        .unwrap();
    let traced: Vec<(Value, Value)> = on(&records, "daemon->agent")
        .filter(|r| r["slot"] == a_slot)
        .map(|r| (r["body"]["method"].clone(), r["body"]["id"].clone()))
        .collect();
    let received: Vec<(Value, Value)> = agents
        .received("a")
        .into_iter()
        .map(|f| (f["method"].clone(), f["id"].clone()))
        .collect();
    assert!(
        received.ends_with(&traced),
        "the daemon->agent frames of a's process are the last {} frames it read\ntraced: {traced:?}\nreceived: {received:?}",
        traced.len()
    );
    // The probes' handshakes are there too, marked as such.
    for method in ["initialize", "session/new"] {
        for dir in ["daemon->agent", "agent->daemon"] {
            assert!(
                on(&records, dir)
                    .any(|r| r["probe"] == true && r["agent"] == "a" && r["method"] == method),
                "no probe {method} on {dir}"
            );
        }
    }
    // Each request to the agents of the session answered, matched by id (the login's agent
    // may still be busy when the daemon stops).
    for r in
        on(&records, "daemon->agent").filter(|r| r["kind"] == "request" && r["agent"] != "locked")
    {
        assert!(
            on(&records, "agent->daemon")
                .any(|a| a["kind"] == "response" && a["slot"] == r["slot"] && a["id"] == r["id"]),
            "no answer to {r}"
        );
    }

    // The stream: every update the agent sent reached the client, under the proxy's session.
    let updates = |dir| {
        on(&records, dir)
            .filter(|r| r["method"] == "session/update" && r["session"] == sid.as_str())
            .count()
    };
    // 200 streamed, one answer each to "the secret words", "permission" and on b "hello".
    assert_eq!(updates("agent->daemon"), 203);
    // The client saw all of them, and the proxy's own (the picker after each pick, the
    // switch notice).
    assert!(updates("daemon->client") > updates("agent->daemon"));
    assert!(on(&records, "agent->daemon")
        .filter(|r| r["session"] == sid.as_str())
        .any(|r| r["agent"] == "b"));

    // One prompt, hop by hop, in time order.
    let first_prompt = |dir| {
        on(&records, dir)
            .find(|r| r["method"] == "session/prompt" && r["session"] == sid.as_str())
            .unwrap_or_else(|| panic!("no prompt on {dir}"))["t"]
            .as_f64()
            .unwrap()
    };
    let hops = [
        first_prompt("client->daemon"),
        first_prompt("daemon->agent"),
        first_prompt("agent->daemon"),
        first_prompt("daemon->client"),
    ];
    assert!(hops.windows(2).all(|w| w[0] <= w[1]), "{hops:?}");

    // The permission round: asked by the agent, relayed, answered, relayed back.
    for (dir, kind) in [
        ("agent->daemon", "request"),
        ("daemon->client", "request"),
        ("client->daemon", "response"),
        ("daemon->agent", "response"),
    ] {
        assert!(
            on(&records, dir)
                .any(|r| r["method"] == "session/request_permission" && r["kind"] == kind),
            "no {kind} of session/request_permission on {dir}"
        );
    }
    // The cancel went through to the agent.
    assert!(on(&records, "daemon->agent").any(|r| r["method"] == "session/cancel"));

    // The timeline.
    let out = Command::new(BIN)
        .args(["acp", "trace"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timeline = String::from_utf8_lossy(&out.stdout);
    for needle in [
        format!("session {sid}"),
        "session/update ×".to_owned(),
        "session/request_permission".to_owned(),
        "rtt ".to_owned(),
        "frames dropped (writer behind): 0".to_owned(),
    ] {
        assert!(timeline.contains(&needle), "{needle:?} not in:\n{timeline}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_content_the_text_stays_and_secrets_still_go() {
    let agents = Agents::new(&[("a", "")]);
    let path = agents.path().join("wire.ndjson");
    let proxy = traced_proxy(&agents, &path, true).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, _) = client.new_session().await;
    client.prompt(&sid, "hello visible words").await;
    let login = client
        .request(
            "authenticate",
            json!({"methodId": "x", "_meta": {"token": "sk-trace-secret"}}),
        )
        .await;
    client.response(&login).await;
    proxy.stop().await;
    let (text, records) = read_trace(&path);
    assert_eq!(records[0]["content"], true);
    assert!(text.contains("hello visible words"));
    // The prompt on its way in and out, and the agent's answer quoting it.
    assert!(text.matches("hello visible words").count() >= 3, "{text}");
    assert!(!text.contains("sk-trace-secret"));
}

#[test]
fn a_trace_that_cannot_be_written_stops_the_daemon_with_the_reason() {
    let agents = Agents::new(&[("a", "")]);
    let out = Command::new(BIN)
        .args([
            "acp",
            "--runtime",
            "local",
            "--trace",
            "/nonexistent/dir/t.ndjson",
        ])
        .arg(agents.path())
        .arg(agents.path().join("acp.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write the trace /nonexistent/dir/t.ndjson"),
        "{stderr}"
    );
}
