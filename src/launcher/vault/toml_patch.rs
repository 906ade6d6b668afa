//! Format-preserving edits of a provider's TOML config.
//!
//! Edits go through `toml_edit`, so comments, ordering and whitespace of the
//! user's file survive; a replaced value keeps the comment that followed it.
//! A file that does not parse is never rewritten: the edit fails instead.
//!
//! Semantics (shared with the rest of the stack):
//! - top-level set: each key is set, replacing whatever was there;
//! - array-of-tables upsert: the first entry of `table` whose keys equal every
//!   `match` pair is updated; without one, `{match…, values…}` is appended; a
//!   `table` key holding anything but an array is replaced by a new array;
//! - removal: a key is removed only while its value equals the recorded one; an
//!   entry the launcher created is removed once only its `match` keys remain; an
//!   emptied array is removed.

use serde_json::{Map, Value as Json};
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::managed::Record;

/// Why an edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// The existing file is not valid in its format.
    Parse(String),
    /// The patch asks for something the format cannot express.
    Spec(String),
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Parse(format!("not valid TOML: {}", e.to_string().trim())))
}

/// Converts a patch value to TOML; `null` has no TOML form.
pub fn json_to_toml(v: &Json) -> Result<Value, EditError> {
    Ok(match v {
        Json::String(s) => s.as_str().into(),
        Json::Bool(b) => (*b).into(),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(EditError::Spec(format!("number {n} does not fit TOML"))),
        },
        Json::Array(items) => {
            let mut arr = toml_edit::Array::new();
            for item in items {
                arr.push(json_to_toml(item)?);
            }
            Value::Array(arr)
        }
        Json::Object(map) => {
            let mut t = InlineTable::new();
            for (k, item) in map {
                t.insert(k, json_to_toml(item)?);
            }
            Value::InlineTable(t)
        }
        Json::Null => {
            return Err(EditError::Spec(
                "null values cannot be written to TOML".into(),
            ))
        }
    })
}

/// Converts a TOML value to JSON for comparison with recorded values.
pub fn toml_to_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.value().clone()),
        Value::Integer(i) => Json::from(*i.value()),
        Value::Float(f) => serde_json::Number::from_f64(*f.value())
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Boolean(b) => Json::Bool(*b.value()),
        Value::Datetime(d) => Json::String(d.value().to_string()),
        Value::Array(a) => Json::Array(a.iter().map(toml_to_json).collect()),
        Value::InlineTable(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), toml_to_json(v)))
                .collect(),
        ),
    }
}

fn item_to_json(item: &Item) -> Option<Json> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(toml_to_json(v)),
        Item::Table(t) => Some(Json::Object(
            t.iter()
                .filter_map(|(k, i)| item_to_json(i).map(|j| (k.to_string(), j)))
                .collect(),
        )),
        Item::ArrayOfTables(a) => Some(Json::Array(
            a.iter()
                .map(|t| item_to_json(&Item::Table(t.clone())).unwrap_or(Json::Null))
                .collect(),
        )),
    }
}

/// Sets `key` to `new`, keeping the surrounding whitespace and trailing comment of an old value.
fn set_value(table: &mut dyn TableLike, key: &str, new: Value) {
    if let Some(Item::Value(old)) = table.get_mut(key) {
        let decor = old.decor().clone();
        *old = new;
        *old.decor_mut() = decor;
        return;
    }
    table.insert(key, Item::Value(new));
}

/// Removes `key`; comment lines written above it move to the key that follows.
fn remove_keeping_comments(table: &mut dyn TableLike, key: &str) {
    let prefix = table
        .key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
        .map(String::from);
    let index = table.iter().position(|(k, _)| k == key);
    table.remove(key);
    let (Some(prefix), Some(index)) = (prefix, index) else {
        return;
    };
    let Some(next) = table.iter().nth(index).map(|(k, _)| k.to_string()) else {
        return;
    };
    if let Some(mut next_key) = table.key_mut(&next) {
        let decor = next_key.leaf_decor_mut();
        let existing = decor
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        decor.set_prefix(format!("{prefix}{existing}"));
    }
}

fn matches(table: &dyn TableLike, criteria: &Map<String, Json>) -> bool {
    criteria
        .iter()
        .all(|(k, v)| table.get(k).and_then(item_to_json).as_ref() == Some(v))
}

/// Sets top-level keys.
pub fn set_top(text: &str, values: &Map<String, Json>) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    for (k, v) in values {
        set_value(doc.as_table_mut(), k, json_to_toml(v)?);
    }
    Ok(doc.to_string())
}

