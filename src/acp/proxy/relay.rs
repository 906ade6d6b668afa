//! What agents send, translated for the clients that hold their sessions.
//!
//! Responses get the client's original id back and go to the connection that asked;
//! agent→client requests get a daemon-unique id and go to the session's holder (or wait,
//! while the session is detached, for the next client that attaches); notifications go to the
//! holder of the session they name, with the proxy's session id spliced in. Every
//! `session/update` is kept in the session's transcript on the way (as raw bytes: folding
//! happens off the streaming path). Only `config_option_update` and option answers are parsed
//! whole. Most of a stream is text chunks of one session in a row: within an agent's batch they
//! are routed by the first of them ([`Hub::relay_chunk`]), the rest compared with its session
//! id rather than looked up again.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use memchr::memmem;
use serde_json::{json, Value};

use super::backend::{Backend, Pending, SessionRoute};
use super::{AgentRequest, ConnId, Hub};
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::message::{self, RpcError};
use crate::acp::method::Method;
use crate::acp::picker::agent_options_without_model;

/// Looked for in every `session/update` an agent sends; building the searcher once keeps the
/// check to one scan of the line.
static CONFIG_OPTION_UPDATE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"config_option_update"));
/// Finds updates that may carry paths to translate.
static PATH_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"path\""));
static FILE_URI: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"file:"));
/// Looked for in updates that are not text chunks: what the session costs.
static USAGE_UPDATE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"usage_update"));
/// Looked for only in updates of sessions whose agent sent a legacy `modes` block.
static MODE_UPDATE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"current_mode_update"));

/// Where the text chunk before this one in an agent's batch went: the chunks after it in the
/// same session (most of a stream) skip the lookups that found it.
pub(super) struct ChunkRun {
    /// The session id literal as the agent wrote it.
    agent_sid: Vec<u8>,
    proxy: Arc<str>,
    literal: Bytes,
}

/// Where an agent's notification naming one of its sessions goes.
enum Target<'a> {
    /// A session switched away from: its late frames are dropped.
    Retired,
    /// The agent's spare session: its frames wait for the bind that takes it.
    Spare,
    /// One of the proxy's sessions.
    Route(&'a SessionRoute),
    /// Not a session of ours (an agent's child session, say): every holder gets it as is.
    Foreign,
}

/// The one decision both paths of a notification share: [`Hub::relay_chunk`] goes on only for
/// a [`Target::Route`], the full path handles every case.
fn target<'a>(backend: &'a Backend, sid: &str) -> Target<'a> {
    if backend.retired.contains(sid) {
        Target::Retired
    } else if backend.spare.as_ref().is_some_and(|s| s.backend_sid == sid) {
        Target::Spare
    } else {
        backend
            .routes
            .get(sid)
            .map_or(Target::Foreign, Target::Route)
    }
}

impl Hub {
    /// Relays a text chunk of the session the chunk before it in this batch belonged to,
    /// without looking up its route again, and learns the route for the next. False when the
    /// frame needs [`Hub::on_backend_frame`], which anything but a plain text chunk of a bound
    /// session does (the caller then forgets `run`: that path may change the routes).
    pub(super) fn relay_chunk(
        &mut self,
        slot: u32,
        frame: &Frame,
        run: &mut Option<ChunkRun>,
    ) -> bool {
        let (Some(span), Some(_)) = (frame.session_id_span(), frame.chunk_spans()) else {
            return false;
        };
        if self.server.config.debug != crate::acp::server::FrameDebug::Off
            || frame.kind() != FrameKind::Notification
            || frame.method() != Some(&Method::SessionUpdate)
        {
            return false;
        }
        let agent_sid = &frame.raw()[span.clone()];
        if run.as_ref().is_none_or(|r| r.agent_sid != agent_sid) {
            let Some(learned) = self.chunk_route(slot, frame, agent_sid) else {
                return false;
            };
            *run = Some(learned);
        }
        let Some(run) = run.as_ref() else {
            return false;
        };
        let Some(session) = self.sessions.get_mut(&run.proxy) else {
            return false;
        };
        let plain = !session.suppress_replay
            && session.link().is_none_or(|l| l.modes.is_none())
            && (session.paths.is_none()
                || !(frame.contains_with(&PATH_KEY) || frame.contains_with(&FILE_URI)));
        if !plain {
            return false;
        }
        session.last_activity = self.now;
        session.updates += 1;
        session.transcript.record_frame(frame);
        if let Some(conn) = session.holder.and_then(|c| self.conns.get_mut(&c)) {
            conn.write_with_session(frame, span, &run.literal);
        }
        true
    }

