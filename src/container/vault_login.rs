//! The host's side of logging in from the editor (see [`crate::acp::vault_login`]).
//!
//! [`DaemonVault`] is what an ACP daemon knows of the vault: which agents route through it, and
//! how to mint the container's tokens once a login stored a credential. [`login`] is what
//! `acp connect <container> vault-login <agent>` does in the editor's terminal: the `auth` flow
//! (a no-echo prompt for the key), then the report to the container's daemon, whose answer says
//! whether the agent is usable now.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::acp::runtime::AgentName;
use crate::acp::vault_login::{VaultAccess, VAULT_LOGIN_METHOD};
use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::db::CredentialDb;
use crate::launcher::vault::location::{services_mode, ServicesMode};
use crate::launcher::vault::providers::provider_of;
use crate::launcher::vault::{resolve_vault_location, tokens};

/// How long the daemon may take to probe the agent after a login.
const REPORT_PATIENCE: Duration = Duration::from_secs(180);

/// The vault as one container's daemon uses it.
pub struct DaemonVault {
    roster: Roster,
    paths: HostPaths,
    /// The tokens' subject: the container's name.
    subject: String,
    connect_command: Vec<String>,
}

impl DaemonVault {
    /// The vault of the host, when it has one (a database terok-sandbox created).
    pub fn find(subject: &str, connect_command: Vec<String>) -> Option<DaemonVault> {
        let paths = HostPaths::from_env();
        if !paths.vault_dir.join("credentials.db").is_file() {
            return None;
        }
        let roster = match Roster::load(&paths) {
            Ok(roster) => roster,
            Err(e) => {
                tracing::warn!("vault logins are off: cannot load the roster: {e}");
                return None;
            }
        };
        Some(DaemonVault {
            roster,
            paths,
            subject: subject.to_owned(),
            connect_command,
        })
    }
}

impl VaultAccess for DaemonVault {
    fn routed(&self) -> Vec<(AgentName, String)> {
        self.roster
            .vault_routes()
            .keys()
            .filter_map(|entry| {
                let agent = AgentName::new(entry).ok()?;
                Some((agent, provider_of(entry).to_owned()))
            })
            .collect()
    }

    fn token_env(&self) -> Result<Vec<(String, String)>, String> {
        let config = LayeredConfig::load(&self.paths.config_files);
        let db = CredentialDb::open_host(&self.paths).map_err(|e| e.to_string())?;
        let location = resolve_vault_location(&config).map_err(|e| e.to_string())?;
        let tcp_port = match services_mode(&config).0 {
            ServicesMode::Tcp => config.string("vault", "port").and_then(|p| p.parse().ok()),
            ServicesMode::Socket => None,
        };
        let minted = tokens::mint(&db, &self.roster, &self.subject, &location, tcp_port)
            .map_err(|e| format!("cannot mint the container's tokens: {e}"))?;
        Ok(minted.env.into_iter().collect())
    }

    fn connect_command(&self) -> Vec<String> {
        self.connect_command.clone()
    }
}

/// `acp connect <container> vault-login <agent>`: stores the agent's key through the `auth`
/// flow, then tells the daemon at `socket`, which probes the agent again.
pub async fn login(agent: &AgentName, socket: &Path) -> anyhow::Result<()> {
    let args = crate::launcher::auth::AuthArgs {
        agent: Some(agent.to_string()),
        api_key_file: None,
        status: false,
        logout: None,
        set: crate::launcher::vault::db::DEFAULT_SET.to_owned(),
        json: false,
    };
    tokio::task::spawn_blocking(move || crate::launcher::auth::run(&args))
        .await
        .context("the login was interrupted")??;
    let answer = tokio::time::timeout(REPORT_PATIENCE, report(agent, socket))
        .await
        .context("the daemon did not answer in time")??;
    if answer.get("ready") == Some(&Value::Bool(true)) {
        eprintln!("{agent} is ready: its models are in the editor's model picker");
        Ok(())
    } else {
        bail!("{agent} still cannot start a session; check the stored key with `terok-executor auth --status`")
    }
}

/// Sends the daemon the login of `agent`; its answer.
async fn report(agent: &AgentName, socket: &Path) -> anyhow::Result<Value> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach the daemon at {}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": VAULT_LOGIN_METHOD,
                         "params": {"agent": agent.as_str()}});
    write
        .write_all(format!("{request}\n").as_bytes())
        .await
        .context("cannot write to the daemon")?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let Ok(frame) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if frame.get("id") != Some(&json!(1)) {
            continue;
        }
        if let Some(error) = frame.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("?");
            bail!("the daemon could not take the login in: {message}");
        }
        return Ok(frame.get("result").cloned().unwrap_or(Value::Null));
    }
    bail!("the daemon closed the connection without an answer")
}
