//! State shared by every connection of one daemon.
//!
//! A [`Server`] holds the runtime, the probe cache, the configuration and the shutdown token and
//! task tracker every connection task lives under. [`Server::catalog`] is what `session/new`
//! waits on: the container's agents, probed in parallel (cache hits are instant), as one
//! [`Catalog`]. It also keeps the `.bound` marker next to the socket up to date (written off the
//! hub's thread, like the session map). Its configuration from the environment is in `config`,
//! the probe cache it persists per image in `persisted`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::{CacheKey, ProbeCache};
use super::message::{RpcError, AUTH_REQUIRED, INTERNAL_ERROR};
use super::picker::Catalog;
use super::probe::{self, ProbeError};
use super::runtime::{AgentName, Runtime};

mod config;
mod persisted;

pub use config::{FrameDebug, OnDisconnect, ProxyConfig};

/// The capability profile of an `initialize`: agent processes are shared by clients whose
/// replayed `initialize` would offer the agent the same capabilities.
pub fn profile_of(initialize: &Value) -> Arc<str> {
    let caps = initialize
        .get("clientCapabilities")
        .cloned()
        .unwrap_or(Value::Null);
    let version = initialize
        .get("protocolVersion")
        .cloned()
        .unwrap_or(Value::Null);
    // serde_json's maps are ordered, so equal capabilities serialise equally.
    json!([version, caps]).to_string().into()
}

pub struct Server {
    pub runtime: Arc<dyn Runtime>,
    pub cache: ProbeCache,
    pub config: ProxyConfig,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Why the daemon is stopping, told to clients whose requests are still open.
    pub stop_reason: Mutex<String>,
    /// Proxy session ids and the agent sessions behind them, across restarts.
    pub sessions: super::sessions::SessionStore,
    next_connection: AtomicU64,
    bound: Arc<Mutex<BoundSessions>>,
    /// Writes the `.bound` marker when `bound` changes (where the daemon keeps one).
    bound_marker: Option<super::saver::Saver>,
    /// Where probes hand their live processes: the hub, once it runs.
    adopter: Arc<Mutex<Option<probe::Adopter>>>,
    /// False while the persisted cache is being read: requests wait for it rather than start
    /// probes it would have answered.
    seeded: tokio::sync::watch::Sender<bool>,
    /// When the daemon started, for `acp status`.
    pub started: std::time::Instant,
    /// Lines from agents dropped as malformed or overlong (counted by the pumps).
    pub agent_errors: AtomicU64,
    /// The wire trace (off unless configured).
    pub trace: super::trace::Tracer,
}

/// Which sessions are bound to which agent, daemon-wide, for the `.bound` marker.
#[derive(Default)]
struct BoundSessions {
    by_session: HashMap<Arc<str>, AgentName>,
    latest: Option<AgentName>,
}

impl Server {
    pub fn new(runtime: Arc<dyn Runtime>, config: ProxyConfig) -> Arc<Server> {
        let sessions = super::sessions::SessionStore::open(config.sessions_file.clone());
        let bound = Arc::new(Mutex::new(BoundSessions::default()));
        let bound_marker = config.bound_file.clone().map(|path| {
            let bound = bound.clone();
            super::saver::Saver::marker(path, move || {
                let bound = bound
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let agent = bound.latest.as_ref()?;
                Some(json!({"agent": agent.as_str()}).to_string().into_bytes())
            })
        });
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        let trace = match &config.trace {
            Some(trace) => super::trace::Tracer::open(trace, &runtime.describe()).unwrap_or_else(|e| {
                tracing::error!(path = %trace.path.display(), "cannot write the wire trace: {e}");
                super::trace::Tracer::default()
            }),
            None => super::trace::Tracer::default(),
        };
        Arc::new(Server {
            runtime,
            cache: ProbeCache::with_tasks(tracker.clone(), shutdown.clone()),
            config,
            shutdown,
            tracker,
            stop_reason: Mutex::new("the ACP daemon is shutting down".into()),
            sessions,
            next_connection: AtomicU64::new(1),
            started: std::time::Instant::now(),
            agent_errors: AtomicU64::new(0),
            trace,
            bound_marker,
            bound,
            adopter: Arc::default(),
            seeded: tokio::sync::watch::channel(true).0,
        })
    }

