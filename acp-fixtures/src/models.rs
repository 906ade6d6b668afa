//! The session's selectors: the model and the optional mode.
//!
//! These builders produce the `configOptions` list and the legacy `models`
//! block in the shapes chosen by `--model-style`.

use crate::args::{Config, ModelStyle};
use serde_json::{json, Value};

/// The values accepted by the `mode` config option.
pub const MODES: [&str; 2] = ["ask", "code"];

/// The modes of `--legacy-modes`: id, name, description.
pub const LEGACY_MODES: [(&str, &str, &str); 3] = [
    ("default", "Default", "Asks before acting"),
    ("plan", "Plan", "Read-only"),
    ("yolo", "YOLO", "Approves everything"),
];

/// The legacy `modes` block with `current` selected.
pub fn legacy_modes(current: &str) -> Value {
    let available: Vec<Value> = LEGACY_MODES
        .iter()
        .map(|(id, name, description)| serde_json::json!({"id": id, "name": name, "description": description}))
        .collect();
    serde_json::json!({"availableModes": available, "currentModeId": current})
}

/// The display name of a model: its id with the first letter uppercased.
pub fn display_name(id: &str) -> String {
    let mut chars = id.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One model entry of a config option select.
fn model_choice(cfg: &Config, id: &str) -> Value {
    json!({
        "value": id,
        "name": display_name(id),
        "description": format!("{} model {id}", cfg.name),
    })
}

/// The model select, flat or grouped depending on the style.
fn model_option(cfg: &Config, current_model: &str) -> Value {
    let options = if cfg.model_style == ModelStyle::Grouped {
        // The first half is "fast", the rest "smart"; one model stays in "fast".
        let split = cfg.models.len().div_ceil(2);
        let (fast, smart) = cfg.models.split_at(split);
        let mut groups = vec![json!({
            "group": "fast",
            "name": "Fast",
            "options": fast.iter().map(|m| model_choice(cfg, m)).collect::<Vec<_>>(),
        })];
        if !smart.is_empty() {
            groups.push(json!({
                "group": "smart",
                "name": "Smart",
                "options": smart.iter().map(|m| model_choice(cfg, m)).collect::<Vec<_>>(),
            }));
        }
        groups
    } else {
        cfg.models.iter().map(|m| model_choice(cfg, m)).collect()
    };
    json!({
        "id": cfg.model_option_id,
        "name": "Model",
        "category": "model",
        "type": "select",
        "currentValue": current_model,
        "options": options,
    })
}

/// The mode select.
fn mode_option(current_mode: &str) -> Value {
    json!({
        "id": "mode",
        "name": "Mode",
        "category": "mode",
        "type": "select",
        "currentValue": current_mode,
        "options": [
            {"value": "ask", "name": "Ask", "description": "Answer questions only"},
            {"value": "code", "name": "Code", "description": "Edit files and run commands"},
        ],
    })
}

/// The complete `configOptions` list for a session's current state.
pub fn config_options(cfg: &Config, current_model: &str, current_mode: &str) -> Vec<Value> {
    let mut list = Vec::new();
    if cfg.mode_option {
        list.push(mode_option(current_mode));
    }
    if cfg.model_style.has_config_option() {
        list.push(model_option(cfg, current_model));
    }
    list
}

/// The legacy `models` block, when the style advertises it.
pub fn legacy_models(cfg: &Config, current_model: &str) -> Option<Value> {
    if !cfg.model_style.has_legacy_block() {
        return None;
    }
    let available: Vec<Value> = cfg
        .models
        .iter()
        .map(|m| {
            json!({
                "modelId": m,
                "name": display_name(m),
                "description": format!("{} model {m}", cfg.name),
            })
        })
        .collect();
    Some(json!({"currentModelId": current_model, "availableModels": available}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse;

    fn cfg(args: &[&str]) -> Config {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("opus"), "Opus");
        assert_eq!(display_name("émile"), "Émile");
        assert_eq!(display_name(""), "");
    }

    #[test]
    fn grouped_split() {
        let c = cfg(&["--model-style", "grouped", "--models", "a,b,c"]);
        let list = config_options(&c, "a", "ask");
        let groups = list[0]["options"].as_array().unwrap();
        assert_eq!(groups[0]["options"].as_array().unwrap().len(), 2);
        assert_eq!(groups[1]["options"].as_array().unwrap().len(), 1);

        let c = cfg(&["--model-style", "grouped", "--models", "solo"]);
        let list = config_options(&c, "solo", "ask");
        assert_eq!(list[0]["options"].as_array().unwrap().len(), 1);
        assert_eq!(list[0]["options"][0]["group"], "fast");
    }

    #[test]
    fn mode_comes_first() {
        let c = cfg(&["--mode-option"]);
        let list = config_options(&c, "small", "code");
        assert_eq!(list[0]["id"], "mode");
        assert_eq!(list[0]["currentValue"], "code");
        assert_eq!(list[1]["id"], "model");
        assert!(legacy_models(&c, "small").is_none());
    }
}
