//! Session routing by id: reopening, listing, closing and deleting sessions.
//!
//! `session/load` and `session/resume` reopen a proxy session id the daemon handed out before
//! (this connection, another one, or before a restart: the map is persisted), by binding the
//! owning agent and asking it to reopen its own session. `session/list` asks every agent that
//! supports it and answers with proxy ids (agent sessions never seen before get one) and one
//! cursor that carries each agent's own. `session/close` and `session/delete` go to the owning
//! agent. Each is refused with a clear error when that agent lacks the capability.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::Pending;
use super::client::unknown_session;
use super::session::{Reply, Session, SessionState};
use super::Connection;
use crate::acp::frame::Frame;
use crate::acp::message::{RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND};
use crate::acp::picker::Catalog;
use crate::acp::probe::AgentProbe;
use crate::acp::runtime::AgentName;
use crate::acp::sessions::SessionRecord;

/// An aggregated `session/list` waiting for its agents' answers.
pub(super) struct ListAggregate {
    client_id: Bytes,
    remaining: usize,
    sessions: Vec<Value>,
    cursors: BTreeMap<String, String>,
}

/// Whether the agent advertised `agentCapabilities.<path>` (true, or an object).
fn supports(probe: &AgentProbe, path: &str) -> bool {
    probe
        .initialize
        .pointer(&format!("/agentCapabilities/{path}"))
        .is_some_and(|v| v.as_bool().unwrap_or(!v.is_null()))
}

