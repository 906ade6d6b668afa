//! Deep merge of a user roster layer over a bundled one.
//!
//! The rules are the stack-wide config merge rules, so a user file means the
//! same thing to every terok component:
//! - mappings merge recursively;
//! - an override of `~` (null) deletes the key;
//! - the bare string `_inherit` keeps the base value;
//! - a list replaces the base list, unless it contains `_inherit`, which is
//!   replaced by the base elements in place (a splice);
//! - a mapping carrying `_inherit: true` overlays the base (the sentinel is
//!   stripped); with no base mapping it stands alone without the sentinel.
//!
//! Merging never fails and never mutates its inputs.

use serde_norway::{Mapping, Value};

/// The sentinel string that refers back to the base value.
pub const INHERIT: &str = "_inherit";

fn is_inherit(value: &Value) -> bool {
    matches!(value, Value::String(s) if s == INHERIT)
}

fn strip_inherit_flag(map: &Mapping) -> Mapping {
    map.iter()
        .filter(|(k, _)| !is_inherit(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges `over` onto `base` and returns the result.
pub fn deep_merge(base: &Mapping, over: &Mapping) -> Mapping {
    let mut merged = Mapping::new();
    for (key, base_value) in base {
        match over.get(key) {
            None => {
                merged.insert(key.clone(), base_value.clone());
            }
            Some(over_value) => {
                if let Some(value) = merge_value(Some(base_value), over_value) {
                    merged.insert(key.clone(), value);
                }
            }
        }
    }
    for (key, over_value) in over {
        if base.contains_key(key) {
            continue;
        }
        if let Some(value) = merge_value(None, over_value) {
            merged.insert(key.clone(), value);
        }
    }
    merged
}

/// The merged value of one key, or `None` when the key is to be absent.
fn merge_value(base: Option<&Value>, over: &Value) -> Option<Value> {
    if over.is_null() {
        return None;
    }
    if is_inherit(over) {
        return base.cloned();
    }
    match (over, base) {
        (Value::Mapping(o), Some(Value::Mapping(b))) => {
            let inherit_flag = o.get(INHERIT) == Some(&Value::Bool(true));
            let o = if inherit_flag {
                strip_inherit_flag(o)
            } else {
                o.clone()
            };
            Some(Value::Mapping(deep_merge(b, &o)))
        }
        (Value::Sequence(o), Some(Value::Sequence(b))) => {
            if !o.iter().any(is_inherit) {
                return Some(over.clone());
            }
            let mut spliced = Vec::with_capacity(o.len() + b.len());
            for item in o {
                if is_inherit(item) {
                    spliced.extend(b.iter().cloned());
                } else {
                    spliced.push(item.clone());
                }
            }
            Some(Value::Sequence(spliced))
        }
        (Value::Mapping(o), _) if o.get(INHERIT) == Some(&Value::Bool(true)) => {
            Some(Value::Mapping(strip_inherit_flag(o)))
        }
        _ => Some(over.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Mapping {
        match serde_norway::from_str(text).unwrap() {
            Value::Mapping(m) => m,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn nested_mappings_merge_key_by_key() {
        let got = deep_merge(&map("a: {x: 1, y: 2}\nb: 3"), &map("a: {y: 20, z: 30}"));
        assert_eq!(got, map("a: {x: 1, y: 20, z: 30}\nb: 3"));
    }

    #[test]
    fn null_override_deletes_the_key() {
        let got = deep_merge(&map("a: 1\nb: {c: 2, d: 3}"), &map("a: ~\nb: {c: null}"));
        assert_eq!(got, map("b: {d: 3}"));
    }

    #[test]
    fn bare_inherit_string_keeps_base_value() {
        let got = deep_merge(
            &map("a: [1, 2]\nb: x"),
            &map("a: _inherit\nb: _inherit\nc: _inherit"),
        );
        assert_eq!(got, map("a: [1, 2]\nb: x"));
    }

    #[test]
    fn list_without_sentinel_replaces_wholesale() {
        let got = deep_merge(&map("modes: [oauth, api_key]"), &map("modes: [api_key]"));
        assert_eq!(got, map("modes: [api_key]"));
    }

    #[test]
    fn list_sentinel_splices_base_elements_in_place() {
        let got = deep_merge(&map("f: [b1, b2]"), &map("f: [first, _inherit, last]"));
        assert_eq!(got, map("f: [first, b1, b2, last]"));
    }

    #[test]
    fn mapping_inherit_flag_overlays_and_is_stripped() {
        let got = deep_merge(
            &map("env: {A: '1', B: '2'}"),
            &map("env: {_inherit: true, B: '3'}"),
        );
        assert_eq!(got, map("env: {A: '1', B: '3'}"));
    }

    #[test]
    fn mapping_inherit_flag_without_base_mapping_stands_alone() {
        let got = deep_merge(&map("env: 5"), &map("env: {_inherit: true, B: '3'}"));
        assert_eq!(got, map("env: {B: '3'}"));
        let got = deep_merge(&map("x: 1"), &map("env: {_inherit: true, B: '3'}"));
        assert_eq!(got, map("x: 1\nenv: {B: '3'}"));
    }

    #[test]
    fn type_change_takes_the_override() {
        let got = deep_merge(&map("depends_on: [a]"), &map("depends_on: b"));
        assert_eq!(got, map("depends_on: b"));
    }

    #[test]
    fn inputs_are_not_mutated() {
        let base = map("a: {b: 1}");
        let over = map("a: {b: 2}");
        let _ = deep_merge(&base, &over);
        assert_eq!(base, map("a: {b: 1}"));
    }
}
