//! Spare agent sessions: binds that start no process and wait for no handshake.
//!
//! Each agent process keeps one session opened ahead of time with the parameters editors send:
//! the container's workspace as `cwd` (on the local runtime, the `cwd` of the latest
//! `session/new`) and no MCP servers. A bind whose translated `session/new` params are the same
//! takes it: no spawn, no `initialize`, no `session/new` on its critical path, only the model
//! pick; a new spare is then opened in the background. Frames the agent sends for a spare
//! before it is taken (its command list, say) are kept and delivered with it. Spares never
//! show in `session/list`, and are closed (and deleted, where the agent can) on shutdown.
//! An agent that fails to open one simply binds as before.
//!
//! The process that answered an agent's probe is handed to the hub and stays up as the agent's
//! process (the probe's session becomes its first spare, when it was opened with the spare's
//! params); an agent the catalog lists that has no process yet gets one started once, so the
//! first bind after start-up finds it warm.

use std::sync::Arc;

use serde_json::{json, Value};

use super::backend::{BackendState, Pending, Spare};
use super::Hub;
use crate::acp::frame::Frame;
use crate::acp::lines::LineReader;
use crate::acp::probe::{AgentProbe, WarmAgent};

impl Hub {
    /// Takes a probed process as the agent's own, unless the agent has one already.
    pub(super) fn on_adopt(&mut self, warm: WarmAgent) {
        let (params, profile) = self.replayed_initialize(None);
        let key = (warm.agent.clone(), profile);
        let WarmAgent {
            agent,
            stdin,
            stdout,
            stderr,
            control,
            init_params,
            init_result,
            session_id,
            session_params,
            session_result,
            early,
        } = warm;
        let spare = Spare {
            backend_sid: session_id,
            params: session_params,
            result: session_result,
            early,
        };
        let slot = self.next_slot;
        self.next_slot += 1;
        let mut backend = self.new_backend(&agent, init_params.clone());
        backend.state = BackendState::Ready;
        backend.init_result = init_result;
        // Ids the probe used are not reused, so a late answer cannot be mistaken.
        backend.skip_ids(16);
        self.backends.insert(slot, backend);
        let (stdout, buffered) = stdout.into_parts();
        let stdout = LineReader::resume(stdout, self.server.config.max_frame, buffered);
        if !self.connect_process(slot, stdin, stdout, stderr, control) {
            return;
        }
        let taken = self.slots.contains_key(&key) || init_params != params;
        let current = self.spare_params();
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        if taken {
            // The agent has a process already (or this one was initialized differently).
            spare.close(backend);
            backend.terminate_after(std::time::Duration::from_millis(200), &self.server.tracker);
            self.backends.remove(&slot);
            return;
        }
        tracing::info!(agent = %agent, slot, "the probed process stays up as the agent's process");
        if current.as_ref() == Some(&spare.params) {
            backend.spare = Some(spare);
        } else {
            spare.close(backend);
        }
        self.slots.insert(key, slot);
        self.warmed.insert(agent);
        self.maybe_idle(slot);
        self.keep_spares();
    }

    /// The params spares are opened with, once known.
    fn spare_params(&self) -> Option<Value> {
        let cwd = match self.server.runtime.container_workspace() {
            Some(workspace) => workspace,
            None => self.latest_cwd.clone()?,
        };
        Some(json!({"cwd": cwd, "mcpServers": []}))
    }

    /// Starts each listed agent's process once, and keeps a current spare on every ready one.
    pub(super) fn keep_spares(&mut self) {
        if !self.server.config.spares {
            return;
        }
        let agents: Vec<_> = self
            .catalog
            .as_ref()
            .map(|c| c.agents().iter().map(|p| p.agent.clone()).collect())
            .unwrap_or_default();
        for agent in agents {
            if self.warmed.insert(agent.clone()) {
                tracing::info!(agent = %agent, "starting the agent ahead of its first bind");
                let slot = self.ensure_backend(&agent, None);
                self.maybe_idle(slot);
            }
        }
        let Some(params) = self.spare_params() else {
            return;
        };
        for backend in self.backends.values_mut() {
            if !backend.is_ready() || backend.spare_failed {
                continue;
            }
            if backend.spare.as_ref().is_some_and(|s| s.params != params) {
                if let Some(stale) = backend.spare.take() {
                    stale.close(backend);
                }
            }
            // A bind's own session/new goes first: two at once slow a real agent down.
            let opening = backend
                .pending
                .values()
                .any(|p| matches!(p, Pending::Spare { .. } | Pending::NewSession { .. }));
            if backend.spare.is_none() && !opening {
                backend.request(
                    "session/new",
                    &params,
                    Pending::Spare {
                        params: params.clone(),
                        learn: false,
                    },
                );
            }
        }
    }

