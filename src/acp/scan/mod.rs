//! A hand-written scanner for the JSON-RPC envelope: the forwarding path's fast way to find
//! where `jsonrpc`, `id`, `method`, `result`, `error` and `params.sessionId` sit in a line,
//! while checking that the whole line is JSON, without building anything.
//!
//! It accelerates only the common case. Whenever a line is not plainly valid, or is valid in a
//! way whose reading needs care (an escaped key or method, a duplicated field, a `\u` escape of
//! a surrogate, nesting deeper than [`MAX_DEPTH`]), it returns `None` and the caller decides with
//! serde, which stays the arbiter of every error. The invariant, checked by the differential
//! fuzz target (`fuzz/fuzz_targets/envelope.rs`): whenever [`scan`] returns spans, serde accepts
//! the line and finds the same ones.
//!
//! The input is known to be UTF-8 ([`super::frame::Frame::parse`] checks it first).

use std::ops::Range;

mod content;

pub use content::{plain_ascii_run, special_at, utf8};

/// Nesting the scanner follows; deeper lines go to serde (whose own limit is 128).
pub const MAX_DEPTH: usize = 100;

/// A text chunk's `sessionUpdate` and `content.text` literals.
pub type Chunk = (Range<usize>, Range<usize>);

/// Where the envelope's parts sit; each span covers the whole JSON value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub jsonrpc: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    /// The method's string literal, quotes included (it has no escapes).
    pub method: Option<Range<usize>>,
    pub result: Option<Range<usize>>,
    pub error: Option<Range<usize>>,
    /// `params.sessionId` when it is a string.
    pub session_id: Option<Range<usize>>,
    /// For a text chunk (`params.update` with `content.type` `"text"`): the string literals
    /// of `params.update.sessionUpdate` and `params.update.content.text`, found in the same
    /// pass so that recording the update needs no second one.
    pub chunk: Option<Chunk>,
}

/// The envelope of `line`, or `None` when serde must decide.
pub fn scan(line: &[u8]) -> Option<Envelope> {
    let mut s = Scanner { b: line, at: 0 };
    s.ws();
    if s.peek()? != b'{' {
        return None;
    }
    let mut env = Envelope::default();
    let (mut method_null, mut params_seen) = (false, false);
    s.members(0, |s, key, escaped| {
        // An escaped key might spell a field's name: serde's to read.
        if escaped {
            return None;
        }
        let slot = match key {
            b"jsonrpc" => Some(&mut env.jsonrpc),
            b"id" => Some(&mut env.id),
            b"result" => Some(&mut env.result),
            b"error" => Some(&mut env.error),
            _ => None,
        };
        match (slot, key) {
            (Some(slot), _) => {
                if slot.is_some() {
                    return None;
                }
                *slot = Some(s.value(1)?);
            }
            (None, b"method") => {
                if env.method.is_some() || method_null {
                    return None;
                }
                match s.peek()? {
                    b'"' => {
                        let start = s.at;
                        if s.string()? {
                            return None;
                        }
                        env.method = Some(start..s.at);
                    }
                    b'n' => {
                        s.literal(b"null")?;
                        method_null = true;
                    }
                    _ => return None,
                }
            }
            (None, b"params") => {
                if params_seen {
                    return None;
                }
                params_seen = true;
                match s.peek()? {
                    b'{' => (env.session_id, env.chunk) = s.params()?,
                    // serde reads a number here as a number, and may find it out of range.
                    b'-' | b'0'..=b'9' => return None,
                    _ => {
                        s.value(1)?;
                    }
                }
            }
            (None, _) => {
                s.value(1)?;
            }
        }
        Some(())
    })?;
    s.ws();
    (s.at == line.len()).then_some(env)
}

/// One past the closing quote of the string literal whose opening quote is at `open`, when it
/// is a literal the scanner accepts (escapes valid, no raw control characters, no surrogate
/// escapes). The bytes are not checked for UTF-8.
pub fn string_end(line: &[u8], open: usize) -> Option<usize> {
    if *line.get(open)? != b'"' {
        return None;
    }
    content_end(line, open + 1)
}

/// [`string_end`] from inside the literal: `from` is past the opening quote and past content
/// already known to be plain.
pub fn content_end(line: &[u8], from: usize) -> Option<usize> {
    let mut s = Scanner { b: line, at: from };
    s.string_content()?;
    Some(s.at)
}

struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.at..self.at + word.len())? == word {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Skips a string literal (at its opening quote); returns whether it had escapes.
    fn string(&mut self) -> Option<bool> {
        self.at += 1;
        self.string_content()
    }

    /// Skips the rest of a string literal's content and its closing quote; returns whether
    /// that rest had escapes.
    fn string_content(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at += special_at(&self.b[self.at..])?;
            // JSON forbids raw control characters in strings.
            if self.b[self.at] < 0x20 {
                return None;
            }
            if self.b[self.at] == b'"' {
                self.at += 1;
                return Some(escaped);
            }
            escaped = true;
            self.at += 1;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.b.get(self.at..self.at + 4)?;
                    let mut code = 0u32;
                    for &h in hex {
                        code = code * 16 + (h as char).to_digit(16)?;
                    }
                    // Surrogates (paired or not) are serde's to judge.
                    if (0xD800..=0xDFFF).contains(&code) {
                        return None;
                    }
                    self.at += 4;
                }
                _ => return None,
            }
        }
    }

    /// Skips one value at nesting `depth`; its span.
    fn value(&mut self, depth: usize) -> Option<Range<usize>> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' => self.object(depth)?,
            b'[' => self.array(depth)?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        }
        Some(start..self.at)
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.members(depth, |s, _, _| s.value(depth + 1).map(drop))
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.at_least_one_digit()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Option<()> {
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        self.digits();
        Some(())
    }

    /// A key (at its quote): its raw bytes between the quotes, and whether it has escapes.
    fn key(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let escaped = self.string()?;
        let b: &'a [u8] = self.b;
        Some((&b[start..self.at - 1], escaped))
    }

    /// Walks an object (at its brace; an object at nesting `depth`) member by member: `each`
    /// gets the key's raw bytes, whether it had escapes, and the scanner at the value, which it
    /// must read.
    fn members(
        &mut self,
        depth: usize,
        mut each: impl FnMut(&mut Self, &'a [u8], bool) -> Option<()>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            let (key, escaped) = self.key()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            each(self, key, escaped)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The `params` object (at its brace): the span of `sessionId` when it is a string, and a
    /// text chunk's kind and text when `update` is one.
    fn params(&mut self) -> Option<(Option<Range<usize>>, Option<Chunk>)> {
        let (mut session_id, mut seen) = (None, false);
        let mut chunk: Option<Chunk> = None;
        // A second `update` leaves the chunk to serde: which one counts is not for the scanner
        // to guess.
        let mut updates = 0;
        self.members(1, |s, key, escaped| {
            // An escaped key might spell `sessionId`: serde's to read.
            if escaped {
                return None;
            }
            if key == b"update" {
                updates += 1;
                if s.peek()? == b'{' {
                    chunk = s.update(2)?;
                } else {
                    s.value(2)?;
                }
                return Some(());
            }
            let span = s.value(2)?;
            if key == b"sessionId" {
                if seen {
                    return None;
                }
                seen = true;
                session_id = (s.b[span.start] == b'"').then_some(span);
            }
            Some(())
        })?;
        Some((session_id, chunk.filter(|_| updates == 1)))
    }

    /// `params.update` (at its brace; an object at nesting `depth`): a text chunk's kind and
    /// text, when its keys are plain and `sessionUpdate` and `content` come once each.
    fn update(&mut self, depth: usize) -> Option<Option<Chunk>> {
        let (mut kind, mut kinds, mut text, mut contents, mut sure) = (None, 0, None, 0, true);
        self.members(depth, |s, key, escaped| {
            sure &= !escaped;
            match key {
                b"sessionUpdate" => {
                    kinds += 1;
                    let span = s.value(depth + 1)?;
                    kind = (s.b[span.start] == b'"').then_some(span);
                }
                b"content" if s.peek()? == b'{' => {
                    contents += 1;
                    text = s.text_content(depth + 1)?;
                }
                b"content" => {
                    contents += 1;
                    s.value(depth + 1)?;
                }
                _ => {
                    s.value(depth + 1)?;
                }
            }
            Some(())
        })?;
        Some(match (sure && kinds == 1 && contents == 1, kind, text) {
            (true, Some(kind), Some(text)) => Some((kind, text)),
            _ => None,
        })
    }

    /// `content` (at its brace; an object at nesting `depth`): the span of `text` when `type`
    /// is exactly `"text"`, its keys are plain and neither comes twice.
    fn text_content(&mut self, depth: usize) -> Option<Option<Range<usize>>> {
        let (mut is_text, mut types, mut text, mut texts, mut sure) = (false, 0, None, 0, true);
        self.members(depth, |s, key, escaped| {
            sure &= !escaped;
            let span = s.value(depth + 1)?;
            match key {
                b"type" => {
                    types += 1;
                    is_text = &s.b[span] == b"\"text\"";
                }
                b"text" => {
                    texts += 1;
                    text = (s.b[span.start] == b'"').then_some(span);
                }
                _ => {}
            }
            Some(())
        })?;
        Some(text.filter(|_| sure && is_text && types == 1 && texts == 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(line: &'a str, span: &Option<Range<usize>>) -> Option<&'a str> {
        span.clone().map(|s| &line[s])
    }

    #[test]
    fn a_literal_is_scanned_on_after_a_plain_run() {
        // The rest of a literal after a plain run is scanned as any string's.
        let line = br#""0123456789abcdef0123456789abcdef\"x" tail"#;
        assert_eq!(plain_ascii_run(&line[1..]), 32);
        assert_eq!(content_end(line, 33), Some(37));
        assert_eq!(string_end(line, 0), Some(37));
        assert_eq!(string_end(line, 1), None);
    }

    #[test]
    fn a_text_chunk_is_found_in_the_same_pass() {
        let chunk = |line: &str| {
            scan(line.as_bytes())
                .and_then(|e| e.chunk)
                .map(|(k, t)| (line[k].to_owned(), line[t].to_owned()))
        };
        let line = r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"content":{"text":"a\"b","type":"text","_meta":{}},"sessionUpdate":"agent_message_chunk"}}}"#;
        assert_eq!(
            chunk(line),
            Some(("\"agent_message_chunk\"".into(), r#""a\"b""#.into()))
        );
        for line in [
            // Not text, not strings, or not sure (a key twice, or escaped).
            r#"{"params":{"update":{"sessionUpdate":"tool_call","content":{"type":"image","text":"x"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":{"type":"text","text":7}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":1,"content":{"type":"text","text":"t"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":{"type":"text","text":"t","text":"u"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":{"type":"text","t\u0065xt":"t"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":{"type":"te\u0078t","text":"t"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","sessionUpdate":"y","content":{"type":"text","text":"t"}}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":{"type":"text","text":"t"}},"update":{}}}"#,
            r#"{"params":{"update":{"sessionUpdate":"x","content":"text"}}}"#,
        ] {
            assert_eq!(chunk(line), None, "{line}");
            assert!(scan(line.as_bytes()).is_some(), "still valid: {line}");
        }
    }

    #[test]
    fn finds_the_envelope_of_an_update() {
        let line = r#" {"jsonrpc":"2.0","method":"session/update","params":{"update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"a \"quoted\" \u00e9 word"}},"sessionId":"s-1"}} "#;
        let env = scan(line.as_bytes()).unwrap();
        assert_eq!(text(line, &env.jsonrpc), Some("\"2.0\""));
        assert_eq!(text(line, &env.method), Some("\"session/update\""));
        assert_eq!(text(line, &env.session_id), Some("\"s-1\""));
        assert_eq!(env.id, None);
    }

    #[test]
    fn finds_ids_results_and_errors() {
        let line =
            r#"{"id": -1.5e+3, "result": [1, {"a": [true, false, null]}], "jsonrpc": "2.0"}"#;
        let env = scan(line.as_bytes()).unwrap();
        assert_eq!(text(line, &env.id), Some("-1.5e+3"));
        assert_eq!(
            text(line, &env.result),
            Some(r#"[1, {"a": [true, false, null]}]"#)
        );
        let line = r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}"#;
        assert!(scan(line.as_bytes()).unwrap().error.is_some());
        let line = r#"{"jsonrpc":"2.0","method":"m","params":{"sessionId":7}}"#;
        assert_eq!(scan(line.as_bytes()).unwrap().session_id, None);
    }

    #[test]
    fn leaves_to_serde_what_needs_care_or_is_wrong() {
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        for line in [
            "",
            "[]",
            "42",
            r#"{"id":1,"id":2}"#,
            r#"{"method":"a","method":"b"}"#,
            r#"{"params":{"sessionId":"a","sessionId":"b"}}"#,
            r#"{"params":{},"params":{}}"#,
            r#"{"meth\u006fd":"x"}"#,
            r#"{"method":"session\/update"}"#,
            r#"{"params":{"session\u0049d":"x"}}"#,
            r#"{"method":7}"#,
            r#"{"params":1e999}"#,
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"open"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            &deep,
        ] {
            assert_eq!(scan(line.as_bytes()), None, "{line}");
        }
        let shallow = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(scan(shallow.as_bytes()).is_some());
        assert!(scan(br#"{"method":null,"id":1,"result":{}}"#).is_some());
        assert!(scan(b"{}").is_some());
    }
}
