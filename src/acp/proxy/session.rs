//! A client session and its lifecycle.
//!
//! A session starts [`SessionState::Unbound`]: the proxy minted its id and showed the picker,
//! and no agent knows about it yet. Picking a model (or the first request that needs an agent)
//! moves it to [`SessionState::Binding`], during which the client's frames for it are queued in
//! order; when the agent has opened its own session and selected the model it becomes
//! [`SessionState::Bound`] and frames flow straight through. A failed bind, or a backend that
//! dies, returns it to `Unbound`, from which it can bind again.
//!
//! Sessions belong to the daemon. `holder` names the connection that currently views one;
//! `None` means detached: its turn may still run, and its transcript records what the client
//! would have seen.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::ConnId;
use crate::acp::frame::{json_string_literal, Frame};
use crate::acp::models::ModelSelector;
use crate::acp::picker::Catalog;
use crate::acp::runtime::AgentName;

/// How the request that started a model selection is answered when it completes.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `session/set_config_option`: the complete option list.
    ConfigOptions(ConnId, Bytes),
    /// Legacy `session/set_model`: an empty object.
    Empty(ConnId, Bytes),
    /// `session/load` or `session/resume`: the complete option list and the legacy block.
    Reattached(ConnId, Bytes),
    /// A lazy bind: nobody asked, so the client is told through `config_option_update`.
    Notify,
}

impl Reply {
    /// The connection and request id that asked, if one did.
    pub fn asker(&self) -> Option<(ConnId, &Bytes)> {
        match self {
            Reply::ConfigOptions(conn, id)
            | Reply::Empty(conn, id)
            | Reply::Reattached(conn, id) => Some((*conn, id)),
            Reply::Notify => None,
        }
    }
}

/// What the proxy knows about a session's agent once the agent opened it.
#[derive(Debug, Clone)]
pub struct Link {
    pub slot: u32,
    pub agent: AgentName,
    pub backend_sid: String,
    /// `backend_sid` as a JSON string literal, ready to splice.
    pub backend_literal: Bytes,
    pub selector: ModelSelector,
    /// Whether the agent also answered with the legacy `models` block.
    pub has_legacy: bool,
    /// The agent's own config options (mode, thought level, ...) without its model selector.
    pub options: Vec<Value>,
    /// The agent's legacy `modes` block, kept current, if it sent one.
    pub modes: Option<Value>,
    /// Whether the modes are offered as a config option made by the proxy (the agent has no
    /// mode option of its own): picking in it becomes `session/set_mode`.
    pub modes_as_option: bool,
}

impl Link {
    /// The mode select the proxy adds for an agent that offers modes only as a legacy block.
    pub fn mode_option(&self) -> Option<Value> {
        self.modes
            .as_ref()
            .filter(|_| self.modes_as_option)
            .map(crate::acp::modes::mode_option)
    }
}

// A connection holds a handful of sessions; boxing the binding state would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SessionState {
    Unbound,
    Binding {
        slot: u32,
        agent: AgentName,
        model: String,
        reply: Reply,
        /// Client frames for this session that arrived during the bind, in order, with the
        /// connection each came from.
        queue: Vec<(ConnId, Frame)>,
        /// Set once the agent has opened its session.
        link: Option<Link>,
        /// Tells a stale timeout from the current one.
        attempt: u64,
        /// The agent session being switched away from, restored if the switch fails.
        previous: Option<Link>,
    },
    Bound(Link),
}

