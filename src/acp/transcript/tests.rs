//! The transcript's folding, merging, budget and persistence, against serde's reading.

use super::*;

fn raw(update: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "a-1", "update": update}})
        .to_string()
        .into_bytes()
}

fn chunk(kind: &str, text: &str) -> Value {
    json!({"sessionUpdate": kind, "content": {"type": "text", "text": text}})
}

fn updates(t: &mut Transcript) -> Vec<Value> {
    t.entries()
        .filter_map(|e| match e {
            Entry::Update { update } => Some(update.clone()),
            Entry::TurnEnd { .. } => None,
        })
        .collect()
}

#[test]
fn gathered_runs_fold_exactly_as_chunk_by_chunk() {
    // The same updates, folded chunk by chunk (serde) and in runs (the scanner's spans),
    // with a budget small enough to cut texts and drop entries many times over.
    let mut seed = 0x2545_f491_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for budget in [1024, 1500, 4096, 65536] {
        let mut serde_path = Transcript::new(budget);
        let mut scanned = Transcript::new(budget);
        for i in 0..3000 {
            let update = match next() % 10 {
                0 => {
                    json!({"sessionUpdate": "tool_call", "toolCallId": format!("t{}", i % 7), "title": "x"})
                }
                1 => chunk("agent_thought_chunk", "thinking é "),
                2 => json!({"sessionUpdate": "plan", "entries": []}),
                // Long enough to be appended as it arrives when nothing waits before it.
                3 => chunk(
                    "agent_message_chunk",
                    &"long ☃ ".repeat((next() % 300) as usize),
                ),
                _ => chunk("agent_message_chunk", &"ab☃".repeat((next() % 40) as usize)),
            };
            let line = raw(update);
            serde_path.record_raw(&line);
            scanned.record_frame(&Frame::parse(bytes::Bytes::from(line)).unwrap());
            if next() % 500 == 0 {
                serde_path.record_turn_end("end_turn");
                scanned.record_turn_end("end_turn");
            }
            if next() % 40 == 0 {
                // A reader folds the tail: the next long chunk finds it empty.
                serde_path.fold();
                scanned.fold();
            }
        }
        assert_eq!(
            serde_path.entries().cloned().collect::<Vec<_>>(),
            scanned.entries().cloned().collect::<Vec<_>>(),
            "budget {budget}"
        );
        assert_eq!(serde_path.dropped(), scanned.dropped());
        assert_eq!(serde_path.bytes(), scanned.bytes());
    }
}

#[test]
fn chunks_merge_whether_the_scanner_or_serde_reads_them() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(chunk("agent_message_chunk", "a")));
    t.record_raw(&raw(chunk("agent_message_chunk", "\"q\" é\n")));
    // Keys with escapes and a text with a surrogate pair are serde's to read.
    t.record_raw(
        br#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"a-1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","t\u0065xt":"b"}}}}"#,
    );
    t.record_raw(
        br#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"a-1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"\ud83d\ude00"}}}}"#,
    );
    assert_eq!(
        updates(&mut t),
        [chunk("agent_message_chunk", "a\"q\" é\nb😀")]
    );
}

#[test]
fn consecutive_chunks_of_one_kind_merge_and_other_kinds_split_them() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_prompt(&[json!({"type": "text", "text": "hi"})]);
    for part in ["Hel", "lo", " there"] {
        t.record_raw(&raw(chunk("agent_message_chunk", part)));
    }
    t.record_raw(&raw(chunk("agent_thought_chunk", "hmm")));
    t.record_raw(&raw(chunk("agent_message_chunk", "!")));
    t.record_turn_end("end_turn");
    let got = updates(&mut t);
    assert_eq!(
        got,
        vec![
            chunk("user_message_chunk", "hi"),
            chunk("agent_message_chunk", "Hello there"),
            chunk("agent_thought_chunk", "hmm"),
            chunk("agent_message_chunk", "!"),
        ]
    );
    assert!(
        matches!(t.entries().last(), Some(Entry::TurnEnd { stop_reason }) if stop_reason == "end_turn")
    );
}

