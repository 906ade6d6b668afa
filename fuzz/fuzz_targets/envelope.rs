//! The envelope scanner against serde (differential).
//!
//! Input: one line. Properties:
//! - `Frame::parse` (the scanner, serde for what it leaves) and `Frame::parse_with_serde`
//!   (serde alone) agree on every line: the same error, or the same kind, method, id span and
//!   `params.sessionId` span;
//! - whenever the scanner finds an envelope, serde accepts the line as JSON;
//! - a text chunk the scanner finds is what serde reads at `params.update.sessionUpdate` and
//!   `params.update.content.text`, with `content.type` `"text"`.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use terok_executor::acp::frame::Frame;
use terok_executor::acp::scan;

fuzz_target!(|data: &[u8]| {
    let raw = Bytes::copy_from_slice(data);
    let fast = Frame::parse(raw.clone());
    let slow = Frame::parse_with_serde(raw);
    match (&fast, &slow) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.kind(), b.kind());
            assert_eq!(a.method(), b.method());
            assert_eq!(a.id_span(), b.id_span());
            assert_eq!(a.session_id_span(), b.session_id_span());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("scanner {fast:?} but serde {slow:?}"),
    }
    if std::str::from_utf8(data).is_err() {
        return;
    }
    if scan::scan(data).is_some() {
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "the scanner took a line serde refuses"
        );
    }
    // (A number out of `f64`'s range is grammatical JSON that `Value` cannot hold.)
    if let (Some((kind, text)), Ok(value)) = (
        scan::scan(data).and_then(|e| e.chunk),
        serde_json::from_slice::<Value>(data),
    ) {
        let update = &value["params"]["update"];
        let literal = |span: std::ops::Range<usize>| -> Value {
            serde_json::from_slice(&data[span]).expect("a literal")
        };
        assert_eq!(update["sessionUpdate"], literal(kind));
        assert_eq!(update["content"]["text"], literal(text));
        assert_eq!(update["content"]["type"], "text");
    }
});
