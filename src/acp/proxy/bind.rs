//! Binding a session to an agent.
//!
//! A bind runs as a chain of requests the proxy sends on the client's behalf, each answer
//! moving it on: start the agent's backend if this connection has none (spawn, replayed
//! `initialize`), open the agent's session with the client's own `session/new` params, select
//! the bare model id (through the agent's config option, or `session/set_model` for agents that
//! only speak that; nothing for agents without a selector), then answer the request that asked
//! for the bind and replay the frames queued meanwhile. Any failure answers the asking request
//! and every queued request with the error, and leaves the session unbound.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::{BackendState, Pending, SessionRoute};
use super::session::{Link, Reply, SessionState};
use super::{ConnId, Event, Hub};
use crate::acp::frame::{json_string_literal, Frame, FrameKind};
use crate::acp::message::{RpcError, INTERNAL_ERROR, METHOD_NOT_FOUND};
use crate::acp::models::{ModelMenu, ModelSelector};
use crate::acp::picker::{agent_options_without_model, namespaced};
use crate::acp::runtime::AgentName;

/// The error object of an answer, as the agent sent it.
fn error_of(value: &Value) -> Option<RpcError> {
    let error = value.get("error")?;
    let mut rpc = RpcError::new(
        error
            .get("code")
            .and_then(Value::as_i64)
            .unwrap_or(INTERNAL_ERROR),
        error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("agent error")
            .to_owned(),
    );
    rpc.data = error.get("data").cloned();
    Some(rpc)
}

impl Hub {
    /// Starts binding `sid` to `agent` with `model`; `first` is the frame that asked, if it has
    /// to be replayed once the bind is done.
    pub(super) fn start_bind(
        &mut self,
        sid: &Arc<str>,
        agent: AgentName,
        model: String,
        reply: Reply,
        first: Option<(ConnId, Frame)>,
    ) {
        self.start_bind_from(sid, agent, model, reply, first, None)
    }

    /// Like [`Hub::start_bind`], switching away from `previous` (another agent's session)
    /// once the new one is ready.
    pub(super) fn start_bind_from(
        &mut self,
        sid: &Arc<str>,
        agent: AgentName,
        model: String,
        reply: Reply,
        first: Option<(ConnId, Frame)>,
        previous: Option<Link>,
    ) {
        let holder = self.sessions.get(sid).and_then(|s| s.holder);
        let slot = self.ensure_backend(&agent, holder);
        let attempt = self.next_bind_attempt;
        self.next_bind_attempt += 1;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        tracing::info!(session = %sid, agent = %agent, model = %model, "binding");
        session.state = SessionState::Binding {
            slot,
            agent,
            model,
            reply,
            queue: first.into_iter().collect(),
            link: None,
            attempt,
            previous,
        };
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        backend.idle_epoch = None;
        if backend.state == BackendState::Ready {
            self.open_backend_session(slot, sid);
        } else {
            backend.waiting.push(sid.clone());
        }
        self.after(
            self.server.config.bind_timeout,
            Event::BindTimeout {
                session: sid.clone(),
                attempt,
            },
        );
    }

    pub(super) fn on_backend_initialized(&mut self, slot: u32, frame: Frame) {
        let value = frame.to_value().unwrap_or(Value::Null);
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        if let Some(mut error) = error_of(&value) {
            error.message = format!(
                "agent {} refused initialize: {}",
                backend.agent, error.message
            );
            return self.fail_backend(slot, error);
        }
        backend.state = BackendState::Ready;
        backend.init_result = value.get("result").cloned().unwrap_or(Value::Null);
        tracing::debug!(agent = %backend.agent, "agent initialized");
        for (method, params, pending) in std::mem::take(&mut backend.waiting_requests) {
            backend.request(method, &params, pending);
        }
        for sid in std::mem::take(&mut backend.waiting) {
            self.open_backend_session(slot, &sid);
        }
        self.keep_spares();
    }

