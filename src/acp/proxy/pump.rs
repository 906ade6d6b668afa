//! An agent's stdout, read into batches of frames for the hub.
//!
//! Splitting and envelope parsing run here, on a thread of their own ([`pump_thread`]) shared
//! by every agent's pump, so that they overlap with the hub's work instead of queueing behind
//! it on the same worker (the runtime would otherwise run a woken hub on the pump's own
//! worker). Before each read the pump waits until every client the agent streams to has room
//! in its outbox, so a client that reads slowly throttles the agent through its pipe instead of
//! piling frames up in memory. When the output ends, the pump says how the process ended, and
//! whether its container went with it (that part runs on the daemon's runtime, which owns the
//! container engine's client).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::Event;
use crate::acp::frame::Frame;
use crate::acp::lines::{Line, LineReader};
use crate::acp::shape::Shapes;
use std::sync::Mutex;

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

/// The runtime every pump reads on: one thread, started on first use, that lives as long as
/// the process. `None` when the thread cannot be started; pumps then run on the caller's
/// runtime.
fn pump_thread() -> Option<&'static tokio::runtime::Handle> {
    static PUMPS: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    PUMPS
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| tracing::warn!("no runtime for the agents' pumps: {e}"))
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("terok-pumps".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(|e| tracing::warn!("no thread for the agents' pumps: {e}"))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Starts the pump of an agent's stdout: frames are read on the pumps' thread, the end is
/// reported from the caller's runtime.
pub(super) fn spawn(reader: LineReader<AgentStdout>, cx: PumpContext) {
    let tracker = cx.server.tracker.clone();
    let (done, ended) = tokio::sync::oneshot::channel();
    let (events, consumers, server, agent) = (
        cx.events.clone(),
        cx.consumers,
        cx.server.clone(),
        cx.agent.clone(),
    );
    let reading = async move {
        read_frames(cx.slot, reader, &events, consumers, &server, &agent).await;
        let _ = done.send(());
    };
    match pump_thread() {
        Some(pumps) => drop(tracker.spawn_on(reading, pumps)),
        None => drop(tracker.spawn(reading)),
    }
    tracker.spawn(async move {
        // The reading ended (or its thread's runtime went away with the process).
        let _ = ended.await;
        report_end(cx.slot, cx.events, cx.server, cx.exit).await;
    });
}

/// Reads the agent's stdout into batches of frames for the hub, until it ends or the hub is
/// gone.
async fn read_frames(
    slot: u32,
    mut reader: LineReader<AgentStdout>,
    events: &tokio::sync::mpsc::Sender<Event>,
    consumers: Consumers,
    server: &crate::acp::server::Server,
    agent: &AgentName,
) {
    // What this agent's text chunks look like, so that most of its stream is read by shape.
    let mut shapes = Shapes::default();
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
        let mut batch = Vec::new();
        let mut take = |line: Line, batch: &mut Vec<Frame>| match line {
            Line::Frame(raw) if raw.iter().all(u8::is_ascii_whitespace) => {}
            Line::Frame(raw) => match Frame::parse_shaped(raw, &mut shapes) {
                Ok(frame) => batch.push(frame),
                Err(e) => {
                    server.agent_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(agent = %agent, "dropping a malformed line from the agent: {e}")
                }
            },
            Line::Overlong(len) => {
                server.agent_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent = %agent, "dropping a {len} byte line from the agent: over the frame limit")
            }
        };
        while let Some(line) = reader.next_buffered() {
            take(line, &mut batch);
        }
        if !more {
            if let Some(line) = reader.take_tail() {
                take(line, &mut batch);
            }
        }
        if !batch.is_empty()
            && events
                .send(Event::Backend {
                    slot,
                    event: BackendEvent::Frames(batch),
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
