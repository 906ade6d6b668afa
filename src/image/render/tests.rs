//! Rendering tests: snapshots of whole Dockerfiles plus the rules they rely on.
//!
//! Snapshots live in `snapshots/`; run with `UPDATE_SNAPSHOTS=1` to rewrite them after an
//! intended template change, then review the diff.

use std::path::PathBuf;

use super::*;
use crate::image::Sources;
use crate::launcher::roster::load_roster;

fn roster() -> Roster {
    load_roster(None).expect("bundled roster loads")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn check_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/image/render/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its snapshot at line {}:\n  expected: {:?}\n  actual:   {:?}\n(run with UPDATE_SNAPSHOTS=1 to accept)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn l0_deb_snapshot() {
    let out = render_l0(&Templates::bundled(), "ubuntu:24.04", Family::Deb).unwrap();
    check_snapshot("l0.deb.Dockerfile", &out);
}

#[test]
fn l0_rpm_snapshot() {
    let out = render_l0(&Templates::bundled(), "fedora:43", Family::Rpm).unwrap();
    check_snapshot("l0.rpm.Dockerfile", &out);
}

#[test]
fn l1_deb_claude_gh_snapshot() {
    let out = render_l1(
        &Templates::bundled(),
        &roster(),
        "terok-l0:ubuntu-24.04",
        Family::Deb,
        Sources::Vendors,
        &names(&["claude", "gh"]),
    )
    .unwrap();
    check_snapshot("l1.deb.claude-gh.Dockerfile", &out);
}

#[test]
fn l1_rpm_gh_snapshot() {
    let out = render_l1(
        &Templates::bundled(),
        &roster(),
        "terok-l0:fedora-43",
        Family::Rpm,
        Sources::Vendors,
        &names(&["gh"]),
    )
    .unwrap();
    check_snapshot("l1.rpm.gh.Dockerfile", &out);
}

#[test]
fn l1_empty_selection_snapshot() {
    let out = render_l1(
        &Templates::bundled(),
        &roster(),
        "terok-l0:ubuntu-24.04",
        Family::Deb,
        Sources::Vendors,
        &[],
    )
    .unwrap();
    check_snapshot("l1.deb.empty.Dockerfile", &out);
}

#[test]
fn l0_dev_user_and_family_branches() {
    let deb = render_l0(&Templates::bundled(), "ubuntu:24.04", Family::Deb).unwrap();
    let rpm = render_l0(&Templates::bundled(), "fedora:43", Family::Rpm).unwrap();
    assert!(deb.contains("ARG BASE_IMAGE=ubuntu:24.04\n"));
    assert!(deb.contains("DEBIAN_FRONTEND=noninteractive"));
    assert!(deb.contains("apt-get install") && !deb.contains("dnf install"));
    assert!(rpm.contains("dnf install") && !rpm.contains("apt-get"));
    assert!(!rpm.contains("DEBIAN_FRONTEND"));
    assert!(rpm.contains("pam_succeed_if") && !deb.contains("pam_succeed_if"));
    for out in [&deb, &rpm] {
        assert!(out.contains("useradd -m -u 1000 -g dev"));
        assert!(out.contains("dev ALL=(ALL) NOPASSWD: ALL"));
        assert!(out.contains("chmod 0777 /workspace"));
        assert!(
            out.ends_with("CMD [\"init-ssh-and-repo.sh\"]\n"),
            "trailing newline kept"
        );
    }
}

#[test]
fn l1_label_and_manifest_follow_the_selection() {
    let out = render_l1(
        &Templates::bundled(),
        &roster(),
        "terok-l0:ubuntu-24.04",
        Family::Deb,
        Sources::Vendors,
        &names(&["claude", "gh"]),
    )
    .unwrap();
    assert!(out
        .contains("LABEL ai.terok.agents=\"claude,gh\" \\\n      ai.terok.sources=\"vendors\"\n"));
    assert!(out.contains("TEROK_INSTALLED_AGENTS='claude,gh' TEROK_BUILD_SOURCES='vendors'"));
    assert!(out.contains("terok-installed-versions > /etc/terok/installed.env"));
    assert!(out.contains("/etc/bash.bashrc"));
    // gh's snippet was rendered with family=deb: its apt branch only.
    assert!(out.contains("githubcli-archive-keyring.gpg"));
    assert!(!out.contains("gh-cli.repo"));
    assert!(!out.contains("{%"), "no unrendered template syntax");
    // Root snippets come before the switch to dev, dev snippets after it.
    let root_at = out.find("terok-claude-acp").unwrap();
    let user_at = out.find("USER dev\nWORKDIR /home/dev").unwrap();
    let npm_at = out
        .find("npm install -g @agentclientprotocol/claude-agent-acp@")
        .unwrap();
    assert!(npm_at < root_at && root_at < user_at);
}

#[test]
fn unknown_selected_names_are_skipped_not_rendered() {
    let out = render_l1(
        &Templates::bundled(),
        &roster(),
        "l0",
        Family::Rpm,
        Sources::Vendors,
        &names(&["coderabbit"]),
    )
    .unwrap();
    assert!(out.contains("LABEL ai.terok.agents=\"coderabbit\""));
    assert!(out.contains("/etc/bashrc"));
}

#[test]
fn snippet_syntax_error_names_the_entry() {
    let err = render_snippet(
        "broken",
        "RUN {% if family %}",
        Family::Deb,
        Sources::Vendors,
    )
    .unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn custom_templates_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(L0_TEMPLATE), "FROM {{ BASE_IMAGE }}\n").unwrap();
    std::fs::write(
        dir.path().join(L1_TEMPLATE),
        "FROM {{ BASE_IMAGE }}\nLABEL {{ agents_label }}=\"{{ installed_agents_csv }}\"\n",
    )
    .unwrap();
    let t = Templates::from_dir(dir.path()).unwrap();
    assert_eq!(render_l0(&t, "x:1", Family::Deb).unwrap(), "FROM x:1\n");
    let l1 = render_l1(
        &t,
        &roster(),
        "l0:1",
        Family::Deb,
        Sources::Vendors,
        &names(&["gh"]),
    )
    .unwrap();
    assert_eq!(l1, "FROM l0:1\nLABEL ai.terok.agents=\"gh\"\n");
    assert!(Templates::from_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn help_fragments_split_by_section_with_escapes_decoded() {
    let files = help_fragments(&roster(), &names(&["claude", "coderabbit", "gh"]));
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["agents.txt", "dev-tools.txt"]);
    assert!(files[0].1.starts_with("  \u{1b}[36mclaude\u{1b}[0m"));
    assert!(files[1].1.contains("\u{1b}[36mgh\u{1b}[0m"));
    assert!(files.iter().all(|(_, text)| text.ends_with('\n')));
    assert!(help_fragments(&roster(), &[]).is_empty());
}

#[test]
fn decode_escapes_keeps_non_ascii_and_unknown_escapes() {
    assert_eq!(decode_escapes(r"\033[36mä\033[0m"), "\u{1b}[36mä\u{1b}[0m");
    assert_eq!(decode_escapes(r"\x1b\u00e4\n\\"), "\u{1b}ä\n\\");
    assert_eq!(decode_escapes(r"a\qb\x1"), r"a\qb\x1");
    assert_eq!(decode_escapes("trailing\\"), "trailing\\");
}

#[test]
fn roster_snippets_render_for_both_families() {
    let r = roster();
    for (name, install) in r.installs() {
        for family in [Family::Deb, Family::Rpm] {
            for sources in [Sources::Vendors, Sources::Registries] {
                for snippet in [&install.run_as_root, &install.run_as_dev] {
                    let out = render_snippet(name, snippet, family, sources).unwrap();
                    assert!(!out.contains("{%"), "{name}/{family}/{sources}");
                }
            }
        }
    }
}

/// Every address a registry-only build fetches from: URLs in the rendered L1 of every entry.
fn fetched_hosts(dockerfile: &str) -> Vec<String> {
    let mut hosts: Vec<String> = dockerfile
        .match_indices("://")
        .map(|(i, _)| {
            let rest = &dockerfile[i + 3..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

#[test]
fn registry_only_builds_reach_nothing_but_the_registries() {
    let r = roster();
    let all: Vec<String> = r.installs().keys().cloned().collect();
    for family in [Family::Deb, Family::Rpm] {
        let out = render_l1(
            &Templates::bundled(),
            &r,
            "l0",
            family,
            Sources::Registries,
            &all,
        )
        .unwrap();
        // The npm registry (overridable by NPM_CONFIG_REGISTRY) is the only host named.
        assert_eq!(fetched_hosts(&out), ["registry.npmjs.org"], "{family}");
        for vendor_route in [
            "nodesource",
            "install.sh",
            "| bash",
            "| sh",
            "astral.sh",
            "github.com/",
        ] {
            assert!(!out.contains(vendor_route), "{family}: {vendor_route}");
        }
        assert!(out.contains(&format!("\"node-linux-$ARCH\" {NODE_VERSION}")));
        assert!(out.contains("--no-python-downloads"));
        assert!(
            out.contains("LABEL ai.terok.agents=")
                && out.contains("ai.terok.sources=\"registries\"")
        );
    }
    let vendors = render_l1(
        &Templates::bundled(),
        &r,
        "l0",
        Family::Deb,
        Sources::Vendors,
        &all,
    )
    .unwrap();
    assert!(
        vendors.contains("deb.nodesource.com") && vendors.contains("ai.terok.sources=\"vendors\"")
    );
}

#[test]
fn agents_are_installed_pinned_and_started_without_npx() {
    let r = roster();
    let all: Vec<String> = r.installs().keys().cloned().collect();
    for sources in [Sources::Vendors, Sources::Registries] {
        let out = render_l1(&Templates::bundled(), &r, "l0", Family::Deb, sources, &all).unwrap();
        for line in out.lines().filter(|l| l.contains("npm install -g")) {
            for package in line
                .split("npm install -g")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_whitespace()
            {
                let version = package.rsplit_once('@');
                assert!(
                    matches!(version, Some((name, v)) if !name.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')),
                    "{sources}: {package} is not pinned"
                );
            }
        }
        for (line, package) in [
            ("pipx install", "mistral-vibe=="),
            ("uv tool install", "batrachian-toad=="),
        ] {
            assert!(
                out.lines().any(|l| l.contains(line) && l.contains(package)),
                "{sources}: {package}"
            );
        }
    }
    for (name, body) in crate::image::context::SCRIPTS {
        if name.ends_with("-acp") {
            let text = String::from_utf8_lossy(body);
            assert!(
                !text.contains("npx"),
                "{name} starts its adapter through npx"
            );
        }
    }
}
