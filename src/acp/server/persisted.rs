//! The probe cache persisted per image, so that a restarted daemon answers at once: ready
//! agents from what they answered last time, agents that asked for a login with the methods
//! they offered; both are probed again in the background.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::Server;
use crate::acp::cache::CacheKey;
use crate::acp::probe::{self, ProbeError};
use crate::acp::runtime::AgentName;

impl Server {
    fn cache_file(&self, identity: &crate::acp::runtime::Identity) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        let name: String = format!("{}-{}", identity.image, identity.auth)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        Some(dir.join(format!("{name}.json")))
    }

    /// Seeds the cache from the persisted file of this image, then revalidates in background:
    /// ready agents answer at once, and agents that needed a login are offered with their auth
    /// methods at once while their first probe runs.
    pub(super) async fn seed_from_disk(self: &Arc<Self>) {
        let Ok(identity) = self.runtime.identity().await else {
            return;
        };
        let Some(path) = self.cache_file(&identity) else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let persisted = match PersistedCache::parse(&text) {
            Ok(persisted) => persisted,
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable probe cache: {e}");
                return;
            }
        };
        tracing::info!(agents = persisted.ready.len(), locked = persisted.locked.len(), path = %path.display(), "probe cache loaded");
        for locked in persisted.locked {
            let key = CacheKey {
                identity: identity.clone(),
                agent: locked.agent,
            };
            let error = ProbeError::AuthRequired {
                message: locked.message,
                auth_methods: locked.auth_methods,
            };
            self.cache.seed_failure(key, error);
        }
        for probe in persisted.ready {
            let key = CacheKey {
                identity: identity.clone(),
                agent: probe.agent.clone(),
            };
            self.cache.seed(key.clone(), Arc::new(probe));
            let server = self.clone();
            self.tracker.spawn(async move {
                let fresh = server.probe_future(key.agent.clone());
                tokio::select! {
                    _ = server.shutdown.cancelled() => {}
                    _ = server.cache.refresh(key, fresh) => {}
                }
            });
        }
    }

    /// Writes what is known of this image's agents to the persisted cache: the ready probes and
    /// the agents that asked for a login.
    pub(super) async fn persist(&self) {
        let Ok(identity) = self.runtime.identity().await else {
            return;
        };
        let Some(path) = self.cache_file(&identity) else {
            return;
        };
        let mut ready: Vec<super::probe::AgentProbe> = self
            .cache
            .ready(&identity)
            .iter()
            .map(|p| (**p).clone())
            .collect();
        let mut locked: Vec<LockedAgent> = self
            .cache
            .locked(&identity)
            .into_iter()
            .filter_map(|(agent, error)| match error {
                ProbeError::AuthRequired {
                    message,
                    auth_methods,
                } => Some(LockedAgent {
                    agent,
                    message,
                    auth_methods,
                }),
                _ => None,
            })
            .collect();
        if ready.is_empty() && locked.is_empty() {
            // Nothing learned yet (probes still running): an empty file would only mislead the
            // next start.
            return;
        }
        ready.sort_by(|a, b| a.agent.cmp(&b.agent));
        locked.sort_by(|a, b| a.agent.cmp(&b.agent));
        let Ok(json) = serde_json::to_vec_pretty(&PersistedCache { ready, locked }) else {
            return;
        };
        if std::fs::read(&path).is_ok_and(|old| old == json) {
            return;
        }
        if let Err(e) = crate::fsutil::write_private(&path, &json, 0o600) {
            tracing::warn!(path = %path.display(), "cannot persist the probe cache: {e}");
        }
    }
}

/// The persisted probe cache of one image.
#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedCache {
    ready: Vec<probe::AgentProbe>,
    #[serde(default)]
    locked: Vec<LockedAgent>,
}

/// An agent whose last probe asked for a login, with the methods it offered.
#[derive(serde::Serialize, serde::Deserialize)]
struct LockedAgent {
    agent: AgentName,
    message: String,
    auth_methods: Value,
}

impl PersistedCache {
    /// Reads the file; the older form was a bare list of ready probes.
    fn parse(text: &str) -> serde_json::Result<PersistedCache> {
        serde_json::from_str(text).or_else(|e| match serde_json::from_str(text) {
            Ok(ready) => Ok(PersistedCache {
                ready,
                locked: Vec::new(),
            }),
            Err(_) => Err(e),
        })
    }
}
