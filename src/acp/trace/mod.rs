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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

mod redact;
mod writer;

pub use redact::{scrub, REDACTED};
use writer::Writer;

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
