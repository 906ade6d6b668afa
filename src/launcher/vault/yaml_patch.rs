//! Format-preserving edits of top-level keys in a provider's YAML config.
//!
//! No maintained Rust crate offers round-trip YAML editing, and the patcher only
//! needs to set and remove top-level scalar keys, so this is a small line editor:
//! it finds the top-level key (a line starting in column 0), replaces the key's
//! line and its indented continuation, keeps a trailing comment on a one-line
//! value, and appends new keys at the end. Everything else in the file is
//! untouched byte for byte.
//!
//! Every edit is verified: the result is re-parsed and compared with the
//! expected mapping. When the layout is one the editor does not handle (flow
//! style at the top level, document markers, complex keys), the verification
//! fails and the mapping is re-serialised instead, which keeps the values
//! correct but drops comments; [`YamlEdit::lossless`] reports which happened.
//! A file that does not parse, or whose top level is not a mapping, is never
//! rewritten.

use serde_json::{Map, Value as Json};
use serde_norway::{Mapping, Value};

use super::toml_patch::EditError;

/// The result of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlEdit {
    /// The new file content.
    pub text: String,
    /// False when the file had to be re-serialised (comments and layout lost).
    pub lossless: bool,
}

/// Parses `text` as a top-level mapping (an empty document is an empty mapping).
pub fn parse_mapping(text: &str) -> Result<Mapping, EditError> {
    match serde_norway::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(EditError::Parse("the top level is not a mapping".into())),
        Err(e) => Err(EditError::Parse(format!("not valid YAML: {e}"))),
    }
}

/// Converts a YAML value to JSON for comparison with recorded values.
pub fn yaml_to_json(v: &Value) -> Option<Json> {
    serde_json::to_value(v).ok()
}

fn json_to_yaml(v: &Json) -> Result<Value, EditError> {
    serde_norway::to_value(v).map_err(|e| EditError::Spec(e.to_string()))
}

/// Renders a scalar on one line, or `None` for values the editor does not write inline.
fn inline_scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {
            let text = serde_norway::to_string(v).ok()?;
            let text = text.trim_end_matches('\n');
            (!text.contains('\n')).then(|| text.to_string())
        }
        _ => None,
    }
}

/// A top-level key line.
struct KeyLine {
    index: usize,
    key: String,
    /// Byte offset just after the `:` separating key and value.
    colon_end: usize,
}

fn line_body(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn parse_key_line(index: usize, line: &str) -> Option<KeyLine> {
    let body = line_body(line);
    let first = body.chars().next()?;
    if first.is_whitespace() || "#-%?{[&*!|>@`".contains(first) || body.starts_with("...") {
        return None;
    }
    let key_end = if first == '"' || first == '\'' {
        let close = quoted_end(body, first)?;
        let after = body[close..].trim_start();
        if !after.starts_with(':') {
            return None;
        }
        body.len() - after.len()
    } else {
        let bytes = body.as_bytes();
        (0..bytes.len()).find(|&i| {
            bytes[i] == b':'
                && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t')
        })?
    };
    let raw_key = body[..key_end].trim_end();
    let key = match serde_norway::from_str::<Value>(raw_key).ok()? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(KeyLine {
        index,
        key,
        colon_end: key_end + 1,
    })
}

/// The byte offset just past the closing quote of a quoted scalar starting at 0.
fn quoted_end(body: &str, quote: char) -> Option<usize> {
    let mut chars = body.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().map(|(_, n)| *n) == Some('\'') {
                chars.next();
                continue;
            }
            return Some(i + c.len_utf8());
        }
    }
    None
}

/// Index one past the last line of the value that starts at `start`.
fn value_end(lines: &[&str], start: usize) -> usize {
    let mut end = start + 1;
    let mut last_content = start + 1;
    while end < lines.len() {
        let body = line_body(lines[end]);
        if body.trim().is_empty() {
            end += 1;
            continue;
        }
        let continues =
            body.starts_with([' ', '\t']) || (body.starts_with('-') && !body.starts_with("---"));
        if !continues {
            break;
        }
        end += 1;
        last_content = end;
    }
    last_content
}

