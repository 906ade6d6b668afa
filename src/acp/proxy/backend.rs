//! Agent processes: one per agent and client-capability profile, owned by the daemon.
//!
//! A backend is spawned through the runtime off the hub task; its stdout is read by a pump task
//! that splits and parses frames in batches (so envelope parsing runs beside the hub, on
//! another core) and pauses while any client it streams to is over its outbox's high-water
//! mark. A backend serves the sessions of every connection; the hub routes its answers by the
//! ids it minted and its notifications by session. A backend that serves no session ends
//! after the idle time ([`super::idle`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::pump::{BackendEvent, Consumers};
use super::session::SessionState;
use super::{ConnId, Event, FastMap, Hub};
use crate::acp::frame::Frame;
use crate::acp::lines::LineReader;
use crate::acp::message::{self, RpcError, INTERNAL_ERROR};
use crate::acp::method::Method;
use crate::acp::outbox::{Gauge, Outbox};
use crate::acp::runtime::{
    AgentName, AgentProcess, AgentStdin, AgentStdout, ProcessControl, StderrTail,
};
use crate::acp::session_defaults;
use crate::acp::trace::Hop;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BackendState {
    Starting,
    Initializing,
    Ready,
}

/// Why the proxy sent a request to an agent, so its answer can be routed.
pub(super) enum Pending {
    /// A client request, forwarded under a proxy id.
    Client {
        conn: ConnId,
        client_id: Bytes,
        method: Method,
        session: Option<Arc<str>>,
    },
    /// The replayed `initialize`.
    Initialize,
    /// The agent-side `session/new` (or reopen) of a bind.
    NewSession { session: Arc<str> },
    /// Selecting a model for a session.
    SelectModel {
        session: Arc<str>,
        model: String,
        reply: super::session::Reply,
        legacy_retry: bool,
    },
    /// A client's `authenticate`, routed to this agent.
    Authenticate { conn: ConnId, client_id: Bytes },
    /// A request whose answer nobody needs (closing an old session).
    Ignore,
    /// A client's `session/delete`, routed to the owning agent.
    Deleted {
        conn: ConnId,
        client_id: Bytes,
        session: String,
    },
    /// One agent's part of an aggregated `session/list`.
    ListPart { list: u64 },
    /// The `session/new` of a spare session, opened with `params`; with `learn`, its answer
    /// also tells the cache the agent's models (the process has just logged in).
    Spare { params: Value, learn: bool },
    /// A pick in the mode select made from a legacy block, sent as `session/set_mode`.
    SetMode {
        conn: ConnId,
        client_id: Bytes,
        session: Arc<str>,
        mode: String,
        /// Answer with the complete option list (a pick in the select) rather than as is.
        options: bool,
    },
}

impl Pending {
    /// The client request this stands for, if any: who to answer when the agent fails.
    pub fn client(&self) -> Option<(ConnId, Bytes)> {
        match self {
            Pending::Client {
                conn, client_id, ..
            }
            | Pending::Authenticate { conn, client_id }
            | Pending::SetMode {
                conn, client_id, ..
            }
            | Pending::Deleted {
                conn, client_id, ..
            } => Some((*conn, client_id.clone())),
            _ => None,
        }
    }
}

/// A backend session id and the proxy session it stands for.
pub(super) struct SessionRoute {
    pub proxy: Arc<str>,
    pub literal: Bytes,
}

