//! Phantom tokens for one launch: what a container receives instead of credentials.
//!
//! For every vault provider that holds a credential (set `default`) and that a roster entry
//! routes, one token is minted with the container's name as its subject, and each entry of that
//! provider gets it in its phantom variables (the OAuth variants when the stored credential is
//! OAuth and the entry names any), plus the vault's base URL and socket in the entry's
//! variables for them. `stop` revokes the container's tokens. The tokens are the only
//! credentials a container sees; the broker swaps them for the real ones on the way upstream.

use indexmap::IndexMap;

use super::db::{CredentialDb, DbError, DEFAULT_SET};
use super::location::{VaultLocation, CONTAINER_VAULT_SOCKET, LOOPBACK_VAULT_PORT};
use super::providers::provider_of;
use crate::launcher::roster::Roster;

/// The scope of tokens minted by a standalone launch (terok's projects use their own).
pub const STANDALONE_SCOPE: &str = "standalone";

/// The environment a launch's tokens give the container, and which providers it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchTokens {
    pub env: IndexMap<String, String>,
    pub providers: Vec<String>,
}

/// Mints the tokens of container `subject` and assembles their variables.
pub fn mint(
    db: &CredentialDb,
    roster: &Roster,
    subject: &str,
    location: &VaultLocation,
    tcp_port: Option<u16>,
) -> Result<LaunchTokens, DbError> {
    let stored = db.list_credentials(DEFAULT_SET)?;
    let mut out = LaunchTokens::default();
    let mut minted: IndexMap<String, String> = IndexMap::new();
    for (entry, route) in roster.vault_routes() {
        let provider = provider_of(entry);
        if !stored.iter().any(|p| p == provider) {
            continue;
        }
        let token = match minted.get(provider) {
            Some(token) => token.clone(),
            None => {
                let token = db.create_token(STANDALONE_SCOPE, subject, DEFAULT_SET, provider)?;
                minted.insert(provider.to_owned(), token.clone());
                out.providers.push(provider.to_owned());
                token
            }
        };
        let oauth = db
            .load_credential(DEFAULT_SET, provider)?
            .is_some_and(|c| c.get("type").and_then(|t| t.as_str()) == Some("oauth"));
        let vars = if oauth && !route.oauth_phantom_env.is_empty() {
            &route.oauth_phantom_env
        } else {
            &route.phantom_env
        };
        for (var, on) in vars {
            if *on {
                out.env.insert(var.clone(), token.clone());
            }
        }
        if !route.base_url_env.is_empty() {
            out.env
                .insert(route.base_url_env.clone(), location.url.clone());
        }
        if !route.socket_env.is_empty() {
            out.env
                .insert(route.socket_env.clone(), location.socket.clone());
        }
        if roster
            .entry(entry)
            .is_some_and(|e| e.kind.as_str() == "opencode")
        {
            let upper = entry.to_uppercase().replace('-', "_");
            out.env.insert(
                format!("TEROK_OC_{upper}_BASE_URL"),
                format!("{}/v1", location.url),
            );
        }
        if entry == "glab" {
            out.env.insert("API_PROTOCOL".into(), "http".into());
            let host = match tcp_port {
                Some(port) => format!("host.containers.internal:{port}"),
                None => format!("localhost:{LOOPBACK_VAULT_PORT}"),
            };
            out.env.insert("GITLAB_API_HOST".into(), host);
        }
    }
    if !out.providers.is_empty() {
        match tcp_port {
            Some(port) => {
                out.env
                    .insert("TEROK_TOKEN_BROKER_PORT".into(), port.to_string());
            }
            None => out.env.extend(bridge_env()),
        }
    }
    Ok(out)
}

/// What the in-container bridge needs in socket mode: the vault socket and the loopback port
/// it forwards.
pub fn bridge_env() -> [(String, String); 2] {
    [
        ("TEROK_VAULT_SOCKET".into(), CONTAINER_VAULT_SOCKET.into()),
        (
            "TEROK_VAULT_LOOPBACK_PORT".into(),
            LOOPBACK_VAULT_PORT.to_string(),
        ),
    ]
}

/// Revokes every token of container `subject`; how many there were.
pub fn revoke(db: &CredentialDb, subject: &str) -> Result<usize, DbError> {
    db.revoke_tokens(STANDALONE_SCOPE, subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::load_roster;
    use crate::launcher::vault::db::tests::sandbox_like_db;
    use serde_json::json;

    #[test]
    fn one_token_per_stored_provider_in_each_entrys_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = sandbox_like_db(dir.path(), "p", super::super::db::SUPPORTED_SCHEMA);
        let db = CredentialDb::open(&path, "p").unwrap();
        db.store_credential(
            "default",
            "anthropic",
            &json!({"type": "oauth", "access_token": "at"}),
        )
        .unwrap();
        db.store_credential(
            "default",
            "mistral",
            &json!({"type": "api_key", "key": "k"}),
        )
        .unwrap();
        db.store_credential(
            "other-set",
            "openai",
            &json!({"type": "api_key", "key": "k"}),
        )
        .unwrap();
        let roster = load_roster(None).unwrap();
        let got = mint(&db, &roster, "ctr-1", &VaultLocation::socket_mode(), None).unwrap();
        assert_eq!(got.providers, ["anthropic", "mistral"]);
        let claude = &got.env["CLAUDE_CODE_OAUTH_TOKEN"];
        assert!(claude.starts_with("terok-p-"));
        assert!(
            !got.env.contains_key("ANTHROPIC_API_KEY"),
            "OAuth: the OAuth variable only"
        );
        assert_eq!(got.env["ANTHROPIC_BASE_URL"], "http://localhost:9419");
        assert_eq!(
            got.env["ANTHROPIC_UNIX_SOCKET"],
            "/run/terok/vault/vault.sock"
        );
        assert_eq!(got.env["TEROK_VAULT_SOCKET"], "/run/terok/vault/vault.sock");
        let mistral = &got.env["MISTRAL_API_KEY"];
        assert_ne!(claude, mistral);
        assert!(
            !got.env.contains_key("OPENAI_API_KEY"),
            "only the default set"
        );
        assert_eq!(got.env["TEROK_VAULT_LOOPBACK_PORT"], "9419");
        assert!(got.env.values().all(|v| v != "None"));
        for token in [claude, mistral] {
            assert_eq!(db.lookup_token(token).unwrap().unwrap().subject, "ctr-1");
        }
        assert_eq!(revoke(&db, "ctr-1").unwrap(), 2);
        assert_eq!(db.lookup_token(claude).unwrap(), None);

        let empty = mint(
            &db,
            &roster,
            "ctr-2",
            &VaultLocation::tcp_mode(8787),
            Some(8787),
        );
        db.delete_credential("default", "anthropic").unwrap();
        db.delete_credential("default", "mistral").unwrap();
        assert!(empty.unwrap().env.contains_key("TEROK_TOKEN_BROKER_PORT"));
        let none = mint(&db, &roster, "ctr-3", &VaultLocation::socket_mode(), None).unwrap();
        assert_eq!(none, LaunchTokens::default());
    }
}
