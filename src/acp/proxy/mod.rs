//! The aggregating proxy: the daemon's agents and sessions, and the connections that view them.
//!
//! One task, the [`Hub`], owns everything by value: the agent processes ([`backend`]), the
//! sessions ([`session`]) and the client connections that currently look at them
//! ([`connection`]). Agent processes and sessions belong to the daemon, not to a connection: one
//! process per agent (and per client-capability profile) serves the sessions of every
//! connection, a session is held by at most one connection at a time, and a connection that
//! goes away only detaches its sessions; their turns keep running and their transcripts keep
//! growing until a client reattaches or the detached time-to-live runs out.
//!
//! The hub `select!`s over [`Event`]s (client lines, agent frames, spawned processes, finished
//! catalog waits, timers) and the daemon's shutdown. It never waits on a peer: everything it
//! writes goes through an [`Outbox`], and each agent's stdout is read by its own pump task,
//! which is where backpressure from slow clients is applied.
//!
//! Submodules, bottom up: [`session`] and [`backend`] hold the state; [`relay`] translates what
//! agents send; [`bind`] attaches a session to an agent (taking a warm [`spare`] when it
//! fits); [`client`] handles what clients send; [`routing`] reopens, lists, closes and deletes
//! sessions; [`connection`] attaches and detaches connections; [`idle`] ends agent processes
//! nothing needs; [`handover`] carries context across an agent switch; [`modes`] offers legacy
//! modes as a select.

mod backend;
mod bind;
mod client;
mod connection;
mod forward;
mod handover;
mod idle;
mod list;
mod modes;
mod pump;
mod relay;
mod routing;
mod session;
mod spare;
mod status;
mod vault;

use std::collections::HashMap;

/// The maps every forwarded frame looks into: foldhash (seeded per process) instead of SipHash.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::sync::mpsc;

use super::frame::Frame;
use super::lines::Line;
use super::message::{self, RpcError};
use super::outbox::Outbox;
use super::picker::Catalog;
use super::runtime::AgentName;
use super::server::{FrameDebug, Server};
use super::trace::{Hop, Peer as TracePeer, Record};
use backend::Backend;
use connection::Conn;
use pump::BackendEvent;
use session::Session;

pub use connection::serve_connection;

/// A connection's number, unique for the daemon's lifetime.
pub type ConnId = u64;

/// How many events may queue for the hub: each agent batch is up to one read (64 KiB).
const EVENT_QUEUE: usize = 4;

/// Something that happened outside the hub.
enum Event {
    Connected {
        conn: ConnId,
        outbox: Outbox,
        peer: connection::Peer,
    },
    ClientLines {
        conn: ConnId,
        lines: Vec<Line>,
    },
    /// The connection's socket read EOF, a read or a write failed: it is gone.
    Disconnected {
        conn: ConnId,
    },
    Backend {
        slot: u32,
        event: BackendEvent,
    },
    /// The catalog a deferred `session/new` waited for.
    SessionReady {
        conn: ConnId,
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
        conn: ConnId,
        client_id: Bytes,
        outcome: Result<Catalog, super::server::CatalogError>,
    },
    /// The set of usable agents or their models changed.
    CatalogChanged(Catalog),
    /// A detached session's time-to-live may have run out.
    DetachExpired {
        session: Arc<str>,
        epoch: u64,
    },
    /// An agent process may have served no session for its idle time.
    IdleExpired {
        slot: u32,
        epoch: u64,
    },
    /// A login through the vault has been taken in: the agent's new state, for the client that
    /// reported the login.
    VaultLoginDone {
        conn: ConnId,
        client_id: Bytes,
        agent: AgentName,
        outcome: Result<bool, String>,
    },
}

/// An agent→client request in flight, by the id the client saw (unique daemon-wide).
struct AgentRequest {
    slot: u32,
    backend_id: Bytes,
    method: super::method::Method,
    /// The proxy session it concerns, when it names one.
    session: Option<Arc<str>>,
    /// The connection it was asked of; `None` while it waits for a client to attach.
    conn: Option<ConnId>,
    /// The frame as the client sees it (ids and session spliced), to ask again on reattach.
    frame: Bytes,
}

