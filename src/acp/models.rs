//! Reading an agent's model selector out of its `session/new` answer.
//!
//! Current agents expose models as a `configOptions` select of category `model` (flat or
//! grouped options); older ones use the legacy `models` block and `session/set_model`; some offer
//! no selector at all. [`ModelMenu::from_session`] reads all three into one shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the agent lets a client choose its model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelSelector {
    /// A `configOptions` select with this id, set through `session/set_config_option`.
    ConfigOption { id: String },
    /// The legacy `models` block, set through `session/set_model`.
    Legacy,
    /// No selector: the agent runs whatever model it runs.
    None,
}

/// One model an agent offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

/// An agent's models and how to pick one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMenu {
    pub selector: ModelSelector,
    pub models: Vec<ModelChoice>,
    pub current: Option<String>,
    /// Whether the legacy block was present too, so `session/set_model` is worth a try.
    pub has_legacy: bool,
}

/// The synthetic model id offered for an agent without a selector.
pub const DEFAULT_MODEL: &str = "default";

impl ModelMenu {
    /// Reads the selector from a `session/new` (or load/resume) result.
    pub fn from_session(result: &Value) -> ModelMenu {
        let legacy = legacy_models(result);
        if let Some((id, models, current)) = config_option_models(result) {
            return ModelMenu {
                selector: ModelSelector::ConfigOption { id },
                models,
                current,
                has_legacy: legacy.is_some(),
            };
        }
        if let Some((models, current)) = legacy {
            return ModelMenu {
                selector: ModelSelector::Legacy,
                models,
                current,
                has_legacy: true,
            };
        }
        ModelMenu {
            selector: ModelSelector::None,
            models: vec![ModelChoice {
                id: DEFAULT_MODEL.into(),
                name: "Default".into(),
                description: Some("the agent's own default model".into()),
            }],
            current: Some(DEFAULT_MODEL.into()),
            has_legacy: false,
        }
    }

    pub fn contains(&self, model: &str) -> bool {
        self.models.iter().any(|m| m.id == model)
    }
}

/// Whether a config option is the model selector.
pub fn is_model_option(option: &Value) -> bool {
    option.get("category").and_then(Value::as_str) == Some("model")
}

/// Finds the model select: category `model` first, else id `model`.
pub fn find_model_option(options: &[Value]) -> Option<&Value> {
    let is_select = |o: &&Value| {
        o.get("type")
            .and_then(Value::as_str)
            .is_none_or(|t| t == "select")
    };
    options
        .iter()
        .filter(is_select)
        .find(|o| is_model_option(o))
        .or_else(|| {
            options
                .iter()
                .filter(is_select)
                .find(|o| o.get("id").and_then(Value::as_str) == Some("model"))
        })
}

fn config_option_models(result: &Value) -> Option<(String, Vec<ModelChoice>, Option<String>)> {
    let options = result.get("configOptions")?.as_array()?;
    let option = find_model_option(options)?;
    let id = option.get("id")?.as_str()?.to_owned();
    let mut models = Vec::new();
    for entry in option.get("options")?.as_array()? {
        match entry.get("options").and_then(Value::as_array) {
            // A group: its options are the models.
            Some(group) => models.extend(group.iter().filter_map(select_choice)),
            None => models.extend(select_choice(entry)),
        }
    }
    let current = option
        .get("currentValue")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (!models.is_empty()).then_some((id, models, current))
}

fn select_choice(entry: &Value) -> Option<ModelChoice> {
    let id = entry.get("value")?.as_str()?.to_owned();
    Some(ModelChoice {
        name: entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&id)
            .to_owned(),
        description: entry
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id,
    })
}

fn legacy_models(result: &Value) -> Option<(Vec<ModelChoice>, Option<String>)> {
    let block = result.get("models")?;
    let models: Vec<ModelChoice> = block
        .get("availableModels")?
        .as_array()?
        .iter()
        .filter_map(|m| {
            let id = m.get("modelId")?.as_str()?.to_owned();
            Some(ModelChoice {
                name: m
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(&id)
                    .to_owned(),
                description: m
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                id,
            })
        })
        .collect();
    let current = block
        .get("currentModelId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    (!models.is_empty()).then_some((models, current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_config_option_select() {
        let menu = ModelMenu::from_session(&json!({"sessionId":"s","configOptions":[
            {"id":"mode","category":"mode","type":"select","currentValue":"a","options":[{"value":"a","name":"A"}]},
            {"id":"model","category":"model","type":"select","currentValue":"m2","options":[
                {"value":"m1","name":"M1","description":"first"},{"value":"m2","name":"M2"}]}]}));
        assert_eq!(
            menu.selector,
            ModelSelector::ConfigOption { id: "model".into() }
        );
        assert_eq!(
            menu.models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["m1", "m2"]
        );
        assert_eq!(menu.models[0].description.as_deref(), Some("first"));
        assert_eq!(menu.current.as_deref(), Some("m2"));
    }

    #[test]
    fn grouped_options_are_flattened_in_order() {
        let menu = ModelMenu::from_session(
            &json!({"configOptions":[{"id":"llm","category":"model","type":"select",
            "currentValue":"b","options":[{"group":"g1","name":"G1","options":[{"value":"a","name":"A"}]},
                                          {"group":"g2","name":"G2","options":[{"value":"b","name":"B"}]}]}]}),
        );
        assert_eq!(
            menu.selector,
            ModelSelector::ConfigOption { id: "llm".into() }
        );
        assert_eq!(
            menu.models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn legacy_block_with_bracketed_ids() {
        let menu = ModelMenu::from_session(
            &json!({"models":{"currentModelId":"default","availableModels":[
            {"modelId":"default","name":"Default"},{"modelId":"sonnet[1m]","name":"Sonnet (1M context)"}]}}),
        );
        assert_eq!(menu.selector, ModelSelector::Legacy);
        assert!(menu.contains("sonnet[1m]"));
        assert!(menu.has_legacy);
    }

    #[test]
    fn config_option_wins_over_legacy_but_remembers_it() {
        let menu = ModelMenu::from_session(&json!({
            "models":{"currentModelId":"x","availableModels":[{"modelId":"x","name":"X"}]},
            "configOptions":[{"id":"model","category":"model","type":"select","currentValue":"x","options":[{"value":"x","name":"X"}]}]}));
        assert_eq!(
            menu.selector,
            ModelSelector::ConfigOption { id: "model".into() }
        );
        assert!(menu.has_legacy);
    }

    #[test]
    fn no_selector_offers_default() {
        let menu = ModelMenu::from_session(&json!({"sessionId":"s"}));
        assert_eq!(menu.selector, ModelSelector::None);
        assert_eq!(menu.models.len(), 1);
        assert_eq!(menu.models[0].id, DEFAULT_MODEL);
    }

    #[test]
    fn option_found_by_id_when_category_missing() {
        let menu = ModelMenu::from_session(
            &json!({"configOptions":[{"id":"model","type":"select","currentValue":"a","options":[{"value":"a","name":"A"}]}]}),
        );
        assert_eq!(
            menu.selector,
            ModelSelector::ConfigOption { id: "model".into() }
        );
    }

    #[test]
    fn empty_select_falls_back_to_none() {
        let menu = ModelMenu::from_session(
            &json!({"configOptions":[{"id":"model","category":"model","type":"select","options":[]}]}),
        );
        assert_eq!(menu.selector, ModelSelector::None);
    }
}
