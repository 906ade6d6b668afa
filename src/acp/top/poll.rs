//! Refreshing `acp top`: every interval, the daemons whose sockets are in the acp directory are
//! asked for their status at once, and the answers go to the view as one [`Snapshot`].
//!
//! A daemon that does not answer within [`query_timeout`] is reported as unreachable for that
//! refresh; it delays the refresh, never the keys. Nothing here changes the directory: a stale
//! socket stays (`acp list` removes those) and shows as unreachable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::model::{DaemonReport, Snapshot};
use crate::acp::{inspect, listing};

/// How long one daemon may take to answer: the interval, but at least two seconds.
pub fn query_timeout(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(2))
}

/// One refresh of every daemon in `acp_dir`.
pub async fn snapshot(acp_dir: &Path, timeout: Duration) -> Snapshot {
    let queries = listing::socket_endpoints(acp_dir)
        .into_iter()
        .map(|endpoint| async move {
            let status = inspect::query_within(&endpoint.socket, timeout)
                .await
                .map_err(|e| e.to_string());
            DaemonReport {
                name: endpoint.name,
                at: Instant::now(),
                status,
            }
        });
    Snapshot {
        daemons: futures::future::join_all(queries).await,
    }
}

/// Sends a snapshot of `acp_dir` at once and then every `interval`, until the receiver is gone.
pub fn spawn(acp_dir: PathBuf, interval: Duration) -> mpsc::Receiver<Snapshot> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let snapshot = snapshot(&acp_dir, query_timeout(interval)).await;
            if tx.send(snapshot).await.is_err() {
                return;
            }
        }
    });
    rx
}
