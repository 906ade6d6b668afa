//! The proxy against the current ACP adapters from npm, run for real: gemini-cli (its modes
//! come only as the legacy block) and codex-acp (its login is an API key in `authenticate`'s
//! `_meta`, held in the process's memory).
//!
//! `.ci/run` installs them and names their `node_modules/.bin` in `TEROK_TEST_NPM_BIN`; under
//! `CI` a missing adapter fails the test, elsewhere it is skipped with the reason printed.
//! Each adapter gets a fresh `HOME` and dummy keys; nothing here needs a network beyond npm.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{picker_values, Agents, Proxy};
use serde_json::{json, Value};

/// The adapter's executable, or `None` (skip) outside CI.
fn adapter(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("TEROK_TEST_NPM_BIN")
        .map(|dir| PathBuf::from(dir).join(name))
        .filter(|p| p.is_file());
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => panic!(
            "{name} is not installed (TEROK_TEST_NPM_BIN={:?}), and CI requires it",
            std::env::var_os("TEROK_TEST_NPM_BIN")
        ),
        None => {
            eprintln!("skipping: no {name} in TEROK_TEST_NPM_BIN (see .ci/run for the install)");
            None
        }
    }
}

/// A wrapper running `command` with a fresh home and `env`, as a container's wrapper would.
fn add_adapter(agents: &Agents, name: &str, command: &str, env: &str) {
    let home = agents.path().join(format!("home-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    agents.add_script(
        name,
        &format!(
            "export HOME='{home}'\nunset IS_SANDBOX CODEX_API_KEY OPENAI_API_KEY GEMINI_API_KEY\n{env}\nexec {command}",
            home = home.display()
        ),
    );
}

fn option<'a>(options: &'a Value, id: &str) -> Option<&'a Value> {
    options.as_array()?.iter().find(|o| o["id"] == id)
}

#[tokio::test]
async fn geminis_legacy_modes_show_as_a_mode_select_through_the_daemon() {
    let Some(gemini) = adapter("gemini") else {
        return;
    };
    let agents = Agents::new(&[]);
    add_adapter(
        &agents,
        "gemini",
        &format!("'{}' --acp", gemini.display()),
        "export GEMINI_API_KEY=dummy",
    );
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    client.initialize().await;
    let (sid, result) = client.new_session().await;
    let values = picker_values(&result["configOptions"]);
    assert!(
        values.iter().all(|v| v.starts_with("gemini:")) && !values.is_empty(),
        "{result}"
    );
    let modes: Vec<&str> = result["modes"]["availableModes"]
        .as_array()
        .unwrap_or_else(|| panic!("the legacy block for legacy clients: {result}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        modes.contains(&"plan") && modes.contains(&"yolo"),
        "{modes:?}"
    );

    let reply = client.pick(&sid, &values[0]).await;
    let mode =
        option(&reply["configOptions"], "mode").unwrap_or_else(|| panic!("a mode select: {reply}"));
    assert_eq!(mode["category"], "mode");
    let offered: Vec<&str> = mode["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(offered, modes);
    let reply = client
        .call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "plan"}),
        )
        .await;
    assert_eq!(
        option(&reply["configOptions"], "mode").unwrap()["currentValue"],
        "plan",
        "{reply}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn codex_logs_in_through_meta_and_joins_the_picker() {
    let Some(codex) = adapter("codex-acp") else {
        return;
    };
    let agents = Agents::new(&[("claude", "--models opus")]);
    add_adapter(&agents, "codex", &format!("'{}'", codex.display()), "");
    let proxy = Proxy::start(&agents).await;
    let mut client = proxy.connect().await;
    let init = client.initialize().await;
    let method = init["authMethods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "codex:api-key")
        .unwrap_or_else(|| panic!("codex offers its API key login: {init}"))
        .clone();
    assert_eq!(method["_meta"]["api-key"]["provider"], "openai");
    let (sid, result) = client.new_session().await;
    assert_eq!(picker_values(&result["configOptions"]), ["claude:opus"]);

    let login = json!({"methodId": "codex:api-key", "_meta": {"api-key": {"apiKey": "sk-dummy"}}});
    assert_eq!(client.call("authenticate", login).await, json!({}));
    // codex holds the key in memory: the process that took it opens the session that lists
    // its models (slowly: it looks for them online first).
    let update = client
        .wait_for_within("codex in the picker", Duration::from_secs(90), |v| {
            v["params"]["update"]["sessionUpdate"] == "config_option_update"
                && picker_values(&v["params"]["update"]["configOptions"])
                    .iter()
                    .any(|m| m.starts_with("codex:"))
        })
        .await;
    assert_eq!(update["params"]["sessionId"], sid.as_str());
    let codex_values: Vec<String> = picker_values(&update["params"]["update"]["configOptions"])
        .into_iter()
        .filter(|m| m.starts_with("codex:"))
        .collect();
    let reply = client.pick(&sid, &codex_values[0]).await;
    assert_eq!(
        common::current_model(&reply["configOptions"]),
        codex_values[0]
    );
    proxy.stop().await;
}
