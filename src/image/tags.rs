//! Image names: the L0 and L1 tags derived from a base image and an agent selection.
//!
//! Tags are the public contract with other tools (terok looks images up by them), so they follow
//! the established scheme exactly: `terok-l0:<base>`, `terok-l1-cli:<base>` (the alias of the
//! default selection) and `terok-l1-cli:<base>-<agents>` (one image per selection). The tag part
//! never exceeds [`MAX_TAG_LEN`] characters; overlong parts are replaced by SHA-1 digests.

/// The base image used when none is given.
pub const DEFAULT_BASE_IMAGE: &str = "ubuntu:24.04";
/// The sanitised tag fragment of [`DEFAULT_BASE_IMAGE`].
const DEFAULT_TAG: &str = "ubuntu-24.04";
/// Longest tag part (OCI allows 128; the headroom absorbs future suffixes).
pub const MAX_TAG_LEN: usize = 120;
/// Length of the digest that replaces an overlong agent suffix.
const AGENT_DIGEST_LEN: usize = 12;

/// `base` trimmed, or the default base image when blank.
pub fn normalize_base_image(base: &str) -> &str {
    let trimmed = base.trim();
    if trimmed.is_empty() {
        DEFAULT_BASE_IMAGE
    } else {
        trimmed
    }
}

fn sha1_hex(text: &str) -> String {
    sha1_smol::Sha1::from(text.as_bytes()).digest().to_string()
}

/// A tag fragment for an arbitrary string: runs of characters outside `[A-Za-z0-9_.-]` become
/// `-`, leading and trailing `-`/`.` are stripped, the result is lowercased.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_run = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_lowercase()
}

/// The tag fragment naming a base image (at most [`MAX_TAG_LEN`] characters).
pub fn base_tag(base: &str) -> String {
    let raw = normalize_base_image(base);
    let tag = sanitize(raw);
    let tag = if tag.is_empty() {
        DEFAULT_TAG.to_owned()
    } else {
        tag
    };
    if tag.len() > MAX_TAG_LEN {
        // The fragment is ASCII, so byte slicing is character slicing.
        format!("{}-{}", &tag[..111], &sha1_hex(raw)[..8])
    } else {
        tag
    }
}

/// `terok-l0:<base>`.
pub fn l0_tag(base: &str) -> String {
    format!("terok-l0:{}", base_tag(base))
}

/// `terok-l1-cli:<base>`: the alias of the default selection's L1.
pub fn l1_alias(base: &str) -> String {
    format!("terok-l1-cli:{}", base_tag(base))
}

/// `terok-l1-cli:<base>-<sorted agents joined by ->` (`-empty` for none), or with a digest of the
/// selection when the readable form would be too long.
pub fn l1_tag(base: &str, agents: &[String]) -> String {
    let mut base_part = base_tag(base);
    let mut sorted: Vec<&str> = agents.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let readable = if sorted.is_empty() {
        "empty".to_owned()
    } else {
        sorted
            .iter()
            .map(|a| base_tag(a))
            .collect::<Vec<_>>()
            .join("-")
    };
    if base_part.len() + 1 + readable.len() <= MAX_TAG_LEN {
        return format!("terok-l1-cli:{base_part}-{readable}");
    }
    let digest = sha1_hex(&sorted.join(","));
    let max_base = MAX_TAG_LEN - 1 - AGENT_DIGEST_LEN;
    base_part.truncate(max_base);
    format!("terok-l1-cli:{base_part}-{}", &digest[..AGENT_DIGEST_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_base_when_blank() {
        assert_eq!(base_tag(""), "ubuntu-24.04");
        assert_eq!(base_tag("   "), "ubuntu-24.04");
        assert_eq!(l0_tag(""), "terok-l0:ubuntu-24.04");
    }

    #[test]
    fn registry_and_port_collapse_to_dashes() {
        assert_eq!(
            base_tag("localhost:5000/Ubuntu:24.04"),
            "localhost-5000-ubuntu-24.04"
        );
        assert_eq!(
            base_tag("nvcr.io/nvidia/cuda:13.0.0-devel-ubi9"),
            "nvcr.io-nvidia-cuda-13.0.0-devel-ubi9"
        );
    }

    #[test]
    fn only_separators_falls_back_to_default() {
        assert_eq!(base_tag("///"), "ubuntu-24.04");
        assert_eq!(base_tag("-.-"), "ubuntu-24.04");
    }

    #[test]
    fn overlong_base_gets_digest() {
        let long = format!("registry.example/{}", "a".repeat(200));
        let tag = base_tag(&long);
        assert_eq!(tag.len(), 120);
        assert_eq!(&tag[..111], &sanitize(&long)[..111]);
        assert_eq!(&tag[112..], &sha1_hex(&long)[..8]);
    }

    #[test]
    fn l1_suffix_is_sorted_names() {
        assert_eq!(
            l1_tag("ubuntu:24.04", &names(&["codex", "claude"])),
            "terok-l1-cli:ubuntu-24.04-claude-codex"
        );
        assert_eq!(
            l1_tag("ubuntu:24.04", &[]),
            "terok-l1-cli:ubuntu-24.04-empty"
        );
        assert_eq!(l1_alias("ubuntu:24.04"), "terok-l1-cli:ubuntu-24.04");
    }

    #[test]
    fn the_all_selection_tag_is_readable() {
        let all = names(&[
            "blablador",
            "caddy",
            "claude",
            "codex",
            "copilot",
            "gh",
            "glab",
            "kisski",
            "opencode",
            "openrouter",
            "sonar",
            "toad",
            "vibe",
        ]);
        let tag = l1_tag("ubuntu:24.04", &all);
        assert_eq!(
            tag,
            "terok-l1-cli:ubuntu-24.04-blablador-caddy-claude-codex-copilot-gh-glab-kisski-opencode-openrouter-sonar-toad-vibe"
        );
        assert_eq!(tag.split_once(':').unwrap().1.len(), 100);
    }

    #[test]
    fn overlong_selection_uses_digest() {
        let many: Vec<String> = (0..30).map(|i| format!("agent{i:02}")).collect();
        let tag = l1_tag("ubuntu:24.04", &many);
        let mut sorted = many.clone();
        sorted.sort();
        let digest = sha1_hex(&sorted.join(","));
        assert_eq!(tag, format!("terok-l1-cli:ubuntu-24.04-{}", &digest[..12]));
    }

    #[test]
    fn overlong_base_and_selection_trim_the_base() {
        let long = "b".repeat(119);
        let many: Vec<String> = (0..3).map(|i| format!("agent{i}")).collect();
        let tag = l1_tag(&long, &many);
        let part = tag.split_once(':').unwrap().1;
        assert_eq!(part.len(), 120);
        assert!(part.starts_with(&"b".repeat(107)));
    }
}
