//! One client connection: the aggregating proxy proper.
//!
//! Each connection is one task that owns all of its state by value: the client's sessions, the
//! backends (one wrapper process per agent, shared by the connection's sessions on that agent)
//! and the maps that translate ids between them. The task `select!`s over three sources: lines
//! from the client, [`Event`]s (backend frames, spawned processes, finished `session/new`
//! probes, timeouts) and the daemon's shutdown. It never waits on a peer: everything it writes
//! goes through an [`Outbox`], and each backend's stdout is read by its own pump task, which is
//! where backpressure from a slow client is applied.
//!
//! Submodules: [`client`] handles what the client sends, [`backend`] starts backends and handles
//! what they send, [`bind`] is the session state machine that attaches a session to an agent.

mod backend;
mod bind;
mod client;
mod routing;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::frame::Frame;
use super::lines::LineReader;
use super::message::{self, RpcError};
use super::outbox::Outbox;
use super::picker::Catalog;
use super::server::{FrameDebug, Server};
use backend::{Backend, BackendEvent};
use session::Session;

/// Events a connection task may have queued: each backend batch is up to one read (64 KiB).
const EVENT_QUEUE: usize = 4;

/// Something that happened outside the client stream.
enum Event {
    Backend {
        slot: u32,
        event: BackendEvent,
    },
    /// The catalog a deferred `session/new` waited for.
    SessionReady {
        client_id: Bytes,
        params: Value,
        outcome: Result<Catalog, RpcError>,
    },
    /// A bind that has not finished in time.
    BindTimeout {
        session: Arc<str>,
        attempt: u64,
    },
    /// The catalog a deferred `initialize` waited for.
    InitializeReady {
        client_id: Bytes,
        outcome: Result<Catalog, super::server::CatalogError>,
    },
    /// The set of usable agents or their models changed.
    CatalogChanged(Catalog),
}

/// An agent→client request in flight, by the id the client saw.
struct AgentRequest {
    slot: u32,
    backend_id: Bytes,
    method: super::method::Method,
}

struct Connection {
    server: Arc<Server>,
    id: u64,
    client: Outbox,
    /// Frames for the client, sent as one batch when the current event is handled.
    client_buf: BytesMut,
    events: mpsc::Sender<Event>,
    /// The client's own `initialize` params, replayed to every backend.
    client_init: Option<Value>,
    sessions: HashMap<Arc<str>, Session>,
    backends: HashMap<u32, Backend>,
    /// The live backend of each agent.
    slots: HashMap<super::runtime::AgentName, u32>,
    next_slot: u32,
    agent_requests: HashMap<u64, AgentRequest>,
    next_agent_request: u64,
    /// `session/new` requests waiting for the catalog.
    deferred: usize,
    next_bind_attempt: u64,
    /// The latest catalog this connection has seen (for auth methods and live updates).
    catalog: Option<Arc<Catalog>>,
    /// The client has closed its sending side.
    client_eof: bool,
    /// Aggregated `session/list` requests waiting for their agents.
    lists: HashMap<u64, routing::ListAggregate>,
    next_list: u64,
}

/// Answers an agent's question to the client as cancelled.
fn cancel_agent_request(buf: &mut BytesMut, method: &super::method::Method, backend_id: &[u8]) {
    if *method == super::method::Method::RequestPermission {
        let result = serde_json::json!({"outcome": {"outcome": "cancelled"}});
        message::write_result(buf, backend_id, &result);
    } else {
        let error = RpcError::new(message::REQUEST_CANCELLED, "the client is gone");
        message::write_error(buf, Some(backend_id), &error);
    }
}

/// Serves one client until it leaves or the daemon shuts down.
pub async fn serve_connection(server: Arc<Server>, stream: UnixStream) {
    let id = server.next_connection_id();
    // Only the daemon's own user (and users explicitly allowed) may talk to its agents.
    match stream.peer_cred() {
        Ok(cred) if server.config.allows_uid(cred.uid()) => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "refused a connection from another user"
            );
            return;
        }
        Err(e) => {
            tracing::warn!("refused a connection whose peer cannot be identified: {e}");
            return;
        }
    }
    // Runs even when the connection task panics: its sessions leave the `.bound` marker.
    struct Ended(Arc<Server>, u64);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.connection_ended(self.1);
        }
    }
    let _ended = Ended(server.clone(), id);
    let span = tracing::info_span!("conn", id);
    run(server, stream, id).instrument(span).await
}

