//! Protocol-level behaviour of the fixture: handshake shapes, selectors,
//! authentication, errors and id handling.

mod common;

use common::{with_timeout, Fixture, TEST_LIMIT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn new_session(fx: &mut Fixture) -> Value {
    fx.call_ok("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
}

#[test]
fn initialize_has_the_default_shape() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--name", "alpha"]);
        let init = fx.call_ok(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        );
        assert_eq!(init["protocolVersion"], 1);
        assert_eq!(
            init["agentInfo"],
            json!({"name": "alpha", "title": "alpha", "version": "0.1.0"})
        );
        assert_eq!(init["authMethods"], json!([]));
        assert_eq!(init["agentCapabilities"]["loadSession"], false);
        assert_eq!(init["agentCapabilities"]["sessionCapabilities"], json!({}));
    });
}

#[test]
fn caps_flag_replaces_capabilities() {
    with_timeout(TEST_LIMIT, || {
        let caps = r#"{"loadSession":true,"sessionCapabilities":{"close":{}}}"#;
        let mut fx = Fixture::spawn(&["--caps", caps]);
        let init = fx.call_ok("initialize", json!({"protocolVersion": 1}));
        assert_eq!(
            init["agentCapabilities"],
            serde_json::from_str::<Value>(caps).unwrap()
        );
        let sid = new_session(&mut fx)["sessionId"].clone();
        assert_eq!(
            fx.call_ok("session/close", json!({"sessionId": sid})),
            json!({})
        );
        let after = fx.call("session/close", json!({"sessionId": sid}));
        assert_eq!(after["error"]["code"], -32002);
    });
}

#[test]
fn session_close_needs_the_capability() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let response = fx.call("session/close", json!({"sessionId": sid}));
        assert_eq!(response["error"]["code"], -32601);
        assert_eq!(response["error"]["data"], "session/close");
    });
}

#[test]
fn session_ids_count_per_process() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--name", "beta"]);
        assert_eq!(new_session(&mut fx)["sessionId"], "beta-sess-1");
        assert_eq!(new_session(&mut fx)["sessionId"], "beta-sess-2");
        let mut fx = Fixture::spawn(&["--session-prefix", "S"]);
        assert_eq!(new_session(&mut fx)["sessionId"], "S1");
    });
}

#[test]
fn config_style_advertises_one_select() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--models", "opus,sonnet", "--name", "claude"]);
        let new = new_session(&mut fx);
        assert!(new.get("models").is_none());
        let options = new["configOptions"].as_array().unwrap();
        assert_eq!(options.len(), 1);
        let model = &options[0];
        assert_eq!(model["id"], "model");
        assert_eq!(model["category"], "model");
        assert_eq!(model["type"], "select");
        assert_eq!(model["currentValue"], "opus");
        assert_eq!(model["options"][1]["value"], "sonnet");
        assert_eq!(model["options"][1]["name"], "Sonnet");
        assert_eq!(model["options"][1]["description"], "claude model sonnet");
    });
}

#[test]
fn legacy_style_advertises_only_the_models_block() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--model-style", "legacy", "--models", "a,b"]);
        let new = new_session(&mut fx);
        assert!(new.get("configOptions").is_none());
        assert_eq!(new["models"]["currentModelId"], "a");
        assert_eq!(
            new["models"]["availableModels"][1],
            json!({
                "modelId": "b", "name": "B", "description": "fixture model b"
            })
        );
    });
}

#[test]
fn both_grouped_and_none_styles() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--model-style", "both"]);
        let new = new_session(&mut fx);
        assert_eq!(new["configOptions"][0]["id"], "model");
        assert_eq!(new["models"]["currentModelId"], "small");

        let mut fx = Fixture::spawn(&["--model-style", "grouped", "--models", "a,b,c,d"]);
        let new = new_session(&mut fx);
        let groups = &new["configOptions"][0]["options"];
        assert_eq!(groups[0]["group"], "fast");
        assert_eq!(groups[0]["name"], "Fast");
        assert_eq!(groups[0]["options"][1]["value"], "b");
        assert_eq!(groups[1]["group"], "smart");
        assert_eq!(groups[1]["options"][0]["value"], "c");

        let mut fx = Fixture::spawn(&["--model-style", "none"]);
        let new = new_session(&mut fx);
        assert!(new.get("configOptions").is_none());
        assert!(new.get("models").is_none());
    });
}

