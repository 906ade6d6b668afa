//! An agent's stdout, read into batches of frames for the hub.
//!
//! Each agent's pump is a task beside the hub. Splitting and envelope parsing run in it, or,
//! for a large read while nobody else uses it, on the parser thread ([`Parser`]): the runtime
//! would run a hub woken by the pump on the pump's own worker, after the pump, so a stream's
//! parsing and the hub's handling of the batch before it would take turns on one core. On the
//! parser thread they overlap. A small read (an answer, a few updates) is parsed in place: a
//! hop to another thread would cost it more than the parsing. Before each read the pump waits
//! until every client the agent streams to has room in its outbox, so a client that reads
//! slowly throttles the agent through its pipe instead of piling frames up in memory. When the
//! output ends, the pump says how the process ended, and whether its container went with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::Event;
use crate::acp::frame::Frame;
use crate::acp::lines::{Line, LineReader};
use crate::acp::shape::Shapes;

use crate::acp::outbox::Gauge;
use crate::acp::runtime::{AgentName, AgentProcess, AgentStdout, ExitInfo, RuntimeError};

/// The clients an agent streams to, shared with its pump.
pub(super) type Consumers = Arc<Mutex<Vec<Gauge>>>;

pub(super) enum BackendEvent {
    Spawned(Result<AgentProcess, RuntimeError>),
    Frames(Vec<Frame>),
    /// The agent's stdout ended; carries how the process exited, when known.
    Closed {
        status: Option<ExitInfo>,
        /// The container, named, when it is gone too: then that is the reason.
        container_gone: Option<String>,
    },
}

/// A read of at least this many lines is parsed on the parser thread when it is free.
const OFFLOAD_LINES: usize = 64;

/// A read handed to the parser thread, and where its frames go.
struct Job {
    lines: Vec<Line>,
    shapes: Shapes,
    done: tokio::sync::oneshot::Sender<Parsed>,
}

impl Job {
    /// Parses here, on the caller's thread.
    fn run(self) {
        // A pump that stopped waiting has nothing to receive the frames.
        let _ = self.done.send(parse(self.lines, self.shapes));
    }
}

/// The parser thread: one for the process, started on first use, parsing one large read at a
/// time for whichever pump hands it one while it is free.
struct Parser {
    jobs: std::sync::mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
}

impl Parser {
    /// The process's parser thread; `None` when it cannot be started (reads are then parsed
    /// in place).
    fn get() -> Option<&'static Parser> {
        static PARSER: OnceLock<Option<Parser>> = OnceLock::new();
        PARSER
            .get_or_init(|| {
                let (jobs, queue) = std::sync::mpsc::channel::<Job>();
                let busy = Arc::new(AtomicBool::new(false));
                let free = busy.clone();
                std::thread::Builder::new()
                    .name("terok-parser".into())
                    .spawn(move || {
                        for job in queue {
                            job.run();
                            free.store(false, Ordering::Release);
                        }
                    })
                    .map_err(|e| tracing::warn!("no parser thread: {e}"))
                    .ok()?;
                Some(Parser { jobs, busy })
            })
            .as_ref()
    }

    /// Hands `job` to the parser thread when it is free; gives the job back when it is not
    /// (or when the thread is gone).
    fn try_run(&self, job: Job) -> Result<(), Job> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(job);
        }
        let sent = self.jobs.send(job).map_err(|unsent| unsent.0);
        if sent.is_err() {
            self.busy.store(false, Ordering::Release);
        }
        sent
    }
}

/// What a pump needs besides the agent's stdout.
pub(super) struct PumpContext {
    pub slot: u32,
    pub events: tokio::sync::mpsc::Sender<Event>,
    pub consumers: Consumers,
    pub server: Arc<crate::acp::server::Server>,
    pub agent: AgentName,
    pub exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
}

/// Starts the pump of an agent's stdout.
pub(super) fn spawn(reader: LineReader<AgentStdout>, cx: PumpContext) {
    let tracker = cx.server.tracker.clone();
    tracker.spawn(async move {
        read_frames(
            cx.slot,
            reader,
            &cx.events,
            &cx.consumers,
            &cx.server,
            &cx.agent,
        )
        .await;
        report_end(cx.slot, cx.events, cx.server, cx.exit).await;
    });
}