    /// After a login, the process that accepted it opens a session (a spare, when its params
    /// fit): its answer tells the cache, and so every picker, the agent's models. A fresh
    /// process would not know a login the agent keeps only in memory.
    pub(super) fn learn_from(&mut self, slot: u32) {
        let params = self
            .spare_params()
            .unwrap_or_else(|| json!({"cwd": self.server.runtime.workspace(), "mcpServers": []}));
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        backend.spare_failed = false;
        if let Some(stale) = backend.spare.take() {
            // Opened before the login: its models may be the logged-out ones.
            stale.close(backend);
        }
        let pending = Pending::Spare {
            params: params.clone(),
            learn: true,
        };
        backend.request("session/new", &params, pending);
    }

    /// The agent answered a spare's `session/new`.
    pub(super) fn on_spare_opened(&mut self, slot: u32, params: Value, learn: bool, frame: Frame) {
        let current = self.spare_params();
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        let value = frame.to_value().unwrap_or(Value::Null);
        let result = value.get("result").cloned();
        if learn {
            match &result {
                Some(session) => {
                    let probe = AgentProbe::from_answers(
                        backend.agent.clone(),
                        backend.init_result.clone(),
                        session,
                    );
                    tracing::info!(agent = %backend.agent, models = probe.menu.models.len(), "the logged-in process answered; the pickers follow");
                    self.server.learn_probe(probe);
                }
                None => tracing::warn!(
                    agent = %backend.agent,
                    "after the login, session/new failed: {}",
                    value.get("error").cloned().unwrap_or(serde_json::Value::Null)
                ),
            }
        }
        let Some(sid) = result
            .as_ref()
            .and_then(|r| r.get("sessionId"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            tracing::info!(agent = %backend.agent, "no spare session: the agent did not open one");
            backend.spare_failed = true;
            return self.release_spare_waiters(slot);
        };
        let spare = Spare {
            backend_sid: sid,
            params,
            result: result.unwrap_or(Value::Null),
            early: Vec::new(),
        };
        if backend.spare.is_some() || current.as_ref() != Some(&spare.params) {
            spare.close(backend);
            self.keep_spares();
            return self.release_spare_waiters(slot);
        }
        tracing::debug!(agent = %backend.agent, "spare session ready");
        backend.spare = Some(spare);
        // A bind that waited for this spare takes it now; the others wait for the next.
        self.release_spare_waiters(slot);
    }

    /// Parks a bind whose params match the spare the agent is opening right now, rather than
    /// sending a second `session/new` beside it. Returns whether it waits.
    pub(super) fn wait_for_spare(&mut self, slot: u32, sid: &Arc<str>, params: &Value) -> bool {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return false;
        };
        let opening = backend
            .pending
            .values()
            .any(|p| matches!(p, Pending::Spare { params: p, .. } if p == params));
        if opening {
            tracing::info!(session = %sid, "waiting for the spare session being opened");
            backend.spare_waiters.push(sid.clone());
        }
        opening
    }

    /// Binds that waited for a spare go on: each opens its session again (taking a ready
    /// spare, waiting for the next one, or sending its own `session/new`).
    fn release_spare_waiters(&mut self, slot: u32) {
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        for sid in std::mem::take(&mut backend.spare_waiters) {
            let still_binding = self.sessions.get(&sid).is_some_and(|s| {
                matches!(&s.state, super::session::SessionState::Binding { slot: b, link: None, .. } if *b == slot)
            });
            if still_binding {
                self.open_backend_session(slot, &sid);
            }
        }
    }

    /// Takes the spare of `slot` when it was opened with `params`: its `session/new` result
    /// (and the frames it got early, delivered once the session is routed).
    pub(super) fn take_spare(&mut self, slot: u32, params: &Value) -> Option<(Value, Vec<Frame>)> {
        let backend = self.backends.get_mut(&slot)?;
        if backend.spare.as_ref().is_none_or(|s| s.params != *params) {
            return None;
        }
        let spare = backend.spare.take()?;
        Some((spare.result, spare.early))
    }

    /// Closes every spare (at shutdown).
    pub(super) fn close_spares(&mut self) {
        for backend in self.backends.values_mut() {
            if let Some(spare) = backend.spare.take() {
                spare.close(backend);
            }
        }
    }
}
