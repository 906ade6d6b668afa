//! A session as its client saw it: the record the daemon replays to a client that reattaches.
//!
//! Entries are `session/update` payloads (`update` objects) in the order the client received
//! them, plus the end of each turn with its stop reason. The record is kept compact: consecutive
//! text chunks of one kind are merged, a tool call is kept once at its latest state (updates are
//! folded into it), and state-like updates (plan, mode, options, commands, session info) replace
//! their previous value where that loses nothing a replay needs.
//!
//! Recording sits on the streaming path, so agent frames are not parsed when they pass: they are
//! kept as raw bytes in a short tail and folded into entries when a turn ends, when the tail
//! grows past a limit, or when someone reads the record. A transcript never holds more than
//! its byte budget: the oldest entries go first, and the count of what went is kept.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::frame::{scanned_str, Frame, Span};

mod parked;
pub use parked::Loader;

/// A text chunk's kind and text literals within its frame.
type Chunk = (Span, Span);

/// The default budget of one transcript (`TEROK_ACP_TRANSCRIPT_BYTES`).
pub const DEFAULT_TRANSCRIPT_BYTES: usize = 1 << 20;

/// Raw frames are folded once the tail holds this many bytes...
const TAIL_BYTES: usize = 128 * 1024;
/// ...or this many frames (a fold is a short pause of the hub: keep it short).
const TAIL_FRAMES: usize = 1024;

/// A tail that grew past this during a turn is let go when the turn ends.
const IDLE_TAIL_BYTES: usize = 16 * 1024;

/// A text chunk this long is appended to its entry as it arrives rather than through the tail.
const DIRECT_TEXT_BYTES: usize = 1024;

/// The few fields of a raw `session/update` frame that folding a text chunk needs, borrowed:
/// most frames of a stream are text chunks, appended without building a JSON tree.
#[derive(Deserialize)]
struct FrameView<'a> {
    #[serde(borrow)]
    params: ParamsView<'a>,
}

#[derive(Deserialize)]
struct ParamsView<'a> {
    #[serde(borrow)]
    update: ChunkView<'a>,
}

/// The update itself, for the frames that are not plain text chunks.
#[derive(Deserialize)]
struct FrameValue {
    params: ParamsValue,
}

#[derive(Deserialize)]
struct ParamsValue {
    update: Value,
}

#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(rename = "sessionUpdate", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    content: Option<ContentView<'a>>,
}

#[derive(Deserialize)]
struct ContentView<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A `session/update` payload, as the client saw it.
    Update { update: Value },
    /// A turn ended, with the agent's stop reason (or the error that ended it).
    TurnEnd {
        #[serde(rename = "stopReason")]
        stop_reason: String,
    },
}

impl Entry {
    fn kind(&self) -> Option<&str> {
        match self {
            Entry::Update { update } => update.get("sessionUpdate").and_then(Value::as_str),
            Entry::TurnEnd { .. } => None,
        }
    }

    /// Roughly what the entry costs in memory: its JSON size.
    fn weight(&self) -> usize {
        match self {
            Entry::Update { update } => serde_json::to_vec(update).map(|v| v.len()).unwrap_or(64),
            Entry::TurnEnd { stop_reason } => 32 + stop_reason.len(),
        }
    }
}

/// The persisted form of a transcript.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    pub entries: Vec<Entry>,
    /// How many entries were dropped from the front to stay within the budget.
    #[serde(default)]
    pub dropped: u64,
}

#[derive(Debug)]
pub struct Transcript {
    entries: VecDeque<(Entry, usize)>,
    /// Sum of the entries' weights.
    bytes: usize,
    budget: usize,
    /// Entries dropped from the front; also the absolute index of `entries[0]`.
    dropped: u64,
    /// Tool call id → absolute index of its entry.
    tools: HashMap<String, u64>,
    /// Raw agent `session/update` frames not folded yet, copied one after another (a copy
    /// lets the reader reuse its buffer; holding slices of it would keep every read alive).
    tail: Vec<u8>,
    /// Where each frame in `tail` ends, and for a text chunk the scanner read, where its kind
    /// and text literals sit within the frame.
    tail_ends: Vec<(usize, Option<Chunk>)>,
    /// Some entry lost the start of its text to the budget.
    truncated: bool,
    /// Set while the entries wait on disk.
    parked: Option<parked::Parked>,
}

