//! The build context: an in-memory tar archive of the files the Dockerfiles `COPY`.
//!
//! Layout: `scripts/` (container helper scripts, bundled in the binary), `toad-agents/`, `tmux/`,
//! `help.d/`
//! (rendered from the selection), and the two Dockerfiles `L0.Dockerfile` and `L1.cli.Dockerfile`.
//! Entries have fixed owners and times so that identical inputs give identical archives (and
//! Podman's layer cache sees no change).

use std::collections::BTreeSet;

/// Helper scripts shipped in the binary (file name, content), staged in the image under
/// `/tmp/terok-scripts/`.
macro_rules! shipped {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../resources/", $dir, "/", $name)))),*]
    };
}

pub const SCRIPTS: &[(&str, &[u8])] = shipped!("scripts":
    "Caddyfile",
    "codex-ephemeral-login",
    "ensure-bridges.sh",
    "hilfe",
    "init-ssh-and-repo.sh",
    "opencode-provider",
    "opencode-provider-acp",
    "opencode-session-plugin.mjs",
    "opencode-toad",
    "setup-codex-auth.sh",
    "ssh-agent-bridge.sh",
    "terok-acp-env.sh",
    "terok-claude-acp",
    "terok-codex-acp",
    "terok-copilot-acp",
    "terok-env-git-identity.sh",
    "terok-env.sh",
    "terok-installed-versions",
    "terok-opencode-acp",
    "terok-toad-entry",
    "terok-vibe-acp",
    "toad",
    "toad-install-agents",
);

/// Toad's descriptions of the OpenCode-based ACP agents, copied by toad's install snippet.
pub const TOAD_AGENTS: &[(&str, &[u8])] = shipped!("toad-agents":
    "blablador.helmholtz.de.toml",
    "kisski.academiccloud.de.toml",
    "openrouter.ai.terok.toml",
);

const TMUX_CONF: &[u8] = include_bytes!("../../resources/tmux/container-tmux.conf");

/// A certificate authority to trust in the images: a file name and PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    pub name: String,
    pub pem: Vec<u8>,
}

impl CaCert {
    /// Reads a PEM file; it must hold at least one certificate. Numbered by its position, so two
    /// files of the same name stay apart.
    pub fn read(path: &std::path::Path, index: usize) -> Result<CaCert, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        let stem: String = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(CaCert {
            name: format!("{index:02}-{stem}"),
            pem,
        })
    }
}

/// Dockerfile names inside the context.
pub const L0_DOCKERFILE: &str = "L0.Dockerfile";
pub const L1_DOCKERFILE: &str = "L1.cli.Dockerfile";

/// Where install snippets find the staged scripts.
const STAGED_SCRIPTS: &str = "/tmp/terok-scripts/";

/// The files of one build context.
#[derive(Debug, Clone, Default)]
pub struct Context {
    files: Vec<(String, Vec<u8>, u32)>,
}

impl Context {
    /// The standard context: scripts, tmux config, help fragments and the two Dockerfiles.
    pub fn standard(l0: &str, l1: &str, help: &[(&str, String)]) -> Context {
        let mut ctx = Context::default();
        // `COPY ca-certs/` needs the directory even when no certificate is added.
        ctx.add("ca-certs/.keep", Vec::new(), 0o644);
        for (name, body) in SCRIPTS {
            ctx.add(&format!("scripts/{name}"), body.to_vec(), 0o755);
        }
        for (name, body) in TOAD_AGENTS {
            ctx.add(&format!("toad-agents/{name}"), body.to_vec(), 0o644);
        }
        ctx.add("tmux/container-tmux.conf", TMUX_CONF.to_vec(), 0o644);
        // An empty help.d still has to exist for `COPY help.d/`.
        ctx.add("help.d/.keep", Vec::new(), 0o644);
        for (name, text) in help {
            ctx.add(&format!("help.d/{name}"), text.as_bytes().to_vec(), 0o644);
        }
        ctx.add(L0_DOCKERFILE, l0.as_bytes().to_vec(), 0o644);
        ctx.add(L1_DOCKERFILE, l1.as_bytes().to_vec(), 0o644);
        ctx
    }

    /// Adds the extra certificate authorities L0 installs (`ca-certs/<name>.crt`).
    pub fn add_ca_certs(&mut self, certs: &[CaCert]) {
        for cert in certs {
            self.add(
                &format!("ca-certs/{}.crt", cert.name),
                cert.pem.clone(),
                0o644,
            );
        }
    }

    /// Adds (or replaces) a file.
    pub fn add(&mut self, path: &str, body: Vec<u8>, mode: u32) {
        self.files.retain(|(p, _, _)| p != path);
        self.files.push((path.to_owned(), body, mode));
    }

    /// Whether the context holds `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.files.iter().any(|(p, _, _)| p == path)
    }

    /// The paths, in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(p, _, _)| p.as_str())
    }

    /// A digest of every file but those in `skip` (path, mode and content, in path order): what
    /// a build from this context depends on.
    pub fn fingerprint(&self, skip: &[&str]) -> String {
        use sha2::Digest as _;
        let mut files: Vec<&(String, Vec<u8>, u32)> = self
            .files
            .iter()
            .filter(|(p, _, _)| !skip.contains(&p.as_str()))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hash = sha2::Sha256::new();
        for (path, body, mode) in files {
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update(mode.to_le_bytes());
            hash.update((body.len() as u64).to_le_bytes());
            hash.update(body);
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The archive: sorted paths, owner 0:0, mtime 0.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut files: Vec<&(String, Vec<u8>, u32)> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(*mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, body.as_slice())?;
        }
        builder.into_inner()
    }
}

