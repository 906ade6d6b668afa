//! Idle agent processes: a process that serves no session (none held by a client, no turn
//! running, nothing in flight) ends after `TEROK_ACP_AGENT_IDLE_SECS`. Detached sessions on it
//! stay, unbound, and bind again on their next request: reopening their agent session where
//! the agent can (`session/resume`, else `session/load`), else handed the conversation.

use std::time::Duration;

use super::backend::Pending;
use super::session::SessionState;
use super::{Event, Hub};

impl Hub {
    /// Whether anything still needs this backend: a session a client holds, a running turn,
    /// a bind, a request in flight, a question waiting for a client.
    fn in_use(&self, slot: u32) -> bool {
        let Some(backend) = self.backends.get(&slot) else {
            return false;
        };
        if !backend.waiting.is_empty()
            || !backend.waiting_requests.is_empty()
            || backend
                .pending
                .values()
                .any(|p| !matches!(p, Pending::Ignore | Pending::Spare { .. }))
            || self.agent_requests.values().any(|r| r.slot == slot)
        {
            return true;
        }
        self.sessions.values().any(|s| {
            let on_it = match &s.state {
                SessionState::Binding { slot: b, .. } => *b == slot,
                SessionState::Bound(link) => link.slot == slot,
                SessionState::Unbound => false,
            };
            on_it && (s.holder.is_some() || s.turns > 0 || s.is_binding())
        })
    }

    /// Starts the idle timer of every backend nothing needs any more (and stops the timer of
    /// those in use again).
    pub(super) fn check_idle(&mut self) {
        let slots: Vec<u32> = self.backends.keys().copied().collect();
        for slot in slots {
            self.maybe_idle(slot);
        }
    }

    /// Starts or stops one backend's idle timer.
    pub(super) fn maybe_idle(&mut self, slot: u32) {
        let in_use = self.in_use(slot);
        let epoch = self.epoch();
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        match (in_use, backend.idle_epoch) {
            (true, _) => backend.idle_epoch = None,
            (false, Some(_)) => {}
            (false, None) => {
                backend.idle_epoch = Some(epoch);
                self.after(
                    self.server.config.agent_idle,
                    Event::IdleExpired { slot, epoch },
                );
            }
        }
    }

    /// The idle time ran out: the process ends. Detached sessions on it stay in memory and
    /// bind again (reopening their agent session where the agent can) on their next request.
    pub(super) fn on_idle_expired(&mut self, slot: u32, epoch: u64) {
        if self.backends.get(&slot).and_then(|b| b.idle_epoch) != Some(epoch) || self.in_use(slot) {
            return;
        }
        let Some(mut backend) = self.backends.remove(&slot) else {
            return;
        };
        tracing::info!(agent = %backend.agent, slot, "agent idle; ending it");
        self.slots.retain(|_, s| *s != slot);
        if let Some(spare) = backend.spare.take() {
            spare.close(&mut backend);
        }
        let (can_resume, can_load) = (
            backend.supports("sessionCapabilities/resume"),
            backend.supports("loadSession"),
        );
        for session in self.sessions.values_mut() {
            let Some(link) = session.link().filter(|l| l.slot == slot).cloned() else {
                continue;
            };
            session.state = SessionState::Unbound;
            session.reattach = if can_resume {
                Some(("session/resume", link.backend_sid))
            } else if can_load {
                Some(("session/load", link.backend_sid))
            } else {
                None
            };
            if session.reattach.is_none() && self.server.config.switch_context {
                // Built now, while the record is whole; a record parked on disk goes back there
                // (reading it changed nothing).
                let parked = session.transcript.is_parked();
                session.handover = Some(super::handover::context(&mut session.transcript, None));
                if let Some(loader) = parked
                    .then(|| self.server.sessions.transcript_loader(&session.id))
                    .flatten()
                {
                    if let Some(saved) = session.transcript.park(loader) {
                        self.server.sessions.save_transcript(&session.id, saved);
                    }
                }
            }
        }
        backend.terminate_after(Duration::from_millis(200), &self.server.tracker);
    }
}
