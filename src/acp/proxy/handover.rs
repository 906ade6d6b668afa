//! Carrying a conversation to another agent.
//!
//! When a session switches agents mid-conversation (or its agent can no longer reopen it), the
//! next prompt carries the conversation so far, rendered from the transcript as markdown: as an
//! embedded `resource` where the agent accepts embedded context, else as a leading text block.
//! The rendering is bounded: the oldest turns go first, and a note says how many went.

use serde_json::{json, Value};

use crate::acp::runtime::AgentName;
use crate::acp::transcript::{Entry, Transcript};

/// The most the handed-over context may take.
pub const MAX_CONTEXT_BYTES: usize = 48 * 1024;

/// The conversation so far, as markdown of at most [`MAX_CONTEXT_BYTES`].
pub fn context(transcript: &mut Transcript, from: Option<&AgentName>) -> String {
    let dropped = transcript.dropped();
    render(transcript.entries(), dropped, from, MAX_CONTEXT_BYTES)
}

/// The prompt block that carries `context`.
pub fn block(sid: &str, context: String, embedded: bool) -> Value {
    if embedded {
        json!({
            "type": "resource",
            "resource": {
                "uri": format!("terok://handover/{sid}.md"),
                "mimeType": "text/markdown",
                "text": context,
            }
        })
    } else {
        json!({"type": "text", "text": context})
    }
}

fn text_of(update: &Value) -> Option<&str> {
    update.pointer("/content/text").and_then(Value::as_str)
}