    /// Sends the agent-side `session/new` with the client's own params, or takes the agent's
    /// spare session when it was opened with the same params.
    pub(super) fn open_backend_session(&mut self, slot: u32, sid: &Arc<str>) {
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let mut params = session.new_params.clone();
        let method = session
            .reattach
            .as_ref()
            .map(|(m, _)| *m)
            .unwrap_or("session/new");
        if let Some(paths) = &session.paths {
            for warning in paths.rewrite_client_to_agent(method, &mut params) {
                tracing::warn!(session = %sid, "{warning}");
            }
        }
        let (reattach, literal) = (session.reattach.clone(), session.literal.clone());
        if reattach.is_none() {
            if let Some((result, early)) = self.take_spare(slot, &params) {
                tracing::info!(session = %sid, "binding to a spare session");
                self.session_opened(slot, sid, result);
                for frame in early {
                    self.on_backend_frame(slot, frame);
                }
                return;
            }
            if self.wait_for_spare(slot, sid, &params) {
                return;
            }
        }
        let replayed = self
            .sessions
            .get_mut(sid)
            .is_some_and(|s| s.transcript.entries().next().is_some());
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        if let Some((method, backend_sid)) = reattach {
            if method == "session/load" && replayed {
                // The client has the history from the proxy's transcript already.
                if let Some(session) = self.sessions.get_mut(sid) {
                    session.suppress_replay = true;
                }
            }
            // A load replays the conversation before it answers: the route must exist first.
            params["sessionId"] = json!(backend_sid);
            backend.new_routes.push((backend_sid.clone(), sid.clone()));
            backend.routes.insert(
                backend_sid,
                SessionRoute {
                    proxy: sid.clone(),
                    literal,
                },
            );
        }
        backend.request(
            method,
            &params,
            Pending::NewSession {
                session: sid.clone(),
            },
        );
    }

    pub(super) fn on_backend_session(&mut self, slot: u32, sid: &Arc<str>, frame: Frame) {
        if let Some(session) = self.sessions.get_mut(sid) {
            session.suppress_replay = false;
        }
        let value = frame.to_value().unwrap_or(Value::Null);
        if let Some(error) = error_of(&value) {
            return self.bind_failed(sid, error);
        }
        let result = value.get("result").cloned().unwrap_or(Value::Null);
        self.session_opened(slot, sid, result);
    }

    /// The agent's session for `sid` exists: remember it, then select the model.
    fn session_opened(&mut self, slot: u32, sid: &Arc<str>, result: Value) {
        // A reopened session keeps the agent's id (load and resume answer without one).
        let reattached = self
            .sessions
            .get(sid)
            .and_then(|s| s.reattach.as_ref().map(|(_, b)| b.clone()));
        let Some(backend_sid) = result
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(reattached)
        else {
            return self.bind_failed(
                sid,
                RpcError::new(
                    INTERNAL_ERROR,
                    "the agent answered session/new without a sessionId",
                ),
            );
        };
        let (Some(backend), Some(session)) =
            (self.backends.get_mut(&slot), self.sessions.get_mut(sid))
        else {
            return;
        };
        let SessionState::Binding {
            link, model, reply, ..
        } = &mut session.state
        else {
            return;
        };
        let menu = ModelMenu::from_session(&result);
        let all_options = result
            .get("configOptions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let options = agent_options_without_model(all_options, &menu.selector);
        let modes = crate::acp::modes::legacy_modes(&result);
        let modes_as_option = modes.is_some() && !crate::acp::modes::has_mode_option(all_options);
        backend.routes.insert(
            backend_sid.clone(),
            SessionRoute {
                proxy: sid.clone(),
                literal: session.literal.clone(),
            },
        );
        backend.new_routes.push((backend_sid.clone(), sid.clone()));
        *link = Some(Link {
            slot,
            agent: backend.agent.clone(),
            backend_literal: Bytes::from(json_string_literal(&backend_sid)),
            backend_sid,
            selector: menu.selector.clone(),
            has_legacy: menu.has_legacy,
            options,
            modes,
            modes_as_option,
        });
        let (model, reply) = (model.clone(), reply.clone());
        if menu.current.as_deref() == Some(model.as_str()) || menu.selector == ModelSelector::None {
            self.model_selected(sid, &model, reply);
        } else {
            self.select_model(slot, sid, model, reply);
        }
    }

    /// Asks the agent to switch the session's model to `model` (a bare id).
    pub(super) fn select_model(&mut self, slot: u32, sid: &Arc<str>, model: String, reply: Reply) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let client_params = session.pick_params.take().unwrap_or(Value::Null);
        let Some(link) = session.link().cloned() else {
            return;
        };
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        // Whichever way the client picked, the agent gets its own method's fields; the rest of
        // what the client sent (`_meta`, say) goes along.
        let pick_fields = ["sessionId", "configId", "value", "modelId"];
        let request = |mut request: Value| {
            crate::acp::message::carry_fields(&client_params, &pick_fields, &mut request);
            request
        };
        let pending = |legacy_retry| Pending::SelectModel {
            session: sid.clone(),
            model: model.clone(),
            reply: reply.clone(),
            legacy_retry,
        };
        match &link.selector {
            ModelSelector::ConfigOption { id } => backend.request(
                "session/set_config_option",
                &request(json!({"sessionId": link.backend_sid, "configId": id, "value": model})),
                pending(link.has_legacy),
            ),
            ModelSelector::Legacy => backend.request(
                "session/set_model",
                &request(json!({"sessionId": link.backend_sid, "modelId": model})),
                pending(false),
            ),
            ModelSelector::None => self.model_selected(sid, &model, reply),
        }
    }

