//! Backends: one agent wrapper process per agent per connection.
//!
//! A backend is spawned through the runtime off the connection task; its stdout is read by a
//! pump task that splits and parses frames in batches (so envelope parsing runs beside the
//! connection task, on another core) and pauses while the client's outbox is over its
//! high-water mark. Frames the agent sends are translated here: responses get the client's
//! original id back, agent→client requests get a connection-unique id, and every `sessionId`
//! is spliced to the proxy's. Only `config_option_update` and option answers are parsed whole.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde_json::{json, Value};

use super::session::Link;
use super::{AgentRequest, Connection, Event};
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::lines::{Line, LineReader};
use crate::acp::message::{self, RpcError, INTERNAL_ERROR};
use crate::acp::method::Method;
use crate::acp::outbox::{Gauge, Outbox};
use crate::acp::picker::agent_options_without_model;
use crate::acp::runtime::{
    AgentName, AgentProcess, AgentStdout, ExitInfo, ProcessControl, RuntimeError, StderrTail,
};

/// Looked for in every `session/update` an agent sends; building the searcher once keeps the
/// check to one scan of the line.
static CONFIG_OPTION_UPDATE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"config_option_update"));
/// Finds updates that may carry paths to translate.
static PATH_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"path\""));
static FILE_URI: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"file:"));

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
        client_id: Bytes,
        method: Method,
        session: Option<Arc<str>>,
    },
    /// The replayed `initialize`.
    Initialize,
    /// The agent-side `session/new` of a bind.
    NewSession { session: Arc<str> },
    /// Selecting a model for a session.
    SelectModel {
        session: Arc<str>,
        model: String,
        reply: super::session::Reply,
        legacy_retry: bool,
    },
    /// A client's `authenticate`, routed to this agent.
    Authenticate { client_id: Bytes },
    /// A request whose answer nobody needs (closing an old session).
    Ignore,
    /// A client's `session/delete`, routed to the owning agent.
    Deleted { client_id: Bytes, session: String },
    /// One agent's part of an aggregated `session/list`.
    ListPart { list: u64 },
}

/// A backend session id and the proxy session it stands for.
pub(super) struct SessionRoute {
    pub proxy: Arc<str>,
    pub literal: Bytes,
}

pub(super) struct Backend {
    pub agent: AgentName,
    pub state: BackendState,
    input: Option<Outbox>,
    /// Frames for the agent, sent as one batch when the current event is handled.
    pub buf: BytesMut,
    control: Option<ProcessControl>,
    pub stderr: StderrTail,
    next_id: u64,
    pub pending: HashMap<u64, Pending>,
    pub routes: HashMap<String, SessionRoute>,
    /// Sessions waiting for this backend to finish `initialize`.
    pub waiting: Vec<Arc<str>>,
    /// Requests (method, params, why) waiting for `initialize` to finish.
    pub waiting_requests: Vec<(&'static str, Value, Pending)>,
    /// The agent's answer to the replayed `initialize`.
    pub init_result: Value,
    /// Agent sessions a switch moved away from: their late frames are dropped.
    pub retired: std::collections::HashSet<String>,
}

impl Backend {
    fn new(agent: AgentName) -> Backend {
        Backend {
            agent,
            state: BackendState::Starting,
            input: None,
            buf: BytesMut::new(),
            control: None,
            stderr: StderrTail::default(),
            next_id: 0,
            pending: HashMap::new(),
            routes: HashMap::new(),
            waiting: Vec::new(),
            waiting_requests: Vec::new(),
            init_result: Value::Null,
            retired: Default::default(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == BackendState::Ready
    }

    pub fn has_client_requests(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::Client { .. }))
    }

