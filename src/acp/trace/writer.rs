//! The trace's writer thread: from the hub's records to NDJSON lines.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::redact::{elided, scrub};
use super::{Hop, Peer, Queued, Record, WRITER_REST, WRITER_SLICE, WRITER_TICK};
use crate::acp::frame::{scanned_str, Frame, FrameKind};
use crate::acp::method::Method;

/// A request waiting for its answer, by the hop it went out on, its peer and its id.
struct Asked {
    method: String,
    session: Option<Arc<str>>,
    at: Instant,
}

pub(super) struct Writer {
    out: std::io::BufWriter<std::fs::File>,
    content: bool,
    queued: Arc<Queued>,
    epoch: Instant,
    /// Agent sessions and the proxy sessions they stand for, by slot.
    routes: HashMap<u32, HashMap<String, Arc<str>>>,
    /// The agent each proxy session was bound to last.
    agents: HashMap<Arc<str>, Arc<str>>,
    asked: HashMap<(Hop, Peer, String), Asked>,
    dropped_written: u64,
    lines: u64,
}

impl Writer {
    pub(super) fn new(file: std::fs::File, content: bool, queued: Arc<Queued>) -> Writer {
        Writer {
            out: std::io::BufWriter::with_capacity(256 * 1024, file),
            content,
            queued,
            epoch: Instant::now(),
            routes: HashMap::new(),
            agents: HashMap::new(),
            asked: HashMap::new(),
            dropped_written: 0,
            lines: 0,
        }
    }

