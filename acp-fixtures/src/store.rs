//! Sessions that outlive the process: `--store DIR` keeps each session as a file.
//!
//! A session file is named after the session id; its first line is the session's `cwd`, every
//! further line a prompt the session received. `session/list` pages through the files (two per
//! page, so clients must follow `nextCursor`), `session/load` replays the prompts as
//! `user_message_chunk` updates, `session/resume` reopens silently, `session/delete` removes
//! the file. Without a store the same methods see only the process's own sessions.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

/// Sessions per `session/list` page.
pub const PAGE: usize = 2;

pub struct Store {
    dir: PathBuf,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Store {
    pub fn open(dir: &str) -> Store {
        let _ = std::fs::create_dir_all(dir);
        Store {
            dir: PathBuf::from(dir),
        }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        valid_id(id).then(|| self.dir.join(id))
    }

    pub fn create(&self, id: &str, cwd: &str) {
        if let Some(path) = self.path(id) {
            let _ = std::fs::write(path, format!("{}\n", cwd.replace('\n', " ")));
        }
    }

    pub fn record_prompt(&self, id: &str, text: &str) {
        let Some(path) = self.path(id) else { return };
        if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(file, "{}", text.replace('\n', " "));
        }
    }

    /// The session's cwd and prompts, if it exists.
    pub fn read(&self, id: &str) -> Option<(String, Vec<String>)> {
        let text = std::fs::read_to_string(self.path(id)?).ok()?;
        let mut lines = text.lines().map(str::to_owned);
        let cwd = lines.next()?;
        Some((cwd, lines.collect()))
    }

    pub fn delete(&self, id: &str) -> bool {
        self.path(id)
            .is_some_and(|p| std::fs::remove_file(p).is_ok())
    }

    /// One page of sessions, sorted by id, from `cursor` (an index).
    pub fn list(&self, cwd: Option<&str>, cursor: Option<&str>) -> Value {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        let sessions: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.read(id).map(|(c, prompts)| (id, c, prompts)))
            .filter(|(_, c, _)| cwd.is_none_or(|want| want == c))
            .map(|(id, c, prompts)| {
                let mut info = json!({"sessionId": id, "cwd": c});
                if let Some(first) = prompts.first() {
                    info["title"] = json!(first);
                }
                info
            })
            .collect();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let page: Vec<Value> = sessions.iter().skip(start).take(PAGE).cloned().collect();
        let mut result = json!({"sessions": page});
        if start + PAGE < sessions.len() {
            result["nextCursor"] = json!((start + PAGE).to_string());
        }
        result
    }
}