/// Scripts that `dockerfile` copies from the staged directory but the context does not ship.
pub fn missing_scripts(dockerfile: &str, ctx: &Context) -> BTreeSet<String> {
    dockerfile
        .match_indices(STAGED_SCRIPTS)
        .filter_map(|(i, _)| {
            let rest = &dockerfile[i + STAGED_SCRIPTS.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            (!name.is_empty() && !ctx.contains(&format!("scripts/{name}"))).then(|| name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_and_ignore_order_and_skipped_files() {
        let ctx = Context::standard("FROM a", "FROM b", &[]);
        let l0 = ctx.fingerprint(&[L1_DOCKERFILE]);
        assert_eq!(l0.len(), 64);
        let other_l1 = Context::standard("FROM a", "FROM c", &[]);
        assert_eq!(
            other_l1.fingerprint(&[L1_DOCKERFILE]),
            l0,
            "L1's file is not L0's"
        );
        assert_ne!(other_l1.fingerprint(&[]), ctx.fingerprint(&[]));
        let mut script = ctx.clone();
        script.add("scripts/ensure-bridges.sh", b"echo changed".to_vec(), 0o755);
        assert_ne!(script.fingerprint(&[L1_DOCKERFILE]), l0);
        let mut mode = ctx.clone();
        mode.add("tmux/container-tmux.conf", TMUX_CONF.to_vec(), 0o600);
        assert_ne!(mode.fingerprint(&[L1_DOCKERFILE]), l0);
        let mut reordered = Context::default();
        for (path, body, m) in ctx.files.iter().rev() {
            reordered.add(path, body.clone(), *m);
        }
        assert_eq!(reordered.fingerprint(&[L1_DOCKERFILE]), l0);
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mode = e.header().mode().unwrap();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body).unwrap();
                (path, mode, body)
            })
            .collect()
    }

    #[test]
    fn standard_context_layout() {
        let ctx = Context::standard("FROM a\n", "FROM b\n", &[("agents.txt", "x\n".into())]);
        let list = entries(&ctx.to_tar().unwrap());
        let paths: Vec<&str> = list.iter().map(|(p, _, _)| p.as_str()).collect();
        assert!(paths.contains(&"L0.Dockerfile") && paths.contains(&"L1.cli.Dockerfile"));
        assert!(paths.contains(&"scripts/init-ssh-and-repo.sh"));
        assert!(paths.contains(&"tmux/container-tmux.conf"));
        assert!(paths.contains(&"help.d/agents.txt"));
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "archive order is sorted");
        let (_, mode, _) = list.iter().find(|(p, _, _)| p == "scripts/hilfe").unwrap();
        assert_eq!(*mode, 0o755);
        let (_, _, body) = list
            .iter()
            .find(|(p, _, _)| p == "L1.cli.Dockerfile")
            .unwrap();
        assert_eq!(body, b"FROM b\n");
    }

    #[test]
    fn ca_certs_are_read_checked_and_added() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("corp proxy.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad = dir.path().join("key.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let cert = CaCert::read(&good, 1).unwrap();
        assert_eq!(cert.name, "01-corp_proxy");
        assert!(CaCert::read(&bad, 2)
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(CaCert::read(&dir.path().join("missing"), 3)
            .unwrap_err()
            .contains("cannot read"));
        let mut ctx = Context::standard("", "", &[]);
        assert!(ctx.contains("ca-certs/.keep"));
        ctx.add_ca_certs(&[cert]);
        assert!(ctx.contains("ca-certs/01-corp_proxy.crt"));
    }

    #[test]
    fn archives_are_reproducible() {
        let a = Context::standard("x", "y", &[]).to_tar().unwrap();
        let b = Context::standard("x", "y", &[]).to_tar().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_script_the_templates_use_is_shipped() {
        let ctx = Context::standard("", "", &[]);
        let l1 = include_str!("../../resources/templates/l1.agent-cli.Dockerfile.template");
        assert!(missing_scripts(l1, &ctx).is_empty());
    }

    #[test]
    fn every_entry_has_its_scripts() {
        let roster = crate::launcher::roster::load_roster(None).unwrap();
        let ctx = Context::standard("", "", &[]);
        let mut complete = Vec::new();
        for name in roster.installs().keys() {
            let with_deps = roster
                .resolve_selection(&crate::launcher::roster::Selection::Names(vec![
                    name.clone()
                ]))
                .unwrap();
            let shipped = with_deps.iter().all(|n| {
                let install = &roster.installs()[n];
                missing_scripts(&install.run_as_root, &ctx).is_empty()
                    && missing_scripts(&install.run_as_dev, &ctx).is_empty()
            });
            if shipped {
                complete.push(name.as_str());
            }
        }
        let all: Vec<&str> = roster.installs().keys().map(String::as_str).collect();
        assert_eq!(complete, all);
    }

    #[test]
    fn missing_scripts_are_named() {
        let ctx = Context::standard("", "", &[]);
        let df = "RUN cp /tmp/terok-scripts/terok-claude-acp /x; cp /tmp/terok-scripts/nope.sh /y\nCOPY scripts/ /tmp/terok-scripts/\n";
        let missing: Vec<String> = missing_scripts(df, &ctx).into_iter().collect();
        assert_eq!(missing, ["nope.sh"]);
    }
}
