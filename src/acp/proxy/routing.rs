//! Session routing by id: reopening, closing and deleting sessions.
//!
//! `session/load` and `session/resume` of a session the daemon holds (attached elsewhere,
//! detached, or kept on disk since before a restart) move it to the asking connection: a load
//! replays the transcript as `session/update`s, both answer with the complete option list, and
//! a turn still running streams on to the new holder. A proxy id the daemon knows only from its
//! session map (e.g. an agent session first seen in `session/list`) is reopened through the
//! owning agent, whose own replay then reaches the client. `session/close` and
//! `session/delete` go to the owning agent; each is refused with a clear error when that agent
//! lacks the capability.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::Pending;
use super::client::unknown_session;
use super::session::{Reply, Session, SessionState};
use super::{ConnId, Hub};
use crate::acp::frame::Frame;
use crate::acp::message::{self, RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::acp::picker::Catalog;
use crate::acp::probe::AgentProbe;
use crate::acp::sessions::SessionRecord;

/// Whether the agent advertised `agentCapabilities.<path>` (true, or an object).
pub(super) fn supports(probe: &AgentProbe, path: &str) -> bool {
    probe
        .initialize
        .pointer(&format!("/agentCapabilities/{path}"))
        .is_some_and(|v| v.as_bool().unwrap_or(!v.is_null()))
}

impl Hub {
    pub(super) fn catalog_or_error(&mut self, conn: ConnId, id: &[u8]) -> Option<Arc<Catalog>> {
        let catalog = self.conns.get(&conn).and_then(|c| c.catalog.clone());
        if catalog.is_none() {
            self.reply_error(
                conn,
                Some(id),
                &RpcError::new(INVALID_REQUEST, "send initialize first"),
            );
        }
        catalog
    }

    /// `session/load` / `session/resume` of a proxy session id.
    pub(super) fn on_reattach(&mut self, conn: ConnId, frame: Frame, method: &'static str) {
        let (Ok(value), Some(id)) = (frame.to_value(), frame.id_raw()) else {
            return;
        };
        let params = value.get("params").cloned().unwrap_or(Value::Null);
        let Some(sid) = params
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        let Some(catalog) = self.catalog_or_error(conn, &id) else {
            return;
        };
        if self.sessions.contains_key(sid.as_str()) || self.restore(&sid, &catalog, &params) {
            return self.reattach_held(conn, id, &sid, method);
        }
        let Some(record) = self.server.sessions.get(&sid) else {
            return self.reply_error(conn, Some(&id), &unknown_session(&sid));
        };
        let Some(probe) = catalog.agent(record.agent.as_str()).cloned() else {
            let error = RpcError::new(
                message::RESOURCE_NOT_FOUND,
                format!("agent {} is not available", record.agent),
            );
            return self.reply_error(conn, Some(&id), &error);
        };
        let capability = if method == "session/load" {
            "loadSession"
        } else {
            "sessionCapabilities/resume"
        };
        if !supports(&probe, capability) {
            let error = RpcError::new(
                METHOD_NOT_FOUND,
                format!(
                    "agent {} cannot {}",
                    record.agent,
                    method.trim_start_matches("session/")
                ),
            )
            .with_data(json!({"agent": record.agent.as_str(), "method": method}));
            return self.reply_error(conn, Some(&id), &error);
        }
        let model = model_of(&catalog, &record, &probe);
        let mut session = Session::with_id(
            &sid,
            params,
            catalog,
            model.clone(),
            self.server.config.transcript_bytes,
        );
        self.map_paths(&mut session, false);
        session.reattach = Some((method, record.backend_sid.clone()));
        session.holder = Some(conn);
        let sid = session.id.clone();
        self.sessions.insert(sid.clone(), session);
        let bare = model
            .split_once(':')
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default();
        tracing::info!(session = %sid, agent = %record.agent, method, "reopening through the agent");
        self.start_bind(
            &sid,
            record.agent.clone(),
            bare,
            Reply::Reattached(conn, id),
            None,
        );
    }

    /// Brings a session kept on disk (its record and transcript) back into memory, detached
    /// and unbound: its next request reopens the agent's session (with the fields of the
    /// client's `reopen` request: its `cwd`, MCP servers, `_meta`), or starts a fresh one that
    /// is handed the conversation.
    fn restore(&mut self, sid: &str, catalog: &Arc<Catalog>, reopen: &Value) -> bool {
        let (Some(record), Some(saved)) = (
            self.server.sessions.get(sid),
            self.server.sessions.load_transcript(sid),
        ) else {
            return false;
        };
        let Some(probe) = catalog.agent(record.agent.as_str()).cloned() else {
            return false;
        };
        let model = model_of(catalog, &record, &probe);
        let mut params =
            json!({"cwd": record.cwd.clone().unwrap_or_else(|| "/".into()), "mcpServers": []});
        if let Some(fields) = reopen.as_object() {
            for (key, value) in fields.iter().filter(|(k, _)| *k != "sessionId") {
                params[key] = value.clone();
            }
        }
        let budget = self.server.config.transcript_bytes;
        let mut session = Session::with_id(sid, params, catalog.clone(), model, budget);
        session.transcript = crate::acp::transcript::Transcript::restore(saved, budget);
        self.map_paths(&mut session, false);
        session.reattach = if supports(&probe, "sessionCapabilities/resume") {
            Some(("session/resume", record.backend_sid.clone()))
        } else if supports(&probe, "loadSession") {
            Some(("session/load", record.backend_sid.clone()))
        } else {
            None
        };
        if session.reattach.is_none() && self.server.config.switch_context {
            session.handover = Some(super::handover::context(&mut session.transcript, None));
        }
        tracing::info!(session = %sid, agent = %record.agent, "restored a session from disk");
        self.sessions.insert(session.id.clone(), session);
        true
    }

    /// Moves a session the daemon holds to `conn`: replay (for a load), answer, then the
    /// questions the agent asked while the session was elsewhere.
    fn reattach_held(&mut self, conn: ConnId, id: Bytes, sid: &str, method: &'static str) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let sid = session.id.clone();
        let mut out = bytes::BytesMut::new();
        let mut replayed = 0usize;
        if method == "session/load" {
            for entry in session.transcript.entries() {
                if let crate::acp::transcript::Entry::Update { update } = entry {
                    let params = json!({"sessionId": &*sid, "update": update});
                    message::write_notification(&mut out, "session/update", &params);
                    replayed += 1;
                }
            }
        }
        let mut result = json!({
            "configOptions": session.config_options(),
            "models": session.catalog.legacy_models(&session.model),
        });
        if let Some(modes) = session.legacy_modes() {
            result["modes"] = modes;
        }
        tracing::info!(session = %sid, conn, method, replayed, status = session.status(), "reattached");
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buf.extend_from_slice(&out);
        }
        self.reply_result(conn, &id, &result);
        self.attach(conn, &sid);
        self.check_idle();
    }

    /// `session/close`: the owning agent closes its session; the id stays known for a reload.
    pub(super) fn on_close(&mut self, conn: ConnId, frame: Frame) {
        let Some(id) = frame.id_raw() else { return };
        let Some(sid) = frame.session_id().map(|s| s.into_owned()) else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        if !self.held_by(conn, &sid, Some(&id)) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid.as_str()) else {
            return;
        };
        match &mut session.state {
            SessionState::Bound(link) => {
                let slot = link.slot;
                let closable = self
                    .backends
                    .get(&slot)
                    .is_some_and(|b| b.supports("sessionCapabilities/close"));
                if !closable {
                    let error = RpcError::new(
                        METHOD_NOT_FOUND,
                        format!("agent {} cannot close sessions", link.agent),
                    );
                    return self.reply_error(conn, Some(&id), &error);
                }
                let route = (
                    session.id.clone(),
                    link.backend_literal.clone(),
                    link.backend_sid.clone(),
                );
                self.save_transcript(&route.0);
                self.forward_to_backend(slot, conn, frame, Some((route.0.clone(), route.1)));
                if let Some(backend) = self.backends.get_mut(&slot) {
                    backend.routes.remove(&route.2);
                }
                self.sessions.remove(&route.0);
                self.server.session_unbound(&route.0);
                self.maybe_idle(slot);
            }
            // Nothing runs behind a session that is not bound: closing it is local.
            SessionState::Unbound => {
                let sid = session.id.clone();
                self.save_transcript(&sid);
                self.sessions.remove(&sid);
                self.reply_result(conn, &id, &json!({}));
            }
            SessionState::Binding { queue, .. } => queue.push((conn, frame)),
        }
    }

    /// `session/delete`: the owning agent deletes its session and the id is forgotten.
    pub(super) fn on_delete(&mut self, conn: ConnId, frame: Frame) {
        let Some(id) = frame.id_raw() else { return };
        let Some(sid) = frame.session_id().map(|s| s.into_owned()) else {
            return self.reply_error(
                conn,
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        let Some(record) = self.server.sessions.get(&sid) else {
            if let Some(session) = self.sessions.get(sid.as_str()) {
                if matches!(session.state, SessionState::Unbound) {
                    self.sessions.remove(sid.as_str());
                    return self.reply_result(conn, &id, &json!({}));
                }
            }
            return self.reply_error(conn, Some(&id), &unknown_session(&sid));
        };
        let Some(catalog) = self.catalog_or_error(conn, &id) else {
            return;
        };
        let supported = catalog
            .agent(record.agent.as_str())
            .is_some_and(|p| supports(p, "sessionCapabilities/delete"));
        if !supported {
            let error = RpcError::new(
                METHOD_NOT_FOUND,
                format!("agent {} cannot delete sessions", record.agent),
            );
            return self.reply_error(conn, Some(&id), &error);
        }
        if let Some(session) = self.sessions.remove(sid.as_str()) {
            if let Some(link) = session.link() {
                if let Some(backend) = self.backends.get_mut(&link.slot) {
                    backend.routes.remove(&link.backend_sid);
                }
            }
            self.server.session_unbound(&session.id);
        }
        self.server.sessions.remove_transcript(&sid);
        let slot = self.ensure_backend(&record.agent, Some(conn));
        if let Some(backend) = self.backends.get_mut(&slot) {
            backend.idle_epoch = None;
            let mut params = json!({"sessionId": record.backend_sid});
            if let Some(client_params) = frame
                .to_value()
                .ok()
                .and_then(|mut v| v.get_mut("params").map(Value::take))
            {
                message::carry_fields(&client_params, &[], &mut params);
            }
            backend.request_when_ready(
                "session/delete",
                params,
                Pending::Deleted {
                    conn,
                    client_id: id,
                    session: sid,
                },
            );
        }
    }

    /// Writes a session's transcript to disk (off the hub's thread), once it has something to
    /// keep.
    pub(super) fn save_transcript(&mut self, sid: &Arc<str>) {
        if !self.keeps_transcript(sid) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let saved = session.transcript.save();
        if !saved.entries.is_empty() {
            self.server.sessions.save_transcript(sid, saved);
        }
    }

    /// Whether a session's transcript is worth a file: it is not there already, and the session
    /// was bound (else no record comes back to it).
    fn keeps_transcript(&self, sid: &str) -> bool {
        let Some(session) = self.sessions.get(sid) else {
            return false;
        };
        if session.transcript.is_parked() {
            return false;
        }
        session.link().is_some()
            || session.reattach.is_some()
            || self.server.sessions.get(sid).is_some()
    }

    /// A detached session with no turn running keeps its transcript on disk only: its entries
    /// leave memory for the file until a client (or the agent) needs them again. Only where
    /// transcripts are kept on disk.
    pub(super) fn park_transcript(&mut self, sid: &Arc<str>) {
        let idle = self
            .sessions
            .get(sid)
            .is_some_and(|s| s.holder.is_none() && s.turns == 0);
        if !idle || !self.keeps_transcript(sid) {
            return;
        }
        let Some(loader) = self.server.sessions.transcript_loader(sid) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        if let Some(saved) = session.transcript.park(loader) {
            self.server.sessions.save_transcript(sid, saved);
        }
    }

    /// Saves every session's transcript (at shutdown).
    pub(super) fn save_transcripts(&mut self) {
        let sids: Vec<Arc<str>> = self.sessions.keys().cloned().collect();
        for sid in sids {
            self.save_transcript(&sid);
        }
    }
}

/// The model a reopened session shows: its last pick where the catalog still has it, else the
/// agent's first model.
fn model_of(catalog: &Catalog, record: &SessionRecord, probe: &AgentProbe) -> String {
    catalog
        .resolve(&record.model)
        .map(|_| record.model.clone())
        .unwrap_or_else(|_| {
            probe
                .menu
                .models
                .first()
                .map(|m| crate::acp::picker::namespaced(&probe.agent, &m.id))
                .unwrap_or_default()
        })
}
