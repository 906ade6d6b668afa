//! The vault's side of a launch: phantom tokens minted for the container, revoked when it goes.
//!
//! Without a vault (no database) a launch simply gets no tokens. A vault that exists but cannot
//! be used (locked, wrong passphrase, unsupported schema) is a warning, or an error when the
//! config sets `vault.required: true`. Tokens are never printed; the providers they cover are.

use anyhow::Context as _;

use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::db::{CredentialDb, DbError};
use crate::launcher::vault::location::{services_mode, ServicesMode};
use crate::launcher::vault::resolve_vault_location;
use crate::launcher::vault::tokens;

/// The variables of container `name`'s tokens (empty when there is nothing to route).
pub fn launch_env(
    roster: &Roster,
    paths: &HostPaths,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let config = LayeredConfig::load(&paths.config_files);
    let required = config
        .value("vault", "required")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let give_up = |e: anyhow::Error| {
        if required {
            Err(e.context("the vault is required (vault.required in the config)"))
        } else {
            eprintln!("note: starting without vault tokens: {e:#}");
            Ok(Vec::new())
        }
    };
    let db = match CredentialDb::open_host(paths) {
        Ok(db) => db,
        Err(DbError::Missing(_)) if !required => return Ok(Vec::new()),
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
    match tokens::mint(&db, roster, name, &location, tcp_port) {
        Ok(minted) => {
            if !minted.providers.is_empty() {
                eprintln!("vault tokens for: {}", minted.providers.join(", "));
            }
            Ok(minted.env.into_iter().collect())
        }
        Err(e) => give_up(anyhow::Error::from(e).context("cannot mint the container's tokens")),
    }
}

/// Revokes container `name`'s tokens; a vault that cannot be opened is a warning.
pub fn revoke(paths: &HostPaths, name: &str) {
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
