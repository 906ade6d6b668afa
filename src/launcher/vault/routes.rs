//! `routes.json`: the vault's table of upstreams, generated from the roster.
//!
//! Shape (a contract with the vault's token broker): a JSON object keyed by
//! provider name in name order; each value has `upstream`, `auth_header` and
//! `auth_prefix` always, then `path_upstreams`, `oauth_extra_headers` and
//! `oauth_refresh` only when non-empty. `route_prefix` is not emitted but must be
//! unique. The file is written atomically (temporary file, fsync, rename) with
//! mode 0600 and ends with a newline.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Serialize;

use crate::launcher::roster::{OAuthRefresh, Roster};

/// One provider's entry in `routes.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteEntry {
    pub upstream: String,
    pub auth_header: String,
    pub auth_prefix: String,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub path_upstreams: IndexMap<String, String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub oauth_extra_headers: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_refresh: Option<OAuthRefresh>,
}

/// Why routes could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("roster entries {first} and {second} both route the vault provider {provider}")]
    DuplicateProvider {
        provider: String,
        first: String,
        second: String,
    },
    #[error("duplicate route prefix '{prefix}': providers '{first}' and '{second}'")]
    DuplicatePrefix {
        prefix: String,
        first: String,
        second: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The route table, keyed by vault provider (terok-sandbox's names since its schema 3:
/// `anthropic` for claude, `openai` for codex, ...; the broker picks a route by the provider of
/// the token's credential), in name order.
pub fn route_table(roster: &Roster) -> Result<IndexMap<String, RouteEntry>, RoutesError> {
    let mut owners: IndexMap<&str, &str> = IndexMap::new();
    let mut table = IndexMap::new();
    let mut providers: IndexMap<String, &str> = IndexMap::new();
    for (name, route) in roster.vault_routes() {
        if let Some(first) = owners.get(route.route_prefix.as_str()) {
            return Err(RoutesError::DuplicatePrefix {
                prefix: route.route_prefix.clone(),
                first: first.to_string(),
                second: name.clone(),
            });
        }
        owners.insert(&route.route_prefix, name);
        let provider = super::providers::provider_of(name).to_owned();
        if let Some(first) = providers.insert(provider.clone(), name) {
            return Err(RoutesError::DuplicateProvider {
                provider,
                first: first.to_owned(),
                second: name.clone(),
            });
        }
        table.insert(
            provider,
            RouteEntry {
                upstream: route.upstream.clone(),
                auth_header: route.auth_header.clone(),
                auth_prefix: route.auth_prefix.clone(),
                path_upstreams: route.path_upstreams.clone(),
                oauth_extra_headers: route.oauth_extra_headers.clone(),
                oauth_refresh: route.oauth_refresh.clone(),
            },
        );
    }
    table.sort_keys();
    Ok(table)
}

/// The file content: two-space indented JSON plus a trailing newline.
pub fn routes_json(roster: &Roster) -> Result<String, RoutesError> {
    let table = route_table(roster)?;
    let mut text = serde_json::to_string_pretty(&table).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    Ok(text)
}

/// Generates and atomically writes the route table to `path`.
pub fn write_routes(roster: &Roster, path: &Path) -> Result<(), RoutesError> {
    let content = routes_json(roster)?;
    write_atomic(path, content.as_bytes()).map_err(|source| RoutesError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `data` with mode 0600, atomically, creating the directory first.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    crate::fsutil::write_atomic(path, data, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::{load_roster, load_roster_from};
    use serde_json::{json, Value};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bundled_routes_match_the_contract() {
        let text = routes_json(&load_roster(None).unwrap()).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let expected = json!({
            "blablador": {"upstream": "https://api.helmholtz-blablador.fz-juelich.de", "auth_header": "Authorization", "auth_prefix": "Bearer "},
            "anthropic": {"upstream": "https://api.anthropic.com", "auth_header": "dynamic", "auth_prefix": "",
                       "oauth_extra_headers": {"anthropic-beta": "oauth-2025-04-20"},
                       "oauth_refresh": {"token_url": "https://platform.claude.com/v1/oauth/token", "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
                                         "scope": "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload"}},
            "coderabbit": {"upstream": "https://app.coderabbit.ai", "auth_header": "Authorization", "auth_prefix": "Bearer "},
            "openai": {"upstream": "https://api.openai.com", "auth_header": "Authorization", "auth_prefix": "Bearer ",
                      "path_upstreams": {"/backend-api/": "https://chatgpt.com"},
                      "oauth_refresh": {"token_url": "https://auth.openai.com/oauth/token", "client_id": "app_EMoamEEZ73f0CkXaXp7hrann"}},
            "github": {"upstream": "https://api.github.com", "auth_header": "Authorization", "auth_prefix": "token "},
            "gitlab": {"upstream": "https://gitlab.com", "auth_header": "PRIVATE-TOKEN", "auth_prefix": ""},
            "kisski": {"upstream": "https://chat-ai.academiccloud.de", "auth_header": "Authorization", "auth_prefix": "Bearer "},
            "openrouter": {"upstream": "https://openrouter.ai", "auth_header": "Authorization", "auth_prefix": "Bearer "},
            "sonarcloud": {"upstream": "https://sonarcloud.io", "auth_header": "Authorization", "auth_prefix": "Bearer "},
            "mistral": {"upstream": "https://api.mistral.ai", "auth_header": "Authorization", "auth_prefix": "Bearer "}
        });
        assert_eq!(parsed, expected);
    }

    #[test]
    fn keys_and_fields_are_in_contract_order() {
        let text = routes_json(&load_roster(None).unwrap()).unwrap();
        let names: Vec<usize> = [
            "\"anthropic\"",
            "\"blablador\"",
            "\"coderabbit\"",
            "\"mistral\"",
            "\"openai\"",
        ]
        .iter()
        .map(|n| text.find(n).unwrap())
        .collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let claude =
            &text[text.find("\"anthropic\"").unwrap()..text.find("\"blablador\"").unwrap()];
        let order: Vec<usize> = [
            "upstream",
            "auth_header",
            "auth_prefix",
            "oauth_extra_headers",
            "oauth_refresh",
        ]
        .iter()
        .map(|f| claude.find(f).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{claude}");
        assert!(text.starts_with("{\n  \"anthropic\": {\n    \"upstream\""));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn duplicate_route_prefix_is_rejected() {
        let roster = load_roster_from(
            &[
                ("a", "vault: {route_prefix: same, upstream: x}\n"),
                ("b", "vault: {route_prefix: same, upstream: y}\n"),
            ],
            None,
        )
        .unwrap();
        let err = routes_json(&roster).unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate route prefix 'same': providers 'a' and 'b'"
        );
    }

    #[test]
    fn write_is_atomic_with_mode_0600_and_replaces_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault/routes.json");
        let roster = load_roster(None).unwrap();
        write_routes(&roster, &path).unwrap();
        std::fs::write(&path, "stale").unwrap();
        write_routes(&roster, &path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            routes_json(&roster).unwrap()
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