fn encode_cursor(cursors: &BTreeMap<String, String>) -> String {
    serde_json::to_vec(cursors)
        .map(|v| v.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

fn decode_cursor(cursor: &str) -> Option<BTreeMap<String, String>> {
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    serde_json::from_slice(&bytes?).ok()
}

impl Connection {
    fn catalog_or_error(&mut self, id: &[u8]) -> Option<Arc<Catalog>> {
        let catalog = self.catalog.clone();
        if catalog.is_none() {
            self.reply_error(
                Some(id),
                &RpcError::new(INVALID_REQUEST, "send initialize first"),
            );
        }
        catalog
    }

    /// `session/load` / `session/resume` of a proxy session id.
    pub(super) fn on_reattach(&mut self, frame: Frame, method: &'static str) {
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
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        if self.sessions.contains_key(sid.as_str()) {
            let error = RpcError::new(
                INVALID_REQUEST,
                format!("session {sid} is already open on this connection"),
            );
            return self.reply_error(Some(&id), &error);
        }
        let Some(record) = self.server.sessions.get(&sid) else {
            return self.reply_error(Some(&id), &unknown_session(&sid));
        };
        let Some(catalog) = self.catalog_or_error(&id) else {
            return;
        };
        let Some(probe) = catalog.agent(record.agent.as_str()).cloned() else {
            let error = RpcError::new(
                crate::acp::message::RESOURCE_NOT_FOUND,
                format!("agent {} is not available", record.agent),
            );
            return self.reply_error(Some(&id), &error);
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
            return self.reply_error(Some(&id), &error);
        }
        let model = catalog
            .resolve(&record.model)
            .map(|_| record.model.clone())
            .unwrap_or_else(|_| {
                probe
                    .menu
                    .models
                    .first()
                    .map(|m| crate::acp::picker::namespaced(&probe.agent, &m.id))
                    .unwrap_or_default()
            });
        let mut session = Session::with_id(&sid, params, catalog, model.clone());
        if let Some(workspace) = self.server.runtime.container_workspace() {
            let cwd = session
                .new_params
                .get("cwd")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned();
            if let Ok(map) = crate::acp::paths::PathMap::for_session(
                cwd,
                &workspace,
                self.server.config.extra_paths.clone(),
            ) {
                session.paths = Some(Arc::new(map));
            }
        }
        session.reattach = Some((method, record.backend_sid.clone()));
        let sid = session.id.clone();
        self.sessions.insert(sid.clone(), session);
        let bare = model
            .split_once(':')
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default();
        tracing::info!(session = %sid, agent = %record.agent, method, "reopening");
        self.start_bind(
            &sid,
            record.agent.clone(),
            bare,
            Reply::Reattached(id),
            None,
        );
    }

    /// `session/close`: the owning agent closes its session; the id stays known for a reload.
    pub(super) fn on_close(&mut self, frame: Frame) {
        let Some(id) = frame.id_raw() else { return };
        let Some(sid) = frame.session_id().map(|s| s.into_owned()) else {
            return self.reply_error(
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        let Some(session) = self.sessions.get(sid.as_str()) else {
            return self.reply_error(Some(&id), &unknown_session(&sid));
        };
        match &session.state {
            SessionState::Bound(link) => {
                let slot = link.slot;
                let closable = self.backends.get(&slot).is_some_and(|b| {
                    b.init_result
                        .pointer("/agentCapabilities/sessionCapabilities/close")
                        .is_some_and(|c| !c.is_null())
                });
                if !closable {
                    let error = RpcError::new(
                        METHOD_NOT_FOUND,
                        format!("agent {} cannot close sessions", link.agent),
                    );
                    return self.reply_error(Some(&id), &error);
                }
                let route = (
                    session.id.clone(),
                    link.backend_literal.clone(),
                    link.backend_sid.clone(),
                );
                self.forward_to_backend(slot, frame, Some((route.0.clone(), route.1)));
                if let Some(backend) = self.backends.get_mut(&slot) {
                    backend.routes.remove(&route.2);
                }
                self.sessions.remove(&route.0);
                self.server.session_unbound(self.id, &route.0);
            }
            // Nothing runs behind a session that was never bound: closing it is local.
            SessionState::Unbound => {
                let sid = session.id.clone();
                self.sessions.remove(&sid);
                self.reply_result(&id, &json!({}));
            }
            SessionState::Binding { queue, .. } => {
                let _ = queue;
                if let Some(SessionState::Binding { queue, .. }) =
                    self.sessions.get_mut(sid.as_str()).map(|s| &mut s.state)
                {
                    queue.push(frame);
                }
            }
        }
    }

    /// `session/delete`: the owning agent deletes its session and the id is forgotten.
    pub(super) fn on_delete(&mut self, frame: Frame) {
        let Some(id) = frame.id_raw() else { return };
        let Some(sid) = frame.session_id().map(|s| s.into_owned()) else {
            return self.reply_error(
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "missing sessionId"),
            );
        };
        let Some(record) = self.server.sessions.get(&sid) else {
            if let Some(session) = self.sessions.get(sid.as_str()) {
                if matches!(session.state, SessionState::Unbound) {
                    self.sessions.remove(sid.as_str());
                    return self.reply_result(&id, &json!({}));
                }
            }
            return self.reply_error(Some(&id), &unknown_session(&sid));
        };
        let Some(catalog) = self.catalog_or_error(&id) else {
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
            return self.reply_error(Some(&id), &error);
        }
        self.sessions.remove(sid.as_str());
        let slot = self.ensure_backend(&record.agent);
        if let Some(backend) = self.backends.get_mut(&slot) {
            let params = json!({"sessionId": record.backend_sid});
            backend.request_when_ready(
                "session/delete",
                params,
                Pending::Deleted {
                    client_id: id,
                    session: sid,
                },
            );
        }
    }

    /// `session/list` across every agent that supports it.
    pub(super) fn on_list(&mut self, frame: Frame) {
        let (Ok(value), Some(id)) = (frame.to_value(), frame.id_raw()) else {
            return;
        };
        let Some(catalog) = self.catalog_or_error(&id) else {
            return;
        };
        let params = value.get("params").cloned().unwrap_or(Value::Null);
        let cursors = match params.get("cursor").and_then(Value::as_str) {
            Some(cursor) => match decode_cursor(cursor) {
                Some(cursors) => Some(cursors),
                None => {
                    return self
                        .reply_error(Some(&id), &RpcError::new(INVALID_PARAMS, "invalid cursor"))
                }
            },
            None => None,
        };
        let agents: Vec<AgentName> = catalog
            .agents()
            .iter()
            .filter(|p| supports(p, "sessionCapabilities/list"))
            .filter(|p| {
                cursors
                    .as_ref()
                    .is_none_or(|c| c.contains_key(p.agent.as_str()))
            })
            .map(|p| p.agent.clone())
            .collect();
        if agents.is_empty() {
            return self.reply_result(&id, &json!({"sessions": []}));
        }
        let list = self.next_list;
        self.next_list += 1;
        self.lists.insert(
            list,
            ListAggregate {
                client_id: id,
                remaining: agents.len(),
                sessions: Vec::new(),
                cursors: BTreeMap::new(),
            },
        );
        for agent in agents {
            let mut part = json!({});
            if let Some(cwd) = params.get("cwd") {
                part["cwd"] = cwd.clone();
            }
            if let Some(cursor) = cursors.as_ref().and_then(|c| c.get(agent.as_str())) {
                part["cursor"] = json!(cursor);
            }
            let slot = self.ensure_backend(&agent);
            if let Some(backend) = self.backends.get_mut(&slot) {
                backend.request_when_ready("session/list", part, Pending::ListPart { list });
            }
        }
    }

    /// One agent's answer to an aggregated list (`None`: it failed and is left out).
    pub(super) fn list_part(&mut self, list: u64, result: Option<Value>, agent: &AgentName) {
        let Some(aggregate) = self.lists.get_mut(&list) else {
            return;
        };
        aggregate.remaining -= 1;
        if let Some(result) = result {
            for mut info in result
                .get("sessions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let Some(backend_sid) = info
                    .get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                let proxy = self
                    .server
                    .sessions
                    .find(agent, &backend_sid)
                    .unwrap_or_else(|| {
                        // An agent session never seen before: it gets a proxy id it can be reopened by.
                        let proxy = format!("terok-{}", uuid::Uuid::new_v4().simple());
                        let model = self
                            .catalog
                            .as_ref()
                            .and_then(|c| c.agent(agent.as_str()))
                            .and_then(|p| p.menu.models.first())
                            .map(|m| crate::acp::picker::namespaced(agent, &m.id))
                            .unwrap_or_default();
                        let cwd = info.get("cwd").and_then(Value::as_str).map(str::to_owned);
                        self.server.sessions.put(
                            &proxy,
                            SessionRecord {
                                agent: agent.clone(),
                                backend_sid: backend_sid.clone(),
                                model,
                                cwd,
                            },
                        );
                        proxy
                    });
                info["sessionId"] = json!(proxy);
                if let Some(meta) = info.as_object_mut() {
                    meta.entry("_meta")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .map(|m| m.insert("terok.agent".into(), json!(agent.as_str())));
                }
                aggregate.sessions.push(info);
            }
            if let Some(next) = result.get("nextCursor").and_then(Value::as_str) {
                aggregate.cursors.insert(agent.to_string(), next.to_owned());
            }
        }
        if aggregate.remaining > 0 {
            return;
        }
        let Some(aggregate) = self.lists.remove(&list) else {
            return;
        };
        let mut answer = json!({"sessions": aggregate.sessions});
        if !aggregate.cursors.is_empty() {
            answer["nextCursor"] = json!(encode_cursor(&aggregate.cursors));
        }
        self.reply_result(&aggregate.client_id, &answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let mut cursors = BTreeMap::new();
        cursors.insert("claude".to_owned(), "page-2".to_owned());
        cursors.insert("codex".to_owned(), r#"x"y"#.to_owned());
        assert_eq!(decode_cursor(&encode_cursor(&cursors)), Some(cursors));
        for bad in ["zz", "abc", "7b", ""] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }
}
