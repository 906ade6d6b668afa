//! `acp trace FILE`: a wire trace as a readable timeline, per session.
//!
//! Frames are grouped by proxy session (frames that name none, such as `initialize`, by
//! connection or agent process), in the order they were written. A run of notifications of one
//! method on one hop (a stream of `session/update`s) folds into one line with its count, size
//! and duration. Answers show their round-trip time: the client's, from its request to the
//! daemon's answer, and the agent's, from the daemon's request to the agent's answer.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::status::human_bytes;

/// One line of the timeline, or a fold of several.
struct Step {
    t: f64,
    dir: String,
    kind: String,
    method: String,
    id: Option<String>,
    size: u64,
    rtt: Option<f64>,
    /// How many frames this step stands for, and when the last of them was.
    count: u64,
    last: f64,
}

/// The timeline of a trace's text.
pub fn render(trace: &str) -> anyhow::Result<String> {
    let mut groups: Vec<(String, Vec<Step>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut header: Option<Value> = None;
    let mut end: Option<Value> = None;
    let mut dropped = 0u64;
    let mut per_hop: Vec<(String, u64)> = Vec::new();
    let mut agents: HashMap<String, String> = HashMap::new();
    for (n, line) in trace.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("line {}: not a trace record: {e}", n + 1))?;
        if record.get("trace").is_some() {
            header = Some(record);
            continue;
        }
        if record.get("end").is_some() {
            end = Some(record);
            continue;
        }
        let Some(dir) = record.get("dir").and_then(Value::as_str) else {
            if let Some(d) = record.get("dropped").and_then(Value::as_u64) {
                dropped += d;
            }
            continue;
        };
        match per_hop.iter_mut().find(|(h, _)| h == dir) {
            Some((_, count)) => *count += 1,
            None => per_hop.push((dir.to_owned(), 1)),
        }
        let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
        let group = match (text("session"), record.get("conn"), text("agent")) {
            (Some(session), _, agent) => {
                if let Some(agent) = agent {
                    agents.insert(session.clone(), agent);
                }
                format!("session {session}")
            }
            (None, Some(conn), _) => format!("connection {conn} (no session)"),
            (None, None, Some(agent)) => match record.get("slot").and_then(Value::as_u64) {
                Some(slot) => format!("agent {agent}, process {slot} (no session)"),
                None => format!("agent {agent}, probes"),
            },
            (None, None, None) => "(unattributed)".to_owned(),
        };
        let t = record.get("t").and_then(Value::as_f64).unwrap_or(0.0);
        let step = Step {
            t,
            dir: dir.to_owned(),
            kind: text("kind").unwrap_or_default(),
            method: text("method").unwrap_or_default(),
            id: record.get("id").map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            size: record.get("size").and_then(Value::as_u64).unwrap_or(0),
            rtt: record.get("rtt").and_then(Value::as_f64),
            count: 1,
            last: t,
        };
        let at = *index.entry(group.clone()).or_insert_with(|| {
            groups.push((group, Vec::new()));
            groups.len() - 1
        });
        let steps = &mut groups[at].1;
        match steps.last_mut() {
            Some(prev)
                if step.kind == "notification"
                    && prev.kind == "notification"
                    && prev.dir == step.dir
                    && prev.method == step.method =>
            {
                prev.count += 1;
                prev.size += step.size;
                prev.last = step.t;
            }
            _ => steps.push(step),
        }
    }
    let Some(header) = header else {
        anyhow::bail!("not a terok-executor wire trace: no header line");
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace of {} (pid {}), text {}",
        header.get("runtime").and_then(Value::as_str).unwrap_or("?"),
        header.get("pid").and_then(Value::as_u64).unwrap_or(0),
        if header.get("content") == Some(&Value::Bool(true)) {
            "kept"
        } else {
            "elided"
        }
    );
    let hops: Vec<String> = per_hop.iter().map(|(h, c)| format!("{h} {c}")).collect();
    let _ = writeln!(out, "frames: {}", hops.join(", "));
    let dropped = end
        .as_ref()
        .and_then(|e| e.get("dropped"))
        .and_then(Value::as_u64)
        .unwrap_or(dropped);
    match &end {
        Some(end) => {
            let t = end.get("t").and_then(Value::as_f64).unwrap_or(0.0);
            let _ = writeln!(
                out,
                "duration {t:.3} s; frames dropped (writer behind): {dropped}"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "no end record: the daemon is still running or did not stop cleanly; \
                 frames dropped so far: {dropped}"
            );
        }
    }
    for (group, steps) in &groups {
        let agent = group
            .strip_prefix("session ")
            .and_then(|s| agents.get(s))
            .map(|a| format!("  (agent {a})"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n{group}{agent}");
        let start = steps.first().map_or(0.0, |s| s.t);
        for step in steps {
            let _ = writeln!(out, "{}", line(step, start));
        }
    }
    Ok(out)
}

fn line(step: &Step, start: f64) -> String {
    let offset = format!("+{:.3} ms", (step.t - start) * 1e3);
    let method = if step.method.is_empty() {
        "?"
    } else {
        &step.method
    };
    let mut text = format!(
        "  {offset:>14}  {:<15} {:<12} {method}",
        step.dir, step.kind
    );
    if let Some(id) = &step.id {
        let _ = write!(text, " #{id}");
    }
    if step.count > 1 {
        let _ = write!(
            text,
            " ×{} ({} over {:.3} ms)",
            step.count,
            human_bytes(step.size),
            (step.last - step.t) * 1e3
        );
    } else {
        let _ = write!(text, " ({})", human_bytes(step.size));
    }
    if let Some(rtt) = step.rtt {
        let _ = write!(text, "  rtt {:.3} ms", rtt * 1e3);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_folds_and_answers_show_their_round_trip() {
        let trace = [
            r#"{"t":0.0,"trace":"terok-executor acp","version":1,"runtime":"local /x","pid":7,"content":false}"#,
            r#"{"t":0.001,"dir":"client->daemon","conn":1,"size":40,"kind":"request","method":"initialize","id":0}"#,
            r#"{"t":0.002,"dir":"daemon->client","conn":1,"size":90,"kind":"response","method":"initialize","id":0,"rtt":0.001}"#,
            r#"{"t":0.010,"dir":"client->daemon","conn":1,"session":"s1","size":80,"kind":"request","method":"session/prompt","id":3}"#,
            r#"{"t":0.011,"dir":"agent->daemon","slot":0,"agent":"a","session":"s1","size":100,"kind":"notification","method":"session/update"}"#,
            r#"{"t":0.012,"dir":"agent->daemon","slot":0,"agent":"a","session":"s1","size":100,"kind":"notification","method":"session/update"}"#,
            r#"{"t":0.020,"dir":"daemon->client","conn":1,"session":"s1","size":50,"kind":"response","method":"session/prompt","id":3,"rtt":0.010}"#,
            r#"{"t":0.021,"dropped":4}"#,
        ]
        .join("\n");
        let text = render(&trace).unwrap();
        for needle in [
            "trace of local /x (pid 7), text elided",
            "frames: client->daemon 2, daemon->client 2, agent->daemon 2",
            "no end record",
            "frames dropped so far: 4",
            "connection 1 (no session)",
            "session s1  (agent a)",
            "session/update ×2 (200 B over 1.000 ms)",
            "session/prompt #3 (50 B)  rtt 10.000 ms",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }

    #[test]
    fn what_is_not_a_trace_is_said_so() {
        assert!(render("{\"t\":1}")
            .unwrap_err()
            .to_string()
            .contains("no header"));
        assert!(render("nonsense")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }
}
