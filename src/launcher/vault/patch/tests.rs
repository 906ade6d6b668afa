//! Reconcile behaviour against the bundled roster in a temporary mounts directory.

use super::*;
use crate::launcher::roster::load_roster;
use crate::launcher::vault::managed::MANAGED_CONFIG_FILENAME;
use serde_json::json;
use std::os::unix::fs::symlink;

fn roster() -> Roster {
    load_roster(None).unwrap()
}

fn tcp() -> Result<VaultLocation, LocationError> {
    Ok(VaultLocation::tcp_mode(18731))
}

fn no_location() -> Result<VaultLocation, LocationError> {
    panic!("the vault location must not be resolved")
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn apply(
    base: &Path,
    enabled: Option<&BTreeSet<String>>,
    disabled: Option<&BTreeSet<String>>,
) -> Result<PatchReport, ConfigPatchError> {
    apply_shared_config_patches(&roster(), base, &PatchSelection { enabled, disabled }, tcp)
}

fn read_toml(path: &Path) -> toml_edit::DocumentMut {
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

#[test]
fn vibe_provider_entry_points_at_the_vault() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), None, None).unwrap();
    let doc = read_toml(&base.path().join("_vibe-config/config.toml"));
    let entry = doc["providers"]
        .as_array_of_tables()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(entry["name"].as_str(), Some("mistral"));
    assert!(entry["api_base"]
        .as_str()
        .unwrap()
        .contains("host.containers.internal:18731"));
    assert_eq!(entry["api_key_env_var"].as_str(), Some("MISTRAL_API_KEY"));
}

#[test]
fn codex_urls_are_substituted() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), None, None).unwrap();
    let doc = read_toml(&base.path().join("_codex-config/config.toml"));
    assert_eq!(
        doc["openai_base_url"].as_str(),
        Some("http://host.containers.internal:18731/v1")
    );
    assert_eq!(
        doc["chatgpt_base_url"].as_str(),
        Some("http://host.containers.internal:18731/backend-api/")
    );
}

#[test]
fn gh_socket_is_written_to_yaml_in_socket_mode() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("_gh-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.yml"),
        "# gh settings\ngit_protocol: ssh # mine\n",
    )
    .unwrap();
    apply_shared_config_patches(&roster(), base.path(), &PatchSelection::default(), || {
        Ok(VaultLocation::socket_mode())
    })
    .unwrap();
    let text = std::fs::read_to_string(dir.join("config.yml")).unwrap();
    assert_eq!(
        text,
        "# gh settings\ngit_protocol: ssh # mine\nhttp_unix_socket: /run/terok/vault/vault.sock\n"
    );
}

#[test]
fn applying_twice_is_idempotent_and_keeps_one_mistral_entry() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), None, None).unwrap();
    let path = base.path().join("_vibe-config/config.toml");
    let first = std::fs::read_to_string(&path).unwrap();
    let report = apply(base.path(), None, None).unwrap();
    assert!(report.written.is_empty(), "{:?}", report.written);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    assert_eq!(first.matches("[[providers]]").count(), 1);
}

#[test]
fn provider_subset_leaves_others_alone() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), Some(&set(&["vibe"])), None).unwrap();
    assert!(base.path().join("_vibe-config/config.toml").exists());
    assert!(!base.path().join("_codex-config/config.toml").exists());
}

#[test]
fn empty_enabled_set_patches_nothing_and_resolves_nothing() {
    let base = tempfile::tempdir().unwrap();
    let empty = BTreeSet::new();
    let r = apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&empty),
            disabled: None,
        },
        no_location,
    );
    assert_eq!(r.unwrap(), PatchReport::default());
    assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
}