/// Upserts an entry of the array of tables `table`; returns the text and whether the entry was created.
pub fn upsert_table_entry(
    text: &str,
    table: &str,
    criteria: &Map<String, Json>,
    values: &Map<String, Json>,
) -> Result<(String, bool), EditError> {
    let mut doc = parse(text)?;
    let converted: Vec<(&String, Value)> = values
        .iter()
        .map(|(k, v)| json_to_toml(v).map(|t| (k, t)))
        .collect::<Result<_, _>>()?;
    let root = doc.as_table_mut();
    let mut found = false;
    match root.get_mut(table) {
        Some(Item::ArrayOfTables(aot)) => {
            let position = aot.iter().position(|t| matches(t, criteria));
            match position.and_then(|i| aot.get_mut(i)) {
                Some(entry) => {
                    for (k, v) in &converted {
                        set_value(entry, k, v.clone());
                    }
                    found = true;
                }
                None => aot.push(new_table(criteria, &converted)?),
            }
        }
        Some(Item::Value(Value::Array(arr))) => {
            let entry = arr.iter_mut().find_map(|v| match v {
                Value::InlineTable(t) if matches(t, criteria) => Some(t),
                _ => None,
            });
            if let Some(entry) = entry {
                for (k, v) in &converted {
                    set_value(entry, k, v.clone());
                }
                found = true;
            } else {
                let mut t = InlineTable::new();
                for (k, v) in criteria {
                    t.insert(k, json_to_toml(v)?);
                }
                for (k, v) in &converted {
                    t.insert(k.as_str(), v.clone());
                }
                arr.push(Value::InlineTable(t));
            }
        }
        _ => {
            let mut aot = ArrayOfTables::new();
            aot.push(new_table(criteria, &converted)?);
            root.insert(table, Item::ArrayOfTables(aot));
        }
    }
    Ok((doc.to_string(), !found))
}

fn new_table(
    criteria: &Map<String, Json>,
    values: &[(&String, Value)],
) -> Result<Table, EditError> {
    let mut t = Table::new();
    for (k, v) in criteria {
        t.insert(k, Item::Value(json_to_toml(v)?));
    }
    for (k, v) in values {
        t.insert(k, Item::Value(v.clone()));
    }
    Ok(t)
}

/// Removes recorded values that are still unchanged; `None` when nothing changed.
pub fn remove_records(text: &str, records: &[Record]) -> Result<Option<String>, EditError> {
    let mut doc = parse(text)?;
    let mut changed = false;
    for record in records {
        match record {
            Record::TomlTop { values } => {
                for (k, v) in values {
                    if doc.get(k).and_then(item_to_json).as_ref() == Some(v) {
                        remove_keeping_comments(doc.as_table_mut(), k);
                        changed = true;
                    }
                }
            }
            Record::TomlTable {
                table,
                match_,
                values,
                created,
            } => {
                changed |= remove_from_table(doc.as_table_mut(), table, match_, values, *created);
            }
            Record::YamlTop { .. } => {}
        }
    }
    Ok(changed.then(|| doc.to_string()))
}

fn strip_entry(entry: &mut dyn TableLike, values: &Map<String, Json>) -> bool {
    let mut changed = false;
    for (k, v) in values {
        if entry.get(k).and_then(item_to_json).as_ref() == Some(v) {
            remove_keeping_comments(entry, k);
            changed = true;
        }
    }
    changed
}

fn only_match_left(entry: &dyn TableLike, criteria: &Map<String, Json>) -> bool {
    entry.len() == criteria.len() && matches(entry, criteria)
}