/// Text chunks continuing the last entry, gathered while folding: appended at once, they cost
/// one lookup of the entry instead of one per chunk.
struct Run {
    kind: String,
    text: String,
    /// The entry's text length when the run started.
    entry_len: usize,
}

impl Transcript {
    pub fn new(budget: usize) -> Transcript {
        Transcript {
            entries: VecDeque::new(),
            bytes: 0,
            budget: budget.max(1024),
            dropped: 0,
            tools: HashMap::new(),
            tail: Vec::new(),
            tail_ends: Vec::new(),
            truncated: false,
            parked: None,
        }
    }

    pub fn restore(saved: Saved, budget: usize) -> Transcript {
        let mut transcript = Transcript::new(budget);
        transcript.dropped = saved.dropped;
        for entry in saved.entries {
            transcript.push(entry);
        }
        // Restoring counts from the first kept entry, so the count of dropped ones stays true.
        transcript.dropped = transcript.dropped.max(saved.dropped);
        transcript
    }

    /// Keeps a raw agent `session/update` frame (the whole JSON-RPC line) for folding later.
    /// Cheap: one copy into the tail.
    pub fn record_raw(&mut self, frame: &[u8]) {
        self.record(frame, None);
    }

    /// [`Transcript::record_raw`] for a parsed frame: a text chunk the envelope scanner read
    /// needs no parse when it is folded into the text before it.
    pub fn record_frame(&mut self, frame: &Frame) {
        self.record(frame.raw(), frame.chunk_spans());
    }

    fn record(&mut self, frame: &[u8], chunk: Option<Chunk>) {
        // A long text chunk continuing the last entry, with nothing waiting before it, is
        // appended at once: one copy of its text instead of three (into the tail, into the
        // fold's run, into the entry). Short ones go through the tail, where a run of them
        // costs one lookup of the entry.
        if let Some((kind, text)) = chunk.as_ref().filter(|(_, text)| {
            self.tail_ends.is_empty() && text.len() >= DIRECT_TEXT_BYTES && self.parked.is_none()
        }) {
            if let (Some(kind), Some(text)) = (
                scanned_str(&frame[kind.clone()]),
                scanned_str(&frame[text.clone()]),
            ) {
                if self.append_text(&kind, &text).is_some() {
                    return;
                }
            }
        }
        self.tail.extend_from_slice(frame);
        self.tail_ends.push((self.tail.len(), chunk));
        if self.tail.len() >= TAIL_BYTES || self.tail_ends.len() >= TAIL_FRAMES {
            self.fold();
        }
    }

    /// Records an update the proxy itself knows as a value (a user prompt, an option change).
    pub fn record_update(&mut self, update: Value) {
        self.unpark();
        self.fold();
        self.apply(update);
    }

    /// Records the prompt blocks a client sent, as `user_message_chunk`s.
    pub fn record_prompt(&mut self, blocks: &[Value]) {
        self.unpark();
        self.fold();
        for block in blocks {
            self.apply(json!({"sessionUpdate": "user_message_chunk", "content": block}));
        }
    }

    pub fn record_turn_end(&mut self, stop_reason: &str) {
        self.unpark();
        self.fold();
        self.push(Entry::TurnEnd {
            stop_reason: stop_reason.to_owned(),
        });
        // Between turns the tail waits empty: what a long stream grew goes back.
        if self.tail.capacity() > IDLE_TAIL_BYTES {
            self.tail = Vec::new();
            self.tail_ends = Vec::new();
        }
    }