    pub fn flush(&mut self) {
        if let (Some(input), false) = (&self.input, self.buf.is_empty()) {
            input.send(self.buf.split().freeze());
        }
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
    pub fn request(&mut self, method: &str, params: &Value, pending: Pending) {
        let id = self.mint(pending);
        message::write_request(
            &mut self.buf,
            message::numeric_id(id).as_bytes(),
            method,
            params,
        );
    }

    /// The proxy id under which a client request (by its raw id) was forwarded, if in flight.
    pub fn pending_id_of_client_request(&self, client_id: &[u8]) -> Option<u64> {
        self.pending.iter().find_map(|(id, p)| match p {
            Pending::Client { client_id: c, .. } if c.as_ref() == client_id => Some(*id),
            _ => None,
        })
    }

    /// Tells the agent to stop the turns of every session it holds for this connection.
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

/// Reads the agent's stdout into batches of frames for the connection task.
async fn pump(
    slot: u32,
    stdout: AgentStdout,
    events: tokio::sync::mpsc::Sender<Event>,
    client: Gauge,
    server: Arc<crate::acp::server::Server>,
    agent: AgentName,
    mut exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
) {
    let mut reader = LineReader::new(stdout, server.config.max_frame);
    loop {
        client.wait_for_room().await;
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
                    tracing::warn!(agent = %agent, "dropping a malformed line from the agent: {e}")
                }
            },
            Line::Overlong(len) => {
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

impl Connection {
    /// The live backend of `agent`, started if there is none.
    pub(super) fn ensure_backend(&mut self, agent: &AgentName) -> u32 {
        if let Some(slot) = self.slots.get(agent) {
            return *slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.backends.insert(slot, Backend::new(agent.clone()));
        self.slots.insert(agent.clone(), slot);
        tracing::info!(agent = %agent, "starting agent");
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
                // The connection is gone: end the process it will never use.
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
                for frame in frames {
                    self.on_backend_frame(slot, frame);
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
                let error = RpcError::new(INTERNAL_ERROR, message)
                    .with_data(json!({"agent": backend.agent.as_str(), "stderr": stderr}));
                self.fail_backend(slot, error);
            }
        }
    }

    fn on_spawned(&mut self, slot: u32, process: AgentProcess) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            let mut process = process;
            process.control.terminate();
            return;
        };
        let AgentProcess {
            stdin,
            stdout,
            stderr,
            control,
        } = process;
        let label = format!("agent {} (connection {})", backend.agent, self.id);
        backend.input = Some(Outbox::spawn(stdin, &self.server.tracker, label));
        backend.stderr = stderr;
        let exit = control.exit_watch();
        backend.control = Some(control);
        backend.state = BackendState::Initializing;
        self.server.tracker.spawn(pump(
            slot,
            stdout,
            self.events.clone(),
            self.client.gauge(),
            self.server.clone(),
            backend.agent.clone(),
            exit,
        ));
        let mut params = self
            .client_init
            .clone()
            .unwrap_or_else(crate::acp::probe::probe_initialize_params);
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
        backend.request("initialize", &params, Pending::Initialize);
    }

    fn on_backend_frame(&mut self, slot: u32, frame: Frame) {
        if self.server.config.debug != crate::acp::server::FrameDebug::Off {
            let agent = self
                .backends
                .get(&slot)
                .map(|b| b.agent.to_string())
                .unwrap_or_default();
            self.trace_frame("<-", &agent, &frame);
        }
        match frame.kind() {
            FrameKind::Response => self.on_backend_response(slot, frame),
            FrameKind::Request => self.on_agent_request(slot, frame),
            FrameKind::Notification => self.on_backend_notification(slot, frame),
        }
    }

    fn on_backend_response(&mut self, slot: u32, frame: Frame) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        let Some(pending) = frame.id_u64().and_then(|id| backend.pending.remove(&id)) else {
            tracing::warn!(agent = %backend.agent, id = ?frame.id_raw(), "dropping a response to an id the proxy never sent");
            return;
        };
        match pending {
            Pending::Client {
                client_id,
                method,
                session,
            } => {
                if method == Method::SessionSetConfigOption && !frame.contains(b"\"error\"") {
                    if let Some(sid) = session {
                        return self.answer_option_change(&client_id, &sid, &frame);
                    }
                }
                let Some(span) = frame.id_span() else { return };
                frame.write_spliced(&mut [(span, &client_id[..])], &mut self.client_buf);
            }
            Pending::Initialize => self.on_backend_initialized(slot, frame),
            Pending::Authenticate { client_id } => {
                if !frame.contains(b"\"error\"") {
                    let agent = backend.agent.clone();
                    tracing::info!(agent = %agent, "authenticated; probing it again");
                    self.server.forget_probe(agent);
                }
                let Some(span) = frame.id_span() else { return };
                frame.write_spliced(&mut [(span, &client_id[..])], &mut self.client_buf);
            }
            Pending::Ignore => {}
            Pending::Deleted { client_id, session } => {
                if !frame.contains(b"\"error\"") {
                    self.server.sessions.remove(&session);
                }
                let Some(span) = frame.id_span() else { return };
                frame.write_spliced(&mut [(span, &client_id[..])], &mut self.client_buf);
            }
            Pending::ListPart { list } => {
                let agent = backend.agent.clone();
                let result = frame
                    .to_value()
                    .ok()
                    .and_then(|mut v| v.get_mut("result").map(Value::take));
                self.list_part(list, result, &agent);
            }
            Pending::NewSession { session } => self.on_backend_session(slot, &session, frame),
            Pending::SelectModel {
                session,
                model,
                reply,
                legacy_retry,
            } => self.on_model_selected(slot, &session, model, reply, legacy_retry, frame),
        }
    }