/// The daemon's agents, sessions and connections.
struct Hub {
    server: Arc<Server>,
    events: mpsc::Sender<Event>,
    conns: FastMap<ConnId, Conn>,
    sessions: FastMap<Arc<str>, Session>,
    backends: FastMap<u32, Backend>,
    /// The live backend of each agent and client-capability profile.
    slots: HashMap<(AgentName, Arc<str>), u32>,
    next_slot: u32,
    agent_requests: HashMap<u64, AgentRequest>,
    next_agent_request: u64,
    next_bind_attempt: u64,
    /// Aggregated `session/list` requests waiting for their agents.
    lists: HashMap<u64, list::ListAggregate>,
    next_list: u64,
    /// Tells stale timers from current ones.
    next_epoch: u64,
    /// The `cwd` of the latest `session/new`, where spares are opened on the local runtime.
    latest_cwd: Option<String>,
    /// The latest catalog the hub has seen.
    catalog: Option<Arc<Catalog>>,
    /// Agents whose process was started ahead of their first bind.
    warmed: std::collections::HashSet<AgentName>,
    /// Timers (bind deadlines, detached and idle times): events that fire later. Stale ones
    /// are recognised by their epoch or attempt and do nothing.
    timers: tokio_util::time::DelayQueue<Event>,
    /// Frames and bytes each way, errors: what `acp status` reports.
    counters: crate::acp::status::Counters,
    /// When the current event began: one clock read per event, not per frame.
    now: std::time::Instant,
    /// This event's frames for the wire trace, when one is written.
    trace: Vec<Record>,
}

/// Counts the frames (lines) and bytes of a batch about to be sent; returns the frames.
fn count_lines(flow: &mut crate::acp::status::Flow, batch: &[u8]) -> u64 {
    let frames = memchr::memchr_iter(b'\n', batch).count() as u64;
    flow.frames += frames;
    flow.bytes += batch.len() as u64;
    frames
}

/// Answers an agent's question to the client as cancelled.
fn cancel_agent_request(buf: &mut BytesMut, method: &super::method::Method, backend_id: &[u8]) {
    if *method == super::method::Method::RequestPermission {
        let result = serde_json::json!({"outcome": {"outcome": "cancelled"}});
        message::write_result(buf, backend_id, &result);
    } else {
        let error = RpcError::new(message::REQUEST_CANCELLED, "nobody is there to answer");
        message::write_error(buf, Some(backend_id), &error);
    }
}

/// Starts the hub of `server`; connections reach it through the returned sender.
pub fn spawn_hub(server: Arc<Server>) -> HubHandle {
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (adopt_tx, adopt) = mpsc::unbounded_channel();
    server.set_adopter(adopt_tx);
    let hub = Hub {
        server: server.clone(),
        events: events_tx.clone(),
        conns: FastMap::default(),
        sessions: FastMap::default(),
        backends: FastMap::default(),
        slots: HashMap::new(),
        next_slot: 0,
        agent_requests: HashMap::new(),
        next_agent_request: 0,
        next_bind_attempt: 0,
        lists: HashMap::new(),
        next_list: 0,
        next_epoch: 0,
        latest_cwd: None,
        catalog: None,
        warmed: Default::default(),
        timers: tokio_util::time::DelayQueue::new(),
        counters: Default::default(),
        now: std::time::Instant::now(),
        trace: Vec::new(),
    };
    let span = tracing::info_span!("hub");
    server.tracker.spawn(tracing::Instrument::instrument(
        hub.run(events, adopt),
        span,
    ));
    HubHandle { events: events_tx }
}

/// What a connection task needs to reach the hub.
#[derive(Clone)]
pub struct HubHandle {
    events: mpsc::Sender<Event>,
}