pub(super) struct Backend {
    pub agent: AgentName,
    /// The `initialize` params it gets.
    pub init_params: Value,
    pub state: BackendState,
    input: Option<Outbox>,
    /// Frames for the agent, sent as one batch when the current event is handled.
    pub buf: BytesMut,
    control: Option<ProcessControl>,
    pub stderr: StderrTail,
    next_id: u64,
    pub pending: FastMap<u64, Pending>,
    pub routes: FastMap<String, SessionRoute>,
    /// Sessions waiting for this backend to finish `initialize`.
    pub waiting: Vec<Arc<str>>,
    /// Requests (method, params, why) waiting for `initialize` to finish.
    pub waiting_requests: Vec<(&'static str, Value, Pending)>,
    /// The agent's answer to the replayed `initialize`.
    pub init_result: Value,
    /// Agent sessions a switch moved away from: their late frames are dropped.
    pub retired: std::collections::HashSet<String, foldhash::fast::RandomState>,
    consumers: Consumers,
    /// The pending idle timer, if one runs.
    pub idle_epoch: Option<u64>,
    /// A session opened ahead of time, for the next bind that fits.
    pub spare: Option<Spare>,
    /// The agent did not open a spare when asked: it binds without one.
    pub spare_failed: bool,
    /// Binds waiting for the spare being opened now, since their params match it.
    pub spare_waiters: Vec<Arc<str>>,
    /// The `_meta` defaults of the sessions opened here (see `acp::session_defaults`).
    pub session_meta: Option<Arc<serde_json::Map<String, Value>>>,
    /// When its process was connected.
    pub started: Option<std::time::Instant>,
    /// Routes added during the current event, for the wire trace.
    pub new_routes: Vec<(String, Arc<str>)>,
}

impl Backend {
    pub(super) fn new(agent: AgentName, init_params: Value) -> Backend {
        Backend {
            agent,
            init_params,
            state: BackendState::Starting,
            input: None,
            buf: BytesMut::new(),
            control: None,
            stderr: StderrTail::default(),
            next_id: 0,
            pending: FastMap::default(),
            routes: FastMap::default(),
            waiting: Vec::new(),
            waiting_requests: Vec::new(),
            init_result: Value::Null,
            retired: Default::default(),
            consumers: Consumers::default(),
            idle_epoch: None,
            spare: None,
            spare_failed: false,
            spare_waiters: Vec::new(),
            session_meta: None,
            started: None,
            new_routes: Vec::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == BackendState::Ready
    }

    /// The process id, once known.
    pub fn pid(&self) -> Option<crate::acp::runtime::AgentPid> {
        self.control.as_ref().and_then(ProcessControl::pid)
    }

    /// Whether the agent advertised `agentCapabilities.<path>` (true, or an object).
    pub fn supports(&self, path: &str) -> bool {
        self.init_result
            .pointer(&format!("/agentCapabilities/{path}"))
            .is_some_and(|v| v.as_bool().unwrap_or(!v.is_null()))
    }

    /// Sends the frames written during this event; returns them.
    pub fn flush(&mut self) -> Option<Bytes> {
        match (&self.input, self.buf.is_empty()) {
            (Some(input), false) => {
                let batch = self.buf.split().freeze();
                input.send(batch.clone());
                Some(batch)
            }
            _ => None,
        }
    }

    pub fn set_consumers(&self, gauges: Vec<Gauge>) {
        if let Ok(mut consumers) = self.consumers.lock() {
            *consumers = gauges;
        }
    }

    /// Leaves the next `n` request ids unused.
    pub fn skip_ids(&mut self, n: u64) {
        self.next_id += n;
    }

    /// Mints the next request id toward this agent and records why it was sent.
    pub fn mint(&mut self, pending: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        id
    }

    /// Sends a request the proxy itself originates now, or once the agent is initialized.
    pub fn request_when_ready(&mut self, method: &'static str, params: Value, pending: Pending) {
        if self.is_ready() {
            self.request(method, &params, pending);
        } else {
            self.waiting_requests.push((method, params, pending));
        }
    }

    /// Sends a request the proxy itself originates.
    /// Sessions it opens get the agent's `_meta` defaults.
    pub fn request(&mut self, method: &str, params: &Value, pending: Pending) {
        let id = self.mint(pending);
        let with_defaults = match &self.session_meta {
            Some(meta) if session_defaults::opens_session(method) => {
                let mut params = params.clone();
                session_defaults::apply(&mut params, meta);
                Some(params)
            }
            _ => None,
        };
        message::write_request(
            &mut self.buf,
            message::numeric_id(id).as_bytes(),
            method,
            with_defaults.as_ref().unwrap_or(params),
        );
    }

    /// The proxy id under which a client request (by its connection and raw id) was
    /// forwarded, if in flight.
    pub fn pending_id_of_client_request(&self, conn: ConnId, client_id: &[u8]) -> Option<u64> {
        self.pending.iter().find_map(|(id, p)| match p {
            Pending::Client {
                conn: c,
                client_id: i,
                ..
            } if *c == conn && i.as_ref() == client_id => Some(*id),
            _ => None,
        })
    }

    /// Tells the agent to stop the turns of every session it holds.
    pub fn cancel_sessions(&mut self) {
        let sids: Vec<String> = self.routes.keys().cloned().collect();
        for sid in sids {
            message::write_notification(
                &mut self.buf,
                "session/cancel",
                &json!({"sessionId": sid}),
            );
        }
    }

    /// Closes the agent's stdin now and ends the process after `delay`, so what was just
    /// written (cancellations, answers) can still reach it.
    pub fn terminate_after(&mut self, delay: Duration, tracker: &tokio_util::task::TaskTracker) {
        self.flush();
        self.input = None;
        if let Some(mut control) = self.control.take() {
            tracker.spawn(async move {
                tokio::time::sleep(delay).await;
                control.terminate();
            });
        }
    }

    /// Closes the agent's stdin and asks the runtime to end it.
    pub fn terminate(&mut self) {
        self.input = None;
        if let Some(mut control) = self.control.take() {
            control.terminate();
        }
    }
}

impl Hub {
    /// The `initialize` params for agents serving a client whose own were `client_init`: the
    /// client's, with the editor's terminal withheld from agents in a container unless the user
    /// allowed it. Returns the params and their capability profile.
    pub(super) fn replayed_initialize(&self, client_init: Option<&Value>) -> (Value, Arc<str>) {
        let mut params = client_init
            .cloned()
            .unwrap_or_else(|| self.server.default_initialize());
        // A terminal the editor opens runs on the host: agents in a container are not offered
        // one unless the user asked for it.
        if self.server.runtime.container_workspace().is_some() && !self.server.config.host_terminal
        {
            if let Some(caps) = params
                .get_mut("clientCapabilities")
                .and_then(Value::as_object_mut)
            {
                caps.insert("terminal".into(), Value::Bool(false));
            }
        }
        let profile = crate::acp::server::profile_of(&params);
        (params, profile)
    }