#[test]
fn mode_option_comes_first_and_can_change() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--mode-option", "--model-option-id", "llm"]);
        let new = new_session(&mut fx);
        let sid = new["sessionId"].clone();
        assert_eq!(new["configOptions"][0]["id"], "mode");
        assert_eq!(new["configOptions"][0]["currentValue"], "ask");
        assert_eq!(new["configOptions"][1]["id"], "llm");
        let set = fx.call_ok(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "code"}),
        );
        assert_eq!(set["configOptions"][0]["currentValue"], "code");
        assert_eq!(set["configOptions"].as_array().unwrap().len(), 2);
        let bad = fx.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "mode", "value": "yolo"}),
        );
        assert_eq!(bad["error"]["code"], -32602);
        // The model option is looked up by its custom id.
        let bad = fx.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "large"}),
        );
        assert_eq!(bad["error"]["code"], -32602);
        let set = fx.call_ok(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "llm", "value": "large"}),
        );
        assert_eq!(set["configOptions"][1]["currentValue"], "large");
    });
}

#[test]
fn config_style_accepts_only_set_config_option() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--name", "n"]);
        let sid = fx.start_session();
        let set = fx.call_ok(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "large"}),
        );
        assert_eq!(set["configOptions"][0]["currentValue"], "large");
        let (updates, _) = fx.prompt(&sid, "hi");
        assert_eq!(common::chunk_texts(&updates), ["n/large: hi"]);

        let legacy = fx.call(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "small"}),
        );
        assert_eq!(legacy["error"]["code"], -32601);
        assert_eq!(legacy["error"]["message"], "Method not found");
        assert_eq!(legacy["error"]["data"], "session/set_model");

        let unknown = fx.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "huge"}),
        );
        assert_eq!(unknown["error"]["code"], -32602);
        assert_eq!(unknown["error"]["message"], "unknown model huge");
    });
}

#[test]
fn legacy_style_accepts_only_set_model() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--model-style", "legacy"]);
        let sid = fx.start_session();
        let set = fx.call_ok(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "large"}),
        );
        assert_eq!(set, json!({}));
        let (updates, _) = fx.prompt(&sid, "which");
        assert_eq!(common::chunk_texts(&updates), ["fixture/large: which"]);
        let config = fx.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "small"}),
        );
        assert_eq!(config["error"]["code"], -32601);
        assert_eq!(config["error"]["data"], "session/set_config_option");
        let unknown = fx.call(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "x"}),
        );
        assert_eq!(unknown["error"]["message"], "unknown model x");
    });
}

#[test]
fn set_model_method_overrides_the_style() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--model-style", "both", "--set-model-method", "legacy"]);
        let sid = fx.start_session();
        let config = fx.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "large"}),
        );
        assert_eq!(config["error"]["code"], -32601);
        fx.call_ok(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "large"}),
        );

        let mut fx = Fixture::spawn(&["--model-style", "both"]);
        let sid = fx.start_session();
        fx.call_ok(
            "session/set_model",
            json!({"sessionId": sid, "modelId": "large"}),
        );
        fx.call_ok(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "small"}),
        );
    });
}

