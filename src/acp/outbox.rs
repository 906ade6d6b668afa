//! Per-peer writers that never block the proxy.
//!
//! Each peer's write half is owned by its own task, fed through an unbounded channel of byte
//! batches; [`Outbox::send`] never waits, so the connection task can never deadlock on a peer
//! that stops reading. Flow control is by watermark instead: the outbox counts the bytes it
//! holds, and whoever produces for it (a backend's stdout pump) calls [`Outbox::wait_for_room`]
//! before reading more, which stalls that producer, and through its pipe the agent, until the
//! peer drains. When the last sender is dropped the task flushes and half-closes the stream.
//!
//! A client's socket gets a shortcut ([`Outbox::spawn_socket`]): while nothing is queued, the
//! sender writes to the socket itself, without a wake-up of the writer task, and queues only
//! what the socket would not take at once; the writer task then writes the queue with `writev`.
//! Bytes still leave in order, since the shortcut is taken only when the queue is empty.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
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
    /// The socket, for writing directly while nothing is queued.
    direct: Option<Arc<OwnedWriteHalf>>,
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
        Outbox {
            tx,
            level,
            direct: None,
        }
    }

    /// The outbox of a Unix socket, written directly by [`Outbox::send`] while nothing is
    /// queued. The socket's write side closes when the outbox and its task are both gone.
    pub fn spawn_socket(socket: OwnedWriteHalf, tracker: &TaskTracker, label: String) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        let level = Arc::new(Level::default());
        let socket = Arc::new(socket);
        tracker.spawn(socket_loop(socket.clone(), rx, level.clone(), label));
        Outbox {
            tx,
            level,
            direct: Some(socket),
        }
    }

    /// Sends bytes to the peer: at once when the socket takes them and nothing is queued,
    /// else through the writer task. Returns `false` when the peer's writer is gone.
    pub fn send(&self, mut bytes: Bytes) -> bool {
        if bytes.is_empty() {
            return true;
        }
        if let Some(socket) = &self.direct {
            // Acquire: the writer's last write is done once the queue reads empty.
            if self.level.queued.load(Ordering::Acquire) == 0 && !self.is_closed() {
                match socket.try_write(&bytes) {
                    Ok(n) if n == bytes.len() => return true,
                    Ok(n) => bytes = bytes.slice(n..),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.level.closed.store(true, Ordering::Relaxed);
                        self.level.drained.notify_waiters();
                        return false;
                    }
                }
            }
        }
        self.level.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let len = bytes.len();
        if self.tx.send(bytes).is_err() {
            self.level.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// [`Outbox::send`] for a batch in pieces (slices of frames as they were read, and what
    /// is spliced between them): written with `writev` at once when nothing is queued, the
    /// rest queued in order. Returns `false` when the peer's writer is gone.
    pub fn send_all(&self, mut pieces: Vec<Bytes>) -> bool {
        pieces.retain(|p| !p.is_empty());
        let mut first = 0;
        if let Some(socket) = &self.direct {
            if self.level.queued.load(Ordering::Acquire) == 0 && !self.is_closed() {
                let slices: Vec<std::io::IoSlice<'_>> = pieces
                    .iter()
                    .take(MAX_SLICES)
                    .map(|p| std::io::IoSlice::new(p))
                    .collect();
                match socket.try_write_vectored(&slices) {
                    Ok(n) => advance(&mut pieces, &mut first, n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.level.closed.store(true, Ordering::Relaxed);
                        self.level.drained.notify_waiters();
                        return false;
                    }
                }
            }
        }
        for piece in pieces.drain(first..) {
            let len = piece.len();
            self.level.queued.fetch_add(len, Ordering::Relaxed);
            if self.tx.send(piece).is_err() {
                self.level.queued.fetch_sub(len, Ordering::Relaxed);
                return false;
            }
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

/// [`write_loop`] for a socket shared with [`Outbox::send`]: each wake-up writes everything
/// queued with `writev`.
async fn socket_loop(
    socket: Arc<OwnedWriteHalf>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    level: Arc<Level>,
    label: String,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let total: usize = batch.iter().map(Bytes::len).sum();
        if let Err(e) = write_vectored_all(&socket, &mut batch).await {
            tracing::debug!(peer = %label, "write failed: {e}");
            level.queued.fetch_sub(total, Ordering::Release);
            break;
        }
        // Release: a sender that reads the queue empty finds these bytes written.
        let before = level.queued.fetch_sub(total, Ordering::Release);
        if before >= LOW_WATER && before - total < LOW_WATER {
            level.drained.notify_waiters();
        }
    }
    level.closed.store(true, Ordering::Relaxed);
    level.drained.notify_waiters();
}

/// Writes every buffer of `batch`, in order, as few `writev`s as the socket allows; empties it.
async fn write_vectored_all(
    socket: &OwnedWriteHalf,
    batch: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < batch.len() {
        socket.writable().await?;
        let slices: Vec<std::io::IoSlice<'_>> = batch[first..]
            .iter()
            .take(MAX_SLICES)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        match socket.try_write_vectored(&slices) {
            Ok(n) => advance(batch, &mut first, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    batch.clear();
    Ok(())
}

/// Buffers handed to one `writev`.
const MAX_SLICES: usize = 64;

/// Takes `written` bytes off the front of `batch[*first..]`: whole buffers by moving `first`
/// past them, the last one partly by slicing it.
fn advance(batch: &mut [Bytes], first: &mut usize, mut written: usize) {
    while written > 0 && *first < batch.len() {
        let len = batch[*first].len();
        if written >= len {
            written -= len;
            *first += 1;
        } else {
            batch[*first] = batch[*first].slice(written..);
            written = 0;
        }
    }
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
    async fn pieces_and_batches_arrive_in_order_through_a_full_socket() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = a.into_split();
        let tracker = TaskTracker::new();
        let outbox = Outbox::spawn_socket(write, &tracker, "test".into());
        let mut expected = Vec::new();
        // Far more than the socket holds, so that writes are partial and the rest queues.
        for i in 0..400usize {
            if i % 3 == 0 {
                let batch = Bytes::from(format!("batch {i}\n"));
                expected.extend_from_slice(&batch);
                assert!(outbox.send(batch));
            } else {
                let big = Bytes::from(vec![b'a' + (i % 26) as u8; 1000 + i * 37]);
                let pieces = vec![
                    big.slice(..100),
                    Bytes::from(format!("<{i}>")),
                    Bytes::new(),
                    big.slice(100..),
                    Bytes::from_static(b"\n"),
                ];
                for piece in &pieces {
                    expected.extend_from_slice(piece);
                }
                assert!(outbox.send_all(pieces));
            }
        }
        drop(outbox);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        tracker.close();
        tracker.wait().await;
        let all = reader.await.unwrap();
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "bytes arrived out of order");
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
