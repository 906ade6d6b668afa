//! The mode select of an agent that offers modes only as a legacy block (see
//! [`crate::acp::modes`]): a pick in it becomes `session/set_mode` on the agent, and the
//! agent's `current_mode_update` keeps it current for the client.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::Pending;
use super::session::SessionState;
use super::{ConnId, Hub};
use crate::acp::frame::Frame;
use crate::acp::message::{RpcError, INVALID_PARAMS};
use crate::acp::modes;

impl Hub {
    /// Whether `session/set_config_option` for `config_id` on `sid` is a pick in the mode select
    /// the proxy made (the session is bound to an agent with legacy modes only).
    pub(super) fn is_legacy_mode_pick(&self, sid: &str, config_id: &str) -> bool {
        config_id == modes::MODE_OPTION_ID
            && self.sessions.get(sid).is_some_and(
                |s| matches!(&s.state, SessionState::Bound(link) if link.modes_as_option),
            )
    }

    /// `session/set_mode` from the client, for a session whose agent sent a legacy block: sent
    /// on with every field, and the block follows when the agent agrees. Others are routed.
    pub(super) fn on_set_mode(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let sid = params
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mode = params
            .get("modeId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let link = self.sessions.get(sid).and_then(|s| match &s.state {
            SessionState::Bound(link) if link.modes.is_some() => {
                Some((s.id.clone(), link.slot, link.backend_sid.clone()))
            }
            _ => None,
        });
        let (Some((session, slot, backend_sid)), Some(mode), Some(id)) =
            (link, mode, frame.id_raw())
        else {
            return self.route(conn, frame);
        };
        if !self.held_by(conn, sid, Some(&id)) {
            return;
        }
        let mut request = params.clone();
        request["sessionId"] = json!(backend_sid);
        let pending = Pending::SetMode {
            conn,
            client_id: id,
            session,
            mode,
            options: false,
        };
        self.send_set_mode(slot, &request, pending);
    }

    fn send_set_mode(&mut self, slot: u32, request: &Value, pending: Pending) {
        if let Some(backend) = self.backends.get_mut(&slot) {
            backend.request("session/set_mode", request, pending);
        }
    }

    /// A pick in the mode select: `session/set_mode` on the agent, with the client's `_meta`.
    pub(super) fn set_legacy_mode(&mut self, conn: ConnId, id: Bytes, params: &Value) {
        let sid = params
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !self.held_by(conn, sid, Some(&id)) {
            return;
        }
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let Some(link) = session.link().filter(|l| l.modes_as_option) else {
            return;
        };
        let value = params.get("value").and_then(Value::as_str);
        let Some(mode) = value.filter(|m| link.modes.as_ref().is_some_and(|b| modes::offers(b, m)))
        else {
            let error = RpcError::new(
                INVALID_PARAMS,
                format!(
                    "unknown mode {}",
                    params.get("value").unwrap_or(&Value::Null)
                ),
            );
            return self.reply_error(conn, Some(&id), &error);
        };
        let mut request = json!({"sessionId": link.backend_sid, "modeId": mode});
        crate::acp::message::carry_fields(params, &["configId", "value"], &mut request);
        let pending = Pending::SetMode {
            conn,
            client_id: id,
            session: session.id.clone(),
            mode: mode.to_owned(),
            options: true,
        };
        self.send_set_mode(link.slot, &request, pending);
    }

    /// The agent answered a mode change: the block follows; a pick in the select is answered
    /// with the complete option list, a `session/set_mode` with the agent's own answer.
    pub(super) fn on_mode_set(
        &mut self,
        conn: ConnId,
        client_id: &[u8],
        sid: &Arc<str>,
        (mode, options): (&str, bool),
        frame: &Frame,
    ) {
        let value = frame.to_value().unwrap_or(Value::Null);
        let failed = value.get("error").is_some();
        if !failed {
            if let Some(block) = self
                .sessions
                .get_mut(sid)
                .and_then(|s| s.link_mut())
                .and_then(|l| l.modes.as_mut())
            {
                modes::set_current(block, mode);
            }
        }
        if failed || !options {
            // The agent's own answer, under the client's id.
            return self.answer_client(conn, client_id, frame);
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let options = session.config_options();
        session.transcript.record_update(
            json!({"sessionUpdate": "config_option_update", "configOptions": options.clone()}),
        );
        self.reply_result(conn, client_id, &json!({"configOptions": options}));
    }

    /// The agent changed a session's mode itself: the legacy block follows, and where the
    /// proxy offers the modes as a select, the client also gets the complete option list.
    pub(super) fn on_mode_update(&mut self, sid: &Arc<str>, frame: &Frame) {
        let Ok(value) = frame.to_value() else {
            return;
        };
        let Some(mode) = value.pointer("/params/update").and_then(modes::mode_update) else {
            return;
        };
        let Some(link) = self.sessions.get_mut(sid).and_then(|s| s.link_mut()) else {
            return;
        };
        let Some(block) = link.modes.as_mut() else {
            return;
        };
        modes::set_current(block, mode);
        if link.modes_as_option {
            let options = self.sessions.get(sid).map(|s| s.config_options());
            if let Some(options) = options {
                let update =
                    json!({"sessionUpdate": "config_option_update", "configOptions": options});
                self.session_update(sid, update);
            }
        }
    }
}
