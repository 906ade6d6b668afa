//! `AgentName::new` accepts exactly the documented alphabet, and whatever it accepts is safe as
//! a file name and on a command line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use terok_executor::acp::runtime::AgentName;

fn allowed(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    match AgentName::new(&name) {
        Ok(agent) => {
            assert!(allowed(&name), "accepted {name:?}");
            assert_eq!(agent.as_str(), name);
            assert_eq!(agent.to_string(), name);
            let wrapper = agent.wrapper();
            assert!(wrapper.starts_with("terok-") && wrapper.ends_with("-acp"));
            assert!(!wrapper.contains('/') && !wrapper.contains('\0'));
            assert!(wrapper
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)));
            assert!(!name.contains(':'), "a name with ':' breaks agent:model");
        }
        Err(e) => {
            assert!(!allowed(&name), "refused {name:?}");
            // The message is bounded however long the input.
            assert!(e.to_string().len() < 80 * 10 + 200);
        }
    }
});
