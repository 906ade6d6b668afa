//! The shapes of a stream's text chunks.
//!
//! Most of what an agent streams is `session/update` text chunks that differ from one another
//! only in their session id and their text: the rest of the line (the keys, their order, the
//! spacing, the chunk's kind) repeats byte for byte. Once the scanner has read one such line in
//! full, [`Shapes`] keeps its fixed parts; a later line that repeats them exactly, around a
//! session id and a text that are each one valid string literal, is the same JSON document with
//! two strings exchanged, so its envelope is the learned one moved by the strings' lengths.
//! Reading it costs two comparisons and a scan of the two strings instead of a scan of the line.
//!
//! The invariant is the scanner's (see [`super::scan`]): whenever [`Shapes::find`] returns an
//! envelope, serde accepts the line and finds the same parts. The differential fuzz target
//! (`fuzz/fuzz_targets/envelope.rs`) teaches shapes from one line and holds the next to serde.

use std::ops::Range;

use super::scan::{self, Envelope};

/// How many shapes a stream keeps: a message and a thought chunk, for a few sessions.
const KEPT: usize = 4;

/// The fixed parts of one text chunk line, and where its envelope sits.
struct Shape {
    /// From the line's start through the session id's opening quote.
    head: Box<[u8]>,
    /// From after the session id's closing quote through the text's opening quote.
    mid: Box<[u8]>,
    /// From after the text's closing quote to the end of the line.
    tail: Box<[u8]>,
    /// The learned line's session id and text literals.
    sid: Range<usize>,
    text: Range<usize>,
    /// The learned line's `jsonrpc`, `method` and `sessionUpdate` spans (in its fixed parts).
    jsonrpc: Range<usize>,
    method: Range<usize>,
    kind: Range<usize>,
}

/// The text chunk shapes one stream has shown, the most recently matched first.
#[derive(Default)]
pub struct Shapes(Vec<Shape>);

impl Shapes {
    /// The envelope of `line` when it repeats the fixed parts of a text chunk seen before, with
    /// a valid session id and text between them. `None` leaves the line to the scanner.
    pub fn find(&mut self, line: &[u8]) -> Option<Envelope> {
        let (at, env) = self
            .0
            .iter()
            .enumerate()
            .find_map(|(i, shape)| shape.read(line).map(|env| (i, env)))?;
        if at > 0 {
            let shape = self.0.remove(at);
            self.0.insert(0, shape);
        }
        Some(env)
    }

    /// Keeps the shape of `line` when the scanner found it to be a text chunk notification
    /// (`env` is what [`scan::scan`] returned for it).
    pub fn learn(&mut self, line: &[u8], env: &Envelope) {
        let (Some(jsonrpc), Some(method), Some(sid), Some((kind, text))) = (
            env.jsonrpc.clone(),
            env.method.clone(),
            env.session_id.clone(),
            env.chunk.clone(),
        ) else {
            return;
        };
        let notification = env.id.is_none() && env.result.is_none() && env.error.is_none();
        if !notification
            || &line[jsonrpc.clone()] != b"\"2.0\""
            || &line[method.clone()] != b"\"session/update\""
            // The fixed parts lie around the two strings: the id first, then the text.
            || sid.end > text.start
        {
            return;
        }
        let shape = Shape {
            head: line[..sid.start + 1].into(),
            mid: line[sid.end..text.start + 1].into(),
            tail: line[text.end..].into(),
            sid,
            text,
            jsonrpc,
            method,
            kind,
        };
        self.0.truncate(KEPT - 1);
        self.0.insert(0, shape);
    }
}