    pub(super) fn on_model_selected(
        &mut self,
        slot: u32,
        sid: &Arc<str>,
        model: String,
        reply: Reply,
        legacy_retry: bool,
        frame: Frame,
    ) {
        let value = frame.to_value().unwrap_or(Value::Null);
        if let Some(error) = error_of(&value) {
            if legacy_retry && error.code == METHOD_NOT_FOUND {
                // The agent lists a config option but only speaks the legacy method.
                if let Some(link) = self.sessions.get_mut(sid).and_then(|s| s.link_mut()) {
                    link.selector = ModelSelector::Legacy;
                }
                return self.select_model(slot, sid, model, reply);
            }
            let bound = self
                .sessions
                .get(sid)
                .is_some_and(|s| matches!(s.state, SessionState::Bound(_)));
            if bound {
                if let Some((conn, id)) = reply.asker() {
                    let id = id.clone();
                    self.reply_error(conn, Some(&id), &error);
                }
                return;
            }
            return self.bind_failed(sid, error);
        }
        if let Some(options) = value
            .pointer("/result/configOptions")
            .and_then(Value::as_array)
        {
            if let Some(link) = self.sessions.get_mut(sid).and_then(|s| s.link_mut()) {
                link.options = agent_options_without_model(options, &link.selector);
            }
        }
        self.model_selected(sid, &model, reply);
    }

    /// The agent runs `model` for the session: finish the bind if one is under way, then answer.
    fn model_selected(&mut self, sid: &Arc<str>, model: &str, reply: Reply) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(agent) = session.link().map(|l| l.agent.clone()) else {
            return;
        };
        session.model = namespaced(&agent, model);
        let mut queue = Vec::new();
        let mut switched_from = None;
        if let SessionState::Binding { link: Some(_), .. } = &session.state {
            let SessionState::Binding {
                link: Some(link),
                queue: q,
                previous,
                ..
            } = std::mem::replace(&mut session.state, SessionState::Unbound)
            else {
                return;
            };
            queue = q;
            session.state = SessionState::Bound(link);
            tracing::info!(session = %sid, agent = %agent, model, "bound");
            self.server.session_bound(sid, &agent);
            switched_from = previous;
        }
        if let Some(previous) = switched_from {
            self.retire(sid, previous, &agent, model);
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        session.reattach = None;
        // Remember which agent session stands behind this id, for reattaching later.
        if let SessionState::Bound(link) = &session.state {
            let record = crate::acp::sessions::SessionRecord {
                agent: link.agent.clone(),
                backend_sid: link.backend_sid.clone(),
                model: session.model.clone(),
                cwd: session
                    .new_params
                    .get("cwd")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            self.server.sessions.put(sid, record);
        }
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let options = session.config_options();
        match reply {
            Reply::ConfigOptions(conn, id) => {
                self.reply_result(conn, &id, &json!({"configOptions": options}))
            }
            Reply::Empty(conn, id) => self.reply_result(conn, &id, &json!({})),
            Reply::Reattached(conn, id) => {
                let mut result = json!({
                    "configOptions": options,
                    "models": session.catalog.legacy_models(&session.model),
                });
                if let Some(modes) = session.legacy_modes() {
                    result["modes"] = modes;
                }
                self.reply_result(conn, &id, &result);
            }
            Reply::Notify => {
                let update =
                    json!({"sessionUpdate": "config_option_update", "configOptions": options});
                self.session_update(sid, update);
            }
        }
        self.refresh_consumers();
        self.keep_spares();
        for (conn, frame) in queue {
            self.on_client_frame(conn, frame);
        }
    }

    /// The bind did not work out: whoever waited gets `error`, the session is unbound again.
    pub(super) fn bind_failed(&mut self, sid: &Arc<str>, error: RpcError) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        if let Some((_, backend_sid)) = session.reattach.take() {
            // A session that could not be reopened does not exist on this connection.
            if let SessionState::Binding { slot, reply, .. } = &session.state {
                if let Some(backend) = self.backends.get_mut(slot) {
                    backend.routes.remove(&backend_sid);
                }
                let asker = reply.asker().map(|(c, id)| (c, id.clone()));
                self.sessions.remove(sid);
                if let Some((conn, id)) = asker {
                    self.reply_error(conn, Some(&id), &error);
                }
            }
            return;
        }
        let mut state = std::mem::replace(&mut session.state, SessionState::Unbound);
        if let SessionState::Bound(link)
        | SessionState::Binding {
            link: Some(link), ..
        } = &state
        {
            if let Some(backend) = self.backends.get_mut(&link.slot) {
                backend.routes.remove(&link.backend_sid);
            }
        }
        // A failed switch leaves the session where it was, if that agent is still there.
        let restored = match &mut state {
            SessionState::Binding { previous, .. } => previous
                .take()
                .filter(|p| self.backends.contains_key(&p.slot)),
            _ => None,
        };
        if let Some(previous) = restored {
            // The session's model is only changed once a selection succeeds: it still names
            // the previous agent's model.
            if let Some(session) = self.sessions.get_mut(sid) {
                session.state = SessionState::Bound(previous);
            }
        } else {
            self.server.session_unbound(sid);
        }
        match state {
            SessionState::Binding {
                agent,
                reply,
                queue,
                ..
            } => {
                tracing::warn!(session = %sid, agent = %agent, "bind failed: {}", error.message);
                if let Some((conn, id)) = reply.asker() {
                    let id = id.clone();
                    self.reply_error(conn, Some(&id), &error);
                }
                for (conn, frame) in queue {
                    if frame.kind() == FrameKind::Request {
                        self.reply_error(conn, frame.id_raw().as_deref(), &error);
                    }
                }
            }
            SessionState::Bound(link) => {
                tracing::warn!(session = %sid, agent = %link.agent, "session lost its agent: {}", error.message);
            }
            SessionState::Unbound => {}
        }
    }