    /// The agent answered a change of one of its own options: the client gets the complete
    /// list, the picker included.
    fn answer_option_change(&mut self, client_id: &[u8], sid: &Arc<str>, frame: &Frame) {
        let value = frame.to_value().unwrap_or(Value::Null);
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        if let (Some(options), Some(link)) = (
            value
                .pointer("/result/configOptions")
                .and_then(Value::as_array),
            session.link_mut(),
        ) {
            link.options = agent_options_without_model(options, &link.selector);
        }
        let options = session.config_options();
        let mut result = value.get("result").cloned().unwrap_or_else(|| json!({}));
        if let Some(obj) = result.as_object_mut() {
            obj.insert("configOptions".into(), Value::Array(options));
        }
        self.reply_result(client_id, &result);
    }

    /// The agent asks the client something: a fresh id the client can answer to.
    fn on_agent_request(&mut self, slot: u32, frame: Frame) {
        let Some(backend) = self.backends.get(&slot) else {
            return;
        };
        let Some(backend_id) = frame.id_raw() else {
            return;
        };
        if frame
            .session_id()
            .is_some_and(|sid| backend.retired.contains(sid.as_ref()))
        {
            // A session switched away from asks nothing of the client any more.
            let error = RpcError::new(
                message::REQUEST_CANCELLED,
                "the session was switched to another agent",
            );
            if let Some(backend) = self.backends.get_mut(&slot) {
                message::write_error(&mut backend.buf, Some(&backend_id), &error);
            }
            return;
        }
        if self.client_eof {
            let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
            if let Some(backend) = self.backends.get_mut(&slot) {
                super::cancel_agent_request(&mut backend.buf, &method, &backend_id);
            }
            return;
        }
        let Some(frame) = self.check_agent_request(slot, frame, &backend_id) else {
            return;
        };
        let Some(backend) = self.backends.get(&slot) else {
            return;
        };
        let Some(id_span) = frame.id_span() else {
            return;
        };
        let client_id = self.next_agent_request;
        self.next_agent_request += 1;
        let client_literal = message::numeric_id(client_id);
        let route = frame
            .session_id()
            .and_then(|sid| backend.routes.get(sid.as_ref()));
        match (route, frame.session_id_span()) {
            (Some(route), Some(span)) => frame.write_spliced(
                &mut [
                    (id_span, client_literal.as_bytes()),
                    (span, &route.literal[..]),
                ],
                &mut self.client_buf,
            ),
            _ => frame.write_spliced(
                &mut [(id_span, client_literal.as_bytes())],
                &mut self.client_buf,
            ),
        }
        let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
        self.agent_requests.insert(
            client_id,
            AgentRequest {
                slot,
                backend_id,
                method,
            },
        );
    }