    /// Stops the daemon, telling clients why.
    pub fn stop(&self, reason: impl Into<String>) {
        if let Ok(mut slot) = self.stop_reason.lock() {
            *slot = reason.into();
        }
        self.shutdown.cancel();
    }

    /// Makes probes hand their live processes to `adopter` (the hub) from now on.
    pub fn set_adopter(&self, adopter: probe::Adopter) {
        if let Ok(mut slot) = self.adopter.lock() {
            *slot = Some(adopter);
        }
    }

    /// Runs one probe of `agent`: initialized as editors would, its process handed to the hub
    /// when there is one.
    fn probe_future(
        &self,
        agent: AgentName,
    ) -> futures::future::BoxFuture<'static, Result<Arc<probe::AgentProbe>, ProbeError>> {
        let (runtime, limit, adopter) = (
            self.runtime.clone(),
            self.config.probe_timeout,
            self.adopter.clone(),
        );
        let init = self.default_initialize();
        let meta = self.config.session_defaults.get(agent.as_str()).cloned();
        let trace = self.trace.clone();
        async move {
            let adopter = move || adopter.lock().ok().and_then(|a| a.clone());
            let start = probe::Start {
                init: &init,
                session_meta: meta.as_deref(),
                trace: &trace,
            };
            probe::probe(runtime.as_ref(), &agent, limit, start, adopter).await
        }
        .boxed()
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Probes every agent (sharing flights with concurrent callers) and returns those that
    /// answered before their probe had run for `wait`; the others go on in the background.
    /// Fails only when none is ready.
    pub async fn catalog_within(&self, wait: Duration) -> Result<Catalog, CatalogError> {
        let _ = self.seeded.subscribe().wait_for(|seeded| *seeded).await;
        let agents = self
            .runtime
            .agents()
            .await
            .map_err(|e| CatalogError::Runtime(e.to_string()))?;
        if agents.is_empty() {
            return Err(CatalogError::NoAgents(self.runtime.describe()));
        }
        let identity = self
            .runtime
            .identity()
            .await
            .map_err(|e| CatalogError::Runtime(e.to_string()))?;
        let probes = agents.iter().map(|agent| {
            let key = CacheKey {
                identity: identity.clone(),
                agent: agent.clone(),
            };
            let agent = agent.clone();
            async move {
                let outcome = self
                    .cache
                    .get_or_probe(key, wait, || self.probe_future(agent.clone()))
                    .await;
                (agent, outcome)
            }
        });
        let mut ready = Vec::new();
        let mut failures = Vec::new();
        for (agent, outcome) in futures::future::join_all(probes).await {
            match outcome {
                Ok(probe) => ready.push(probe),
                Err(e) => {
                    // Told once, when the probe settles (see the cache).
                    tracing::debug!(agent = %agent, "not in the picker: {e}");
                    failures.push((agent, e));
                }
            }
        }
        if ready.is_empty() {
            return Err(CatalogError::AllFailed(failures));
        }
        let auth_needed = CatalogError::AllFailed(failures).auth_needed();
        Ok(Catalog::with_auth(ready, auth_needed))
    }

    /// The catalog `session/new` answers from: the agents ready within the probe wait. While
    /// none is ready and some are still starting, it waits on for the first to settle (up to
    /// the probe limit), rather than failing a request that only came early.
    pub async fn session_catalog(&self) -> Result<Catalog, CatalogError> {
        // A probe that started with this request settles by its limit; a moment more lets its
        // outcome land.
        let deadline =
            tokio::time::Instant::now() + self.config.probe_timeout + Duration::from_secs(1);
        let mut changes = self.cache.subscribe();
        loop {
            changes.mark_unchanged();
            let outcome = self.catalog_within(self.config.probe_wait).await;
            if !outcome.as_ref().is_err_and(CatalogError::starting) {
                return outcome;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.catalog_within(Duration::ZERO).await,
            }
        }
    }