    /// The route of a chunk's session, where the full path would take it straight there.
    fn chunk_route(&self, slot: u32, frame: &Frame, agent_sid: &[u8]) -> Option<ChunkRun> {
        let backend = self.backends.get(&slot)?;
        let Target::Route(route) = target(backend, &frame.session_id()?) else {
            return None;
        };
        Some(ChunkRun {
            agent_sid: agent_sid.to_vec(),
            proxy: route.proxy.clone(),
            literal: route.literal.clone(),
        })
    }

    pub(super) fn on_backend_frame(&mut self, slot: u32, frame: Frame) {
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

    /// Writes an agent's answer to the client that asked, under the client's own id.
    pub(super) fn answer_client(&mut self, conn: ConnId, client_id: &[u8], frame: &Frame) {
        let (Some(span), Some(c)) = (frame.id_span(), self.conns.get_mut(&conn)) else {
            return;
        };
        frame.write_spliced(&mut [(span, client_id)], &mut c.buf);
    }

    fn on_backend_response(&mut self, slot: u32, frame: Frame) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        let Some(pending) = frame.id_u64().and_then(|id| backend.pending.remove(&id)) else {
            tracing::warn!(agent = %backend.agent, id = ?frame.id_raw(), "dropping a response to an id the proxy never sent");
            return;
        };
        let drained = backend.pending.is_empty();
        let agent = backend.agent.clone();
        match pending {
            Pending::Client {
                conn,
                client_id,
                method,
                session,
            } => {
                if let (Method::SessionPrompt, Some(sid)) = (&method, &session) {
                    let answer = frame.to_value().ok();
                    let stop = answer
                        .as_ref()
                        .and_then(|v| v.pointer("/result/stopReason"))
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned();
                    if let (Some(usage), Some(s)) = (
                        answer.as_ref().and_then(|v| v.pointer("/result/usage")),
                        self.sessions.get_mut(sid),
                    ) {
                        super::status::record_turn_usage(&mut s.usage, usage);
                    }
                    self.turn_ended(sid, &stop);
                }
                if method == Method::SessionSetConfigOption && !frame.contains(b"\"error\"") {
                    if let Some(sid) = session {
                        self.answer_option_change(conn, &client_id, &sid, &frame);
                        return self.after_drain(slot, drained);
                    }
                }
                self.answer_client(conn, &client_id, &frame);
            }
            Pending::Initialize => self.on_backend_initialized(slot, frame),
            Pending::Authenticate { conn, client_id } => {
                let failed = frame.contains(b"\"error\"");
                self.answer_client(conn, &client_id, &frame);
                if !failed {
                    tracing::info!(agent = %agent, "authenticated; this process now serves the agent");
                    self.learn_from(slot);
                }
            }
            Pending::SetMode {
                conn,
                client_id,
                session,
                mode,
                options,
            } => self.on_mode_set(conn, &client_id, &session, (&mode, options), &frame),
            Pending::Ignore => {}
            Pending::Deleted {
                conn,
                client_id,
                session,
            } => {
                if !frame.contains(b"\"error\"") {
                    self.server.sessions.remove(&session);
                }
                self.answer_client(conn, &client_id, &frame);
            }
            Pending::ListPart { list } => {
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
            Pending::Spare { params, learn } => self.on_spare_opened(slot, params, learn, frame),
        }
        self.after_drain(slot, drained);
    }

    /// A backend with nothing in flight may have become idle.
    fn after_drain(&mut self, slot: u32, drained: bool) {
        if drained {
            self.maybe_idle(slot);
        }
    }

    /// A prompt was answered (or failed): the turn is over for the transcript, and a detached
    /// session whose last turn ended may leave its agent idle.
    pub(super) fn turn_ended(&mut self, sid: &Arc<str>, stop_reason: &str) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        session.turns = session.turns.saturating_sub(1);
        session.transcript.record_turn_end(stop_reason);
        if session.holder.is_none() && session.turns == 0 {
            tracing::info!(session = %sid, stop_reason, "a detached session finished its turn");
            self.park_transcript(sid);
        }
    }

