//! Logins that end elsewhere: a login made through the host's vault (reported by `acp connect
//! ... vault-login`), and `logout`, which goes to the agent the client logged in to.

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::Pending;
use super::{ConnId, Event, Hub};
use crate::acp::frame::Frame;
use crate::acp::message::{RpcError, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST};
use crate::acp::method::Method;
use crate::acp::runtime::AgentName;

impl Hub {
    /// `_terok/vault_login {agent}`: the host-side login of `agent` succeeded. Wrappers started
    /// from now on get the new tokens and the agent is probed again, off the hub.
    pub(super) fn on_vault_login(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        let agent = params
            .get("agent")
            .and_then(Value::as_str)
            .map(AgentName::new);
        let agent = match agent {
            Some(Ok(agent)) => agent,
            Some(Err(e)) => {
                return self.reply_error(
                    conn,
                    Some(&id),
                    &RpcError::new(INVALID_PARAMS, e.to_string()),
                )
            }
            None => {
                let error = RpcError::new(INVALID_PARAMS, "a vault login names its agent");
                return self.reply_error(conn, Some(&id), &error);
            }
        };
        let (server, events) = (self.server.clone(), self.events.clone());
        self.server.tracker.spawn(async move {
            tokio::select! {
                outcome = server.vault_login(&agent) => {
                    let done = Event::VaultLoginDone { conn, client_id: id, agent, outcome };
                    let _ = events.send(done).await;
                }
                _ = server.shutdown.cancelled() => {}
            }
        });
    }

    /// Answers the login's reporter, and ends the agent's idle processes: they were started
    /// without the new tokens.
    pub(super) fn on_vault_login_done(
        &mut self,
        conn: ConnId,
        client_id: &Bytes,
        agent: &AgentName,
        outcome: Result<bool, String>,
    ) {
        match outcome {
            Ok(ready) => {
                let idle: Vec<(u32, u64)> = self
                    .backends
                    .iter()
                    .filter(|(_, b)| b.agent == *agent)
                    .filter_map(|(slot, b)| b.idle_epoch.map(|epoch| (*slot, epoch)))
                    .collect();
                for (slot, epoch) in idle {
                    self.on_idle_expired(slot, epoch);
                }
                let result = json!({"agent": agent.as_str(), "ready": ready});
                self.reply_result(conn, client_id, &result);
            }
            Err(message) => {
                self.reply_error(
                    conn,
                    Some(client_id),
                    &RpcError::new(INTERNAL_ERROR, message),
                );
            }
        }
    }

    /// `logout` goes to the agent this client logged in to, whose answer the client gets; the
    /// agent is probed again on the next request.
    pub(super) fn on_logout(&mut self, conn: ConnId, frame: Frame) {
        let Some(params) = self.params_of(conn, &frame) else {
            return;
        };
        let Some(id) = frame.id_raw() else { return };
        let Some(agent) = self.conns.get(&conn).and_then(|c| c.login.clone()) else {
            let error = RpcError::new(
                INVALID_REQUEST,
                "no login to end: this connection has not logged in to an agent",
            );
            return self.reply_error(conn, Some(&id), &error);
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.login = None;
        }
        let server = self.server.clone();
        let forget = agent.clone();
        self.server.tracker.spawn(async move {
            if let Ok(identity) = server.runtime.identity().await {
                server.cache.invalidate(&crate::acp::cache::CacheKey {
                    identity,
                    agent: forget,
                });
            }
        });
        let slot = self.ensure_backend(&agent, Some(conn));
        let Some(backend) = self.backends.get_mut(&slot) else {
            return;
        };
        backend.idle_epoch = None;
        let params = if params.is_null() { json!({}) } else { params };
        backend.request_when_ready(
            "logout",
            params,
            Pending::Client {
                conn,
                client_id: id,
                method: Method::Logout,
                session: None,
            },
        );
    }
}
