//! Wire traces: every frame of every hop, as NDJSON, written off the forwarding path.
//!
//! The hub hands the tracer what it already holds (the raw line a peer sent, the batch it is
//! about to write), one batch of records per event, with no parsing and no copy (`Bytes` are
//! shared). A writer thread of low priority (`nice` 19) does the rest: splits batches into
//! lines, finds each frame's kind, method, id and session, correlates answers with their
//! requests (for the method and the round-trip time), redacts secrets, elides text unless told
//! otherwise, and appends one line per frame per hop. When the writer falls behind, whole
//! batches are dropped rather than queued without end: the count is kept, shown by
//! `acp status`, and written into the trace where it happened.
//!
//! The format is in the README ("Wire traces"); [`crate::acp::trace_view`] renders a trace as
//! a per-session timeline.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::frame::{scanned_str, Frame, FrameKind};
use super::method::Method;

/// How many records may wait for the writer...
const MAX_QUEUED_RECORDS: usize = 200_000;
/// ...and how many bytes of frames they may hold alive.
const MAX_QUEUED_BYTES: usize = 32 << 20;
/// How often the writer looks for records (it never needs waking).
const WRITER_TICK: Duration = Duration::from_millis(10);
/// The longest the writer works at a stretch...
const WRITER_SLICE: Duration = Duration::from_millis(10);
/// ...after which it rests this many times as long: under a flood it takes a bounded share of
/// a core (on two hyperthreads of one core even an idle-priority thread slows its sibling),
/// and what it cannot take in is dropped and counted.
const WRITER_REST: u32 = 4;

/// What a trace is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    pub path: PathBuf,
    /// Keep prompt, file and message text (secrets are redacted regardless).
    pub content: bool,
}

/// One hop a frame makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    ClientToDaemon,
    DaemonToAgent,
    AgentToDaemon,
    DaemonToClient,
}

impl Hop {
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::ClientToDaemon => "client->daemon",
            Hop::DaemonToAgent => "daemon->agent",
            Hop::AgentToDaemon => "agent->daemon",
            Hop::DaemonToClient => "daemon->client",
        }
    }

    /// Where a request sent on this hop is answered.
    fn answered_on(self) -> Hop {
        match self {
            Hop::ClientToDaemon => Hop::DaemonToClient,
            Hop::DaemonToClient => Hop::ClientToDaemon,
            Hop::DaemonToAgent => Hop::AgentToDaemon,
            Hop::AgentToDaemon => Hop::DaemonToAgent,
        }
    }
}

/// The peer on the far side of a hop: a client connection or an agent process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Conn(u64),
    Agent {
        slot: u32,
        agent: Arc<str>,
    },
    /// An agent process being probed (it has no slot until the hub adopts it).
    Probe {
        agent: Arc<str>,
    },
}

/// What the hub hands over.
pub enum Record {
    /// One frame, or a batch of lines, that crossed `hop` at `at`.
    Frames {
        at: Instant,
        hop: Hop,
        peer: Peer,
        bytes: Bytes,
    },
    /// The agent session `agent_sid` on `slot` stands for proxy session `session`.
    Route {
        slot: u32,
        agent_sid: String,
        session: Arc<str>,
    },
}

impl Record {
    fn weight(&self) -> usize {
        match self {
            Record::Frames { bytes, .. } => bytes.len(),
            Record::Route { .. } => 0,
        }
    }
}

