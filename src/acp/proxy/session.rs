//! A client session and its lifecycle.
//!
//! A session starts [`SessionState::Unbound`]: the proxy minted its id and showed the picker,
//! and no agent knows about it yet. Picking a model (or the first request that needs an agent)
//! moves it to [`SessionState::Binding`], during which the client's frames for it are queued in
//! order; when the agent has opened its own session and selected the model it becomes
//! [`SessionState::Bound`] and frames flow straight through. A failed bind, or a backend that
//! dies, returns it to `Unbound`, from which it can bind again.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::acp::frame::{json_string_literal, Frame};
use crate::acp::models::ModelSelector;
use crate::acp::picker::Catalog;
use crate::acp::runtime::AgentName;

/// How the request that started a model selection is answered when it completes.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `session/set_config_option`: the complete option list.
    ConfigOptions(Bytes),
    /// Legacy `session/set_model`: an empty object.
    Empty(Bytes),
    /// `session/load` or `session/resume`: the complete option list and the legacy block.
    Reattached(Bytes),
    /// A lazy bind: nobody asked, so the client is told through `config_option_update`.
    Notify,
}

impl Reply {
    pub fn client_id(&self) -> Option<&Bytes> {
        match self {
            Reply::ConfigOptions(id) | Reply::Empty(id) | Reply::Reattached(id) => Some(id),
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
        /// Client frames for this session that arrived during the bind, in order.
        queue: Vec<Frame>,
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
}

impl Session {
    pub fn new(new_params: Value, catalog: Arc<Catalog>, model: String) -> Session {
        let id = format!("terok-{}", uuid::Uuid::new_v4().simple());
        Session::with_id(&id, new_params, catalog, model)
    }

    pub fn with_id(id: &str, new_params: Value, catalog: Arc<Catalog>, model: String) -> Session {
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

    /// The complete option list the client should see now.
    pub fn config_options(&self) -> Vec<Value> {
        let agent_options = self.link().map(|l| l.options.as_slice()).unwrap_or(&[]);
        self.catalog.config_options(&self.model, agent_options)
    }
}