#[test]
fn a_turn_boundary_keeps_two_answers_apart() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(chunk("agent_message_chunk", "one")));
    t.record_turn_end("end_turn");
    t.record_raw(&raw(chunk("agent_message_chunk", "two")));
    let texts: Vec<String> = updates(&mut t)
        .iter()
        .map(|u| u["content"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

#[test]
fn a_tool_call_is_kept_once_at_its_latest_state() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(json!({"sessionUpdate": "tool_call", "toolCallId": "t1", "title": "Read", "status": "pending"})));
    t.record_raw(&raw(chunk("agent_message_chunk", "reading")));
    t.record_raw(&raw(json!({"sessionUpdate": "tool_call_update", "toolCallId": "t1", "status": "completed", "content": [{"type": "content"}]})));
    let got = updates(&mut t);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        json!({"sessionUpdate": "tool_call", "toolCallId": "t1", "title": "Read", "status": "completed", "content": [{"type": "content"}]})
    );
}

#[test]
fn an_update_of_an_unknown_tool_call_stands_for_the_call() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(
        json!({"sessionUpdate": "tool_call_update", "toolCallId": "t9", "status": "failed"}),
    ));
    assert_eq!(updates(&mut t)[0]["sessionUpdate"], "tool_call");
}

#[test]
fn state_updates_replace_their_previous_value() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(
        json!({"sessionUpdate": "available_commands_update", "availableCommands": [1]}),
    ));
    t.record_raw(&raw(chunk("agent_message_chunk", "x")));
    t.record_raw(&raw(
        json!({"sessionUpdate": "available_commands_update", "availableCommands": [2]}),
    ));
    t.record_raw(&raw(json!({"sessionUpdate": "plan", "entries": [1]})));
    t.record_raw(&raw(json!({"sessionUpdate": "plan", "entries": [1, 2]})));
    t.record_raw(&raw(
        json!({"sessionUpdate": "session_info_update", "title": "Fix the bug"}),
    ));
    let got = updates(&mut t);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0]["availableCommands"], json!([2]));
    assert_eq!(got[2]["entries"], json!([1, 2]));
    assert_eq!(t.title().as_deref(), Some("Fix the bug"));
}

#[test]
fn the_budget_drops_the_oldest_entries_and_counts_them() {
    let mut t = Transcript::new(4096);
    for i in 0..200 {
        t.record_prompt(&[
            json!({"type": "text", "text": format!("prompt {i} {}", "p".repeat(40))}),
        ]);
        t.record_raw(&raw(chunk("agent_message_chunk", &"a".repeat(50))));
        t.record_turn_end("end_turn");
    }
    assert!(t.bytes() <= 4096, "{} bytes", t.bytes());
    assert!(t.dropped() > 0);
    let first = updates(&mut t)[0].clone();
    let last_prompt = updates(&mut t)
        .into_iter()
        .rev()
        .find(|u| u["sessionUpdate"] == "user_message_chunk")
        .unwrap();
    assert!(last_prompt["content"]["text"]
        .as_str()
        .unwrap()
        .starts_with("prompt 199 "));
    assert_ne!(
        first["content"]["text"],
        json!(format!("prompt 0 {}", "p".repeat(40)))
    );
}

#[test]
fn one_long_stream_keeps_its_newest_text_within_the_budget() {
    let mut t = Transcript::new(64 * 1024);
    for i in 0..20_000 {
        t.record_raw(&raw(chunk("agent_message_chunk", &format!("{i:08}|"))));
    }
    t.fold();
    assert!(t.bytes() <= 64 * 1024, "{}", t.bytes());
    let text = updates(&mut t)[0]["content"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.ends_with("00019999|"), "the newest text stays");
    assert!(!text.contains("00000000|"), "the oldest went");
    assert!(t.dropped() > 0);
}

#[test]
fn the_raw_tail_is_folded_before_it_grows_large() {
    let mut t = Transcript::new(64 << 20);
    for _ in 0..(TAIL_FRAMES + 10) {
        t.record_raw(&raw(chunk("agent_message_chunk", "z")));
    }
    assert!(t.tail_ends.len() < TAIL_FRAMES);
    assert_eq!(
        updates(&mut t)[0]["content"]["text"]
            .as_str()
            .unwrap()
            .len(),
        TAIL_FRAMES + 10
    );
}