    /// Folds the raw tail into entries.
    pub fn fold(&mut self) {
        if self.tail_ends.is_empty() {
            return;
        }
        self.unpark();
        let tail = std::mem::take(&mut self.tail);
        let mut ends = std::mem::take(&mut self.tail_ends);
        let mut start = 0;
        let mut run: Option<Run> = None;
        for (end, chunk) in ends.drain(..) {
            let raw = &tail[start..end];
            start = end;
            // A text chunk continuing the last entry is appended as it is: the scanner found
            // its kind and text already (serde reads what the scanner left).
            match chunk {
                Some((kind, text)) => {
                    if let (Some(kind), Some(text)) =
                        (scanned_str(&raw[kind]), scanned_str(&raw[text]))
                    {
                        if let Some(r) = run.as_mut().filter(|r| r.kind == kind) {
                            r.text.push_str(&text);
                            // Appended now where appending chunk by chunk would cut the text or
                            // drop entries: the result is the same.
                            let due = r.entry_len + r.text.len() > self.budget / 2
                                || self.bytes + r.text.len() > self.budget;
                            if due {
                                self.append_run(&mut run);
                            }
                            continue;
                        }
                        self.append_run(&mut run);
                        if let Some(entry_len) = self.append_text(&kind, &text) {
                            run = Some(Run {
                                kind: kind.into_owned(),
                                text: String::new(),
                                entry_len,
                            });
                            continue;
                        }
                    }
                }
                None => {
                    self.append_run(&mut run);
                    if let Ok(FrameView {
                        params:
                            ParamsView {
                                update:
                                    ChunkView {
                                        kind,
                                        content:
                                            Some(ContentView {
                                                kind: content_kind,
                                                text: Some(text),
                                            }),
                                    },
                            },
                    }) = serde_json::from_slice::<FrameView>(raw)
                    {
                        if content_kind == "text" && self.append_text(&kind, &text).is_some() {
                            continue;
                        }
                    }
                }
            }
            self.append_run(&mut run);
            if let Ok(frame) = serde_json::from_slice::<FrameValue>(raw) {
                if frame.params.update.is_object() {
                    self.apply(frame.params.update);
                }
            }
        }
        self.append_run(&mut run);
        // Keep the allocations for the next run of frames.
        self.tail = tail;
        self.tail.clear();
        self.tail_ends = ends;
    }

    /// The entries, folded first.
    pub fn entries(&mut self) -> impl Iterator<Item = &Entry> {
        self.unpark();
        self.fold();
        self.entries.iter().map(|(e, _)| e)
    }

    /// How many entries were dropped to stay within the budget (counting a text cut short).
    pub fn dropped(&self) -> u64 {
        self.dropped + u64::from(self.truncated)
    }

    /// Bytes held, tail included (a parked transcript's on disk).
    pub fn bytes(&self) -> usize {
        self.parked_bytes().unwrap_or(self.bytes) + self.tail.len()
    }

    pub fn save(&mut self) -> Saved {
        Saved {
            entries: self.entries().cloned().collect(),
            dropped: self.dropped,
        }
    }

    /// The session's title, from the latest `session_info_update` that carried one.
    pub fn title(&mut self) -> Option<String> {
        if let Some(title) = self.parked_title() {
            return title;
        }
        self.entries()
            .filter_map(|e| match e {
                Entry::Update { update }
                    if update.get("sessionUpdate").and_then(Value::as_str)
                        == Some("session_info_update") =>
                {
                    update.get("title").and_then(Value::as_str)
                }
                _ => None,
            })
            .last()
            .map(str::to_owned)
    }

    fn apply(&mut self, update: Value) {
        let kind = update
            .get("sessionUpdate")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match kind.as_str() {
            "agent_message_chunk" | "agent_thought_chunk" | "user_message_chunk" => {
                if self.merge_text(&kind, &update) {
                    return;
                }
                self.push(Entry::Update { update });
            }
            "tool_call" | "tool_call_update" => self.apply_tool(&kind, update),
            "plan" | "current_mode_update" | "config_option_update" | "usage_update" => {
                self.replace_last_of(&kind, update)
            }
            "available_commands_update" | "session_info_update" => {
                self.replace_any_of(&kind, update)
            }
            _ => self.push(Entry::Update { update }),
        }
    }

    /// Appends a text chunk to the last entry when it is a text chunk of the same kind.
    fn merge_text(&mut self, kind: &str, update: &Value) -> bool {
        let Some(text) = update.pointer("/content/text").and_then(Value::as_str) else {
            return false;
        };
        if update.pointer("/content/type").and_then(Value::as_str) != Some("text") {
            return false;
        }
        self.append_text(kind, text).is_some()
    }

    /// Appends a run of chunks gathered by [`Transcript::fold`], if any.
    fn append_run(&mut self, run: &mut Option<Run>) {
        if let Some(run) = run.take().filter(|r| !r.text.is_empty()) {
            self.append_text(&run.kind, &run.text);
        }
    }