    /// Applies the session's path map to an agent's request to the client, and refuses what
    /// must not reach the editor: paths outside every mapped root, and host terminals for
    /// agents in a container. Returns the frame to forward, or `None` after answering the agent.
    fn check_agent_request(&mut self, slot: u32, frame: Frame, backend_id: &[u8]) -> Option<Frame> {
        let container = self.server.runtime.container_workspace().is_some();
        let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
        let refuse = |this: &mut Self, error: RpcError| {
            tracing::warn!("refused an agent request: {}", error.message);
            if let Some(backend) = this.backends.get_mut(&slot) {
                message::write_error(&mut backend.buf, Some(backend_id), &error);
            }
            None
        };
        if container
            && !self.server.config.host_terminal
            && method.as_str().starts_with("terminal/")
        {
            let error = RpcError::new(
                message::METHOD_NOT_FOUND,
                "the editor's terminal runs on the host and is not offered to agents in a container",
            );
            return refuse(self, error);
        }
        let backend = self.backends.get(&slot)?;
        let sid = frame
            .session_id()
            .and_then(|sid| backend.routes.get(sid.as_ref()).map(|r| r.proxy.clone()));
        let paths = sid
            .and_then(|sid| self.sessions.get(&sid))
            .and_then(|s| s.paths.clone());
        let Some(paths) = paths else {
            return Some(frame);
        };
        let mut refusal = None;
        let frame = super::client::rewrite_frame(frame, |params| {
            if let Err(e) = paths.rewrite_agent_to_client(method.as_str(), params) {
                refusal = Some(e);
            }
        });
        match refusal {
            Some(e) => refuse(self, RpcError::new(e.code(), e.to_string())),
            None => Some(frame),
        }
    }

    fn on_backend_notification(&mut self, slot: u32, frame: Frame) {
        let Some(backend) = self.backends.get(&slot) else {
            return;
        };
        let Some(sid) = frame.session_id() else {
            frame.write_spliced(&mut [], &mut self.client_buf);
            return;
        };
        if backend.retired.contains(sid.as_ref()) {
            tracing::debug!(agent = %backend.agent, "dropping a late frame of a session switched away from");
            return;
        }
        let Some(route) = backend.routes.get(sid.as_ref()) else {
            // Not a session this connection opened (e.g. an agent's child session): as is.
            frame.write_spliced(&mut [], &mut self.client_buf);
            return;
        };
        if frame.method() == Some(&Method::SessionUpdate)
            && frame.contains_with(&CONFIG_OPTION_UPDATE)
        {
            let proxy = route.proxy.clone();
            return self.on_config_option_update(&proxy, frame);
        }
        // Tool calls, diffs and resource links name paths: for a session whose agent lives in a
        // container they are translated to the editor's paths (other updates pass untouched).
        let literal = route.literal.clone();
        let mentions_paths = frame.contains_with(&PATH_KEY) || frame.contains_with(&FILE_URI);
        let paths = mentions_paths
            .then(|| {
                self.sessions
                    .get(&route.proxy)
                    .and_then(|s| s.paths.clone())
            })
            .flatten();
        let frame = match paths {
            Some(paths) => super::client::rewrite_frame(frame, |params| {
                let _ = paths.rewrite_agent_to_client("session/update", params);
            }),
            None => frame,
        };
        if let Some(span) = frame.session_id_span() {
            frame.write_spliced(&mut [(span, &literal[..])], &mut self.client_buf);
        }
    }

