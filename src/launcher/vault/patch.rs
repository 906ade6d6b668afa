//! Points agents at the vault by patching their shared config files.
//!
//! A roster entry's `vault.shared_config_patch` names a file in the provider's
//! shared directory (`<mounts>/<auth.host_dir>`) and the values to set:
//! - `yaml_set: {k: v}`: top-level YAML keys (wins over `toml_set`);
//! - `toml_set: {k: v}`: top-level TOML keys;
//! - `toml_table` + `toml_match` + `toml_set`: upsert one entry of a TOML array
//!   of tables.
//!
//! String values have `{vault_url}` and `{vault_socket}` substituted. Patches
//! are reconciled on every launch: disabled providers first have the values they
//! own removed (only while unchanged, see [`super::managed`]), then enabled
//! providers are (re)applied and their values recorded. The reconcile is
//! idempotent. Edits preserve the user's formatting; a file that does not parse
//! is left untouched and the launch fails. All file access is symlink-safe
//! ([`super::safe_io`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use serde_norway::Mapping;

use super::error::ConfigPatchError;
use super::location::{LocationError, VaultLocation};
use super::managed::{ManagedConfig, Record};
use super::safe_io::{read_nofollow, safe_config_path, write_nofollow};
use super::toml_patch::{self, EditError};
use super::yaml_patch;
use crate::launcher::roster::Roster;

/// What a patch spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    YamlTop {
        values: Map<String, Json>,
    },
    TomlTop {
        values: Map<String, Json>,
    },
    TomlTable {
        table: String,
        match_: Map<String, Json>,
        values: Map<String, Json>,
    },
    /// A spec without `yaml_set` or `toml_set`: nothing to write.
    Nothing,
}

/// A parsed `shared_config_patch`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchSpec {
    pub file: String,
    pub op: PatchOp,
}

fn spec_mapping(patch: &Mapping, key: &str) -> Result<Option<Map<String, Json>>, ConfigPatchError> {
    let Some(value) = patch.get(key) else {
        return Ok(None);
    };
    match serde_json::to_value(value) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        _ => Err(ConfigPatchError::InvalidSpec(format!(
            "'{key}' must be a mapping with string keys"
        ))),
    }
}

impl PatchSpec {
    /// Interprets the free-form patch mapping from the roster.
    pub fn parse(patch: &Mapping) -> Result<PatchSpec, ConfigPatchError> {
        let file = match patch.get("file") {
            Some(serde_norway::Value::String(f)) => f.clone(),
            Some(_) => {
                return Err(ConfigPatchError::InvalidSpec(
                    "'file' must be a string".into(),
                ))
            }
            None => return Err(ConfigPatchError::InvalidSpec("'file' is missing".into())),
        };
        let op = if let Some(values) = spec_mapping(patch, "yaml_set")? {
            PatchOp::YamlTop { values }
        } else if let Some(values) = spec_mapping(patch, "toml_set")? {
            match patch.get("toml_table") {
                None => PatchOp::TomlTop { values },
                Some(serde_norway::Value::String(table)) => {
                    let match_ = spec_mapping(patch, "toml_match")?.ok_or_else(|| {
                        ConfigPatchError::InvalidSpec("'toml_table' needs 'toml_match'".into())
                    })?;
                    PatchOp::TomlTable {
                        table: table.clone(),
                        match_,
                        values,
                    }
                }
                Some(_) => {
                    return Err(ConfigPatchError::InvalidSpec(
                        "'toml_table' must be a string".into(),
                    ))
                }
            }
        } else {
            PatchOp::Nothing
        };
        Ok(PatchSpec { file, op })
    }

    /// The file name as written in the spec, or `?` when the spec is unreadable.
    fn file_of(patch: &Mapping) -> String {
        match patch.get("file") {
            Some(serde_norway::Value::String(f)) => f.clone(),
            _ => "?".into(),
        }
    }
}

