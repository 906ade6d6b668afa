//! What the client sends: answered by the daemon, or handed on.
//!
//! `initialize` and `session/new` are always answered by the daemon. A model pick through
//! `session/set_config_option` (config id `model`) or the legacy `session/set_model` starts or
//! changes a bind; `authenticate` goes to the agent whose method it names, with every field the
//! client sent. Reopening, listing, closing and deleting are in [`super::routing`] and
//! [`super::list`]; everything else goes to a session's agent through [`super::forward`].

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::session::{Reply, Session, SessionState};
use super::{ConnId, Event, Hub};
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::lines::Line;
use crate::acp::message::{self, RpcError, INVALID_PARAMS, INVALID_REQUEST, RESOURCE_NOT_FOUND};
use crate::acp::method::Method;
use crate::acp::picker::{Catalog, MODEL_OPTION_ID};

impl Hub {
    pub(super) fn on_client_line(&mut self, conn: ConnId, line: Line) {
        let raw = match line {
            Line::Frame(raw) => raw,
            Line::Overlong(len) => {
                self.counters.client_to_daemon.add(len);
                self.counters.client_errors += 1;
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
        self.counters.client_to_daemon.add(raw.len() + 1);
        if self.server.trace.enabled() && !self.server.trace.accepting() {
            self.server.trace.drop_frames(1);
        } else if self.server.trace.enabled() {
            self.trace.push(crate::acp::trace::Record::Frames {
                at: self.now,
                hop: crate::acp::trace::Hop::ClientToDaemon,
                peer: crate::acp::trace::Peer::Conn(conn),
                bytes: raw.clone(),
            });
        }
        match Frame::parse(raw) {
            Ok(frame) => {
                self.trace_frame("<-", "client", &frame);
                self.on_client_frame(conn, frame);
            }
            Err(e) => {
                self.counters.client_errors += 1;
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
            (Some(Method::SessionSetMode), true) => self.on_set_mode(conn, frame),
            (Some(Method::CancelRequest), false) => self.on_cancel_request(conn, frame),
            (Some(Method::Authenticate), true) => self.on_authenticate(conn, frame),
            (Some(Method::Logout), true) => self.on_logout(conn, frame),
            (Some(Method::Other(name)), true)
                if &**name == crate::acp::vault_login::VAULT_LOGIN_METHOD =>
            {
                self.on_vault_login(conn, frame)
            }
            (Some(Method::Other(name)), true) if &**name == crate::acp::status::STATUS_METHOD => {
                self.on_status(conn, frame)
            }
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
        // the cache is warm), but only so long: agents that arrive later show up in pickers.
        self.after_catalog(conn, false, move |outcome| Event::InitializeReady {
            conn,
            client_id: id,
            outcome,
        });
    }

    /// Fetches the catalog off the hub (it may have to wait for probes: `initialize` for the
    /// initialize wait, `session/new` per [`crate::acp::server::Server::session_catalog`]) and
    /// hands the outcome back as the event `make` builds; the request counts as open until then.
    fn after_catalog(
        &mut self,
        conn: ConnId,
        for_session: bool,
        make: impl FnOnce(Result<Catalog, crate::acp::server::CatalogError>) -> Event + Send + 'static,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.deferred += 1;
        }
        let (server, events) = (self.server.clone(), self.events.clone());
        self.server.tracker.spawn(async move {
            let catalog = async {
                if for_session {
                    server.session_catalog().await
                } else {
                    server.catalog_within(server.config.initialize_wait).await
                }
            };
            tokio::select! {
                outcome = catalog => {
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
        let client_caps = self
            .conns
            .get(&conn)
            .and_then(|c| c.client_init.as_ref())
            .and_then(|i| i.get("clientCapabilities"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut result = initialize_result(&self.server.runtime.describe(), &catalog, &client_caps);
        if let (Some(vault), Some(methods)) = (
            &self.server.config.vault,
            result.get_mut("authMethods").and_then(Value::as_array_mut),
        ) {
            methods.extend(crate::acp::vault_login::methods(
                vault.0.as_ref(),
                &catalog.agent_titles(),
                &client_caps,
            ));
        }
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
        if let Some(agent) = crate::acp::vault_login::agent_of(method_id) {
            if self.server.config.vault.is_some() {
                let error = RpcError::new(
                    INVALID_PARAMS,
                    format!(
                        "{method_id} is a terminal login: run `terok-executor acp connect <container> \
                         {} {agent}` in a terminal",
                        crate::acp::vault_login::VAULT_LOGIN
                    ),
                );
                return self.reply_error(conn, Some(&id), &error);
            }
        }
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
        if let Some(c) = self.conns.get_mut(&conn) {
            c.login = Some(agent.clone());
        }
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
        self.after_catalog(conn, true, move |outcome| Event::SessionReady {
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
        let mut result = json!({
            "sessionId": &*session.id,
            "configOptions": session.config_options(),
            "models": catalog.legacy_models(&model),
        });
        if let Some(modes) = session.legacy_modes() {
            result["modes"] = modes;
        }
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
        let config_id = params.get("configId").and_then(Value::as_str).unwrap_or("");
        let sid = params
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or("");
        if self.is_legacy_mode_pick(sid, config_id) {
            return self.set_legacy_mode(conn, id, &params);
        }
        if config_id != MODEL_OPTION_ID {
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
        if !session.is_binding() {
            session.pick_params = Some(params.clone());
        }
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

/// The proxy's own `initialize` answer, built from the ACP schema types: the merged
/// capabilities of the agents and their auth methods as `agent:methodId`. The auth methods are
/// kept raw so fields newer than the schema survive.
fn initialize_result(container: &str, catalog: &Catalog, client_caps: &Value) -> Value {
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
    value["authMethods"] = Value::Array(catalog.auth_methods(client_caps));
    value
}