#[test]
fn codex_record_is_exactly_the_toml_top_record() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), Some(&set(&["codex"])), None).unwrap();
    let text = std::fs::read_to_string(
        base.path()
            .join("_codex-config")
            .join(MANAGED_CONFIG_FILENAME),
    )
    .unwrap();
    let parsed: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed,
        json!({"version": 1, "files": {"config.toml": {"providers": {"codex": [{"kind": "toml_top", "values": {
            "openai_base_url": "http://host.containers.internal:18731/v1",
            "chatgpt_base_url": "http://host.containers.internal:18731/backend-api/"}}]}}}})
    );
}

#[test]
fn disabled_provider_values_are_removed_without_resolving_location() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), Some(&set(&["codex"])), None).unwrap();
    let dir = base.path().join("_codex-config");
    let none = BTreeSet::new();
    let disabled = set(&["codex"]);
    apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&none),
            disabled: Some(&disabled),
        },
        no_location,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml"))
            .unwrap()
            .trim(),
        ""
    );
    assert!(!dir.join(MANAGED_CONFIG_FILENAME).exists());
}

#[test]
fn user_edited_value_survives_removal_and_becomes_user_owned() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), Some(&set(&["codex"])), None).unwrap();
    let dir = base.path().join("_codex-config");
    let path = dir.join("config.toml");
    let edited = std::fs::read_to_string(&path).unwrap().replace(
        "http://host.containers.internal:18731/v1",
        "https://user.example/v1",
    );
    std::fs::write(&path, edited).unwrap();
    let none = BTreeSet::new();
    apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&none),
            disabled: Some(&set(&["codex"])),
        },
        no_location,
    )
    .unwrap();
    let doc = read_toml(&path);
    let keys: Vec<&str> = doc.as_table().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["openai_base_url"]);
    assert_eq!(
        doc["openai_base_url"].as_str(),
        Some("https://user.example/v1")
    );
    assert!(!dir.join(MANAGED_CONFIG_FILENAME).exists());
}

#[test]
fn created_flag_survives_reapplication_so_the_stub_is_removed() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("_vibe-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "# mine\nactive_model = \"x\"\n").unwrap();
    apply(base.path(), Some(&set(&["vibe"])), None).unwrap();
    apply(base.path(), Some(&set(&["vibe"])), None).unwrap();
    let managed: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join(MANAGED_CONFIG_FILENAME)).unwrap())
            .unwrap();
    assert_eq!(
        managed["files"]["config.toml"]["providers"]["vibe"][0]["created"],
        json!(true)
    );
    let none = BTreeSet::new();
    apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&none),
            disabled: Some(&set(&["vibe"])),
        },
        no_location,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "# mine\nactive_model = \"x\"\n"
    );
}

#[test]
fn pre_existing_entry_is_not_removed_as_a_stub() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("_vibe-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[[providers]]\nname = \"mistral\"\n",
    )
    .unwrap();
    apply(base.path(), Some(&set(&["vibe"])), None).unwrap();
    let none = BTreeSet::new();
    apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&none),
            disabled: Some(&set(&["vibe"])),
        },
        no_location,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "[[providers]]\nname = \"mistral\"\n"
    );
}

#[test]
fn unparsable_toml_is_left_untouched_with_a_clear_error() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("_codex-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "model = = broken\n").unwrap();
    let err = apply(base.path(), Some(&set(&["codex"])), None).unwrap_err();
    assert!(matches!(err, ConfigPatchError::Unparsable { .. }), "{err}");
    assert!(
        err.to_string().contains("not valid TOML") && err.to_string().contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "model = = broken\n"
    );
}

#[test]
fn unparsable_file_keeps_ownership_on_removal() {
    let base = tempfile::tempdir().unwrap();
    apply(base.path(), Some(&set(&["codex"])), None).unwrap();
    let dir = base.path().join("_codex-config");
    std::fs::write(dir.join("config.toml"), "broken = = 1\n").unwrap();
    let none = BTreeSet::new();
    let report = apply_shared_config_patches(
        &roster(),
        base.path(),
        &PatchSelection {
            enabled: Some(&none),
            disabled: Some(&set(&["codex"])),
        },
        no_location,
    )
    .unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("config.toml")).unwrap(),
        "broken = = 1\n"
    );
    assert!(dir.join(MANAGED_CONFIG_FILENAME).exists());
}

