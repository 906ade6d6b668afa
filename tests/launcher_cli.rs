//! Runs the `agents` and `vault` subcommands of the real binary against a
//! temporary home; nothing outside the temporary directory is touched.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn user_agent(&self, name: &str, text: &str) {
        let dir = self.path("config/agent/agents");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }

    fn mounts(&self) -> PathBuf {
        self.path("state/sandbox-live/mounts")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_terok-executor"));
        for var in [
            "TEROK_VAULT_DIR",
            "TEROK_SANDBOX_LIVE_DIR",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.dir.path())
            .env("TEROK_CONFIG_DIR", self.path("config"))
            .env("TEROK_CONFIG_FILE", self.path("config.yml"))
            .env("TEROK_ROOT", self.path("state"))
            .args(args)
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn put(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn agents_lists_agents_and_all_adds_tools() {
    let home = Home::new();
    let out = home.run(&["agents"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAME"));
    assert_eq!(text.lines().count(), 9, "{text}");
    assert!(
        text.contains("claude      Claude          native"),
        "{text}"
    );
    assert!(!text.contains("gh "));
    let all = stdout(&home.run(&["agents", "--all"]));
    assert_eq!(all.lines().count(), 13, "{all}");
    assert!(all.contains("GitHub CLI") && !all.contains("toad") && !all.contains("caddy"));
}

#[test]
fn agents_json_is_machine_readable() {
    let home = Home::new();
    let out = home.run(&["agents", "--all", "--json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let glab = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "glab")
        .unwrap();
    assert_eq!(glab["route_prefix"], "gl");
    assert_eq!(glab["kind"], "tool");
    assert_eq!(glab["auth_modes"], serde_json::json!(["api_key"]));
}

#[test]
fn user_override_changes_a_label_and_adds_an_agent() {
    let home = Home::new();
    home.user_agent("claude", "label: My Claude\n");
    home.user_agent("mine", "roster_version: 1\nkind: native\nlabel: Mine\n");
    let text = stdout(&home.run(&["agents"]));
    assert!(
        text.contains("My Claude") && text.contains("mine"),
        "{text}"
    );
}

#[test]
fn schema_error_names_file_key_and_suggestion() {
    let home = Home::new();
    home.user_agent(
        "codex",
        "vault:\n  oauth_refesh: {token_url: x, client_id: y}\n",
    );
    let out = home.run(&["agents"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            &home
                .path("config/agent/agents/codex.yaml")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(
        err.contains("vault.oauth_refesh") && err.contains("did you mean 'oauth_refresh'"),
        "{err}"
    );
}

#[test]
fn broken_user_file_is_skipped_with_a_warning() {
    let home = Home::new();
    home.user_agent("claude", "label: [unclosed\n");
    let out = home.run(&["agents"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("failed to parse"), "{}", stderr(&out));
    assert!(stdout(&out).contains("Claude"));
}

#[test]
fn vault_routes_writes_the_route_table_with_mode_0600() {
    let home = Home::new();
    let out = home.run(&["vault", "routes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = home.path("state/vault/routes.json");
    assert_eq!(
        stdout(&out).trim(),
        format!("Routes written to {}", path.display())
    );
    let routes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Keyed by vault provider, as terok-sandbox's broker looks routes up.
    assert_eq!(routes["gitlab"]["auth_header"], "PRIVATE-TOKEN");
    assert_eq!(routes["anthropic"]["auth_header"], "dynamic");
    assert_eq!(routes.as_object().unwrap().len(), 10);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn vault_routes_rejects_duplicate_prefixes() {
    let home = Home::new();
    home.user_agent(
        "mygl",
        "kind: tool\nvault: {route_prefix: gl, upstream: https://example.com}\n",
    );
    let out = home.run(&["vault", "routes"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("duplicate route prefix 'gl'"),
        "{}",
        stderr(&out)
    );
    assert!(!home.path("state/vault/routes.json").exists());
}

#[test]
fn vault_scan_reports_and_clean_removes_leaks() {
    let home = Home::new();
    let leak = home.mounts().join("_codex-config/auth.json");
    put(
        &leak,
        r#"{"tokens": {"access_token": "real", "refresh_token": "real"}}"#,
    );
    let scan = home.run(&["vault", "scan"]);
    assert!(scan.status.success());
    assert!(
        stdout(&scan).contains(&format!("  codex: {}", leak.display())),
        "{}",
        stdout(&scan)
    );
    assert!(leak.exists());
    let clean = home.run(&["vault", "clean"]);
    assert_eq!(
        stdout(&clean).trim(),
        format!("Removed codex: {}", leak.display())
    );
    assert!(!leak.exists());
    assert_eq!(
        stdout(&home.run(&["vault", "clean"])).trim(),
        "No leaked credential files found."
    );
}

#[test]
fn vault_clean_never_follows_a_planted_symlink() {
    let home = Home::new();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious");
    std::fs::write(&victim, "real secret").unwrap();
    let dir = home.mounts().join("_claude-config");
    std::fs::create_dir_all(&dir).unwrap();
    symlink(&victim, dir.join(".credentials.json")).unwrap();
    let out = home.run(&["vault", "clean"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("could not scan claude"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "real secret");
}
