//! `json_str` must read exactly what a JSON parser reads: the same string for a valid string
//! literal, nothing for anything else.

#![no_main]

use libfuzzer_sys::fuzz_target;
use terok_executor::acp::frame::{json_str, json_string_literal};

fuzz_target!(|data: &[u8]| {
    let ours = json_str(data).map(|s| s.into_owned());
    let theirs = serde_json::from_slice::<String>(data).ok();
    assert_eq!(ours, theirs, "input {:?}", String::from_utf8_lossy(data));
    if let Some(s) = theirs {
        // Encoding and reading back is the identity.
        let literal = json_string_literal(&s);
        assert_eq!(json_str(&literal).as_deref(), Some(s.as_str()));
        assert!(!literal.contains(&b'\n'), "a literal must stay on one line");
    }
});
