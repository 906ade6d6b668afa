//! An agent's stdout, read into batches of frames for the hub.
//!
//! Splitting and envelope parsing run here, beside the hub (on another core when there is
//! one). Before each read the pump waits until every client the agent streams to has room in
//! its outbox, so a client that reads slowly throttles the agent through its pipe instead of
//! piling frames up in memory. When the output ends, the pump says how the process ended, and
//! whether its container went with it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Event;
use crate::acp::frame::Frame;
use crate::acp::lines::{Line, LineReader};
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

/// Reads the agent's stdout into batches of frames for the hub.
pub(super) async fn pump(
    slot: u32,
    mut reader: LineReader<AgentStdout>,
    events: tokio::sync::mpsc::Sender<Event>,
    consumers: Consumers,
    server: Arc<crate::acp::server::Server>,
    agent: AgentName,
    mut exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
) {
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
        let take = |line: Line, batch: &mut Vec<Frame>| match line {
            Line::Frame(raw) if raw.iter().all(u8::is_ascii_whitespace) => {}
            Line::Frame(raw) => match Frame::parse(raw) {
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
            break;
        }
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
