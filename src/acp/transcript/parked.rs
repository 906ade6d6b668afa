//! A transcript whose entries wait on disk.
//!
//! A detached session with no turn running needs its record only when a client comes back for
//! it, so its entries leave memory for a file: the transcript keeps what `status`
//! and `session/list` show (its size, its title) and a way to read the entries back. Frames
//! that arrive meanwhile go to the raw tail as always; the first thing that needs the entries
//! (a fold, a replay, a save) reads them back first.

use super::{Saved, Transcript};

/// Reads a parked transcript's entries back from where they were saved.
pub type Loader = Box<dyn FnOnce() -> Option<Saved> + Send>;

/// What a parked transcript keeps in memory.
pub(super) struct Parked {
    loader: Loader,
    bytes: usize,
    title: Option<String>,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("bytes", &self.bytes)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl Transcript {
    /// Lets the entries go from memory, to be read back by `loader` when they are needed, and
    /// hands them to the caller, who saves them where `loader` reads. Nothing while there is
    /// nothing to keep. Allocations go too, the tail's included.
    pub fn park(&mut self, loader: Loader) -> Option<Saved> {
        if self.is_parked() {
            return None;
        }
        // What arrived since an earlier park joins the entries read back.
        self.unpark();
        self.fold();
        if self.entries.is_empty() {
            return None;
        }
        let title = self.title();
        let whole = std::mem::replace(self, Transcript::new(self.budget));
        self.dropped = whole.dropped;
        self.parked = Some(Parked {
            loader,
            bytes: whole.bytes,
            title,
        });
        Some(Saved {
            entries: whole.entries.into_iter().map(|(entry, _)| entry).collect(),
            dropped: whole.dropped,
        })
    }

    /// Whether the entries are on disk, and nothing has arrived since.
    pub fn is_parked(&self) -> bool {
        self.parked.is_some() && self.tail_ends.is_empty()
    }

    /// Reads parked entries back (before anything that needs them). Entries that cannot be
    /// read are lost, with a warning; what arrived meanwhile stays.
    #[cold]
    pub(super) fn unpark(&mut self) {
        let Some(parked) = self.parked.take() else {
            return;
        };
        let Some(saved) = (parked.loader)() else {
            tracing::warn!("a parked transcript could not be read back; it starts anew");
            return;
        };
        let tail = std::mem::take(&mut self.tail);
        let tail_ends = std::mem::take(&mut self.tail_ends);
        *self = Transcript::restore(saved, self.budget);
        self.tail = tail;
        self.tail_ends = tail_ends;
    }

    /// The size a parked transcript had, if it is parked.
    pub(super) fn parked_bytes(&self) -> Option<usize> {
        self.parked.as_ref().map(|p| p.bytes)
    }

    /// The title a parked transcript had, while nothing has arrived since.
    pub(super) fn parked_title(&self) -> Option<Option<String>> {
        self.is_parked()
            .then(|| self.parked.as_ref().and_then(|p| p.title.clone()))
    }
}
