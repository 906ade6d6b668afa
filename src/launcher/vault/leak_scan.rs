//! Finding real credentials left in the shared config mounts.
//!
//! With the vault in use, real secrets live only in the vault's database; the
//! shared directories mounted into containers should hold at most the phantom
//! files the launcher injects. A routed provider's credential file that is
//! non-empty and not one of those phantom files is a leak.
//!
//! The scan never follows a symlink (a container could plant one to make the
//! host read or delete an arbitrary file), only considers paths that stay under
//! the mounts directory, and reports every provider it could not check instead
//! of silently skipping it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::safe_io::read_nofollow;
use crate::launcher::roster::Roster;

/// The access token written into an injected Claude `.credentials.json`.
pub const PHANTOM_CREDENTIALS_MARKER: &str = "terok-proxy-phantom-token:vault-handles-real-auth";
/// The tokens written into an injected Codex `auth.json`.
pub const CODEX_SHARED_OAUTH_MARKER: &str =
    "terok-proxy-codex-oauth-marker:vault-handles-real-auth";

/// A credential file holding what looks like a real secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub provider: String,
    pub path: PathBuf,
}

/// The outcome of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub leaks: Vec<Leak>,
    /// One line per provider whose credential file could not be checked.
    pub warnings: Vec<String>,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Whether `data` is a Claude credentials file the launcher injected.
pub fn is_injected_claude_credentials(data: &Value) -> bool {
    let Some(oauth) = data.get("claudeAiOauth").and_then(Value::as_object) else {
        return false;
    };
    oauth.get("accessToken").and_then(Value::as_str) == Some(PHANTOM_CREDENTIALS_MARKER)
        && !truthy(oauth.get("refreshToken"))
}

/// Whether `data` is a Codex `auth.json` the launcher injected.
pub fn is_injected_codex_auth(data: &Value) -> bool {
    let Some(tokens) = data.get("tokens").and_then(Value::as_object) else {
        return false;
    };
    tokens.get("access_token").and_then(Value::as_str) == Some(CODEX_SHARED_OAUTH_MARKER)
        && tokens.get("refresh_token").and_then(Value::as_str) == Some(CODEX_SHARED_OAUTH_MARKER)
        && !truthy(data.get("OPENAI_API_KEY"))
}

fn is_injected(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => {
            is_injected_claude_credentials(&v) || is_injected_codex_auth(&v)
        }
        _ => false,
    }
}

/// Checks one credential file; `Ok(true)` is a leak, `Err` a reason it was not checked.
fn check(path: &Path, base: &Path) -> Result<bool, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        return Err("is a symlink; refusing to follow it".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let resolved = path.canonicalize().map_err(|e| e.to_string())?;
    if !resolved.starts_with(base) {
        return Err(format!(
            "resolves outside the mounts directory ({})",
            resolved.display()
        ));
    }
    if meta.len() == 0 {
        return Ok(false);
    }
    let bytes = read_nofollow(path)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok(!bytes.is_empty() && !is_injected(&bytes))
}

/// Scans the credential file of every routed provider with a shared directory.
pub fn scan_leaked_credentials(roster: &Roster, mounts_base: &Path) -> ScanReport {
    let mut report = ScanReport::default();
    let base = match mounts_base.canonicalize() {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return report,
        Err(e) => {
            report
                .warnings
                .push(format!("cannot scan {}: {e}", mounts_base.display()));
            return report;
        }
    };
    for (name, route) in roster.vault_routes() {
        if route.credential_file.is_empty() {
            continue;
        }
        let Some(auth) = roster.auth_providers().get(name) else {
            continue;
        };
        let path = mounts_base
            .join(&auth.host_dir)
            .join(&route.credential_file);
        match check(&path, &base) {
            Ok(true) => report.leaks.push(Leak {
                provider: name.clone(),
                path,
            }),
            Ok(false) => {}
            Err(reason) => report.warnings.push(format!(
                "could not scan {name}: {}: {reason}",
                path.display()
            )),
        }
    }
    report
}

