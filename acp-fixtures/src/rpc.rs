//! Classification of the lines read from stdin into JSON-RPC messages.
//!
//! Request ids are kept as the JSON text that was received, so responses echo
//! them back exactly, whatever their type or spelling.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One message received from the client.
#[derive(Debug)]
pub enum Incoming {
    /// A request that expects an answer.
    Request {
        /// The id as raw JSON text.
        raw_id: String,
        /// The method name.
        method: String,
        /// The params (`null` when absent).
        params: Value,
    },
    /// A notification (no id).
    Notification {
        /// The method name.
        method: String,
        /// The params (`null` when absent).
        params: Value,
    },
    /// The client's answer to one of the agent's own requests.
    Response {
        /// The id as received.
        id: Value,
        /// The result, or the error object.
        outcome: Result<Value, Value>,
    },
}

/// Parses one line; the error explains why the line is not a message.
pub fn parse_line(line: &[u8]) -> Result<Incoming, String> {
    let map: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let params = map.get("params").cloned().unwrap_or(Value::Null);

    match (map.get("method"), map.get("id")) {
        (Some(Value::String(method)), Some(id)) => Ok(Incoming::Request {
            raw_id: raw_id(line, id),
            method: method.clone(),
            params,
        }),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification {
            method: method.clone(),
            params,
        }),
        (Some(_), _) => Err("method is not a string".into()),
        (None, Some(id)) => {
            let outcome = match (map.get("result"), map.get("error")) {
                (_, Some(error)) => Err(error.clone()),
                (Some(result), None) => Ok(result.clone()),
                (None, None) => return Err("response without result or error".into()),
            };
            Ok(Incoming::Response {
                id: id.clone(),
                outcome,
            })
        }
        (None, None) => Err("neither a method nor an id".into()),
    }
}

/// Returns the id's JSON text as received.
///
/// Strings, integers and null survive a round trip through `Value` exactly;
/// other numbers (fractions, exponents, huge values) are taken verbatim from
/// the line instead.
fn raw_id(line: &[u8], id: &Value) -> String {
    let exact = match id {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => true,
    };
    if !exact {
        let raw: Result<HashMap<String, &RawValue>, _> = serde_json::from_slice(line);
        if let Some(text) = raw
            .ok()
            .and_then(|m| m.get("id").map(|r| r.get().to_string()))
        {
            return text;
        }
    }
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let req = parse_line(br#"{"jsonrpc":"2.0","id":"a-1","method":"initialize","params":{}}"#);
        match req {
            Ok(Incoming::Request { raw_id, method, .. }) => {
                assert_eq!(raw_id, "\"a-1\"");
                assert_eq!(method, "initialize");
            }
            other => panic!("unexpected {other:?}"),
        }
        let note = parse_line(br#"{"jsonrpc":"2.0","method":"session/cancel","params":{}}"#);
        assert!(matches!(note, Ok(Incoming::Notification { .. })));
        let resp = parse_line(br#"{"jsonrpc":"2.0","id":0,"error":{"code":1}}"#);
        assert!(matches!(
            resp,
            Ok(Incoming::Response {
                outcome: Err(_),
                ..
            })
        ));
        assert!(parse_line(b"not json").is_err());
        assert!(parse_line(b"[1,2]").is_err());
        assert!(parse_line(br#"{"jsonrpc":"2.0"}"#).is_err());
    }

    #[test]
    fn keeps_odd_numeric_ids_verbatim() {
        let line = br#"{"jsonrpc":"2.0","id":1.50,"method":"x"}"#;
        match parse_line(line) {
            Ok(Incoming::Request { raw_id, .. }) => assert_eq!(raw_id, "1.50"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