/// Lines read, parsed into frames; a stream's text chunk shapes carried along.
struct Parsed {
    frames: Vec<Frame>,
    shapes: Shapes,
    /// Lines dropped: malformed or over the frame limit, each with the reason.
    dropped: Vec<String>,
}

fn parse(lines: Vec<Line>, mut shapes: Shapes) -> Parsed {
    let mut frames = Vec::with_capacity(lines.len());
    let mut dropped = Vec::new();
    for line in lines {
        match line {
            Line::Frame(raw) if raw.iter().all(u8::is_ascii_whitespace) => {}
            Line::Frame(raw) => match Frame::parse_shaped(raw, &mut shapes) {
                Ok(frame) => frames.push(frame),
                Err(e) => dropped.push(format!("a malformed line: {e}")),
            },
            Line::Overlong(len) => dropped.push(format!("a {len} byte line: over the frame limit")),
        }
    }
    Parsed {
        frames,
        shapes,
        dropped,
    }
}

/// Reads the agent's stdout into batches of frames for the hub, until it ends or the hub is
/// gone.
async fn read_frames(
    slot: u32,
    mut reader: LineReader<AgentStdout>,
    events: &tokio::sync::mpsc::Sender<Event>,
    consumers: &Consumers,
    server: &crate::acp::server::Server,
    agent: &AgentName,
) {
    // What this agent's text chunks look like, so that most of its stream is read by shape.
    let mut shapes = Shapes::default();
    let parser = Parser::get();
    loop {
        // Every client this agent streams to must have room: a slow one pauses the agent.
        let gauges = consumers.lock().map(|g| g.clone()).unwrap_or_default();
        for gauge in gauges {
            gauge.wait_for_room().await;
        }
        let more = match reader.fill().await {
            Ok(more) => more,
            Err(e) => {
                tracing::debug!(agent = %agent, "stdout read failed: {e}");
                false
            }
        };
        let mut lines = Vec::new();
        while let Some(line) = reader.next_buffered() {
            lines.push(line);
        }
        if !more {
            lines.extend(reader.take_tail());
        }
        let taken = std::mem::take(&mut shapes);
        let parsed = match parser.filter(|_| lines.len() >= OFFLOAD_LINES) {
            Some(parser) => {
                let (done, parsed) = tokio::sync::oneshot::channel();
                let job = Job {
                    lines,
                    shapes: taken,
                    done,
                };
                if let Err(job) = parser.try_run(job) {
                    // Busy with another agent's read: this one is parsed here.
                    job.run();
                }
                parsed.await.ok()
            }
            None => Some(parse(lines, taken)),
        };
        let Some(parsed) = parsed else {
            // The parser thread went away with the job: nothing more can be read in order.
            return;
        };
        shapes = parsed.shapes;
        for reason in parsed.dropped {
            server.agent_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(agent = %agent, "dropping {reason} from the agent");
        }
        if !parsed.frames.is_empty()
            && events
                .send(Event::Backend {
                    slot,
                    event: BackendEvent::Frames(parsed.frames),
                })
                .await
                .is_err()
        {
            return;
        }
        if !more {
            return;
        }
    }
}

/// Tells the hub that the agent's output ended: how the process exited, and whether its
/// container is gone.
async fn report_end(
    slot: u32,
    events: tokio::sync::mpsc::Sender<Event>,
    server: Arc<crate::acp::server::Server>,
    mut exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
) {
    if events.is_closed() {
        return;
    }
    // Give the process a moment to be reaped, so the error can say how it ended.
    let status =
        tokio::time::timeout(Duration::from_millis(500), exit.wait_for(Option::is_some)).await;
    let status = status.ok().and_then(|s| s.ok().and_then(|s| *s));
    // An agent often ends because its container did: say so rather than "exited".
    // A killed agent usually means its container is stopping, which the engine may not report
    // yet: look again for a moment before calling it the agent's own exit.
    let runtime = &server.runtime;
    let killed = matches!(
        status,
        Some(ExitInfo::Code(137)) | Some(ExitInfo::Signal(9))
    );
    let mut container_gone = None;
    for attempt in 0..if killed { 6 } else { 1 } {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !runtime.is_alive().await {
            container_gone = Some(runtime.describe());
            break;
        }
    }
    let _ = events
        .send(Event::Backend {
            slot,
            event: BackendEvent::Closed {
                status,
                container_gone,
            },
        })
        .await;
}
