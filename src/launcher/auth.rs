//! `terok-executor auth`: an agent's credential into the vault, its status, and logging out.
//!
//! The credential goes into terok-sandbox's encrypted database under the agent's vault provider
//! (`claude` → `anthropic`, ...), in the credential set the user names (default `default`), in
//! the JSON shape the vault's broker reads. Then the agent's vault config patch is applied, as a
//! launch would. Secrets are read from a file, stdin or a prompt that does not echo, and are
//! never printed or logged. OAuth capture flows (a browser login on the host) are not offered:
//! API keys and personal tokens only.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};

use super::paths::{HostPaths, LayeredConfig};
use super::roster::{CredentialType, Roster};
use super::vault::db::{CredentialDb, DEFAULT_SET};
use super::vault::providers::{entries_of, provider_of};
use super::vault::{resolve_vault_location, write_vault_config};

/// `terok-executor auth`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["agent", "status", "logout"]))]
pub struct AuthArgs {
    /// The agent (or tool) whose API key to store.
    pub agent: Option<String>,
    /// Read the key from FILE (`-`: stdin) instead of asking for it.
    #[arg(long, value_name = "FILE", requires = "agent")]
    pub api_key_file: Option<PathBuf>,
    /// List the providers that hold a credential (never the secrets).
    #[arg(long)]
    pub status: bool,
    /// Remove the credential of AGENT's provider.
    #[arg(long, value_name = "AGENT")]
    pub logout: Option<String>,
    /// The credential set.
    #[arg(long = "set", default_value = DEFAULT_SET)]
    pub set: String,
    /// With --status: JSON on stdout.
    #[arg(long, requires = "status")]
    pub json: bool,
}

fn open_vault(paths: &HostPaths) -> anyhow::Result<CredentialDb> {
    Ok(CredentialDb::open_host(paths)?)
}

/// The stored form of a key for an entry with credential type `kind`.
pub fn credential_record(kind: CredentialType, key: &str, host: Option<&str>) -> Value {
    match kind {
        CredentialType::OauthToken => {
            json!({"type": "oauth_token", "token": key, "host": host.unwrap_or("github.com")})
        }
        CredentialType::Pat => {
            json!({"type": "pat", "token": key, "host": host.unwrap_or("gitlab.com")})
        }
        CredentialType::ApiKey | CredentialType::Oauth => json!({"type": "api_key", "key": key}),
    }
}

pub fn run(args: &AuthArgs) -> anyhow::Result<()> {
    let paths = HostPaths::from_env();
    let roster = Roster::load(&paths).context("cannot load the agent roster")?;
    if args.status {
        return status(&paths, &roster, args);
    }
    if let Some(agent) = &args.logout {
        let provider = routed_provider(&roster, agent)?;
        let db = open_vault(&paths)?;
        if db.delete_credential(&args.set, provider)? {
            eprintln!(
                "removed the {provider} credential ({agent}) from set {}",
                args.set
            );
        } else {
            eprintln!("set {} holds no {provider} credential ({agent})", args.set);
        }
        return Ok(());
    }
    let Some(agent) = &args.agent else {
        bail!("name an agent, or use --status or --logout");
    };
    let provider = routed_provider(&roster, agent)?;
    let kind = roster.vault_routes()[agent.as_str()].credential_type;
    // Open the vault before asking for the key: a locked vault should not cost a paste.
    let db = open_vault(&paths)?;
    let key = read_key(args, agent)?;
    db.store_credential(&args.set, provider, &credential_record(kind, &key, None))?;
    eprintln!(
        "stored the {provider} credential for {agent} in set {}",
        args.set
    );
    let config = LayeredConfig::load(&paths.config_files);
    match resolve_vault_location(&config) {
        Ok(location) => {
            if let Some(file) = write_vault_config(&roster, &paths.mounts_dir, agent, &location)? {
                eprintln!("pointed {agent} at the vault in {}", file.display());
            }
        }
        Err(e) => eprintln!("the vault config patch is left for the next launch: {e}"),
    }
    Ok(())
}

/// `agent`'s vault provider; an error for entries the vault does not route.
fn routed_provider<'a>(roster: &Roster, agent: &'a str) -> anyhow::Result<&'a str> {
    if roster.entry(agent).is_none() {
        bail!("no roster entry named {agent:?} (see `terok-executor agents --all`)");
    }
    if !roster.vault_routes().contains_key(agent) {
        bail!("{agent} has no vault route, so the vault cannot hold its credential");
    }
    Ok(provider_of(agent))
}

fn read_key(args: &AuthArgs, agent: &str) -> anyhow::Result<String> {
    let raw = match &args.api_key_file {
        Some(path) if path.as_os_str() == "-" => read_line(std::io::stdin().lock())?,
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None if std::io::stdin().is_terminal() => prompt(agent)?,
        None => read_line(std::io::stdin().lock())?,
    };
    let key = raw.trim().to_owned();
    if key.is_empty() {
        bail!("no key given");
    }
    if key.chars().any(char::is_control) || key.contains(' ') {
        bail!("the key holds spaces or control characters; check what was pasted");
    }
    Ok(key)
}

fn read_line(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("cannot read the key")?;
    Ok(line)
}

/// Asks on the terminal with echo off (and restores it, even when reading fails).
fn prompt(agent: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    // Echo goes off before the prompt shows: a key typed (or pasted) the moment the prompt
    // appears is never echoed.
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn echo off")?;
    eprint!("API key for {agent} (not shown): ");
    let _ = std::io::stderr().flush();
    let line = read_line(stdin.lock());
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    line
}

fn status(paths: &HostPaths, roster: &Roster, args: &AuthArgs) -> anyhow::Result<()> {
    let db = open_vault(paths)?;
    let providers = db.list_credentials(&args.set)?;
    let routed: Vec<&str> = roster.vault_routes().keys().map(String::as_str).collect();
    let rows: Vec<Value> = providers
        .iter()
        .map(|p| {
            let kind = db
                .load_credential(&args.set, p)
                .ok()
                .flatten()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
            json!({"provider": p, "type": kind, "agents": entries_of(p, routed.iter().copied())})
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("set {} holds no credentials", args.set);
        return Ok(());
    }
    for row in &rows {
        let agents: Vec<&str> = row["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<12} {:<12} {}",
            row["provider"].as_str().unwrap_or(""),
            row["type"].as_str().unwrap_or("?"),
            agents.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_brokers_shapes() {
        assert_eq!(
            credential_record(CredentialType::ApiKey, "k", None),
            json!({"type": "api_key", "key": "k"})
        );
        assert_eq!(
            credential_record(CredentialType::Oauth, "k", None),
            json!({"type": "api_key", "key": "k"})
        );
        assert_eq!(
            credential_record(CredentialType::OauthToken, "t", None),
            json!({"type": "oauth_token", "token": "t", "host": "github.com"})
        );
        assert_eq!(
            credential_record(CredentialType::Pat, "t", Some("gl.example")),
            json!({"type": "pat", "token": "t", "host": "gl.example"})
        );
    }
}