impl Shape {
    fn read(&self, line: &[u8]) -> Option<Envelope> {
        if !line.starts_with(&self.head) {
            return None;
        }
        let sid_start = self.head.len() - 1;
        let sid_end = scan::string_end(line, sid_start)?;
        let text_start = sid_end + self.mid.len() - 1;
        if line.get(sid_end..text_start + 1)? != &*self.mid {
            return None;
        }
        // Most of a text is plain ASCII, checked a block at a time; what follows the plain
        // run is scanned and checked for UTF-8 as any string.
        let plain = text_start + 1 + scan::plain_ascii_run(line.get(text_start + 1..)?);
        let text_end = scan::content_end(line, plain)?;
        if line[text_end..] != *self.tail {
            return None;
        }
        // The fixed parts were UTF-8 in the learned line (they end at quotes, so they are on
        // their own); the two strings are new.
        if !scan::utf8(&line[sid_start..sid_end]) || !scan::utf8(&line[plain..text_end]) {
            return None;
        }
        // A span of the fixed parts moves by how much longer the strings before it got.
        let moved = |span: &Range<usize>| {
            let to = |at: usize| {
                if at < self.sid.start {
                    at
                } else if at < self.text.start {
                    at - self.sid.end + sid_end
                } else {
                    at - self.text.end + text_end
                }
            };
            to(span.start)..to(span.end)
        };
        Some(Envelope {
            jsonrpc: Some(moved(&self.jsonrpc)),
            id: None,
            method: Some(moved(&self.method)),
            result: None,
            error: None,
            session_id: Some(sid_start..sid_end),
            chunk: Some((moved(&self.kind), text_start..text_end)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(sid: &str, kind: &str, text: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"session/update","params":{{"sessionId":{sid},"update":{{"sessionUpdate":"{kind}","content":{{"type":"text","text":{text}}}}}}}}}"#
        )
    }

    fn taught(line: &str) -> Shapes {
        let mut shapes = Shapes::default();
        shapes.learn(line.as_bytes(), &scan::scan(line.as_bytes()).unwrap());
        shapes
    }

    #[test]
    fn a_chunk_of_a_known_shape_is_read_as_the_scanner_reads_it() {
        let mut shapes = taught(&chunk(r#""s-1""#, "agent_message_chunk", r#""hello""#));
        for (sid, text) in [
            (r#""s-1""#, r#""hello""#),
            (r#""another-session""#, r#""""#),
            (r#""s""#, r#""a \"quoted\" word\n and é, \u00e9""#),
            (r#""\u0041""#, &format!("\"{}\"", "x".repeat(5000))),
            // Past a plain run of whole blocks: more than ASCII, and escapes.
            (
                r#""s""#,
                &format!("\"{}é\\n{}\"", "x".repeat(70), "y".repeat(50)),
            ),
            (r#""s""#, &format!("\"{}\"", "z".repeat(64))),
        ] {
            let line = chunk(sid, "agent_message_chunk", text);
            assert_eq!(
                shapes.find(line.as_bytes()),
                scan::scan(line.as_bytes()),
                "{line}"
            );
        }
    }

    #[test]
    fn anything_else_is_left_to_the_scanner() {
        let mut shapes = taught(&chunk(r#""s-1""#, "agent_message_chunk", r#""hello""#));
        let other_kind = chunk(r#""s-1""#, "agent_thought_chunk", r#""hi""#);
        let spaced = chunk(r#""s-1""#, "agent_message_chunk", r#""hi""#).replace(":{", ": {");
        for line in [
            other_kind.as_str(),
            spaced.as_str(),
            // Strings the scanner refuses, or that are not strings.
            &chunk(r#""s-1""#, "agent_message_chunk", r#""\ud800""#),
            &chunk(r#""s-1""#, "agent_message_chunk", "\"tab\there\""),
            &chunk(r#""s-1""#, "agent_message_chunk", r#""bad \q escape""#),
            &chunk("1", "agent_message_chunk", r#""x""#),
            &chunk(r#""s-1""#, "agent_message_chunk", r#""open"#),
            // Something after the end.
            &format!("{} x", chunk(r#""s""#, "agent_message_chunk", r#""x""#)),
        ] {
            assert_eq!(shapes.find(line.as_bytes()), None, "{line}");
        }
        // Bytes that are not UTF-8 in the text, and a raw control character, before and
        // after a plain run.
        for (len, bad) in [(2, 0xff), (2, 0x01), (100, 0xff), (100, 0x01), (64, 0x80)] {
            let text = format!("\"{}\"", "a".repeat(len));
            let mut line = chunk(r#""s""#, "agent_message_chunk", &text).into_bytes();
            let at = line.len() - 6;
            line[at] = bad;
            assert_eq!(shapes.find(&line), None, "{len} {bad}");
        }
    }

    #[test]
    fn only_text_chunk_notifications_teach_a_shape() {
        for line in [
            // A request, a response, another method, another version, the text first.
            r#"{"jsonrpc":"2.0","id":1,"method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}}}}"#,
            r#"{"jsonrpc":"2.0","method":"session/other","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}}}}"#,
            r#"{"jsonrpc":"1.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}}}}"#,
            r#"{"jsonrpc":"2.0","method":"session/update","params":{"update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"x"}},"sessionId":"s"}}"#,
        ] {
            let mut shapes = Shapes::default();
            if let Some(env) = scan::scan(line.as_bytes()) {
                shapes.learn(line.as_bytes(), &env);
            }
            assert!(shapes.0.is_empty(), "{line}");
        }
    }

    #[test]
    fn a_few_shapes_are_kept_and_the_oldest_goes() {
        let kinds = ["k0", "k1", "k2", "k3", "k4"];
        let mut shapes = Shapes::default();
        for kind in kinds {
            let line = chunk(r#""s""#, kind, r#""x""#);
            shapes.learn(line.as_bytes(), &scan::scan(line.as_bytes()).unwrap());
        }
        assert_eq!(shapes.0.len(), KEPT);
        let found = |shapes: &mut Shapes, kind| {
            shapes
                .find(chunk(r#""t""#, kind, r#""y""#).as_bytes())
                .is_some()
        };
        assert!(!found(&mut shapes, "k0"));
        assert!(kinds[1..].iter().all(|k| found(&mut shapes, k)));
    }
}