    pub(super) fn header(&mut self, runtime: &str) {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.emit(&json!({
            "t": 0.0,
            "trace": "terok-executor acp",
            "version": 1,
            "runtime": runtime,
            "pid": std::process::id(),
            "started_unix": wall,
            "content": self.content,
        }));
        let _ = self.out.flush();
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Vec<Record>>) {
        loop {
            let start = Instant::now();
            let mut closed = false;
            while start.elapsed() < WRITER_SLICE {
                match rx.try_recv() {
                    Ok(batch) => self.take(batch),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.note_drops();
            let _ = self.out.flush();
            if closed {
                break;
            }
            std::thread::sleep(WRITER_TICK.max(start.elapsed() * WRITER_REST));
        }
        let dropped = self.queued.dropped.load(Ordering::Relaxed);
        let t = self.epoch.elapsed().as_secs_f64();
        self.emit(&json!({"t": t, "end": true, "frames": self.lines, "dropped": dropped}));
        let _ = self.out.flush();
    }

    /// Writes a marker where frames were dropped since the last one.
    fn note_drops(&mut self) {
        let dropped = self.queued.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_written {
            let t = self.epoch.elapsed().as_secs_f64();
            self.emit(&json!({"t": t, "dropped": dropped - self.dropped_written}));
            self.dropped_written = dropped;
        }
    }

    fn take(&mut self, batch: Vec<Record>) {
        let (records, bytes) = (batch.len(), batch.iter().map(Record::weight).sum::<usize>());
        for record in batch {
            match record {
                Record::Route {
                    slot,
                    agent_sid,
                    session,
                } => {
                    self.routes
                        .entry(slot)
                        .or_default()
                        .insert(agent_sid, session);
                }
                Record::Frames {
                    at,
                    hop,
                    peer,
                    bytes,
                } => {
                    let mut start = 0;
                    while start < bytes.len() {
                        let end = memchr::memchr(b'\n', &bytes[start..])
                            .map_or(bytes.len(), |i| start + i);
                        let line = bytes.slice(start..end);
                        start = end + 1;
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        if !self.text_chunk(at, hop, &peer, &line) {
                            self.frame(at, hop, &peer, &line);
                        }
                    }
                }
            }
        }
        self.queued.records.fetch_sub(records, Ordering::Relaxed);
        self.queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn frame(&mut self, at: Instant, hop: Hop, peer: &Peer, line: &[u8]) {
        let t = at.saturating_duration_since(self.epoch).as_secs_f64();
        let mut record = Map::new();
        record.insert("t".into(), json!((t * 1e6).round() / 1e6));
        record.insert("dir".into(), json!(hop.as_str()));
        match peer {
            Peer::Conn(conn) => record.insert("conn".into(), json!(conn)),
            Peer::Agent { agent, slot } => {
                record.insert("slot".into(), json!(slot));
                record.insert("agent".into(), json!(&**agent))
            }
            Peer::Probe { agent } => {
                record.insert("probe".into(), json!(true));
                record.insert("agent".into(), json!(&**agent))
            }
        };
        record.insert("size".into(), json!(line.len() + 1));
        let Ok(mut frame) = serde_json::from_slice::<Value>(line) else {
            record.insert("kind".into(), json!("invalid"));
            if self.content {
                record.insert("raw".into(), json!(String::from_utf8_lossy(line)));
            }
            return self.emit(&Value::Object(record));
        };
        let method = frame
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let id = frame
            .get("id")
            .filter(|id| !id.is_null())
            .map(|id| id.to_string());
        let kind = match (&method, &id) {
            (Some(_), Some(_)) => "request",
            (Some(_), None) => "notification",
            (None, _) => "response",
        };
        record.insert("kind".into(), json!(kind));
        // The session: named in the frame (an agent's, translated), or the request's.
        let named = frame
            .pointer("/params/sessionId")
            .or_else(|| frame.pointer("/result/sessionId"))
            .and_then(Value::as_str);
        let mut session: Option<Arc<str>> = match (peer, named) {
            (Peer::Agent { slot, .. }, Some(sid)) => self
                .routes
                .get(slot)
                .and_then(|routes| routes.get(sid))
                .cloned()
                .or_else(|| {
                    record.insert("agent_session".into(), json!(sid));
                    None
                }),
            (Peer::Conn(_), Some(sid)) => Some(sid.into()),
            _ => None,
        };
        let mut method = method;
        if let Some(id) = &id {
            if kind == "request" {
                self.asked.insert(
                    (hop.answered_on(), peer.clone(), id.clone()),
                    Asked {
                        method: method.clone().unwrap_or_default(),
                        session: session.clone(),
                        at,
                    },
                );
            } else if let Some(asked) = self.asked.remove(&(hop, peer.clone(), id.clone())) {
                let rtt = at.saturating_duration_since(asked.at).as_secs_f64();
                record.insert("rtt".into(), json!((rtt * 1e6).round() / 1e6));
                method = Some(asked.method);
                session = session.or(asked.session);
            }
        }
        if let Some(method) = &method {
            record.insert("method".into(), json!(method));
        }
        if let Some(id) = frame.get("id").filter(|_| id.is_some()) {
            record.insert("id".into(), id.clone());
        }
        if let Some(session) = &session {
            if let Peer::Agent { agent, .. } = peer {
                self.agents.insert(session.clone(), agent.clone());
            }
            record.insert("session".into(), json!(&**session));
            if let (Peer::Conn(_), Some(agent)) = (peer, self.agents.get(session)) {
                record.insert("agent".into(), json!(&**agent));
            }
        }
        scrub(&mut frame, method.as_deref(), self.content);
        record.insert("body".into(), frame);
        self.emit(&Value::Object(record));
    }

    /// The bulk of a stream, written without building a tree: a `session/update` text chunk
    /// whose every other string is one the protocol fixes (so nothing in it can be a secret),
    /// its text elided by splicing. Returns `false` for any other frame.
    fn text_chunk(&mut self, at: Instant, hop: Hop, peer: &Peer, line: &Bytes) -> bool {
        let Ok(frame) = Frame::parse(line.clone()) else {
            return false;
        };
        let (Some(Method::SessionUpdate), FrameKind::Notification) = (frame.method(), frame.kind())
        else {
            return false;
        };
        let (Some((_, text)), Some(sid_span), Some(sid)) = (
            frame.chunk_spans(),
            frame.session_id_span(),
            frame.session_id(),
        ) else {
            return false;
        };
        if !only_fixed_strings(line, [&sid_span, &text]) {
            return false;
        }
        let session = match peer {
            Peer::Agent { slot, .. } => self
                .routes
                .get(slot)
                .and_then(|routes| routes.get(sid.as_ref()))
                .cloned(),
            Peer::Conn(_) => Some(Arc::from(sid.as_ref())),
            Peer::Probe { .. } => None,
        };
        let Some(session) = session else {
            return false;
        };
        let t = at.saturating_duration_since(self.epoch).as_secs_f64();
        let out = &mut self.out;
        let _ = write!(out, "{{\"t\":{t:.6},\"dir\":\"{}\",", hop.as_str());
        match peer {
            Peer::Conn(conn) => {
                let _ = write!(out, "\"conn\":{conn},");
            }
            Peer::Agent { slot, agent } => {
                let _ = write!(out, "\"slot\":{slot},\"agent\":");
                let _ = serde_json::to_writer(&mut *out, &**agent);
                let _ = out.write_all(b",");
            }
            Peer::Probe { .. } => {}
        }
        let _ = write!(
            out,
            "\"size\":{},\"kind\":\"notification\",\"method\":\"session/update\",\"session\":",
            line.len() + 1
        );
        let _ = serde_json::to_writer(&mut *out, &*session);
        match peer {
            Peer::Conn(_) => {
                if let Some(agent) = self.agents.get(&session) {
                    let _ = out.write_all(b",\"agent\":");
                    let _ = serde_json::to_writer(&mut *out, &**agent);
                }
            }
            Peer::Agent { agent, .. } | Peer::Probe { agent } => {
                self.agents.insert(session, agent.clone());
            }
        }
        let _ = out.write_all(b",\"body\":");
        if self.content {
            let _ = out.write_all(line);
        } else {
            let len = scanned_str(&line[text.clone()]).map_or(0, |s| s.len());
            let _ = out.write_all(&line[..text.start]);
            let _ = write!(out, "\"{}\"", elided(len));
            let _ = out.write_all(&line[text.end..]);
        }
        let _ = out.write_all(b"}\n");
        self.lines += 1;
        true
    }

    fn emit(&mut self, value: &Value) {
        if serde_json::to_writer(&mut self.out, value).is_ok() {
            let _ = self.out.write_all(b"\n");
            self.lines += 1;
        }
    }
}

/// The strings a plain text chunk has besides its session id and text.
const FIXED_STRINGS: [&[u8]; 14] = [
    b"jsonrpc",
    b"2.0",
    b"method",
    b"session/update",
    b"params",
    b"sessionId",
    b"update",
    b"sessionUpdate",
    b"agent_message_chunk",
    b"agent_thought_chunk",
    b"user_message_chunk",
    b"content",
    b"type",
    b"text",
];

/// Whether every string literal of `line` outside the `holes` (literals themselves) is one of
/// [`FIXED_STRINGS`]. A literal with an escape is not, so a quote is always a literal's end.
fn only_fixed_strings(line: &[u8], holes: [&std::ops::Range<usize>; 2]) -> bool {
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'"', &line[at..]) {
        let start = at + i;
        if let Some(hole) = holes.iter().find(|h| h.start == start) {
            at = hole.end;
            continue;
        }
        let Some(len) = memchr::memchr(b'"', &line[start + 1..]) else {
            return false;
        };
        if !FIXED_STRINGS.contains(&&line[start + 1..start + 1 + len]) {
            return false;
        }
        at = start + len + 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chunk_of_fixed_strings_takes_the_fast_way() {
        let line = |extra: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","method":"session/update","params":{{"sessionId":"s-1","update":{{"sessionUpdate":"agent_message_chunk","content":{{"type":"text","text":"hi \"x\""}}{extra}}}}}}}"#
            )
        };
        let spans = |line: &str| {
            let frame = Frame::parse(Bytes::copy_from_slice(line.as_bytes())).unwrap();
            (
                frame.session_id_span().unwrap(),
                frame.chunk_spans().unwrap().1,
            )
        };
        let plain = line("");
        let (sid, text) = spans(&plain);
        assert!(only_fixed_strings(plain.as_bytes(), [&sid, &text]));
        for extra in [
            r#","_meta":{"apiKey":"k"}"#,
            r#","token":"t""#,
            r#","n":"2.0\"""#,
        ] {
            let with = line(extra);
            let (sid, text) = spans(&with);
            assert!(
                !only_fixed_strings(with.as_bytes(), [&sid, &text]),
                "{extra}"
            );
        }
    }
}