    /// Lets go of the agent session a switch moved away from: its turn is cancelled, it is
    /// closed where the agent supports that, and late frames from it are dropped. The
    /// conversation so far goes to the new agent with the next prompt (unless
    /// `TEROK_ACP_SWITCH_CONTEXT=off`), and the user is told either way.
    fn retire(&mut self, sid: &Arc<str>, previous: Link, agent: &AgentName, model: &str) {
        if let Some(backend) = self.backends.get_mut(&previous.slot) {
            backend.routes.remove(&previous.backend_sid);
            backend.retired.insert(previous.backend_sid.clone());
            let params = json!({"sessionId": previous.backend_sid});
            crate::acp::message::write_notification(&mut backend.buf, "session/cancel", &params);
        }
        self.close_agent_session(previous.slot, &previous.backend_sid);
        tracing::info!(session = %sid, from = %previous.agent, to = %agent, "switched agents");
        let handover = self.server.config.switch_context
            && self
                .sessions
                .get_mut(sid)
                .is_some_and(|s| s.transcript.entries().next().is_some());
        let text = if handover {
            if let Some(session) = self.sessions.get_mut(sid) {
                session.handover = Some(super::handover::context(
                    &mut session.transcript,
                    Some(&previous.agent),
                ));
            }
            format!(
                "Switched from {} to {}. The conversation so far is handed to {} with your next message.",
                previous.agent,
                namespaced(agent, model),
                agent
            )
        } else {
            format!(
                "Switched from {} to {}. The conversation so far stays with {}; {} starts without it.",
                previous.agent,
                namespaced(agent, model),
                previous.agent,
                agent
            )
        };
        let update = json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}});
        self.session_update(sid, update);
    }

    /// Closes an agent session nobody will use again, where the agent supports that.
    pub(super) fn close_agent_session(&mut self, slot: u32, backend_sid: &str) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        backend.routes.remove(backend_sid);
        if backend.supports("sessionCapabilities/close") {
            let params = json!({"sessionId": backend_sid});
            backend.request("session/close", &params, Pending::Ignore);
        }
    }

    pub(super) fn on_bind_timeout(&mut self, sid: &Arc<str>, attempt: u64) {
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let SessionState::Binding {
            slot,
            attempt: current,
            agent,
            ..
        } = &session.state
        else {
            return;
        };
        if *current != attempt {
            return;
        }
        let (slot, agent) = (*slot, agent.clone());
        let error = RpcError::new(
            INTERNAL_ERROR,
            format!(
                "agent {agent} did not get ready within {:?}",
                self.server.config.bind_timeout
            ),
        );
        let backend_ready = self.backends.get(&slot).is_some_and(|b| b.is_ready());
        if backend_ready {
            self.bind_failed(sid, error);
        } else {
            // A backend stuck in its handshake is of no use to anyone.
            self.fail_backend(slot, error);
        }
    }
}
