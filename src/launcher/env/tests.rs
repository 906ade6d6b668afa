//! Order and content of the assembled environment, and host preparation.

use super::*;
use crate::launcher::roster::{load_roster, load_roster_from};
use std::os::unix::fs::symlink;

fn roster() -> Roster {
    load_roster(None).unwrap()
}

fn spec(base: &Path) -> ContainerEnvSpec {
    ContainerEnvSpec::new("abc123", "claude", base.join("ws"), base.join("mounts"))
}

fn keys(env: &ContainerEnv) -> Vec<&str> {
    env.env.keys().map(String::as_str).collect()
}

#[test]
fn variables_come_in_the_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.timezone = Some("Europe/Prague".into());
    s.branch = Some("main".into());
    s.code_repo = Some("https://example.com/r.git".into());
    s.clone_from = Some("http://gate/r.git".into());
    s.vault_env = vec![("ANTHROPIC_API_KEY".into(), "terok-p-x".into())];
    s.shared_dir = Some(dir.path().join("shared"));
    let env = assemble_container_env(&s, &roster()).unwrap();
    let k = keys(&env);
    let pos = |name: &str| {
        k.iter()
            .position(|x| *x == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        &k[..5],
        [
            "TASK_ID",
            "REPO_ROOT",
            "GIT_RESET_MODE",
            "TEROK_CONTAINER_PROTOCOL",
            "CLAUDE_CONFIG_DIR"
        ]
    );
    let order = [
        "TZ",
        "TEROK_OC_BLABLADOR_BASE_URL",
        "GIT_AUTHOR_NAME",
        "GIT_COMMITTER_EMAIL",
        "TEROK_GIT_AUTHORSHIP",
        "HUMAN_GIT_EMAIL",
        "GIT_BRANCH",
        "CODE_REPO",
        "CLONE_FROM",
        "ANTHROPIC_API_KEY",
        "TEROK_UNRESTRICTED",
        "OPENCODE_PERMISSION",
        "TEROK_SHARED_DIR",
    ];
    let positions: Vec<usize> = order.iter().map(|n| pos(n)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{k:?}");
    assert_eq!(env.env["TEROK_CONTAINER_PROTOCOL"], "3");
    assert_eq!(env.env["TEROK_SHARED_DIR"], "/shared");
    assert_eq!(env.env["GIT_AUTHOR_NAME"], "Claude");
    assert_eq!(env.env["GIT_COMMITTER_EMAIL"], "noreply@anthropic.com");
}

#[test]
fn optional_variables_are_omitted_when_unset() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.unrestricted = false;
    s.branch = Some(String::new());
    let env = assemble_container_env(&s, &roster()).unwrap();
    for absent in [
        "TZ",
        "GIT_BRANCH",
        "CODE_REPO",
        "CLONE_FROM",
        "TEROK_UNRESTRICTED",
        "OPENCODE_PERMISSION",
        "TEROK_SHARED_DIR",
    ] {
        assert!(!env.env.contains_key(absent), "{absent}");
    }
    assert!(!env.env.values().any(|v| v == "None"));
}

#[test]
fn git_identity_falls_back_and_committer_follows_author() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.provider_name = "unknown".into();
    let env = assemble_container_env(&s, &roster()).unwrap();
    assert_eq!(env.env["GIT_AUTHOR_NAME"], "AI Agent");
    assert_eq!(env.env["GIT_AUTHOR_EMAIL"], "ai@localhost");
    s.git_author_name = Some("Ada".into());
    s.git_committer_email = Some("c@x".into());
    let env = assemble_container_env(&s, &roster()).unwrap();
    assert_eq!(env.env["GIT_COMMITTER_NAME"], "Ada");
    assert_eq!(env.env["GIT_COMMITTER_EMAIL"], "c@x");
}