    /// The agent answered a change of one of its own options: the client gets the complete
    /// list, the picker included.
    fn answer_option_change(
        &mut self,
        conn: ConnId,
        client_id: &[u8],
        sid: &Arc<str>,
        frame: &Frame,
    ) {
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
        session.transcript.record_update(
            json!({"sessionUpdate": "config_option_update", "configOptions": options.clone()}),
        );
        let mut result = value.get("result").cloned().unwrap_or_else(|| json!({}));
        if let Some(obj) = result.as_object_mut() {
            obj.insert("configOptions".into(), Value::Array(options));
        }
        self.reply_result(conn, client_id, &result);
    }

    /// The agent asks the client something: a fresh id the client can answer to, sent to the
    /// session's holder, or kept until a client attaches.
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
        let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
        let route = frame
            .session_id()
            .and_then(|sid| backend.routes.get(sid.as_ref()))
            .map(|r| (r.proxy.clone(), r.literal.clone()));
        let Some((sid, literal)) = route else {
            // Not a session of ours: nobody can be asked.
            let error = RpcError::new(
                message::RESOURCE_NOT_FOUND,
                "the request names no session the proxy knows",
            );
            if let Some(backend) = self.backends.get_mut(&slot) {
                message::write_error(&mut backend.buf, Some(&backend_id), &error);
            }
            return;
        };
        let Some(frame) = self.check_agent_request(slot, &sid, frame, &backend_id) else {
            return;
        };
        let (Some(id_span), Some(sid_span)) = (frame.id_span(), frame.session_id_span()) else {
            return;
        };
        let client_id = self.next_agent_request;
        self.next_agent_request += 1;
        let client_literal = message::numeric_id(client_id);
        let mut spliced = bytes::BytesMut::with_capacity(frame.raw().len() + 32);
        frame.write_spliced(
            &mut [
                (id_span, client_literal.as_bytes()),
                (sid_span, &literal[..]),
            ],
            &mut spliced,
        );
        let spliced = spliced.freeze();
        let holder = self.sessions.get(&sid).and_then(|s| s.holder);
        match holder.and_then(|c| self.conns.get_mut(&c)) {
            Some(conn) => conn.buf.extend_from_slice(&spliced),
            None => {
                tracing::info!(session = %sid, %method, "the agent asks while nobody is attached; the question waits")
            }
        }
        self.agent_requests.insert(
            client_id,
            AgentRequest {
                slot,
                backend_id,
                method,
                session: Some(sid),
                conn: holder,
                frame: spliced,
            },
        );
    }

    /// Applies the session's path map to an agent's request to the client, and refuses what
    /// must not reach the editor: paths outside every mapped root, and host terminals for
    /// agents in a container. Returns the frame to forward, or `None` after answering the agent.
    fn check_agent_request(
        &mut self,
        slot: u32,
        sid: &Arc<str>,
        frame: Frame,
        backend_id: &[u8],
    ) -> Option<Frame> {
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
        let Some(paths) = self.sessions.get(sid).and_then(|s| s.paths.clone()) else {
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

    /// Connections holding a session on `slot`.
    fn holders_on(&self, slot: u32) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .sessions
            .values()
            .filter(|s| s.link().is_some_and(|l| l.slot == slot))
            .filter_map(|s| s.holder)
            .collect();
        conns.sort_unstable();
        conns.dedup();
        conns
    }

    /// A notification that names no session of ours goes, as is, to every client holding a
    /// session on this agent.
    fn broadcast(&mut self, slot: u32, frame: &Frame) {
        for conn in self.holders_on(slot) {
            if let Some(c) = self.conns.get_mut(&conn) {
                frame.write_spliced(&mut [], &mut c.buf);
            }
        }
    }

    fn on_backend_notification(&mut self, slot: u32, frame: Frame) {
        let Some(backend) = self.backends.get(&slot) else {
            return;
        };
        let Some(sid) = frame.session_id() else {
            return self.broadcast(slot, &frame);
        };
        let route = match target(backend, &sid) {
            Target::Retired => {
                tracing::debug!(agent = %backend.agent, "dropping a late frame of a session switched away from");
                return;
            }
            Target::Spare => {
                if let Some(spare) = self.backends.get_mut(&slot).and_then(|b| b.spare.as_mut()) {
                    spare.keep(frame);
                }
                return;
            }
            Target::Foreign => return self.broadcast(slot, &frame),
            Target::Route(route) => route,
        };
        let is_update = frame.method() == Some(&Method::SessionUpdate);
        // A text chunk (most of a stream) is none of the updates looked for below.
        let is_chunk = frame.chunk_spans().is_some();
        if is_update && !is_chunk && frame.contains_with(&CONFIG_OPTION_UPDATE) {
            let proxy = route.proxy.clone();
            return self.on_config_option_update(&proxy, frame);
        }
        let (proxy, literal) = (route.proxy.clone(), route.literal.clone());
        let Some(session) = self.sessions.get_mut(&proxy) else {
            return;
        };
        if session.suppress_replay {
            // The client already has this history, from the proxy's own transcript.
            return;
        }
        // Tool calls, diffs and resource links name paths: for a session whose agent lives in a
        // container they are translated to the editor's paths (other updates pass untouched).
        let paths = session
            .paths
            .clone()
            .filter(|_| frame.contains_with(&PATH_KEY) || frame.contains_with(&FILE_URI));
        let frame = match paths {
            Some(paths) => super::client::rewrite_frame(frame, |params| {
                let _ = paths.rewrite_agent_to_client("session/update", params);
            }),
            None => frame,
        };
        session.last_activity = self.now;
        if is_update {
            session.updates += 1;
            session.transcript.record_frame(&frame);
            if !is_chunk && frame.contains_with(&USAGE_UPDATE) {
                super::status::record_usage_update(&mut session.usage, &frame);
            }
        }
        let mode_changed = is_update
            && session.link().is_some_and(|l| l.modes.is_some())
            && frame.contains_with(&MODE_UPDATE);
        if let Some(conn) = session.holder.and_then(|c| self.conns.get_mut(&c)) {
            if let Some(span) = frame.session_id_span() {
                conn.write_with_session(&frame, span, &literal);
            }
        }
        if mode_changed {
            self.on_mode_update(&proxy, &frame);
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
        if let Some(update) = value.pointer("/params/update") {
            session.transcript.record_update(update.clone());
        }
        let Some(conn) = session.holder.and_then(|c| self.conns.get_mut(&c)) else {
            return;
        };
        let _ = serde_json::to_writer(bytes::BufMut::writer(&mut conn.buf), &value);
        conn.buf.extend_from_slice(b"\n");
    }

    /// Sends a client frame to a backend under a proxy id, with the agent's session id.
    pub(super) fn forward_to_backend(
        &mut self,
        slot: u32,
        conn: ConnId,
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
                conn,
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
}