    /// The agent's options changed: the client sees the complete list, the picker included.
    fn on_config_option_update(&mut self, sid: &Arc<str>, frame: Frame) {
        let Ok(mut value) = frame.to_value() else {
            return;
        };
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let is_update = value
            .pointer("/params/update/sessionUpdate")
            .and_then(Value::as_str)
            == Some("config_option_update");
        if is_update {
            if let Some(options) = value
                .pointer("/params/update/configOptions")
                .and_then(Value::as_array)
                .cloned()
            {
                if let Some(link) = session.link_mut() {
                    if let Some(model) = crate::acp::models::find_model_option(&options)
                        .and_then(|o| o.get("currentValue"))
                        .and_then(Value::as_str)
                    {
                        let namespaced = crate::acp::picker::namespaced(&link.agent, model);
                        if session.catalog.resolve(&namespaced).is_ok() {
                            session.model = namespaced;
                        }
                    }
                    let Some(link) = session.link_mut() else {
                        return;
                    };
                    link.options = agent_options_without_model(&options, &link.selector);
                }
                if let Some(slot) = value.pointer_mut("/params/update/configOptions") {
                    *slot = Value::Array(session.config_options());
                }
            }
        }
        if let Some(slot) = value.pointer_mut("/params/sessionId") {
            *slot = Value::String(sid.to_string());
        }
        let _ = serde_json::to_writer(bytes::BufMut::writer(&mut self.client_buf), &value);
        self.client_buf.extend_from_slice(b"\n");
    }

    /// Sends a client frame to a backend under a proxy id, with the agent's session id.
    pub(super) fn forward_to_backend(
        &mut self,
        slot: u32,
        frame: Frame,
        session: Option<(Arc<str>, Bytes)>,
    ) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        let mut edits: Vec<(crate::acp::frame::Span, &[u8])> = Vec::with_capacity(2);
        let id_literal;
        if frame.kind() == FrameKind::Request {
            let (Some(client_id), Some(span)) = (frame.id_raw(), frame.id_span()) else {
                return;
            };
            let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
            let id = backend.mint(Pending::Client {
                client_id,
                method,
                session: session.as_ref().map(|s| s.0.clone()),
            });
            id_literal = message::numeric_id(id);
            edits.push((span, id_literal.as_bytes()));
        }
        if let (Some((_, literal)), Some(span)) = (&session, frame.session_id_span()) {
            edits.push((span, &literal[..]));
        }
        frame.write_spliced(&mut edits, &mut backend.buf);
    }

    /// A backend is gone or unusable: everything waiting on it gets `error`, its sessions
    /// become unbound (a later request binds them again), its process is ended.
    pub(super) fn fail_backend(&mut self, slot: u32, error: RpcError) {
        let Some(mut backend) = self.backends.remove(&slot) else {
            return;
        };
        if self.slots.get(&backend.agent) == Some(&slot) {
            self.slots.remove(&backend.agent);
        }
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
                Pending::Client { client_id, .. } => self.reply_error(Some(&client_id), &error),
                Pending::NewSession { session } | Pending::SelectModel { session, .. } => {
                    self.bind_failed(&session, error.clone())
                }
                Pending::Authenticate { client_id } | Pending::Deleted { client_id, .. } => {
                    self.reply_error(Some(&client_id), &error)
                }
                Pending::ListPart { list } => self.list_part(list, None, &backend.agent),
                Pending::Initialize | Pending::Ignore => {}
            }
        }
        let affected: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| matches!(&s.state, super::session::SessionState::Binding { slot: s2, .. } if *s2 == slot)
                || s.link().is_some_and(|l: &Link| l.slot == slot))
            .map(|s| s.id.clone())
            .collect();
        for sid in affected {
            self.bind_failed(&sid, error.clone());
        }
    }
}
