//! Building the frames the proxy originates: responses, errors, requests and notifications.
//!
//! Ids are raw JSON bytes (`"abc"`, `7`, `null`) so an answer carries the peer's id exactly as
//! it was sent. Every builder returns one complete line including its `\n`.

use bytes::{BufMut, BytesMut};
use serde_json::Value;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const REQUEST_CANCELLED: i64 = -32800;
pub const AUTH_REQUIRED: i64 = -32000;
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// A JSON-RPC error object the proxy sends.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn to_value(&self) -> Value {
        let mut obj = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            obj["data"] = data.clone();
        }
        obj
    }
}

fn head(out: &mut BytesMut) {
    out.put_slice(b"{\"jsonrpc\":\"2.0\",");
}

fn put_json(out: &mut BytesMut, value: &Value) {
    // Serialising a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), value);
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`
/// Copies into `request` (a request the proxy builds in place of a client's) every field of
/// the client's `params` it does not set itself, so `_meta` and fields newer than the proxy
/// reach the agent. Fields named in `rewritten` are the proxy's to decide and are not copied.
pub fn carry_fields(params: &Value, rewritten: &[&str], request: &mut Value) {
    let (Some(from), Some(into)) = (params.as_object(), request.as_object_mut()) else {
        return;
    };
    for (key, value) in from {
        if !rewritten.contains(&key.as_str()) && !into.contains_key(key) {
            into.insert(key.clone(), value.clone());
        }
    }
}

pub fn write_result(out: &mut BytesMut, id: &[u8], result: &Value) {
    head(out);
    out.put_slice(b"\"id\":");
    out.put_slice(id);
    out.put_slice(b",\"result\":");
    put_json(out, result);
    out.put_slice(b"}\n");
}

/// `{"jsonrpc":"2.0","id":<id or null>,"error":{...}}`
pub fn write_error(out: &mut BytesMut, id: Option<&[u8]>, error: &RpcError) {
    head(out);
    out.put_slice(b"\"id\":");
    out.put_slice(id.unwrap_or(b"null"));
    out.put_slice(b",\"error\":");
    put_json(out, &error.to_value());
    out.put_slice(b"}\n");
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}`
pub fn write_request(out: &mut BytesMut, id: &[u8], method: &str, params: &Value) {
    head(out);
    out.put_slice(b"\"id\":");
    out.put_slice(id);
    out.put_slice(b",\"method\":");
    put_json(out, &Value::String(method.to_owned()));
    out.put_slice(b",\"params\":");
    put_json(out, params);
    out.put_slice(b"}\n");
}

/// `{"jsonrpc":"2.0","method":<method>,"params":<params>}`
pub fn write_notification(out: &mut BytesMut, method: &str, params: &Value) {
    head(out);
    out.put_slice(b"\"method\":");
    put_json(out, &Value::String(method.to_owned()));
    out.put_slice(b",\"params\":");
    put_json(out, params);
    out.put_slice(b"}\n");
}

/// A proxy-minted numeric id, formatted without allocating.
pub struct NumericId {
    digits: [u8; 20],
    len: usize,
}

impl NumericId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// Formats a proxy-minted numeric id.
pub fn numeric_id(n: u64) -> NumericId {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes();
    let mut digits = [0u8; 20];
    digits[..text.len()].copy_from_slice(text);
    NumericId {
        digits,
        len: text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(out: &BytesMut) -> Value {
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(out).unwrap()
    }

    #[test]
    fn carried_fields_fill_in_but_never_override() {
        let params = json!({"sessionId": "terok-1", "value": "claude:opus", "_meta": {"k": 1}, "future": [1]});
        let mut request = json!({"sessionId": "agent-1", "value": "opus"});
        carry_fields(&params, &["configId"], &mut request);
        assert_eq!(
            request,
            json!({"sessionId": "agent-1", "value": "opus", "_meta": {"k": 1}, "future": [1]})
        );
        let mut request = json!({"modelId": "opus"});
        carry_fields(&params, &["value", "sessionId"], &mut request);
        assert_eq!(
            request,
            json!({"modelId": "opus", "_meta": {"k": 1}, "future": [1]})
        );
    }

    #[test]
    fn result_keeps_string_id() {
        let mut out = BytesMut::new();
        write_result(&mut out, b"\"uuid-1\"", &json!({"a":1}));
        assert_eq!(
            text(&out),
            json!({"jsonrpc":"2.0","id":"uuid-1","result":{"a":1}})
        );
    }

    #[test]
    fn error_without_id_is_null() {
        let mut out = BytesMut::new();
        write_error(
            &mut out,
            None,
            &RpcError::new(PARSE_ERROR, "parse error").with_data(json!("x")),
        );
        assert_eq!(
            text(&out),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error","data":"x"}})
        );
    }

    #[test]
    fn request_and_notification_shapes() {
        let mut out = BytesMut::new();
        write_request(&mut out, b"5", "session/new", &json!({"cwd":"/w"}));
        assert_eq!(
            text(&out),
            json!({"jsonrpc":"2.0","id":5,"method":"session/new","params":{"cwd":"/w"}})
        );
        let mut out = BytesMut::new();
        write_notification(&mut out, "session/cancel", &json!({"sessionId":"s"}));
        assert_eq!(
            text(&out),
            json!({"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"s"}})
        );
    }
}
