//! Per-peer writers that never block the proxy.
//!
//! Each peer's write half is owned by its own task, fed through an unbounded channel of byte
//! batches; [`Outbox::send`] never waits, so the connection task can never deadlock on a peer
//! that stops reading. Flow control is by watermark instead: the outbox counts the bytes it
//! holds, and whoever produces for it (a backend's stdout pump) calls [`Outbox::wait_for_room`]
//! before reading more, which stalls that producer, and through its pipe the agent, until the
//! peer drains. When the last sender is dropped the task flushes and half-closes the stream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;

/// Above this many queued bytes producers pause.
const HIGH_WATER: usize = 256 * 1024;
/// Producers resume when the queue has drained below this.
const LOW_WATER: usize = 64 * 1024;

#[derive(Default)]
struct Level {
    queued: AtomicUsize,
    drained: Notify,
    closed: AtomicBool,
}

/// A handle to a peer's writer task.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    level: Arc<Level>,
}

impl Outbox {
    /// Starts the writer task for `writer` on `tracker`.
    pub fn spawn<W>(writer: W, tracker: &TaskTracker, label: String) -> Outbox
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let level = Arc::new(Level::default());
        tracker.spawn(write_loop(writer, rx, level.clone(), label));
        Outbox { tx, level }
    }

    /// Queues bytes for the peer. Returns `false` when the peer's writer is gone.
    pub fn send(&self, bytes: Bytes) -> bool {
        if bytes.is_empty() {
            return true;
        }
        self.level.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let len = bytes.len();
        if self.tx.send(bytes).is_err() {
            self.level.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.level.queued.load(Ordering::Relaxed)
    }

    /// Whether the writer has stopped (the peer went away or a write failed).
    pub fn is_closed(&self) -> bool {
        self.level.closed.load(Ordering::Relaxed)
    }

    /// A cheap handle for producers to wait on.
    pub fn gauge(&self) -> Gauge {
        Gauge(self.level.clone())
    }
}

/// Lets a producer wait until the outbox has room, without holding a sender.
#[derive(Clone)]
pub struct Gauge(Arc<Level>);

impl Gauge {
    /// Waits until the writer has stopped (the peer went away or a write failed).
    pub async fn closed(&self) {
        loop {
            let drained = self.0.drained.notified();
            if self.0.closed.load(Ordering::Relaxed) {
                return;
            }
            drained.await;
        }
    }

    /// Returns at once while the queue is below the high-water mark; otherwise waits until it
    /// has drained below the low-water mark (or the writer is gone).
    pub async fn wait_for_room(&self) {
        if self.0.queued.load(Ordering::Relaxed) < HIGH_WATER {
            return;
        }
        loop {
            let drained = self.0.drained.notified();
            if self.0.queued.load(Ordering::Relaxed) < LOW_WATER
                || self.0.closed.load(Ordering::Relaxed)
            {
                return;
            }
            drained.await;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    level: Arc<Level>,
    label: String,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(64);
    'outer: while rx.recv_many(&mut batch, 64).await > 0 {
        let mut written = 0;
        for bytes in batch.drain(..) {
            written += bytes.len();
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::debug!(peer = %label, "write failed: {e}");
                level.queued.fetch_sub(written, Ordering::Relaxed);
                break 'outer;
            }
        }
        if rx.is_empty() {
            if let Err(e) = writer.flush().await {
                tracing::debug!(peer = %label, "flush failed: {e}");
                level.queued.fetch_sub(written, Ordering::Relaxed);
                break;
            }
        }
        let before = level.queued.fetch_sub(written, Ordering::Relaxed);
        if before >= LOW_WATER && before - written < LOW_WATER {
            level.drained.notify_waiters();
        }
    }
    level.closed.store(true, Ordering::Relaxed);
    level.drained.notify_waiters();
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_arrive_in_order_and_stream_is_half_closed() {
        let (a, mut b) = tokio::io::duplex(64);
        let tracker = TaskTracker::new();
        let outbox = Outbox::spawn(a, &tracker, "test".into());
        for i in 0..100 {
            assert!(outbox.send(Bytes::from(format!("{i}\n"))));
        }
        drop(outbox);
        let mut all = String::new();
        b.read_to_string(&mut all).await.unwrap();
        let expected: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(all, expected);
    }

    #[tokio::test]
    async fn gauge_waits_while_the_peer_does_not_read() {
        let (a, mut b) = tokio::io::duplex(1024);
        let tracker = TaskTracker::new();
        let outbox = Outbox::spawn(a, &tracker, "test".into());
        outbox.send(Bytes::from(vec![b'x'; HIGH_WATER + 1]));
        let gauge = outbox.gauge();
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(100), gauge.wait_for_room())
                .await;
        assert!(
            waiting.is_err(),
            "producer must pause above the high-water mark"
        );
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            b.read_to_end(&mut sink).await.unwrap();
            sink.len()
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), gauge.wait_for_room())
            .await
            .unwrap();
        drop(outbox);
        assert_eq!(reader.await.unwrap(), HIGH_WATER + 1);
    }
}