/// A handle on the trace (the hub's, a probe's); does nothing when tracing is off.
#[derive(Default, Clone)]
pub struct Tracer {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: Mutex<Option<mpsc::Sender<Vec<Record>>>>,
    queued: Arc<Queued>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Queued {
    records: AtomicUsize,
    bytes: AtomicUsize,
    dropped: AtomicU64,
}

impl Tracer {
    /// Opens (creates or truncates) the trace file and starts its writer.
    pub fn open(config: &TraceConfig, runtime: &str) -> std::io::Result<Tracer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&config.path)?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(Queued::default());
        let mut writer = Writer::new(file, config.content, queued.clone());
        writer.header(runtime);
        let thread = std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || {
                lower_priority();
                writer.run(rx)
            })?;
        tracing::info!(path = %config.path.display(), content = config.content, "tracing every frame");
        Ok(Tracer {
            inner: Some(Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                queued,
                writer: Mutex::new(Some(thread)),
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands over one event's records; drops them (counted) when the writer is behind.
    pub fn submit(&self, batch: Vec<Record>) {
        let Some(inner) = &self.inner else { return };
        if batch.is_empty() {
            return;
        }
        let (records, bytes) = (batch.len(), batch.iter().map(Record::weight).sum::<usize>());
        let q = &inner.queued;
        let routes: Vec<Record> = if q.records.load(Ordering::Relaxed) + records
            > MAX_QUEUED_RECORDS
            || q.bytes.load(Ordering::Relaxed) + bytes > MAX_QUEUED_BYTES
        {
            // Frames go; routes are kept, or later frames would lose their sessions.
            let mut dropped = 0;
            let routes: Vec<Record> = batch
                .into_iter()
                .filter(|r| {
                    let keep = matches!(r, Record::Route { .. });
                    if !keep {
                        dropped += match r {
                            Record::Frames { bytes, .. } => lines_in(bytes),
                            Record::Route { .. } => 0,
                        };
                    }
                    keep
                })
                .collect();
            q.dropped.fetch_add(dropped, Ordering::Relaxed);
            routes
        } else {
            q.records.fetch_add(records, Ordering::Relaxed);
            q.bytes.fetch_add(bytes, Ordering::Relaxed);
            batch
        };
        if routes.is_empty() {
            return;
        }
        if let Ok(tx) = inner.tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(routes);
            }
        }
    }

    /// Whether the writer has room for more: when it has not, the hub need not build records
    /// only to drop them (it counts them with [`Tracer::drop_frames`] instead).
    pub fn accepting(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| {
            i.queued.records.load(Ordering::Relaxed) < MAX_QUEUED_RECORDS
                && i.queued.bytes.load(Ordering::Relaxed) < MAX_QUEUED_BYTES
        })
    }

    /// Counts `frames` dropped without being handed over.
    pub fn drop_frames(&self, frames: u64) {
        if let Some(inner) = &self.inner {
            inner.queued.dropped.fetch_add(frames, Ordering::Relaxed);
        }
    }

    /// Frames dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.queued.dropped.load(Ordering::Relaxed))
    }

    /// Writes what is queued and closes the trace; later records are ignored.
    pub fn finish(&self) {
        if let Some(inner) = &self.inner {
            inner.finish();
        }
    }

    /// Hands over one frame a probe exchanged with `agent`, now.
    pub fn probe_frame(&self, hop: Hop, agent: &str, bytes: Bytes) {
        if self.enabled() {
            self.submit(vec![Record::Frames {
                at: Instant::now(),
                hop,
                peer: Peer::Probe {
                    agent: agent.into(),
                },
                bytes,
            }]);
        }
    }
}

impl Inner {
    fn finish(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The frames in a batch of lines.
fn lines_in(bytes: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    newlines + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}

/// The writer must never take the forwarding path's CPU: it runs at the lowest priority.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        tracing::debug!("cannot lower the trace writer's priority: {e}");
    }
}

/// A request waiting for its answer, by the hop it went out on, its peer and its id.
struct Asked {
    method: String,
    session: Option<Arc<str>>,
    at: Instant,
}

