//! The per-container daemon: socket lifecycle around [`serve`].
//!
//! Start-up creates the socket's directory (0700) when it is missing, claims `<socket>.lock` (so
//! two daemons started at once cannot both serve), exits quietly if a live daemon already accepts
//! on the socket, removes a stale one, and binds with umask 077. It then serves until
//! SIGTERM/SIGINT or until the container stops, and shuts down in order: stop accepting, end
//! connections (which ends their backends), wait for tasks with a bound, remove the `.bound`
//! marker, the socket, the lock file, and the directories start-up created if they are empty.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};

use super::proxy::serve_connection;
use super::runtime::Runtime;
use super::server::{ProxyConfig, Server};

/// How long a connect to an existing socket may take before it counts as stale.
const LIVENESS_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the daemon checks that its socket is still there.
const SOCKET_WATCH: Duration = Duration::from_secs(1);
/// How long shutdown waits for connections and backends to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to replace {0}: it exists and is not a socket")]
    NotASocket(PathBuf),
    #[error("cannot bind {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(String),
}

/// How a daemon run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Another daemon already serves the socket.
    AlreadyServed,
    /// Served until a signal or the container stopped.
    Stopped,
}

/// Whether a daemon accepts connections on `path`.
pub async fn socket_is_live(path: &Path) -> bool {
    matches!(
        tokio::time::timeout(LIVENESS_TIMEOUT, UnixStream::connect(path)).await,
        Ok(Ok(_))
    )
}

