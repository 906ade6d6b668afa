//! The vault's side of a launch: phantom tokens minted for the container and the broker that
//! serves them, both gone when the container goes.
//!
//! Without a vault (no database) a launch simply gets no tokens. A vault that exists but cannot
//! be used (locked, wrong passphrase, unsupported schema), or a broker that cannot start, is a
//! warning, or an error when the config sets `vault.required: true`. Tokens are never printed;
//! the providers they cover are. In socket mode each container gets its own broker
//! ([`super::broker`]); in TCP mode the containers use the broker at `vault.port`.

use anyhow::Context as _;

use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::db::{CredentialDb, DbError};
use crate::launcher::vault::location::{services_mode, ServicesMode};
use crate::launcher::vault::resolve_vault_location;
use crate::launcher::vault::tokens;

use super::broker::Broker;

/// What the vault gives one launch.
#[derive(Debug, Default)]
pub struct VaultLaunch {
    /// The tokens' variables (empty when there is nothing to route).
    pub env: Vec<(String, String)>,
    /// The container's own broker, to start once the container runs (socket mode).
    pub broker: Option<Broker>,
    /// Whether the config makes the vault a condition of the launch.
    pub required: bool,
}

/// Whether the config sets `vault.required: true`.
pub fn vault_required(paths: &HostPaths) -> bool {
    LayeredConfig::load(&paths.config_files)
        .value("vault", "required")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Mints container `name`'s tokens and prepares the broker that will serve them, in `opened`
/// when the vault is open already.
pub fn launch_env(
    roster: &Roster,
    paths: &HostPaths,
    name: &str,
    opened: Option<CredentialDb>,
) -> anyhow::Result<VaultLaunch> {
    let config = LayeredConfig::load(&paths.config_files);
    let required = vault_required(paths);
    let give_up = |e: anyhow::Error| {
        if required {
            Err(e.context("the vault is required (vault.required in the config)"))
        } else {
            eprintln!("note: starting without vault tokens: {e:#}");
            Ok(VaultLaunch::default())
        }
    };
    let db = match opened.map_or_else(|| CredentialDb::open_host(paths), Ok) {
        Ok(db) => db,
        Err(DbError::Missing(_)) if !required => return Ok(VaultLaunch::default()),
        Err(e) => return give_up(e.into()),
    };
    let location = match resolve_vault_location(&config) {
        Ok(location) => location,
        Err(e) => return give_up(e.into()),
    };
    let tcp_port = match services_mode(&config).0 {
        ServicesMode::Tcp => config.string("vault", "port").and_then(|p| p.parse().ok()),
        ServicesMode::Socket => None,
    };
    let minted = match tokens::mint(&db, roster, name, &location, tcp_port) {
        Ok(minted) => minted,
        Err(e) => {
            return give_up(anyhow::Error::from(e).context("cannot mint the container's tokens"))
        }
    };
    let minted_any = !minted.providers.is_empty();
    if minted_any {
        eprintln!("vault tokens for: {}", minted.providers.join(", "));
    }
    let mut env: Vec<(String, String)> = minted.env.into_iter().collect();
    // A broker serves the container even before it has a token: a login from the editor
    // later mints them for the agents it starts.
    let broker = match tcp_port {
        Some(_) => None,
        None => match Broker::prepare(&config, paths, name) {
            Ok(broker) => {
                if !minted_any {
                    env.extend(tokens::bridge_env());
                }
                Some(broker)
            }
            Err(e) if !minted_any => {
                tracing::debug!("no vault broker for {name}: {e:#}");
                None
            }
            Err(e) if required => {
                let _ = tokens::revoke(&db, name);
                return Err(e.context("the vault is required (vault.required in the config)"));
            }
            Err(e) => {
                eprintln!("warning: no broker will serve the vault tokens: {e:#}");
                None
            }
        },
    };
    Ok(VaultLaunch {
        env,
        broker,
        required,
    })
}

/// Revokes container `name`'s tokens and ends its broker; a vault that cannot be opened is a
/// warning.
pub fn revoke(paths: &HostPaths, name: &str) {
    super::broker::retire(paths, name);
    let outcome = CredentialDb::open_host(paths)
        .and_then(|db| tokens::revoke(&db, name))
        .with_context(|| format!("the vault tokens of {name} are not revoked"));
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::debug!(container = name, tokens = n, "vault tokens revoked"),
        Err(e)
            if e.downcast_ref::<DbError>()
                .is_some_and(|d| matches!(d, DbError::Missing(_))) => {}
        Err(e) => eprintln!("warning: {e:#}"),
    }
}
