//! JSON-RPC frames: a typed envelope over the raw line.
//!
//! The proxy forwards far more frames than it decides on, so a [`Frame`] keeps the line exactly
//! as received and records only where its `id`, `method` and `params.sessionId` sit. Rewriting an
//! id or a session id splices new bytes into those spans ([`Frame::write_spliced`]); the payload
//! is never re-serialised, so unknown fields, `_meta` and key order survive byte for byte.
//! Parsing borrows from the line and allocates nothing for the common methods.

mod parts;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::IgnoredAny;

use super::method::Method;
use super::shape::Shapes;
use parts::Parts;

/// Byte range of a JSON value inside its frame.
pub type Span = Range<usize>;

/// What a frame is, from its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Request,
    Notification,
    Response,
}

/// A parsed line: the raw bytes plus the positions of the parts the proxy may rewrite.
#[derive(Clone)]
pub struct Frame {
    raw: Bytes,
    kind: FrameKind,
    id: Option<Span>,
    method: Option<Method>,
    session_id: Option<Span>,
    /// A text chunk's `sessionUpdate` and `content.text` literals, when the scanner found them.
    chunk: Option<(Span, Span)>,
}

/// Why a line is not a usable JSON-RPC message; each maps to the code JSON-RPC asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("batches are not supported")]
    Batch,
    #[error("invalid request: {reason}")]
    Invalid {
        reason: String,
        /// The request's id when one could be read, so the error can be addressed to it.
        id: Option<Bytes>,
    },
}

impl FrameError {
    pub fn code(&self) -> i64 {
        match self {
            FrameError::Parse(_) => super::message::PARSE_ERROR,
            FrameError::Batch | FrameError::Invalid { .. } => super::message::INVALID_REQUEST,
        }
    }

    /// The id the error response should carry (raw JSON), or `None` for `null`.
    pub fn reply_id(&self) -> Option<&Bytes> {
        match self {
            FrameError::Invalid { id, .. } => id.as_ref(),
            _ => None,
        }
    }
}

/// Whether a raw JSON value is a valid JSON-RPC id: string, number or null.
fn is_valid_id(raw: &[u8]) -> bool {
    matches!(raw.first(), Some(b'"' | b'-' | b'0'..=b'9' | b'n'))
}

impl Frame {
    /// Parses one line. Leading and trailing whitespace is allowed.
    pub fn parse(raw: Bytes) -> Result<Frame, FrameError> {
        Frame::check_object(&raw)?;
        let parts = match super::scan::scan(&raw) {
            Some(env) => Parts::from_scan(&raw, env),
            None => Parts::from_serde(&raw)?,
        };
        Frame::from_parts(raw, parts)
    }

    /// [`Frame::parse`] for a stream's lines: a text chunk shaped like one `shapes` has seen
    /// is read from its shape (its session id and text checked, the rest compared byte for
    /// byte); any other line is parsed as by [`Frame::parse`] and, when it is a text chunk,
    /// teaches `shapes` its shape.
    pub fn parse_shaped(raw: Bytes, shapes: &mut Shapes) -> Result<Frame, FrameError> {
        if let Some(env) = shapes.find(&raw) {
            return Ok(Frame {
                kind: FrameKind::Notification,
                id: None,
                method: Some(Method::SessionUpdate),
                session_id: env.session_id,
                chunk: env.chunk,
                raw,
            });
        }
        Frame::check_object(&raw)?;
        let parts = match super::scan::scan(&raw) {
            Some(env) => {
                shapes.learn(&raw, &env);
                Parts::from_scan(&raw, env)
            }
            None => Parts::from_serde(&raw)?,
        };
        Frame::from_parts(raw, parts)
    }

    /// [`Frame::parse`] with serde alone, never the scanner: the reference the differential
    /// fuzz target (`fuzz/fuzz_targets/envelope.rs`) holds the scanner to.
    #[doc(hidden)]
    pub fn parse_with_serde(raw: Bytes) -> Result<Frame, FrameError> {
        Frame::check_object(&raw)?;
        let parts = Parts::from_serde(&raw)?;
        Frame::from_parts(raw, parts)
    }

