//! Transcripts written to disk off the hub's thread.
//!
//! A session's transcript is saved when its client leaves (and then leaves memory), when a
//! detached turn ends, when the session closes and at shutdown. Serialising up to a megabyte and
//! syncing the file in the hub held every stream of the daemon for milliseconds each time an
//! editor went away. The [`Writer`] takes the saved record and writes it on a thread of its own;
//! until then the record stays here, so reading a transcript back is always exact and never
//! waits for the disk: a record still waiting or being written is copied from here, and a
//! record whose write failed is kept in memory (with a warning) rather than lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::acp::saver::Worker;
use crate::acp::transcript::Saved;

/// The daemon's transcript files, written in the background.
#[derive(Default)]
pub struct Writer {
    shared: Arc<Shared>,
    worker: Worker,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The thread waits here for work.
    work: Condvar,
    /// Flushes wait here for a write to end.
    written: Condvar,
}

#[derive(Default)]
struct State {
    /// Records to write, the latest per file (a newer save replaces one still waiting).
    waiting: HashMap<PathBuf, Arc<Saved>>,
    /// The record being written, and its file.
    writing: Option<(PathBuf, Arc<Saved>)>,
    /// Records whose write failed: kept, so that nothing is lost.
    failed: HashMap<PathBuf, Arc<Saved>>,
    /// The record being written was removed meanwhile: its file goes when the write ends.
    doomed: bool,
    closing: bool,
}

impl Writer {
    /// Queues `saved` for `path` and returns at once.
    pub fn write(&self, path: PathBuf, saved: Saved) {
        let mut state = self.shared.lock();
        state.failed.remove(&path);
        state.waiting.insert(path, Arc::new(saved));
        drop(state);
        self.shared.work.notify_one();
        self.start();
    }

    fn start(&self) {
        if !self
            .worker
            .ensure("terok-transcripts", &self.shared, Shared::run)
        {
            self.shared.drain();
        }
    }

    /// The record saved at `path`: the newest one queued, else the file's.
    pub fn read(&self, path: &Path) -> Option<Saved> {
        self.shared.read(path)
    }

    /// Reads records back like [`Writer::read`], from anywhere (a parked transcript's loader).
    pub fn reader(&self) -> Reader {
        Reader(self.shared.clone())
    }

    /// Whether the last record for `path` could not be written (and is held in memory).
    pub fn failed(&self, path: &Path) -> bool {
        self.shared.lock().failed.contains_key(path)
    }

    /// Forgets the record at `path`, queued or on disk (a write under way is undone when it
    /// ends, by the writer).
    pub fn remove(&self, path: &Path) {
        let mut state = self.shared.lock();
        state.waiting.remove(path);
        state.failed.remove(path);
        if state.writing.as_ref().is_some_and(|(p, _)| p == path) {
            state.doomed = true;
            return;
        }
        drop(state);
        let _ = std::fs::remove_file(path);
    }

    /// Waits until every record queued so far is written (or has failed).
    pub fn flush(&self) {
        if !self.worker.running() {
            return self.shared.drain();
        }
        let mut state = self.shared.lock();
        while !state.waiting.is_empty() || state.writing.is_some() {
            state = self.shared.wait_written(state);
        }
    }
}

impl Drop for Writer {
    /// Writes what is queued, then ends the thread.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if !self.worker.join() {
            self.shared.drain();
        }
    }
}

/// A handle that reads records back, queued or on disk.
pub struct Reader(Arc<Shared>);

impl Reader {
    pub fn read(&self, path: &Path) -> Option<Saved> {
        self.0.read(path)
    }
}

impl Shared {
    /// Never waits for the disk: a record not written yet is copied from here.
    fn read(&self, path: &Path) -> Option<Saved> {
        let state = self.lock();
        let in_flight = state.writing.as_ref().is_some_and(|(p, _)| p == path);
        if in_flight && state.doomed {
            return None;
        }
        let held = state
            .waiting
            .get(path)
            .or_else(|| {
                state
                    .writing
                    .as_ref()
                    .filter(|(p, _)| p == path)
                    .map(|(_, s)| s)
            })
            .or_else(|| state.failed.get(path));
        if let Some(saved) = held {
            return Some(Saved::clone(saved));
        }
        drop(state);
        read_file(path)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_written<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.written
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            while state.waiting.is_empty() && !state.closing {
                state = self
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.waiting.is_empty() {
                return;
            }
            state = self.write_one(state);
        }
    }

