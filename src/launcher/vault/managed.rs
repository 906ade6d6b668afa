//! The record of values the launcher wrote into shared config files.
//!
//! `<shared dir>/.terok-managed-config.json` remembers, per file and provider,
//! which keys were set and to what (after substitution). Removal for a disabled
//! provider only deletes a key while its live value still equals the record, so
//! a value the user edited becomes theirs.
//!
//! Shape (version 1, keys sorted, two-space indent, trailing newline):
//! `{"files": {"<file>": {"providers": {"<provider>": [<record>…]}}}, "version": 1}`.
//! The file is deleted when no file entries remain. A missing, unparsable or
//! wrongly shaped record file reads as empty.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ConfigPatchError;
use super::safe_io::{delete_nofollow, read_nofollow, safe_config_path, write_nofollow};

/// The record file's name inside a shared directory.
pub const MANAGED_CONFIG_FILENAME: &str = ".terok-managed-config.json";
/// The record file's format version.
pub const MANAGED_CONFIG_VERSION: u64 = 1;

/// One set of values a provider owns in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Record {
    /// Top-level TOML keys.
    #[serde(rename = "toml_top")]
    TomlTop { values: Map<String, Value> },
    /// Keys of one entry of a TOML array of tables.
    #[serde(rename = "toml_table")]
    TomlTable {
        table: String,
        #[serde(rename = "match")]
        match_: Map<String, Value>,
        values: Map<String, Value>,
        /// Whether the launcher created the entry (so it may remove the bare stub).
        #[serde(default)]
        created: bool,
    },
    /// Top-level YAML keys.
    #[serde(rename = "yaml_top")]
    YamlTop { values: Map<String, Value> },
}

/// The parsed record file: file name → provider → records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedConfig {
    pub files: BTreeMap<String, BTreeMap<String, Vec<Record>>>,
}

impl ManagedConfig {
    /// Loads the record file of `shared_dir`; problems other than path safety read as empty.
    pub fn load(
        shared_dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<ManagedConfig, ConfigPatchError> {
        let path = safe_config_path(shared_dir, MANAGED_CONFIG_FILENAME)?;
        let Some(raw) = read_nofollow(&path)? else {
            return Ok(ManagedConfig::default());
        };
        let value: Value = match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(e) => {
                warnings.push(format!(
                    "warning [vault-config]: failed to parse managed record {}: {e}",
                    path.display()
                ));
                return Ok(ManagedConfig::default());
            }
        };
        Ok(Self::from_value(&value))
    }

    fn from_value(value: &Value) -> ManagedConfig {
        let mut out = ManagedConfig::default();
        let Some(files) = value.get("files").and_then(Value::as_object) else {
            return out;
        };
        for (file, info) in files {
            let Some(providers) = info.get("providers").and_then(Value::as_object) else {
                continue;
            };
            let mut by_provider = BTreeMap::new();
            for (provider, records) in providers {
                let Some(list) = records.as_array() else {
                    continue;
                };
                let parsed: Vec<Record> = list
                    .iter()
                    .filter_map(|r| serde_json::from_value(r.clone()).ok())
                    .collect();
                by_provider.insert(provider.clone(), parsed);
            }
            out.files.insert(file.clone(), by_provider);
        }
        out
    }

    /// The records `provider` owns in `file`.
    pub fn records(&self, file: &str, provider: &str) -> &[Record] {
        self.files
            .get(file)
            .and_then(|p| p.get(provider))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Replaces `provider`'s records for `file`; an empty list drops the provider.
    pub fn set_records(&mut self, file: &str, provider: &str, records: Vec<Record>) {
        let providers = self.files.entry(file.to_string()).or_default();
        if records.is_empty() {
            providers.remove(provider);
        } else {
            providers.insert(provider.to_string(), records);
        }
        if providers.is_empty() {
            self.files.remove(file);
        }
    }

    /// Serialises with sorted keys, as the record file is written.
    pub fn to_json(&self) -> String {
        let mut files = Map::new();
        for (file, providers) in &self.files {
            let mut p = Map::new();
            for (provider, records) in providers {
                p.insert(
                    provider.clone(),
                    serde_json::to_value(records).unwrap_or(Value::Null),
                );
            }
            let mut info = Map::new();
            info.insert("providers".into(), Value::Object(p));
            files.insert(file.clone(), Value::Object(info));
        }
        let mut top = Map::new();
        top.insert("files".into(), Value::Object(files));
        top.insert("version".into(), Value::from(MANAGED_CONFIG_VERSION));
        let sorted = sort_keys(Value::Object(top));
        let mut text = serde_json::to_string_pretty(&sorted).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the record file of `shared_dir`, or deletes it when empty.
    pub fn save(&self, shared_dir: &Path) -> Result<(), ConfigPatchError> {
        let path = safe_config_path(shared_dir, MANAGED_CONFIG_FILENAME)?;
        if self.files.is_empty() {
            return delete_nofollow(&path);
        }
        write_nofollow(&path, self.to_json().as_bytes())
    }
}

/// Rebuilds every object with its keys in sorted order (whatever the map's own ordering).
pub fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_serialise_in_the_contract_shape() {
        let mut m = ManagedConfig::default();
        let values = json!({"openai_base_url": "u/v1", "chatgpt_base_url": "u/backend-api/"});
        m.set_records(
            "config.toml",
            "codex",
            vec![Record::TomlTop {
                values: values.as_object().unwrap().clone(),
            }],
        );
        let parsed: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            parsed,
            json!({"files": {"config.toml": {"providers": {"codex": [
                {"kind": "toml_top", "values": {"chatgpt_base_url": "u/backend-api/", "openai_base_url": "u/v1"}}]}}},
                "version": 1})
        );
        let text = m.to_json();
        assert!(text.find("chatgpt_base_url").unwrap() < text.find("openai_base_url").unwrap());
        assert!(text.find("\"files\"").unwrap() < text.find("\"version\"").unwrap());
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn table_record_round_trips() {
        let r = Record::TomlTable {
            table: "providers".into(),
            match_: json!({"name": "mistral"}).as_object().unwrap().clone(),
            values: json!({"api_base": "x"}).as_object().unwrap().clone(),
            created: true,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], "toml_table");
        assert_eq!(v["match"]["name"], "mistral");
        assert_eq!(serde_json::from_value::<Record>(v).unwrap(), r);
    }

    #[test]
    fn unparsable_or_misshapen_record_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut warnings = Vec::new();
        std::fs::write(dir.path().join(MANAGED_CONFIG_FILENAME), "{not json").unwrap();
        assert!(ManagedConfig::load(dir.path(), &mut warnings)
            .unwrap()
            .files
            .is_empty());
        assert_eq!(warnings.len(), 1);
        std::fs::write(dir.path().join(MANAGED_CONFIG_FILENAME), r#"{"files": []}"#).unwrap();
        assert!(ManagedConfig::load(dir.path(), &mut warnings)
            .unwrap()
            .files
            .is_empty());
    }

    #[test]
    fn empty_record_file_is_deleted_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANAGED_CONFIG_FILENAME);
        std::fs::write(&path, "{}").unwrap();
        ManagedConfig::default().save(dir.path()).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn removing_last_provider_drops_the_file_entry() {
        let mut m = ManagedConfig::default();
        m.set_records("a", "p", vec![Record::YamlTop { values: Map::new() }]);
        m.set_records("a", "p", vec![]);
        assert!(m.files.is_empty());
    }
}
