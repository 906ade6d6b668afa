//! The probe cache, shared by every connection of a daemon.
//!
//! Entries are keyed by (image id, auth identity, agent). A successful probe is kept until it
//! is invalidated (after an `authenticate`) or refreshed. Concurrent requests for one agent
//! share one probe in flight. A failed probe is kept too, with exponential backoff (5 s doubling
//! to 5 min): until it expires requests get the remembered error at once, so a dead or
//! unauthenticated agent costs nothing per `session/new`. Every change to which agents are
//! usable bumps a generation counter that connections watch to update their pickers. The map is
//! a `DashMap`; no shard lock is ever held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::probe::{AgentProbe, ProbeError};
use super::runtime::{AgentName, Identity};

/// First wait after a failed probe.
pub const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest wait between probes of a failing agent.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub identity: Identity,
    pub agent: AgentName,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>>;

enum Slot {
    Ready(Arc<AgentProbe>),
    InFlight {
        flight: Flight,
        generation: u64,
        backoff: Option<Duration>,
    },
    Failed {
        error: ProbeError,
        retry_at: Instant,
        backoff: Duration,
    },
}

pub struct ProbeCache {
    slots: DashMap<CacheKey, Slot>,
    flights: AtomicU64,
    changes: watch::Sender<u64>,
}

impl Default for ProbeCache {
    fn default() -> Self {
        ProbeCache {
            slots: DashMap::new(),
            flights: AtomicU64::new(0),
            changes: watch::channel(0).0,
        }
    }
}

fn next_backoff(previous: Option<Duration>) -> Duration {
    previous
        .map(|b| (b * 2).min(BACKOFF_MAX))
        .unwrap_or(BACKOFF_START)
}

impl ProbeCache {
    pub fn new() -> ProbeCache {
        ProbeCache::default()
    }