#[test]
fn garbage_and_non_updates_in_the_tail_are_skipped() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(b"{not json");
    t.record_raw(b"{\"params\":{\"update\":7}}");
    t.record_raw(&raw(chunk("agent_message_chunk", "ok")));
    assert_eq!(updates(&mut t), vec![chunk("agent_message_chunk", "ok")]);
}

#[test]
fn a_saved_transcript_restores_to_the_same_entries() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_prompt(&[json!({"type": "text", "text": "q"})]);
    t.record_raw(&raw(chunk("agent_message_chunk", "a")));
    t.record_turn_end("cancelled");
    let saved = t.save();
    let text = serde_json::to_string(&saved).unwrap();
    let mut back = Transcript::restore(
        serde_json::from_str(&text).unwrap(),
        DEFAULT_TRANSCRIPT_BYTES,
    );
    assert_eq!(back.save().entries, saved.entries);
}

/// A loader that counts its reads and hands back `saved` through serde, as from a file.
fn loader(saved: &Saved, reads: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Loader {
    let text = serde_json::to_string(saved).unwrap();
    let reads = reads.clone();
    Box::new(move || {
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        serde_json::from_str(&text).ok()
    })
}

#[test]
fn a_parked_transcript_reads_its_entries_back_only_when_they_are_needed() {
    use std::sync::atomic::Ordering;
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_prompt(&[json!({"type": "text", "text": "q"})]);
    t.record_raw(&raw(
        json!({"sessionUpdate": "session_info_update", "title": "Fix it"}),
    ));
    t.record_raw(&raw(chunk(
        "agent_message_chunk",
        "long answer ".repeat(200).as_str(),
    )));
    t.record_turn_end("end_turn");
    let saved = t.save();
    let bytes = t.bytes();

    t.park(loader(&saved, &reads));
    assert!(t.is_parked());
    assert!(t.entries.is_empty(), "the entries left memory");
    assert_eq!(t.bytes(), bytes, "status still shows the record's size");
    assert_eq!(t.title().as_deref(), Some("Fix it"));

    // Frames that arrive meanwhile wait in the tail, without a read.
    let late = raw(json!({"sessionUpdate": "usage_update", "used": 5, "size": 10}));
    t.record_raw(&late);
    t.record_raw(&raw(chunk("agent_message_chunk", &"x".repeat(2000))));
    assert_eq!(reads.load(Ordering::SeqCst), 0);
    assert!(!t.is_parked(), "something arrived that is not on disk");
    assert_eq!(t.bytes(), bytes + t.tail.len());

    // A replay reads them back once, and the late frames follow them.
    let mut expected = saved.entries.clone();
    expected.push(Entry::Update {
        update: json!({"sessionUpdate": "usage_update", "used": 5, "size": 10}),
    });
    expected.push(Entry::Update {
        update: chunk("agent_message_chunk", &"x".repeat(2000)),
    });
    assert_eq!(t.save().entries, expected);
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert!(t.entries().count() == expected.len());
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}

#[test]
fn a_parked_transcript_that_cannot_be_read_back_starts_anew_with_what_came_since() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    t.record_raw(&raw(chunk("agent_message_chunk", "lost")));
    t.record_turn_end("end_turn");
    t.park(Box::new(|| None));
    t.record_raw(&raw(chunk("agent_thought_chunk", "kept")));
    assert_eq!(updates(&mut t), vec![chunk("agent_thought_chunk", "kept")]);
    // Recording a prompt on a parked transcript reads it back first.
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let saved = t.save();
    t.park(loader(&saved, &reads));
    t.record_prompt(&[json!({"type": "text", "text": "again"})]);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(t.save().entries.len(), saved.entries.len() + 1);
}

#[test]
fn a_long_turn_gives_its_tail_back_when_it_ends() {
    let mut t = Transcript::new(DEFAULT_TRANSCRIPT_BYTES);
    for _ in 0..TAIL_FRAMES - 1 {
        t.record_raw(&raw(chunk("agent_message_chunk", "0123456789")));
    }
    assert!(t.tail.capacity() > IDLE_TAIL_BYTES);
    t.record_turn_end("end_turn");
    assert_eq!(t.tail.capacity(), 0);
    assert_eq!(
        updates(&mut t),
        vec![chunk(
            "agent_message_chunk",
            &"0123456789".repeat(TAIL_FRAMES - 1)
        )]
    );
}
