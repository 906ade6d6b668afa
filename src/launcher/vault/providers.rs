//! Which vault provider holds a roster entry's credential.
//!
//! terok-sandbox keys credentials by provider since its schema 3 (`anthropic`, not `claude`):
//! several agents can share one vendor's key. Entries not listed keep their own name
//! (`openrouter`, `blablador`, `kisski`, `coderabbit`, ...).

/// Roster entry → provider, as terok-sandbox's schema-3 migration renamed them.
const RENAMED: &[(&str, &str)] = &[
    ("claude", "anthropic"),
    ("codex", "openai"),
    ("vibe", "mistral"),
    ("gh", "github"),
    ("glab", "gitlab"),
    ("sonar", "sonarcloud"),
];

/// The vault provider of roster entry `entry`.
pub fn provider_of(entry: &str) -> &str {
    RENAMED
        .iter()
        .find(|(e, _)| *e == entry)
        .map(|(_, p)| *p)
        .unwrap_or(entry)
}

/// The roster entries whose credential `provider` holds, among `entries`.
pub fn entries_of<'a>(provider: &str, entries: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    entries
        .into_iter()
        .filter(|e| provider_of(e) == provider)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_and_kept_names() {
        assert_eq!(provider_of("claude"), "anthropic");
        assert_eq!(provider_of("glab"), "gitlab");
        assert_eq!(provider_of("openrouter"), "openrouter");
        assert_eq!(entries_of("openai", ["claude", "codex", "vibe"]), ["codex"]);
    }
}
