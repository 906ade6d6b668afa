//! Preflight: what `run` needs, checked in order before anything is created.
//!
//! The order is the order of dependence: the Podman API, the images (or a build), the vault
//! when the agent's provider is routed through it, the agent's credential. Each unmet
//! requirement becomes one [`Finding`] with its fix; all of them are reported together, and the
//! launch stops if any is required. Optional ones (the vault, a credential) say what going
//! without them means, and the launch goes on. `--yes` fixes what can be fixed here: it builds
//! missing or out-of-date images (on a terminal, `run` asks instead).

use std::path::Path;

use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::db::{CredentialDb, DbError, DEFAULT_SET};
use crate::launcher::vault::location::{services_mode, ServicesMode};
use crate::launcher::vault::providers::provider_of;

/// One unmet requirement or missing option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether the launch cannot go on without it.
    pub required: bool,
    pub what: String,
    pub fix: String,
}

impl Finding {
    pub fn required(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            required: true,
            what: what.into(),
            fix: fix.into(),
        }
    }

    pub fn optional(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            required: false,
            what: what.into(),
            fix: fix.into(),
        }
    }
}

/// What the vault means for a launch of `agent`: nothing when its provider is not routed.
pub fn vault_findings(paths: &HostPaths, roster: &Roster, agent: &str) -> Vec<Finding> {
    vault_check(paths, roster, agent).0
}

/// [`vault_findings`], and the vault when it was opened (so the launch need not unlock it, and
/// run its passphrase command, a second time).
pub fn vault_check(
    paths: &HostPaths,
    roster: &Roster,
    agent: &str,
) -> (Vec<Finding>, Option<CredentialDb>) {
    if !roster.vault_routes().contains_key(agent) {
        return (Vec::new(), None);
    }
    let provider = provider_of(agent);
    let config = LayeredConfig::load(&paths.config_files);
    let required = config
        .value("vault", "required")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let finding = |what: String, fix: &str| Finding {
        required,
        what,
        fix: fix.to_owned(),
    };
    let db = match CredentialDb::open_host(paths) {
        Ok(db) => db,
        Err(DbError::Missing(path)) => {
            let found = vec![finding(
                format!(
                    "no vault at {}: {agent} gets no token and asks for its own login",
                    path.display()
                ),
                "create the vault with terok-sandbox (`terok-sandbox setup`), then `terok-executor auth`",
            )];
            return (found, None);
        }
        Err(e) => {
            let found = vec![finding(
                format!("the vault cannot be opened ({e}): {agent} gets no token"),
                "set credentials.passphrase_command, or run `terok-sandbox vault unlock`",
            )];
            return (found, None);
        }
    };
    let mut out = Vec::new();
    match db.list_credentials(DEFAULT_SET) {
        Ok(stored) if stored.iter().any(|p| p == provider) => {}
        Ok(_) => out.push(Finding::optional(
            format!("the vault holds no {provider} credential: {agent} will ask for a login"),
            format!(
                "`terok-executor auth {agent}` (or, from the editor, the `{agent}:vault-login` method)"
            ),
        )),
        Err(e) => out.push(finding(format!("cannot read the vault: {e}"), "check it with `terok-executor doctor`")),
    }
    if services_mode(&config).0 == ServicesMode::Socket {
        if let Err(e) = super::broker::sandbox_command(&config) {
            out.push(finding(
                format!("{e:#}"),
                "install terok-sandbox, or set vault.sandbox_command in the config",
            ));
        }
    }
    (out, Some(db))
}

/// The workspace's git remotes reached over SSH: the container holds no SSH key, so fetches
/// and pushes to them from inside fail. Optional: the agent works on the files either way.
pub fn ssh_findings(workspace: &Path) -> Vec<Finding> {
    // Read without following links: the agent may have written the workspace.
    let Ok(Some(config)) = crate::fsutil::read_in_tree(workspace, Path::new(".git/config")) else {
        return Vec::new();
    };
    ssh_remotes(&config)
        .into_iter()
        .map(|(remote, url)| {
            Finding::optional(
                format!(
                    "the remote {remote} ({url}) is reached over SSH, and the container holds \
                     no SSH key: fetches and pushes to it from inside will fail"
                ),
                "push from the host, or use an HTTPS URL for it (`git remote set-url`) with \
                 the forge's credential in the vault (`terok-executor auth gh` or `auth glab`)",
            )
        })
        .collect()
}