fn find_key(lines: &[&str], key: &str) -> Option<KeyLine> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| parse_key_line(i, l))
        .find(|k| k.key == key)
}

fn newline_of(text: &str) -> &'static str {
    if text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    }
}

/// The trailing comment (with its leading spaces) of a one-line value equal to `old`.
fn trailing_comment(rest: &str, old: &Value) -> Option<String> {
    for (pos, _) in rest.match_indices('#') {
        let before = &rest[..pos];
        if !before.ends_with([' ', '\t']) || before.trim().is_empty() {
            continue;
        }
        if serde_norway::from_str::<Value>(before.trim()).ok().as_ref() == Some(old) {
            let spacing = &before[before.trim_end().len()..];
            return Some(format!("{spacing}{}", &rest[pos..]));
        }
    }
    None
}

fn set_in_text(text: &str, key: &str, value: &Value, old: Option<&Value>) -> Option<String> {
    let scalar = inline_scalar(value)?;
    let nl = newline_of(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match find_key(&lines, key) {
        Some(k) => {
            let line = lines[k.index];
            let key_text = &line[..k.colon_end - 1];
            let end = value_end(&lines, k.index);
            let rest = &line_body(line)[k.colon_end..];
            let comment = if end == k.index + 1 {
                old.and_then(|o| trailing_comment(rest, o))
            } else {
                None
            };
            let ending = if line.ends_with('\n') { nl } else { "" };
            let replacement = format!(
                "{key_text}: {scalar}{}{ending}",
                comment.unwrap_or_default()
            );
            let mut out = String::with_capacity(text.len() + scalar.len());
            lines[..k.index].iter().for_each(|l| out.push_str(l));
            out.push_str(&replacement);
            lines[end..].iter().for_each(|l| out.push_str(l));
            Some(out)
        }
        None => {
            let key_text = inline_scalar(&Value::String(key.to_string()))?;
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(nl);
            }
            out.push_str(&format!("{key_text}: {scalar}{nl}"));
            Some(out)
        }
    }
}

fn remove_in_text(text: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let k = find_key(&lines, key)?;
    let end = value_end(&lines, k.index);
    let mut out = String::with_capacity(text.len());
    lines[..k.index].iter().for_each(|l| out.push_str(l));
    lines[end..].iter().for_each(|l| out.push_str(l));
    Some(out)
}

/// Accepts `edited` if it parses to `expected`, else re-serialises `expected`.
fn verified(edited: Option<String>, expected: &Mapping) -> Result<YamlEdit, EditError> {
    if let Some(text) = edited {
        if parse_mapping(&text).ok().as_ref() == Some(expected) {
            return Ok(YamlEdit {
                text,
                lossless: true,
            });
        }
    }
    let text = if expected.is_empty() {
        String::new()
    } else {
        serde_norway::to_string(expected).map_err(|e| EditError::Spec(e.to_string()))?
    };
    Ok(YamlEdit {
        text,
        lossless: false,
    })
}

/// Sets top-level keys to `values`.
pub fn set_top(text: &str, values: &Map<String, Json>) -> Result<YamlEdit, EditError> {
    let mut expected = parse_mapping(text)?;
    let mut edited = Some(text.to_string());
    for (k, v) in values {
        let value = json_to_yaml(v)?;
        let old = expected.get(k.as_str()).cloned();
        edited = edited.and_then(|t| set_in_text(&t, k, &value, old.as_ref()));
        expected.insert(Value::String(k.clone()), value);
    }
    verified(edited, &expected)
}