struct Writer {
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
    fn new(file: std::fs::File, content: bool, queued: Arc<Queued>) -> Writer {
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

    fn header(&mut self, runtime: &str) {
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

    fn run(mut self, rx: mpsc::Receiver<Vec<Record>>) {
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

/// Stands in for a secret.
pub const REDACTED: &str = "[redacted]";

/// Whether a key names a secret: tokens, keys, passwords, credentials.
fn secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "privatekey",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key.ends_with("key")
        || key.ends_with("keys")
}

/// Keys whose string values are what people wrote or read: prompts, messages, files.
const TEXT_KEYS: [&str; 8] = [
    "text", "content", "data", "blob", "output", "oldText", "newText", "append",
];
/// Keys whose whole value is tool input or output.
const OPAQUE_KEYS: [&str; 3] = ["rawInput", "rawOutput", "systemPrompt"];

/// Redacts secrets and (unless `content`) elides text in a frame, in place.
pub fn scrub(frame: &mut Value, method: Option<&str>, content: bool) {
    // Whatever an `authenticate` carries besides the method's name is a credential.
    if method == Some("authenticate") {
        if let Some(Value::Object(params)) = frame.get_mut("params") {
            for (key, value) in params.iter_mut() {
                if key != "methodId" {
                    *value = json!(REDACTED);
                }
            }
        }
    }
    walk(frame, None, content);
}

fn walk(value: &mut Value, key: Option<&str>, content: bool) {
    match value {
        Value::Object(map) => {
            // `{"name": ..., "value": ...}` pairs of an MCP server's env or headers.
            let pair = key.is_some_and(|k| k == "env" || k == "headers");
            for (k, v) in map.iter_mut() {
                if v.is_null() {
                    continue;
                }
                if secret_key(k) || (pair && k == "value") {
                    *v = json!(REDACTED);
                } else if !content && OPAQUE_KEYS.contains(&k.as_str()) {
                    *v = json!(elided(v.to_string().len()));
                } else if !content && TEXT_KEYS.contains(&k.as_str()) && v.is_string() {
                    let len = v.as_str().map_or(0, str::len);
                    *v = json!(elided(len));
                } else {
                    walk(v, Some(k), content);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, key, content);
            }
        }
        _ => {}
    }
}

fn elided(len: usize) -> String {
    format!("[{len} bytes elided]")
}

/// The trace file named by `TEROK_ACP_TRACE`, with `TEROK_ACP_TRACE_CONTENT=1` for content.
pub fn config_from_env() -> Option<TraceConfig> {
    let path = std::env::var_os("TEROK_ACP_TRACE").filter(|p| !p.is_empty())?;
    let content = matches!(
        std::env::var("TEROK_ACP_TRACE_CONTENT").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    );
    Some(TraceConfig {
        path: Path::new(&path).to_owned(),
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_text_elided() {
        let mut frame = json!({"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {
            "cwd": "/work",
            "mcpServers": [{"name": "gh", "command": "gh-mcp", "args": [],
                "env": [{"name": "GITHUB_TOKEN", "value": "ghp_secret"}],
                "headers": [{"name": "X-Custom", "value": "hdr-secret"}]}],
            "_meta": {"apiKey": "sk-1", "systemPrompt": {"append": "be brief"}},
        }});
        scrub(&mut frame, Some("session/new"), false);
        let text = frame.to_string();
        for secret in ["ghp_secret", "hdr-secret", "sk-1", "be brief"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(frame["params"]["cwd"], "/work");
        assert_eq!(
            frame["params"]["mcpServers"][0]["env"][0]["name"],
            "GITHUB_TOKEN"
        );
        assert_eq!(
            frame["params"]["mcpServers"][0]["env"][0]["value"],
            REDACTED
        );
        assert_eq!(frame["params"]["_meta"]["apiKey"], REDACTED);

        let mut prompt = json!({"method": "session/prompt", "params": {"sessionId": "s",
            "prompt": [{"type": "text", "text": "my words"},
                       {"type": "resource", "resource": {"uri": "file:///a", "text": "file body"}}]}});
        scrub(&mut prompt, Some("session/prompt"), false);
        assert_eq!(prompt["params"]["prompt"][0]["text"], "[8 bytes elided]");
        assert_eq!(
            prompt["params"]["prompt"][1]["resource"]["uri"],
            "file:///a"
        );
        assert!(!prompt.to_string().contains("file body"));
    }

    #[test]
    fn content_is_kept_when_asked_but_secrets_never() {
        let mut frame = json!({"method": "authenticate", "params": {"methodId": "api-key",
            "_meta": {"api-key": {"apiKey": "sk-2"}}}});
        scrub(&mut frame, Some("authenticate"), true);
        assert_eq!(frame["params"]["methodId"], "api-key");
        assert_eq!(frame["params"]["_meta"], REDACTED);
        let mut update = json!({"params": {"update": {"content": {"type": "text", "text": "hi"},
            "password": "p"}}});
        scrub(&mut update, Some("session/update"), true);
        assert_eq!(update["params"]["update"]["content"]["text"], "hi");
        assert_eq!(update["params"]["update"]["password"], REDACTED);
    }

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

    #[test]
    fn key_names_that_hold_secrets() {
        for key in [
            "apiKey",
            "api_key",
            "GITHUB_TOKEN",
            "accessToken",
            "client-secret",
            "Authorization",
            "password",
            "privateKey",
        ] {
            assert!(secret_key(key), "{key}");
        }
        for key in [
            "sessionId",
            "toolCallId",
            "mimeType",
            "name",
            "cwd",
            "modelId",
        ] {
            assert!(!secret_key(key), "{key}");
        }
    }
}
