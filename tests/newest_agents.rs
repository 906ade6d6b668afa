//! The newest agents as they really behave, played by the fixture agent: logins carried only
//! in `authenticate`'s `_meta` and held in memory, modes offered only as the legacy block,
//! methods offered only to capable clients, slow starters, and every field a client sends
//! reaching the agent through the requests the proxy rewrites.

mod common;

use common::{current_model, eventually, picker_values, Agents, Proxy, EDITOR_CAPS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use terok_executor::acp::server::ProxyConfig;

/// The option of `options` with `id`.
fn option<'a>(options: &'a Value, id: &str) -> &'a Value {
    options
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == id))
        .unwrap_or_else(|| panic!("no option {id} in {options}"))
}

#[tokio::test]
async fn a_login_in_meta_reaches_the_agent_and_the_process_that_took_it_serves_the_agent() {
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("keyed", "--models k1,k2 --auth-meta"),
    ]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    let method = init["authMethods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "keyed:api-key")
        .unwrap_or_else(|| panic!("keyed:api-key offered: {init}"));
    assert_eq!(method["_meta"]["api-key"]["provider"], "fixture");
    let (sid, result) = client.new_session().await;
    assert_eq!(picker_values(&result["configOptions"]), ["claude:opus"]);

    // Without the key the agent's own error comes back.
    let err = client
        .call_err("authenticate", json!({"methodId": "keyed:api-key"}))
        .await;
    assert!(err["message"].as_str().unwrap().contains("apiKey"), "{err}");
    // With it, every field the client sent reaches the agent; only the method id is bare.
    let login = json!({"methodId": "keyed:api-key", "_meta": {"api-key": {"apiKey": "sk-test"}}, "futureField": [1, 2]});
    assert_eq!(client.call("authenticate", login).await, json!({}));
    let received = agents.received_method("keyed", "authenticate");
    assert_eq!(
        received.last().unwrap()["params"],
        json!({"methodId": "api-key", "_meta": {"api-key": {"apiKey": "sk-test"}}, "futureField": [1, 2]})
    );

    // The logged-in process (the login lives only in its memory) answers for the agent: the
    // open picker gains its models without a fresh process being asked.
    let update = client
        .wait_for("the picker to gain the logged-in agent", |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
                && picker_values(&v["params"]["update"]["configOptions"]).len() == 3
        })
        .await;
    assert_eq!(update["params"]["sessionId"], sid.as_str());
    assert_eq!(
        picker_values(&update["params"]["update"]["configOptions"]),
        ["claude:opus", "keyed:k1", "keyed:k2"]
    );
    let (authenticated_pid, fresh) = {
        let alive: Vec<i32> = agents
            .pids("keyed")
            .into_iter()
            .filter(|p| common::alive(*p))
            .collect();
        assert_eq!(alive.len(), 1, "one keyed process is up: {alive:?}");
        (alive[0], agents.pids("keyed").len())
    };
    client.pick(&sid, "keyed:k2").await;
    let (chunks, _) = client.prompt(&sid, "pid").await;
    assert_eq!(chunks.concat(), format!("pid: {authenticated_pid}"));

    // Another editor finds the agent ready, served by the same process.
    let mut other = proxy.connect().await;
    other.initialize().await;
    let (other_sid, result) = other.new_session().await;
    assert!(picker_values(&result["configOptions"]).contains(&"keyed:k1".to_owned()));
    other.pick(&other_sid, "keyed:k1").await;
    let (chunks, _) = other.prompt(&other_sid, "pid").await;
    assert_eq!(chunks.concat(), format!("pid: {authenticated_pid}"));
    assert_eq!(
        agents.pids("keyed").len(),
        fresh,
        "no process was started since"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn legacy_modes_are_offered_as_a_mode_select_and_kept_current() {
    let state = tempfile::tempdir().unwrap();
    let agents = Agents::new(&[(
        "gem",
        r#"--models auto,pro --model-style legacy --legacy-modes --caps '{"loadSession":true}'"#,
    )]);
    let config = ProxyConfig {
        sessions_file: Some(state.path().join("sessions.json")),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, result) = client.new_session().await;
    // Clients of the legacy surface get the block from the start.
    assert_eq!(result["modes"]["currentModeId"], "default");
    assert_eq!(
        result["modes"]["availableModes"].as_array().unwrap().len(),
        3
    );

    let reply = client.pick(&sid, "gem:pro").await;
    let mode = option(&reply["configOptions"], "mode");
    assert_eq!(mode["category"], "mode");
    assert_eq!(mode["type"], "select");
    assert_eq!(mode["currentValue"], "default");
    let values: Vec<&str> = mode["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["default", "plan", "yolo"]);
    assert_eq!(current_model(&reply["configOptions"]), "gem:pro");

    // A pick in the select is session/set_mode on the agent.
    let reply = client
        .call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "plan", "_meta": {"why": "test"}}),
        )
        .await;
    assert_eq!(
        option(&reply["configOptions"], "mode")["currentValue"],
        "plan"
    );
    let set_mode = agents.received_method("gem", "session/set_mode");
    assert_eq!(set_mode.len(), 1);
    assert_eq!(set_mode[0]["params"]["modeId"], "plan");
    assert_eq!(set_mode[0]["params"]["_meta"], json!({"why": "test"}));
    assert_ne!(set_mode[0]["params"]["sessionId"], sid.as_str());
    let (chunks, _) = client.prompt(&sid, "mode").await;
    assert_eq!(chunks.concat(), "mode: plan");
    let err = client
        .call_err(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "bogus"}),
        )
        .await;
    assert_eq!(err["code"], -32602, "{err}");

    // The agent changes its mode itself: the update passes through, and the select follows.
    let (chunks, _) = client.prompt(&sid, "switch-mode yolo").await;
    assert_eq!(chunks.concat(), "switched to yolo");
    let passed = client
        .wait_for("the agent's own mode update", |v| {
            v["params"]["update"]["sessionUpdate"] == "current_mode_update"
        })
        .await;
    assert_eq!(passed["params"]["sessionId"], sid.as_str());
    let update = client
        .wait_for("the select to follow", |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
        })
        .await;
    assert_eq!(
        option(&update["params"]["update"]["configOptions"], "mode")["currentValue"],
        "yolo"
    );

    // The legacy method still works as it is, and the block follows it.
    assert_eq!(
        client
            .call(
                "session/set_mode",
                json!({"sessionId": sid, "modeId": "plan"})
            )
            .await,
        json!({})
    );
    let (chunks, _) = client.prompt(&sid, "mode").await;
    assert_eq!(chunks.concat(), "mode: plan");
    // A client that comes back gets the current block with the session.
    drop(client);
    let mut client = proxy.connect().await;
    client.initialize().await;
    let reopened = client
        .call(
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )
        .await;
    assert_eq!(reopened["modes"]["currentModeId"], "plan", "{reopened}");
    assert_eq!(
        option(&reopened["configOptions"], "mode")["currentValue"],
        "plan"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn agents_get_editor_capabilities_and_each_client_the_methods_it_can_use() {
    let agents = Agents::new(&[("claude", "--models opus --capable-auth")]);
    let proxy = Proxy::start(&agents).await;
    let mut editor = proxy.connect().await;
    let init = editor.initialize().await;
    // The probe initialized the agent as an editor would, so it listed its methods for
    // capable clients.
    let probe = &agents.received_method("claude", "initialize")[0];
    assert_eq!(
        probe["params"]["clientCapabilities"]["auth"],
        json!({"terminal": true, "_meta": {"gateway": true}})
    );
    let ids = |init: &Value| -> Vec<String> {
        init["authMethods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // An editor that takes gateways gets the gateway method; terminal logins would run on the
    // editor's machine, not in the container, and are left out.
    assert_eq!(ids(&init), ["claude:gateway"]);
    assert_eq!(
        init["authMethods"][0]["_meta"]["gateway"],
        json!({"protocol": "fixture"})
    );
    // A client without those capabilities is not offered what it cannot use.
    let mut plain = proxy.connect().await;
    let init = plain
        .call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}}}),
        )
        .await;
    assert!(ids(&init).is_empty(), "{init}");
    assert!(EDITOR_CAPS["auth"]["terminal"] == true);
    proxy.stop().await;
}

