//! The envelope scanner and the learned chunk shapes against serde (differential).
//!
//! Input: one line, or a teaching line, `\n`, and a line. Properties:
//! - `Frame::parse` (the scanner, serde for what it leaves) and `Frame::parse_with_serde`
//!   (serde alone) agree on every line: the same error, or the same kind, method, id span and
//!   `params.sessionId` span;
//! - whenever the scanner finds an envelope, serde accepts the line as JSON;
//! - a text chunk the scanner finds is what serde reads at `params.update.sessionUpdate` and
//!   `params.update.content.text`, with `content.type` `"text"`;
//! - after the teaching line, `Frame::parse_shaped` agrees with serde on the line in the same
//!   ways, and whenever the shapes read the line, it is UTF-8 and the scanner reads it the
//!   same.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use terok_executor::acp::frame::{Frame, FrameError};
use terok_executor::acp::scan;
use terok_executor::acp::shape::Shapes;

/// `fast` (a parse that may take a shortcut) agrees with serde alone on `data`.
fn agrees_with_serde(data: &[u8], fast: &Result<Frame, FrameError>) {
    let slow = Frame::parse_with_serde(Bytes::copy_from_slice(data));
    match (fast, &slow) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.kind(), b.kind());
            assert_eq!(a.method(), b.method());
            assert_eq!(a.id_span(), b.id_span());
            assert_eq!(a.session_id_span(), b.session_id_span());
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("shortcut {fast:?} but serde {slow:?}"),
    }
    // (A number out of `f64`'s range is grammatical JSON that `Value` cannot hold.)
    if let (Some((kind, text)), Ok(value)) = (
        fast.as_ref().ok().and_then(Frame::chunk_spans),
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
}

fuzz_target!(|data: &[u8]| {
    agrees_with_serde(data, &Frame::parse(Bytes::copy_from_slice(data)));
    if std::str::from_utf8(data).is_ok() && scan::scan(data).is_some() {
        assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "the scanner took a line serde refuses"
        );
    }

    // A shape taught by the first line, tried on the second.
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (teacher, line) = (&data[..newline], &data[newline + 1..]);
    let mut shapes = Shapes::default();
    let _ = Frame::parse_shaped(Bytes::copy_from_slice(teacher), &mut shapes);
    if let Some(env) = shapes.find(line) {
        assert!(std::str::from_utf8(line).is_ok(), "a shape took bytes that are not UTF-8");
        assert_eq!(Some(env), scan::scan(line), "a shape read the line otherwise");
    }
    agrees_with_serde(line, &Frame::parse_shaped(Bytes::copy_from_slice(line), &mut shapes));
});