/// Removes the top-level keys whose live value still equals the recorded one;
/// `None` when nothing changed.
pub fn remove_unchanged(
    text: &str,
    values: &Map<String, Json>,
) -> Result<Option<YamlEdit>, EditError> {
    let mut expected = parse_mapping(text)?;
    let mut edited = Some(text.to_string());
    let mut changed = false;
    for (k, v) in values {
        let live = expected.get(k.as_str()).and_then(yaml_to_json);
        if live.as_ref() == Some(v) {
            expected.remove(k.as_str());
            edited = edited.and_then(|t| remove_in_text(&t, k));
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    verified(edited, &expected).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn new_key_is_appended_and_comments_survive() {
        let text = "# gh config\ngit_protocol: https # preferred\naliases:\n  co: pr checkout\n";
        let out = set_top(
            text,
            &obj(json!({"http_unix_socket": "/run/terok/vault.sock"})),
        )
        .unwrap();
        assert!(out.lossless);
        assert_eq!(
            out.text,
            format!("{text}http_unix_socket: /run/terok/vault.sock\n")
        );
    }

    #[test]
    fn existing_key_is_replaced_in_place_with_its_comment() {
        let text = "a: 1\nhttp_unix_socket: /old.sock   # managed\nb: 2\n";
        let out = set_top(text, &obj(json!({"http_unix_socket": "/new.sock"}))).unwrap();
        assert!(out.lossless);
        assert_eq!(
            out.text,
            "a: 1\nhttp_unix_socket: /new.sock   # managed\nb: 2\n"
        );
    }

    #[test]
    fn block_value_is_replaced_entirely() {
        let text = "key:\n  nested: 1\n  more: 2\n\n# section\nother: x\n";
        let out = set_top(text, &obj(json!({"key": "flat"}))).unwrap();
        assert!(out.lossless);
        assert_eq!(out.text, "key: flat\n\n# section\nother: x\n");
    }

    #[test]
    fn zero_indented_sequence_belongs_to_its_key() {
        let text = "key:\n- a\n- b\nother: x\n";
        let out = set_top(text, &obj(json!({"key": "v"}))).unwrap();
        assert_eq!(out.text, "key: v\nother: x\n");
    }

    #[test]
    fn quoted_keys_and_values_needing_quotes_are_handled() {
        let text = "\"http_unix_socket\": 'x'\n";
        let out = set_top(text, &obj(json!({"http_unix_socket": "a: b # c"}))).unwrap();
        assert!(out.lossless);
        let parsed = parse_mapping(&out.text).unwrap();
        assert_eq!(
            parsed.get("http_unix_socket"),
            Some(&Value::String("a: b # c".into()))
        );
    }

    #[test]
    fn setting_twice_is_idempotent() {
        let values = obj(json!({"http_unix_socket": "/s"}));
        let once = set_top("# c\n", &values).unwrap().text;
        assert_eq!(set_top(&once, &values).unwrap().text, once);
    }

    #[test]
    fn empty_file_gets_the_key() {
        let out = set_top("", &obj(json!({"k": "v"}))).unwrap();
        assert_eq!(out.text, "k: v\n");
    }

    #[test]
    fn flow_style_top_level_falls_back_to_reserialising() {
        let out = set_top("{a: 1}\n", &obj(json!({"k": "v"}))).unwrap();
        assert!(!out.lossless);
        let parsed = parse_mapping(&out.text).unwrap();
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn unparsable_or_non_mapping_yaml_is_an_error() {
        assert!(matches!(
            set_top("a: [unclosed\n", &Map::new()),
            Err(EditError::Parse(_))
        ));
        assert!(matches!(
            set_top("- a\n- b\n", &Map::new()),
            Err(EditError::Parse(_))
        ));
    }

    #[test]
    fn removal_keeps_user_edits_and_other_content() {
        let values = obj(json!({"http_unix_socket": "/s", "x": "ours"}));
        let text = "# head\nhttp_unix_socket: /s # note\nx: theirs\n";
        let out = remove_unchanged(text, &values).unwrap().unwrap();
        assert!(out.lossless);
        assert_eq!(out.text, "# head\nx: theirs\n");
        assert_eq!(remove_unchanged("x: theirs\n", &values).unwrap(), None);
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let out = set_top("a: 1\r\nb: 2\r\n", &obj(json!({"a": "x", "c": "y"}))).unwrap();
        assert_eq!(out.text, "a: x\r\nb: 2\r\nc: y\r\n");
    }
}
