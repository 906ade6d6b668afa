//! `Frame::parse` and every rewrite the proxy makes with `write_spliced`.
//!
//! Input: `[selector, line...]`. Properties:
//! - parsing never panics; a parse error (-32700) is only reported for bytes that are not
//!   JSON, an invalid-request error only for JSON, and an id put on an error is a valid id;
//! - an accepted frame is a JSON-RPC 2.0 object whose kind, id, method and `params.sessionId`
//!   are exactly what a JSON parser reads from the same bytes;
//! - replacing the id and/or the session id gives valid JSON equal to the input with exactly
//!   those values replaced, every other byte unchanged, on one line, and it parses again as a
//!   frame of the same kind carrying the new values.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use terok_executor::acp::frame::{json_string_literal, Frame, FrameError, FrameKind};

/// Ids the proxy puts on frames: its own numeric ids and the client's ids of any type.
const IDS: [&[u8]; 8] = [
    b"0",
    b"7",
    b"18446744073709551615",
    b"\"a-uuid-like-string\"",
    b"\"\"",
    b"null",
    b"-1.5e3",
    b"\"\\u0000\\\"\"",
];

/// Session ids the proxy splices in (its own, or an agent's, encoded as a literal).
const SESSIONS: [&str; 4] = [
    "terok-0123abcd",
    "",
    "quote\" back\\ nl\n ctl\u{1} é ☃",
    "a:b/../c",
];

/// Whether `bytes` is JSON text: UTF-8 (which skipping a value does not check) and well formed.
fn is_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fn check_error(line: &[u8], error: &FrameError) {
    match error {
        // Numbers out of f64 range are grammatical but unusable, as for any serde_json peer.
        FrameError::Parse(_) => assert!(
            !is_json(line) || serde_json::from_slice::<Value>(line).is_err(),
            "parse error for valid JSON: {error}"
        ),
        FrameError::Batch => assert!(is_json(line), "batch error for invalid JSON: {error}"),
        FrameError::Invalid { id, .. } => {
            assert!(
                is_json(line),
                "invalid-request error for invalid JSON: {error}"
            );
            if let Some(id) = id {
                // The id goes back as the peer spelled it (even a number `Value` cannot hold).
                assert!(is_json(id), "the reply id is JSON");
                assert!(
                    matches!(id[0], b'"' | b'-' | b'0'..=b'9' | b'n'),
                    "reply id {id:?}"
                );
            }
        }
    }
    assert!(matches!(error.code(), -32700 | -32600));
}

/// The key serde_json (with `raw_value`) reserves for its `RawValue` token.
const RAW_MARKER: &[u8] = b"$serde_json::private::RawValue";

fuzz_target!(|data: &[u8]| {
    let [selector, line @ ..] = data else { return };
    let raw = Bytes::copy_from_slice(line);
    let frame = match Frame::parse(raw.clone()) {
        Ok(frame) => frame,
        Err(error) => return check_error(line, &error),
    };
    assert_eq!(frame.raw(), &raw);
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        // Grammatical JSON that `Value` refuses: a number out of f64 range, an escaped unpaired
        // surrogate (which other parsers accept), or serde_json's private raw-value marker key.
        // Forwarded as is; the proxy only reads such payloads through fallible `to_value`.
        Err(e)
            if e.to_string().contains("out of range")
                || e.to_string().contains("surrogate")
                || e.to_string().contains("hex escape")
                || line.windows(RAW_MARKER.len()).any(|w| w == RAW_MARKER) =>
        {
            return
        }
        Err(e) => panic!("accepted a line that is not JSON: {e}"),
    };
    let object = value.as_object().expect("a frame is an object");
    assert_eq!(object.get("jsonrpc"), Some(&Value::from("2.0")));
    let method = object.get("method");
    match frame.kind() {
        FrameKind::Request => assert!(method.is_some() && object.contains_key("id")),
        FrameKind::Notification => assert!(method.is_some() && !object.contains_key("id")),
        FrameKind::Response => assert!(
            method.is_none()
                && object.contains_key("id")
                && (object.contains_key("result") != object.contains_key("error"))
        ),
    }
    if let Some(m) = frame.method() {
        assert_eq!(method.and_then(Value::as_str), Some(m.as_str()));
    }
    let id = frame
        .id_raw()
        .map(|id| serde_json::from_slice::<Value>(&id).expect("the id is JSON"));
    assert_eq!(id.as_ref(), object.get("id"));
    if let Some(n) = frame.id_u64() {
        assert_eq!(object.get("id").and_then(Value::as_u64), Some(n));
    }
    let sid = value.pointer("/params/sessionId").and_then(Value::as_str);
    assert_eq!(
        frame.session_id().as_deref(),
        sid,
        "sessionId read differently"
    );

    // Splice: the id, the session id, both or neither, edits given in either order.
    let new_id = IDS[usize::from(selector & 7)];
    let new_sid = SESSIONS[usize::from((selector >> 3) & 3)];
    let sid_literal = json_string_literal(new_sid);
    let mut edits = Vec::new();
    let mut expected = value.clone();
    if selector & 0x20 != 0 {
        if let Some(span) = frame.id_span() {
            edits.push((span, new_id));
            expected["id"] = serde_json::from_slice(new_id).expect("test ids are JSON");
        }
    }
    if selector & 0x40 != 0 {
        if let Some(span) = frame.session_id_span() {
            edits.push((span, &sid_literal[..]));
            expected["params"]["sessionId"] = Value::from(new_sid);
        }
    }
    if selector & 0x80 != 0 {
        edits.reverse();
    }
    let mut by_hand = Vec::new();
    let mut sorted = edits.clone();
    sorted.sort_by_key(|(span, _)| span.start);
    let mut at = 0;
    for (span, replacement) in &sorted {
        assert!(span.start >= at, "overlapping spans");
        by_hand.extend_from_slice(&line[at..span.start]);
        by_hand.extend_from_slice(replacement);
        at = span.end;
    }
    by_hand.extend_from_slice(&line[at..]);
    by_hand.push(b'\n');

    let mut out = BytesMut::from(&b"prefix"[..]);
    frame.write_spliced(&mut edits, &mut out);
    assert_eq!(&out[..6], b"prefix", "earlier output is kept");
    let out = out.split_off(6);
    assert_eq!(&out[..], &by_hand[..], "only the spans change");
    if !line.contains(&b'\n') {
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            1,
            "one frame, one line"
        );
    }
    let body = &out[..out.len() - 1];
    let spliced: Value = serde_json::from_slice(body).expect("the rewrite is valid JSON");
    assert_eq!(spliced, expected, "exactly the spliced values change");
    let again = Frame::parse(Bytes::copy_from_slice(body)).expect("the rewrite parses again");
    assert_eq!(again.kind(), frame.kind());
    assert_eq!(again.method(), frame.method());
    assert_eq!(
        again.session_id().as_deref(),
        expected
            .pointer("/params/sessionId")
            .and_then(Value::as_str)
    );
});