pub struct Session {
    pub id: Arc<str>,
    /// `id` as a JSON string literal, ready to splice.
    pub literal: Bytes,
    /// The client's `session/new` params, replayed to the agent on bind.
    pub new_params: Value,
    /// The picker this session was shown.
    pub catalog: Arc<Catalog>,
    /// The current pick, `agent:model`.
    pub model: String,
    pub state: SessionState,
    /// Host ↔ container paths, when the agents live in a container.
    pub paths: Option<Arc<crate::acp::paths::PathMap>>,
    /// For a session reopened by id: the method (`session/load` or `session/resume`) and the
    /// agent's session id to reopen, instead of opening a new agent session.
    pub reattach: Option<(&'static str, String)>,
    /// The connection that views the session; `None` while detached.
    pub holder: Option<ConnId>,
    /// Since when, and under which timer epoch, the session is detached.
    pub detached: Option<(std::time::Instant, u64)>,
    /// Prompts in flight (a turn is running while this is above zero).
    pub turns: u32,
    /// What the client saw, for replaying to a client that reattaches.
    pub transcript: crate::acp::transcript::Transcript,
    /// The agent is replaying a history the proxy already replayed from its transcript: its
    /// updates are dropped until the reopen is answered.
    pub suppress_replay: bool,
    /// The conversation so far, handed to the next agent with the first prompt after a switch.
    pub handover: Option<String>,
    /// The params of the model pick in progress: the fields the proxy does not rewrite go to
    /// the agent with its own model request.
    pub pick_params: Option<Value>,
    pub created: std::time::Instant,
    /// The latest frame of this session, either way.
    pub last_activity: std::time::Instant,
    /// `session/update` notifications from its agents.
    pub updates: u64,
    /// What it has cost so far, as its agents reported it.
    pub usage: crate::acp::status::Usage,
}

impl Session {
    pub fn new(
        new_params: Value,
        catalog: Arc<Catalog>,
        model: String,
        transcript_bytes: usize,
    ) -> Session {
        let id = format!("terok-{}", uuid::Uuid::new_v4().simple());
        Session::with_id(&id, new_params, catalog, model, transcript_bytes)
    }

    pub fn with_id(
        id: &str,
        new_params: Value,
        catalog: Arc<Catalog>,
        model: String,
        transcript_bytes: usize,
    ) -> Session {
        let id: Arc<str> = id.into();
        Session {
            literal: Bytes::from(json_string_literal(&id)),
            id,
            new_params,
            catalog,
            model,
            state: SessionState::Unbound,
            paths: None,
            reattach: None,
            holder: None,
            detached: None,
            turns: 0,
            transcript: crate::acp::transcript::Transcript::new(transcript_bytes),
            suppress_replay: false,
            handover: None,
            pick_params: None,
            created: std::time::Instant::now(),
            last_activity: std::time::Instant::now(),
            updates: 0,
            usage: Default::default(),
        }
    }

    pub fn is_binding(&self) -> bool {
        matches!(self.state, SessionState::Binding { .. })
    }

    /// The agent's session, once it exists (bound, or binding past `session/new`).
    pub fn link(&self) -> Option<&Link> {
        match &self.state {
            SessionState::Bound(link) => Some(link),
            SessionState::Binding { link, .. } => link.as_ref(),
            SessionState::Unbound => None,
        }
    }

    pub fn link_mut(&mut self) -> Option<&mut Link> {
        match &mut self.state {
            SessionState::Bound(link) => Some(link),
            SessionState::Binding { link, .. } => link.as_mut(),
            SessionState::Unbound => None,
        }
    }

    /// `running`, `idle` (held by a client) or `detached`, as `session/list` shows it.
    pub fn status(&self) -> &'static str {
        match (self.holder, self.turns) {
            (None, _) => "detached",
            (Some(_), 0) => "idle",
            (Some(_), _) => "running",
        }
    }

    /// Whether a turn is in progress, attached or not.
    pub fn turn_running(&self) -> bool {
        self.turns > 0
    }

    /// The complete option list the client should see now: the picker, the mode select made
    /// from a legacy block (if the agent needs one), then the agent's own options.
    pub fn config_options(&self) -> Vec<Value> {
        let agent_options = self.link().map(|l| l.options.as_slice()).unwrap_or(&[]);
        let mut options = self.catalog.config_options(&self.model, agent_options);
        if let Some(mode) = self.link().and_then(Link::mode_option) {
            options.insert(1, mode);
        }
        options
    }

    /// The legacy `modes` block a client should see now: the bound agent's, else (unbound)
    /// that of the agent the current pick names.
    pub fn legacy_modes(&self) -> Option<Value> {
        match self.link() {
            Some(link) => link.modes.clone(),
            None => {
                let agent = self.model.split_once(':').map(|(a, _)| a)?;
                self.catalog.agent(agent)?.modes.clone()
            }
        }
    }
}