async fn run(server: Arc<Server>, stream: UnixStream, id: u64) {
    tracing::debug!("client connected");
    let (read, write) = stream.into_split();
    let client = Outbox::spawn(write, &server.tracker, format!("client {id}"));
    // Small, so that a backend streaming faster than the client reads waits in its pump (where
    // the outbox watermark applies) instead of piling batches up here.
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let mut conn = Connection {
        server: server.clone(),
        id,
        client,
        client_buf: BytesMut::with_capacity(64 * 1024),
        events: events_tx,
        client_init: None,
        sessions: HashMap::new(),
        backends: HashMap::new(),
        slots: HashMap::new(),
        next_slot: 0,
        agent_requests: HashMap::new(),
        next_agent_request: 0,
        deferred: 0,
        next_bind_attempt: 0,
        catalog: None,
        client_eof: false,
        lists: HashMap::new(),
        next_list: 0,
    };
    let mut changes = server.cache.subscribe();
    let mut reader = LineReader::new(read, server.config.max_frame);
    let mut client_eof = false;
    loop {
        tokio::select! {
            biased;
            _ = server.shutdown.cancelled() => {
                conn.fail_open_requests();
                conn.flush();
                break;
            }
            Some(event) = events.recv() => conn.on_event(event),
            Ok(()) = changes.changed() => conn.refresh_catalog(),
            read = reader.fill(), if !client_eof => {
                if !matches!(read, Ok(true)) {
                    client_eof = true;
                }
                while let Some(line) = reader.next_buffered() {
                    conn.on_client_line(line);
                }
                if client_eof {
                    if let Some(line) = reader.take_tail() {
                        conn.on_client_line(line);
                    }
                    tracing::debug!("client closed its side");
                    conn.client_stopped_sending();
                }
            }
        }
        conn.flush();
        // A client that half-closed still gets the answers to what it asked.
        if client_eof && (conn.is_idle() || conn.client.is_closed()) {
            break;
        }
    }
    conn.close();
    tracing::debug!("client disconnected");
}