impl Hub {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut adopt: mpsc::UnboundedReceiver<super::probe::WarmAgent>,
    ) {
        let mut changes = self.server.cache.subscribe();
        loop {
            tokio::select! {
                biased;
                _ = self.server.shutdown.cancelled() => break,
                Some(expired) = futures::StreamExt::next(&mut self.timers), if !self.timers.is_empty() => {
                    self.on_event(expired.into_inner());
                }
                Some(warm) = adopt.recv() => self.on_adopt(warm),
                Some(event) = events.recv() => {
                    self.now = std::time::Instant::now();
                    let conn = event.connection();
                    // A panic handling one event must not take every session down with it:
                    // the connection that sent it is dropped, the hub serves on.
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.on_event(event)
                    }));
                    if let Err(panic) = handled {
                        tracing::error!("handling an event panicked: {}", panic_message(&*panic));
                        if let Some(conn) = conn {
                            self.on_disconnected(conn);
                        }
                    }
                }
                Ok(()) = changes.changed() => self.refresh_catalog(),
            }
            self.flush();
        }
        self.shut_down();
        self.flush();
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected { conn, outbox, peer } => self.on_connected(conn, outbox, peer),
            Event::ClientLines { conn, lines } => {
                for line in lines {
                    self.on_client_line(conn, line);
                }
            }
            Event::Disconnected { conn } => self.on_disconnected(conn),
            Event::Backend { slot, event } => self.on_backend_event(slot, event),
            Event::SessionReady {
                conn,
                client_id,
                params,
                outcome,
            } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.deferred -= 1;
                    self.on_session_ready(conn, client_id, params, outcome);
                }
            }
            Event::BindTimeout { session, attempt } => self.on_bind_timeout(&session, attempt),
            Event::InitializeReady {
                conn,
                client_id,
                outcome,
            } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.deferred -= 1;
                    self.on_initialize_ready(conn, client_id, outcome);
                }
            }
            Event::CatalogChanged(catalog) => self.on_catalog_changed(catalog),
            Event::DetachExpired { session, epoch } => self.on_detach_expired(&session, epoch),
            Event::IdleExpired { slot, epoch } => self.on_idle_expired(slot, epoch),
            Event::VaultLoginDone {
                conn,
                client_id,
                agent,
                outcome,
            } => self.on_vault_login_done(conn, &client_id, &agent, outcome),
        }
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Hands `event` to the hub again after `delay`.
    fn after(&mut self, delay: std::time::Duration, event: Event) {
        self.timers.insert(event, delay);
    }

    /// Fetches the catalog again after the cache changed.
    fn refresh_catalog(&mut self) {
        let (server, events) = (self.server.clone(), self.events.clone());
        self.server.tracker.spawn(async move {
            tokio::select! {
                outcome = server.catalog_within(std::time::Duration::ZERO) => {
                    if let Ok(catalog) = outcome {
                        let _ = events.send(Event::CatalogChanged(catalog)).await;
                    }
                }
                _ = server.shutdown.cancelled() => {}
            }
        });
    }

    /// Every open picker shows the new catalog at once: an agent whose probe landed late (or
    /// that just logged in) appears, one that went away disappears. A session in the middle of
    /// a bind is told when the bind completes.
    fn on_catalog_changed(&mut self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        self.catalog = Some(catalog.clone());
        for conn in self.conns.values_mut() {
            if conn.catalog.is_some() {
                conn.catalog = Some(catalog.clone());
            }
        }
        let values = catalog.values();
        let mut updates = Vec::new();
        for session in self.sessions.values_mut() {
            if session.catalog.values() == values {
                continue;
            }
            session.catalog = catalog.clone();
            if session.is_binding() {
                continue;
            }
            let bound = matches!(session.state, session::SessionState::Bound(_));
            if !bound && catalog.resolve(&session.model).is_err() {
                if let Some(default) = catalog.default_value() {
                    session.model = default;
                }
            }
            updates.push((session.id.clone(), session.config_options()));
        }
        for (sid, options) in updates {
            tracing::info!(session = %sid, "the picker changed");
            let update = serde_json::json!({"sessionUpdate": "config_option_update", "configOptions": options});
            self.session_update(&sid, update);
        }
        self.keep_spares();
    }

    /// Sends what this event produced: one batch per peer (and hands the event's frames to
    /// the wire trace, when one is written).
    fn flush(&mut self) {
        let tracer = &self.server.trace;
        let traced = tracer.enabled();
        // Routes go first, and always: the frames after them need them to name sessions.
        for (slot, backend) in self.backends.iter_mut() {
            for (agent_sid, session) in backend.new_routes.drain(..) {
                if traced {
                    self.trace.push(Record::Route {
                        slot: *slot,
                        agent_sid,
                        session,
                    });
                }
            }
        }
        let (counters, trace) = (&mut self.counters, &mut self.trace);
        // Asked once: frames the writer has no room for are counted, not gathered.
        let accepting = tracer.accepting();
        let now = self.now;
        let mut dropped = 0;
        let mut keep = |hop, peer, batch: Bytes, frames: u64| {
            if accepting {
                trace.push(Record::Frames {
                    at: now,
                    hop,
                    peer,
                    bytes: batch,
                });
            } else {
                dropped += frames;
            }
        };
        for (id, conn) in self.conns.iter_mut() {
            if let Some(sent) = conn.flush(traced) {
                counters.daemon_to_client.frames += sent.frames;
                counters.daemon_to_client.bytes += sent.bytes as u64;
                if let Some(batch) = sent.batch {
                    keep(
                        Hop::DaemonToClient,
                        TracePeer::Conn(*id),
                        batch,
                        sent.frames,
                    );
                }
            }
        }
        for (slot, backend) in self.backends.iter_mut() {
            if let Some(batch) = backend.flush() {
                let frames = count_lines(&mut counters.daemon_to_agent, &batch);
                if traced {
                    let peer = TracePeer::Agent {
                        slot: *slot,
                        agent: backend.agent.as_arc(),
                    };
                    keep(Hop::DaemonToAgent, peer, batch, frames);
                }
            }
        }
        if traced {
            tracer.drop_frames(dropped);
            if !self.trace.is_empty() {
                tracer.submit(std::mem::take(&mut self.trace));
            }
        }
    }

    /// Keeps frames that crossed `hop` from the agent process in `slot`, for the wire trace.
    fn trace_frames(&mut self, hop: Hop, slot: u32, bytes: Bytes) {
        if let Some(backend) = self.backends.get(&slot) {
            self.trace.push(Record::Frames {
                at: self.now,
                hop,
                peer: TracePeer::Agent {
                    slot,
                    agent: backend.agent.as_arc(),
                },
                bytes,
            });
        }
    }

    /// The daemon is stopping: every open client request gets an error that says why, turns
    /// are cancelled, spare sessions closed, transcripts saved and agent processes ended.
    fn shut_down(&mut self) {
        let reason = self
            .server
            .stop_reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let error = RpcError::new(message::INTERNAL_ERROR, reason);
        let mut open: Vec<(ConnId, Bytes)> = Vec::new();
        for backend in self.backends.values_mut() {
            for (_, pending) in backend.pending.drain() {
                if let Some(client) = pending.client() {
                    open.push(client);
                }
            }
        }
        for session in self.sessions.values() {
            if let session::SessionState::Binding { reply, queue, .. } = &session.state {
                open.extend(reply.asker().map(|(conn, id)| (conn, id.clone())));
                open.extend(
                    queue
                        .iter()
                        .filter(|(_, f)| f.kind() == super::frame::FrameKind::Request)
                        .filter_map(|(conn, f)| f.id_raw().map(|id| (*conn, id))),
                );
            }
        }
        for (conn, id) in open {
            self.reply_error(conn, Some(&id), &error);
        }
        for (_, request) in std::mem::take(&mut self.agent_requests) {
            if let Some(backend) = self.backends.get_mut(&request.slot) {
                cancel_agent_request(&mut backend.buf, &request.method, &request.backend_id);
            }
        }
        self.save_transcripts();
        self.close_spares();
        for (_, mut backend) in self.backends.drain() {
            backend.cancel_sessions();
            backend.flush();
            backend.terminate_after(std::time::Duration::from_millis(200), &self.server.tracker);
        }
        self.server.clear_bound();
    }

    // ---- writing to clients ----

    fn reply_result(&mut self, conn: ConnId, id: &[u8], result: &Value) {
        if let Some(c) = self.conns.get_mut(&conn) {
            message::write_result(&mut c.buf, id, result);
        }
    }

    fn reply_error(&mut self, conn: ConnId, id: Option<&[u8]>, error: &RpcError) {
        tracing::debug!(
            conn,
            code = error.code,
            "answering with an error: {}",
            error.message
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            message::write_error(&mut c.buf, id, error);
        }
    }

    /// A `session/update` the proxy originates: recorded, and sent to the session's holder.
    fn session_update(&mut self, sid: &Arc<str>, update: Value) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        session.transcript.record_update(update.clone());
        if let Some(conn) = session.holder.and_then(|c| self.conns.get_mut(&c)) {
            let params = serde_json::json!({"sessionId": &**sid, "update": update});
            message::write_notification(&mut conn.buf, "session/update", &params);
        }
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

impl Event {
    /// The connection an event came from, if one.
    fn connection(&self) -> Option<ConnId> {
        match self {
            Event::Connected { conn, .. }
            | Event::ClientLines { conn, .. }
            | Event::Disconnected { conn }
            | Event::SessionReady { conn, .. }
            | Event::InitializeReady { conn, .. } => Some(*conn),
            _ => None,
        }
    }
}

/// The message a panic was raised with, when it is text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a text message)")
}
