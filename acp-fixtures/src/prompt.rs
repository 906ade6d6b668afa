//! Prompt scripts: what the agent does for each `session/prompt`.
//!
//! The first word of the prompt's text picks the script; any other text gets
//! the default reply `NAME/<model>: <text>`, which lets tests see which agent
//! and which model answered. Each prompt runs on its own thread and ends by
//! answering the request with a stop reason.

use crate::agent::Agent;
use crate::output::{chunk_frame, response_frame, session_update_frame};
use crate::session::Session;
use serde_json::{json, Value};
use std::time::Duration;

/// The stop reason of a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    EndTurn,
    Cancelled,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::EndTurn => "end_turn",
            Stop::Cancelled => "cancelled",
        }
    }

    /// `cancelled` if the session was cancelled meanwhile, else `end_turn`.
    fn after(session: &Session) -> Self {
        if session.cancel.is_cancelled() {
            Stop::Cancelled
        } else {
            Stop::EndTurn
        }
    }
}

/// The largest chunk `stream` accepts, so a typo cannot exhaust memory.
const MAX_STREAM_CHUNK: usize = 64 << 20;

/// The number of lines `stream` writes under one lock, at most.
const STREAM_BATCH: usize = 256;

/// The size of one pre-built `stream` batch, at most.
const STREAM_BATCH_BYTES: usize = 1 << 20;

/// Runs the script chosen by `text` and answers the prompt request.
pub fn run(agent: &Agent, session: &Session, raw_id: &str, text: &str) {
    let stop = script(agent, session, text);
    let mut result = json!({"stopReason": stop.as_str()});
    if let Some(usage) = turn_usage(text) {
        result["usage"] = usage;
    }
    agent.out.send(&response_frame(raw_id, &result));
}

/// Splits off the first whitespace-separated word; returns it and the rest.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(end) => (&text[..end], text[end..].trim_start()),
        None => (text, ""),
    }
}

fn script(agent: &Agent, session: &Session, text: &str) -> Stop {
    let (command, rest) = split_word(text);
    let numbers: Vec<&str> = rest.split_whitespace().collect();
    match command {
        "stream" => match parse_pair(&numbers) {
            Some((n, size)) if size <= MAX_STREAM_CHUNK as u64 => {
                stream(agent, session, n, size as usize)
            }
            _ => say(agent, session, "usage: stream N S"),
        },
        "slow" => match parse_pair(&numbers) {
            Some((n, ms)) => slow(agent, session, n, Duration::from_millis(ms)),
            None => say(agent, session, "usage: slow N MS"),
        },
        "hang" => hang(agent, session),
        "usage" => match numbers.as_slice() {
            [input, output, cost] => {
                let (Ok(input), Ok(output), Ok(cost)) = (
                    input.parse::<u64>(),
                    output.parse::<u64>(),
                    cost.parse::<f64>(),
                ) else {
                    return say(agent, session, "usage: usage IN OUT COST");
                };
                let update = json!({
                    "sessionUpdate": "usage_update",
                    "used": input + output,
                    "size": 200_000,
                    "cost": {"amount": cost, "currency": "USD"},
                });
                agent.out.send(&session_update_frame(&session.id, update));
                say(agent, session, "usage reported")
            }
            _ => say(agent, session, "usage: usage IN OUT COST"),
        },
        "permission" => permission(agent, session),
        "read" if !rest.is_empty() => read(agent, session, rest),
        "write" if !rest.is_empty() => {
            let (path, content) = split_word(rest);
            write(agent, session, path, content)
        }
        "terminal" if !rest.is_empty() => terminal(agent, session, &numbers),
        "read" | "write" | "terminal" => {
            say(agent, session, &format!("usage: {command} ARGUMENTS"))
        }
        "crash" => crash(agent),
        "garbage" => {
            agent
                .out
                .send_all(&["not json".into(), "{\"unterminated".into(), "[1,2]".into()]);
            default_reply(agent, session, text)
        }
        "config" => {
            let update = json!({
                "sessionUpdate": "config_option_update",
                "configOptions": agent.options_of(session),
            });
            agent.out.send(&session_update_frame(&session.id, update));
            Stop::after(session)
        }
        "cwd" => say(agent, session, &format!("cwd: {}", session.cwd)),
        "pid" => say(agent, session, &format!("pid: {}", std::process::id())),
        "mode" => say(
            agent,
            session,
            &format!("mode: {}", session.selection().mode),
        ),
        "switch-mode" if agent.cfg.legacy_modes && !rest.is_empty() => {
            // The agent changes its own mode, as agents leaving plan mode do.
            crate::session::lock(&session.selection).mode = rest.to_string();
            let update = json!({"sessionUpdate": "current_mode_update", "currentModeId": rest});
            agent.out.send(&session_update_frame(&session.id, update));
            say(agent, session, &format!("switched to {rest}"))
        }
        _ => default_reply(agent, session, text),
    }
}

/// The token counts `usage IN OUT COST` reports for its turn, in the prompt's answer.
fn turn_usage(text: &str) -> Option<Value> {
    let (command, rest) = split_word(text);
    let [input, output, _] = rest.split_whitespace().collect::<Vec<_>>()[..] else {
        return None;
    };
    let (input, output) = (input.parse::<u64>().ok()?, output.parse::<u64>().ok()?);
    (command == "usage").then(
        || json!({"totalTokens": input + output, "inputTokens": input, "outputTokens": output}),
    )
}

/// Parses exactly two non-negative integers.
fn parse_pair(words: &[&str]) -> Option<(u64, u64)> {
    match words {
        [a, b] => Some((a.parse().ok()?, b.parse().ok()?)),
        _ => None,
    }
}