    /// The line is UTF-8 and holds a JSON object (or at least starts like one).
    fn check_object(raw: &[u8]) -> Result<(), FrameError> {
        // JSON text is UTF-8, but serde checks only the strings it decodes, not those it skips:
        // check the whole line once, so bytes that are not UTF-8 are never forwarded.
        if let Err(e) = std::str::from_utf8(raw) {
            return Err(FrameError::Parse(format!(
                "invalid UTF-8 at byte {}",
                e.valid_up_to()
            )));
        }
        let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            None => Err(FrameError::Parse("empty line".into())),
            Some(b'[') => match serde_json::from_slice::<IgnoredAny>(raw) {
                Ok(_) => Err(FrameError::Batch),
                Err(e) => Err(FrameError::Parse(e.to_string())),
            },
            Some(b'{') => Ok(()),
            Some(_) => match serde_json::from_slice::<IgnoredAny>(raw) {
                Ok(_) => Err(FrameError::Invalid {
                    reason: "a message must be a JSON object".into(),
                    id: None,
                }),
                Err(e) => Err(FrameError::Parse(e.to_string())),
            },
        }
    }

    fn from_parts(raw: Bytes, env: Parts) -> Result<Frame, FrameError> {
        let id_span = env.id.clone();
        let id_bytes = |span: &Option<Span>| span.clone().map(|s| raw.slice(s));
        let invalid = |reason: &str| FrameError::Invalid {
            reason: reason.into(),
            id: None,
        };
        if let Some(id) = &env.id {
            if !is_valid_id(&raw[id.clone()]) {
                return Err(invalid("id must be a string, a number or null"));
            }
        }
        match env.jsonrpc.clone().map(|s| &raw[s]) {
            Some(b"\"2.0\"") => {}
            _ => {
                return Err(FrameError::Invalid {
                    reason: "missing or unsupported \"jsonrpc\" version (expected \"2.0\")".into(),
                    id: id_bytes(&id_span),
                })
            }
        }
        let kind = match (&env.method, &env.id, &env.result, &env.error) {
            (Some(_), Some(_), None, None) => FrameKind::Request,
            (Some(_), None, None, None) => FrameKind::Notification,
            (None, Some(_), Some(_), None) | (None, Some(_), None, Some(_)) => FrameKind::Response,
            (Some(_), _, _, _) => {
                return Err(FrameError::Invalid {
                    reason: "a request must not carry \"result\" or \"error\"".into(),
                    id: id_bytes(&id_span),
                })
            }
            (None, _, Some(_), Some(_)) => {
                return Err(invalid(
                    "a response must carry exactly one of \"result\" and \"error\"",
                ))
            }
            (None, None, _, _) => return Err(invalid("a response must carry an id")),
            (None, Some(_), None, None) => {
                return Err(FrameError::Invalid {
                    reason: "missing \"method\"".into(),
                    id: id_bytes(&id_span),
                })
            }
        };
        Ok(Frame {
            method: env.method,
            kind,
            id: id_span,
            session_id: env.session_id,
            chunk: env.chunk,
            raw,
        })
    }

    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The id exactly as sent (raw JSON), if any.
    pub fn id_raw(&self) -> Option<Bytes> {
        self.id.clone().map(|s| self.raw.slice(s))
    }

    pub fn id_span(&self) -> Option<Span> {
        self.id.clone()
    }

    /// The id when it is an unsigned integer: the form the proxy mints.
    pub fn id_u64(&self) -> Option<u64> {
        let span = self.id.clone()?;
        std::str::from_utf8(self.raw.get(span)?).ok()?.parse().ok()
    }

    pub fn session_id_span(&self) -> Option<Span> {
        self.session_id.clone()
    }

    /// For a text chunk the scanner read: the spans of `params.update.sessionUpdate` and
    /// `params.update.content.text` (string literals).
    pub fn chunk_spans(&self) -> Option<(Span, Span)> {
        self.chunk.clone()
    }

    /// `params.sessionId` as a string, unescaped only when it has to be.
    pub fn session_id(&self) -> Option<Cow<'_, str>> {
        let span = self.session_id.clone()?;
        json_str(self.raw.get(span)?)
    }

    /// Whether the raw line contains `needle` anywhere: a cheap pre-filter before a full parse.
    pub fn contains(&self, needle: &[u8]) -> bool {
        memchr::memmem::find(&self.raw, needle).is_some()
    }

    /// [`Frame::contains`] with a searcher built once, for checks that run on every frame.
    pub fn contains_with(&self, finder: &memchr::memmem::Finder<'_>) -> bool {
        finder.find(&self.raw).is_some()
    }

    /// Parses the whole frame into a `Value`, for the few frames whose payload the proxy edits.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.raw)
    }

    /// Appends the frame to `out` with the given spans replaced, then a newline. `edits` must
    /// not overlap; they may come in any order.
    pub fn write_spliced(&self, edits: &mut [(Span, &[u8])], out: &mut BytesMut) {
        edits.sort_by_key(|(span, _)| span.start);
        out.reserve(self.raw.len() + 64);
        let mut at = 0;
        for (span, replacement) in edits.iter() {
            out.put_slice(&self.raw[at..span.start]);
            out.put_slice(replacement);
            at = span.end;
        }
        out.put_slice(&self.raw[at..]);
        out.put_u8(b'\n');
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("id", &self.id_raw())
            .field("len", &self.raw.len())
            .finish()
    }
}