/// Owns a claimed socket path: dropping it removes the socket (if it is still the one this
/// daemon bound), the lock file, and then the directories the claim created, while empty.
pub struct SocketGuard {
    path: PathBuf,
    inode: u64,
    _lock: Flock<File>,
    lock_path: PathBuf,
    /// Dropped after the files above are gone (fields drop after `drop` and in order), so a
    /// directory holding nothing else is empty by then.
    _dirs: crate::fsutil::CreatedDirs,
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Claims and binds `path`, or returns `None` when a live daemon already serves it.
pub async fn claim_socket(path: &Path) -> Result<Option<(UnixListener, SocketGuard)>, DaemonError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let lock_path = sibling(path, "lock");
    // A daemon stopping in the same directory removes it once it is empty, which it may be
    // between our making sure it exists and our lock file appearing in it: then make it again.
    let mut attempts = 3;
    let (dirs, lock_file) = loop {
        let dirs =
            crate::fsutil::create_private_dirs(dir).map_err(|source| DaemonError::Directory {
                path: dir.to_owned(),
                source,
            })?;
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path);
        attempts -= 1;
        match opened {
            Ok(file) => break (dirs, file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts > 0 => {}
            Err(source) => {
                return Err(DaemonError::Lock {
                    path: lock_path,
                    source,
                })
            }
        }
    };
    let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            // Another daemon is starting or serving; give it a moment to bind.
            for _ in 0..50 {
                if socket_is_live(path).await {
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Err(DaemonError::Lock {
                path: lock_path,
                source: std::io::Error::other(
                    "held by another daemon that does not serve its socket",
                ),
            });
        }
        Err((_, errno)) => {
            return Err(DaemonError::Lock {
                path: lock_path,
                source: errno.into(),
            })
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(DaemonError::NotASocket(path.to_owned()));
        }
        if socket_is_live(path).await {
            return Ok(None);
        }
        tracing::info!(socket = %path.display(), "removing a stale socket");
        let _ = std::fs::remove_file(path);
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = match bound {
        Ok(listener) => listener,
        Err(source) => {
            // Ours while we hold it; leaving it would keep a directory we made from going again.
            let _ = std::fs::remove_file(&lock_path);
            return Err(DaemonError::Bind {
                path: path.to_owned(),
                source,
            });
        }
    };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    let inode = std::fs::symlink_metadata(path)
        .map(|m| m.ino())
        .unwrap_or(0);
    Ok(Some((
        listener,
        SocketGuard {
            path: path.to_owned(),
            inode,
            _lock: lock,
            lock_path,
            _dirs: dirs,
        },
    )))
}

/// `<dir>/<stem>.<ext>` next to the socket `<dir>/<stem>.sock`.
pub fn sibling(socket: &Path, ext: &str) -> PathBuf {
    let stem = socket
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    let mut name = stem;
    name.push(".");
    name.push(ext);
    socket.with_file_name(name)
}

/// Accepts connections until the server's shutdown token fires, then waits (bounded) for every
/// connection and backend task to end.
pub async fn serve(listener: UnixListener, server: Arc<Server>) {
    let hub = super::proxy::spawn_hub(server.clone());
    loop {
        tokio::select! {
            _ = server.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // A panic in a connection's reader ends that connection only; the hub sees it
                    // go and detaches its sessions.
                    let connection =
                        AssertUnwindSafe(serve_connection(server.clone(), hub.clone(), stream))
                            .catch_unwind();
                    server.tracker.spawn(async move {
                        if let Err(panic) = connection.await {
                            let message = super::proxy::panic_message(&*panic);
                            tracing::error!("a connection task panicked: {message}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    server.tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, server.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not finish within {SHUTDOWN_GRACE:?}");
    }
    server.trace.finish();
}

/// Runs a daemon for `runtime` on `socket` until a signal or the container stops.
pub async fn run(
    runtime: Arc<dyn Runtime>,
    socket: &Path,
    mut config: ProxyConfig,
) -> Result<Outcome, DaemonError> {
    if !runtime.is_alive().await {
        return Err(DaemonError::Runtime(format!(
            "container {} is not running",
            runtime.describe()
        )));
    }
    let Some((listener, guard)) = claim_socket(socket).await? else {
        tracing::info!(socket = %socket.display(), "another daemon already serves this socket");
        return Ok(Outcome::AlreadyServed);
    };
    if config.bound_file.is_none() {
        config.bound_file = Some(sibling(socket, "bound"));
    }
    if config.cache_dir.is_none() {
        config.cache_dir = Some(super::endpoint::state_dir().join("acp-cache"));
    }
    if config.sessions_file.is_none() {
        let name = socket
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "acp".into());
        config.sessions_file = Some(
            super::endpoint::state_dir()
                .join("acp-sessions")
                .join(format!("{name}.json")),
        );
    }
    let server = Server::new(runtime.clone(), config);
    tracing::info!(socket = %guard.path().display(), container = %runtime.describe(), "serving");
    server.warm_up();

    let (watcher, watched) = (server.clone(), runtime.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = watcher.shutdown.cancelled() => {}
            _ = watched.stopped() => {
                tracing::info!(container = %watched.describe(), "container stopped; shutting down");
                watcher.stop(format!("container {} stopped", watched.describe()));
            }
        }
    });
    // A socket removed (or replaced) under the daemon can no longer be reached: step down, so
    // the next `acp connect` starts a daemon that can.
    let (shutdown, watched, inode) = (server.shutdown.clone(), socket.to_owned(), guard.inode);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SOCKET_WATCH) => {}
            }
            if !std::fs::symlink_metadata(&watched).is_ok_and(|m| m.ino() == inode) {
                tracing::warn!(socket = %watched.display(), "the socket was removed; shutting down");
                shutdown.cancel();
                return;
            }
        }
    });
    let shutdown = server.shutdown.clone();
    tokio::spawn(async move {
        if wait_for_signal().await.is_ok() {
            tracing::info!("signal received; shutting down");
        }
        shutdown.cancel();
    });

    serve(listener, server.clone()).await;
    // The marker first: the guard then finds the directory empty if it made it.
    server.clear_bound();
    drop(guard);
    if tokio::time::timeout(SHUTDOWN_GRACE, runtime.drain())
        .await
        .is_err()
    {
        tracing::warn!("some agents did not end within {SHUTDOWN_GRACE:?}");
    }
    Ok(Outcome::Stopped)
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
