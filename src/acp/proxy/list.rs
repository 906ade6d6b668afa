//! `session/list` across the daemon and its agents.
//!
//! Sessions the daemon holds come first, with their state (`running`, `idle`, `detached`),
//! agent and title in `_meta`. Then every agent that supports listing is asked; its sessions
//! get proxy ids (a session never seen before gets a new one, so it can be reopened), spare
//! sessions are left out, and one cursor carries each agent's own.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::Pending;
use super::routing::supports;
use super::{ConnId, Hub};
use crate::acp::frame::Frame;
use crate::acp::message::{RpcError, INVALID_PARAMS};
use crate::acp::runtime::AgentName;
use crate::acp::sessions::SessionRecord;

/// An aggregated `session/list` waiting for its agents' answers.
pub(super) struct ListAggregate {
    pub conn: ConnId,
    client_id: Bytes,
    remaining: usize,
    sessions: Vec<Value>,
    cursors: BTreeMap<String, String>,
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

impl Hub {
    /// The sessions the daemon holds that were ever bound (in `cwd`, when given), newest
    /// activity first.
    fn held_sessions(&mut self, cwd: Option<&str>) -> Vec<Value> {
        let mut held = Vec::new();
        for session in self.sessions.values_mut() {
            let Some(record) = self.server.sessions.get(&session.id) else {
                continue;
            };
            let session_cwd = session.new_params.get("cwd").and_then(Value::as_str);
            if cwd.is_some_and(|c| Some(c) != session_cwd) {
                continue;
            }
            let title = session.transcript.title();
            let mut meta = json!({
                "terok.agent": record.agent.as_str(),
                "terok.state": session.status(),
                "terok.turn": if session.turn_running() { "running" } else { "idle" },
            });
            let mut info = json!({"sessionId": &*session.id, "cwd": session_cwd});
            if let Some(title) = title {
                meta["terok.title"] = json!(title);
                info["title"] = json!(title);
            }
            info["_meta"] = meta;
            held.push(info);
        }
        held.sort_by(|a, b| a["sessionId"].as_str().cmp(&b["sessionId"].as_str()));
        held
    }

    /// `session/list` across every agent that supports it.
    pub(super) fn on_list(&mut self, conn: ConnId, frame: Frame) {
        let (Ok(value), Some(id)) = (frame.to_value(), frame.id_raw()) else {
            return;
        };
        let Some(catalog) = self.catalog_or_error(conn, &id) else {
            return;
        };
        let params = value.get("params").cloned().unwrap_or(Value::Null);
        let cursors = match params.get("cursor").and_then(Value::as_str) {
            Some(cursor) => match decode_cursor(cursor) {
                Some(cursors) => Some(cursors),
                None => {
                    return self.reply_error(
                        conn,
                        Some(&id),
                        &RpcError::new(INVALID_PARAMS, "invalid cursor"),
                    )
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
        // Sessions the daemon holds come first, on the first page.
        let cwd = params.get("cwd").and_then(Value::as_str);
        let held = if cursors.is_none() {
            self.held_sessions(cwd)
        } else {
            Vec::new()
        };
        if agents.is_empty() {
            return self.reply_result(conn, &id, &json!({"sessions": held}));
        }
        let list = self.next_list;
        self.next_list += 1;
        self.lists.insert(
            list,
            ListAggregate {
                conn,
                client_id: id,
                remaining: agents.len(),
                sessions: held,
                cursors: BTreeMap::new(),
            },
        );
        for agent in agents {
            let mut part = json!({});
            if let Some(cursor) = cursors.as_ref().and_then(|c| c.get(agent.as_str())) {
                part["cursor"] = json!(cursor);
            }
            // The cursor is the proxy's (one per agent); everything else the client sent goes on.
            crate::acp::message::carry_fields(&params, &["cursor"], &mut part);
            let slot = self.ensure_backend(&agent, Some(conn));
            if let Some(backend) = self.backends.get_mut(&slot) {
                backend.idle_epoch = None;
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
        // Spare sessions are the daemon's own, and sessions it holds are listed already.
        let spares: Vec<String> = self
            .backends
            .values()
            .filter(|b| b.agent == *agent)
            .filter_map(|b| b.spare.as_ref().map(|s| s.backend_sid.clone()))
            .collect();
        let listed: std::collections::HashSet<String> = aggregate
            .sessions
            .iter()
            .filter_map(|s| {
                s.get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .chain(self.sessions.keys().map(|k| k.to_string()))
            .collect();
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
                if spares.contains(&backend_sid) {
                    continue;
                }
                let proxy = self
                    .server
                    .sessions
                    .find(agent, &backend_sid)
                    .unwrap_or_else(|| {
                        // An agent session never seen before: it gets a proxy id it can be reopened by.
                        let proxy = format!("terok-{}", uuid::Uuid::new_v4().simple());
                        let model = self
                            .conns
                            .get(&aggregate.conn)
                            .and_then(|c| c.catalog.as_ref())
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
                if listed.contains(&proxy) {
                    continue;
                }
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
        self.reply_result(aggregate.conn, &aggregate.client_id, &answer);
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