/// `(remote, url)` for each remote of a git config whose URL is SSH (`ssh://…`, `git+ssh://…`
/// or scp-like `user@host:path`).
fn ssh_remotes(config: &str) -> Vec<(String, String)> {
    let mut remote: Option<String> = None;
    let mut out = Vec::new();
    for line in config.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            remote = section
                .strip_prefix("remote \"")
                .and_then(|r| r.strip_suffix('"'))
                .map(str::to_owned);
            continue;
        }
        let Some(name) = &remote else { continue };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !matches!(key.trim(), "url" | "pushurl") {
            continue;
        }
        let url = value.trim().trim_matches('"');
        let scp_like = !url.contains("://")
            && url
                .split_once(':')
                .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        let ssh = url.starts_with("ssh://") || url.starts_with("git+ssh://") || scp_like;
        if ssh && !out.iter().any(|(r, _): &(String, String)| r == name) {
            out.push((name.clone(), url.to_owned()));
        }
    }
    out
}

/// Prints the findings; an error when any is required (nothing has been created yet).
pub fn report(findings: &[Finding]) -> anyhow::Result<()> {
    for f in findings.iter().filter(|f| !f.required) {
        eprintln!("note: {}\n      fix: {}", f.what, f.fix);
    }
    let unmet: Vec<&Finding> = findings.iter().filter(|f| f.required).collect();
    if unmet.is_empty() {
        return Ok(());
    }
    for f in &unmet {
        eprintln!("error: {}\n       fix: {}", f.what, f.fix);
    }
    anyhow::bail!(
        "{} requirement{} unmet; nothing was started",
        unmet.len(),
        if unmet.len() == 1 { "" } else { "s" }
    )
}

/// Asks on the terminal whether to build; false when there is no terminal to ask on.
pub fn ask_to_build(what: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{what}. Build now? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::paths::temp_host_paths;
    use crate::launcher::roster::load_roster;

    #[test]
    fn a_routed_agent_without_a_vault_is_a_note_unless_the_vault_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let paths = temp_host_paths(dir.path());
        let roster = load_roster(None).unwrap();
        let found = vault_findings(&paths, &roster, "claude");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].required);
        assert!(found[0].what.contains("no vault") && found[0].fix.contains("terok-sandbox"));
        assert!(
            vault_findings(&paths, &roster, "gh").len() == 1,
            "gh routes too"
        );
        assert!(
            vault_findings(&paths, &roster, "toad").is_empty(),
            "not routed"
        );

        std::fs::write(dir.path().join("config.yml"), "vault:\n  required: true\n").unwrap();
        let found = vault_findings(&paths, &roster, "claude");
        assert!(found[0].required, "{found:?}");
        let err = report(&found).unwrap_err();
        assert!(err.to_string().contains("1 requirement unmet"), "{err}");
        assert!(report(&[Finding::optional("x", "y")]).is_ok());
    }

    #[test]
    fn ssh_remotes_are_a_note_and_https_ones_are_not() {
        let config = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@github.com:o/r.git\n\
                      \tfetch = +refs/heads/*:refs/remotes/origin/*\n[remote \"mirror\"]\n\
                      \turl = https://gitlab.com/o/r.git\n\tpushurl = ssh://git@gitlab.com/o/r.git\n\
                      [remote \"web\"]\n\turl = https://github.com/o/r.git\n[branch \"main\"]\n\
                      \tremote = origin\n";
        assert_eq!(
            ssh_remotes(config),
            [
                ("origin".to_owned(), "git@github.com:o/r.git".to_owned()),
                (
                    "mirror".to_owned(),
                    "ssh://git@gitlab.com/o/r.git".to_owned()
                ),
            ]
        );
        let ws = tempfile::tempdir().unwrap();
        assert!(ssh_findings(ws.path()).is_empty(), "not a repository");
        std::fs::create_dir(ws.path().join(".git")).unwrap();
        std::fs::write(ws.path().join(".git/config"), config).unwrap();
        let found = ssh_findings(ws.path());
        assert_eq!(found.len(), 2);
        assert!(!found[0].required && found[0].what.contains("git@github.com:o/r.git"));
        assert!(found[0].fix.contains("git remote set-url"));
    }
}
