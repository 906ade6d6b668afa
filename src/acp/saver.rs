//! Small state files kept current off the hub's thread.
//!
//! The hub changes what some files should hold on the path of a client's request: the session
//! map when a session binds, the `.bound` marker that `acp list` reads. Writing them there, with
//! a temporary file, an `fsync` and a rename, held the request and every stream behind the disk
//! (about a millisecond per bind here). A [`Saver`] only marks its file stale; a thread of its
//! own then renders the latest state and writes it, as often as the disk keeps up, so a burst
//! of changes costs one write of the last. [`Saver::flush`] waits until the file is current
//! (at shutdown, and before anything reads the file back).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// What the file should hold now: its bytes, or `None` for no file.
type Render = Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>;

/// A file rewritten in the background from the latest state.
pub struct Saver {
    shared: Arc<Shared>,
    worker: Worker,
}

struct Shared {
    path: PathBuf,
    /// Synced before it replaces the old file, with its directory made (mode 0700) when
    /// missing; else a marker whose directory exists and that need not survive a crash.
    durable: bool,
    render: Render,
    state: Mutex<State>,
    /// The thread waits here for work.
    stale: Condvar,
    /// Flushes wait here for the file to be current.
    current: Condvar,
}

#[derive(Default)]
struct State {
    stale: bool,
    writing: bool,
    closing: bool,
}

impl Saver {
    /// A file that must survive a crash (mode 0600; its directory made when missing).
    pub fn durable(
        path: PathBuf,
        render: impl Fn() -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Saver {
        Saver::new(path, true, Box::new(render))
    }

    /// A marker for other processes to read (mode 0600, in a directory that exists), not
    /// synced: it describes a running daemon and goes with it.
    pub fn marker(
        path: PathBuf,
        render: impl Fn() -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Saver {
        Saver::new(path, false, Box::new(render))
    }

    fn new(path: PathBuf, durable: bool, render: Render) -> Saver {
        Saver {
            shared: Arc::new(Shared {
                path,
                durable,
                render,
                state: Mutex::default(),
                stale: Condvar::new(),
                current: Condvar::new(),
            }),
            worker: Worker::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Marks the file stale: the thread writes the state as it is then (started on the first
    /// call). Cheap, and never waits for the disk.
    pub fn touch(&self) {
        self.shared.lock().stale = true;
        self.shared.stale.notify_one();
        if !self.worker.ensure("terok-saver", &self.shared, Shared::run) {
            self.shared.lock().stale = false;
            self.shared.write();
        }
    }

    /// Waits until the file holds the state of the last [`Saver::touch`] (or its write failed,
    /// with a warning).
    pub fn flush(&self) {
        let mut state = self.shared.lock();
        if !self.worker.running() {
            // Nothing will write it but this call.
            if std::mem::take(&mut state.stale) {
                drop(state);
                self.shared.write();
            }
            return;
        }
        while state.stale || state.writing {
            state = self
                .shared
                .current
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Saver {
    /// Writes what is still stale, then ends the thread.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.stale.notify_one();
        self.worker.join();
    }
}

/// The thread behind a [`Saver`] or the transcripts' writer: started on first use, joined when
/// its owner goes (after telling it to end).
#[derive(Default)]
pub(crate) struct Worker(Mutex<Option<JoinHandle<()>>>);

impl Worker {
    /// Starts `run(shared)` on a thread named `name` unless one was started. False when no
    /// thread can be started: the caller then does the work in place.
    pub(crate) fn ensure<S: Send + Sync + 'static>(
        &self,
        name: &str,
        shared: &Arc<S>,
        run: fn(&S),
    ) -> bool {
        let mut thread = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_some() {
            return true;
        }
        let shared = shared.clone();
        match std::thread::Builder::new()
            .name(name.into())
            .stack_size(256 * 1024)
            .spawn(move || run(&shared))
        {
            Ok(handle) => {
                *thread = Some(handle);
                true
            }
            Err(e) => {
                tracing::warn!("cannot start the {name} thread ({e}); writing in place");
                false
            }
        }
    }

    /// Whether a thread runs that will do what is queued.
    pub(crate) fn running(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Waits for the thread to end; false when none was started.
    pub(crate) fn join(&mut self) -> bool {
        let thread = self
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        thread.map(JoinHandle::join).is_some()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            while !state.stale && !state.closing {
                state = self
                    .stale
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !state.stale {
                return;
            }
            state.stale = false;
            state.writing = true;
            drop(state);
            self.write();
            state = self.lock();
            state.writing = false;
            self.current.notify_all();
        }
    }

    /// Writes the state as it is now (or removes the file); a failure is a warning.
    fn write(&self) {
        let result = match (self.render)() {
            Some(bytes) if self.durable => crate::fsutil::write_private(&self.path, &bytes, 0o600),
            Some(bytes) => crate::fsutil::write_atomic_unsynced(&self.path, &bytes, 0o600),
            None => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), "cannot save: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_flush_finds_the_last_state_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("n.json");
        let value = Arc::new(AtomicUsize::new(0));
        let renders = Arc::new(AtomicUsize::new(0));
        let saver = {
            let (value, renders) = (value.clone(), renders.clone());
            Saver::durable(path.clone(), move || {
                renders.fetch_add(1, Ordering::SeqCst);
                Some(value.load(Ordering::SeqCst).to_string().into_bytes())
            })
        };
        for n in 1..=500 {
            value.store(n, Ordering::SeqCst);
            saver.touch();
        }
        saver.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "500");
        // A burst is written far fewer times than it was touched.
        assert!(renders.load(Ordering::SeqCst) < 500);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn no_state_removes_the_file_and_a_drop_writes_what_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bound");
        let present = Arc::new(Mutex::new(Some("a")));
        let saver = {
            let present = present.clone();
            Saver::marker(path.clone(), move || {
                present.lock().unwrap().map(|s| s.as_bytes().to_vec())
            })
        };
        saver.touch();
        saver.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a");
        *present.lock().unwrap() = None;
        saver.touch();
        saver.flush();
        assert!(!path.exists());
        *present.lock().unwrap() = Some("b");
        saver.touch();
        drop(saver);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b");
    }

    #[test]
    fn a_marker_is_not_written_where_its_directory_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("m.bound");
        let saver = Saver::marker(path.clone(), || Some(b"x".to_vec()));
        saver.touch();
        saver.flush();
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn a_flush_without_a_touch_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        let saver = Saver::durable(path.clone(), || Some(b"x".to_vec()));
        saver.flush();
        drop(saver);
        assert!(!path.exists());
    }
}