    /// Appends `text` to the last entry when it is a text chunk of the same kind; the length of
    /// that entry's text then. One entry never outgrows half the budget: past that its oldest
    /// text goes.
    fn append_text(&mut self, kind: &str, text: &str) -> Option<usize> {
        if !matches!(
            kind,
            "agent_message_chunk" | "agent_thought_chunk" | "user_message_chunk"
        ) {
            return None;
        }
        let limit = self.budget / 2;
        let Some((Entry::Update { update: last }, weight)) = self.entries.back_mut() else {
            return None;
        };
        // Plain lookups: `Value::pointer` allocates per call.
        if last.get("sessionUpdate").and_then(Value::as_str) != Some(kind) {
            return None;
        }
        let content = last.get_mut("content")?;
        if content.get("type").and_then(Value::as_str) != Some("text") {
            return None;
        }
        let Some(Value::String(so_far)) = content.get_mut("text") else {
            return None;
        };
        // Doubling would leave a long text with up to twice the room it is ever cut back to.
        let needed = so_far.len() + text.len();
        if needed > so_far.capacity() {
            let room = (so_far.capacity() * 2).clamp(needed, needed.max(limit + limit / 8));
            so_far.reserve_exact(room - so_far.len());
        }
        so_far.push_str(text);
        *weight += text.len();
        self.bytes += text.len();
        if so_far.len() > limit {
            let mut cut = so_far.len() - limit / 2;
            while !so_far.is_char_boundary(cut) {
                cut += 1;
            }
            so_far.drain(..cut);
            *weight -= cut.min(*weight);
            self.bytes -= cut.min(self.bytes);
            self.truncated = true;
        }
        let len = so_far.len();
        self.trim();
        Some(len)
    }

    fn apply_tool(&mut self, kind: &str, mut update: Value) {
        let Some(id) = update
            .get("toolCallId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return self.push(Entry::Update { update });
        };
        let at = self
            .tools
            .get(&id)
            .and_then(|abs| abs.checked_sub(self.dropped))
            .map(|i| i as usize)
            .filter(|i| *i < self.entries.len());
        match at {
            Some(i) => {
                let (Entry::Update { update: call }, weight) = &mut self.entries[i] else {
                    return;
                };
                if let (Some(call), Some(fields)) = (call.as_object_mut(), update.as_object_mut()) {
                    for (key, value) in std::mem::take(fields) {
                        if key != "sessionUpdate" && !value.is_null() {
                            call.insert(key, value);
                        }
                    }
                }
                let new_weight = serde_json::to_vec(call).map(|v| v.len()).unwrap_or(*weight);
                self.bytes = self.bytes + new_weight - (*weight).min(self.bytes + new_weight);
                *weight = new_weight;
                self.trim();
            }
            None => {
                if kind == "tool_call_update" {
                    // An update of a call the record no longer holds stands for the call.
                    update["sessionUpdate"] = json!("tool_call");
                }
                self.tools
                    .insert(id, self.dropped + self.entries.len() as u64);
                self.push(Entry::Update { update });
            }
        }
    }

    /// Replaces the last entry when it is of the same kind (a newer plan, mode, option list).
    fn replace_last_of(&mut self, kind: &str, update: Value) {
        if self.entries.back().and_then(|(e, _)| e.kind()) == Some(kind) {
            if let Some((entry, weight)) = self.entries.pop_back() {
                self.bytes -= weight.min(self.bytes);
                drop(entry);
            }
        }
        self.push(Entry::Update { update });
    }

    /// Keeps only the latest entry of this kind (commands, session info are state, not history).
    fn replace_any_of(&mut self, kind: &str, update: Value) {
        if let Some(i) = self
            .entries
            .iter()
            .rposition(|(e, _)| e.kind() == Some(kind))
        {
            let weight = Entry::Update {
                update: update.clone(),
            }
            .weight();
            let (entry, old) = &mut self.entries[i];
            self.bytes = self.bytes + weight - (*old).min(self.bytes + weight);
            *old = weight;
            *entry = Entry::Update { update };
            self.trim();
            return;
        }
        self.push(Entry::Update { update });
    }

    fn push(&mut self, entry: Entry) {
        let weight = entry.weight();
        self.bytes += weight;
        self.entries.push_back((entry, weight));
        self.trim();
    }

    /// Drops the oldest entries until the record fits its budget (the newest always stays).
    fn trim(&mut self) {
        while self.bytes > self.budget && self.entries.len() > 1 {
            if let Some((_, weight)) = self.entries.pop_front() {
                self.bytes -= weight.min(self.bytes);
                self.dropped += 1;
            }
        }
        let first = self.dropped;
        self.tools.retain(|_, abs| *abs >= first);
    }
}

#[cfg(test)]
mod tests;