/// Renders entries as turns (a turn starts at a user message) and keeps the newest that fit.
fn render<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    dropped: u64,
    from: Option<&AgentName>,
    max: usize,
) -> String {
    let mut turns: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut last_kind = "";
    for entry in entries {
        let Entry::Update { update } = entry else {
            continue;
        };
        let kind = update
            .get("sessionUpdate")
            .and_then(Value::as_str)
            .unwrap_or("");
        let piece = match kind {
            "user_message_chunk" => {
                if last_kind != "user_message_chunk" && !current.is_empty() {
                    turns.push(std::mem::take(&mut current));
                }
                let body = text_of(update)
                    .map(str::to_owned)
                    .or_else(|| {
                        update
                            .pointer("/content/resource/uri")
                            .or_else(|| update.pointer("/content/uri"))
                            .and_then(Value::as_str)
                            .map(|uri| format!("[attached: {uri}]"))
                    })
                    .unwrap_or_else(|| "[non-text content]".into());
                if last_kind == "user_message_chunk" {
                    format!("{body}\n\n")
                } else {
                    format!("### User\n\n{body}\n\n")
                }
            }
            "agent_message_chunk" => match text_of(update) {
                Some(text) => format!("### Assistant\n\n{text}\n\n"),
                None => String::new(),
            },
            "tool_call" => {
                let title = update
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("tool call");
                let status = update
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                format!("- Tool call: {title} ({status})\n\n")
            }
            "plan" => {
                let steps: Vec<String> = update
                    .get("entries")
                    .and_then(Value::as_array)
                    .map(|entries| {
                        entries
                            .iter()
                            .filter_map(|e| {
                                let content = e.get("content").and_then(Value::as_str)?;
                                let status =
                                    e.get("status").and_then(Value::as_str).unwrap_or("pending");
                                Some(format!("  - [{status}] {content}"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!("- Plan:\n{}\n\n", steps.join("\n"))
            }
            // Thoughts, commands, options and modes are the old agent's own business.
            _ => String::new(),
        };
        if !piece.is_empty() {
            current.push_str(&piece);
            last_kind = kind;
        }
    }
    if !current.is_empty() {
        turns.push(current);
    }
    let head = match from {
        Some(agent) => format!(
            "# Conversation so far\n\nThis session was just switched to you from the agent `{agent}`. \
             Here is the conversation up to now, for context; continue from it. The user's new \
             message follows this block.\n\n"
        ),
        None => "# Conversation so far\n\nThis session continues an earlier conversation whose agent \
                 session could not be reopened. Here it is, for context; continue from it. The \
                 user's new message follows this block.\n\n"
            .to_owned(),
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut size = head.len() + 128;
    for turn in turns.iter().rev() {
        if size + turn.len() > max {
            break;
        }
        size += turn.len();
        kept.push(turn);
    }
    let left_out = turns.len() - kept.len();
    let mut out = head;
    if left_out > 0 || dropped > 0 {
        out.push_str(&format!(
            "_(Earlier parts of the conversation are left out: {left_out} older turn{} did not fit{}.)_\n\n",
            if left_out == 1 { "" } else { "s" },
            if dropped > 0 { ", and the transcript had already dropped its oldest entries" } else { "" }
        ));
    }
    if kept.is_empty() && !turns.is_empty() {
        // Even the newest turn is too long: keep its end.
        let last = turns.last().map(String::as_str).unwrap_or("");
        let room = max.saturating_sub(out.len() + 16);
        let mut start = last.len().saturating_sub(room);
        while !last.is_char_boundary(start) {
            start += 1;
        }
        out.push('…');
        out.push_str(&last[start..]);
        return out;
    }
    for turn in kept.into_iter().rev() {
        out.push_str(turn);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(v: Value) -> Entry {
        Entry::Update { update: v }
    }

    fn user(text: &str) -> Entry {
        update(
            json!({"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": text}}),
        )
    }

    fn agent(text: &str) -> Entry {
        update(
            json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}),
        )
    }

    #[test]
    fn turns_render_in_order_with_tool_calls_and_without_thoughts() {
        let entries = [
            user("fix the bug"),
            update(
                json!({"sessionUpdate": "agent_thought_chunk", "content": {"type": "text", "text": "secret"}}),
            ),
            update(
                json!({"sessionUpdate": "tool_call", "toolCallId": "1", "title": "Read main.rs", "status": "completed"}),
            ),
            agent("done"),
            Entry::TurnEnd {
                stop_reason: "end_turn".into(),
            },
            user("thanks"),
            agent("welcome"),
        ];
        let claude = AgentName::new("claude").unwrap();
        let text = render(entries.iter(), 0, Some(&claude), MAX_CONTEXT_BYTES);
        assert!(text.contains("switched to you from the agent `claude`"));
        let order: Vec<usize> = [
            "fix the bug",
            "Read main.rs (completed)",
            "done",
            "thanks",
            "welcome",
        ]
        .iter()
        .map(|needle| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing in {text}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(!text.contains("secret"));
        assert!(!text.contains("left out"));
    }

    #[test]
    fn the_oldest_turns_go_first_and_a_note_says_so() {
        let entries: Vec<Entry> = (0..100)
            .flat_map(|i| [user(&format!("question {i:03}")), agent(&"a".repeat(1000))])
            .collect();
        let text = render(entries.iter(), 0, None, 20_000);
        assert!(text.len() <= 20_000, "{}", text.len());
        assert!(text.contains("question 099"));
        assert!(!text.contains("question 000"));
        assert!(text.contains("older turns did not fit"));
    }

    #[test]
    fn one_huge_turn_keeps_its_end() {
        let entries = [user("q"), agent(&format!("{}THE END", "é".repeat(50_000)))];
        let text = render(entries.iter(), 0, None, 10_000);
        assert!(text.len() <= 10_000);
        assert!(text.ends_with("THE END\n\n"));
    }

    #[test]
    fn the_block_is_a_resource_only_for_agents_that_take_embedded_context() {
        assert_eq!(block("s", "x".into(), true)["type"], "resource");
        assert_eq!(
            block("s", "x".into(), true)["resource"]["mimeType"],
            "text/markdown"
        );
        assert_eq!(
            block("s", "x".into(), false),
            json!({"type": "text", "text": "x"})
        );
    }
}