#[test]
fn volumes_come_in_order_with_read_only_credential_shadows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.agent_config_dir = Some(dir.path().join("agent-config"));
    s.shared_dir = Some(dir.path().join("shared"));
    s.extra_volumes = vec![Volume::new(
        "/run/user/1/terok/sandbox",
        "/run/terok",
        Sharing::Shared,
    )];
    let env = assemble_container_env(&s, &roster()).unwrap();
    let args: Vec<String> = env.volumes.iter().map(Volume::to_mount_arg).collect();
    let m = dir.path().join("mounts");
    assert_eq!(
        args[0],
        format!("{}:/workspace:Z", dir.path().join("ws").display())
    );
    let claude_dir = format!("{}:/home/dev/.claude:z", m.join("_claude-config").display());
    let claude_ro = format!(
        "{}:/home/dev/.claude/.credentials.json:z,ro",
        m.join("_claude-config/.credentials.json").display()
    );
    let i = args.iter().position(|a| *a == claude_dir).unwrap();
    assert_eq!(args[i + 1], claude_ro);
    let n = args.len();
    assert_eq!(
        args[n - 3],
        format!(
            "{}:/home/dev/.terok:Z",
            dir.path().join("agent-config").display()
        )
    );
    assert_eq!(
        args[n - 2],
        format!("{}:/shared:z", dir.path().join("shared").display())
    );
    assert_eq!(args[n - 1], "/run/user/1/terok/sandbox:/run/terok:z");
    let shadows = env.volumes.iter().filter(|v| v.read_only).count();
    assert_eq!(shadows, 8, "{args:#?}");
}

#[test]
fn exposed_providers_keep_a_writable_credential_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.expose_credential_providers = ["claude".to_string()].into();
    let env = assemble_container_env(&s, &roster()).unwrap();
    assert!(!env
        .volumes
        .iter()
        .any(|v| v.container == "/home/dev/.claude/.credentials.json"));
    assert!(!env
        .prepare
        .credential_files
        .iter()
        .any(|p| p.ends_with(".credentials.json")));
}

#[test]
fn assembly_touches_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path());
    assemble_container_env(&s, &roster()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn auto_approve_conflict_is_an_error_only_when_unrestricted() {
    let r = load_roster_from(
        &[
            ("a", "auto_approve: {env: {X: '1'}}\n"),
            ("b", "auto_approve: {env: {X: '2'}}\n"),
        ],
        None,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    assert!(assemble_container_env(&s, &r).is_err());
    s.unrestricted = false;
    assert!(assemble_container_env(&s, &r).is_ok());
}

#[test]
fn preparation_creates_dirs_touches_credentials_and_applies_patches() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.shared_dir = Some(dir.path().join("shared"));
    let r = roster();
    let env = assemble_container_env(&s, &r).unwrap();
    let m = dir.path().join("mounts");
    std::fs::create_dir_all(m.join("_claude-config")).unwrap();
    std::fs::write(m.join("_claude-config/.credentials.json"), "keep").unwrap();
    prepare_host(&env.prepare, &r, || Ok(VaultLocation::socket_mode())).unwrap();
    assert!(dir.path().join("shared").is_dir());
    assert!(m.join("_opencode-state").is_dir());
    assert_eq!(
        std::fs::read_to_string(m.join("_gh-config/hosts.yml")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(m.join("_claude-config/.credentials.json")).unwrap(),
        "keep"
    );
    assert!(std::fs::read_to_string(m.join("_codex-config/config.toml"))
        .unwrap()
        .contains("http://localhost:9419/v1"));
    // Patches are reconciled on every launch: a second preparation is a no-op.
    let report = prepare_host(&env.prepare, &r, || Ok(VaultLocation::socket_mode())).unwrap();
    assert!(report.written.is_empty());
}

#[test]
fn planted_credential_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let s = spec(dir.path());
    let r = roster();
    let env = assemble_container_env(&s, &r).unwrap();
    let gh = dir.path().join("mounts/_gh-config");
    std::fs::create_dir_all(&gh).unwrap();
    symlink(
        outside.path().join("created-elsewhere"),
        gh.join("hosts.yml"),
    )
    .unwrap();
    let err = prepare_host(&env.prepare, &r, || Ok(VaultLocation::socket_mode())).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!outside.path().join("created-elsewhere").exists());
}

#[test]
fn patch_failure_fails_preparation() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path());
    let r = roster();
    let env = assemble_container_env(&s, &r).unwrap();
    std::fs::create_dir_all(dir.path().join("mounts/_codex-config")).unwrap();
    std::fs::write(
        dir.path().join("mounts/_codex-config/config.toml"),
        "x = = 1",
    )
    .unwrap();
    assert!(matches!(
        prepare_host(&env.prepare, &r, || Ok(VaultLocation::socket_mode())),
        Err(PrepareError::Patch(_))
    ));
}
