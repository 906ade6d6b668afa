//! The probe cache: single flights, waits, late landings, failures, logins and persistence.

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
        modes: None,
    })
}

const WAIT: Duration = Duration::from_secs(1);

/// Lets the tasks that settle probes run.
async fn settle_tasks() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// A cache whose first probe of "s" runs (5 s, paused time), and the request that started it.
async fn first_probe_in_flight() -> (
    Arc<ProbeCache>,
    tokio::task::JoinHandle<Result<Arc<AgentProbe>, ProbeError>>,
) {
    let cache = Arc::new(ProbeCache::new());
    let slow = || {
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(fake_probe("s"))
        }
        .boxed()
    };
    let early = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_or_probe(key("s"), WAIT * 10, slow).await })
    };
    settle_tasks().await;
    assert!(cache.in_flight(&key("s")));
    (cache, early)
}

#[tokio::test(start_paused = true)]
async fn a_seeded_failure_answers_at_once_even_after_a_first_probe_started() {
    let (cache, early) = first_probe_in_flight().await;
    let locked = ProbeError::AuthRequired {
        message: "log in".into(),
        auth_methods: serde_json::json!([]),
    };
    cache.seed_failure(key("s"), locked);
    let started = tokio::time::Instant::now();
    let answer = cache
        .get_or_probe(key("s"), WAIT * 10, || async { unreachable!() }.boxed())
        .await;
    assert!(
        matches!(answer, Err(ProbeError::AuthRequired { .. })),
        "{answer:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait for the flight");
    assert!(
        early.await.unwrap().is_ok(),
        "the flight still lands for the request that started it"
    );
    assert!(cache.get(&key("s")).is_some(), "and its answer is kept");
}

#[tokio::test(start_paused = true)]
async fn a_seed_answers_at_once_even_after_a_first_probe_started() {
    let (cache, early) = first_probe_in_flight().await;
    cache.seed(key("s"), fake_probe("s"));
    let started = tokio::time::Instant::now();
    let answer = cache
        .get_or_probe(key("s"), WAIT * 10, || async { unreachable!() }.boxed())
        .await;
    assert!(answer.is_ok());
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait for the flight");
    assert!(
        early.await.unwrap().is_ok(),
        "the early request still gets its probe"
    );
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
                .get_or_probe(key("a"), WAIT, move || {
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
    settle_tasks().await;
    assert!(cache.get(&key("a")).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_probe_past_the_wait_goes_on_and_lands_later() {
    let cache = ProbeCache::new();
    let changes = cache.subscribe();
    let slow = || {
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(fake_probe("s"))
        }
        .boxed()
    };
    let first = cache.get_or_probe(key("s"), WAIT, slow).await;
    assert!(
        matches!(first, Err(ProbeError::Starting(d)) if d >= WAIT),
        "{first:?}"
    );
    assert!(cache.in_flight(&key("s")), "the probe was not cut off");
    // A later request waits no longer than the probe's own start plus the wait.
    let started = Instant::now();
    let second = cache
        .get_or_probe(key("s"), WAIT, || unreachable!("one flight"))
        .await;
    assert!(matches!(second, Err(ProbeError::Starting(_))));
    assert_eq!(Instant::now(), started, "the wait had already passed");
    assert!(!changes.has_changed().unwrap());
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle_tasks().await;
    assert!(
        changes.has_changed().unwrap(),
        "the late answer is announced"
    );
    assert!(cache.get(&key("s")).is_some());
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
        .get_or_probe(key("b"), WAIT, failing(runs.clone()))
        .await
        .is_err());
    settle_tasks().await;
    // Within the backoff the remembered error comes back without probing.
    let again = cache
        .get_or_probe(key("b"), WAIT, failing(runs.clone()))
        .await;
    assert!(matches!(again, Err(ProbeError::AuthRequired { .. })));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let first = cache.next_retry().unwrap();
    tokio::time::advance(BACKOFF_START + Duration::from_millis(1)).await;
    assert!(cache
        .get_or_probe(key("b"), WAIT, failing(runs.clone()))
        .await
        .is_err());
    settle_tasks().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // The second wait is twice the first.
    let second = cache.next_retry().unwrap();
    assert!(second - first >= BACKOFF_START * 2);
    // Many failures later the wait stops growing.
    for _ in 0..12 {
        tokio::time::advance(BACKOFF_MAX + Duration::from_millis(1)).await;
        let _ = cache
            .get_or_probe(key("b"), WAIT, failing(runs.clone()))
            .await;
        settle_tasks().await;
    }
    assert!(cache.next_retry().unwrap() - Instant::now() <= BACKOFF_MAX);
}

#[tokio::test(start_paused = true)]
async fn a_retry_does_not_hold_requests_up() {
    let cache = ProbeCache::new();
    let _ = cache
        .get_or_probe(key("r"), WAIT, || {
            async { Err(ProbeError::Spawn("no".into())) }.boxed()
        })
        .await;
    settle_tasks().await;
    cache.retry_failed_now();
    let started = Instant::now();
    let during = cache
        .get_or_probe(key("r"), WAIT, || {
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(fake_probe("r"))
            }
            .boxed()
        })
        .await;
    assert!(matches!(during, Err(ProbeError::Spawn(_))), "{during:?}");
    assert_eq!(Instant::now(), started);
    tokio::time::sleep(Duration::from_secs(30)).await;
    settle_tasks().await;
    assert!(cache.get(&key("r")).is_some());
}

#[tokio::test]
async fn settled_probes_store_and_invalidation_notify_watchers() {
    let cache = ProbeCache::new();
    let mut changes = cache.subscribe();
    let _ = cache
        .get_or_probe(key("c"), WAIT, || {
            async { Err(ProbeError::Spawn("no".into())) }.boxed()
        })
        .await;
    settle_tasks().await;
    assert!(
        changes.has_changed().unwrap(),
        "a settled probe is announced"
    );
    changes.mark_unchanged();
    cache.store(key("c"), fake_probe("c"));
    assert!(changes.has_changed().unwrap());
    assert!(cache.get(&key("c")).is_some());
    changes.mark_unchanged();
    cache.store(key("c"), fake_probe("c"));
    assert!(
        !changes.has_changed().unwrap(),
        "the same answer again changes nothing"
    );
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
