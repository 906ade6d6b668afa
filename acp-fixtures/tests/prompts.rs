//! Prompt scripts: streaming, cancellation and agent-to-client round trips.

mod common;

use common::{chunk_texts, stop_reason, with_timeout, Fixture, TEST_LIMIT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn default_reply_names_agent_and_model() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--name", "gamma", "--models", "m1,m2"]);
        let sid = fx.start_session();
        let id = fx.send_request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [
                {"type": "text", "text": "hello "},
                {"type": "image", "data": "", "mimeType": "image/png"},
                {"type": "text", "text": "world"},
            ]}),
        );
        let (updates, response) = fx.until_response(id);
        assert_eq!(chunk_texts(&updates), ["gamma/m1: hello world"]);
        assert_eq!(updates[0]["params"]["sessionId"], sid);
        assert_eq!(response["result"], json!({"stopReason": "end_turn"}));
    });
}

#[test]
fn stream_sends_all_updates_before_the_response() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        for (n, size) in [(1000, 64), (3, 4096), (0, 10), (700, 1)] {
            let (updates, response) = fx.prompt(&sid, &format!("stream {n} {size}"));
            assert_eq!(updates.len(), n, "stream {n} {size}");
            for text in chunk_texts(&updates) {
                assert_eq!(text.len(), size);
            }
            assert_eq!(stop_reason(&response), "end_turn");
        }
        let (updates, _) = fx.prompt(&sid, "stream lots");
        assert_eq!(chunk_texts(&updates), ["usage: stream N S"]);
    });
}

#[test]
fn usage_reports_context_cost_and_the_turns_tokens() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let (updates, response) = fx.prompt(&sid, "usage 120 30 0.25");
        assert_eq!(
            updates[0]["params"]["update"],
            json!({"sessionUpdate": "usage_update", "used": 150, "size": 200_000,
                   "cost": {"amount": 0.25, "currency": "USD"}})
        );
        assert_eq!(chunk_texts(&updates), ["usage reported"]);
        assert_eq!(
            response["result"]["usage"],
            json!({"totalTokens": 150, "inputTokens": 120, "outputTokens": 30})
        );
        let (updates, response) = fx.prompt(&sid, "usage lots");
        assert_eq!(chunk_texts(&updates), ["usage: usage IN OUT COST"]);
        assert!(response["result"].get("usage").is_none());
    });
}

#[test]
fn stream_output_survives_closed_stdin() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let id = fx.send_prompt(&sid, "stream 5000 64");
        fx.close_stdin();
        let (updates, response) = fx.until_response(id);
        assert_eq!(updates.len(), 5000);
        assert_eq!(stop_reason(&response), "end_turn");
        assert!(fx.wait().success());
    });
}

#[test]
fn cancel_ends_a_hanging_prompt() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let id = fx.send_prompt(&sid, "hang");
        assert!(fx.try_recv_raw(Duration::from_millis(200)).is_none());
        fx.notify("session/cancel", json!({"sessionId": sid}));
        let (updates, response) = fx.until_response(id);
        assert!(updates.is_empty());
        assert_eq!(stop_reason(&response), "cancelled");
        // The next prompt starts with a fresh cancel flag.
        let (_, response) = fx.prompt(&sid, "again");
        assert_eq!(stop_reason(&response), "end_turn");
    });
}

#[test]
fn cancel_interrupts_a_long_stream() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let total = 1_000_000_000u64;
        let id = fx.send_prompt(&sid, &format!("stream {total} 64"));
        let first = fx.recv();
        assert_eq!(first["method"], "session/update");
        fx.notify("session/cancel", json!({"sessionId": sid}));
        let mut count = 1u64;
        let response = loop {
            let line = fx.recv_raw();
            if line.contains(r#""method":"session/update""#) {
                count += 1;
                continue;
            }
            break serde_json::from_str::<Value>(&line).unwrap();
        };
        assert_eq!(response["id"], id);
        assert_eq!(stop_reason(&response), "cancelled");
        assert!(count < total);
    });
}

#[test]
fn cancel_interrupts_a_slow_prompt() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let id = fx.send_prompt(&sid, "slow 1000 10000");
        let first = fx.recv();
        assert_eq!(chunk_texts(&[first]), ["slow 1/1000"]);
        let start = Instant::now();
        fx.notify("session/cancel", json!({"sessionId": sid}));
        let (updates, response) = fx.until_response(id);
        assert!(updates.is_empty());
        assert_eq!(stop_reason(&response), "cancelled");
        assert!(start.elapsed() < Duration::from_secs(5));

        let (updates, response) = fx.prompt(&sid, "slow 3 1");
        assert_eq!(chunk_texts(&updates), ["slow 1/3", "slow 2/3", "slow 3/3"]);
        assert_eq!(stop_reason(&response), "end_turn");
    });
}

/// Sends a prompt, expects one agent-to-client request, answers it with
/// `answer` and returns the request, the chunk texts and the stop reason.
fn round_trip(
    fx: &mut Fixture,
    sid: &str,
    text: &str,
    answer: impl FnOnce(&Value) -> Value,
) -> (Value, Vec<String>, String) {
    let id = fx.send_prompt(sid, text);
    let request = fx.recv();
    assert!(
        request["id"].is_u64(),
        "agent request ids are numbers: {request}"
    );
    fx.send(&answer(&request));
    let (updates, response) = fx.until_response(id);
    (
        request,
        chunk_texts(&updates),
        stop_reason(&response).to_string(),
    )
}

