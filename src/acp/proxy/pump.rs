//! An agent's stdout, read into batches of frames for the hub.
//!
//! Each agent's pump is a task beside the hub: it reads, splits the read into lines and parses
//! their envelopes in place, and hands the batch to the hub. Parsing on the pump's own worker
//! costs no hop: a parser thread that took large reads (so that a stream's parsing overlapped
//! the hub's handling of the batch before it) paid two thread wake-ups per read, which came to
//! cost more than the overlap gained once the hub's handling was cheap (see the README's
//! benchmark notes). Before each read the pump waits until every client the agent streams to
//! has room in its outbox, so a client that reads slowly throttles the agent through its pipe
//! instead of piling frames up in memory. When the output ends, the pump says how the process
//! ended, and whether its container went with it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
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

/// The most frames a batch is given room for before its read is parsed.
const BATCH_ROOM: usize = 512;

/// Parses one line of the agent's output onto `frames`. A line that is not a frame is counted
/// and logged; a blank one is skipped quietly.
fn take_line(
    line: Line,
    shapes: &mut Shapes,
    frames: &mut Vec<Frame>,
    server: &crate::acp::server::Server,
    agent: &AgentName,
) {
    let reason = match line {
        Line::Frame(raw) if raw.iter().all(u8::is_ascii_whitespace) => return,
        Line::Frame(raw) => match Frame::parse_shaped(raw, shapes) {
            Ok(frame) => return frames.push(frame),
            Err(e) => format!("a malformed line: {e}"),
        },
        Line::Overlong(len) => format!("a {len} byte line: over the frame limit"),
    };
    server.agent_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(agent = %agent, "dropping {reason} from the agent");
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
    let mut last_batch = 0;
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
        // A stream's reads are alike: room for as many frames as the last one brought (up to a
        // bound, so that an answer after a flood of tiny lines does not take a mapping of its
        // own).
        let mut frames = Vec::with_capacity(last_batch.min(BATCH_ROOM));
        while let Some(line) = reader.next_buffered() {
            take_line(line, &mut shapes, &mut frames, server, agent);
        }
        if !more {
            if let Some(line) = reader.take_tail() {
                take_line(line, &mut shapes, &mut frames, server, agent);
            }
        }
        last_batch = frames.len();
        if !frames.is_empty()
            && events
                .send(Event::Backend {
                    slot,
                    event: BackendEvent::Frames(frames),
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
