//! The probe cache, shared by every connection of a daemon.
//!
//! Entries are keyed by (image id, auth identity, agent). A successful probe is kept until it
//! is replaced (a refresh, or the answer of an agent's authenticated process) or invalidated.
//! Concurrent requests for one agent share one probe in flight, and the probe runs on its own
//! task: a request waits for it only until the probe has run for the wait it names, then goes
//! on without it ([`ProbeError::Starting`]), and the probe's answer lands in the cache whenever
//! it comes. A failed probe is kept too, with exponential backoff (5 s doubling to 5 min):
//! until it expires requests get the remembered error at once, so a dead or unauthenticated
//! agent costs nothing per `session/new`; a retry runs in the background while requests keep
//! getting the last error. Every settled probe bumps a generation counter that the hub and the
//! warm-up loop watch. The map is a `DashMap`; no shard lock is ever held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

type ProbeFuture = BoxFuture<'static, Result<Arc<AgentProbe>, ProbeError>>;
type Flight = Shared<ProbeFuture>;

enum Slot {
    Ready(Arc<AgentProbe>),
    InFlight {
        flight: Flight,
        generation: u64,
        backoff: Option<Duration>,
        started: Instant,
        /// The failure this flight retries: what requests get meanwhile.
        previous: Option<ProbeError>,
    },
    Failed {
        error: ProbeError,
        retry_at: Instant,
        backoff: Duration,
    },
}

/// The cache's state, shared with the tasks that run its probes.
struct Slots {
    slots: DashMap<CacheKey, Slot>,
    flights: AtomicU64,
    changes: watch::Sender<u64>,
}

pub struct ProbeCache {
    inner: Arc<Slots>,
    /// Where probe tasks run, and what stops them.
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Default for ProbeCache {
    fn default() -> Self {
        ProbeCache::with_tasks(TaskTracker::new(), CancellationToken::new())
    }
}

fn next_backoff(previous: Option<Duration>) -> Duration {
    previous
        .map(|b| (b * 2).min(BACKOFF_MAX))
        .unwrap_or(BACKOFF_START)
}

impl Slots {
    fn changed(&self) {
        self.changes.send_modify(|g| *g += 1);
    }

    /// Stores a flight's outcome, unless another flight (or a fresher answer) replaced it.
    fn settle(
        &self,
        key: CacheKey,
        generation: u64,
        outcome: &Result<Arc<AgentProbe>, ProbeError>,
    ) {
        let dashmap::mapref::entry::Entry::Occupied(mut entry) = self.slots.entry(key) else {
            return;
        };
        let backoff = match entry.get() {
            Slot::InFlight {
                generation: g,
                backoff,
                ..
            } if *g == generation => *backoff,
            _ => return,
        };
        match outcome {
            Ok(probe) => {
                entry.insert(Slot::Ready(probe.clone()));
            }
            Err(error) => {
                tracing::warn!(agent = %entry.key().agent, "left out of the picker: {error}");
                let backoff = next_backoff(backoff);
                entry.insert(Slot::Failed {
                    error: error.clone(),
                    retry_at: Instant::now() + backoff,
                    backoff,
                });
            }
        }
        drop(entry);
        self.changed();
    }
}

impl ProbeCache {
    pub fn new() -> ProbeCache {
        ProbeCache::default()
    }

    /// A cache whose probes run under `tasks` and stop at `shutdown`.
    pub fn with_tasks(tasks: TaskTracker, shutdown: CancellationToken) -> ProbeCache {
        ProbeCache {
            inner: Arc::new(Slots {
                slots: DashMap::new(),
                flights: AtomicU64::new(0),
                changes: watch::channel(0).0,
            }),
            tasks,
            shutdown,
        }
    }