/// Reads a raw JSON string literal, borrowing when it has no escapes. Anything that is not
/// exactly one string literal is `None`.
pub fn json_str(raw: &[u8]) -> Option<Cow<'_, str>> {
    if let [b'"', inner @ .., b'"'] = raw {
        // The fast path only takes what needs no decoding: no escape, no inner quote (which
        // would end the literal early), no control character (which JSON forbids raw).
        if crate::acp::scan::special_at(inner).is_none() {
            return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
        }
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

/// [`json_str`] for a string literal the envelope scanner has validated: it has no raw quote or
/// control character inside, so only a backslash means there is something to decode.
pub fn scanned_str(literal: &[u8]) -> Option<Cow<'_, str>> {
    match literal {
        [b'"', inner @ .., b'"'] if memchr::memchr(b'\\', inner).is_none() => {
            std::str::from_utf8(inner).ok().map(Cow::Borrowed)
        }
        _ => json_str(literal),
    }
}

/// Encodes a string as a JSON string literal.
pub fn json_string_literal(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Frame, FrameError> {
        Frame::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn request_with_string_id_and_session() {
        let f = parse(r#"{"jsonrpc":"2.0","id":"a-1","method":"session/prompt","params":{"prompt":[],"sessionId":"s1"}}"#).unwrap();
        assert_eq!(f.kind(), FrameKind::Request);
        assert_eq!(f.method(), Some(&Method::SessionPrompt));
        assert_eq!(f.id_raw().unwrap(), "\"a-1\"");
        assert_eq!(f.session_id().unwrap(), "s1");
        assert_eq!(f.id_u64(), None);
    }

    #[test]
    fn null_id_is_kept_as_present() {
        let f = parse(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap();
        assert_eq!(f.kind(), FrameKind::Request);
        assert_eq!(f.id_raw().unwrap(), "null");
    }

    #[test]
    fn notification_has_no_id() {
        let f = parse(r#"{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"x"}}"#)
            .unwrap();
        assert_eq!(f.kind(), FrameKind::Notification);
        assert!(f.id_raw().is_none());
    }

    #[test]
    fn response_with_numeric_id() {
        let f = parse(r#"{"jsonrpc":"2.0","result":{"ok":true},"id":42}"#).unwrap();
        assert_eq!(f.kind(), FrameKind::Response);
        assert_eq!(f.id_u64(), Some(42));
    }

    #[test]
    fn batch_is_rejected_as_invalid_request() {
        assert_eq!(
            parse(r#"[{"jsonrpc":"2.0","method":"a"}]"#).unwrap_err(),
            FrameError::Batch
        );
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let err = parse("not json").unwrap_err();
        assert!(matches!(err, FrameError::Parse(_)));
        assert_eq!(err.code(), -32700);
    }

    #[test]
    fn non_object_is_invalid_request() {
        let err = parse("42").unwrap_err();
        assert_eq!(err.code(), -32600);
    }

    #[test]
    fn missing_jsonrpc_is_invalid_and_keeps_id() {
        let err = parse(r#"{"id":7,"method":"initialize"}"#).unwrap_err();
        assert_eq!(err.code(), -32600);
        assert_eq!(err.reply_id().unwrap(), "7");
    }

    #[test]
    fn object_id_is_invalid() {
        let err = parse(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#).unwrap_err();
        assert_eq!(err.code(), -32600);
    }

    #[test]
    fn float_id_is_accepted_opaquely() {
        let f = parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).unwrap();
        assert_eq!(f.id_raw().unwrap(), "1.5");
        assert_eq!(f.id_u64(), None);
    }

    #[test]
    fn duplicate_id_field_is_invalid() {
        assert!(parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#).is_err());
    }

    #[test]
    fn invalid_utf8_is_a_parse_error_even_where_nothing_is_decoded() {
        // Found by fuzzing: bytes inside a skipped string were not checked.
        let line = b"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"t\":\"\xff\"}}";
        let err = Frame::parse(Bytes::from_static(line)).unwrap_err();
        assert_eq!(err.code(), -32700);
        let err = Frame::parse(Bytes::from_static(b"[\"\xff\"]")).unwrap_err();
        assert_eq!(err.code(), -32700);
    }

    #[test]
    fn mistyped_field_before_a_syntax_error_is_a_parse_error() {
        // A shape error seen first must not hide that the line is not JSON at all.
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":5,"#).unwrap_err().code(),
            -32700
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","method":5}"#).unwrap_err().code(),
            -32600
        );
    }

    #[test]
    fn duplicate_session_id_is_invalid() {
        let err = parse(r#"{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionId":"a","sessionId":"b"}}"#)
            .unwrap_err();
        assert_eq!(err.code(), -32600);
    }

    #[test]
    fn escaped_session_id_is_unescaped() {
        let f = parse(r#"{"jsonrpc":"2.0","method":"n","params":{"sessionId":"a\"b"}}"#).unwrap();
        assert_eq!(f.session_id().unwrap(), "a\"b");
    }

    #[test]
    fn json_str_refuses_what_is_not_one_string_literal() {
        // Found by fuzzing: the fast path accepted an inner quote and raw control characters.
        assert_eq!(json_str(br#""a"b""#), None);
        assert_eq!(json_str(b"\"a\x01\""), None);
        assert_eq!(json_str(b"\""), None);
        assert_eq!(json_str(br#""plain""#).as_deref(), Some("plain"));
        assert_eq!(json_str(br#""a\"b""#).as_deref(), Some("a\"b"));
    }

    #[test]
    fn positional_params_have_no_session() {
        let f = parse(r#"{"jsonrpc":"2.0","method":"n","params":[1,2]}"#).unwrap();
        assert!(f.session_id().is_none());
    }

    #[test]
    fn splice_replaces_id_and_session_keeping_everything_else() {
        let line = r#"{"jsonrpc":"2.0","id":3,"method":"session/request_permission","params":{"sessionId":"b-1","_meta":{"k":[1,{"x":null}]},"toolCall":{}}}"#;
        let f = parse(line).unwrap();
        let mut out = BytesMut::new();
        let mut edits = [
            (f.session_id_span().unwrap(), &b"\"p-9\""[..]),
            (f.id_span().unwrap(), &b"17"[..]),
        ];
        f.write_spliced(&mut edits, &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!(
                "{}\n",
                line.replace("\"id\":3", "\"id\":17").replace("b-1", "p-9")
            )
        );
    }

    #[test]
    fn unicode_and_escapes_survive_splicing() {
        let line = "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\",\"params\":{\"sessionId\":\"s\",\"update\":{\"text\":\"h\u{e9}llo \\n \\u2603\"}}}";
        let f = parse(line).unwrap();
        let mut out = BytesMut::new();
        f.write_spliced(
            &mut [(f.session_id_span().unwrap(), &b"\"t\""[..])],
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["sessionId"], "t");
        assert_eq!(v["params"]["update"]["text"], "h\u{e9}llo \n \u{2603}");
    }
}