fn substitute(values: &Map<String, Json>, location: &VaultLocation) -> Map<String, Json> {
    values
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => Json::String(location.substitute(s)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Which providers a reconcile touches.
#[derive(Debug, Clone, Default)]
pub struct PatchSelection<'a> {
    /// `None`: every provider with a patch; an empty set: none.
    pub enabled: Option<&'a BTreeSet<String>>,
    /// Providers whose managed values are removed (`None`: none).
    pub disabled: Option<&'a BTreeSet<String>>,
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchReport {
    /// Config files written (created or changed).
    pub written: Vec<PathBuf>,
    /// Non-fatal problems, e.g. a disabled provider's file that no longer parses.
    pub warnings: Vec<String>,
}

fn wrap_apply(provider: &str, file: &str, err: ConfigPatchError) -> ConfigPatchError {
    if err.is_direct() {
        err
    } else {
        ConfigPatchError::Apply {
            provider: provider.to_string(),
            file: file.to_string(),
            source: Box::new(err),
        }
    }
}

fn decode(path: &Path, raw: Option<Vec<u8>>) -> Result<Option<String>, ConfigPatchError> {
    raw.map(|bytes| {
        String::from_utf8(bytes).map_err(|_| ConfigPatchError::Unparsable {
            path: path.to_path_buf(),
            message: "not valid UTF-8".into(),
        })
    })
    .transpose()
}

fn edit_error(path: &Path, err: EditError) -> ConfigPatchError {
    match err {
        EditError::Parse(message) => ConfigPatchError::Unparsable {
            path: path.to_path_buf(),
            message,
        },
        EditError::Spec(message) => ConfigPatchError::InvalidSpec(message),
    }
}

/// Reconciles shared config patches for the roster's providers under `mounts_base`.
///
/// `location` is only called when something is to be applied, so removing
/// disabled providers works without a resolvable vault.
pub fn apply_shared_config_patches(
    roster: &Roster,
    mounts_base: &Path,
    selection: &PatchSelection<'_>,
    location: impl FnOnce() -> Result<VaultLocation, LocationError>,
) -> Result<PatchReport, ConfigPatchError> {
    let mut report = PatchReport::default();
    let with_patch = roster
        .vault_routes()
        .iter()
        .filter_map(|(name, r)| r.shared_config_patch.as_ref().map(|p| (name, p)));
    let disabled: Vec<&String> = with_patch
        .clone()
        .filter(|(name, _)| selection.disabled.is_some_and(|d| d.contains(*name)))
        .map(|(name, _)| name)
        .collect();
    let enabled: Vec<(&String, &Mapping)> = with_patch
        .filter(|(name, _)| selection.enabled.is_none_or(|e| e.contains(*name)))
        .collect();

    for name in disabled {
        let Some(auth) = roster.auth_providers().get(name) else {
            continue;
        };
        let shared_dir = mounts_base.join(&auth.host_dir);
        remove_managed_values(&shared_dir, name, &mut report.warnings).map_err(|e| {
            if e.is_direct() {
                e
            } else {
                ConfigPatchError::Remove {
                    provider: name.clone(),
                    source: Box::new(e),
                }
            }
        })?;
    }

    if enabled.is_empty() {
        return Ok(report);
    }
    let location = location()?;
    for (name, patch) in enabled {
        let Some(auth) = roster.auth_providers().get(name) else {
            continue;
        };
        let shared_dir = mounts_base.join(&auth.host_dir);
        let file = PatchSpec::file_of(patch);
        let written = apply_one(&shared_dir, name, patch, &location, &mut report.warnings)
            .map_err(|e| wrap_apply(name, &file, e))?;
        report.written.extend(written);
    }
    Ok(report)
}

/// Applies one provider's patch in `shared_dir` and records what it owns.
fn apply_one(
    shared_dir: &Path,
    provider: &str,
    patch: &Mapping,
    location: &VaultLocation,
    warnings: &mut Vec<String>,
) -> Result<Option<PathBuf>, ConfigPatchError> {
    std::fs::create_dir_all(shared_dir).map_err(|source| ConfigPatchError::Io {
        path: shared_dir.to_path_buf(),
        source,
    })?;
    let spec = PatchSpec::parse(patch)?;
    let path = safe_config_path(shared_dir, &spec.file)?;
    let mut managed = ManagedConfig::load(shared_dir, warnings)?;
    let (written, records) = write_patch(
        &path,
        &spec,
        location,
        managed.records(&spec.file, provider),
        warnings,
    )?;
    managed.set_records(&spec.file, provider, records);
    managed.save(shared_dir)?;
    Ok(written)
}

/// Applies `spec` to the file at `path`; returns the path if it was written and the new records.
fn write_patch(
    path: &Path,
    spec: &PatchSpec,
    location: &VaultLocation,
    previous: &[Record],
    warnings: &mut Vec<String>,
) -> Result<(Option<PathBuf>, Vec<Record>), ConfigPatchError> {
    if matches!(spec.op, PatchOp::Nothing) {
        return Ok((None, Vec::new()));
    }
    let current = decode(path, read_nofollow(path)?)?;
    let text = current.as_deref().unwrap_or("");
    let (new_text, record) = match &spec.op {
        PatchOp::YamlTop { values } => {
            let values = substitute(values, location);
            let edit = yaml_patch::set_top(text, &values).map_err(|e| edit_error(path, e))?;
            if !edit.lossless {
                warnings.push(format!(
                    "warning [vault-config]: {} has a layout that cannot be edited in place; it was rewritten without its comments",
                    path.display()
                ));
            }
            (edit.text, Record::YamlTop { values })
        }
        PatchOp::TomlTop { values } => {
            let values = substitute(values, location);
            let out = toml_patch::set_top(text, &values).map_err(|e| edit_error(path, e))?;
            (out, Record::TomlTop { values })
        }
        PatchOp::TomlTable {
            table,
            match_,
            values,
        } => {
            let values = substitute(values, location);
            let (out, created_now) = toml_patch::upsert_table_entry(text, table, match_, &values)
                .map_err(|e| edit_error(path, e))?;
            // The entry stays ours across re-applications until it is removed.
            let created_before = previous.iter().any(|r| {
                matches!(r, Record::TomlTable { table: t, match_: m, created: true, .. } if t == table && m == match_)
            });
            (
                out,
                Record::TomlTable {
                    table: table.clone(),
                    match_: match_.clone(),
                    values,
                    created: created_now || created_before,
                },
            )
        }
        PatchOp::Nothing => unreachable!("handled above"),
    };
    let written = if current.as_deref() != Some(new_text.as_str()) {
        write_nofollow(path, new_text.as_bytes())?;
        Some(path.to_path_buf())
    } else {
        None
    };
    Ok((written, vec![record]))
}

/// Removes the values `provider` owns in `shared_dir` while they are unchanged,
/// then drops its ownership. A file that no longer parses keeps the ownership
/// and is left untouched.
fn remove_managed_values(
    shared_dir: &Path,
    provider: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigPatchError> {
    if !shared_dir.exists() {
        return Ok(());
    }
    let mut managed = ManagedConfig::load(shared_dir, warnings)?;
    let owned: Vec<(String, Vec<Record>)> = managed
        .files
        .iter()
        .filter_map(|(file, providers)| providers.get(provider).map(|r| (file.clone(), r.clone())))
        .collect();
    for (file, records) in owned {
        let path = safe_config_path(shared_dir, &file)?;
        match remove_records(&path, &records) {
            Ok(()) => managed.set_records(&file, provider, Vec::new()),
            Err(ConfigPatchError::Unparsable { path, message }) => warnings.push(format!(
                "warning [vault-config]: cannot remove managed values from {}: {message}",
                path.display()
            )),
            Err(e) => return Err(e),
        }
    }
    managed.save(shared_dir)
}

fn remove_records(path: &Path, records: &[Record]) -> Result<(), ConfigPatchError> {
    let Some(mut text) = decode(path, read_nofollow(path)?)? else {
        return Ok(());
    };
    let mut changed = false;
    let toml: Vec<Record> = records
        .iter()
        .filter(|r| !matches!(r, Record::YamlTop { .. }))
        .cloned()
        .collect();
    if !toml.is_empty() {
        if let Some(out) =
            toml_patch::remove_records(&text, &toml).map_err(|e| edit_error(path, e))?
        {
            text = out;
            changed = true;
        }
    }
    for record in records {
        if let Record::YamlTop { values } = record {
            if let Some(edit) =
                yaml_patch::remove_unchanged(&text, values).map_err(|e| edit_error(path, e))?
            {
                text = edit.text;
                changed = true;
            }
        }
    }
    if changed {
        write_nofollow(path, text.as_bytes())?;
    }
    Ok(())
}

/// Applies one provider's patch after authentication, without recording ownership.
///
/// Returns the patched file, or `None` when the provider has no patch or no
/// shared directory.
pub fn write_vault_config(
    roster: &Roster,
    mounts_base: &Path,
    provider: &str,
    location: &VaultLocation,
) -> Result<Option<PathBuf>, ConfigPatchError> {
    let Some(patch) = roster
        .vault_routes()
        .get(provider)
        .and_then(|r| r.shared_config_patch.as_ref())
    else {
        return Ok(None);
    };
    let Some(auth) = roster.auth_providers().get(provider) else {
        return Ok(None);
    };
    let file = PatchSpec::file_of(patch);
    let run = || -> Result<PathBuf, ConfigPatchError> {
        let shared_dir = mounts_base.join(&auth.host_dir);
        std::fs::create_dir_all(&shared_dir).map_err(|source| ConfigPatchError::Io {
            path: shared_dir.clone(),
            source,
        })?;
        let spec = PatchSpec::parse(patch)?;
        let path = safe_config_path(&shared_dir, &spec.file)?;
        write_patch(&path, &spec, location, &[], &mut Vec::new())?;
        Ok(path)
    };
    run().map(Some).map_err(|e| wrap_apply(provider, &file, e))
}

#[cfg(test)]
mod tests;