    /// A backend for `agent`, initialized with `init_params`, its sessions getting the agent's
    /// `_meta` defaults.
    pub(super) fn new_backend(&self, agent: &AgentName, init_params: Value) -> Backend {
        let mut backend = Backend::new(agent.clone(), init_params);
        backend.session_meta = self
            .server
            .config
            .session_defaults
            .get(agent.as_str())
            .cloned();
        backend
    }

    /// The live backend of `agent` for the profile of connection `conn` (or the daemon's
    /// default profile), started if there is none.
    pub(super) fn ensure_backend(&mut self, agent: &AgentName, conn: Option<ConnId>) -> u32 {
        let client_init = conn
            .and_then(|c| self.conns.get(&c))
            .and_then(|c| c.client_init.clone());
        let (params, profile) = self.replayed_initialize(client_init.as_ref());
        let key = (agent.clone(), profile);
        if let Some(slot) = self.slots.get(&key) {
            return *slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let backend = self.new_backend(agent, params);
        self.backends.insert(slot, backend);
        self.slots.insert(key, slot);
        tracing::info!(agent = %agent, slot, "starting agent");
        let (server, events, agent) = (self.server.clone(), self.events.clone(), agent.clone());
        self.server.tracker.spawn(async move {
            let outcome = server.runtime.spawn(&agent).await;
            if let Err(tokio::sync::mpsc::error::SendError(Event::Backend {
                event: BackendEvent::Spawned(Ok(mut process)),
                ..
            })) = events
                .send(Event::Backend {
                    slot,
                    event: BackendEvent::Spawned(outcome),
                })
                .await
            {
                // The hub is gone: end the process it will never use.
                process.control.terminate();
            }
        });
        slot
    }

    pub(super) fn on_backend_event(&mut self, slot: u32, event: BackendEvent) {
        match event {
            BackendEvent::Spawned(Ok(process)) => self.on_spawned(slot, process),
            BackendEvent::Spawned(Err(e)) => {
                self.fail_backend(slot, RpcError::new(INTERNAL_ERROR, e.to_string()));
            }
            BackendEvent::Frames(frames) => {
                if self.server.trace.enabled() && !self.server.trace.accepting() {
                    self.server.trace.drop_frames(frames.len() as u64);
                } else if self.server.trace.enabled() {
                    // One copy of the batch, not a share of each frame: shares would bounce
                    // the read buffer's count between the hub's core and the writer's.
                    let len = frames.iter().map(|f| f.raw().len() + 1).sum();
                    let mut batch = BytesMut::with_capacity(len);
                    for frame in &frames {
                        batch.extend_from_slice(frame.raw());
                        batch.extend_from_slice(b"\n");
                    }
                    self.trace_frames(Hop::AgentToDaemon, slot, batch.freeze());
                }
                let mut run = None;
                for frame in frames {
                    self.counters.agent_to_daemon.add(frame.raw().len() + 1);
                    if !self.relay_chunk(slot, &frame, &mut run) {
                        run = None;
                        self.on_backend_frame(slot, frame);
                    }
                }
            }
            BackendEvent::Closed {
                status,
                container_gone,
            } => {
                let Some(backend) = self.backends.get(&slot) else {
                    return;
                };
                let how = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "closed its output".into());
                let stderr = backend.stderr.text();
                let mut message = match container_gone {
                    Some(container) => format!(
                        "agent {} ended: container {container} stopped",
                        backend.agent
                    ),
                    None => format!("agent {} exited ({how})", backend.agent),
                };
                if !stderr.is_empty() {
                    message.push_str(&format!("; stderr: {stderr}"));
                }
                tracing::warn!("{message}");
                self.counters.agent_exits += 1;
                let error = RpcError::new(INTERNAL_ERROR, message)
                    .with_data(json!({"agent": backend.agent.as_str(), "stderr": stderr}));
                self.fail_backend(slot, error);
            }
        }
    }