    /// Keeps the cache warm for the daemon's lifetime: seeds it from the persisted cache (and
    /// revalidates those answers in the background), probes every agent at once, re-probes
    /// failing agents when their backoff expires and after any change (such as a login), and
    /// persists what it learned.
    pub fn warm_up(self: &Arc<Self>) {
        let server = self.clone();
        self.seeded.send_replace(false);
        self.tracker.spawn(async move {
            let work = async {
                server.seed_from_disk().await;
                server.seeded.send_replace(true);
                let mut changes = server.cache.subscribe();
                loop {
                    changes.mark_unchanged();
                    // Probes run on their own; this pass only starts them and sees what settled.
                    match server.catalog_within(Duration::ZERO).await {
                        Ok(catalog) => {
                            tracing::debug!(agents = catalog.agents().len(), "probe cache warm")
                        }
                        Err(e) if e.starting() => {}
                        Err(e) => tracing::warn!("{}", e.to_rpc().message),
                    }
                    server.persist().await;
                    let retry = server.cache.next_retry();
                    tokio::select! {
                        _ = changes.changed() => {}
                        _ = async {
                            match retry {
                                Some(at) => tokio::time::sleep_until(at).await,
                                None => std::future::pending().await,
                            }
                        } => {}
                    }
                }
            };
            tokio::select! {
                _ = server.shutdown.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// After a login through the vault: gives every wrapper started from now on the
    /// container's fresh token variables and probes `agent` again (pickers follow the cache).
    /// Whether the agent is usable now.
    pub async fn vault_login(self: &Arc<Self>, agent: &AgentName) -> Result<bool, String> {
        let Some(vault) = self.config.vault.clone() else {
            return Err("this daemon serves no vault logins".into());
        };
        if !vault.0.routed().iter().any(|(a, _)| a == agent) {
            return Err(format!("{agent} does not log in through the vault"));
        }
        let env = tokio::task::spawn_blocking(move || vault.0.token_env())
            .await
            .map_err(|e| format!("the vault lookup failed: {e}"))??;
        tracing::info!(agent = %agent, variables = env.len(), "vault login: wrappers get new tokens");
        self.runtime.set_env(env);
        let identity = self.runtime.identity().await.map_err(|e| e.to_string())?;
        let key = CacheKey {
            identity,
            agent: agent.clone(),
        };
        self.cache
            .refresh(key.clone(), self.probe_future(agent.clone()))
            .await;
        self.persist().await;
        Ok(self.cache.get(&key).is_some())
    }

    /// Stores what an agent's logged-in process answered as its probe, so the cache (and every
    /// picker watching it) shows the agent at once, and the refresher leaves it be.
    pub fn learn_probe(self: &Arc<Self>, probe: probe::AgentProbe) {
        let server = self.clone();
        self.tracker.spawn(async move {
            if let Ok(identity) = server.runtime.identity().await {
                let key = CacheKey {
                    identity,
                    agent: probe.agent.clone(),
                };
                server.cache.store(key, Arc::new(probe));
            }
        });
    }

    /// The `initialize` params agents get before any editor said what it can do: the
    /// capabilities current editors send (file reads and writes; the terminal where agents may
    /// use it; terminal logins and login gateways), so agents list every method and option
    /// they offer capable clients. Each client is then shown what its own capabilities allow
    /// (see [`Catalog::auth_methods`]).
    pub fn default_initialize(&self) -> Value {
        let terminal = self.runtime.container_workspace().is_none() || self.config.host_terminal;
        json!({
            "protocolVersion": 1,
            "clientCapabilities": {
                "fs": {"readTextFile": true, "writeTextFile": true},
                "terminal": terminal,
                "auth": {"terminal": true, "_meta": {"gateway": true}},
                "_meta": {"terminal-auth": true},
            },
            "clientInfo": {"name": "terok-executor", "version": env!("CARGO_PKG_VERSION")},
        })
    }

    pub fn session_bound(&self, session: &Arc<str>, agent: &AgentName) {
        let Ok(mut bound) = self.bound.lock() else {
            return;
        };
        bound.by_session.insert(session.clone(), agent.clone());
        bound.latest = Some(agent.clone());
        drop(bound);
        self.update_bound_marker();
    }

    pub fn session_unbound(&self, session: &str) {
        let Ok(mut bound) = self.bound.lock() else {
            return;
        };
        if bound.by_session.remove(session).is_none() {
            return;
        }
        if bound
            .latest
            .as_ref()
            .is_some_and(|a| !bound.by_session.values().any(|b| b == a))
        {
            bound.latest = bound.by_session.values().next().cloned();
        }
        drop(bound);
        self.update_bound_marker();
    }

    fn update_bound_marker(&self) {
        if let Some(marker) = &self.bound_marker {
            marker.touch();
        }
    }

    /// Forgets every bound session (at shutdown), removes the marker, and waits until the
    /// files the daemon keeps current are written.
    pub fn clear_bound(&self) {
        if let Ok(mut bound) = self.bound.lock() {
            *bound = BoundSessions::default();
        }
        if let Some(marker) = &self.bound_marker {
            marker.touch();
            marker.flush();
        }
        self.sessions.flush();
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("no ACP-capable agent in {0}")]
    NoAgents(String),
    #[error("cannot list agents: {0}")]
    Runtime(String),
    #[error("no agent answered its probe")]
    AllFailed(Vec<(AgentName, ProbeError)>),
}

impl CatalogError {
    /// The agents that need a login, for `initialize` to offer their auth methods.
    pub fn auth_needed(&self) -> Vec<super::picker::AuthNeeded> {
        let CatalogError::AllFailed(failures) = self else {
            return Vec::new();
        };
        failures
            .iter()
            .filter_map(|(agent, e)| match e {
                ProbeError::AuthRequired { auth_methods, .. } => Some(super::picker::AuthNeeded {
                    agent: agent.clone(),
                    methods: auth_methods.as_array().cloned().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Whether some agent is still starting (so waiting may help).
    pub fn starting(&self) -> bool {
        matches!(self, CatalogError::AllFailed(failures) if failures.iter().any(|(_, e)| matches!(e, ProbeError::Starting(_))))
    }

    /// The JSON-RPC error a client gets for a `session/new` that found no agent. The code is
    /// `-32000`, which editors turn into their login flow, only when every agent has answered
    /// and one of them asked for a login; agents still starting and agents that failed get
    /// `-32603` with their own message. `data.agents` has each agent's state and reason.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            CatalogError::AllFailed(failures) => {
                let state = |e: &ProbeError| match e {
                    ProbeError::Starting(_) => "starting",
                    ProbeError::AuthRequired { .. } => "auth_required",
                    _ => "failed",
                };
                let details: Vec<Value> = failures
                    .iter()
                    .map(|(agent, e)| json!({"agent": agent.as_str(), "state": state(e), "error": e.to_string()}))
                    .collect();
                let summary: Vec<String> = failures
                    .iter()
                    .map(|(agent, e)| format!("{agent}: {e}"))
                    .collect();
                let summary = summary.join("; ");
                let locked: Vec<&str> = failures
                    .iter()
                    .filter(|(_, e)| matches!(e, ProbeError::AuthRequired { .. }))
                    .map(|(agent, _)| agent.as_str())
                    .collect();
                let (code, reason, message) = if self.starting() {
                    (
                        INTERNAL_ERROR,
                        "starting",
                        format!("no agent is ready yet ({summary})"),
                    )
                } else if !locked.is_empty() {
                    let who = locked.join(", ");
                    (
                        AUTH_REQUIRED,
                        "auth_required",
                        format!("Authentication required: {who} ({summary})"),
                    )
                } else {
                    (
                        INTERNAL_ERROR,
                        "failed",
                        format!("no agent is available ({summary})"),
                    )
                };
                RpcError::new(code, message).with_data(json!({"reason": reason, "agents": details}))
            }
            other => RpcError::new(INTERNAL_ERROR, other.to_string()),
        }
    }
}