    /// A receiver that sees a new value whenever a probe settled or an entry changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Returns the cached probe for `key`, the remembered failure while its backoff runs, or
    /// the outcome of `probe` (joining one already in flight) if it comes before the probe has
    /// run for `wait`; after that, [`ProbeError::Starting`] while the probe goes on. A retry of
    /// a failed agent is not waited for: the last failure stands until the retry settles.
    pub async fn get_or_probe<F>(
        &self,
        key: CacheKey,
        wait: Duration,
        probe: F,
    ) -> Result<Arc<AgentProbe>, ProbeError>
    where
        F: FnOnce() -> ProbeFuture,
    {
        use dashmap::mapref::entry::Entry;
        let (flight, started, previous) = match self.inner.slots.entry(key.clone()) {
            Entry::Occupied(mut occupied) => match occupied.get() {
                Slot::Ready(probe) => return Ok(probe.clone()),
                Slot::Failed {
                    error, retry_at, ..
                } if *retry_at > Instant::now() => return Err(error.clone()),
                Slot::InFlight {
                    flight,
                    started,
                    previous,
                    ..
                } => (flight.clone(), *started, previous.clone()),
                Slot::Failed { backoff, error, .. } => {
                    let previous = Some(error.clone());
                    let (slot, flight) =
                        self.new_flight(&key, probe(), Some(*backoff), previous.clone());
                    occupied.insert(slot);
                    (flight, Instant::now(), previous)
                }
            },
            Entry::Vacant(vacant) => {
                let (slot, flight) = self.new_flight(&key, probe(), None, None);
                vacant.insert(slot);
                (flight, Instant::now(), None)
            }
        };
        if let Some(previous) = previous {
            // A finished retry is already settled; one still running does not hold anyone up.
            return flight.now_or_never().unwrap_or(Err(previous));
        }
        match tokio::time::timeout_at(started + wait, flight).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProbeError::Starting(started.elapsed())),
        }
    }

    /// Starts `future` on its own task, which stores its outcome when it settles.
    fn new_flight(
        &self,
        key: &CacheKey,
        future: ProbeFuture,
        backoff: Option<Duration>,
        previous: Option<ProbeError>,
    ) -> (Slot, Flight) {
        let generation = self.inner.flights.fetch_add(1, Ordering::Relaxed);
        let flight = future.shared();
        let (inner, driven, key, shutdown) = (
            self.inner.clone(),
            flight.clone(),
            key.clone(),
            self.shutdown.clone(),
        );
        self.tasks.spawn(async move {
            tokio::select! {
                outcome = driven => inner.settle(key, generation, &outcome),
                _ = shutdown.cancelled() => {}
            }
        });
        let slot = Slot::InFlight {
            flight: flight.clone(),
            generation,
            backoff,
            started: Instant::now(),
            previous,
        };
        (slot, flight)
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
                let changed = old.is_none_or(|old| *old != *new);
                self.inner.slots.insert(key, Slot::Ready(new));
                changed
            }
            (Err(error), old) => {
                let backoff = BACKOFF_START;
                self.inner.slots.insert(
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
            self.inner.changed();
        }
    }

    /// The cached probe for `key`, if one is ready.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<AgentProbe>> {
        match self.inner.slots.get(key).as_deref() {
            Some(Slot::Ready(probe)) => Some(probe.clone()),
            _ => None,
        }
    }

    /// Stores a probe known from elsewhere (a persisted cache), unless the key is settled.
    /// A first probe that started before the seed (the daemon's start can race it) does not
    /// hold requests up: they get the seeded answer, and the caller revalidates it.
    pub fn seed(&self, key: CacheKey, probe: Arc<AgentProbe>) {
        use dashmap::mapref::entry::Entry;
        match self.inner.slots.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(Slot::Ready(probe));
            }
            Entry::Occupied(mut occupied) => {
                if matches!(occupied.get(), Slot::InFlight { previous: None, .. }) {
                    // The flight runs on for whoever waits on it; its outcome is not stored.
                    occupied.insert(Slot::Ready(probe));
                }
            }
        }
    }

    /// Stores `probe` as the answer for `key`, replacing whatever was there (a probe in flight
    /// keeps running, and its outcome is dropped): an authenticated process answered.
    pub fn store(&self, key: CacheKey, probe: Arc<AgentProbe>) {
        let changed = self.get(&key).is_none_or(|old| *old != *probe);
        self.inner.slots.insert(key, Slot::Ready(probe));
        if changed {
            self.inner.changed();
        }
    }

    /// Whether a probe of `key` is running right now.
    pub fn in_flight(&self, key: &CacheKey) -> bool {
        matches!(
            self.inner.slots.get(key).as_deref(),
            Some(Slot::InFlight { .. })
        )
    }

    /// Remembers a failure known from elsewhere (a persisted cache), unless the key is settled:
    /// requests get it at once while the first probe retries in the background.
    /// A first probe already in flight becomes the retry of that failure: requests get the
    /// failure at once instead of waiting for it.
    pub fn seed_failure(&self, key: CacheKey, error: ProbeError) {
        use dashmap::mapref::entry::Entry;
        match self.inner.slots.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(Slot::Failed {
                    error,
                    retry_at: Instant::now(),
                    backoff: BACKOFF_START,
                });
            }
            Entry::Occupied(mut occupied) => {
                if let Slot::InFlight {
                    previous: previous @ None,
                    ..
                } = occupied.get_mut()
                {
                    *previous = Some(error);
                }
            }
        }
    }

    /// Every agent of `identity` whose last probe asked for a login, for persisting.
    pub fn locked(&self, identity: &Identity) -> Vec<(AgentName, ProbeError)> {
        self.inner
            .slots
            .iter()
            .filter(|slot| slot.key().identity == *identity)
            .filter_map(|slot| match &*slot {
                Slot::Failed {
                    error: error @ ProbeError::AuthRequired { .. },
                    ..
                } => Some((slot.key().agent.clone(), error.clone())),
                _ => None,
            })
            .collect()
    }

    /// Forgets `key`, so the next request probes again (after an `authenticate`).
    pub fn invalidate(&self, key: &CacheKey) {
        if self.inner.slots.remove(key).is_some() {
            self.inner.changed();
        }
    }

    /// Drops the backoff of every failed entry so the next request probes again.
    pub fn retry_failed_now(&self) {
        for mut slot in self.inner.slots.iter_mut() {
            if let Slot::Failed { retry_at, .. } = &mut *slot {
                *retry_at = Instant::now();
            }
        }
    }

    /// When the earliest backoff expires, if any entry is failing.
    pub fn next_retry(&self) -> Option<Instant> {
        self.inner
            .slots
            .iter()
            .filter_map(|slot| match &*slot {
                Slot::Failed { retry_at, .. } => Some(*retry_at),
                _ => None,
            })
            .min()
    }

    /// Every agent's entry, for `acp status`: ready, probing, needing a login or failing (and
    /// when it is probed next). Agents are in name order; an agent probed for several client
    /// profiles appears once per profile.
    pub fn snapshot(&self) -> Vec<crate::acp::status::Probe> {
        let now = Instant::now();
        let mut probes: Vec<crate::acp::status::Probe> = self
            .inner
            .slots
            .iter()
            .map(|slot| {
                let mut probe = crate::acp::status::Probe {
                    agent: slot.key().agent.to_string(),
                    ..Default::default()
                };
                match &*slot {
                    Slot::Ready(ready) => {
                        probe.state = "ready".into();
                        probe.models = Some(ready.menu.models.len().max(1));
                    }
                    Slot::InFlight {
                        started, previous, ..
                    } => {
                        probe.state = "probing".into();
                        probe.reason = Some(match previous {
                            Some(error) => format!(
                                "for {:.1} s, after: {error}",
                                started.elapsed().as_secs_f64()
                            ),
                            None => format!("for {:.1} s", started.elapsed().as_secs_f64()),
                        });
                    }
                    Slot::Failed {
                        error, retry_at, ..
                    } => {
                        probe.state = match error {
                            ProbeError::AuthRequired { .. } => "needs_authentication",
                            _ => "failed",
                        }
                        .into();
                        probe.reason = Some(error.to_string());
                        probe.retry_in_secs =
                            Some(retry_at.saturating_duration_since(now).as_secs_f64());
                    }
                }
                probe
            })
            .collect();
        probes.sort_by(|a, b| a.agent.cmp(&b.agent));
        probes
    }

    /// Every ready probe of `identity`, for persisting.
    pub fn ready(&self, identity: &Identity) -> Vec<Arc<AgentProbe>> {
        self.inner
            .slots
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
mod tests;