fn result(request: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
}

#[test]
fn permission_round_trip() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let (request, texts, stop) = round_trip(&mut fx, &sid, "permission", |r| {
            result(
                r,
                json!({"outcome": {"outcome": "selected", "optionId": "allow"}}),
            )
        });
        assert_eq!(request["method"], "session/request_permission");
        assert_eq!(request["id"], 0);
        assert_eq!(request["params"]["sessionId"], sid);
        assert_eq!(request["params"]["toolCall"]["toolCallId"], "call-1");
        assert_eq!(request["params"]["toolCall"]["title"], "fixture tool");
        assert_eq!(
            request["params"]["options"][0],
            json!({"optionId": "allow", "name": "Allow", "kind": "allow_once"})
        );
        assert_eq!(request["params"]["options"][1]["kind"], "reject_once");
        assert_eq!(texts, ["permission: allow"]);
        assert_eq!(stop, "end_turn");

        let (request, texts, _) = round_trip(&mut fx, &sid, "permission", |r| {
            result(r, json!({"outcome": {"outcome": "cancelled"}}))
        });
        assert_eq!(request["id"], 1);
        assert_eq!(texts, ["permission: cancelled"]);
    });
}

#[test]
fn permission_cancelled_while_waiting() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        let id = fx.send_prompt(&sid, "permission");
        let request = fx.recv();
        fx.notify("session/cancel", json!({"sessionId": sid}));
        fx.reply(&request["id"], json!({"outcome": {"outcome": "cancelled"}}));
        let (updates, response) = fx.until_response(id);
        assert_eq!(chunk_texts(&updates), ["permission: cancelled"]);
        assert_eq!(stop_reason(&response), "cancelled");
    });
}

#[test]
fn file_system_and_terminal_round_trips() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();

        let (request, texts, _) = round_trip(&mut fx, &sid, "read /etc/motd", |r| {
            result(r, json!({"content": "hello file"}))
        });
        assert_eq!(request["method"], "fs/read_text_file");
        assert_eq!(
            request["params"],
            json!({"sessionId": sid, "path": "/etc/motd"})
        );
        assert_eq!(texts, ["read: hello file"]);

        let (_, texts, _) = round_trip(
            &mut fx,
            &sid,
            "read /missing",
            |r| json!({"jsonrpc": "2.0", "id": r["id"], "error": {"code": -32603, "message": "no such file"}}),
        );
        assert_eq!(texts, ["read error: no such file"]);

        let (request, texts, _) = round_trip(&mut fx, &sid, "write /tmp/a.txt two words", |r| {
            result(r, json!({}))
        });
        assert_eq!(request["method"], "fs/write_text_file");
        assert_eq!(request["params"]["content"], "two words");
        assert_eq!(texts, ["wrote /tmp/a.txt"]);

        let (request, texts, _) = round_trip(&mut fx, &sid, "terminal ls -l /", |r| {
            result(r, json!({"terminalId": "term-9"}))
        });
        assert_eq!(request["method"], "terminal/create");
        assert_eq!(
            request["params"],
            json!({
                "sessionId": sid, "command": "ls", "args": ["-l", "/"], "cwd": "/work/dir"
            })
        );
        assert_eq!(texts, ["terminal: term-9"]);
        assert_eq!(request["id"], 3);
    });
}

#[test]
fn garbage_config_and_cwd_scripts() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--mode-option"]);
        let sid = fx.start_session();

        let id = fx.send_prompt(&sid, "garbage");
        let raw: Vec<String> = (0..3).map(|_| fx.recv_raw()).collect();
        assert_eq!(raw, ["not json", "{\"unterminated", "[1,2]"]);
        let (updates, _) = fx.until_response(id);
        assert_eq!(chunk_texts(&updates), ["fixture/small: garbage"]);

        let (updates, response) = fx.prompt(&sid, "config");
        let update = &updates[0]["params"]["update"];
        assert_eq!(update["sessionUpdate"], "config_option_update");
        assert_eq!(update["configOptions"][0]["id"], "mode");
        assert_eq!(update["configOptions"][1]["id"], "model");
        assert_eq!(stop_reason(&response), "end_turn");

        let (updates, _) = fx.prompt(&sid, "cwd");
        assert_eq!(chunk_texts(&updates), ["cwd: /work/dir"]);
    });
}

#[test]
fn prompts_in_two_sessions_run_concurrently() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let first = fx.start_session();
        let second = fx.call_ok("session/new", json!({"cwd": "/b", "mcpServers": []}))["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        let hung = fx.send_prompt(&first, "hang");
        let (updates, _) = fx.prompt(&second, "cwd");
        assert_eq!(chunk_texts(&updates), ["cwd: /b"]);
        fx.notify("session/cancel", json!({"sessionId": first}));
        let (_, response) = fx.until_response(hung);
        assert_eq!(stop_reason(&response), "cancelled");
    });
}
