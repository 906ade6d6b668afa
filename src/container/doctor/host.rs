//! The host's checks that need no engine: the vault, the routes, the broker, the shared mounts.

use super::check::{Check, Verdict};
use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::db::{CredentialDb, DbError};
use crate::launcher::vault::leak_scan::scan_leaked_credentials;
use crate::launcher::vault::location::{services_mode, ServicesMode};

/// The host's checks that need no engine.
pub fn host_checks(paths: &HostPaths, roster: &Roster) -> Vec<Check> {
    let mut checks = vec![vault_check(paths)];
    checks.push(routes_check(paths, roster));
    checks.push(sandbox_check(paths));
    checks.push(mounts_check(paths, roster));
    checks
}

fn vault_check(paths: &HostPaths) -> Check {
    match CredentialDb::open_host(paths) {
        Ok(db) => match db.list_credentials(crate::launcher::vault::db::DEFAULT_SET) {
            Ok(providers) if providers.is_empty() => Check::new(
                "vault",
                Verdict::Warn,
                "the vault opens but holds no credential",
            )
            .fix("store one with `terok-executor auth <agent>`"),
            Ok(providers) => Check::new(
                "vault",
                Verdict::Ok,
                format!("unlocked; credentials for {}", providers.join(", ")),
            ),
            Err(e) => Check::new("vault", Verdict::Fail, e.to_string())
                .fix("check the vault with `terok-sandbox vault list`"),
        },
        Err(DbError::Missing(path)) => Check::new(
            "vault",
            Verdict::Skip,
            format!("no vault at {}: containers get no tokens", path.display()),
        )
        .fix("terok-sandbox creates the vault (`terok-sandbox setup`)"),
        Err(e) => Check::new("vault", Verdict::Fail, e.to_string()).fix(
            "unlock it: set credentials.passphrase_command, or run `terok-sandbox vault unlock`, \
             or name a passphrase file in TEROK_VAULT_PASSPHRASE_FILE",
        ),
    }
}

fn routes_check(paths: &HostPaths, roster: &Roster) -> Check {
    let path = paths.routes_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Check::new("routes", Verdict::Fail, format!("no {}", path.display()))
            .fix("write it with `terok-executor vault routes`");
    };
    let Ok(serde_json::Value::Object(routes)) = serde_json::from_str(&text) else {
        return Check::new(
            "routes",
            Verdict::Fail,
            format!("{} is not a JSON object", path.display()),
        )
        .fix("write it again with `terok-executor vault routes`");
    };
    let mut missing: Vec<&str> = roster
        .vault_routes()
        .keys()
        .map(|entry| crate::launcher::vault::providers::provider_of(entry))
        .filter(|p| !routes.contains_key(*p))
        .collect();
    missing.dedup();
    if missing.is_empty() {
        Check::new(
            "routes",
            Verdict::Ok,
            format!("{} providers routed", routes.len()),
        )
    } else {
        Check::new(
            "routes",
            Verdict::Fail,
            format!("no route for {}", missing.join(", ")),
        )
        .fix("write it again with `terok-executor vault routes` (the broker reads it at start)")
    }
}

fn sandbox_check(paths: &HostPaths) -> Check {
    let config = LayeredConfig::load(&paths.config_files);
    if services_mode(&config).0 == ServicesMode::Tcp {
        return Check::new(
            "broker",
            Verdict::Skip,
            "TCP mode: containers use the broker at vault.port",
        );
    }
    match crate::container::broker::sandbox_command(&config) {
        Ok(argv) => Check::new(
            "broker",
            Verdict::Ok,
            format!("started with {}", argv.join(" ")),
        ),
        Err(e) if !paths.vault_dir.join("credentials.db").is_file() => {
            Check::new("broker", Verdict::Skip, format!("no vault; {e:#}"))
        }
        Err(e) => Check::new("broker", Verdict::Fail, format!("{e:#}"))
            .fix("install terok-sandbox, or set vault.sandbox_command in the config"),
    }
}

fn mounts_check(paths: &HostPaths, roster: &Roster) -> Check {
    let report = scan_leaked_credentials(roster, &paths.mounts_dir);
    if !report.leaks.is_empty() {
        let files: Vec<String> = report
            .leaks
            .iter()
            .map(|l| format!("{} ({})", l.path.display(), l.provider))
            .collect();
        return Check::new(
            "shared-mounts",
            Verdict::Fail,
            format!(
                "real credentials where containers see them: {}",
                files.join(", ")
            ),
        )
        .fix(
            "move them into the vault (`terok-executor auth <agent>`), then remove them with \
              `terok-executor vault clean`",
        );
    }
    if !report.warnings.is_empty() {
        return Check::new("shared-mounts", Verdict::Warn, report.warnings.join("; "));
    }
    Check::new(
        "shared-mounts",
        Verdict::Ok,
        "only phantom credential files",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::doctor::check::summary;
    use crate::launcher::paths::temp_host_paths as paths;

    #[test]
    fn no_vault_is_a_skip_and_missing_routes_a_failure_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let roster = crate::launcher::roster::load_roster(None).unwrap();
        let checks = host_checks(&paths, &roster);
        let by = |name: &str| checks.iter().find(|c| c.name == name).unwrap().clone();
        assert_eq!(by("vault").verdict, Verdict::Skip);
        let routes = by("routes");
        assert_eq!(routes.verdict, Verdict::Fail);
        assert!(
            routes.fix.contains("terok-executor vault routes"),
            "{routes:?}"
        );
        assert_eq!(by("shared-mounts").verdict, Verdict::Ok);

        crate::launcher::vault::routes::write_routes(&roster, &paths.routes_path()).unwrap();
        assert_eq!(
            by_name(&host_checks(&paths, &roster), "routes").verdict,
            Verdict::Ok
        );
        let (line, failed) = summary(&host_checks(&paths, &roster));
        assert!(!failed, "{line}");
    }

    fn by_name(checks: &[Check], name: &str) -> Check {
        checks.iter().find(|c| c.name == name).unwrap().clone()
    }
}
