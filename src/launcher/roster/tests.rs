//! Facts about the bundled roster that other components rely on.

use super::*;

fn bundled() -> Roster {
    load_roster(None).expect("bundled roster loads")
}

#[test]
fn all_bundled_files_load_without_warnings() {
    let r = bundled();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.entries().count(), 14);
}

#[test]
fn names_are_partitioned_by_kind() {
    let r = bundled();
    assert_eq!(
        r.agent_names(),
        [
            "blablador",
            "claude",
            "codex",
            "copilot",
            "kisski",
            "opencode",
            "openrouter",
            "vibe"
        ]
    );
    assert_eq!(
        r.all_names(),
        [
            "blablador",
            "claude",
            "coderabbit",
            "codex",
            "copilot",
            "gh",
            "glab",
            "kisski",
            "opencode",
            "openrouter",
            "sonar",
            "vibe"
        ]
    );
    assert_eq!(r.entry("toad").unwrap().kind, AgentKind::Runtime);
    assert_eq!(r.web_ingress().iter().collect::<Vec<_>>(), ["toad"]);
}

#[test]
fn opencode_agents_get_derived_auth() {
    let r = bundled();
    let a = &r.auth_providers()["kisski"];
    assert_eq!(a.host_dir, "_kisski-config");
    assert_eq!(a.container_mount, "/home/dev/.kisski");
    assert_eq!(a.modes, [AuthMode::ApiKey]);
    assert_eq!(
        a.api_key_hint,
        "Get your API key at: https://chat-ai.academiccloud.de/"
    );
    assert!(r.auth_providers()["blablador"]
        .api_key_hint
        .contains("read_user"));
    assert!(!r.auth_providers().contains_key("copilot"));
    assert!(!r.auth_providers().contains_key("opencode"));
}

#[test]
fn mounts_are_deduplicated_and_carry_credential_files() {
    let r = bundled();
    let by_dir: BTreeMap<&str, &MountDef> = r
        .mounts()
        .iter()
        .map(|m| (m.host_dir.as_str(), m))
        .collect();
    assert_eq!(by_dir.len(), r.mounts().len());
    let claude = by_dir["_claude-config"];
    assert_eq!(claude.container_path, "/home/dev/.claude");
    assert_eq!(claude.credential_file, ".credentials.json");
    assert_eq!(claude.provider, "claude");
    assert_eq!(claude.label, "Claude config");
    assert_eq!(by_dir["_gh-config"].credential_file, "hosts.yml");
    assert_eq!(by_dir["_vibe-config"].credential_file, ".env");
    assert_eq!(
        by_dir["_opencode-state"].container_path,
        "/home/dev/.local/state"
    );
    assert_eq!(by_dir["_opencode-state"].provider, "");
    assert_eq!(by_dir["_toad-config"].label, "Toad config");
    assert_eq!(by_dir["_sonar-config"].credential_file, "");
}

#[test]
fn glab_route_prefix_differs_from_its_name() {
    let r = bundled();
    assert_eq!(r.vault_routes()["glab"].route_prefix, "gl");
    assert_eq!(r.vault_routes()["glab"].auth_header, "PRIVATE-TOKEN");
    assert!(!r.vault_routes().contains_key("copilot"));
}

#[test]
fn provider_fallbacks_are_resolved() {
    let r = bundled();
    let codex = &r.providers()["codex"];
    assert_eq!(codex.git_author_name, "Codex");
    assert_eq!(codex.headless_subcommand.as_deref(), Some("exec"));
    assert_eq!(codex.prompt_flag, "");
    assert_eq!(r.providers()["copilot"].prompt_flag, "-p");
    assert_eq!(
        r.providers()["claude"].log_format,
        LogFormat::ClaudeStreamJson
    );
}

#[test]
fn selection_all_expands_dependencies_and_skips_entries_without_install() {
    let r = bundled();
    let all = r.resolve_selection(&Selection::All).unwrap();
    assert!(!all.contains(&"coderabbit".to_string()));
    assert_eq!(all.len(), 13);
    let some = r
        .resolve_selection(&Selection::parse(" Kisski, toad ,"))
        .unwrap();
    assert_eq!(some, ["caddy", "kisski", "opencode", "toad"]);
}

#[test]
fn selection_errors_are_reported() {
    let r = bundled();
    assert!(matches!(
        r.resolve_selection(&Selection::parse("nope")),
        Err(RosterError::UnknownSelection { .. })
    ));
    assert!(matches!(
        r.resolve_selection(&Selection::parse("coderabbit")),
        Err(RosterError::UnknownSelection { .. })
    ));
    assert_eq!(Selection::parse(""), Selection::All);
    assert_eq!(Selection::parse(" ALL "), Selection::All);
    assert_eq!(Selection::parse(",,"), Selection::All);
}

#[test]
fn missing_dependency_install_is_an_error() {
    let r = load_roster_from(
        &[("a", "install: {depends_on: b}\n"), ("b", "kind: tool\n")],
        None,
    )
    .unwrap();
    assert!(matches!(
        r.resolve_selection(&Selection::All),
        Err(RosterError::MissingDependency { .. })
    ));
}

#[test]
fn auto_approve_env_merges_and_detects_conflicts() {
    let env = bundled().auto_approve_env().unwrap();
    assert_eq!(env["OPENCODE_PERMISSION"], r#"{"*":"allow"}"#);
    assert_eq!(env["COPILOT_ALLOW_ALL"], "true");
    assert_eq!(env["VIBE_AUTO_APPROVE"], "true");
    let r = load_roster_from(
        &[
            ("a", "auto_approve: {env: {X: '1'}}\n"),
            ("b", "auto_approve: {env: {X: '2'}}\n"),
        ],
        None,
    )
    .unwrap();
    assert!(matches!(
        r.auto_approve_env(),
        Err(RosterError::AutoApproveConflict { .. })
    ));
}

#[test]
fn opencode_env_covers_opencode_providers_only() {
    let env = bundled().opencode_env();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 18);
    assert!(keys.contains(&"TEROK_OC_OPENROUTER_BASE_URL"));
    assert!(env.contains(&("TEROK_OC_KISSKI_CONFIG_DIR".into(), ".kisski".into())));
}

#[test]
fn provider_lookup_falls_back_to_claude() {
    let r = bundled();
    assert_eq!(r.provider(None, None).unwrap().name, "claude");
    assert_eq!(r.provider(None, Some("codex")).unwrap().name, "codex");
    assert!(matches!(
        r.provider(Some("gh"), None),
        Err(RosterError::UnknownAgent { .. })
    ));
}

#[test]
fn sidecar_and_help_are_projected() {
    let r = bundled();
    assert_eq!(
        r.sidecars()["coderabbit"].env_map["CODERABBIT_API_KEY"],
        "key"
    );
    assert_eq!(r.helps()["gh"].section, HelpSection::DevTool);
    assert_eq!(r.helps()["claude"].section, HelpSection::Agent);
    assert_eq!(r.installs()["toad"].depends_on, ["caddy"]);
}
