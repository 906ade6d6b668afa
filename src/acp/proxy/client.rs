//! What the client sends: answered locally, routed to a session's agent, or refused.
//!
//! `initialize` and `session/new` are always answered by the proxy. A model pick through
//! `session/set_config_option` (config id `model`) or the legacy `session/set_model` starts or
//! changes a bind. Everything else that names a session is routed to that session's agent
//! (binding it lazily first if needed, except for `session/cancel`); requests without a session
//! go to the connection's only backend when there is exactly one. Responses to agent→client
//! requests go back to the backend that asked, under its own id.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::session::{Reply, Session, SessionState};
use super::{ConnId, Event, Hub};
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::lines::Line;
use crate::acp::message::{
    self, RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND,
};
use crate::acp::method::Method;
use crate::acp::picker::{Catalog, MODEL_OPTION_ID};

impl Hub {
    pub(super) fn on_client_line(&mut self, conn: ConnId, line: Line) {
        let raw = match line {
            Line::Frame(raw) => raw,
            Line::Overlong(len) => {
                tracing::warn!(
                    "client sent a line of {len} bytes, over the {} byte limit",
                    self.server.config.max_frame
                );
                let error = RpcError::new(
                    INVALID_REQUEST,
                    format!(
                        "frame of {len} bytes exceeds the limit of {} bytes",
                        self.server.config.max_frame
                    ),
                );
                self.reply_error(conn, None, &error);
                return;
            }
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match Frame::parse(raw) {
            Ok(frame) => {
                self.trace_frame("<-", "client", &frame);
                self.on_client_frame(conn, frame);
            }
            Err(e) => {
                tracing::warn!(conn, "bad frame from client: {e}");
                let id = e.reply_id().cloned();
                self.reply_error(conn, id.as_deref(), &RpcError::new(e.code(), e.to_string()));
            }
        }
    }

    pub(super) fn on_client_frame(&mut self, conn: ConnId, frame: Frame) {
        if frame.kind() == FrameKind::Response {
            return self.on_client_response(conn, frame);
        }
        let is_request = frame.kind() == FrameKind::Request;
        match (frame.method(), is_request) {
            (Some(Method::Initialize), true) => self.on_initialize(conn, frame),
            (Some(Method::SessionNew), true) => self.on_session_new(conn, frame),
            (Some(Method::SessionSetConfigOption), true) => self.on_set_config_option(conn, frame),
            (Some(Method::SessionSetModel), true) => self.on_set_model(conn, frame),
            (Some(Method::CancelRequest), false) => self.on_cancel_request(conn, frame),
            (Some(Method::Authenticate), true) => self.on_authenticate(conn, frame),
            (Some(Method::SessionLoad), true) => self.on_reattach(conn, frame, "session/load"),
            (Some(Method::SessionResume), true) => self.on_reattach(conn, frame, "session/resume"),
            (Some(Method::SessionList), true) => self.on_list(conn, frame),
            (Some(Method::SessionClose), true) => self.on_close(conn, frame),
            (Some(Method::SessionDelete), true) => self.on_delete(conn, frame),
            _ => self.route(conn, frame),
        }
    }

    /// Params of a frame whose payload the proxy has to read, or an error for the client.
    pub(super) fn params_of(&mut self, conn: ConnId, frame: &Frame) -> Option<Value> {
        match frame.to_value() {
            Ok(mut value) => Some(
                value
                    .get_mut("params")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            ),
            Err(e) => {
                self.reply_error(
                    conn,
                    frame.id_raw().as_deref(),
                    &RpcError::new(INVALID_PARAMS, e.to_string()),
                );
                None
            }
        }
    }

    fn on_initialize(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        if !params.is_object() {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "initialize params must be an object"),
            );
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client_init = Some(params);
        }
        // The answer merges what the agents can do, so it waits for their probes (instant once
        // the cache is warm).
        self.after_catalog(conn, move |outcome| Event::InitializeReady {
            conn,
            client_id: id,
            outcome,
        });
    }

    /// Fetches the catalog off the connection task (it may have to wait for probes) and hands
    /// the outcome back as the event `make` builds; the request counts as open until then.
    fn after_catalog(
        &mut self,
        conn: ConnId,
        make: impl FnOnce(Result<Catalog, crate::acp::server::CatalogError>) -> Event + Send + 'static,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.deferred += 1;
        }
        let (server, events) = (self.server.clone(), self.events.clone());
        self.server.tracker.spawn(async move {
            tokio::select! {
                outcome = server.catalog() => {
                    let _ = events.send(make(outcome)).await;
                }
                _ = server.shutdown.cancelled() => {}
            }
        });
    }

    pub(super) fn on_initialize_ready(
        &mut self,
        conn: ConnId,
        client_id: Bytes,
        outcome: Result<Catalog, crate::acp::server::CatalogError>,
    ) {
        let catalog = match outcome {
            Ok(catalog) => catalog,
            // Even with no usable agent the handshake succeeds; agents needing a login are
            // offered through their auth methods, and session/new explains the rest.
            Err(e) => {
                tracing::warn!("initialize: {}", e.to_rpc().message);
                Catalog::with_auth(Vec::new(), e.auth_needed())
            }
        };
        let result = initialize_result(&self.server.runtime.describe(), &catalog);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.catalog = Some(Arc::new(catalog));
        }
        self.reply_result(conn, &client_id, &result);
    }

    /// `authenticate` with an `agent:methodId` goes to that agent, started if need be, with
    /// every field the client sent (`_meta` included) and the agent's own method id.
    fn on_authenticate(&mut self, conn: ConnId, frame: Frame) {
        let Some(mut params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        let Some(method_id) = params.get("methodId").and_then(Value::as_str) else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "authenticate needs a methodId"),
            );
        };
        let resolved = self
            .conns
            .get(&conn)
            .and_then(|c| c.catalog.as_ref())
            .and_then(|c| c.resolve_auth(method_id));
        let Some((agent, bare)) = resolved else {
            let error = RpcError::new(
                INVALID_PARAMS,
                format!(
                    "unknown auth method {method_id:?}; expected agent:methodId from initialize"
                ),
            );
            return self.reply_error(conn, Some(&id), &error);
        };
        params["methodId"] = json!(bare);
        let slot = self.ensure_backend(&agent, Some(conn));
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        backend.idle_epoch = None;
        backend.request_when_ready(
            "authenticate",
            params,
            super::backend::Pending::Authenticate {
                conn,
                client_id: id,
            },
        );
    }

    /// Refuses content the bound agent said it cannot take, instead of forwarding it.
    pub(super) fn check_prompt(&mut self, conn: ConnId, slot: u32, frame: &Frame) -> bool {
        let Some(backend) = self.backends.get(&slot) else {
            return true;
        };
        let caps = backend
            .init_result
            .pointer("/agentCapabilities/promptCapabilities")
            .cloned()
            .unwrap_or(Value::Null);
        let Ok(value) = frame.to_value() else {
            return true;
        };
        let blocks = value
            .pointer("/params/prompt")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for block in blocks {
            let (kind, cap) = match block.get("type").and_then(Value::as_str) {
                Some("image") => ("image", "image"),
                Some("audio") => ("audio", "audio"),
                Some("resource") => ("embedded resource", "embeddedContext"),
                _ => continue,
            };
            if caps.get(cap).and_then(Value::as_bool) != Some(true) {
                let error = RpcError::new(
                    INVALID_PARAMS,
                    format!("agent {} does not accept {kind} content", backend.agent),
                )
                .with_data(json!({"agent": backend.agent.as_str(), "capability": cap}));
                self.reply_error(conn, frame.id_raw().as_deref(), &error);
                return false;
            }
        }
        true
    }

    fn on_session_new(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        if let Err(e) = serde_json::from_value::<agent_client_protocol::v1::schema::NewSessionRequest>(
            params.clone(),
        ) {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, format!("invalid session/new params: {e}")),
            );
        }
        // The catalog may need probes; wait for it off the connection task.
        self.after_catalog(conn, move |outcome| Event::SessionReady {
            conn,
            client_id: id,
            params,
            outcome: outcome.map_err(|e| e.to_rpc()),
        });
    }

    pub(super) fn on_session_ready(
        &mut self,
        conn: ConnId,
        client_id: Bytes,
        params: Value,
        outcome: Result<Catalog, RpcError>,
    ) {
        let catalog = match outcome {
            Ok(catalog) => Arc::new(catalog),
            Err(error) => return self.reply_error(conn, Some(&client_id), &error),
        };
        let Some(model) = catalog.default_value() else {
            return self.reply_error(
                conn,
                Some(&client_id),
                &RpcError::new(message::INTERNAL_ERROR, "no agent offers a model"),
            );
        };
        let mut session = Session::new(
            params,
            catalog.clone(),
            model.clone(),
            self.server.config.transcript_bytes,
        );
        session.holder = Some(conn);
        self.map_paths(&mut session, true);
        if let Some(cwd) = session.new_params.get("cwd").and_then(Value::as_str) {
            self.latest_cwd = Some(cwd.to_owned());
        }
        let result = json!({
            "sessionId": &*session.id,
            "configOptions": session.config_options(),
            "models": catalog.legacy_models(&model),
        });
        tracing::info!(session = %session.id, agents = catalog.agents().len(), "session opened");
        self.sessions.insert(session.id.clone(), session);
        self.reply_result(conn, &client_id, &result);
        self.keep_spares();
    }

    /// Gives a session of an agent in a container its host ↔ container path map.
    pub(super) fn map_paths(&self, session: &mut Session, warn: bool) {
        let Some(workspace) = self.server.runtime.container_workspace() else {
            return;
        };
        let cwd = session
            .new_params
            .get("cwd")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_owned();
        match crate::acp::paths::PathMap::for_session(
            &cwd,
            &workspace,
            self.server.config.extra_paths.clone(),
        ) {
            Ok(map) => session.paths = Some(Arc::new(map)),
            Err(e) if warn => {
                tracing::warn!("cannot map {cwd} to {workspace}: {e}; paths pass unchanged")
            }
            Err(_) => {}
        }
    }

    fn on_set_config_option(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        if params.get("configId").and_then(Value::as_str) != Some(MODEL_OPTION_ID) {
            // The agent's own options (mode, thought level, ...) go to the agent.
            return self.route(conn, frame);
        }
        let Some(value) = params.get("value").and_then(Value::as_str) else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "the model option takes a string value"),
            );
        };
        self.pick(
            conn,
            frame.clone(),
            &params,
            value.to_owned(),
            Reply::ConfigOptions(conn, id),
        );
    }

    fn on_set_model(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        let Some(value) = params.get("modelId").and_then(Value::as_str) else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "session/set_model needs a modelId"),
            );
        };
        self.pick(
            conn,
            frame.clone(),
            &params,
            value.to_owned(),
            Reply::Empty(conn, id),
        );
    }

    /// A model pick: bind the session, or change the model of the agent it is bound to.
    fn pick(&mut self, conn: ConnId, frame: Frame, params: &Value, value: String, reply: Reply) {
        let id = reply.asker().map(|(_, id)| id.clone());
        let Some(sid) = params.get("sessionId").and_then(Value::as_str) else {
            return self.reply_error(
                conn,
                id.as_deref(),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        if !self.held_by(conn, sid, id.as_deref()) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let pick = match session.catalog.resolve(&value) {
            Ok(pick) => pick,
            Err(e) => {
                return self.reply_error(
                    conn,
                    id.as_deref(),
                    &RpcError::new(INVALID_PARAMS, e.to_string()),
                )
            }
        };
        let sid = session.id.clone();
        match &mut session.state {
            SessionState::Binding { queue, .. } => queue.push((conn, frame)),
            SessionState::Unbound => {
                self.start_bind(&sid, pick.agent.agent.clone(), pick.model, reply, None)
            }
            SessionState::Bound(link) if link.agent == pick.agent.agent => {
                let slot = link.slot;
                self.select_model(slot, &sid, pick.model, reply);
            }
            SessionState::Bound(link) => {
                // Another agent: a new agent session in its place (the context stays behind).
                let previous = link.clone();
                self.start_bind_from(
                    &sid,
                    pick.agent.agent.clone(),
                    pick.model,
                    reply,
                    None,
                    Some(previous),
                );
            }
        }
    }

    /// Whether `conn` holds session `sid`; if not, the client is told why (for a request).
    pub(super) fn held_by(&mut self, conn: ConnId, sid: &str, id: Option<&[u8]>) -> bool {
        let holder = self.sessions.get(sid).map(|s| s.holder);
        let error = match holder {
            Some(Some(h)) if h == conn => return true,
            None => unknown_session(sid),
            Some(_) => RpcError::new(
                INVALID_REQUEST,
                format!("session {sid} is attached to another connection; session/load or session/resume it to take it back"),
            )
            .with_data(json!({"sessionId": sid})),
        };
        if id.is_some() {
            self.reply_error(conn, id, &error);
        }
        false
    }

    /// Routes a request or notification to the agent of the session it names.
    pub(super) fn route(&mut self, conn: ConnId, frame: Frame) {
        let is_request = frame.kind() == FrameKind::Request;
        let method = frame.method().cloned().unwrap_or(Method::Other("".into()));
        let Some(sid) = frame.session_id().map(|s| s.into_owned()) else {
            return self.route_sessionless(conn, frame);
        };
        if !self.held_by(conn, &sid, frame.id_raw().as_deref()) {
            if !is_request {
                tracing::debug!(%method, "dropping a notification for session {sid}, not held here");
            }
            return;
        }
        let Some(session) = self.sessions.get_mut(sid.as_str()) else {
            return;
        };
        match &mut session.state {
            SessionState::Bound(link) => {
                let route = (link.slot, session.id.clone(), link.backend_literal.clone());
                if method == Method::SessionPrompt {
                    if !self.check_prompt(conn, route.0, &frame) {
                        return;
                    }
                    return self.forward_prompt(conn, route, frame);
                }
                let frame = self.to_agent_paths(&route.1, &method, frame);
                self.forward_to_backend(route.0, conn, frame, Some((route.1, route.2)));
            }
            SessionState::Binding { queue, .. } => queue.push((conn, frame)),
            SessionState::Unbound if method == Method::SessionCancel => {
                tracing::debug!("cancel for an unbound session: nothing to cancel");
            }
            SessionState::Unbound => {
                let (sid, model) = (session.id.clone(), session.model.clone());
                match session.catalog.resolve(&model) {
                    Ok(pick) => self.start_bind(
                        &sid,
                        pick.agent.agent.clone(),
                        pick.model,
                        Reply::Notify,
                        Some((conn, frame)),
                    ),
                    Err(e) => {
                        if is_request {
                            self.reply_error(
                                conn,
                                frame.id_raw().as_deref(),
                                &RpcError::new(INVALID_PARAMS, e.to_string()),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Host paths in a client frame become the container's, for sessions in a container.
    fn to_agent_paths(&self, sid: &Arc<str>, method: &Method, frame: Frame) -> Frame {
        match self.sessions.get(sid).and_then(|s| s.paths.clone()) {
            Some(paths) if frame.contains(b"file:") => rewrite_frame(frame, |params| {
                for warning in paths.rewrite_client_to_agent(method.as_str(), params) {
                    tracing::warn!("{warning}");
                }
            }),
            _ => frame,
        }
    }

    /// A prompt starts a turn: it is recorded in the transcript, carries the conversation so
    /// far after an agent switch, and goes to the agent.
    fn forward_prompt(&mut self, conn: ConnId, route: (u32, Arc<str>, Bytes), frame: Frame) {
        let (slot, sid, literal) = route;
        let embedded = self
            .backends
            .get(&slot)
            .is_some_and(|b| b.supports("promptCapabilities/embeddedContext"));
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if frame.kind() == FrameKind::Request {
            session.turns += 1;
        }
        let blocks = frame
            .to_value()
            .ok()
            .and_then(|mut v| v.pointer_mut("/params/prompt").map(Value::take))
            .and_then(|v| match v {
                Value::Array(blocks) => Some(blocks),
                _ => None,
            })
            .unwrap_or_default();
        session.transcript.record_prompt(&blocks);
        let frame = match session.handover.take() {
            Some(context) => {
                tracing::info!(session = %sid, bytes = context.len(), "handing the conversation to the new agent");
                rewrite_frame(frame, |params| {
                    if let Some(Value::Array(prompt)) = params.get_mut("prompt") {
                        prompt.insert(0, super::handover::block(&sid, context, embedded));
                    }
                })
            }
            None => frame,
        };
        let frame = self.to_agent_paths(&sid, &Method::SessionPrompt, frame);
        self.forward_to_backend(slot, conn, frame, Some((sid, literal)));
    }

    /// A request without a session: the only agent this connection's sessions use can take it.
    fn route_sessionless(&mut self, conn: ConnId, frame: Frame) {
        let is_request = frame.kind() == FrameKind::Request;
        let method = frame.method().map(|m| m.to_string()).unwrap_or_default();
        let mut ready: Vec<u32> = self
            .sessions
            .values()
            .filter(|s| s.holder == Some(conn))
            .filter_map(|s| s.link().map(|l| l.slot))
            .filter(|slot| self.backends.get(slot).is_some_and(|b| b.is_ready()))
            .collect();
        ready.sort_unstable();
        ready.dedup();
        match (ready.as_slice(), is_request) {
            ([slot], _) => self.forward_to_backend(*slot, conn, frame, None),
            (_, true) => {
                let reason = if ready.is_empty() {
                    "no agent is bound yet"
                } else {
                    "more than one agent is bound"
                };
                let error = RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("method not found: {method} ({reason})"),
                )
                .with_data(json!(method));
                self.reply_error(conn, frame.id_raw().as_deref(), &error);
            }
            (_, false) => tracing::debug!(%method, "dropping a notification without a session"),
        }
    }

    /// The client answers an agent→client request: back to the agent under its own id.
    fn on_client_response(&mut self, conn: ConnId, frame: Frame) {
        let id = frame.id_u64();
        let asked_here = id
            .and_then(|id| self.agent_requests.get(&id))
            .is_some_and(|r| r.conn == Some(conn));
        let Some(request) = id
            .filter(|_| asked_here)
            .and_then(|id| self.agent_requests.remove(&id))
        else {
            tracing::warn!(conn, id = ?frame.id_raw(), "dropping a response to an id the proxy never sent this client");
            return;
        };
        let Some(backend) = self.backends.get_mut(&request.slot) else {
            tracing::debug!("dropping a response for an agent that has gone");
            return;
        };
        let Some(span) = frame.id_span() else { return };
        frame.write_spliced(&mut [(span, &request.backend_id[..])], &mut backend.buf);
    }

    /// `$/cancel_request`: re-issued to the agent under the id the agent knows.
    fn on_cancel_request(&mut self, conn: ConnId, frame: Frame) {
        let Ok(value) = frame.to_value() else { return };
        let Some(target) = value.pointer("/params/requestId") else {
            return;
        };
        let Ok(target) = serde_json::to_vec(target) else {
            return;
        };
        for backend in self.backends.values_mut() {
            if let Some(backend_id) = backend.pending_id_of_client_request(conn, &target) {
                let params = json!({"requestId": backend_id});
                message::write_notification(&mut backend.buf, "$/cancel_request", &params);
                return;
            }
        }
        tracing::debug!("cancel for a request that is not in flight");
    }
}

/// Applies `edit` to a frame's params and parses the result again (for the few frames whose
/// payload the proxy changes); on any failure the frame is kept as it was.
pub(super) fn rewrite_frame(frame: Frame, edit: impl FnOnce(&mut Value)) -> Frame {
    let Ok(mut value) = frame.to_value() else {
        return frame;
    };
    let Some(params) = value.get_mut("params") else {
        return frame;
    };
    edit(params);
    match serde_json::to_vec(&value)
        .map(Bytes::from)
        .map(Frame::parse)
    {
        Ok(Ok(rewritten)) => rewritten,
        _ => frame,
    }
}

pub(super) fn unknown_session(sid: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("unknown session {sid}"))
        .with_data(json!({"sessionId": sid}))
}

/// The proxy's own `initialize` answer, built from the ACP schema types.
/// The proxy's own `initialize` answer, built from the ACP schema types: the merged
/// capabilities of the agents and their auth methods as `agent:methodId`. The auth methods are
/// kept raw so fields newer than the schema survive.
fn initialize_result(container: &str, catalog: &Catalog) -> Value {
    use agent_client_protocol::schema::ProtocolVersion;
    use agent_client_protocol::v1::schema::{
        AgentCapabilities, Implementation, InitializeResponse,
    };
    let capabilities: AgentCapabilities =
        serde_json::from_value(catalog.capabilities()).unwrap_or_default();
    let response = InitializeResponse::new(ProtocolVersion::V1)
        .agent_capabilities(capabilities)
        .agent_info(
            Implementation::new("terok-executor", env!("CARGO_PKG_VERSION"))
                .title(format!("terok ({container})")),
        );
    let mut value =
        serde_json::to_value(response).unwrap_or_else(|_| json!({"protocolVersion": 1}));
    value["authMethods"] = Value::Array(catalog.auth_methods());
    value
}