fn remove_from_table(
    root: &mut Table,
    table: &str,
    criteria: &Map<String, Json>,
    values: &Map<String, Json>,
    created: bool,
) -> bool {
    let mut changed = false;
    let empty = match root.get_mut(table) {
        Some(Item::ArrayOfTables(aot)) => {
            let Some(idx) = aot.iter().position(|t| matches(t, criteria)) else {
                return false;
            };
            if let Some(entry) = aot.get_mut(idx) {
                changed |= strip_entry(entry, values);
                if created && only_match_left(entry, criteria) {
                    aot.remove(idx);
                    changed = true;
                }
            }
            aot.is_empty()
        }
        Some(Item::Value(Value::Array(arr))) => {
            let position = arr
                .iter()
                .position(|v| matches!(v, Value::InlineTable(t) if matches(t, criteria)));
            let Some(idx) = position else { return false };
            if let Some(Value::InlineTable(entry)) = arr.get_mut(idx) {
                changed |= strip_entry(entry, values);
                if created && only_match_left(entry, criteria) {
                    arr.remove(idx);
                    changed = true;
                }
            }
            arr.is_empty()
        }
        _ => return false,
    };
    if empty {
        root.remove(table);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn top_level_set_keeps_comments_and_order() {
        let text = "# my codex config\nmodel = \"o3\" # favourite\n\n[profiles.x]\nmodel = \"y\"\n";
        let out = set_top(text, &obj(json!({"openai_base_url": "http://v/v1"}))).unwrap();
        assert!(
            out.starts_with("# my codex config\nmodel = \"o3\" # favourite\n"),
            "{out}"
        );
        assert!(out.contains("openai_base_url = \"http://v/v1\""));
        assert!(out.contains("[profiles.x]\nmodel = \"y\""));
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["openai_base_url"].as_str(), Some("http://v/v1"));
        assert!(doc.get("profiles").and_then(|p| p.get("x")).is_some());
    }

    #[test]
    fn replacing_a_value_keeps_its_trailing_comment() {
        let out = set_top(
            "url = \"old\"  # set by terok\n",
            &obj(json!({"url": "new"})),
        )
        .unwrap();
        assert_eq!(out, "url = \"new\"  # set by terok\n");
    }

    #[test]
    fn setting_is_idempotent() {
        let values = obj(json!({"a": "x", "b": 2}));
        let once = set_top("", &values).unwrap();
        assert_eq!(set_top(&once, &values).unwrap(), once);
    }

    #[test]
    fn upsert_creates_then_updates_one_entry() {
        let criteria = obj(json!({"name": "mistral"}));
        let values = obj(json!({"api_base": "http://v/v1", "api_key_env_var": "MISTRAL_API_KEY"}));
        let (once, created) = upsert_table_entry(
            "# vibe\nactive_model = \"m\"\n",
            "providers",
            &criteria,
            &values,
        )
        .unwrap();
        assert!(created);
        let (twice, created_again) =
            upsert_table_entry(&once, "providers", &criteria, &values).unwrap();
        assert!(!created_again);
        assert_eq!(once, twice);
        assert_eq!(twice.matches("[[providers]]").count(), 1);
        assert!(twice.starts_with("# vibe\nactive_model = \"m\"\n"));
    }

    #[test]
    fn upsert_updates_the_matching_entry_among_others() {
        let text = "[[providers]]\nname = \"other\"\napi_base = \"o\"\n\n[[providers]]\nname = \"mistral\" # keep me\napi_base = \"old\"\nextra = 1\n";
        let (out, created) = upsert_table_entry(
            text,
            "providers",
            &obj(json!({"name": "mistral"})),
            &obj(json!({"api_base": "new"})),
        )
        .unwrap();
        assert!(!created);
        assert!(
            out.contains("name = \"mistral\" # keep me\napi_base = \"new\"\nextra = 1"),
            "{out}"
        );
        assert!(out.contains("api_base = \"o\""));
    }

    #[test]
    fn upsert_handles_inline_arrays_of_tables() {
        let text = "providers = [{name = \"mistral\", api_base = \"old\"}]\n";
        let (out, created) = upsert_table_entry(
            text,
            "providers",
            &obj(json!({"name": "mistral"})),
            &obj(json!({"api_base": "new"})),
        )
        .unwrap();
        assert!(!created);
        let doc: DocumentMut = out.parse().unwrap();
        let arr = doc["providers"].as_array().unwrap();
        assert_eq!(arr.len(), 1);
        assert_eq!(
            arr.get(0)
                .unwrap()
                .as_inline_table()
                .unwrap()
                .get("api_base")
                .unwrap()
                .as_str(),
            Some("new")
        );
    }

    #[test]
    fn non_array_table_key_is_replaced() {
        let (out, created) = upsert_table_entry(
            "providers = 5\n",
            "providers",
            &obj(json!({"name": "m"})),
            &obj(json!({"a": "b"})),
        )
        .unwrap();
        assert!(created);
        assert!(out.contains("[[providers]]"), "{out}");
    }

    #[test]
    fn unparsable_toml_is_an_error() {
        assert!(matches!(
            set_top("a = = 1\n", &Map::new()),
            Err(EditError::Parse(_))
        ));
    }

    #[test]
    fn null_value_is_a_spec_error() {
        assert!(matches!(
            set_top("", &obj(json!({"a": null}))),
            Err(EditError::Spec(_))
        ));
    }

    #[test]
    fn removal_only_touches_unchanged_values() {
        let record = Record::TomlTop {
            values: obj(json!({"a": "mine", "b": "mine"})),
        };
        let out = remove_records(
            "# c\na = \"mine\"\nb = \"user\"\n",
            std::slice::from_ref(&record),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out, "# c\nb = \"user\"\n");
        assert_eq!(remove_records("b = \"user\"\n", &[record]).unwrap(), None);
    }

    #[test]
    fn created_entry_is_removed_when_only_its_match_remains() {
        let record = Record::TomlTable {
            table: "providers".into(),
            match_: obj(json!({"name": "mistral"})),
            values: obj(json!({"api_base": "x"})),
            created: true,
        };
        let out = remove_records(
            "top = 1\n\n[[providers]]\nname = \"mistral\"\napi_base = \"x\"\n",
            std::slice::from_ref(&record),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out.trim(), "top = 1");
        let kept = remove_records(
            "[[providers]]\nname = \"mistral\"\napi_base = \"x\"\nuser = 1\n",
            &[record],
        )
        .unwrap()
        .unwrap();
        assert!(kept.contains("user = 1") && !kept.contains("api_base"));
    }

    #[test]
    fn entry_not_created_by_us_stays_as_a_stub() {
        let record = Record::TomlTable {
            table: "providers".into(),
            match_: obj(json!({"name": "mistral"})),
            values: obj(json!({"api_base": "x"})),
            created: false,
        };
        let out = remove_records(
            "[[providers]]\nname = \"mistral\"\napi_base = \"x\"\n",
            &[record],
        )
        .unwrap()
        .unwrap();
        assert!(out.contains("name = \"mistral\"") && !out.contains("api_base"));
    }
}