impl Connection {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Backend { slot, event } => self.on_backend_event(slot, event),
            Event::SessionReady {
                client_id,
                params,
                outcome,
            } => {
                self.deferred -= 1;
                self.on_session_ready(client_id, params, outcome);
            }
            Event::BindTimeout { session, attempt } => self.on_bind_timeout(&session, attempt),
            Event::InitializeReady { client_id, outcome } => {
                self.deferred -= 1;
                self.on_initialize_ready(client_id, outcome);
            }
            Event::CatalogChanged(catalog) => self.on_catalog_changed(catalog),
        }
    }

    /// Fetches the catalog again after the cache changed.
    fn refresh_catalog(&mut self) {
        let (server, events) = (self.server.clone(), self.events.clone());
        self.server.tracker.spawn(async move {
            tokio::select! {
                outcome = server.catalog() => {
                    if let Ok(catalog) = outcome {
                        let _ = events.send(Event::CatalogChanged(catalog)).await;
                    }
                }
                _ = events.closed() => {}
            }
        });
    }

    /// Sessions not yet bound show the new picker at once; bound ones keep theirs.
    fn on_catalog_changed(&mut self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        self.catalog = Some(catalog.clone());
        let values = catalog.values();
        let mut updates = Vec::new();
        for session in self.sessions.values_mut() {
            if !matches!(session.state, session::SessionState::Unbound)
                || session.catalog.values() == values
            {
                continue;
            }
            session.catalog = catalog.clone();
            if catalog.resolve(&session.model).is_err() {
                if let Some(default) = catalog.default_value() {
                    session.model = default;
                }
            }
            updates.push((session.id.clone(), session.config_options()));
        }
        for (sid, options) in updates {
            tracing::info!(session = %sid, "the picker changed");
            let params = serde_json::json!({"sessionId": &*sid, "update": {"sessionUpdate": "config_option_update", "configOptions": options}});
            self.notify_client("session/update", &params);
        }
    }

    /// Sends what this event produced: one batch per peer.
    fn flush(&mut self) {
        if !self.client_buf.is_empty() {
            self.client.send(self.client_buf.split().freeze());
        }
        for backend in self.backends.values_mut() {
            backend.flush();
        }
    }

    /// Nothing is in flight that the client still waits for.
    fn is_idle(&self) -> bool {
        self.deferred == 0
            && self.sessions.values().all(|s| !s.is_binding())
            && self.backends.values().all(|b| !b.has_client_requests())
    }

    /// The client will send nothing more, so it cannot answer what the agents asked it: every
    /// open question is answered as cancelled (a permission request with the `cancelled`
    /// outcome, anything else with -32800), and so is any question asked from now on.
    fn client_stopped_sending(&mut self) {
        self.client_eof = true;
        for (_, request) in std::mem::take(&mut self.agent_requests) {
            if let Some(backend) = self.backends.get_mut(&request.slot) {
                cancel_agent_request(&mut backend.buf, &request.method, &request.backend_id);
            }
        }
    }

    /// The daemon is stopping: every request of the client still open gets an error that says
    /// why, instead of a connection that just closes.
    fn fail_open_requests(&mut self) {
        let reason = self
            .server
            .stop_reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let error = RpcError::new(message::INTERNAL_ERROR, reason);
        let mut open: Vec<Bytes> = Vec::new();
        for backend in self.backends.values_mut() {
            for (_, pending) in backend.pending.drain() {
                match pending {
                    backend::Pending::Client { client_id, .. }
                    | backend::Pending::Authenticate { client_id }
                    | backend::Pending::Deleted { client_id, .. } => open.push(client_id),
                    _ => {}
                }
            }
        }
        for session in self.sessions.values_mut() {
            if let session::SessionState::Binding { reply, queue, .. } = &mut session.state {
                open.extend(reply.client_id().cloned());
                open.extend(
                    queue
                        .iter()
                        .filter(|f| f.kind() == super::frame::FrameKind::Request)
                        .filter_map(|f| f.id_raw()),
                );
            }
        }
        for id in open {
            self.reply_error(Some(&id), &error);
        }
    }

    /// Ends every backend of this connection: questions the agents asked the client are
    /// answered as cancelled, their sessions are cancelled, and their processes end.
    fn close(&mut self) {
        self.client_stopped_sending();
        for (_, mut backend) in self.backends.drain() {
            backend.cancel_sessions();
            backend.flush();
            backend.terminate_after(std::time::Duration::from_millis(200), &self.server.tracker);
        }
        for session in self.sessions.values() {
            self.server.session_unbound(self.id, &session.id);
        }
    }

    // ---- writing to the client ----

    fn reply_result(&mut self, id: &[u8], result: &Value) {
        message::write_result(&mut self.client_buf, id, result);
    }

    fn reply_error(&mut self, id: Option<&[u8]>, error: &RpcError) {
        tracing::debug!(
            code = error.code,
            "answering with an error: {}",
            error.message
        );
        message::write_error(&mut self.client_buf, id, error);
    }

    fn notify_client(&mut self, method: &str, params: &Value) {
        message::write_notification(&mut self.client_buf, method, params);
    }

    fn trace_frame(&self, direction: &str, peer: &str, frame: &Frame) {
        match self.server.config.debug {
            FrameDebug::Off => {}
            FrameDebug::Summary => tracing::debug!(
                "{direction} {peer}: {} id={} {} bytes",
                frame.method().map(|m| m.as_str()).unwrap_or("response"),
                frame
                    .id_raw()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                frame.raw().len()
            ),
            FrameDebug::Full => tracing::debug!(
                "{direction} {peer}: {}",
                String::from_utf8_lossy(frame.raw())
            ),
        }
    }
}