#[test]
fn config_path_that_is_a_directory_fails_to_apply() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(base.path().join("_codex-config/config.toml")).unwrap();
    let err = apply(base.path(), Some(&set(&["codex"])), None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to apply vault config patch for codex (file='config.toml')"),
        "{err}"
    );
}

#[test]
fn symlink_to_outside_file_is_rejected_and_victim_unchanged() {
    let base = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.toml");
    std::fs::write(&victim, "secret = 1\n").unwrap();
    for (dir, file) in [
        ("_vibe-config", "config.toml"),
        ("_gh-config", "config.yml"),
    ] {
        let d = base.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        symlink(&victim, d.join(file)).unwrap();
    }
    let err = apply(base.path(), Some(&set(&["vibe"])), None).unwrap_err();
    assert!(err.to_string().contains("escapes shared dir"), "{err}");
    let err = apply(base.path(), Some(&set(&["gh"])), None).unwrap_err();
    assert!(err.to_string().contains("escapes shared dir"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret = 1\n");
}

#[test]
fn symlink_planted_after_the_check_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let link = dir.path().join("config.toml");
    symlink(&victim, &link).unwrap();
    let spec = PatchSpec {
        file: "config.toml".into(),
        op: PatchOp::TomlTop {
            values: json!({"a": "{vault_url}/v1"}).as_object().unwrap().clone(),
        },
    };
    let err = write_patch(
        &link,
        &spec,
        &VaultLocation::tcp_mode(1),
        &[],
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    let spec = PatchSpec {
        file: "config.yml".into(),
        op: PatchOp::YamlTop {
            values: json!({"a": "b"}).as_object().unwrap().clone(),
        },
    };
    let err = write_patch(
        &link,
        &spec,
        &VaultLocation::tcp_mode(1),
        &[],
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
}

#[test]
fn patch_without_symlink_writes_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let spec = PatchSpec {
        file: "config.toml".into(),
        op: PatchOp::TomlTable {
            table: "providers".into(),
            match_: json!({"name": "mistral"}).as_object().unwrap().clone(),
            values: json!({"api_base": "{vault_url}/v1"})
                .as_object()
                .unwrap()
                .clone(),
        },
    };
    let loc = VaultLocation {
        url: "http://vault".into(),
        socket: "/s".into(),
    };
    write_patch(&path, &spec, &loc, &[], &mut Vec::new()).unwrap();
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_file());
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("http://vault/v1"));
}

#[test]
fn malformed_patch_specs_are_reported() {
    let m = |t: &str| -> Mapping { serde_norway::from_str(t).unwrap() };
    assert!(PatchSpec::parse(&m("toml_set: {a: b}"))
        .unwrap_err()
        .to_string()
        .contains("'file' is missing"));
    assert!(PatchSpec::parse(&m("file: f\ntoml_table: t\ntoml_set: {a: b}")).is_err());
    assert_eq!(
        PatchSpec::parse(&m("file: f")).unwrap().op,
        PatchOp::Nothing
    );
    let both = PatchSpec::parse(&m("file: f\nyaml_set: {a: b}\ntoml_set: {c: d}")).unwrap();
    assert!(matches!(both.op, PatchOp::YamlTop { .. }));
}

#[test]
fn write_vault_config_patches_one_provider_without_recording() {
    let base = tempfile::tempdir().unwrap();
    let path = write_vault_config(
        &roster(),
        base.path(),
        "codex",
        &VaultLocation::socket_mode(),
    )
    .unwrap()
    .unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("http://localhost:9419/v1"));
    assert!(!base
        .path()
        .join("_codex-config")
        .join(MANAGED_CONFIG_FILENAME)
        .exists());
    assert_eq!(
        write_vault_config(
            &roster(),
            base.path(),
            "claude",
            &VaultLocation::socket_mode()
        )
        .unwrap(),
        None
    );
}