    /// Writes every waiting record on the calling thread.
    fn drain(&self) {
        let mut state = self.lock();
        while !state.waiting.is_empty() {
            state = self.write_one(state);
        }
    }

    /// Writes one waiting record, the lock released meanwhile.
    fn write_one<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let Some(path) = state.waiting.keys().next().cloned() else {
            return state;
        };
        let Some(saved) = state.waiting.remove(&path) else {
            return state;
        };
        state.writing = Some((path.clone(), saved.clone()));
        drop(state);
        let result = serde_json::to_vec(&*saved)
            .map_err(std::io::Error::other)
            .and_then(|json| crate::fsutil::write_private(&path, &json, 0o600));
        let mut state = self.lock();
        state.writing = None;
        if std::mem::take(&mut state.doomed) {
            let _ = std::fs::remove_file(&path);
            self.written.notify_all();
            return state;
        }
        match result {
            Ok(()) => {
                drop(saved);
                // A parked transcript's entries were here until now.
                crate::alloc::give_back();
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot save a transcript (kept in memory): {e}");
                state.failed.insert(path, saved);
            }
        }
        self.written.notify_all();
        state
    }
}

/// A transcript file, if it reads.
fn read_file(path: &Path) -> Option<Saved> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(saved) => Some(saved),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring an unreadable transcript: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acp::transcript::Entry;
    use serde_json::json;

    fn saved(text: &str) -> Saved {
        Saved {
            entries: vec![Entry::Update {
                update: json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}),
            }],
            dropped: 0,
        }
    }

    fn text(saved: &Saved) -> String {
        match &saved.entries[0] {
            Entry::Update { update } => update["content"]["text"].as_str().unwrap().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_record_reads_back_the_same_whether_written_yet_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::default();
        let paths: Vec<PathBuf> = (0..20)
            .map(|i| dir.path().join("t").join(format!("{i}.json")))
            .collect();
        for (i, path) in paths.iter().enumerate() {
            writer.write(path.clone(), saved(&format!("first {i}")));
            writer.write(path.clone(), saved(&format!("second {i}")));
            // Right away: from the queue or from the file, never the first save.
            assert_eq!(text(&writer.read(path).unwrap()), format!("second {i}"));
        }
        writer.flush();
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(text(&read_file(path).unwrap()), format!("second {i}"));
        }
        writer.remove(&paths[0]);
        assert!(!paths[0].exists());
        assert!(writer.read(&paths[0]).is_none());
    }

    #[test]
    fn a_removed_record_stays_removed_whenever_the_removal_comes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::default();
        // Removals land while the record waits, while it is written, or after.
        for i in 0..50 {
            let path = dir.path().join(format!("{i}.json"));
            writer.write(path.clone(), saved("gone"));
            if i % 2 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200 * (i % 7)));
            }
            writer.remove(&path);
            assert!(writer.read(&path).is_none());
        }
        writer.flush();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_record_that_cannot_be_written_is_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the record's directory would be: the write fails.
        std::fs::write(dir.path().join("blocked"), "").unwrap();
        let path = dir.path().join("blocked").join("s.json");
        let writer = Writer::default();
        writer.write(path.clone(), saved("kept"));
        writer.flush();
        assert!(!path.exists());
        assert!(writer.failed(&path));
        assert_eq!(text(&writer.read(&path).unwrap()), "kept");
        writer.remove(&path);
        assert!(writer.read(&path).is_none());
    }

    #[test]
    fn dropping_the_writer_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let writer = Writer::default();
        writer.write(path.clone(), saved("last"));
        drop(writer);
        assert_eq!(text(&read_file(&path).unwrap()), "last");
    }
}