    fn on_spawned(&mut self, slot: u32, process: AgentProcess) {
        let AgentProcess {
            stdin,
            stdout,
            stderr,
            control,
        } = process;
        let reader = LineReader::new(stdout, self.server.config.max_frame);
        if self.connect_process(slot, stdin, reader, stderr, control) {
            if let Some(backend) = self.backends.get_mut(&slot) {
                backend.state = BackendState::Initializing;
                let params = backend.init_params.clone();
                backend.request("initialize", &params, Pending::Initialize);
            }
        }
    }

    /// Wires a process to backend `slot`: its stdin behind an outbox, its stdout to a pump.
    /// Returns `false` (and ends the process) when the backend is gone.
    pub(super) fn connect_process(
        &mut self,
        slot: u32,
        stdin: AgentStdin,
        stdout: LineReader<AgentStdout>,
        stderr: StderrTail,
        mut control: ProcessControl,
    ) -> bool {
        let Some(backend) = self.backends.get_mut(&slot) else {
            control.terminate();
            return false;
        };
        let label = format!("agent {} ({slot})", backend.agent);
        backend.input = Some(Outbox::spawn(stdin, &self.server.tracker, label));
        backend.stderr = stderr;
        let exit = control.exit_watch();
        backend.control = Some(control);
        backend.started = Some(std::time::Instant::now());
        super::pump::spawn(
            stdout,
            super::pump::PumpContext {
                slot,
                events: self.events.clone(),
                consumers: backend.consumers.clone(),
                server: self.server.clone(),
                agent: backend.agent.clone(),
                exit,
            },
        );
        true
    }

    /// A backend is gone or unusable: everything waiting on it gets `error`, its sessions
    /// become unbound (a later request binds them again), its process is ended.
    pub(super) fn fail_backend(&mut self, slot: u32, error: RpcError) {
        let Some(mut backend) = self.backends.remove(&slot) else {
            return;
        };
        self.slots.retain(|_, s| *s != slot);
        backend.terminate();
        self.agent_requests.retain(|_, r| r.slot != slot);
        let waiting: Vec<Pending> = std::mem::take(&mut backend.waiting_requests)
            .into_iter()
            .map(|(_, _, p)| p)
            .collect();
        for pending in waiting
            .into_iter()
            .chain(backend.pending.drain().map(|(_, p)| p))
        {
            match pending {
                Pending::Client {
                    conn,
                    client_id,
                    method,
                    session,
                } => {
                    if let (Method::SessionPrompt, Some(sid)) = (&method, &session) {
                        self.turn_ended(sid, "error");
                    }
                    self.reply_error(conn, Some(&client_id), &error)
                }
                Pending::NewSession { session } | Pending::SelectModel { session, .. } => {
                    self.bind_failed(&session, error.clone())
                }
                Pending::Authenticate { conn, client_id }
                | Pending::SetMode {
                    conn, client_id, ..
                }
                | Pending::Deleted {
                    conn, client_id, ..
                } => self.reply_error(conn, Some(&client_id), &error),
                Pending::ListPart { list } => self.list_part(list, None, &backend.agent),
                Pending::Initialize | Pending::Ignore | Pending::Spare { .. } => {}
            }
        }
        let affected: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| {
                matches!(&s.state, SessionState::Binding { slot: s2, .. } if *s2 == slot)
                    || s.link().is_some_and(|l| l.slot == slot)
            })
            .map(|s| s.id.clone())
            .collect();
        for sid in affected {
            self.bind_failed(&sid, error.clone());
        }
    }
}

/// How many early frames a spare keeps for the session that takes it.
const EARLY_FRAMES: usize = 64;

/// A session opened ahead of time ([`super::spare`]).
pub(super) struct Spare {
    pub backend_sid: String,
    /// The params it was opened with; a bind must match them exactly.
    pub params: Value,
    /// The agent's `session/new` result.
    pub result: Value,
    /// Notifications the agent sent for it before it was taken.
    pub early: Vec<Frame>,
}

impl Spare {
    /// Lets the agent forget the spare: closed, and deleted so no list shows it.
    pub fn close(self, backend: &mut Backend) {
        let params = json!({"sessionId": self.backend_sid});
        if backend.supports("sessionCapabilities/close") {
            backend.request("session/close", &params, Pending::Ignore);
        }
        if backend.supports("sessionCapabilities/delete") {
            backend.request("session/delete", &params, Pending::Ignore);
        }
    }

    /// Keeps an early notification for the session that takes the spare.
    pub fn keep(&mut self, frame: Frame) {
        if self.early.len() < EARLY_FRAMES {
            self.early.push(frame);
        }
    }
}
