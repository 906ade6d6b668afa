//! The daemon's record of which agent session stands behind each proxy session id.
//!
//! A proxy session id maps to (agent, the agent's own session id, the model picked, the
//! session's `cwd`). The map is written atomically (mode 0600) to a file per endpoint whenever
//! it changes, off the hub's thread ([`Saver`]), so after a daemon restart an editor can
//! `session/load` or `session/resume` a conversation by the id it knows, and `session/list`
//! shows the same ids as before. Each session's transcript is a file beside the map, written
//! off the hub's thread too ([`writer`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::runtime::AgentName;
use super::saver::Saver;

mod writer;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub agent: AgentName,
    pub backend_sid: String,
    /// The last pick, `agent:model`.
    pub model: String,
    pub cwd: Option<String>,
}

type Records = Arc<Mutex<HashMap<String, SessionRecord>>>;

#[derive(Default)]
pub struct SessionStore {
    path: Option<PathBuf>,
    records: Records,
    /// Writes the map when it changes (where it is kept on disk).
    saver: Option<Saver>,
    transcripts: writer::Writer,
}

impl SessionStore {
    /// A store kept in `path` (loaded now if it exists), or only in memory.
    pub fn open(path: Option<PathBuf>) -> SessionStore {
        let records = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| match serde_json::from_str(&text) {
                Ok(records) => Some(records),
                Err(e) => {
                    tracing::warn!("ignoring an unreadable session map: {e}");
                    None
                }
            })
            .unwrap_or_default();
        let records: Records = Arc::new(Mutex::new(records));
        let saver = path.clone().map(|path| {
            let records = records.clone();
            Saver::durable(path, move || {
                let records = records.lock().unwrap_or_else(PoisonError::into_inner);
                serde_json::to_vec_pretty(&*records).ok()
            })
        });
        SessionStore {
            path,
            records,
            saver,
            transcripts: writer::Writer::default(),
        }
    }

    /// Waits until the files hold every change made so far: the map and the transcripts.
    pub fn flush(&self) {
        if let Some(saver) = &self.saver {
            saver.flush();
        }
        self.transcripts.flush();
    }

    pub fn get(&self, sid: &str) -> Option<SessionRecord> {
        self.records.lock().ok()?.get(sid).cloned()
    }

    /// The proxy id of an agent's session, if one was handed out.
    pub fn find(&self, agent: &AgentName, backend_sid: &str) -> Option<String> {
        let records = self.records.lock().ok()?;
        records
            .iter()
            .find(|(_, r)| r.agent == *agent && r.backend_sid == backend_sid)
            .map(|(sid, _)| sid.clone())
    }

    pub fn put(&self, sid: &str, record: SessionRecord) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        if records.get(sid) == Some(&record) {
            return;
        }
        records.insert(sid.to_owned(), record);
        drop(records);
        self.save();
    }

    pub fn remove(&self, sid: &str) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        if records.remove(sid).is_some() {
            drop(records);
            self.save();
        }
    }

    /// Where a session's transcript is kept: `<map>.transcripts/<sid>.json`, for ids that are
    /// safe as file names (the proxy's own always are).
    fn transcript_path(&self, sid: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        let safe = !sid.is_empty()
            && sid.len() <= 128
            && sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return None;
        }
        let mut dir = path.as_os_str().to_owned();
        dir.push(".transcripts");
        Some(PathBuf::from(dir).join(format!("{sid}.json")))
    }

    /// Saves a session's transcript (atomically, mode 0600), off the caller's thread. Whether
    /// it is kept: reading it back finds it from now on.
    pub fn save_transcript(&self, sid: &str, saved: crate::acp::transcript::Saved) -> bool {
        let Some(path) = self.transcript_path(sid) else {
            return false;
        };
        self.transcripts.write(path, saved);
        true
    }

    /// A session's saved transcript, if there is one that reads.
    pub fn load_transcript(&self, sid: &str) -> Option<crate::acp::transcript::Saved> {
        self.transcripts.read(&self.transcript_path(sid)?)
    }

    /// What reads a session's transcript back later (for a transcript parked on disk), where
    /// transcripts are kept on disk.
    pub fn transcript_loader(&self, sid: &str) -> Option<crate::acp::transcript::Loader> {
        let path = self.transcript_path(sid)?;
        let reader = self.transcripts.reader();
        Some(Box::new(move || reader.read(&path)))
    }

    /// Whether a session's last saved transcript could not be written (it is held in memory).
    pub fn transcript_unsaved(&self, sid: &str) -> bool {
        self.transcript_path(sid)
            .is_some_and(|path| self.transcripts.failed(&path))
    }

    pub fn remove_transcript(&self, sid: &str) {
        if let Some(path) = self.transcript_path(sid) {
            self.transcripts.remove(&path);
        }
    }

    fn save(&self) {
        if let Some(saver) = &self.saver {
            saver.touch();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(agent: &str, sid: &str) -> SessionRecord {
        SessionRecord {
            agent: AgentName::new(agent).unwrap(),
            backend_sid: sid.into(),
            model: format!("{agent}:m"),
            cwd: Some("/w".into()),
        }
    }

    #[test]
    fn survives_a_reopen_and_finds_by_agent_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions").join("c.json");
        let store = SessionStore::open(Some(path.clone()));
        store.put("terok-1", record("claude", "b-1"));
        store.put("terok-2", record("codex", "b-1"));
        store.flush();
        let reopened = SessionStore::open(Some(path.clone()));
        assert_eq!(reopened.get("terok-1"), Some(record("claude", "b-1")));
        assert_eq!(
            reopened
                .find(&AgentName::new("codex").unwrap(), "b-1")
                .as_deref(),
            Some("terok-2")
        );
        reopened.remove("terok-1");
        reopened.flush();
        assert_eq!(SessionStore::open(Some(path)).get("terok-1"), None);
    }

    #[test]
    fn a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(SessionStore::open(Some(path)).get("x"), None);
    }
}
