//! The agent's stdout: whole NDJSON frames, written under one lock.
//!
//! Every writer (the dispatcher and each prompt thread) goes through
//! [`Output`], which keeps lines whole and flushes after each message or
//! batch. The frame builders return strings, so a hot path can serialise a
//! frame once and write it many times.

use serde_json::{json, Value};
use std::io::{self, BufWriter, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A JSON-RPC error object.
#[derive(Clone, Debug)]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// The human-readable message.
    pub message: String,
    /// Optional extra data.
    pub data: Option<Value>,
}

impl RpcError {
    /// Builds an error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The standard "Method not found" error naming the method.
    pub fn method_not_found(method: &str) -> Self {
        Self {
            code: -32601,
            message: "Method not found".into(),
            data: Some(Value::String(method.into())),
        }
    }

    /// An "Invalid params" error with a specific message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }

    /// Converts the error to its JSON object form.
    pub fn to_value(&self) -> Value {
        let mut obj = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            obj["data"] = data.clone();
        }
        obj
    }
}

/// Builds a success response; `raw_id` is the id's JSON text as received.
pub fn response_frame(raw_id: &str, result: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{raw_id},"result":{result}}}"#)
}

/// Builds an error response; `raw_id` is the id's JSON text as received.
pub fn error_frame(raw_id: &str, error: &RpcError) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{raw_id},"error":{}}}"#,
        error.to_value()
    )
}

/// Builds a notification frame.
pub fn notification_frame(method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// Builds an agent-to-client request frame with a numeric id.
pub fn request_frame(id: u64, method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// Builds a `session/update` notification carrying `update`.
pub fn session_update_frame(session_id: &str, update: Value) -> String {
    notification_frame(
        "session/update",
        &json!({"sessionId": session_id, "update": update}),
    )
}

/// Builds a `session/update` with one text `agent_message_chunk`.
pub fn chunk_frame(session_id: &str, text: &str) -> String {
    session_update_frame(
        session_id,
        json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}),
    )
}

/// The shared stdout writer.
pub struct Output {
    writer: Mutex<BufWriter<Stdout>>,
    broken: AtomicBool,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    /// Wraps the process's stdout.
    pub fn new() -> Self {
        Self {
            writer: Mutex::new(BufWriter::with_capacity(1 << 16, io::stdout())),
            broken: AtomicBool::new(false),
        }
    }

    /// Tells whether a write to stdout has failed (the reader went away).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Writes one frame followed by a newline and flushes.
    pub fn send(&self, frame: &str) -> bool {
        self.with_writer(|w| {
            w.write_all(frame.as_bytes())?;
            w.write_all(b"\n")?;
            w.flush()
        })
    }

    /// Writes several frames, each followed by a newline, then flushes once.
    pub fn send_all(&self, frames: &[String]) -> bool {
        self.with_writer(|w| {
            for frame in frames {
                w.write_all(frame.as_bytes())?;
                w.write_all(b"\n")?;
            }
            w.flush()
        })
    }

    /// Writes pre-built bytes (whole lines) and flushes.
    pub fn send_raw(&self, bytes: &[u8]) -> bool {
        self.with_writer(|w| {
            w.write_all(bytes)?;
            w.flush()
        })
    }

    /// Flushes whatever is buffered.
    pub fn flush(&self) -> bool {
        self.with_writer(|w| w.flush())
    }

    /// Runs `op` on the locked writer and records a failure.
    fn with_writer(&self, op: impl FnOnce(&mut BufWriter<Stdout>) -> io::Result<()>) -> bool {
        if self.is_broken() {
            return false;
        }
        // A poisoned lock only means another thread panicked mid-write; the
        // buffer itself is still usable.
        let mut guard = match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match op(&mut guard) {
            Ok(()) => true,
            Err(err) => {
                if !self.broken.swap(true, Ordering::Relaxed) {
                    eprintln!("acp-fixture-agent: stdout write failed: {err}");
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_raw_ids() {
        let frame = response_frame("\"abc\"", &json!({}));
        assert_eq!(frame, r#"{"jsonrpc":"2.0","id":"abc","result":{}}"#);
        let frame = error_frame("1e400", &RpcError::method_not_found("x/y"));
        assert!(frame.starts_with(r#"{"jsonrpc":"2.0","id":1e400,"error":"#));
        let parsed: Value =
            serde_json::from_str(&error_frame("7", &RpcError::new(-1, "m"))).unwrap();
        assert_eq!(parsed["error"]["code"], -1);
    }
}