    /// A receiver that sees a new value whenever the set of usable agents may have changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|g| *g += 1);
    }

    /// Returns the cached probe for `key`, the remembered failure while its backoff runs, or
    /// the outcome of `probe` (joining one already in flight).
    pub async fn get_or_probe<F>(
        &self,
        key: CacheKey,
        probe: F,
    ) -> Result<Arc<AgentProbe>, ProbeError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>,
    {
        use dashmap::mapref::entry::Entry;
        let (flight, generation) = match self.slots.entry(key.clone()) {
            Entry::Occupied(mut occupied) => match occupied.get() {
                Slot::Ready(probe) => return Ok(probe.clone()),
                Slot::Failed {
                    error, retry_at, ..
                } if *retry_at > Instant::now() => return Err(error.clone()),
                Slot::InFlight {
                    flight, generation, ..
                } => (flight.clone(), *generation),
                Slot::Failed { backoff, .. } => {
                    let (slot, flight, generation) = self.new_flight(probe(), Some(*backoff));
                    occupied.insert(slot);
                    (flight, generation)
                }
            },
            Entry::Vacant(vacant) => {
                let (slot, flight, generation) = self.new_flight(probe(), None);
                vacant.insert(slot);
                (flight, generation)
            }
        };
        self.settle(key, flight, generation).await
    }

    fn new_flight(
        &self,
        future: BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>,
        backoff: Option<Duration>,
    ) -> (Slot, Flight, u64) {
        let generation = self.flights.fetch_add(1, Ordering::Relaxed);
        let flight = future.shared();
        (
            Slot::InFlight {
                flight: flight.clone(),
                generation,
                backoff,
            },
            flight,
            generation,
        )
    }

    /// Awaits a flight and stores its outcome, unless another flight replaced it meanwhile.
    async fn settle(
        &self,
        key: CacheKey,
        flight: Flight,
        generation: u64,
    ) -> Result<Arc<AgentProbe>, ProbeError> {
        let outcome = flight.await;
        let mut notify = false;
        if let dashmap::mapref::entry::Entry::Occupied(mut entry) = self.slots.entry(key) {
            if let Slot::InFlight {
                generation: g,
                backoff,
                ..
            } = entry.get()
            {
                if *g == generation {
                    let backoff = *backoff;
                    match &outcome {
                        Ok(probe) => {
                            entry.insert(Slot::Ready(probe.clone()));
                            notify = true;
                        }
                        Err(error) => {
                            let backoff = next_backoff(backoff);
                            entry.insert(Slot::Failed {
                                error: error.clone(),
                                retry_at: Instant::now() + backoff,
                                backoff,
                            });
                        }
                    }
                }
            }
        }
        if notify {
            self.changed();
        }
        outcome
    }

    /// Probes `key` again while its current answer stays visible, then stores the new outcome
    /// (used to revalidate answers seeded from a persisted cache).
    pub async fn refresh(
        &self,
        key: CacheKey,
        probe: BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>,
    ) {
        let outcome = probe.await;
        let changed = match (outcome, self.get(&key)) {
            (Ok(new), old) => {
                let changed =
                    old.is_none_or(|old| old.menu != new.menu || old.initialize != new.initialize);
                self.slots.insert(key, Slot::Ready(new));
                changed
            }
            (Err(error), old) => {
                let backoff = BACKOFF_START;
                self.slots.insert(
                    key,
                    Slot::Failed {
                        error,
                        retry_at: Instant::now() + backoff,
                        backoff,
                    },
                );
                old.is_some()
            }
        };
        if changed {
            self.changed();
        }
    }

    /// The cached probe for `key`, if one is ready.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<AgentProbe>> {
        match self.slots.get(key).as_deref() {
            Some(Slot::Ready(probe)) => Some(probe.clone()),
            _ => None,
        }
    }

    /// Stores a probe known from elsewhere (a persisted cache), unless the key is settled.
    pub fn seed(&self, key: CacheKey, probe: Arc<AgentProbe>) {
        self.slots.entry(key).or_insert(Slot::Ready(probe));
    }

    /// Forgets `key`, so the next request probes again (after an `authenticate`).
    pub fn invalidate(&self, key: &CacheKey) {
        if self.slots.remove(key).is_some() {
            self.changed();
        }
    }

    /// Drops the backoff of every failed entry so the next request probes again.
    pub fn retry_failed_now(&self) {
        for mut slot in self.slots.iter_mut() {
            if let Slot::Failed { retry_at, .. } = &mut *slot {
                *retry_at = Instant::now();
            }
        }
    }

    /// When the earliest backoff expires, if any entry is failing.
    pub fn next_retry(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| match &*slot {
                Slot::Failed { retry_at, .. } => Some(*retry_at),
                _ => None,
            })
            .min()
    }

    /// Every ready probe of `identity`, for persisting.
    pub fn ready(&self, identity: &Identity) -> Vec<Arc<AgentProbe>> {
        self.slots
            .iter()
            .filter(|slot| slot.key().identity == *identity)
            .filter_map(|slot| match &*slot {
                Slot::Ready(probe) => Some(probe.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acp::models::ModelMenu;
    use std::sync::atomic::AtomicUsize;

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
                            tokio::time::sleep(Duration::from_millis(50)).await;
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

    #[tokio::test(start_paused = true)]
    async fn failures_are_remembered_with_doubling_backoff() {
        let cache = ProbeCache::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let failing = |runs: Arc<AtomicUsize>| {
            move || {
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Err(ProbeError::AuthRequired {
                        message: "login".into(),
                        auth_methods: serde_json::json!([]),
                    })
                }
                .boxed()
            }
        };
        assert!(cache
            .get_or_probe(key("b"), failing(runs.clone()))
            .await
            .is_err());
        // Within the backoff the remembered error comes back without probing.
        let again = cache.get_or_probe(key("b"), failing(runs.clone())).await;
        assert!(matches!(again, Err(ProbeError::AuthRequired { .. })));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let first = cache.next_retry().unwrap();
        tokio::time::advance(BACKOFF_START + Duration::from_millis(1)).await;
        assert!(cache
            .get_or_probe(key("b"), failing(runs.clone()))
            .await
            .is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The second wait is twice the first.
        let second = cache.next_retry().unwrap();
        assert!(second - first >= BACKOFF_START * 2);
        // Many failures later the wait stops growing.
        for _ in 0..12 {
            tokio::time::advance(BACKOFF_MAX + Duration::from_millis(1)).await;
            let _ = cache.get_or_probe(key("b"), failing(runs.clone())).await;
        }
        assert!(cache.next_retry().unwrap() - Instant::now() <= BACKOFF_MAX);
    }

    #[tokio::test]
    async fn success_after_failure_and_invalidation_notify_watchers() {
        let cache = ProbeCache::new();
        let mut changes = cache.subscribe();
        let _ = cache
            .get_or_probe(key("c"), || {
                async { Err(ProbeError::Spawn("no".into())) }.boxed()
            })
            .await;
        assert!(
            !changes.has_changed().unwrap(),
            "a failure of an unknown agent changes nothing"
        );
        cache.retry_failed_now();
        assert!(cache
            .get_or_probe(key("c"), || async { Ok(fake_probe("c")) }.boxed())
            .await
            .is_ok());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        cache.invalidate(&key("c"));
        assert!(changes.has_changed().unwrap());
        assert!(cache.get(&key("c")).is_none());
    }

    #[tokio::test]
    async fn refresh_keeps_the_old_answer_visible_until_the_new_one_lands() {
        let cache = Arc::new(ProbeCache::new());
        cache.seed(key("d"), fake_probe("d"));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let refresher = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .refresh(
                        key("d"),
                        async move {
                            let _ = wait.await;
                            Err(ProbeError::Spawn("gone".into()))
                        }
                        .boxed(),
                    )
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(
            cache.get(&key("d")).is_some(),
            "still answering from the seeded entry"
        );
        release.send(()).unwrap();
        refresher.await.unwrap();
        assert!(cache.get(&key("d")).is_none());
    }
}
