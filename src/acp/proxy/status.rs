//! The hub's answer to [`STATUS_METHOD`]: a snapshot of everything it owns.
//!
//! Only a peer of the daemon's own user gets it (users allowed to reach the agents are not
//! thereby allowed to see every session); it is never forwarded to an agent. The usage figures
//! come from the agents' `usage_update` notifications (context and cumulative cost) and from
//! the `usage` of their prompt answers (tokens per turn, summed).

use serde_json::Value;

use super::session::SessionState;
use super::{ConnId, Hub};
use crate::acp::frame::Frame;
use crate::acp::message::{RpcError, INVALID_REQUEST};
use crate::acp::runtime::AgentPid;
use crate::acp::status::{self, Cost, Status, Usage, STATUS_METHOD};

impl Hub {
    pub(super) fn on_status(&mut self, conn: ConnId, frame: Frame) {
        let Some(id) = frame.id_raw() else { return };
        let own = nix::unistd::geteuid().as_raw();
        let peer = self.conns.get(&conn).map(|c| c.peer.uid);
        if peer != Some(own) {
            tracing::warn!(uid = ?peer, "refused {STATUS_METHOD} to another user");
            let error = RpcError::new(
                INVALID_REQUEST,
                format!("{STATUS_METHOD} is answered only to the daemon's own user (uid {own})"),
            );
            return self.reply_error(conn, Some(&id), &error);
        }
        let report = self.status(conn);
        match serde_json::to_value(&report) {
            Ok(value) => self.reply_result(conn, &id, &value),
            Err(e) => tracing::error!("cannot encode the status: {e}"),
        }
    }

    /// The report, without the connection that asks for it.
    fn status(&self, asking: ConnId) -> Status {
        let now = std::time::Instant::now();
        let secs = |t: std::time::Instant| now.saturating_duration_since(t).as_secs_f64();
        let mut counters = self.counters.clone();
        counters.agent_errors = self
            .server
            .agent_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        counters.trace_dropped = self.server.trace.dropped();

        let mut sessions: Vec<status::Session> = self
            .sessions
            .values()
            .map(|s| {
                let (state, agent) = match &s.state {
                    SessionState::Unbound => (status::SessionState::Unbound, None),
                    SessionState::Binding { agent, .. } => {
                        (status::SessionState::Binding, Some(agent.to_string()))
                    }
                    SessionState::Bound(link) => (
                        if s.turn_running() {
                            status::SessionState::Running
                        } else {
                            status::SessionState::Bound
                        },
                        Some(link.agent.to_string()),
                    ),
                };
                let state = if s.holder.is_none() {
                    status::SessionState::Detached
                } else {
                    state
                };
                status::Session {
                    id: s.id.to_string(),
                    agent,
                    model: s.model.clone(),
                    state,
                    turn_running: s.turn_running(),
                    holder: s.holder,
                    age_secs: secs(s.created),
                    idle_secs: secs(s.last_activity),
                    updates: s.updates,
                    transcript_bytes: s.transcript.bytes() as u64,
                    transcript_on_disk: s.transcript.is_parked()
                        && !self.server.sessions.transcript_unsaved(&s.id),
                    usage: s.usage.clone(),
                }
            })
            .collect();
        sessions.sort_by(|a, b| b.age_secs.total_cmp(&a.age_secs));

        let mut connections: Vec<status::Connection> = self
            .conns
            .iter()
            .filter(|(id, _)| **id != asking)
            .map(|(id, c)| {
                let client = c
                    .client_init
                    .as_ref()
                    .and_then(|init| init.get("clientInfo"))
                    .map(|info| {
                        let name = info.get("name").and_then(Value::as_str).unwrap_or("?");
                        match info.get("version").and_then(Value::as_str) {
                            Some(version) => format!("{name} {version}"),
                            None => name.to_owned(),
                        }
                    });
                status::Connection {
                    id: *id,
                    pid: c.peer.pid,
                    uid: c.peer.uid,
                    age_secs: secs(c.since),
                    client,
                    sessions: sessions
                        .iter()
                        .filter(|s| s.holder == Some(*id))
                        .map(|s| s.id.clone())
                        .collect(),
                }
            })
            .collect();
        connections.sort_by_key(|c| c.id);

        let mut agents: Vec<(u32, status::AgentProcess)> = self
            .backends
            .iter()
            .map(|(slot, b)| {
                let (pid, rss_bytes) = match b.pid() {
                    Some(AgentPid::Host(pid)) => (Some(pid), rss_of(&pid.to_string())),
                    // A pid inside the container is the container's to resolve.
                    Some(AgentPid::Container(_)) | None => (None, None),
                };
                let served = self
                    .sessions
                    .values()
                    .filter(|s| s.link().is_some_and(|l| l.slot == *slot))
                    .map(|s| s.id.to_string())
                    .collect();
                let process = status::AgentProcess {
                    agent: b.agent.to_string(),
                    pid,
                    uptime_secs: b.started.map_or(0.0, secs),
                    rss_bytes,
                    ready: b.is_ready(),
                    sessions: served,
                };
                (*slot, process)
            })
            .collect();
        agents.sort_by_key(|(slot, _)| *slot);

        Status {
            daemon: status::Daemon {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                runtime: self.server.runtime.describe(),
                uptime_secs: secs(self.server.started),
                rss_bytes: rss_of("self"),
            },
            connections,
            usage: status::usage_per_agent(&sessions),
            sessions,
            agents: agents.into_iter().map(|(_, a)| a).collect(),
            probes: self.server.cache.snapshot(),
            counters,
        }
    }
}

/// `VmRSS` of `/proc/<pid>`, in bytes.
fn rss_of(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Takes in a `usage_update`: the context now and the session's cumulative cost.
pub(super) fn record_usage_update(usage: &mut Usage, frame: &Frame) {
    let Ok(value) = frame.to_value() else { return };
    let Some(update) = value.pointer("/params/update") else {
        return;
    };
    if update.get("sessionUpdate").and_then(Value::as_str) != Some("usage_update") {
        return;
    }
    if let Some(used) = update.get("used").and_then(Value::as_u64) {
        usage.context_used = Some(used);
    }
    if let Some(size) = update.get("size").and_then(Value::as_u64) {
        usage.context_size = Some(size);
    }
    if let Some(cost) = update.get("cost") {
        if let (Some(amount), Some(currency)) = (
            cost.get("amount").and_then(Value::as_f64),
            cost.get("currency").and_then(Value::as_str),
        ) {
            usage.cost = Some(Cost {
                amount,
                currency: currency.to_owned(),
            });
        }
    }
}

/// Adds a turn's token counts (a `session/prompt` answer's `usage`).
pub(super) fn record_turn_usage(usage: &mut Usage, turn: &Value) {
    let count = |key: &str| turn.get(key).and_then(Value::as_u64).unwrap_or(0);
    usage.input_tokens += count("inputTokens");
    usage.output_tokens += count("outputTokens");
    usage.total_tokens += count("totalTokens");
}
