//! The agent definitions shipped inside the binary.
//!
//! The list is explicit so a file added to `resources/agents/` without an entry
//! here is caught by the test that compares both.

/// `(roster name, YAML text)` of every bundled entry, sorted by name.
pub const BUNDLED_AGENTS: &[(&str, &str)] = &[
    (
        "blablador",
        include_str!("../../../resources/agents/blablador.yaml"),
    ),
    (
        "caddy",
        include_str!("../../../resources/agents/caddy.yaml"),
    ),
    (
        "claude",
        include_str!("../../../resources/agents/claude.yaml"),
    ),
    (
        "coderabbit",
        include_str!("../../../resources/agents/coderabbit.yaml"),
    ),
    (
        "codex",
        include_str!("../../../resources/agents/codex.yaml"),
    ),
    (
        "copilot",
        include_str!("../../../resources/agents/copilot.yaml"),
    ),
    ("gh", include_str!("../../../resources/agents/gh.yaml")),
    ("glab", include_str!("../../../resources/agents/glab.yaml")),
    (
        "kisski",
        include_str!("../../../resources/agents/kisski.yaml"),
    ),
    (
        "opencode",
        include_str!("../../../resources/agents/opencode.yaml"),
    ),
    (
        "openrouter",
        include_str!("../../../resources/agents/openrouter.yaml"),
    ),
    (
        "sonar",
        include_str!("../../../resources/agents/sonar.yaml"),
    ),
    ("toad", include_str!("../../../resources/agents/toad.yaml")),
    ("vibe", include_str!("../../../resources/agents/vibe.yaml")),
];

/// The display path of a bundled file, used in error messages.
pub fn bundled_file_label(name: &str) -> String {
    format!("resources/agents/{name}.yaml (bundled)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_resources_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/resources/agents");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".yaml"))
                    .map(String::from)
            })
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = BUNDLED_AGENTS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded);
    }
}