#[tokio::test]
async fn a_slow_start_is_not_a_login_request() {
    let agents = Agents::new(&[
        ("sloth", "--models s --delay-ms 5000"),
        ("locked", "--auth-required"),
    ]);
    let config = ProxyConfig {
        probe_wait: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(1200),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let started = Instant::now();
    let err = client
        .call_err("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
        .await;
    // The request waited while sloth was starting: only once sloth was given up (the probe
    // limit) did "locked needs a login" become the answer.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err["code"], -32000, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("Authentication required: locked"),
        "{err}"
    );
    let states: Vec<(String, String)> = err["data"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap().into(),
                a["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("sloth".into(), "failed".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("locked".into(), "auth_required".into())),
        "{states:?}"
    );
    proxy.stop().await;

    // Agents that only failed (here: never answered within the limit) are no login request.
    let agents = Agents::new(&[("sloth", "--models s --delay-ms 5000")]);
    let config = ProxyConfig {
        probe_wait: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let err = client
        .call_err("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
        .await;
    assert_eq!(err["code"], -32603, "{err}");
    assert_eq!(err["data"]["reason"], "failed");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{err}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn initialize_answers_within_its_own_wait_and_a_late_agent_joins_the_pickers() {
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("late", "--models l --delay-ms 1500 --auth-required"),
    ]);
    let config = ProxyConfig {
        initialize_wait: Duration::from_millis(300),
        probe_wait: Duration::from_millis(300),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    let started = Instant::now();
    let init = client.initialize().await;
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert!(
        init["authMethods"].as_array().unwrap().is_empty(),
        "late is not known yet: {init}"
    );
    // Once it answers, its login is known to the connection although initialize was over.
    eventually("the late agent's probe", || {
        !agents.received_method("late", "session/new").is_empty()
    })
    .await;
    let deadline = Instant::now() + common::STEP;
    loop {
        let id = client
            .request("authenticate", json!({"methodId": "late:login"}))
            .await;
        let response = client.response(&id).await;
        if response.get("result") == Some(&json!({})) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late:login never became known: {response}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.stop().await;
}

/// One row of the table below: what the client sends (method, params), the agent and method it
/// becomes there, and the fields the proxy rewrites on the way.
type Case = (
    &'static str,
    Value,
    &'static str,
    &'static str,
    Vec<(&'static str, Value)>,
);

/// Every request the proxy rebuilds for the agent keeps every field it does not rewrite.
#[tokio::test]
async fn every_rewritten_request_keeps_the_clients_other_fields() {
    let stores = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let caps = r#"'{"loadSession":true,"sessionCapabilities":{"list":{},"resume":{},"close":{},"delete":{}}}'"#;
    let agents = Agents::new(&[("locked", "--auth-required")]);
    agents.add_fixture(
        "claude",
        &format!(
            "--models opus,sonnet --legacy-modes --caps {caps} --store '{}'",
            stores.path().display()
        ),
    );
    let config = ProxyConfig {
        sessions_file: Some(state.path().join("sessions.json")),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let extra = |n: u32| json!({"_meta": {"case": n}, "futureField": {"n": n}});
    let with = |mut params: Value, n: u32| {
        for (k, v) in extra(n).as_object().unwrap() {
            params[k] = v.clone();
        }
        params
    };
    let sid = client
        .call(
            "session/new",
            with(json!({"cwd": "/tmp", "mcpServers": []}), 1),
        )
        .await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = sid.as_str();
    // (what the client sends, the agent and method it becomes, fields the proxy rewrites)
    let table: Vec<Case> = vec![
        (
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "claude:sonnet"}),
            "claude",
            "session/set_config_option",
            vec![("value", json!("sonnet"))],
        ),
        (
            "session/set_model",
            json!({"sessionId": sid, "modelId": "claude:opus"}),
            "claude",
            "session/set_config_option",
            vec![("value", json!("opus"))],
        ),
        (
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "plan"}),
            "claude",
            "session/set_mode",
            vec![("modeId", json!("plan"))],
        ),
        (
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hi"}]}),
            "claude",
            "session/prompt",
            vec![],
        ),
        (
            "session/cancel",
            json!({"sessionId": sid}),
            "claude",
            "session/cancel",
            vec![],
        ),
        ("session/list", json!({}), "claude", "session/list", vec![]),
        (
            "session/close",
            json!({"sessionId": sid}),
            "claude",
            "session/close",
            vec![],
        ),
        (
            // Answered from the daemon's transcript; the agent is asked on the next request.
            "session/load",
            json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
            "",
            "",
            vec![],
        ),
        (
            // The reopened session binds again: its agent resumes it with the load's fields.
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "again"}]}),
            "claude",
            "session/resume",
            vec![],
        ),
        (
            "session/delete",
            json!({"sessionId": sid}),
            "claude",
            "session/delete",
            vec![],
        ),
        (
            "authenticate",
            json!({"methodId": "locked:login"}),
            "locked",
            "authenticate",
            vec![("methodId", json!("login"))],
        ),
    ];
    // The first pick binds: the replayed session/new carries the client's fields too.
    // Requests are answered before the next is sent, so each lands where the table says.
    for (n, (method, params, agent, agent_method, rewritten)) in table.into_iter().enumerate() {
        let n = n as u32 + 2;
        if method == "session/cancel" {
            client.notify(method, with(params, n)).await;
            eventually("the notification", || {
                agents
                    .received_method(agent, agent_method)
                    .iter()
                    .any(|f| f["params"]["_meta"]["case"] == n)
            })
            .await;
        } else {
            let id = client.request(method, with(params, n)).await;
            let response = client.response(&id).await;
            assert!(response.get("result").is_some(), "{method}: {response}");
        }
        if agent.is_empty() {
            continue;
        }
        // The resume carries the fields of the load before it.
        let case = if agent_method == "session/resume" {
            n - 1
        } else {
            n
        };
        let seen = agents.received_method(agent, agent_method);
        let Some(frame) = seen.iter().find(|f| f["params"]["_meta"]["case"] == case) else {
            panic!("{method}: the agent's {agent_method} lost _meta: {seen:?}");
        };
        assert_eq!(
            frame["params"]["futureField"],
            json!({"n": case}),
            "{method}"
        );
        for (field, value) in rewritten {
            assert_eq!(frame["params"][field], value, "{method}: {field}");
        }
        if frame["params"].get("sessionId").is_some() {
            assert_ne!(
                frame["params"]["sessionId"], sid,
                "{method}: the agent's own id"
            );
        }
    }
    let new = agents.received_method("claude", "session/new");
    assert!(
        new.iter()
            .any(|f| f["params"]["_meta"]["case"] == 1
                && f["params"]["futureField"] == json!({"n": 1})),
        "the bind's session/new keeps the client's fields: {new:?}"
    );
    proxy.stop().await;
}

/// `logout` goes to the agent this client logged in to, with the client's fields; a client
/// that has not logged in is told so, and an agent's logout is not mistaken for another's.
#[tokio::test]
async fn logout_goes_to_the_agent_the_client_logged_in_to() {
    let agents = Agents::new(&[
        ("claude", "--models opus"),
        ("locked", "--models l1 --auth-required"),
    ]);
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let err = client.call_err("logout", json!({})).await;
    assert_eq!(err["code"], -32600, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("no login"),
        "{err}"
    );

    assert_eq!(
        client
            .call("authenticate", json!({"methodId": "locked:login"}))
            .await,
        json!({})
    );
    let logout = json!({"_meta": {"reason": "user"}});
    assert_eq!(client.call("logout", logout.clone()).await, json!({}));
    let received = agents.received_method("locked", "logout");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["params"], logout);
    assert!(agents.received_method("claude", "logout").is_empty());

    // The login is over: another logout has nothing to end.
    let err = client.call_err("logout", json!({})).await;
    assert_eq!(err["code"], -32600, "{err}");
}
