//! What a trace must not hold: secrets (always redacted) and people's text (elided unless
//! the trace is asked to keep it).

use serde_json::{json, Value};

/// Stands in for a secret.
pub const REDACTED: &str = "[redacted]";

/// Whether a key names a secret: tokens, keys, passwords, credentials.
fn secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "privatekey",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key.ends_with("key")
        || key.ends_with("keys")
}

/// Keys whose string values are what people wrote or read: prompts, messages, files.
const TEXT_KEYS: [&str; 8] = [
    "text", "content", "data", "blob", "output", "oldText", "newText", "append",
];
/// Keys whose whole value is tool input or output.
const OPAQUE_KEYS: [&str; 3] = ["rawInput", "rawOutput", "systemPrompt"];

/// Redacts secrets and (unless `content`) elides text in a frame, in place.
pub fn scrub(frame: &mut Value, method: Option<&str>, content: bool) {
    // Whatever an `authenticate` carries besides the method's name is a credential.
    if method == Some("authenticate") {
        if let Some(Value::Object(params)) = frame.get_mut("params") {
            for (key, value) in params.iter_mut() {
                if key != "methodId" {
                    *value = json!(REDACTED);
                }
            }
        }
    }
    walk(frame, None, content);
}

fn walk(value: &mut Value, key: Option<&str>, content: bool) {
    match value {
        Value::Object(map) => {
            // `{"name": ..., "value": ...}` pairs of an MCP server's env or headers.
            let pair = key.is_some_and(|k| k == "env" || k == "headers");
            for (k, v) in map.iter_mut() {
                if v.is_null() {
                    continue;
                }
                if secret_key(k) || (pair && k == "value") {
                    *v = json!(REDACTED);
                } else if !content && OPAQUE_KEYS.contains(&k.as_str()) {
                    *v = json!(elided(v.to_string().len()));
                } else if !content && TEXT_KEYS.contains(&k.as_str()) && v.is_string() {
                    let len = v.as_str().map_or(0, str::len);
                    *v = json!(elided(len));
                } else {
                    walk(v, Some(k), content);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, key, content);
            }
        }
        _ => {}
    }
}

pub(super) fn elided(len: usize) -> String {
    format!("[{len} bytes elided]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_text_elided() {
        let mut frame = json!({"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {
            "cwd": "/work",
            "mcpServers": [{"name": "gh", "command": "gh-mcp", "args": [],
                "env": [{"name": "GITHUB_TOKEN", "value": "ghp_secret"}],
                "headers": [{"name": "X-Custom", "value": "hdr-secret"}]}],
            "_meta": {"apiKey": "sk-1", "systemPrompt": {"append": "be brief"}},
        }});
        scrub(&mut frame, Some("session/new"), false);
        let text = frame.to_string();
        for secret in ["ghp_secret", "hdr-secret", "sk-1", "be brief"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(frame["params"]["cwd"], "/work");
        assert_eq!(
            frame["params"]["mcpServers"][0]["env"][0]["name"],
            "GITHUB_TOKEN"
        );
        assert_eq!(
            frame["params"]["mcpServers"][0]["env"][0]["value"],
            REDACTED
        );
        assert_eq!(frame["params"]["_meta"]["apiKey"], REDACTED);

        let mut prompt = json!({"method": "session/prompt", "params": {"sessionId": "s",
            "prompt": [{"type": "text", "text": "my words"},
                       {"type": "resource", "resource": {"uri": "file:///a", "text": "file body"}}]}});
        scrub(&mut prompt, Some("session/prompt"), false);
        assert_eq!(prompt["params"]["prompt"][0]["text"], "[8 bytes elided]");
        assert_eq!(
            prompt["params"]["prompt"][1]["resource"]["uri"],
            "file:///a"
        );
        assert!(!prompt.to_string().contains("file body"));
    }

    #[test]
    fn content_is_kept_when_asked_but_secrets_never() {
        let mut frame = json!({"method": "authenticate", "params": {"methodId": "api-key",
            "_meta": {"api-key": {"apiKey": "sk-2"}}}});
        scrub(&mut frame, Some("authenticate"), true);
        assert_eq!(frame["params"]["methodId"], "api-key");
        assert_eq!(frame["params"]["_meta"], REDACTED);
        let mut update = json!({"params": {"update": {"content": {"type": "text", "text": "hi"},
            "password": "p"}}});
        scrub(&mut update, Some("session/update"), true);
        assert_eq!(update["params"]["update"]["content"]["text"], "hi");
        assert_eq!(update["params"]["update"]["password"], REDACTED);
    }

    #[test]
    fn key_names_that_hold_secrets() {
        for key in [
            "apiKey",
            "api_key",
            "GITHUB_TOKEN",
            "accessToken",
            "client-secret",
            "Authorization",
            "password",
            "privateKey",
        ] {
            assert!(secret_key(key), "{key}");
        }
        for key in [
            "sessionId",
            "toolCallId",
            "mimeType",
            "name",
            "cwd",
            "modelId",
        ] {
            assert!(!secret_key(key), "{key}");
        }
    }
}