/// Deletes every leaked file found by a fresh scan; returns what was removed and the scan's warnings.
pub fn clean_leaked_credentials(roster: &Roster, mounts_base: &Path) -> (Vec<Leak>, Vec<String>) {
    let ScanReport {
        leaks,
        mut warnings,
    } = scan_leaked_credentials(roster, mounts_base);
    let mut removed = Vec::new();
    for leak in leaks {
        // Re-check right before unlinking; unlink itself never follows a symlink.
        match std::fs::symlink_metadata(&leak.path) {
            Ok(m) if m.is_file() => match std::fs::remove_file(&leak.path) {
                Ok(()) => removed.push(leak),
                Err(e) => warnings.push(format!(
                    "could not remove {}: {}: {e}",
                    leak.provider,
                    leak.path.display()
                )),
            },
            _ => warnings.push(format!(
                "could not remove {}: {} changed during the scan",
                leak.provider,
                leak.path.display()
            )),
        }
    }
    (removed, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::load_roster;
    use serde_json::json;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Roster) {
        (tempfile::tempdir().unwrap(), load_roster(None).unwrap())
    }

    fn put(base: &Path, rel: &str, content: &str) -> PathBuf {
        let p = base.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn real_credentials_are_reported_and_empty_files_are_not() {
        let (dir, roster) = setup();
        let claude = put(
            dir.path(),
            "_claude-config/.credentials.json",
            r#"{"claudeAiOauth":{"accessToken":"sk-real"}}"#,
        );
        put(dir.path(), "_gh-config/hosts.yml", "");
        let gh = dir.path().join("_gh-config/hosts.yml");
        let report = scan_leaked_credentials(&roster, dir.path());
        assert_eq!(
            report.leaks,
            [Leak {
                provider: "claude".into(),
                path: claude
            }]
        );
        assert!(report.warnings.is_empty());
        assert!(gh.exists());
    }

    #[test]
    fn injected_phantom_files_are_recognised() {
        let (dir, roster) = setup();
        put(dir.path(), "_claude-config/.credentials.json", &json!({"claudeAiOauth": {"accessToken": PHANTOM_CREDENTIALS_MARKER, "refreshToken": "", "expiresAt": null}}).to_string());
        put(dir.path(), "_codex-config/auth.json", &json!({"OPENAI_API_KEY": null, "tokens": {"access_token": CODEX_SHARED_OAUTH_MARKER, "refresh_token": CODEX_SHARED_OAUTH_MARKER}}).to_string());
        let report = scan_leaked_credentials(&roster, dir.path());
        assert!(report.leaks.is_empty(), "{:?}", report.leaks);
    }

    #[test]
    fn phantom_marker_with_a_real_refresh_token_is_a_leak() {
        let v = json!({"claudeAiOauth": {"accessToken": PHANTOM_CREDENTIALS_MARKER, "refreshToken": "real"}});
        assert!(!is_injected_claude_credentials(&v));
        let v = json!({"OPENAI_API_KEY": "sk-x", "tokens": {"access_token": CODEX_SHARED_OAUTH_MARKER, "refresh_token": CODEX_SHARED_OAUTH_MARKER}});
        assert!(!is_injected_codex_auth(&v));
        assert!(!is_injected(b"not json"));
    }

    #[test]
    fn symlinked_credential_file_is_not_followed_but_warned_about() {
        let (dir, roster) = setup();
        let outside = tempfile::tempdir().unwrap();
        let victim = put(outside.path(), "secret", "real secret");
        std::fs::create_dir_all(dir.path().join("_vibe-config")).unwrap();
        symlink(&victim, dir.path().join("_vibe-config/.env")).unwrap();
        let report = scan_leaked_credentials(&roster, dir.path());
        assert!(report.leaks.is_empty());
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].contains("vibe") && report.warnings[0].contains("symlink"));
        let (removed, _) = clean_leaked_credentials(&roster, dir.path());
        assert!(removed.is_empty());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "real secret");
    }

    #[test]
    fn host_dir_symlinked_outside_the_base_is_skipped_with_warning() {
        let (dir, roster) = setup();
        let outside = tempfile::tempdir().unwrap();
        let victim = put(outside.path(), "hosts.yml", "oauth_token: real");
        symlink(outside.path(), dir.path().join("_gh-config")).unwrap();
        let report = scan_leaked_credentials(&roster, dir.path());
        assert!(report.leaks.is_empty());
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("gh") && w.contains("outside")),
            "{:?}",
            report.warnings
        );
        clean_leaked_credentials(&roster, dir.path());
        assert!(victim.exists());
    }

    #[test]
    fn directory_in_place_of_credential_file_is_warned_about() {
        let (dir, roster) = setup();
        std::fs::create_dir_all(dir.path().join("_codex-config/auth.json")).unwrap();
        let report = scan_leaked_credentials(&roster, dir.path());
        assert!(report
            .warnings
            .iter()
            .any(|w| w.contains("codex") && w.contains("not a regular file")));
    }

    #[test]
    fn clean_removes_leaks_only() {
        let (dir, roster) = setup();
        let leak = put(dir.path(), "_vibe-config/.env", "MISTRAL_API_KEY=real");
        let keep = put(dir.path(), "_vibe-config/config.toml", "a = 1");
        let (removed, warnings) = clean_leaked_credentials(&roster, dir.path());
        assert_eq!(
            removed,
            [Leak {
                provider: "vibe".into(),
                path: leak.clone()
            }]
        );
        assert!(warnings.is_empty());
        assert!(!leak.exists() && keep.exists());
    }

    #[test]
    fn missing_mounts_dir_is_an_empty_scan() {
        let (dir, roster) = setup();
        assert_eq!(
            scan_leaked_credentials(&roster, &dir.path().join("none")),
            ScanReport::default()
        );
    }
}