#[test]
fn auth_required_flow() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--auth-required"]);
        let init = fx.call_ok("initialize", json!({"protocolVersion": 1}));
        assert_eq!(
            init["authMethods"],
            json!([{"id": "login", "name": "Log in", "description": "fixture login"}])
        );
        let denied = fx.call("session/new", json!({"cwd": "/tmp", "mcpServers": []}));
        assert_eq!(
            denied["error"],
            json!({"code": -32000, "message": "Authentication required"})
        );
        let wrong = fx.call("authenticate", json!({"methodId": "token"}));
        assert_eq!(wrong["error"]["code"], -32602);
        assert_eq!(
            fx.call_ok("authenticate", json!({"methodId": "login"})),
            json!({})
        );
        assert_eq!(new_session(&mut fx)["sessionId"], "fixture-sess-1");
    });
}

#[test]
fn fail_initialize_answers_an_error() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--fail-initialize"]);
        let response = fx.call("initialize", json!({"protocolVersion": 1}));
        assert_eq!(
            response["error"],
            json!({"code": -32603, "message": "fixture initialize failure"})
        );
    });
}

#[test]
fn unknown_methods_and_notifications() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        fx.notify("whatever/happened", json!({}));
        let response = fx.call("no/such", json!({}));
        assert_eq!(
            response["error"],
            json!({"code": -32601, "message": "Method not found", "data": "no/such"})
        );
        let echo = fx.call_ok("_fixture/echo", json!({"a": [1, "b"], "c": null}));
        assert_eq!(echo, json!({"a": [1, "b"], "c": null}));
    });
}

#[test]
fn unknown_session_is_reported() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        fx.start_session();
        let response = fx.call(
            "session/prompt",
            json!({"sessionId": "nope", "prompt": [{"type": "text", "text": "x"}]}),
        );
        assert_eq!(
            response["error"],
            json!({"code": -32002, "message": "unknown session nope"})
        );
        let response = fx.call(
            "session/set_model",
            json!({"sessionId": "nope", "modelId": "small"}),
        );
        assert_eq!(response["error"]["code"], -32601);
        let response = fx.call(
            "session/set_config_option",
            json!({"sessionId": "nope", "configId": "model", "value": "small"}),
        );
        assert_eq!(response["error"]["code"], -32002);
    });
}

#[test]
fn ids_are_echoed_exactly() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let cases = [
            r#""req-1""#,
            "42",
            "0",
            "-7",
            "1.50",
            r#""""#,
            "18446744073709551615",
        ];
        for id in cases {
            fx.send_raw(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"_fixture/echo","params":{{}}}}"#
            ));
            let line = fx.recv_raw();
            assert!(
                line.contains(&format!(r#""id":{id},"#)),
                "id {id} came back as {line}"
            );
        }
    });
}

#[test]
fn malformed_lines_are_skipped() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        fx.send_raw("this is not json");
        fx.send_raw(r#"{"unterminated"#);
        fx.send_raw("[1,2,3]");
        fx.send_raw(r#"{"jsonrpc":"2.0"}"#);
        fx.send_raw("");
        let init = fx.call_ok("initialize", json!({"protocolVersion": 1}));
        assert_eq!(init["protocolVersion"], 1);
        // The stderr reader is a thread of its own: give it a moment under load.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !fx.stderr().contains("this is not json") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(fx.stderr().contains("this is not json"));
    });
}

#[test]
fn hang_on_leaves_one_method_unanswered() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--hang-on", "session/new", "--hang-on", "authenticate"]);
        let hung = fx.send_request("session/new", json!({"cwd": "/tmp", "mcpServers": []}));
        let init = fx.send_request("initialize", json!({"protocolVersion": 1}));
        let first = fx.recv();
        assert_eq!(first["id"], init);
        assert_ne!(first["id"], hung);
        assert!(fx.try_recv_raw(Duration::from_millis(300)).is_none());
    });
}

#[test]
fn delay_slows_initialize_and_new() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--delay-ms", "150"]);
        let start = Instant::now();
        fx.start_session();
        assert!(start.elapsed() >= Duration::from_millis(300));
        let start = Instant::now();
        fx.call_ok("_fixture/echo", json!({}));
        assert!(start.elapsed() < Duration::from_millis(150));
    });
}