/// Sends one text chunk and ends the turn.
fn say(agent: &Agent, session: &Session, text: &str) -> Stop {
    agent.out.send(&chunk_frame(&session.id, text));
    Stop::after(session)
}

fn default_reply(agent: &Agent, session: &Session, text: &str) -> Stop {
    let model = session.selection().model;
    say(
        agent,
        session,
        &format!("{}/{model}: {text}", agent.cfg.name),
    )
}

/// Writes `n` identical chunks of `size` bytes as fast as possible.
///
/// The update line is serialised once and copied into a block of up to
/// [`STREAM_BATCH`] lines, which is written under one lock per batch; the
/// cancel flag is checked between batches.
fn stream(agent: &Agent, session: &Session, n: u64, size: usize) -> Stop {
    let mut line = chunk_frame(&session.id, &"x".repeat(size));
    line.push('\n');
    let per_batch = (STREAM_BATCH_BYTES / line.len()).clamp(1, STREAM_BATCH);
    let block = line.repeat(per_batch);
    let mut sent: u64 = 0;
    while sent < n {
        if session.cancel.is_cancelled() {
            return Stop::Cancelled;
        }
        let lines = (n - sent).min(per_batch as u64) as usize;
        if !agent.out.send_raw(&block.as_bytes()[..lines * line.len()]) {
            // Nobody reads stdout anymore; stop producing.
            return Stop::Cancelled;
        }
        sent += lines as u64;
    }
    Stop::after(session)
}

/// Writes `n` chunks with a pause between them, stopping early on cancel.
fn slow(agent: &Agent, session: &Session, n: u64, pause: Duration) -> Stop {
    for i in 0..n {
        if session.cancel.is_cancelled() {
            return Stop::Cancelled;
        }
        agent
            .out
            .send(&chunk_frame(&session.id, &format!("slow {}/{n}", i + 1)));
        if i + 1 < n && session.cancel.sleep(pause) {
            return Stop::Cancelled;
        }
    }
    Stop::after(session)
}

/// Sends nothing until the session is cancelled (or stdin is closed).
fn hang(agent: &Agent, session: &Session) -> Stop {
    while !session.cancel.sleep(Duration::from_millis(50)) {
        if agent.input_closed() {
            break;
        }
    }
    Stop::Cancelled
}

/// The message of a JSON-RPC error object, or the object itself as text.
fn error_message(error: &Value) -> String {
    match error.get("message").and_then(Value::as_str) {
        Some(message) => message.to_string(),
        None => error.to_string(),
    }
}

fn permission(agent: &Agent, session: &Session) -> Stop {
    let params = json!({
        "sessionId": session.id,
        "toolCall": {"toolCallId": "call-1", "title": "fixture tool"},
        "options": [
            {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
            {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
        ],
    });
    let text = match agent
        .client
        .call(&agent.out, "session/request_permission", params)
    {
        Ok(result) => {
            let outcome = &result["outcome"];
            match outcome.get("outcome").and_then(Value::as_str) {
                Some("selected") => format!(
                    "permission: {}",
                    outcome
                        .get("optionId")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
                Some("cancelled") => "permission: cancelled".to_string(),
                _ => format!("permission: unexpected answer {result}"),
            }
        }
        Err(error) => format!("permission error: {}", error_message(&error)),
    };
    say(agent, session, &text)
}

fn read(agent: &Agent, session: &Session, path: &str) -> Stop {
    let params = json!({"sessionId": session.id, "path": path});
    let text = match agent.client.call(&agent.out, "fs/read_text_file", params) {
        Ok(result) => match result.get("content").and_then(Value::as_str) {
            Some(content) => format!("read: {content}"),
            None => format!("read error: no content in {result}"),
        },
        Err(error) => format!("read error: {}", error_message(&error)),
    };
    say(agent, session, &text)
}

fn write(agent: &Agent, session: &Session, path: &str, content: &str) -> Stop {
    let params = json!({"sessionId": session.id, "path": path, "content": content});
    let text = match agent.client.call(&agent.out, "fs/write_text_file", params) {
        Ok(_) => format!("wrote {path}"),
        Err(error) => format!("write error: {}", error_message(&error)),
    };
    say(agent, session, &text)
}

fn terminal(agent: &Agent, session: &Session, words: &[&str]) -> Stop {
    let Some((command, args)) = words.split_first() else {
        return say(agent, session, "usage: terminal CMD ARGS...");
    };
    let params = json!({
        "sessionId": session.id,
        "command": command,
        "args": args,
        "cwd": session.cwd,
    });
    let text = match agent.client.call(&agent.out, "terminal/create", params) {
        Ok(result) => match result.get("terminalId").and_then(Value::as_str) {
            Some(id) => format!("terminal: {id}"),
            None => format!("terminal error: no terminalId in {result}"),
        },
        Err(error) => format!("terminal error: {}", error_message(&error)),
    };
    say(agent, session, &text)
}

fn crash(agent: &Agent) -> Stop {
    eprintln!("fixture {}: crashing on request", agent.cfg.name);
    agent.out.flush();
    std::process::exit(70);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words() {
        assert_eq!(
            split_word("  write a.txt  hello world "),
            ("write", "a.txt  hello world ")
        );
        assert_eq!(split_word("hang"), ("hang", ""));
        assert_eq!(split_word(""), ("", ""));
    }

    #[test]
    fn parses_pairs() {
        assert_eq!(parse_pair(&["3", "64"]), Some((3, 64)));
        assert_eq!(parse_pair(&["3"]), None);
        assert_eq!(parse_pair(&["-1", "2"]), None);
    }
}
