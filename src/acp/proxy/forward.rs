//! Client frames on their way to a session's agent.
//!
//! A frame that names a session goes to that session's agent, if the connection holds the
//! session (binding it lazily first if needed, except for `session/cancel`); a prompt starts a
//! turn, is recorded in the transcript, may carry the conversation handed over by a switch, and
//! is refused up front when it has content the agent cannot take. Requests without a session go
//! to the only agent the connection's sessions use. Answers to agent→client requests go back to
//! the agent that asked, under its own id; `$/cancel_request` is re-issued under the agent's.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::client::{rewrite_frame, unknown_session};
use super::session::{Reply, SessionState};
use super::{ConnId, Hub};
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::message::{self, RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::acp::method::Method;

impl Hub {
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

    /// Whether `conn` holds session `sid`; if not, the client is told why (for a request).
    pub(super) fn held_by(&mut self, conn: ConnId, sid: &str, id: Option<&[u8]>) -> bool {
        let holder = self.sessions.get(sid).map(|s| s.holder);
        let error = match holder {
            Some(Some(h)) if h == conn => return true,
            None => unknown_session(sid),
            Some(None) => RpcError::new(
                INVALID_REQUEST,
                format!("session {sid} is detached; session/load or session/resume it to attach it here"),
            )
            .with_data(json!({"sessionId": sid})),
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
        session.last_activity = self.now;
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
    pub(super) fn on_client_response(&mut self, conn: ConnId, frame: Frame) {
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
    pub(super) fn on_cancel_request(&mut self, conn: ConnId, frame: Frame) {
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
