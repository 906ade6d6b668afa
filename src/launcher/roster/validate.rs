//! Turns a merged roster entry into the typed schema, with precise errors.
//!
//! The merged mapping is validated, never a single layer, because a user file
//! may legitimately be partial. To still point at the right file, each error's
//! key path is looked up in the user layer: when the user file spells out that
//! key (or, for a missing key, its parent section), the user file is blamed,
//! otherwise the bundled file is.

use serde_norway::{Mapping, Value};

use super::error::SchemaError;
use super::schema::RawAgent;

/// The files a merged entry came from.
#[derive(Debug, Clone)]
pub struct EntrySources<'a> {
    /// Display name of the bundled file, when the entry is bundled.
    pub bundled: Option<String>,
    /// The user file and its raw mapping, when the user overrides or adds the entry.
    pub user: Option<(String, &'a Mapping)>,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Validates `merged` as the entry `agent`.
pub fn validate_entry(
    agent: &str,
    merged: &Mapping,
    sources: &EntrySources<'_>,
) -> Result<RawAgent, SchemaError> {
    if let Some(Value::Mapping(vault)) = merged.get("vault") {
        if vault.contains_key("socket_path") {
            let path = vec![
                Segment::Key("vault".into()),
                Segment::Key("socket_path".into()),
            ];
            return Err(schema_error(
                agent,
                sources,
                &path,
                true,
                "'socket_path' is no longer configurable — remove it; the env builder resolves the vault socket path centrally".into(),
                None,
            ));
        }
    }
    let value = Value::Mapping(merged.clone());
    serde_path_to_error::deserialize::<_, RawAgent>(value).map_err(|err| {
        let mut path = parse_path(&err.path().to_string());
        let message = err.inner().to_string();
        let (message, suggestion, key_present) = describe(&message, &mut path);
        schema_error(agent, sources, &path, key_present, message, suggestion)
    })
}

fn schema_error(
    agent: &str,
    sources: &EntrySources<'_>,
    path: &[Segment],
    key_present: bool,
    message: String,
    suggestion: Option<String>,
) -> SchemaError {
    SchemaError {
        file: blame(sources, path, key_present),
        agent: agent.to_string(),
        key: render(path),
        message,
        suggestion,
    }
}

fn parse_path(text: &str) -> Vec<Segment> {
    if text == "." || text.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for part in text.split('.') {
        let mut rest = part;
        if let Some(bracket) = rest.find('[') {
            let key = &rest[..bracket];
            if !key.is_empty() {
                out.push(Segment::Key(key.to_string()));
            }
            rest = &rest[bracket..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    out.push(Segment::Index(i));
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() && rest != "?" {
            out.push(Segment::Key(rest.to_string()));
        }
    }
    out
}

/// Rewrites a serde message into the launcher's wording, completing the path
/// with the offending key and proposing the closest valid spelling.
///
/// Returns the message, the suggestion, and whether the key at `path` exists in
/// the data (false for a missing required field).
fn describe(raw: &str, path: &mut Vec<Segment>) -> (String, Option<String>, bool) {
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        let expected = backticked(rest.get(field.len() + 1..).unwrap_or_default());
        if path.last() != Some(&Segment::Key(field.clone())) {
            path.push(Segment::Key(field.clone()));
        }
        let suggestion = closest(&field, &expected);
        let message = if expected.is_empty() {
            "unknown key".to_string()
        } else {
            format!("unknown key; valid keys: {}", expected.join(", "))
        };
        return (message, suggestion, true);
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let variant = rest.split('`').next().unwrap_or_default().to_string();
        let expected = backticked(rest.get(variant.len() + 1..).unwrap_or_default());
        let suggestion = closest(&variant, &expected);
        return (
            format!(
                "invalid value '{variant}'; expected one of: {}",
                expected.join(", ")
            ),
            suggestion,
            true,
        );
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        path.push(Segment::Key(field));
        return ("required key is missing".to_string(), None, false);
    }
    let message = raw.split(" at line ").next().unwrap_or(raw);
    (lowercase_first(message), None, true)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The candidate nearest to `word`, if it is plausibly a typo of it.
pub fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn blame(sources: &EntrySources<'_>, path: &[Segment], key_present: bool) -> String {
    let bundled = sources.bundled.clone();
    let Some((user_file, user_map)) = &sources.user else {
        return bundled.unwrap_or_default();
    };
    let Some(bundled) = bundled else {
        return user_file.clone();
    };
    // For a missing key, the section that lacks it is what was written.
    let probe = if key_present {
        path
    } else {
        &path[..path.len().saturating_sub(1)]
    };
    if probe.is_empty() {
        return if key_present {
            bundled
        } else {
            user_file.clone()
        };
    }
    let mut current = Value::Mapping((*user_map).clone());
    for seg in probe {
        let next = match (seg, &current) {
            (Segment::Key(k), Value::Mapping(m)) => m.get(k.as_str()).cloned(),
            // A user list replaces (or splices) the bundled one, so the user owns its elements.
            (Segment::Index(_), Value::Sequence(_)) => return user_file.clone(),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return bundled,
        }
    }
    user_file.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Mapping {
        match serde_norway::from_str(text).unwrap() {
            Value::Mapping(m) => m,
            _ => panic!("not a mapping"),
        }
    }

    fn bundled_only() -> EntrySources<'static> {
        EntrySources {
            bundled: Some("bundled.yaml".into()),
            user: None,
        }
    }

    #[test]
    fn unknown_top_level_key_names_key_and_suggestion() {
        let err = validate_entry("x", &map("headles: {}"), &bundled_only()).unwrap_err();
        assert_eq!(err.key, "headles");
        assert_eq!(err.suggestion.as_deref(), Some("headless"));
        assert_eq!(err.file, "bundled.yaml");
        assert!(err.to_string().contains("did you mean 'headless'"), "{err}");
    }

    #[test]
    fn unknown_nested_key_has_full_path() {
        let err = validate_entry(
            "x",
            &map("vault: {route_prefix: a, upstream: b, oauth_refesh: {}}"),
            &bundled_only(),
        )
        .unwrap_err();
        assert_eq!(err.key, "vault.oauth_refesh");
        assert_eq!(err.suggestion.as_deref(), Some("oauth_refresh"));
    }

    #[test]
    fn unknown_key_inside_list_element_has_index() {
        let err = validate_entry(
            "x",
            &map("mounts: [{host_dir: a, container_path: b, lable: c}]"),
            &bundled_only(),
        )
        .unwrap_err();
        assert_eq!(err.key, "mounts[0].lable");
        assert_eq!(err.suggestion.as_deref(), Some("label"));
    }

    #[test]
    fn bad_enum_value_suggests_closest_variant() {
        let err = validate_entry("x", &map("kind: tol"), &bundled_only()).unwrap_err();
        assert_eq!(err.key, "kind");
        assert_eq!(err.suggestion.as_deref(), Some("tool"));
        let err = validate_entry(
            "x",
            &map("auth: {host_dir: a, container_mount: b, modes: [oath]}"),
            &bundled_only(),
        )
        .unwrap_err();
        assert_eq!(err.key, "auth.modes[0]");
        assert_eq!(err.suggestion.as_deref(), Some("oauth"));
    }

    #[test]
    fn missing_required_field_names_it() {
        let err = validate_entry("x", &map("vault: {upstream: b}"), &bundled_only()).unwrap_err();
        assert_eq!(err.key, "vault.route_prefix");
        assert!(err.message.contains("missing"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let err = validate_entry("x", &map("web_ingress: [1]"), &bundled_only()).unwrap_err();
        assert_eq!(err.key, "web_ingress");
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn legacy_socket_path_is_rejected_with_its_own_message() {
        let err = validate_entry(
            "x",
            &map("vault: {route_prefix: a, upstream: b, socket_path: /x}"),
            &bundled_only(),
        )
        .unwrap_err();
        assert_eq!(err.key, "vault.socket_path");
        assert!(err.message.contains("no longer configurable"));
    }

    #[test]
    fn user_file_is_blamed_for_keys_it_wrote() {
        let user = map("vault: {upstrem: x}");
        let sources = EntrySources {
            bundled: Some("b.yaml".into()),
            user: Some(("u.yaml".into(), &user)),
        };
        let merged = map("vault: {route_prefix: a, upstream: b, upstrem: x}");
        let err = validate_entry("x", &merged, &sources).unwrap_err();
        assert_eq!(err.file, "u.yaml");
        assert_eq!(err.suggestion.as_deref(), Some("upstream"));
    }

    #[test]
    fn bundled_file_is_blamed_for_keys_the_user_did_not_touch() {
        let user = map("label: Mine");
        let sources = EntrySources {
            bundled: Some("b.yaml".into()),
            user: Some(("u.yaml".into(), &user)),
        };
        let err = validate_entry("x", &map("label: Mine\nkind: tol"), &sources).unwrap_err();
        assert_eq!(err.file, "b.yaml");
    }

    #[test]
    fn user_deleting_a_required_key_is_blamed() {
        let user = map("vault: {route_prefix: ~}");
        let sources = EntrySources {
            bundled: Some("b.yaml".into()),
            user: Some(("u.yaml".into(), &user)),
        };
        let err = validate_entry("x", &map("vault: {upstream: b}"), &sources).unwrap_err();
        assert_eq!(err.file, "u.yaml");
        assert_eq!(err.key, "vault.route_prefix");
    }

    #[test]
    fn install_depends_on_accepts_string_or_list() {
        let raw =
            validate_entry("x", &map("install: {depends_on: caddy}"), &bundled_only()).unwrap();
        assert_eq!(raw.install.unwrap().depends_on, vec!["caddy"]);
        let raw =
            validate_entry("x", &map("install: {depends_on: [a, b]}"), &bundled_only()).unwrap();
        assert_eq!(raw.install.unwrap().depends_on, vec!["a", "b"]);
    }

    #[test]
    fn null_post_capture_state_becomes_empty() {
        let raw = validate_entry(
            "x",
            &map("auth: {host_dir: a, container_mount: b, post_capture_state: ~}"),
            &bundled_only(),
        )
        .unwrap();
        assert!(raw.auth.unwrap().post_capture_state.is_empty());
        let err = validate_entry(
            "x",
            &map("auth: {host_dir: a, container_mount: b, post_capture_state: {f: 1}}"),
            &bundled_only(),
        )
        .unwrap_err();
        assert_eq!(err.key, "auth.post_capture_state.f");
    }
}
