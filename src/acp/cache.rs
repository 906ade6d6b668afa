//! The probe cache, shared by every connection of a daemon.
//!
//! Successful probes are kept under (image id, auth identity, agent) for the daemon's lifetime.
//! Concurrent requests for the same agent share one probe in flight instead of starting the
//! wrapper twice. Failures are not kept: the next request probes again. The map is a `DashMap`;
//! no shard lock is ever held across an `.await`.

use std::sync::Arc;

use dashmap::DashMap;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use super::probe::{AgentProbe, ProbeError};
use super::runtime::{AgentName, Identity};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub identity: Identity,
    pub agent: AgentName,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>>;

enum Slot {
    Ready(Arc<AgentProbe>),
    InFlight { flight: Flight, generation: u64 },
}

#[derive(Default)]
pub struct ProbeCache {
    slots: DashMap<CacheKey, Slot>,
    generation: std::sync::atomic::AtomicU64,
}

impl ProbeCache {
    pub fn new() -> ProbeCache {
        ProbeCache::default()
    }

    /// Returns the cached probe for `key`, or runs `probe` (joining one already in flight).
    pub async fn get_or_probe<F>(
        &self,
        key: CacheKey,
        probe: F,
    ) -> Result<Arc<AgentProbe>, ProbeError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>,
    {
        let (flight, generation) = {
            let mut slot = self.slots.entry(key.clone()).or_insert_with(|| {
                let generation = self
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Slot::InFlight {
                    flight: probe().shared(),
                    generation,
                }
            });
            match &mut *slot {
                Slot::Ready(probe) => return Ok(probe.clone()),
                Slot::InFlight { flight, generation } => (flight.clone(), *generation),
            }
        };
        let outcome = flight.await;
        // Settle the slot, unless another flight has replaced this one meanwhile.
        if let dashmap::mapref::entry::Entry::Occupied(mut entry) = self.slots.entry(key) {
            if matches!(entry.get(), Slot::InFlight { generation: g, .. } if *g == generation) {
                match &outcome {
                    Ok(probe) => {
                        entry.insert(Slot::Ready(probe.clone()));
                    }
                    Err(_) => {
                        entry.remove();
                    }
                }
            }
        }
        outcome
    }

    /// The cached probe for `key`, if one is ready.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<AgentProbe>> {
        match self.slots.get(key).as_deref() {
            Some(Slot::Ready(probe)) => Some(probe.clone()),
            _ => None,
        }
    }

    /// Forgets `key`, so the next request probes again.
    pub fn invalidate(&self, key: &CacheKey) {
        self.slots.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acp::models::ModelMenu;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(agent: &str) -> CacheKey {
        CacheKey {
            identity: Identity {
                image: "img".into(),
                auth: "global".into(),
            },
            agent: AgentName::new(agent).unwrap(),
        }
    }

    fn fake_probe(agent: &str) -> Arc<AgentProbe> {
        Arc::new(AgentProbe {
            agent: AgentName::new(agent).unwrap(),
            initialize: serde_json::json!({}),
            menu: ModelMenu::from_session(&serde_json::json!({})),
        })
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_flight() {
        let cache = Arc::new(ProbeCache::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_probe(key("a"), move || {
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok(fake_probe("a"))
                        }
                        .boxed()
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(cache.get(&key("a")).is_some());
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = ProbeCache::new();
        let failing = || async { Err(ProbeError::Spawn("boom".into())) }.boxed();
        assert!(cache.get_or_probe(key("b"), failing).await.is_err());
        assert!(cache.get(&key("b")).is_none());
        let ok = cache
            .get_or_probe(key("b"), || async { Ok(fake_probe("b")) }.boxed())
            .await;
        assert!(ok.is_ok());
    }
}
