//! State shared by every connection of one daemon.
//!
//! A [`Server`] holds the runtime, the probe cache, the configuration and the shutdown token and
//! task tracker every connection task lives under. [`Server::catalog`] is what `session/new`
//! waits on: the container's agents, probed in parallel (cache hits are instant), as one
//! [`Catalog`]. It also keeps the `.bound` marker next to the socket up to date.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::{CacheKey, ProbeCache};
use super::lines::DEFAULT_MAX_FRAME;
use super::message::{RpcError, AUTH_REQUIRED, INTERNAL_ERROR};
use super::picker::Catalog;
use super::probe::{self, ProbeError};
use super::runtime::{AgentName, Runtime};

/// How much frame content the debug log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDebug {
    Off,
    /// Direction, method, id and size of every frame.
    Summary,
    /// Whole frames, prompt text and file contents included.
    Full,
}

impl FrameDebug {
    /// Reads `TEROK_ACP_DEBUG`: unset, empty or `0` is off, `full` shows whole frames, anything
    /// else shows summaries.
    pub fn from_env() -> FrameDebug {
        match std::env::var("TEROK_ACP_DEBUG")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("0") => FrameDebug::Off,
            Some(v) if v.eq_ignore_ascii_case("full") => FrameDebug::Full,
            Some(_) => FrameDebug::Summary,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Deadline of one probe.
    pub probe_timeout: Duration,
    /// Deadline of one bind: spawn, `initialize`, `session/new` and the model pick.
    pub bind_timeout: Duration,
    /// Longest accepted line.
    pub max_frame: usize,
    pub debug: FrameDebug,
    /// Where to keep the `.bound` marker, if anywhere.
    pub bound_file: Option<PathBuf>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            probe_timeout: probe::DEFAULT_PROBE_TIMEOUT,
            bind_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            debug: FrameDebug::Off,
            bound_file: None,
        }
    }
}

impl ProxyConfig {
    /// Defaults with the environment's overrides applied.
    pub fn from_env() -> ProxyConfig {
        let mut config = ProxyConfig {
            probe_timeout: probe::probe_timeout_from_env(),
            debug: FrameDebug::from_env(),
            ..Default::default()
        };
        if let Some(secs) = env_secs("TEROK_ACP_BIND_TIMEOUT_SECS") {
            config.bind_timeout = secs;
        }
        if let Some(max) = std::env::var("TEROK_ACP_MAX_FRAME_BYTES")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            config.max_frame = max.max(1024);
        }
        config
    }
}

fn env_secs(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // `from_secs_f64` panics on values too large for a `Duration` (e.g. `1e30`).
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

pub struct Server {
    pub runtime: Arc<dyn Runtime>,
    pub cache: ProbeCache,
    pub config: ProxyConfig,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    next_connection: AtomicU64,
    bound: Mutex<BoundSessions>,
}

/// Which sessions are bound to which agent, daemon-wide, for the `.bound` marker.
#[derive(Default)]
struct BoundSessions {
    by_session: HashMap<(u64, Arc<str>), AgentName>,
    latest: Option<AgentName>,
}

impl Server {
    pub fn new(runtime: Arc<dyn Runtime>, config: ProxyConfig) -> Arc<Server> {
        Arc::new(Server {
            runtime,
            cache: ProbeCache::new(),
            config,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_connection: AtomicU64::new(1),
            bound: Mutex::new(BoundSessions::default()),
        })
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Probes every agent (sharing flights with concurrent callers) and returns those that
    /// answered. Fails only when none did.
    pub async fn catalog(&self) -> Result<Catalog, CatalogError> {
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
            let runtime = self.runtime.clone();
            let timeout = self.config.probe_timeout;
            let agent = agent.clone();
            async move {
                let outcome = self
                    .cache
                    .get_or_probe(key, || {
                        let agent = agent.clone();
                        async move { probe::probe(runtime.as_ref(), &agent, timeout).await }.boxed()
                    })
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
                    tracing::warn!(agent = %agent, "left out of the picker: {e}");
                    failures.push((agent, e));
                }
            }
        }
        if ready.is_empty() {
            return Err(CatalogError::AllFailed(failures));
        }
        Ok(Catalog::new(ready))
    }

    /// Starts probing in the background so the first `session/new` finds a warm cache.
    pub fn warm_up(self: &Arc<Self>) {
        let server = self.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = server.shutdown.cancelled() => {}
                outcome = server.catalog() => match outcome {
                    Ok(catalog) => tracing::info!(agents = catalog.agents().len(), "probe cache warm"),
                    Err(e) => tracing::warn!("warm-up: {}", e.to_rpc().message),
                },
            }
        });
    }

    pub fn session_bound(&self, connection: u64, session: &Arc<str>, agent: &AgentName) {
        let Ok(mut bound) = self.bound.lock() else {
            return;
        };
        bound
            .by_session
            .insert((connection, session.clone()), agent.clone());
        bound.latest = Some(agent.clone());
        self.write_bound_marker(&bound);
    }

    pub fn session_unbound(&self, connection: u64, session: &Arc<str>) {
        let Ok(mut bound) = self.bound.lock() else {
            return;
        };
        if bound
            .by_session
            .remove(&(connection, session.clone()))
            .is_some()
        {
            if bound
                .latest
                .as_ref()
                .is_some_and(|a| !bound.by_session.values().any(|b| b == a))
            {
                bound.latest = bound.by_session.values().next().cloned();
            }
            self.write_bound_marker(&bound);
        }
    }

    fn write_bound_marker(&self, bound: &BoundSessions) {
        let Some(path) = &self.config.bound_file else {
            return;
        };
        let result = match &bound.latest {
            Some(agent) => crate::fsutil::write_atomic(
                path,
                json!({"agent": agent.as_str()}).to_string().as_bytes(),
                0o600,
            ),
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "cannot update the bound marker: {e}");
        }
    }

    /// Removes the `.bound` marker, e.g. on exit.
    pub fn clear_bound_marker(&self) {
        if let Some(path) = &self.config.bound_file {
            let _ = std::fs::remove_file(path);
        }
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
    /// The JSON-RPC error a client gets for a `session/new` that found no agent. When some agent
    /// needs authentication the code is `-32000`, which editors turn into their login flow.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            CatalogError::AllFailed(failures) => {
                let details: Vec<Value> = failures
                    .iter()
                    .map(|(agent, e)| json!({"agent": agent.as_str(), "error": e.to_string()}))
                    .collect();
                let summary: Vec<String> = failures
                    .iter()
                    .map(|(agent, e)| format!("{agent}: {e}"))
                    .collect();
                let auth = failures
                    .iter()
                    .any(|(_, e)| matches!(e, ProbeError::AuthRequired { .. }));
                let code = if auth { AUTH_REQUIRED } else { INTERNAL_ERROR };
                let message = if auth {
                    format!("Authentication required ({})", summary.join("; "))
                } else {
                    format!("no agent is available: {}", summary.join("; "))
                };
                RpcError::new(code, message).with_data(json!({"agents": details}))
            }
            other => RpcError::new(INTERNAL_ERROR, other.to_string()),
        }
    }
}
